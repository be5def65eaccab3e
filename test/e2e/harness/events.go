package harness

import (
	"encoding/json"
	"io"
	"strings"
	"sync"
	"time"

	"github.com/ironcast/ironcast/model"
)

// recorder keeps every event of the server's stream, in arrival order, and
// wakes waiters when one arrives. Addresses are mapped to MACs from DHCP
// acks so that TFTP and HTTP file events (which name a client address)
// can be filed under a machine. It is safe for concurrent use.
type recorder struct {
	mu      sync.Mutex
	events  []model.Event
	macOf   map[string]string // IPv4 address → MAC, from dhcp.ack
	changed chan struct{}     // closed and replaced on every event
	out     io.Writer         // events.jsonl artifact, may be nil
}

func newRecorder(out io.Writer) *recorder {
	return &recorder{macOf: map[string]string{}, changed: make(chan struct{}), out: out}
}

func (r *recorder) add(ev model.Event) {
	if ev.Time.IsZero() {
		ev.Time = time.Now()
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if ev.Type == "dhcp.ack" {
		if mac, addr := attr(ev, "mac"), attr(ev, "addr"); mac != "" && addr != "" {
			r.macOf[addr] = strings.ToLower(mac)
		}
	}
	r.events = append(r.events, ev)
	if r.out != nil {
		if b, err := json.Marshal(ev); err == nil {
			_, _ = r.out.Write(append(b, '\n'))
		}
	}
	close(r.changed)
	r.changed = make(chan struct{})
}

// snapshot returns the events so far and a channel closed on the next one.
func (r *recorder) snapshot() ([]model.Event, <-chan struct{}) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.events[:len(r.events):len(r.events)], r.changed
}

// mac returns the MAC an event concerns, or "".
func (r *recorder) mac(ev model.Event) string {
	if m := attr(ev, "mac"); m != "" {
		return strings.ToLower(m)
	}
	client := attr(ev, "client")
	if client == "" {
		return ""
	}
	host := client
	if h, _, ok := strings.Cut(client, ":"); ok && strings.Count(client, ":") == 1 {
		host = h
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.macOf[host]
}

// attr returns a string attribute of ev, or "".
func attr(ev model.Event, key string) string {
	s, _ := ev.Attrs[key].(string)
	return s
}
