package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"

	jsonpatch "github.com/evanphx/json-patch/v5"

	"github.com/ironcast/ironcast/auth"
	"github.com/ironcast/ironcast/model"
)

// ErrorResponse is the body of every error answer.
type ErrorResponse struct {
	// Message says what is wrong, in one line.
	Message string
	// Field names the offending field, when there is one.
	Field string `json:",omitempty"`
	// Errors lists every invalid field of a 422 answer.
	Errors []FieldError `json:",omitempty"`
}

// FieldError is one invalid field.
type FieldError struct {
	Field   string `json:",omitempty"`
	Message string
}

// requestError is a problem with the request itself (400, 413, 415): its
// message is safe to show.
type requestError struct {
	status  int
	field   string
	message string
}

func (e *requestError) Error() string { return e.message }

func badRequest(field, format string, args ...any) error {
	return &requestError{status: http.StatusBadRequest, field: field, message: fmt.Sprintf(format, args...)}
}

// statusOf maps an error to its HTTP status and the body to send.
func statusOf(err error) (int, ErrorResponse) {
	var (
		re  *requestError
		mbe *http.MaxBytesError
		te  *model.TransitionError
		ce  *model.ConflictError
	)
	switch {
	case errors.As(err, &mbe):
		return http.StatusRequestEntityTooLarge, ErrorResponse{Message: fmt.Sprintf("request body is larger than %d bytes", mbe.Limit)}
	case errors.As(err, &re):
		return re.status, ErrorResponse{Message: re.message, Field: re.field}
	case errors.Is(err, auth.ErrUnauthenticated):
		return http.StatusUnauthorized, ErrorResponse{Message: err.Error()}
	case errors.Is(err, auth.ErrForbidden):
		return http.StatusForbidden, ErrorResponse{Message: err.Error()}
	}
	if ves := model.ValidationErrors(err); len(ves) > 0 {
		resp := ErrorResponse{Field: ves[0].Field, Message: ves[0].Error()}
		if len(ves) > 1 {
			resp.Message = fmt.Sprintf("%d invalid fields: %s", len(ves), ves[0].Error())
		}
		for _, ve := range ves {
			resp.Errors = append(resp.Errors, FieldError{Field: ve.Field, Message: ve.Message})
		}
		return http.StatusUnprocessableEntity, resp
	}
	switch {
	case errors.As(err, &te):
		return http.StatusConflict, ErrorResponse{Message: te.Error(), Field: "State"}
	case errors.As(err, &ce):
		return http.StatusConflict, ErrorResponse{Message: ce.Error(), Field: ce.Field}
	case errors.Is(err, model.ErrNotFound):
		return http.StatusNotFound, ErrorResponse{Message: err.Error()}
	case errors.Is(err, model.ErrExists), errors.Is(err, model.ErrConflict), errors.Is(err, model.ErrReadOnly):
		return http.StatusConflict, ErrorResponse{Message: err.Error()}
	case errors.Is(err, jsonpatch.ErrTestFailed):
		return http.StatusConflict, ErrorResponse{Message: "patch: a test operation failed"}
	}
	return http.StatusInternalServerError, ErrorResponse{Message: "internal server error"}
}

// writeError is the one place errors become HTTP answers. Server errors
// are logged with the request's route; their detail is not sent.
func (s *Server) writeError(w http.ResponseWriter, r *http.Request, err error) {
	code, body := statusOf(err)
	if code >= 500 {
		s.log.Error("request failed", "method", r.Method, "route", routePattern(r), "err", err)
	}
	body.Message = oneLine(body.Message)
	writeJSON(w, code, body)
}

func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// writeJSON writes v with status code.
func writeJSON(w http.ResponseWriter, code int, v any) {
	b, err := json.Marshal(v)
	if err != nil {
		code = http.StatusInternalServerError
		b = []byte(`{"Message":"internal server error"}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(code)
	_, _ = w.Write(append(b, '\n'))
}

// decodeStrict decodes exactly one JSON value from r into v, refusing
// unknown fields and trailing data, with errors that name the problem.
func decodeStrict(r io.Reader, v any) error {
	dec := json.NewDecoder(r)
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return jsonError(err)
	}
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return err
		}
		return badRequest("", "invalid JSON: data after the top-level value")
	}
	return nil
}

// jsonError turns an encoding/json error into a 400 naming the problem.
func jsonError(err error) error {
	var (
		se  *json.SyntaxError
		ute *json.UnmarshalTypeError
		mbe *http.MaxBytesError
	)
	switch {
	case errors.As(err, &mbe):
		return err
	case errors.Is(err, io.EOF):
		return badRequest("", "invalid JSON: the body is empty")
	case errors.Is(err, io.ErrUnexpectedEOF):
		return badRequest("", "invalid JSON: unexpected end of the body")
	case errors.As(err, &se):
		return badRequest("", "invalid JSON at byte %d: %s", se.Offset, strings.TrimPrefix(se.Error(), "json: "))
	case errors.As(err, &ute):
		field := ute.Field
		if field == "" {
			return badRequest("", "invalid JSON: %s cannot be %s", ute.Type, ute.Value)
		}
		return badRequest(field, "%s: must be %s, not %s", field, jsonType(ute.Type.String()), ute.Value)
	}
	if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
		f = strings.Trim(f, `"`)
		return badRequest(f, "%s: unknown field", f)
	}
	return badRequest("", "invalid JSON: %s", strings.TrimPrefix(err.Error(), "json: "))
}

// jsonType names a Go type the way a JSON author thinks of it.
func jsonType(goType string) string {
	switch {
	case goType == "string" || strings.HasSuffix(goType, "Role") || strings.HasSuffix(goType, "State") || strings.HasSuffix(goType, "Firmware"):
		return "a string"
	case strings.HasPrefix(goType, "int") || strings.HasPrefix(goType, "uint") || strings.HasPrefix(goType, "float"):
		return "a number"
	case goType == "bool":
		return "true or false"
	case strings.HasPrefix(goType, "[]"):
		return "an array"
	case strings.HasPrefix(goType, "map["):
		return "an object"
	case goType == "time.Time":
		return "an RFC 3339 time"
	}
	return "an object"
}
