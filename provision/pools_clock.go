package provision

import (
	"time"

	"github.com/ironcast/ironcast/model"
)

// Clock is the service's time source: it stamps state changes and
// allocations and drives the reclaim loop. Tests inject a fake one so that
// expiry and failure timeouts are exercised without sleeping.
type Clock interface {
	// Now returns the current time.
	Now() time.Time
	// Tick returns a channel that delivers a time every d, and a function
	// that stops it. The channel is never closed.
	Tick(d time.Duration) (<-chan time.Time, func())
}

// systemClock is the real clock.
type systemClock struct{}

func (systemClock) Now() time.Time { return time.Now() }

func (systemClock) Tick(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// stampStateChange keeps m.StateChangedAt server-owned: a new machine, or
// one whose state differs from the stored one, gets now; otherwise the
// stored value is kept whatever the writer sent.
func stampStateChange(m *model.Machine, old model.Object, now time.Time) {
	if om, ok := old.(*model.Machine); ok && om.State == m.State {
		m.StateChangedAt = om.StateChangedAt
		return
	}
	m.StateChangedAt = now.UTC()
}
