package daemon

import (
	"time"

	"github.com/ironcast/ironcast/events"
	"github.com/ironcast/ironcast/model"
)

// fileObserver turns each TFTP transfer and HTTP boot request into a
// "tftp.file" or "http.file" event for the event stream and the machine
// timelines (path, bytes, duration, status, client, error).
func fileObserver(bus *events.Bus) func(req model.FileRequest, status int, n int64, d time.Duration, err error) {
	return func(req model.FileRequest, status int, n int64, d time.Duration, err error) {
		attrs := map[string]any{
			"path": req.Path, "bytes": n, "duration_ms": float64(d.Microseconds()) / 1000,
			"status": status, "client": req.Remote.String(),
		}
		if err != nil {
			attrs["error"] = err.Error()
		}
		if mac := req.Query["mac"]; mac != "" {
			attrs["mac"] = mac
		}
		bus.Publish(model.Event{Type: req.Protocol + ".file", Attrs: attrs})
	}
}
