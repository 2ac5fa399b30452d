package harness

import (
	"fmt"
	"os"
	"path"
	"path/filepath"
	"slices"
	"strings"

	"github.com/fusematrix/fusematrix/harness/daemonspec"
	"github.com/fusematrix/fusematrix/harness/elfdeps"
	"github.com/fusematrix/fusematrix/harness/initramfs"
	"github.com/fusematrix/fusematrix/results/contract"
)

// daemonGuestDir is where a daemon's binary goes in the guest, below a
// directory named for the daemon (several may share a boot); the files it
// needs keep their host paths.
const daemonGuestDir = "/fusematrix/daemon"

// Reserved is a guest path that fusematrix's initramfs provides or mounts
// over itself, which no file of a user's may replace (a daemon
// description's "file = HOST:/init" would replace u-root's init).
type Reserved struct {
	Path string // absolute, clean; what lies under it is reserved too
	What string // what it is, for the error
}

// ReservedPaths are the guest paths of the initramfs itself: the u-root
// base image's (initramfs.Base: u-root's DefaultRamfs, its busybox, init
// and uinit), writeInitrd's overlay (modules, their load list, the C NOOP
// peer, the daemon's description) and the directories something is
// mounted over at boot (u-root's libinit, the agent's scratch tmpfs),
// which would hide a file put there. Overlay refuses, in any case, a file
// where the base image has anything but a directory.
var ReservedPaths = []Reserved{
	{"/init", "u-root's init"},
	{"/bbin", "u-root's busybox and its commands (init, the agent, the shell's tools)"},
	{"/bin/uinit", "the agent, which init runs"},
	{"/etc/uinit.flags", "the agent's arguments"},
	{"/etc/resolv.conf", "a file of u-root's base image"},
	{"/etc/localtime", "a file of u-root's base image"},
	{path.Dir(contract.ModuleList), "fusematrix's module list and daemon description"},
	{"/lib/modules", "the kernel's modules"},
	{contract.PeerPath, "the C NOOP peer"},
	{"/dev", "the guest mounts devtmpfs over it"},
	{"/proc", "the guest mounts proc over it"},
	{"/sys", "the guest mounts sysfs over it"},
	{"/tmp", "the guest mounts a tmpfs over it"},
	{"/run/fusematrix", "the agent mounts its scratch tmpfs over it"},
}

// Conflict says which of reserved the guest path p would replace or hide,
// as an error naming it, or nil: p is a reserved path, lies under one (a
// file there would turn a reserved file into a directory, or go into a
// reserved directory), or is a directory above one (a file there would
// replace that directory and all it holds).
func Conflict(p string, reserved []Reserved) error {
	for _, r := range reserved {
		switch {
		case p == r.Path:
			return fmt.Errorf("guest path %s is reserved: %s", p, r.What)
		case strings.HasPrefix(p, r.Path+"/"):
			return fmt.Errorf("guest path %s lies under %s, which is reserved: %s", p, r.Path, r.What)
		case p == "/" || strings.HasPrefix(r.Path, p+"/"):
			return fmt.Errorf("guest path %s would replace the directory holding %s, which is reserved: %s", p, r.Path, r.What)
		}
	}
	return nil
}

// Daemon is a user's FUSE daemon as the guests run it, and the files that
// carry it there: its binary, at Daemon.Path, and what that needs.
type Daemon struct {
	contract.DaemonSpec
	Files []initramfs.File
	// Notes are what was found about the binary that does not stop it
	// (elfdeps' warnings), for the user.
	Notes []string
}

// NewDaemon is the daemon spec describes, with the files that carry it
// into a guest: its binary, loader, libraries and fusermount3 (found from
// the ELF file, never by running anything it names), and the extra files
// the description lists. what names the daemon in errors ("-daemon
// ./myfs"). A binary that cannot run in the guests, or an extra file that
// would replace the guest's own, is an error here, before anything boots.
func NewDaemon(spec *daemonspec.Spec, what string) (*Daemon, error) {
	guestBin := daemonGuestDir + "/" + spec.Name + "/" + filepath.Base(spec.Binary)
	files, env, own, notes, err := daemonFiles(spec.Binary, guestBin)
	if w := spec.Where(daemonspec.KeyBinary); err != nil && w != "" {
		if !filepath.IsAbs(spec.Binary) {
			wd, _ := os.Getwd()
			err = fmt.Errorf("%w (a relative path, taken from %s, where fusematrix runs)", err, wd)
		}
		return nil, fmt.Errorf("%s: %w", w, err)
	}
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	extra, err := extraFiles(spec.Files, slices.Concat(ReservedPaths, own))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", what, err)
	}
	out := &Daemon{
		DaemonSpec: contract.DaemonSpec{
			Name: spec.Name, Path: guestBin, Args: spec.Args,
			Env: daemonEnv(env, spec.Env), Passthrough: spec.Passthrough != nil && *spec.Passthrough,
			URing: spec.URing != nil && *spec.URing, MountWait: spec.Wait.Seconds(), StopWait: spec.Stop.Seconds(),
			Setup: spec.Setup, Stdin: spec.Stdin, Dirs: spec.Dirs,
		},
		Files: append(files, extra...),
		Notes: notes,
	}
	if err := out.Check(); err != nil {
		if spec.Origin != "" {
			err = fmt.Errorf("%s: %w", spec.Origin, err)
		}
		return nil, err
	}
	return out, nil
}

