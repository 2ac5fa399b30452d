package report

import (
	"os"
)

// WantColor reports whether a table written to f should be coloured: f is
// a terminal, NO_COLOR (https://no-color.org) is unset and TERM is not
// "dumb".
func WantColor(f *os.File) bool {
	if f == nil || os.Getenv("NO_COLOR") != "" || os.Getenv("TERM") == "dumb" {
		return false
	}
	return isTerminal(f)
}
