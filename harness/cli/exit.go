package cli

import (
	"errors"
	"fmt"
	"io"
)

// Status is an exit status whose meaning was already printed (a table, a
// verdict, a summary): Exit prints nothing more.
type Status int

func (s Status) Error() string { return fmt.Sprintf("exit %d", int(s)) }

// Error is an error that ends fusematrix with its own status, printed
// once by Exit; More follows the message (a usage text).
type Error struct {
	Code int
	Err  error
	More string
}

func (e Error) Error() string { return e.Err.Error() }
func (e Error) Unwrap() error { return e.Err }

// Usagef is input fusematrix refuses: a flag, an argument, a file no
// fusematrix wrote as it stands. It exits 2, so that a gate reading the
// status never takes it for a verdict.
func Usagef(format string, args ...any) error {
	return Error{Code: 2, Err: fmt.Errorf(format, args...)}
}

// BadInput is err, from reading input, as a usage error.
func BadInput(err error) error { return Error{Code: 2, Err: err} }

// Failf ends fusematrix with status code and the message.
func Failf(code int, format string, args ...any) error {
	return Error{Code: code, Err: fmt.Errorf(format, args...)}
}

// Exit prints err once, as "fusematrix NAME: …", and returns the status
// fusematrix ends with: an Error's own, a Status (its meaning was printed
// already), 1 for any other error.
func Exit(w io.Writer, name string, err error) int {
	var status Status
	var e Error
	switch {
	case err == nil:
		return 0
	case errors.As(err, &status):
		return int(status)
	case errors.As(err, &e):
		fmt.Fprintf(w, "fusematrix %s: %v\n%s", name, e.Err, e.More)
		return e.Code
	}
	fmt.Fprintf(w, "fusematrix %s: %v\n", name, err)
	return 1
}
