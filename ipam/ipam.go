package ipam

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/bits"
	"net/netip"
	"slices"
	"sync"
	"time"

	"github.com/ironcast/ironcast/dhcp"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
)

// Config configures an Allocator.
type Config struct {
	// Store holds subnets, reservations and leases; required.
	Store store.Store
	// Logger receives logs; nil discards them.
	Logger *slog.Logger
	// OfferHold is how long an offered address is kept for the client
	// (default 30 s).
	OfferHold time.Duration
	// DeclineHold is how long a declined address is set aside (default
	// 10 min).
	DeclineHold time.Duration
	// CommitInterval is the shortest time between the starts of two
	// rounds of the group-commit writer (default 10 ms). A commit (two
	// fsyncs with store/bolt) costs about the same CPU for one lease as
	// for a hundred, so under load a longer interval puts more leases in
	// each commit, for less CPU per lease and up to one interval more
	// latency per ACK. An ACK's write that arrives after a quiet interval
	// starts a round at once; offers alone wait for one interval, so that
	// their REQUEST shares the commit. Negative means no minimum.
	CommitInterval time.Duration
	// SweepInterval is how often Run marks ended leases expired (default
	// 30 s).
	SweepInterval time.Duration
	// Now returns the time; nil means time.Now (tests set it).
	Now func() time.Time
}

// Allocator implements dhcp.Leases. Create it with New.
type Allocator struct {
	cfg Config
	log *slog.Logger
	st  store.Store

	mu      sync.Mutex
	subnets []*subnetState
	// leases holds every known lease by address, in a subnet or not.
	leases map[netip.Addr]*lease
	// resvByMAC and resvByAddr index the reservations.
	resvByMAC  map[string]*model.Reservation
	resvByAddr map[netip.Addr]*model.Reservation
	// rawSubnets and rawResv are the last loaded objects, for rebuilds.
	rawSubnets []*model.Subnet

	// wmu guards the group-commit writer's queue (see flush).
	wmu      sync.Mutex
	pending  []*commit
	flushing bool
	// lastRound is when the writer's last round started (CommitInterval),
	// firstQueued when the oldest pending write was queued; waited counts
	// the pending commits that someone waits on (not write-behind).
	lastRound, firstQueued time.Time
	waited                 int
	// wake tells a sleeping writer that roundWrites awaited writes are queued.
	wake chan struct{}
	// rounds counts the writer's completed rounds and writes the leases
	// they wrote; guarded by mu.
	rounds, writes uint64
}

var _ dhcp.Leases = (*Allocator)(nil)

// lease is one lease in memory. Fields are guarded by Allocator.mu.
type lease struct {
	addr     netip.Addr
	mac      string
	state    model.LeaseState
	expire   time.Time
	hostname string
	created  time.Time
	// stored is true when the store holds a record for addr.
	stored bool
	sub    *subnetState
	// ver counts the changes queued for the store (Allocator.write).
	ver uint64
	// saved is the state the store holds, for reverting a failed write;
	// nil if never written.
	saved *saved
	// savedAt is the writer round that stored saved (0: loaded by New).
	savedAt uint64
}

// subnetState is one enabled subnet's allocation state.
type subnetState struct {
	s          *model.Subnet
	prefix     netip.Prefix
	start, end uint32 // active range, inclusive; end < start means none
	// used has a bit per address of the range: set when a lease record or
	// a reservation holds it.
	used   []uint64
	cursor uint32
	byMAC  map[string]*lease
	// reclaim are ended leases, oldest end first, consumed when the range
	// has no never-used address left; rebuilt when empty.
	reclaim []*lease
}

