//go:build !linux

package report

import "os"

// isTerminal is a portable approximation where the tty ioctl differs: any
// character device counts.
func isTerminal(f *os.File) bool {
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}
