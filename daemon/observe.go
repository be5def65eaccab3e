package daemon

import (
	"errors"
	"io/fs"
	"time"

	"github.com/ironcast/ironcast/events"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/tftp"
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
		switch {
		case errors.Is(err, tftp.ErrUnacknowledged):
			attrs["warning"] = err.Error()
		case err != nil:
			attrs["error"] = err.Error()
		}
		if mac := req.Query["mac"]; mac != "" {
			attrs["mac"] = mac
		}
		bus.Publish(model.Event{Type: fileEventType(req.Protocol), Attrs: attrs})
	}
}

// fileEventType is "tftp.file" or "http.file", as constants: machine
// timelines keep the type of every entry, and a string built per request
// would stay alive with each.
func fileEventType(protocol string) string {
	switch protocol {
	case "tftp":
		return "tftp.file"
	case "http":
		return "http.file"
	}
	return protocol + ".file"
}

// tftpStatus gives a TFTP transfer's outcome the HTTP status its event
// carries, so that TFTP and HTTP rows of a timeline read alike: 200 done
// (also when only the last block's ACK went missing: the event then
// carries a warning instead of an error),
// 404 no such file, 403 path refused, 503 over the transfer cap, 408 the
// client stopped answering, 499 the client aborted (firmware that asks
// for tsize and then stops is one) or went away, 500 anything else (a
// failed render, a read error).
func tftpStatus(err error) int {
	switch {
	case err == nil, errors.Is(err, tftp.ErrUnacknowledged):
		return 200
	case errors.Is(err, fs.ErrNotExist):
		return 404
	case errors.Is(err, fs.ErrPermission):
		return 403
	case errors.Is(err, tftp.ErrBusy):
		return 503
	case errors.Is(err, tftp.ErrTimeout):
		return 408
	case errors.Is(err, tftp.ErrAborted):
		return 499
	}
	return 500
}