// daemonEnv is the daemon's environment: fusematrix's entries (elfdeps'
// LD_LIBRARY_PATH, naming the guest directory it copied libraries to)
// followed by the user's. A user's LD_LIBRARY_PATH used to replace
// fusematrix's (the last entry of a name wins), and a daemon whose
// libraries are there then failed to start: the two are joined into one
// entry instead, fusematrix's directory first. It holds only the libraries
// resolved on the host for this binary, each under the name the binary
// asks for, so the daemon loads the very files that were checked, and the
// user's directories still serve everything else (a plugin it opens with
// dlopen, given as an extra file). The user's last value is the one
// joined, as it was the one that counted.
func daemonEnv(ours, user []string) []string {
	const key = "LD_LIBRARY_PATH="
	i := slices.IndexFunc(ours, func(e string) bool { return strings.HasPrefix(e, key) })
	if i < 0 {
		return slices.Concat(ours, user)
	}
	out := slices.Clone(ours)
	for _, e := range user {
		v, ok := strings.CutPrefix(e, key)
		switch {
		case !ok:
			out = append(out, e)
		case v != "":
			out[i] = ours[i] + ":" + v
		default:
			out[i] = ours[i] // an empty value adds nothing
		}
	}
	return out
}

// extraFiles are a description's extra files for the guest, each at its
// guest path (its host path, made absolute, unless given). A guest path
// that would replace or hide one of reserved (the initramfs's own files,
// the daemon's, an earlier extra file's) is an error naming it, and so is
// a file that is not there, or not a regular file.
func extraFiles(fs []daemonspec.File, reserved []Reserved) ([]initramfs.File, error) {
	var out []initramfs.File
	reserved = slices.Clone(reserved)
	for _, f := range fs {
		guest := f.Guest
		if guest == "" {
			var err error
			if guest, err = filepath.Abs(f.Host); err != nil {
				return nil, fmt.Errorf("%s: extra file: %w", f.Where, err)
			}
		}
		guest = filepath.Clean(guest)
		if err := Conflict(guest, reserved); err != nil {
			return nil, fmt.Errorf("%s: extra file %s: %w", f.Where, f.Host, err)
		}
		info, err := os.Stat(f.Host)
		if err != nil {
			return nil, fmt.Errorf("%s: extra file: %w", f.Where, err)
		}
		if !info.Mode().IsRegular() {
			return nil, fmt.Errorf("%s: extra file %s: not a regular file", f.Where, f.Host)
		}
		out = append(out, initramfs.HostFile(guest, f.Host, info.Mode().Perm()))
		reserved = append(reserved, Reserved{Path: guest, What: "the extra file of " + f.Where})
	}
	return out, nil
}

// daemonFiles are the files that carry the binary at path into a guest,
// at guestBin
// (its dynamic loader, libraries and fusermount3 too, found from the ELF
// file), the environment it needs there, and the guest paths they take,
// which no extra file may. A binary that cannot run in the guests is an
// error naming why; what elfdeps could only warn about comes back as notes.
func daemonFiles(path, guestBin string) ([]initramfs.File, []string, []Reserved, []string, error) {
	b, err := elfdeps.Resolve(path)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	fs, err := b.Files(guestBin)
	if err != nil {
		return nil, nil, nil, nil, err
	}
	files := make([]initramfs.File, len(fs))
	own := []Reserved{{Path: daemonGuestDir, What: "where fusematrix puts the daemon's binary"}}
	for i, f := range fs {
		files[i] = initramfs.HostFile(f.Guest, f.Host, f.Mode)
		if i > 0 { // the binary's own is in daemonGuestDir
			own = append(own, Reserved{Path: f.Guest, What: "the daemon needs " + f.Host + " there (its loader, a library or fusermount3)"})
		}
	}
	return files, b.Env, own, b.Notes, nil
}