// New loads subnets, reservations and leases from cfg.Store.
func New(ctx context.Context, cfg Config) (*Allocator, error) {
	if cfg.Store == nil {
		return nil, errors.New("ipam: Config.Store is nil")
	}
	if cfg.OfferHold <= 0 {
		cfg.OfferHold = 30 * time.Second
	}
	if cfg.DeclineHold <= 0 {
		cfg.DeclineHold = 10 * time.Minute
	}
	if cfg.CommitInterval == 0 {
		cfg.CommitInterval = 10 * time.Millisecond
	}
	if cfg.SweepInterval <= 0 {
		cfg.SweepInterval = 30 * time.Second
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	a := &Allocator{cfg: cfg, st: cfg.Store, log: cfg.Logger, leases: map[netip.Addr]*lease{}, wake: make(chan struct{}, 1)}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	ls, err := store.List[model.Lease](ctx, a.st)
	if err != nil {
		return nil, fmt.Errorf("ipam load: %w", err)
	}
	for _, ml := range ls {
		addr, err := netip.ParseAddr(ml.Addr)
		if err != nil || !addr.Is4() {
			continue
		}
		a.leases[addr] = &lease{addr: addr, mac: ml.Token, state: ml.State, expire: ml.ExpireTime,
			hostname: ml.Hostname, created: ml.CreatedAt, stored: true,
			saved: &saved{mac: ml.Token, state: ml.State, expire: ml.ExpireTime, hostname: ml.Hostname}}
	}
	if err := a.reload(ctx); err != nil {
		return nil, err
	}
	a.log.Info("ipam loaded", "subnets", len(a.subnets), "leases", len(a.leases))
	return a, nil
}

// reload reads subnets and reservations and rebuilds the state.
func (a *Allocator) reload(ctx context.Context) error {
	subs, err := store.List[model.Subnet](ctx, a.st)
	if err != nil {
		return fmt.Errorf("ipam load: %w", err)
	}
	rs, err := store.List[model.Reservation](ctx, a.st)
	if err != nil {
		return fmt.Errorf("ipam load: %w", err)
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	a.resvByMAC = map[string]*model.Reservation{}
	a.resvByAddr = map[netip.Addr]*model.Reservation{}
	for _, r := range rs {
		addr, err := netip.ParseAddr(r.Addr)
		if err != nil {
			continue
		}
		a.resvByMAC[r.Token] = r
		a.resvByAddr[addr] = r
	}
	a.rawSubnets = subs
	a.rebuild()
	return nil
}

// maxRange caps the active range tracked in the bitmap (a /12).
const maxRange = 1 << 20

// rebuild recomputes the per-subnet state from rawSubnets, the
// reservations and the leases. a.mu is held.
func (a *Allocator) rebuild() {
	a.subnets = a.subnets[:0:0]
	for _, s := range a.rawSubnets {
		if !s.Enabled {
			continue
		}
		s.Normalize()
		if err := s.Validate(); err != nil {
			a.log.Warn("subnet ignored", "subnet", s.Name, "err", err)
			continue
		}
		ss := &subnetState{s: s, prefix: s.Prefix(), byMAC: map[string]*lease{}, start: 1, end: 0}
		if st, en := s.Range(); st.IsValid() && en.IsValid() && !s.Proxy {
			ss.start, ss.end = u32(st), u32(en)
			if ss.end-ss.start >= maxRange {
				ss.end = ss.start + maxRange - 1
				a.log.Warn("subnet range truncated", "subnet", s.Name, "end", addrOf(ss.end))
			}
			ss.used = make([]uint64, (ss.end-ss.start)/64+1)
			ss.cursor = ss.start
		}
		a.subnets = append(a.subnets, ss)
	}
	// Narrower networks first, so that the most specific subnet wins.
	slices.SortStableFunc(a.subnets, func(x, y *subnetState) int { return cmp.Compare(y.prefix.Bits(), x.prefix.Bits()) })
	for addr := range a.resvByAddr {
		if ss := a.subnetFor(addr); ss != nil {
			ss.setUsed(addr, true)
		}
	}
	for _, l := range a.leases {
		l.sub = a.subnetFor(l.addr)
		if l.sub == nil {
			continue
		}
		l.sub.setUsed(l.addr, true)
		if l.mac != "" {
			if old := l.sub.byMAC[l.mac]; old == nil || old.expire.Before(l.expire) {
				l.sub.byMAC[l.mac] = l
			}
		}
	}
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addrOf(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func (ss *subnetState) inRange(addr netip.Addr) bool {
	v := u32(addr)
	return ss.end >= ss.start && v >= ss.start && v <= ss.end
}

func (ss *subnetState) setUsed(addr netip.Addr, on bool) {
	if !ss.inRange(addr) {
		return
	}
	i := u32(addr) - ss.start
	if on {
		ss.used[i/64] |= 1 << (i % 64)
	} else {
		ss.used[i/64] &^= 1 << (i % 64)
	}
}

// nextFree returns the next address of the range with no record, from the
// cursor on, wrapping once.
func (ss *subnetState) nextFree() (netip.Addr, bool) {
	if ss.end < ss.start {
		return netip.Addr{}, false
	}
	n := ss.end - ss.start + 1
	off := ss.cursor - ss.start
	if off >= n {
		off = 0
	}
	for scanned := uint32(0); scanned < n+64; {
		w := off / 64
		word := ss.used[w] | (1<<(off%64) - 1) // ignore bits before off
		if word != ^uint64(0) {
			i := w*64 + uint32(bits.TrailingZeros64(^word))
			if i < n {
				ss.cursor = ss.start + i + 1
				return addrOf(ss.start + i), true
			}
		}
		scanned += 64 - off%64
		off = (w + 1) * 64
		if off >= n {
			off = 0
		}
	}
	return netip.Addr{}, false
}

// subnetFor returns the enabled subnet whose network contains addr.
func (a *Allocator) subnetFor(addr netip.Addr) *subnetState {
	for _, ss := range a.subnets {
		if ss.prefix.Contains(addr) {
			return ss
		}
	}
	return nil
}

// selectSubnet picks the subnet for a request: the relay's, else the
// client's address's (a renewal unicast from behind a relay), else the
// arrival interface's.
func (a *Allocator) selectSubnet(req *dhcp.LeaseRequest) *subnetState {
	if req.Relay.IsValid() {
		return a.subnetFor(req.Relay)
	}
	if req.ClientAddr.IsValid() {
		if ss := a.subnetFor(req.ClientAddr); ss != nil {
			return ss
		}
	}
	for _, l := range req.Links {
		if ss := a.subnetFor(l); ss != nil {
			return ss
		}
	}
	return nil
}

// live reports whether l holds its address at now.
func live(l *lease, now time.Time) bool {
	switch l.state {
	case model.LeaseOffered, model.LeaseBound, model.LeaseDeclined:
		return now.Before(l.expire)
	}
	return false
}

// reservationIn returns mac's reservation if its address is in ss.
func (a *Allocator) reservationIn(ss *subnetState, mac string) (*model.Reservation, netip.Addr) {
	r := a.resvByMAC[mac]
	if r == nil {
		return nil, netip.Addr{}
	}
	addr, err := netip.ParseAddr(r.Addr)
	if err != nil || !ss.prefix.Contains(addr) {
		return nil, netip.Addr{}
	}
	return r, addr
}

// availableFor reports whether addr may be given to mac dynamically: in
// the range, not reserved for anyone, and not held by another client.
func (a *Allocator) availableFor(ss *subnetState, addr netip.Addr, mac string, now time.Time) bool {
	if !addr.IsValid() || !ss.inRange(addr) {
		return false
	}
	if r := a.resvByAddr[addr]; r != nil && r.Token != mac {
		return false
	}
	l := a.leases[addr]
	return l == nil || !live(l, now) || (l.mac == mac && l.state != model.LeaseDeclined)
}

// heldBy returns whether another client holds addr.
func (a *Allocator) heldByOther(addr netip.Addr, mac string, now time.Time) bool {
	l := a.leases[addr]
	return l != nil && live(l, now) && (l.mac != mac || l.state == model.LeaseDeclined)
}

// Discover implements dhcp.Leases.
func (a *Allocator) Discover(ctx context.Context, req *dhcp.LeaseRequest) (dhcp.Decision, error) {
	now := a.cfg.Now()
	a.mu.Lock()
	defer a.mu.Unlock()
	ss := a.selectSubnet(req)
	if ss == nil {
		return dhcp.Decision{}, fmt.Errorf("%s via %v: %w", req.MAC, req.Links, dhcp.ErrNoSubnet)
	}
	d := dhcp.Decision{Action: dhcp.ActionOffer, Subnet: ss.s, LeaseTime: time.Duration(ss.s.ActiveLeaseTime) * time.Second}
	if ss.s.Proxy {
		return d, nil
	}
	var addr netip.Addr
	if r, raddr := a.reservationIn(ss, req.MAC); r != nil {
		if a.heldByOther(raddr, req.MAC, now) {
			a.log.Warn("reserved address held by another client", "subnet", ss.s.Name, "mac", req.MAC, "addr", raddr, "holder", a.leases[raddr].mac)
			return dhcp.Decision{}, fmt.Errorf("reserved %s for %s is held by %s: %w", raddr, req.MAC, a.leases[raddr].mac, dhcp.ErrExhausted)
		}
		addr = raddr
		d.Reservation = r
		d.LeaseTime = time.Duration(ss.s.ReservedLeaseTime) * time.Second
	} else if ss.s.OnlyReservations {
		a.log.Debug("no reservation", "subnet", ss.s.Name, "mac", req.MAC)
		return dhcp.Decision{}, fmt.Errorf("%s in %s: %w", req.MAC, ss.s.Name, dhcp.ErrNotReserved)
	} else {
		addr = a.choose(ss, req, now)
		if !addr.IsValid() {
			a.log.Warn("address range exhausted", "subnet", ss.s.Name, "mac", req.MAC, "range", ss.s.ActiveStart+"-"+ss.s.ActiveEnd)
			return dhcp.Decision{}, fmt.Errorf("%s in %s: %w", req.MAC, ss.s.Name, dhcp.ErrExhausted)
		}
	}
	l := a.leases[addr]
	if l == nil {
		l = &lease{addr: addr, sub: ss, created: now}
		a.leases[addr] = l
		ss.setUsed(addr, true)
	}
	// Ping an address new to the client: not one it holds or was just
	// offered (and pinged for), nor its reservation.
	d.Probe = ss.s.PingCheck && d.Reservation == nil && !(l.mac == req.MAC && live(l, now))
	changed := false
	if !(l.mac == req.MAC && l.state == model.LeaseBound && now.Before(l.expire)) {
		l.mac, l.state, l.expire = req.MAC, model.LeaseOffered, now.Add(a.cfg.OfferHold)
		changed = true
	}
	if req.Hostname != "" && req.Hostname != l.hostname {
		l.hostname = req.Hostname
		changed = true
	}
	l.sub = ss
	ss.byMAC[req.MAC] = l
	d.Addr = addr
	if changed {
		// Write-behind: the OFFER does not wait for the store. A REQUEST
		// that follows within the writer's round is written over it, once.
		a.writeBehind(l)
	}
	return d, nil
}

// choose picks a dynamic address: the one the client holds, the one it
// asks for, the one it had, the next never-used one, the longest ended.
func (a *Allocator) choose(ss *subnetState, req *dhcp.LeaseRequest, now time.Time) netip.Addr {
	prev := ss.byMAC[req.MAC]
	if prev != nil && live(prev, now) && prev.mac == req.MAC && a.availableFor(ss, prev.addr, req.MAC, now) {
		return prev.addr
	}
	if a.availableFor(ss, req.Requested, req.MAC, now) {
		return req.Requested
	}
	if prev != nil && prev.mac == req.MAC && a.availableFor(ss, prev.addr, req.MAC, now) {
		return prev.addr
	}
	for {
		addr, ok := ss.nextFree()
		if !ok {
			break
		}
		if a.availableFor(ss, addr, req.MAC, now) {
			return addr
		}
		// A reservation outside the bitmap's knowledge; mark and go on.
		ss.setUsed(addr, true)
	}
	return a.reclaim(ss, req.MAC, now)
}

// reclaim returns the address whose lease ended longest ago.
func (a *Allocator) reclaim(ss *subnetState, mac string, now time.Time) netip.Addr {
	for attempt := 0; attempt < 2; attempt++ {
		for len(ss.reclaim) > 0 {
			l := ss.reclaim[0]
			ss.reclaim = ss.reclaim[1:]
			if a.leases[l.addr] == l && l.sub == ss && a.availableFor(ss, l.addr, mac, now) {
				return l.addr
			}
		}
		if attempt == 1 {
			break
		}
		for _, l := range a.leases {
			if l.sub == ss && !live(l, now) && ss.inRange(l.addr) && a.resvByAddr[l.addr] == nil {
				ss.reclaim = append(ss.reclaim, l)
			}
		}
		slices.SortFunc(ss.reclaim, func(x, y *lease) int { return x.expire.Compare(y.expire) })
	}
	return netip.Addr{}
}

// Request implements dhcp.Leases.
func (a *Allocator) Request(ctx context.Context, req *dhcp.LeaseRequest) (dhcp.Decision, error) {
	now := a.cfg.Now()
	a.mu.Lock()
	ss := a.selectSubnet(req)
	if ss == nil {
		a.mu.Unlock()
		return dhcp.Decision{}, fmt.Errorf("%s via %v: %w", req.MAC, req.Links, dhcp.ErrNoSubnet)
	}
	if ss.s.Proxy {
		a.mu.Unlock()
		return dhcp.Decision{}, fmt.Errorf("proxy subnet %s: %w", ss.s.Name, dhcp.ErrNotOurs)
	}
	if req.OtherServer {
		// The client took another server's offer: free ours at once.
		if l := ss.byMAC[req.MAC]; l != nil && l.state == model.LeaseOffered && l.mac == req.MAC && now.Before(l.expire) {
			l.expire = now
			a.writeBehind(l) // as the offer was
		}
		a.mu.Unlock()
		return dhcp.Decision{}, fmt.Errorf("%s chose server %s: %w", req.MAC, req.ServerID, dhcp.ErrNotOurs)
	}
	nak := func(format string, args ...any) (dhcp.Decision, error) {
		a.mu.Unlock()
		reason := fmt.Sprintf(format, args...)
		a.log.Info("dhcp nak", "subnet", ss.s.Name, "mac", req.MAC, "reason", reason)
		return dhcp.Decision{Action: dhcp.ActionNak, Subnet: ss.s, Reason: reason}, nil
	}
	addr := req.Requested
	if req.ClientAddr.IsValid() && (!addr.IsValid() || !req.ServerID.IsValid()) {
		addr = req.ClientAddr // RENEWING or REBINDING
	}
	if !addr.IsValid() {
		return nak("no address requested")
	}
	if !ss.prefix.Contains(addr) {
		return nak("%s is not in subnet %s", addr, ss.prefix)
	}
	d := dhcp.Decision{Action: dhcp.ActionAck, Subnet: ss.s, Addr: addr, LeaseTime: time.Duration(ss.s.ActiveLeaseTime) * time.Second}
	if r, raddr := a.reservationIn(ss, req.MAC); r != nil {
		if raddr != addr {
			return nak("%s is reserved %s", req.MAC, raddr)
		}
		d.Reservation = r
		d.LeaseTime = time.Duration(ss.s.ReservedLeaseTime) * time.Second
	} else if ss.s.OnlyReservations {
		a.mu.Unlock()
		return dhcp.Decision{}, fmt.Errorf("%s in %s: %w", req.MAC, ss.s.Name, dhcp.ErrNotReserved)
	} else if r := a.resvByAddr[addr]; r != nil {
		return nak("%s is reserved for another client", addr)
	} else if !ss.inRange(addr) {
		return nak("%s is outside the range of %s", addr, ss.s.Name)
	}
	if a.heldByOther(addr, req.MAC, now) {
		return nak("%s is in use by another client", addr)
	}
	l := a.leases[addr]
	if l == nil {
		l = &lease{addr: addr, sub: ss, created: now}
		a.leases[addr] = l
		ss.setUsed(addr, true)
	}
	renewal := l.state == model.LeaseBound && l.mac == req.MAC && now.Before(l.expire)
	// The client's previous address in this subnet, if another, is freed.
	var old *lease
	if p := ss.byMAC[req.MAC]; p != nil && p != l && p.mac == req.MAC && p.state == model.LeaseBound && now.Before(p.expire) {
		p.state, p.expire = model.LeaseReleased, now
		old = p
	}
	l.mac, l.state, l.expire, l.sub = req.MAC, model.LeaseBound, now.Add(d.LeaseTime), ss
	if req.Hostname != "" {
		l.hostname = req.Hostname
	}
	ss.byMAC[req.MAC] = l
	ls := []*lease{l}
	if old != nil {
		ls = append(ls, old)
	}
	c := a.write(ls...)
	if !renewal {
		d.NewBinding = true
		d.Lease = l.model(now)
	}
	a.mu.Unlock()
	d.Commit = c.then
	return d, nil
}

// Release implements dhcp.Leases.
func (a *Allocator) Release(ctx context.Context, req *dhcp.LeaseRequest) error {
	now := a.cfg.Now()
	a.mu.Lock()
	l := a.leases[req.ClientAddr]
	if l == nil || l.mac != req.MAC || l.state != model.LeaseBound {
		a.mu.Unlock()
		return fmt.Errorf("release of %s by %s without a lease: %w", req.ClientAddr, req.MAC, dhcp.ErrNotOurs)
	}
	l.state, l.expire = model.LeaseReleased, now
	c := a.write(l)
	a.mu.Unlock()
	return c.wait(ctx)
}

// Decline implements dhcp.Leases: the address is set aside, with no MAC,
// for DeclineHold.
func (a *Allocator) Decline(ctx context.Context, req *dhcp.LeaseRequest) error {
	now := a.cfg.Now()
	a.mu.Lock()
	l := a.leases[req.Requested]
	if l == nil || l.mac != req.MAC {
		a.mu.Unlock()
		return fmt.Errorf("decline of %s by %s without a lease: %w", req.Requested, req.MAC, dhcp.ErrNotOurs)
	}
	if l.sub != nil && l.sub.byMAC[l.mac] == l {
		delete(l.sub.byMAC, l.mac)
	}
	l.mac, l.state, l.expire = "", model.LeaseDeclined, now.Add(a.cfg.DeclineHold)
	c := a.write(l)
	a.mu.Unlock()
	a.log.Warn("address declined: in use by another host, set aside", "addr", req.Requested, "mac", req.MAC, "until", now.Add(a.cfg.DeclineHold))
	return c.wait(ctx)
}

// Conflict implements dhcp.Leases: an address that answered a ping is
// set aside like a declined one (no MAC, DeclineHold) unless a client
// other than mac holds it meanwhile.
func (a *Allocator) Conflict(ctx context.Context, addr netip.Addr, mac string) error {
	now := a.cfg.Now()
	a.mu.Lock()
	l := a.leases[addr]
	if l == nil || (l.mac != mac && live(l, now)) {
		a.mu.Unlock()
		return nil
	}
	if l.sub != nil && l.sub.byMAC[l.mac] == l {
		delete(l.sub.byMAC, l.mac)
	}
	l.mac, l.state, l.expire = "", model.LeaseDeclined, now.Add(a.cfg.DeclineHold)
	a.writeBehind(l) // shown by `ironcast leases list`; no reply waits for it
	a.mu.Unlock()
	a.log.Warn("address in use by an unknown host (answers ping), set aside", "addr", addr, "until", now.Add(a.cfg.DeclineHold))
	return nil
}

// Inform implements dhcp.Leases.
func (a *Allocator) Inform(ctx context.Context, req *dhcp.LeaseRequest) (dhcp.Decision, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	ss := a.selectSubnet(req)
	if ss == nil {
		return dhcp.Decision{}, fmt.Errorf("%s via %v: %w", req.MAC, req.Links, dhcp.ErrNoSubnet)
	}
	d := dhcp.Decision{Action: dhcp.ActionAck, Subnet: ss.s}
	if r, _ := a.reservationIn(ss, req.MAC); r != nil {
		d.Reservation = r
	}
	return d, nil
}

// model snapshots l; a.mu is held.
func (l *lease) model(now time.Time) model.Lease {
	ml := model.Lease{Addr: l.addr.String(), Token: l.mac, State: l.state, Hostname: l.hostname, ExpireTime: l.expire.UTC()}
	if l.sub != nil {
		ml.Subnet = l.sub.s.Name
	}
	ml.CreatedAt = l.created.UTC()
	if ml.CreatedAt.IsZero() {
		ml.CreatedAt = now.UTC()
	}
	ml.UpdatedAt = now.UTC()
	return ml
}
