package cli

import (
	"errors"
	"fmt"
)

// Exit codes of the ironcast command.
const (
	exitOK    = 0
	exitError = 1
	exitUsage = 2
)

// usageError is a mistake in how the command was called: a wrong flag, a
// missing argument, an unknown command. It exits with exitUsage.
type usageError struct{ err error }

func (e *usageError) Error() string { return e.err.Error() }
func (e *usageError) Unwrap() error { return e.err }

func usageErrorf(format string, args ...any) error {
	return &usageError{err: fmt.Errorf(format, args...)}
}

// errSilent ends the command with exitError and prints nothing, as
// `exists` does for a missing object.
var errSilent = errors.New("silent failure")

// exitCode maps the error a command returned to the process exit code.
func exitCode(err error) int {
	var ue *usageError
	switch {
	case err == nil:
		return exitOK
	case errors.As(err, &ue):
		return exitUsage
	}
	return exitError
}
