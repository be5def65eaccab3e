package client

import (
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

type sseEvent struct{ Event, Data string }

func TestReadSSE(t *testing.T) {
	tests := []struct {
		name string
		in   string
		want []sseEvent
	}{
		{name: "one event", in: "event: created\ndata: {\"a\":1}\n\n", want: []sseEvent{{"created", `{"a":1}`}}},
		{name: "comments and keepalives skipped", in: ": keepalive\n\n: hi\nevent: x\ndata: 1\n\n", want: []sseEvent{{"x", "1"}}},
		{name: "multi-line data joined", in: "data: a\ndata: b\n\n", want: []sseEvent{{"message", "a\nb"}}},
		{name: "CRLF lines", in: "event: e\r\ndata: d\r\n\r\n", want: []sseEvent{{"e", "d"}}},
		{name: "no space after colon", in: "event:e\ndata:d\n\n", want: []sseEvent{{"e", "d"}}},
		{name: "unterminated event dropped", in: "event: e\ndata: d\n", want: nil},
		{name: "event without data dropped", in: "event: e\n\nevent: f\ndata: 2\n\n", want: []sseEvent{{"f", "2"}}},
		{name: "unknown fields ignored", in: "id: 7\nretry: 10\ndata: z\n\n", want: []sseEvent{{"message", "z"}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []sseEvent
			err := ReadSSE(strings.NewReader(tt.in), func(e, d string) error {
				got = append(got, sseEvent{e, d})
				return nil
			})
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("events (-got +want):\n%s", diff)
			}
		})
	}
}

func TestReadSSEStopsOnCallbackError(t *testing.T) {
	stop := errors.New("stop")
	n := 0
	err := ReadSSE(strings.NewReader("data: 1\n\ndata: 2\n\n"), func(string, string) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("ReadSSE = %v after %d events, want stop after 1", err, n)
	}
}

func FuzzReadSSE(f *testing.F) {
	for _, s := range []string{"event: created\ndata: {}\n\n", ": c\n\n", "data: a\ndata: b\n\n", "event:e\r\ndata:d\r\n\r\n", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		_ = ReadSSE(strings.NewReader(in), func(e, d string) error {
			if strings.Contains(e, "\n") {
				t.Fatalf("event type %q holds a newline", e)
			}
			return nil
		})
	})
}

func TestAPIErrorIsOneLine(t *testing.T) {
	tests := []struct {
		name string
		err  *APIError
		want string
	}{
		{name: "field", err: &APIError{StatusCode: 422, Field: "HardwareAddrs[0]", Message: "\"x\" is not a MAC address"}, want: `HardwareAddrs[0]: "x" is not a MAC address (422 Unprocessable Entity)`},
		{name: "message already names field", err: &APIError{StatusCode: 400, Field: "Foo", Message: "Foo: unknown field"}, want: "Foo: unknown field (400 Bad Request)"},
		{name: "several fields", err: &APIError{StatusCode: 422, Message: "2 invalid fields", Errors: []FieldError{{Field: "A", Message: "bad"}, {Field: "B", Message: "worse"}}}, want: "A: bad; B: worse (422 Unprocessable Entity)"},
		{name: "newline flattened", err: &APIError{StatusCode: 500, Message: "a\nb"}, want: "a b (500 Internal Server Error)"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if diff := cmp.Diff(tt.err.Error(), tt.want); diff != "" {
				t.Errorf("Error() (-got +want):\n%s", diff)
			}
		})
	}
}

func TestNewRejectsBadEndpoints(t *testing.T) {
	for _, ep := range []string{"", "localhost:8092", "ftp://x", "https://"} {
		if _, err := New(ep); err == nil {
			t.Errorf("New(%q) = nil error", ep)
		}
	}
	if _, err := New("https://x", WithCACert([]byte("not pem"))); err == nil {
		t.Error("WithCACert(garbage) = nil error")
	}
}
