// Package inert makes text from a guest, or from a file another machine
// wrote, safe to show: a release string or a reason may carry newlines,
// tabs (which would break a table's columns), terminal escape sequences or
// bidi overrides, and these functions make such text visible instead of
// letting it act. Reports, compare, bisect and the harness's own messages
// use them; it imports only the standard library, so that none of them
// links the report's plotting to cut a line.
package inert

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// OneLine folds s onto one line: runs of whitespace become one space, and
// every other non-printable rune or invalid byte becomes a Go-style escape
// such as \x1b, so that nothing the guest wrote can drive the terminal.
func OneLine(s string) string {
	return visible(s, true)
}

// ConsoleLine makes a console line inert like OneLine but keeps its
// spacing, which kernel logs use for alignment ("[    1.902311]").
func ConsoleLine(s string) string {
	return strings.TrimRight(visible(s, false), " ")
}

func visible(s string, fold bool) string {
	var b strings.Builder
	space := false
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			flushSpace(&b, &space)
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case unicode.IsSpace(r) && !fold:
			b.WriteByte(' ')
		case unicode.IsSpace(r):
			space = true
		case !unicode.IsPrint(r):
			flushSpace(&b, &space)
			b.WriteString(EscapeRune(r))
		default:
			flushSpace(&b, &space)
			b.WriteRune(r)
		}
		i += n
	}
	return b.String()
}

func flushSpace(b *strings.Builder, pending *bool) {
	if *pending && b.Len() > 0 {
		b.WriteByte(' ')
	}
	*pending = false
}

// EscapeRune spells r as a Go-style escape (\x1b, \u202e), as OneLine
// shows a rune that must not act.
func EscapeRune(r rune) string {
	switch {
	case r < 0x100:
		return fmt.Sprintf(`\x%02x`, r)
	case r < 0x10000:
		return fmt.Sprintf(`\u%04x`, r)
	}
	return fmt.Sprintf(`\U%08x`, r)
}

// Truncate shortens s to at most n runes, marking the cut with an ellipsis.
func Truncate(s string, n int) string {
	if n < 1 {
		n = 1
	}
	if utf8.RuneCountInString(s) <= n {
		return s
	}
	r := []rune(s)
	return string(r[:n-1]) + "…"
}
