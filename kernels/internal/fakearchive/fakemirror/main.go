// Command fakemirror serves a fabricated Debian archive on the loopback
// interface, for tests outside kernels, which cannot import fakearchive
// (an internal package): they build and run this command instead. Its
// suite sid holds brokenfs, a FUSE daemon whose run-time closure cannot be
// satisfied (it depends on libgone1 (>= 2) | libgone2, which the suite
// lacks), beside libc6.
//
// It writes the archive's keyring to the file named by its one argument,
// prints the mirror's base URI on a line of its own, and serves until its
// standard input closes.
//
// It imports fakearchive and the standard library only.
package main

import (
	"fmt"
	"io"
	"os"

	"github.com/fusematrix/fusematrix/kernels/internal/fakearchive"
)

func main() {
	if len(os.Args) != 2 {
		fmt.Fprintln(os.Stderr, "usage: fakemirror KEYRING-FILE")
		os.Exit(2)
	}
	exe := fakearchive.Entry{Name: "./usr/bin/brokenfs", Body: []byte("\x7fELF /dev/fuse"), Mode: 0o755}
	srv := fakearchive.New(fakearchive.Suite{Name: "sid", Packages: []fakearchive.Package{
		{Name: "brokenfs", Version: "2", Depends: "libc6 (>= 2.38), libgone1 (>= 2) | libgone2", Deb: fakearchive.Deb(".xz", exe)},
		{Name: "libgone1", Version: "1", Deb: fakearchive.Deb(".xz")},
		{Name: "libc6", Version: "2.43-7", Deb: fakearchive.Deb(".xz")},
	}})
	defer srv.Close()
	fakearchive.WriteKeyring(os.Args[1], fakearchive.Key())
	fmt.Println(srv.Mirror())
	// Until the test that started it is done with it.
	_, _ = io.Copy(io.Discard, os.Stdin)
}
