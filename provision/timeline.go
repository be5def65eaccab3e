package provision

import (
	"context"
	"errors"
	"net/netip"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
)

// TimelineEntry is one thing that happened to a machine: a DHCP offer or
// ack, a file served over TFTP or HTTP, a template rendered, a lifecycle
// transition or callback.
type TimelineEntry struct {
	Time  time.Time
	Type  string
	Attrs map[string]any `json:",omitempty"`
}

// Timelines keeps a bounded, in-memory timeline per machine, fed from the
// event bus. Entries are filed under the machine's UUID when the event
// names it, else under the MAC it concerns, so a machine's timeline
// includes what happened before it registered. It is safe for concurrent
// use.
type Timelines struct {
	svc     *Service
	perKey  int
	maxKeys int

	mu    sync.Mutex
	byKey map[string]*timeline
	order []string // keys by first use, for eviction
}

// entry is a TimelineEntry as kept: its attributes as JSON (see
// encodeAttrs).
type entry struct {
	at    time.Time
	typ   string
	attrs []byte
}

func (e entry) public() TimelineEntry {
	return TimelineEntry{Time: e.at, Type: e.typ, Attrs: decodeAttrs(e.attrs)}
}

// timeline is one key's entries: appended until it holds perKey, then
// used as a ring, so that a busy machine's timeline costs no allocation
// per entry once full.
type timeline struct {
	ents []entry
	next int // once full: the index of the oldest entry
}

func (t *timeline) add(e entry, max int) {
	if len(t.ents) < max {
		t.ents = append(t.ents, e)
		return
	}
	t.ents[t.next] = e
	t.next = (t.next + 1) % max
}

// appendTo appends the entries to out, oldest first.
func (t *timeline) appendTo(out []entry) []entry {
	return append(append(out, t.ents[t.next:]...), t.ents[:t.next]...)
}

// Timeline sizes: entries kept per machine (or MAC), and machines kept.
const (
	TimelineEntries  = 200
	TimelineMachines = 20000
)

func newTimelines(s *Service, perKey, maxKeys int) *Timelines {
	return &Timelines{svc: s, perKey: perKey, maxKeys: maxKeys, byKey: map[string]*timeline{}}
}

// Timelines returns the service's machine timelines; feed them with Run.
func (s *Service) Timelines() *Timelines { return s.timelines }

// Timeline returns a machine's timeline, oldest first.
func (s *Service) Timeline(ctx context.Context, uuid string) ([]TimelineEntry, error) {
	return s.timelines.Get(ctx, uuid)
}

// timelineTypes are the event types that go into timelines.
func timelineType(t string) bool {
	return t == "transition" || t == "render" || t == "render.failed" || t == "callback" ||
		strings.HasPrefix(t, "dhcp.") || strings.HasPrefix(t, "tftp.") || strings.HasPrefix(t, "http.")
}

// Record files an event under the machine or MAC it concerns. Events
// that concern no machine are ignored.
func (tl *Timelines) Record(ctx context.Context, ev model.Event) {
	if !timelineType(ev.Type) {
		return
	}
	key := tl.key(ctx, ev)
	if key == "" {
		return
	}
	e := entry{at: ev.Time, typ: ev.Type, attrs: encodeAttrs(ev.Attrs)}
	if e.at.IsZero() {
		e.at = time.Now().UTC()
	}
	tl.mu.Lock()
	defer tl.mu.Unlock()
	t := tl.byKey[key]
	if t == nil {
		t = &timeline{}
		tl.byKey[key] = t
		tl.order = append(tl.order, key)
		if len(tl.order) > tl.maxKeys {
			delete(tl.byKey, tl.order[0])
			tl.order = tl.order[1:]
		}
	}
	t.add(e, tl.perKey)
}

