// Package events is an in-process publish/subscribe bus for model.Event.
// Servers publish what they do; the API's event stream and the machine
// timelines subscribe. Delivery is best effort: a subscriber that falls
// behind loses events (and is told so by Dropped) rather than slowing the
// publisher, because a DHCP server must never wait for an HTTP client.
package events

import (
	"sync"
	"sync/atomic"
	"time"

	"github.com/ironcast/ironcast/model"
)

// Bus fans events out to subscribers. The zero value is ready to use and
// safe for concurrent use.
type Bus struct {
	mu   sync.RWMutex
	subs map[*Subscription]struct{}
}

// Subscription receives events on C until Close.
type Subscription struct {
	C       <-chan model.Event
	c       chan model.Event
	bus     *Bus
	filter  func(model.Event) bool
	dropped atomic.Int64
	once    sync.Once
}

// Subscribe returns a subscription with a buffer of size events. filter,
// if not nil, selects the events delivered.
func (b *Bus) Subscribe(size int, filter func(model.Event) bool) *Subscription {
	if size <= 0 {
		size = 256
	}
	c := make(chan model.Event, size)
	s := &Subscription{C: c, c: c, bus: b, filter: filter}
	b.mu.Lock()
	if b.subs == nil {
		b.subs = map[*Subscription]struct{}{}
	}
	b.subs[s] = struct{}{}
	b.mu.Unlock()
	return s
}

// Close ends the subscription and closes C. It is safe to call twice.
func (s *Subscription) Close() {
	s.once.Do(func() {
		s.bus.mu.Lock()
		delete(s.bus.subs, s)
		s.bus.mu.Unlock()
		close(s.c)
	})
}

// Dropped returns how many events were lost because C was full.
func (s *Subscription) Dropped() int64 { return s.dropped.Load() }

// Publish delivers ev to every subscriber without blocking. A zero Time is
// set to now.
func (b *Bus) Publish(ev model.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now().UTC()
	}
	b.mu.RLock()
	defer b.mu.RUnlock()
	for s := range b.subs {
		if s.filter != nil && !s.filter(ev) {
			continue
		}
		select {
		case s.c <- ev:
		default:
			s.dropped.Add(1)
		}
	}
}
