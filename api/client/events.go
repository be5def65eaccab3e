package client

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"

	"github.com/ironcast/ironcast/model"
)

// maxEventSize bounds one server-sent event (an object is at most 16 MiB).
const maxEventSize = 32 << 20

// Events subscribes to the server's event stream (Server-Sent Events at
// /api/v1/events), optionally only for one kind ("" for all). The channel
// is closed when ctx ends or the server closes the stream; events that do
// not decode are skipped. The connection is open when Events returns.
func (c *Client) Events(ctx context.Context, kind string) (<-chan model.Event, error) {
	var q url.Values
	if kind != "" {
		q = url.Values{"kind": {kind}}
	}
	resp, cancel, err := c.do(ctx, request{
		method: http.MethodGet, path: "/events", query: q, stream: true,
		header: http.Header{"Accept": {"text/event-stream"}},
	})
	if err != nil {
		return nil, err
	}
	out := make(chan model.Event, 16)
	go func() {
		defer close(out)
		defer cancel()
		defer resp.Body.Close()
		_ = ReadSSE(resp.Body, func(_, data string) error {
			var ev model.Event
			if json.Unmarshal([]byte(data), &ev) != nil {
				return nil
			}
			select {
			case out <- ev:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		})
	}()
	return out, nil
}

// ReadSSE parses a text/event-stream (the WHATWG HTML "server-sent events"
// format) from r and calls fn for every event that carries data, with the
// event's type ("message" when none is given) and its data lines joined by
// "\n". Comment lines (":") and unknown fields are ignored. It returns nil
// at the end of r, or the first error of fn or r.
func ReadSSE(r io.Reader, fn func(event, data string) error) error {
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 64<<10), maxEventSize)
	var event string
	var data strings.Builder
	hasData := false
	for sc.Scan() {
		line := strings.TrimSuffix(sc.Text(), "\r")
		if line == "" {
			if hasData {
				typ := event
				if typ == "" {
					typ = "message"
				}
				if err := fn(typ, data.String()); err != nil {
					return err
				}
			}
			event, hasData = "", false
			data.Reset()
			continue
		}
		if strings.HasPrefix(line, ":") {
			continue
		}
		field, value, _ := strings.Cut(line, ":")
		value = strings.TrimPrefix(value, " ")
		switch field {
		case "event":
			event = value
		case "data":
			if hasData {
				data.WriteByte('\n')
			}
			data.WriteString(value)
			hasData = true
		}
	}
	return sc.Err()
}
