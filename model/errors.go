package model

import (
	"errors"
	"fmt"
	"strings"
)

// Sentinel errors shared by every layer. Store backends translate their own
// errors into these; the API maps them to HTTP status codes in one place.
var (
	// ErrNotFound means the object does not exist.
	ErrNotFound = errors.New("not found")
	// ErrExists means a create found an object with the same key.
	ErrExists = errors.New("already exists")
	// ErrConflict means a compare-and-swap precondition failed (the object
	// changed since it was read) or a unique index is held by another object.
	ErrConflict = errors.New("conflict")
	// ErrReadOnly means the object is built in or locked and cannot be changed.
	ErrReadOnly = errors.New("read-only")
)

// ValidationError reports one invalid field. Field is the JSON path of the
// field ("HardwareAddrs[1]", "Params.ntp-servers"); it is empty when the
// problem is with the object as a whole.
type ValidationError struct {
	Field   string
	Message string
}

func (e *ValidationError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// Invalid returns a *ValidationError for field with a formatted message.
func Invalid(field, format string, args ...any) *ValidationError {
	return &ValidationError{Field: field, Message: fmt.Sprintf(format, args...)}
}

// ValidationErrors collects the *ValidationError values in err, which may be
// a single error or one built with errors.Join. It returns nil when err holds
// none.
func ValidationErrors(err error) []*ValidationError {
	var out []*ValidationError
	var walk func(error)
	walk = func(e error) {
		if e == nil {
			return
		}
		if j, ok := e.(interface{ Unwrap() []error }); ok {
			for _, c := range j.Unwrap() {
				walk(c)
			}
			return
		}
		var ve *ValidationError
		if errors.As(e, &ve) {
			out = append(out, ve)
		}
	}
	walk(err)
	return out
}

// ConflictError is an ErrConflict that says what it conflicted with, for
// example the machine that already owns a MAC address.
type ConflictError struct {
	Field   string
	Message string
}

func (e *ConflictError) Error() string {
	if e.Field == "" {
		return e.Message
	}
	return e.Field + ": " + e.Message
}

// Is reports that a *ConflictError is an ErrConflict.
func (e *ConflictError) Is(target error) bool { return target == ErrConflict }

// TransitionError is returned when a lifecycle event is not allowed in the
// machine's current state. It is an ErrConflict.
type TransitionError struct {
	State MachineState
	Event string
}

func (e *TransitionError) Error() string {
	return fmt.Sprintf("%s is not allowed in state %s", e.Event, e.State)
}

// Is reports that a *TransitionError is an ErrConflict.
func (e *TransitionError) Is(target error) bool { return target == ErrConflict }

// joinField prefixes a nested field path.
func joinField(parts ...string) string {
	var b strings.Builder
	for _, p := range parts {
		if p == "" {
			continue
		}
		if b.Len() > 0 && !strings.HasPrefix(p, "[") {
			b.WriteByte('.')
		}
		b.WriteString(p)
	}
	return b.String()
}