// key names the timeline an event goes to: the machine the event is
// about, else the MAC it names, else the MAC or machine its boot path
// names, else the machine or lease behind its client address; "" for
// none.
func (tl *Timelines) key(ctx context.Context, ev model.Event) string {
	if ev.Kind == model.KindMachines && ev.Key != "" {
		return ev.Key
	}
	if mac, _ := ev.Attrs["mac"].(string); mac != "" {
		return strings.ToLower(mac)
	}
	if p, _ := ev.Attrs["path"].(string); p != "" {
		if k := pathKey(p); k != "" {
			return k
		}
	}
	if client, _ := ev.Attrs["client"].(string); client != "" {
		if ap, err := netip.ParseAddrPort(client); err == nil {
			return tl.svc.macForAddr(ctx, ap.Addr())
		}
		if a, err := netip.ParseAddr(client); err == nil {
			return tl.svc.macForAddr(ctx, a)
		}
	}
	return ""
}

// Get returns a machine's timeline, oldest first: entries filed under its
// UUID and under each of its MACs.
func (tl *Timelines) Get(ctx context.Context, uuid string) ([]TimelineEntry, error) {
	m, err := store.Get[model.Machine](ctx, tl.svc.st, uuid)
	if err != nil {
		return nil, err
	}
	tl.mu.Lock()
	var ents []entry
	for _, k := range append([]string{m.UUID}, m.HardwareAddrs...) {
		if t := tl.byKey[k]; t != nil {
			ents = t.appendTo(ents)
		}
	}
	tl.mu.Unlock()
	sort.SliceStable(ents, func(i, j int) bool { return ents[i].at.Before(ents[j].at) })
	if len(ents) > tl.perKey {
		ents = ents[len(ents)-tl.perKey:]
	}
	out := make([]TimelineEntry, len(ents))
	for i, e := range ents {
		out[i] = e.public()
	}
	return out, nil
}

// Run records events from sub until ctx ends or sub closes.
func (tl *Timelines) Run(ctx context.Context, events <-chan model.Event) {
	for {
		select {
		case <-ctx.Done():
			return
		case ev, ok := <-events:
			if !ok {
				return
			}
			tl.Record(ctx, ev)
		}
	}
}

// pathKey returns the MAC or machine UUID a boot path names
// (<mac>.ipxe, pxelinux.cfg/01-<mac>, grub/grub.cfg-01-<mac>,
// machines/<uuid>/...), or "".
func pathKey(p string) string {
	p = strings.TrimPrefix(p, "/")
	var name string
	switch {
	case strings.HasSuffix(p, ".ipxe") && !strings.Contains(p, "/"):
		name = strings.TrimSuffix(p, ".ipxe")
	case strings.HasPrefix(p, "pxelinux.cfg/01-"):
		name = strings.TrimPrefix(p, "pxelinux.cfg/01-")
	case strings.HasPrefix(p, "grub/grub.cfg-"):
		name = strings.TrimPrefix(strings.TrimPrefix(p, "grub/grub.cfg-"), "01-")
	case strings.HasPrefix(p, "machines/"):
		uuid, _, _ := strings.Cut(strings.TrimPrefix(p, "machines/"), "/")
		if model.ValidUUID(uuid) {
			return uuid
		}
		return ""
	default:
		return ""
	}
	mac, err := parseMAC(name)
	if err != nil {
		return ""
	}
	return mac
}

// macForAddr finds the MAC behind an IPv4 address: the machine at that
// address, else the lease. "" when unknown.
func (s *Service) macForAddr(ctx context.Context, a netip.Addr) string {
	a = a.Unmap()
	if !a.Is4() {
		return ""
	}
	if m, err := store.LookupBy[model.Machine](ctx, s.st, "ip", a.String()); err == nil {
		return m.PrimaryMAC()
	}
	l, err := store.Get[model.Lease](ctx, s.st, a.String())
	if err != nil {
		if !errors.Is(err, model.ErrNotFound) {
			s.log.Debug("lease lookup for timeline", "addr", a, "err", err)
		}
		return ""
	}
	return l.Token
}
