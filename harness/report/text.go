package report

import (
	"fmt"
	"math"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/fusematrix/fusematrix/harness/inert"
)

// xmlText keeps s as it is, line breaks and tabs included, but turns into
// visible escapes what XML 1.0 cannot carry at all (most control
// characters, U+FFFE, U+FFFF, invalid UTF-8) and what would act on a
// reader's view (terminal escapes, bidi overrides), rather than silently
// dropping them.
func xmlText(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			fmt.Fprintf(&b, `\x%02x`, s[i])
		case r == '\n' || r == '\t' || r == '\r':
			b.WriteRune(r)
		case xmlChar(r) && unicode.IsPrint(r):
			b.WriteRune(r)
		default:
			b.WriteString(inert.EscapeRune(r))
		}
		i += n
	}
	return b.String()
}

// xmlChar reports whether r is in XML 1.0's Char production.
func xmlChar(r rune) bool {
	return r == '\t' || r == '\n' || r == '\r' ||
		r >= 0x20 && r <= 0xd7ff ||
		r >= 0xe000 && r <= 0xfffd ||
		r >= 0x10000 && r <= 0x10ffff
}

// wrap breaks the one-line text s into lines of at most width runes at
// spaces (splitting words longer than a line), keeping at most maxLines
// and marking anything dropped with an ellipsis.
func wrap(s string, width, maxLines int) []string {
	if width < 8 {
		width = 8
	}
	var lines []string
	line := ""
	for _, word := range strings.Fields(s) {
		for utf8.RuneCountInString(word) > width {
			if line != "" {
				lines = append(lines, line)
				line = ""
			}
			r := []rune(word)
			lines = append(lines, string(r[:width]))
			word = string(r[width:])
		}
		switch {
		case line == "":
			line = word
		case utf8.RuneCountInString(line)+1+utf8.RuneCountInString(word) <= width:
			line += " " + word
		default:
			lines = append(lines, line)
			line = word
		}
	}
	if line != "" {
		lines = append(lines, line)
	}
	if len(lines) > maxLines {
		lines = lines[:maxLines]
		last := []rune(lines[maxLines-1])
		if len(last) > width-1 {
			last = last[:width-1]
		}
		lines[maxLines-1] = string(last) + "…"
	}
	return lines
}

// markdownText makes one-line text safe inside a GitHub Markdown table cell
// or list item: characters that would end a cell, start emphasis, a link,
// code or raw HTML are backslash-escaped.
func markdownText(s string) string {
	var b strings.Builder
	for _, r := range inert.OneLine(s) {
		if strings.ContainsRune("\\`*_[]<>|~&", r) {
			b.WriteByte('\\')
		}
		b.WriteRune(r)
	}
	return b.String()
}

// mbps formats a throughput as whole MB/s: the last digit of a TCG
// benchmark is noise, and fewer digits keep the figures comparable by eye.
func mbps(v float64) string {
	return number(v, 0) + " MB/s"
}

// ratio formats a mode/native ratio with two decimals.
func ratio(v float64) string {
	return number(v, 2) + "×"
}

// number formats v with prec decimals, spelling NaN and infinities in
// words rather than letting them look like figures.
func number(v float64, prec int) string {
	switch {
	case math.IsNaN(v):
		return "NaN"
	case math.IsInf(v, 1):
		return "+Inf"
	case math.IsInf(v, -1):
		return "-Inf"
	}
	return strconv.FormatFloat(v, 'f', prec, 64)
}

// plainNumber formats a metric that has no well-known unit: at most two
// decimals, trailing zeros dropped.
func plainNumber(v float64) string {
	s := number(v, 2)
	if strings.Contains(s, ".") {
		s = strings.TrimRight(strings.TrimRight(s, "0"), ".")
	}
	return s
}
