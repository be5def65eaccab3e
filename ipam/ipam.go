package ipam

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
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
	leases map[uint32]*lease
	// hostnames holds the leases' hostnames (the one field a lease cannot
	// hold without a pointer) and savedHostnames the ones the store holds;
	// both by address, only where not empty.
	hostnames, savedHostnames map[uint32]string
	// resvByMAC and resvByAddr index the reservations.
	resvByMAC  map[hwaddr]*model.Reservation
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

// subnetState is one enabled subnet's allocation state.
type subnetState struct {
	s *model.Subnet
	// id is the subnet's position in Allocator.subnets plus one (lease.sub).
	id         uint16
	prefix     netip.Prefix
	start, end uint32 // active range, inclusive; end < start means none
	// used has a bit per address of the range: set when a lease record or
	// a reservation holds it.
	used   []uint64
	cursor uint32
	byMAC  map[hwaddr]*lease
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
	a := &Allocator{cfg: cfg, st: cfg.Store, log: cfg.Logger, leases: map[uint32]*lease{},
		hostnames: map[uint32]string{}, savedHostnames: map[uint32]string{}, wake: make(chan struct{}, 1)}
	if a.log == nil {
		a.log = slog.New(slog.DiscardHandler)
	}
	ls, err := store.List[model.Lease](ctx, a.st)
	if err != nil {
		return nil, fmt.Errorf("ipam load: %w", err)
	}
	for _, ml := range ls {
		addr, err := netip.ParseAddr(ml.Addr)
		mac, macOK := parseMAC(ml.Token)
		state, stateOK := stateOf(ml.State)
		if err != nil || !addr.Is4() || !macOK || !stateOK {
			a.log.Warn("stored lease ignored: invalid", "addr", ml.Addr, "mac", ml.Token, "state", ml.State)
			continue
		}
		l := &lease{addr: u32(addr), mac: mac, state: state, expire: stampOf(ml.ExpireTime),
			created: stampOf(ml.CreatedAt), stored: true}
		l.saved = saved{mac: l.mac, state: l.state, expire: l.expire}
		a.leases[l.addr] = l
		if ml.Hostname != "" {
			a.hostnames[l.addr], a.savedHostnames[l.addr] = ml.Hostname, ml.Hostname
		}
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
	a.resvByMAC = map[hwaddr]*model.Reservation{}
	a.resvByAddr = map[netip.Addr]*model.Reservation{}
	for _, r := range rs {
		addr, err := netip.ParseAddr(r.Addr)
		mac, ok := parseMAC(r.Token)
		if err != nil || !ok || mac == 0 {
			continue
		}
		a.resvByMAC[mac] = r
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
		ss := &subnetState{s: s, prefix: s.Prefix(), byMAC: map[hwaddr]*lease{}, start: 1, end: 0}
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
		if len(a.subnets) == math.MaxUint16 {
			a.log.Warn("too many subnets; the rest are ignored", "subnets", len(a.rawSubnets))
			break
		}
	}
	// Narrower networks first, so that the most specific subnet wins.
	slices.SortStableFunc(a.subnets, func(x, y *subnetState) int { return cmp.Compare(y.prefix.Bits(), x.prefix.Bits()) })
	for i, ss := range a.subnets {
		ss.id = uint16(i + 1)
	}
	for addr := range a.resvByAddr {
		if ss := a.subnetFor(addr); ss != nil {
			ss.setUsed(addr, true)
		}
	}
	for _, l := range a.leases {
		ss := a.subnetFor(addrOf(l.addr))
		if ss == nil {
			l.sub = 0
			continue
		}
		l.sub = ss.id
		ss.setUsed(addrOf(l.addr), true)
		if l.mac != 0 {
			if old := ss.byMAC[l.mac]; old == nil || old.expire < l.expire {
				ss.byMAC[l.mac] = l
			}
		}
	}
}

// lease returns the lease of addr, or nil.
func (a *Allocator) lease(addr netip.Addr) *lease {
	if !addr.Is4() {
		return nil
	}
	return a.leases[u32(addr)]
}

// subnetOf returns l's subnet, or nil.
func (a *Allocator) subnetOf(l *lease) *subnetState {
	if l.sub == 0 || int(l.sub) > len(a.subnets) {
		return nil
	}
	return a.subnets[l.sub-1]
}

// newLease adds a lease for addr in ss. a.mu is held.
func (a *Allocator) newLease(ss *subnetState, addr netip.Addr, now stamp) *lease {
	l := &lease{addr: u32(addr), sub: ss.id, created: now}
	a.leases[l.addr] = l
	ss.setUsed(addr, true)
	return l
}

// drop removes l from memory: the maps, its subnet's MAC index and, unless
// reserved, the subnet's used bit. a.mu is held.
func (a *Allocator) drop(l *lease) {
	delete(a.leases, l.addr)
	delete(a.hostnames, l.addr)
	delete(a.savedHostnames, l.addr)
	addr := addrOf(l.addr)
	if ss := a.subnetOf(l); ss != nil {
		if ss.byMAC[l.mac] == l {
			delete(ss.byMAC, l.mac)
		}
		if a.resvByAddr[addr] == nil {
			ss.setUsed(addr, false)
		}
	}
}

// setHostname records the hostname that client mac sent for l, before
// l passes to mac: a new holder does not inherit the previous one's, and
// "" leaves the current one as it is. a.mu is held.
func (a *Allocator) setHostname(l *lease, mac hwaddr, name string) (changed bool) {
	if l.mac != mac {
		delete(a.hostnames, l.addr)
	}
	if name == "" || a.hostnames[l.addr] == name {
		return false
	}
	a.hostnames[l.addr] = name
	return true
}

func u32(a netip.Addr) uint32 {
	b := a.As4()
	return uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
}

func addrOf(v uint32) netip.Addr {
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

func (ss *subnetState) inRange(addr netip.Addr) bool {
	if !addr.Is4() {
		return false
	}
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
func live(l *lease, now stamp) bool {
	switch l.state {
	case stateOffered, stateBound, stateDeclined:
		return now < l.expire
	}
	return false
}

// clientMAC packs req's MAC; the DHCP server passes only 6-byte ones.
func clientMAC(req *dhcp.LeaseRequest) (hwaddr, error) {
	mac, ok := parseMAC(req.MAC)
	if !ok || mac == 0 {
		return 0, fmt.Errorf("client MAC %q: not a 6-byte MAC address: %w", req.MAC, dhcp.ErrNotOurs)
	}
	return mac, nil
}

// reservationIn returns mac's reservation if its address is in ss.
func (a *Allocator) reservationIn(ss *subnetState, mac hwaddr) (*model.Reservation, netip.Addr) {
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

// reservedForOther reports whether addr is reserved for a client other
// than mac.
func (a *Allocator) reservedForOther(addr netip.Addr, mac hwaddr) bool {
	r := a.resvByAddr[addr]
	if r == nil {
		return false
	}
	owner, _ := parseMAC(r.Token)
	return owner != mac
}

// availableFor reports whether addr may be given to mac dynamically: in
// the range, not reserved for anyone, and not held by another client.
func (a *Allocator) availableFor(ss *subnetState, addr netip.Addr, mac hwaddr, now stamp) bool {
	if !addr.IsValid() || !ss.inRange(addr) || a.reservedForOther(addr, mac) {
		return false
	}
	l := a.lease(addr)
	return l == nil || !live(l, now) || (l.mac == mac && l.state != stateDeclined)
}

// heldByOther returns whether another client holds addr.
func (a *Allocator) heldByOther(addr netip.Addr, mac hwaddr, now stamp) bool {
	l := a.lease(addr)
	return l != nil && live(l, now) && (l.mac != mac || l.state == stateDeclined)
}

// Discover implements dhcp.Leases.
func (a *Allocator) Discover(ctx context.Context, req *dhcp.LeaseRequest) (dhcp.Decision, error) {
	mac, err := clientMAC(req)
	if err != nil {
		return dhcp.Decision{}, err
	}
	now := stampOf(a.cfg.Now())
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
	if r, raddr := a.reservationIn(ss, mac); r != nil {
		if a.heldByOther(raddr, mac, now) {
			holder := a.lease(raddr).mac
			a.log.Warn("reserved address held by another client", "subnet", ss.s.Name, "mac", req.MAC, "addr", raddr, "holder", holder)
			return dhcp.Decision{}, fmt.Errorf("reserved %s for %s is held by %s: %w", raddr, req.MAC, holder, dhcp.ErrExhausted)
		}
		addr = raddr
		d.Reservation = r
		d.LeaseTime = time.Duration(ss.s.ReservedLeaseTime) * time.Second
	} else if ss.s.OnlyReservations {
		a.log.Debug("no reservation", "subnet", ss.s.Name, "mac", req.MAC)
		return dhcp.Decision{}, fmt.Errorf("%s in %s: %w", req.MAC, ss.s.Name, dhcp.ErrNotReserved)
	} else {
		addr = a.choose(ss, req, mac, now)
		if !addr.IsValid() {
			a.log.Warn("address range exhausted", "subnet", ss.s.Name, "mac", req.MAC, "range", ss.s.ActiveStart+"-"+ss.s.ActiveEnd)
			return dhcp.Decision{}, fmt.Errorf("%s in %s: %w", req.MAC, ss.s.Name, dhcp.ErrExhausted)
		}
	}
	l := a.lease(addr)
	if l == nil {
		l = a.newLease(ss, addr, now)
	}
	// Ping an address new to the client: not one it holds or was just
	// offered (and pinged for), nor its reservation.
	d.Probe = ss.s.PingCheck && d.Reservation == nil && !(l.mac == mac && live(l, now))
	changed := a.setHostname(l, mac, req.Hostname)
	if !(l.mac == mac && l.state == stateBound && now < l.expire) {
		l.mac, l.state, l.expire = mac, stateOffered, after(now, a.cfg.OfferHold)
		changed = true
	}
	l.sub = ss.id
	ss.byMAC[mac] = l
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
func (a *Allocator) choose(ss *subnetState, req *dhcp.LeaseRequest, mac hwaddr, now stamp) netip.Addr {
	prev := ss.byMAC[mac]
	if prev != nil && live(prev, now) && prev.mac == mac && a.availableFor(ss, addrOf(prev.addr), mac, now) {
		return addrOf(prev.addr)
	}
	if a.availableFor(ss, req.Requested, mac, now) {
		return req.Requested
	}
	if prev != nil && prev.mac == mac && a.availableFor(ss, addrOf(prev.addr), mac, now) {
		return addrOf(prev.addr)
	}
	for {
		addr, ok := ss.nextFree()
		if !ok {
			break
		}
		if a.availableFor(ss, addr, mac, now) {
			return addr
		}
		// A reservation outside the bitmap's knowledge; mark and go on.
		ss.setUsed(addr, true)
	}
	return a.reclaim(ss, mac, now)
}

// reclaim returns the address whose lease ended longest ago.
func (a *Allocator) reclaim(ss *subnetState, mac hwaddr, now stamp) netip.Addr {
	for attempt := 0; attempt < 2; attempt++ {
		for len(ss.reclaim) > 0 {
			l := ss.reclaim[0]
			ss.reclaim = ss.reclaim[1:]
			if a.leases[l.addr] == l && l.sub == ss.id && a.availableFor(ss, addrOf(l.addr), mac, now) {
				return addrOf(l.addr)
			}
		}
		if attempt == 1 {
			break
		}
		for _, l := range a.leases {
			addr := addrOf(l.addr)
			if l.sub == ss.id && !live(l, now) && ss.inRange(addr) && a.resvByAddr[addr] == nil {
				ss.reclaim = append(ss.reclaim, l)
			}
		}
		slices.SortFunc(ss.reclaim, func(x, y *lease) int { return cmp.Compare(x.expire, y.expire) })
	}
	return netip.Addr{}
}

// Request implements dhcp.Leases.
func (a *Allocator) Request(ctx context.Context, req *dhcp.LeaseRequest) (dhcp.Decision, error) {
	mac, err := clientMAC(req)
	if err != nil {
		return dhcp.Decision{}, err
	}
	nowTime := a.cfg.Now()
	now := stampOf(nowTime)
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
		if l := ss.byMAC[mac]; l != nil && l.state == stateOffered && l.mac == mac && now < l.expire {
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
	if !addr.Is4() || !ss.prefix.Contains(addr) {
		return nak("%s is not in subnet %s", addr, ss.prefix)
	}
	d := dhcp.Decision{Action: dhcp.ActionAck, Subnet: ss.s, Addr: addr, LeaseTime: time.Duration(ss.s.ActiveLeaseTime) * time.Second}
	if r, raddr := a.reservationIn(ss, mac); r != nil {
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
	if a.heldByOther(addr, mac, now) {
		return nak("%s is in use by another client", addr)
	}
	l := a.lease(addr)
	if l == nil {
		l = a.newLease(ss, addr, now)
	}
	renewal := l.state == stateBound && l.mac == mac && now < l.expire
	// The client's previous address in this subnet, if another, is freed.
	var old *lease
	if p := ss.byMAC[mac]; p != nil && p != l && p.mac == mac && p.state == stateBound && now < p.expire {
		p.state, p.expire = stateReleased, now
		old = p
	}
	a.setHostname(l, mac, req.Hostname)
	l.mac, l.state, l.expire, l.sub = mac, stateBound, after(now, d.LeaseTime), ss.id
	ss.byMAC[mac] = l
	ls := []*lease{l}
	if old != nil {
		ls = append(ls, old)
	}
	c := a.write(ls...)
	if !renewal {
		d.NewBinding = true
		d.Lease = a.model(l, nowTime)
	}
	a.mu.Unlock()
	d.Commit = c.then
	return d, nil
}

// Release implements dhcp.Leases.
func (a *Allocator) Release(ctx context.Context, req *dhcp.LeaseRequest) error {
	mac, err := clientMAC(req)
	if err != nil {
		return err
	}
	now := stampOf(a.cfg.Now())
	a.mu.Lock()
	l := a.lease(req.ClientAddr)
	if l == nil || l.mac != mac || l.state != stateBound {
		a.mu.Unlock()
		return fmt.Errorf("release of %s by %s without a lease: %w", req.ClientAddr, req.MAC, dhcp.ErrNotOurs)
	}
	l.state, l.expire = stateReleased, now
	c := a.write(l)
	a.mu.Unlock()
	return c.wait(ctx)
}

// setAside marks l declined: no MAC, held for DeclineHold. a.mu is held.
func (a *Allocator) setAside(l *lease, now stamp) {
	if ss := a.subnetOf(l); ss != nil && ss.byMAC[l.mac] == l {
		delete(ss.byMAC, l.mac)
	}
	l.mac, l.state, l.expire = 0, stateDeclined, after(now, a.cfg.DeclineHold)
}

// Decline implements dhcp.Leases: the address is set aside, with no MAC,
// for DeclineHold.
func (a *Allocator) Decline(ctx context.Context, req *dhcp.LeaseRequest) error {
	mac, err := clientMAC(req)
	if err != nil {
		return err
	}
	nowTime := a.cfg.Now()
	a.mu.Lock()
	l := a.lease(req.Requested)
	if l == nil || l.mac != mac {
		a.mu.Unlock()
		return fmt.Errorf("decline of %s by %s without a lease: %w", req.Requested, req.MAC, dhcp.ErrNotOurs)
	}
	a.setAside(l, stampOf(nowTime))
	c := a.write(l)
	a.mu.Unlock()
	a.log.Warn("address declined: in use by another host, set aside", "addr", req.Requested, "mac", req.MAC, "until", nowTime.Add(a.cfg.DeclineHold))
	return c.wait(ctx)
}

// Conflict implements dhcp.Leases: an address that answered a ping is
// set aside like a declined one (no MAC, DeclineHold) unless a client
// other than mac holds it meanwhile.
func (a *Allocator) Conflict(ctx context.Context, addr netip.Addr, macStr string) error {
	mac, _ := parseMAC(macStr)
	nowTime := a.cfg.Now()
	now := stampOf(nowTime)
	a.mu.Lock()
	l := a.lease(addr)
	if l == nil || (l.mac != mac && live(l, now)) {
		a.mu.Unlock()
		return nil
	}
	a.setAside(l, now)
	a.writeBehind(l) // shown by `ironcast leases list`; no reply waits for it
	a.mu.Unlock()
	a.log.Warn("address in use by an unknown host (answers ping), set aside", "addr", addr, "until", nowTime.Add(a.cfg.DeclineHold))
	return nil
}

// Inform implements dhcp.Leases.
func (a *Allocator) Inform(ctx context.Context, req *dhcp.LeaseRequest) (dhcp.Decision, error) {
	mac, _ := parseMAC(req.MAC)
	a.mu.Lock()
	defer a.mu.Unlock()
	ss := a.selectSubnet(req)
	if ss == nil {
		return dhcp.Decision{}, fmt.Errorf("%s via %v: %w", req.MAC, req.Links, dhcp.ErrNoSubnet)
	}
	d := dhcp.Decision{Action: dhcp.ActionAck, Subnet: ss.s}
	if r, _ := a.reservationIn(ss, mac); r != nil {
		d.Reservation = r
	}
	return d, nil
}

// model snapshots l; a.mu is held.
func (a *Allocator) model(l *lease, now time.Time) model.Lease {
	ml := model.Lease{Addr: addrOf(l.addr).String(), Token: l.mac.String(), State: l.state.model(),
		Hostname: a.hostnames[l.addr], ExpireTime: l.expire.time()}
	if ss := a.subnetOf(l); ss != nil {
		ml.Subnet = ss.s.Name
	}
	ml.CreatedAt = l.created.time()
	if ml.CreatedAt.IsZero() {
		ml.CreatedAt = now.UTC()
	}
	ml.UpdatedAt = now.UTC()
	return ml
}
