package bolt

import (
	"bytes"
	"context"
	"log/slog"
	"sync"

	"github.com/ironcast/ironcast/store"
)

// Watch implements store.Store. Events delivered after the watcher is
// registered (a write committing while Watch runs may or may not be among
// them) arrive in revision order on a channel buffered to Options.WatchBuffer.
// The channel is closed when ctx ends, when the store is closed, or when
// the watcher's buffer is full as an event arrives (it fell behind). Each
// watcher gets its own copy of Event.Value.
func (s *Store) Watch(ctx context.Context, kind string) (<-chan store.Event, error) {
	if kind != "" {
		if err := checkKind(kind); err != nil {
			return nil, err
		}
	}
	if err := s.check(ctx); err != nil {
		return nil, err
	}
	w, err := s.hub.add(kind)
	if err != nil {
		return nil, err
	}
	go func() {
		select {
		case <-ctx.Done():
			s.hub.remove(w, "context done")
		case <-w.done:
		}
	}()
	return w.c, nil
}

// hub fans committed events out to watchers in revision order.
//
// bbolt runs a transaction's commit handlers after it has released the
// writer lock, so the handlers of two transactions can race. Committed
// revisions have no gaps (the counter lives in the file and rolls back
// with its transaction), so the hub holds events that arrive early until
// every revision before them has been delivered.
type hub struct {
	mu       sync.Mutex
	next     int64 // the revision to deliver next
	pending  map[int64]store.Event
	watchers map[*watcher]struct{}
	buffer   int
	closed   bool
	log      *slog.Logger
}

type watcher struct {
	kind string
	c    chan store.Event
	done chan struct{} // closed with c
}

func newHub(rev int64, buffer int, log *slog.Logger) *hub {
	return &hub{
		next:     rev + 1,
		pending:  map[int64]store.Event{},
		watchers: map[*watcher]struct{}{},
		buffer:   buffer,
		log:      log,
	}
}

func (h *hub) add(kind string) (*watcher, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return nil, ErrClosed
	}
	w := &watcher{kind: kind, c: make(chan store.Event, h.buffer), done: make(chan struct{})}
	h.watchers[w] = struct{}{}
	return w, nil
}

// remove closes w once; h.mu must not be held.
func (h *hub) remove(w *watcher, why string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.removeLocked(w, why)
}

func (h *hub) removeLocked(w *watcher, why string) {
	if _, ok := h.watchers[w]; !ok {
		return
	}
	delete(h.watchers, w)
	close(w.c)
	close(w.done)
	h.log.Debug("watcher closed", "kind", w.kind, "reason", why)
}

// publish hands over one committed event.
func (h *hub) publish(ev store.Event) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.closed {
		return
	}
	h.pending[ev.Revision] = ev
	for {
		ev, ok := h.pending[h.next]
		if !ok {
			return
		}
		delete(h.pending, h.next)
		h.next++
		h.deliverLocked(ev)
	}
}

func (h *hub) deliverLocked(ev store.Event) {
	for w := range h.watchers {
		if w.kind != "" && w.kind != ev.Kind {
			continue
		}
		e := ev
		e.Value = bytes.Clone(ev.Value)
		select {
		case w.c <- e:
		default:
			h.log.Warn("watcher fell behind, closing it", "kind", w.kind, "buffer", h.buffer, "revision", ev.Revision)
			h.removeLocked(w, "fell behind")
		}
	}
}

func (h *hub) closeAll() {
	h.mu.Lock()
	defer h.mu.Unlock()
	for w := range h.watchers {
		h.removeLocked(w, "store closed")
	}
	h.closed = true
	h.pending = nil
}
