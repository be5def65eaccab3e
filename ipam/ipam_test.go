package ipam_test

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ironcast/ironcast/dhcp"
	"github.com/ironcast/ironcast/ipam"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
	"github.com/ironcast/ironcast/store/bolt"
	"github.com/ironcast/ironcast/store/storetest"
)

// clock is a settable time for lease expiry.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) Add(d time.Duration) {
	c.mu.Lock()
	c.t = c.t.Add(d)
	c.mu.Unlock()
}

func openStore(t testing.TB, path string) store.Store {
	t.Helper()
	s, err := bolt.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func testSubnet() *model.Subnet {
	return &model.Subnet{Name: "rack1", Subnet: "10.20.0.0/24", ActiveStart: "10.20.0.10", ActiveEnd: "10.20.0.13",
		Router: "10.20.0.1", Enabled: true}
}

type env struct {
	st    store.Store
	a     *ipam.Allocator
	clock *clock
	path  string
}

func newEnv(t testing.TB, objs ...model.Object) *env {
	t.Helper()
	path := filepath.Join(t.TempDir(), "ironcast.db")
	st := openStore(t, path)
	ctx := context.Background()
	for _, o := range objs {
		if err := store.Create(ctx, st, o); err != nil {
			t.Fatal(err)
		}
	}
	e := &env{st: st, clock: &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}, path: path}
	a, err := ipam.New(ctx, ipam.Config{Store: st, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	e.a = a
	return e
}

var link = []netip.Addr{netip.MustParseAddr("10.20.0.2")}

func req(mac string) *dhcp.LeaseRequest {
	return &dhcp.LeaseRequest{MAC: mac, Links: link, Interface: "eth0"}
}

// dora runs DISCOVER then REQUEST (SELECTING) and returns the acked address.
func (e *env) dora(t testing.TB, mac string) netip.Addr {
	t.Helper()
	ctx := context.Background()
	d, err := e.a.Discover(ctx, req(mac))
	if err != nil {
		t.Fatalf("discover %s: %v", mac, err)
	}
	r := req(mac)
	r.Requested, r.ServerID = d.Addr, netip.MustParseAddr("10.20.0.2")
	ack, err := e.a.Request(ctx, r)
	if err != nil || ack.Action != dhcp.ActionAck {
		t.Fatalf("request %s: %v %v %s", mac, err, ack.Action, ack.Reason)
	}
	if err := durable(ack); err != nil {
		t.Fatalf("request %s: %v", mac, err)
	}
	if ack.Addr != d.Addr {
		t.Fatalf("acked %s, offered %s", ack.Addr, d.Addr)
	}
	return ack.Addr
}

// durable waits for an ACK's lease write, as the server does before it
// sends the reply.
func durable(d dhcp.Decision) error {
	if d.Commit == nil {
		return errors.New("ack without Commit")
	}
	ch := make(chan error, 1)
	d.Commit(func(err error) { ch <- err })
	return <-ch
}

func (e *env) stored(t testing.TB, addr string) *model.Lease {
	t.Helper()
	l, err := store.Get[model.Lease](context.Background(), e.st, addr)
	if err != nil {
		t.Fatalf("lease %s: %v", addr, err)
	}
	return l
}

func TestDORAPersistsBoundLease(t *testing.T) {
	e := newEnv(t, testSubnet())
	addr := e.dora(t, "52:54:00:00:00:01")
	if got, want := addr.String(), "10.20.0.10"; got != want {
		t.Fatalf("address %s, want %s", got, want)
	}
	l := e.stored(t, "10.20.0.10")
	got := struct {
		Token, Subnet string
		State         model.LeaseState
		Expire        time.Time
	}{l.Token, l.Subnet, l.State, l.ExpireTime}
	want := got
	want.Token, want.Subnet, want.State, want.Expire = "52:54:00:00:00:01", "rack1", model.LeaseBound, e.clock.Now().Add(time.Hour)
	if diff := cmp.Diff(got, want); diff != "" {
		t.Fatalf("stored lease (-got +want):\n%s", diff)
	}
}

func TestAddressChoice(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, testSubnet())
	a1 := e.dora(t, "52:54:00:00:00:01")
	// The same client gets the same address again.
	if d, _ := e.a.Discover(ctx, req("52:54:00:00:00:01")); d.Addr != a1 {
		t.Fatalf("rediscover got %s, want %s", d.Addr, a1)
	}
	// A requested free address is honoured.
	r := req("52:54:00:00:00:02")
	r.Requested = netip.MustParseAddr("10.20.0.12")
	if d, _ := e.a.Discover(ctx, r); d.Addr.String() != "10.20.0.12" {
		t.Fatalf("requested 10.20.0.12, offered %s", d.Addr)
	}
	// An offered address is held: a third client does not get .12 or .10.
	r3 := req("52:54:00:00:00:03")
	r3.Requested = netip.MustParseAddr("10.20.0.12")
	d3, err := e.a.Discover(ctx, r3)
	if err != nil {
		t.Fatal(err)
	}
	if got := d3.Addr.String(); got != "10.20.0.11" {
		t.Fatalf("third client offered %s, want 10.20.0.11 (next free)", got)
	}
	// Taking a held address by REQUEST is refused.
	r3.Requested, r3.ServerID = netip.MustParseAddr("10.20.0.12"), link[0]
	if d, _ := e.a.Request(ctx, r3); d.Action != dhcp.ActionNak {
		t.Fatalf("request of a held address: %v, want nak", d.Action)
	}
}

func TestExhaustedThenLongestExpired(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, testSubnet())
	macs := []string{"02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03", "02:00:00:00:00:04"}
	for i, m := range macs {
		e.dora(t, m)
		e.clock.Add(time.Minute * time.Duration(i+1))
	}
	_, err := e.a.Discover(ctx, req("02:00:00:00:00:05"))
	if !errors.Is(err, dhcp.ErrExhausted) {
		t.Fatalf("fifth client: %v, want ErrExhausted", err)
	}
	// All four leases end; the one that ended first (.10) is reused.
	e.clock.Add(2 * time.Hour)
	d, err := e.a.Discover(ctx, req("02:00:00:00:00:05"))
	if err != nil {
		t.Fatal(err)
	}
	if got := d.Addr.String(); got != "10.20.0.10" {
		t.Fatalf("reclaimed %s, want the longest expired 10.20.0.10", got)
	}
}

// A hostname belongs to the client that sent it: an address that passes
// to another client does not carry the previous holder's name.
func TestHostnameFollowsTheClient(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, testSubnet())
	macs := []string{"02:00:00:00:00:01", "02:00:00:00:00:02", "02:00:00:00:00:03", "02:00:00:00:00:04"}
	var first netip.Addr
	for i, m := range macs {
		r := req(m)
		r.Hostname = fmt.Sprintf("node%d", i+1)
		d, err := e.a.Discover(ctx, r)
		if err != nil {
			t.Fatal(err)
		}
		r.Requested, r.ServerID = d.Addr, netip.MustParseAddr("10.20.0.2")
		ack, err := e.a.Request(ctx, r)
		if err != nil || durable(ack) != nil {
			t.Fatalf("request %s: %v", m, err)
		}
		if i == 0 {
			first = ack.Addr
		}
		e.clock.Add(time.Minute)
	}
	if got := e.stored(t, first.String()).Hostname; got != "node1" {
		t.Fatalf("stored hostname %q, want node1", got)
	}
	e.clock.Add(2 * time.Hour) // every lease ends; the first ended first
	addr := e.dora(t, "02:00:00:00:00:05")
	if addr != first {
		t.Fatalf("fifth client got %s, want the reclaimed %s", addr, first)
	}
	l := e.stored(t, addr.String())
	if l.Token != "02:00:00:00:00:05" || l.Hostname != "" {
		t.Fatalf("reclaimed lease %+v: want the new MAC and no hostname", l)
	}
}

func TestRenewReleaseDecline(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, testSubnet())
	mac := "52:54:00:00:00:01"
	addr := e.dora(t, mac)
	e.clock.Add(30 * time.Minute)
	r := req(mac)
	r.ClientAddr = addr // RENEWING
	d, err := e.a.Request(ctx, r)
	if err != nil || d.Action != dhcp.ActionAck || d.NewBinding {
		t.Fatalf("renew: %v %v new=%v", err, d.Action, d.NewBinding)
	}
	if err := durable(d); err != nil {
		t.Fatal(err)
	}
	if got, want := e.stored(t, addr.String()).ExpireTime, e.clock.Now().Add(time.Hour); !got.Equal(want) {
		t.Fatalf("renewed expiry %s, want %s", got, want)
	}
	// Another client renewing the same address is refused.
	o := req("52:54:00:00:00:09")
	o.ClientAddr = addr
	if d, _ := e.a.Request(ctx, o); d.Action != dhcp.ActionNak {
		t.Fatalf("foreign renew: %v, want nak", d.Action)
	}
	if err := e.a.Release(ctx, r); err != nil {
		t.Fatal(err)
	}
	if got := e.stored(t, addr.String()).State; got != model.LeaseReleased {
		t.Fatalf("state after release %s", got)
	}
	// Decline: the address is set aside with no MAC and offered to no one.
	addr = e.dora(t, mac)
	dr := req(mac)
	dr.Requested = addr
	if err := e.a.Decline(ctx, dr); err != nil {
		t.Fatal(err)
	}
	l := e.stored(t, addr.String())
	if l.State != model.LeaseDeclined || l.Token != "" || !l.ExpireTime.Equal(e.clock.Now().Add(10*time.Minute)) {
		t.Fatalf("declined lease %+v", l)
	}
	d, err = e.a.Discover(ctx, req(mac))
	if err != nil || d.Addr == addr {
		t.Fatalf("after decline offered %s (%v), want another address", d.Addr, err)
	}
}

func TestReservations(t *testing.T) {
	ctx := context.Background()
	only := testSubnet()
	only.Name, only.Subnet, only.ActiveStart, only.ActiveEnd, only.Router, only.OnlyReservations = "only", "10.30.0.0/24", "10.30.0.10", "10.30.0.20", "", true
	e := newEnv(t, testSubnet(), only,
		&model.Reservation{Addr: "10.20.0.50", Token: "52:54:00:aa:00:01", Options: []model.DHCPOption{{Code: 12, Value: "r1"}}},
		&model.Reservation{Addr: "10.30.0.15", Token: "52:54:00:aa:00:02"})
	d, err := e.a.Discover(ctx, req("52:54:00:aa:00:01"))
	if err != nil || d.Addr.String() != "10.20.0.50" || d.Reservation == nil || d.LeaseTime != 2*time.Hour {
		t.Fatalf("reserved discover: %v %+v", err, d)
	}
	// The reserved client may not take a range address.
	r := req("52:54:00:aa:00:01")
	r.Requested, r.ServerID = netip.MustParseAddr("10.20.0.11"), link[0]
	if d, _ := e.a.Request(ctx, r); d.Action != dhcp.ActionNak {
		t.Fatalf("reserved client requesting another address: %v, want nak", d.Action)
	}
	onlyLink := []netip.Addr{netip.MustParseAddr("10.30.0.1")}
	_, err = e.a.Discover(ctx, &dhcp.LeaseRequest{MAC: "52:54:00:aa:00:03", Links: onlyLink})
	if !errors.Is(err, dhcp.ErrNotReserved) {
		t.Fatalf("unreserved client on OnlyReservations subnet: %v", err)
	}
	d, err = e.a.Discover(ctx, &dhcp.LeaseRequest{MAC: "52:54:00:aa:00:02", Links: onlyLink})
	if err != nil || d.Addr.String() != "10.30.0.15" {
		t.Fatalf("reserved client on OnlyReservations subnet: %v %s", err, d.Addr)
	}
	// An unknown link has no subnet.
	_, err = e.a.Discover(ctx, &dhcp.LeaseRequest{MAC: "52:54:00:aa:00:02", Links: []netip.Addr{netip.MustParseAddr("192.0.2.1")}})
	if !errors.Is(err, dhcp.ErrNoSubnet) {
		t.Fatalf("unknown link: %v", err)
	}
}

// TestInform: a client that has its address configured asks for its
// options (DHCPINFORM): an ACK decision for the subnet of the link, with
// the client's reservation when it has one, no lease written, and no
// subnet for an unknown link.
func TestInform(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, testSubnet(), &model.Reservation{Addr: "10.20.0.50", Token: "52:54:00:aa:00:01"})
	d, err := e.a.Inform(ctx, req("52:54:00:aa:00:09"))
	if err != nil || d.Action != dhcp.ActionAck || d.Subnet == nil || d.Subnet.Name != testSubnet().Name || d.Reservation != nil || d.Addr.IsValid() {
		t.Fatalf("inform: %v %+v", err, d)
	}
	d, err = e.a.Inform(ctx, req("52:54:00:aa:00:01"))
	if err != nil || d.Reservation == nil || d.Reservation.Addr != "10.20.0.50" {
		t.Fatalf("inform from a reserved client: %v %+v", err, d)
	}
	if ls, err := store.List[model.Lease](ctx, e.st); err != nil || len(ls) != 0 {
		t.Fatalf("leases after inform: %v %v", ls, err)
	}
	_, err = e.a.Inform(ctx, &dhcp.LeaseRequest{MAC: "52:54:00:aa:00:09", Links: []netip.Addr{netip.MustParseAddr("192.0.2.1")}})
	if !errors.Is(err, dhcp.ErrNoSubnet) {
		t.Fatalf("inform on an unknown link: %v", err)
	}
}

func TestLeasesSurviveRestart(t *testing.T) {
	ctx := context.Background()
	e := newEnv(t, testSubnet())
	a1 := e.dora(t, "52:54:00:00:00:01")
	a2 := e.dora(t, "52:54:00:00:00:02")
	a, err := ipam.New(ctx, ipam.Config{Store: e.st, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	// The restarted allocator gives each client its address and a new
	// client neither of them.
	for mac, want := range map[string]netip.Addr{"52:54:00:00:00:01": a1, "52:54:00:00:00:02": a2} {
		d, err := a.Discover(ctx, req(mac))
		if err != nil || d.Addr != want {
			t.Fatalf("%s after restart: %v %s, want %s", mac, err, d.Addr, want)
		}
	}
	d, err := a.Discover(ctx, req("52:54:00:00:00:03"))
	if err != nil || d.Addr == a1 || d.Addr == a2 {
		t.Fatalf("new client after restart: %v %s", err, d.Addr)
	}
}

func TestSubnetEditsApplyWithoutRestart(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	e := newEnv(t)
	done := make(chan error)
	go func() { done <- e.a.Run(ctx) }()
	if _, err := e.a.Discover(ctx, req("52:54:00:00:00:01")); !errors.Is(err, dhcp.ErrNoSubnet) {
		t.Fatalf("before create: %v", err)
	}
	if err := store.Create(ctx, e.st, testSubnet()); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := e.a.Discover(ctx, req("52:54:00:00:00:01"))
		if err == nil {
			if d.Subnet.Name != "rack1" {
				t.Fatalf("subnet %s", d.Subnet.Name)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("subnet never applied: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestConcurrentClientsGetDistinctAddresses(t *testing.T) {
	s := testSubnet()
	s.ActiveEnd = "10.20.0.250"
	e := newEnv(t, s)
	var mu sync.Mutex
	seen := map[netip.Addr]string{}
	var wg sync.WaitGroup
	for i := range 200 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			m := "02:00:00:00:" + hex2(i/256) + ":" + hex2(i%256)
			addr := e.dora(t, m)
			mu.Lock()
			defer mu.Unlock()
			if other, ok := seen[addr]; ok {
				t.Errorf("%s given to %s and %s", addr, other, m)
			}
			seen[addr] = m
		}()
	}
	wg.Wait()
	if len(seen) != 200 {
		t.Fatalf("%d addresses for 200 clients", len(seen))
	}
}

func hex2(v int) string {
	return string([]byte{"0123456789abcdef"[v>>4&0xf], "0123456789abcdef"[v&0xf]})
}

func TestFailedWriteUndoesBinding(t *testing.T) {
	ctx := context.Background()
	st := &storetest.Faulty{Store: openStore(t, filepath.Join(t.TempDir(), "ironcast.db")), Kind: model.KindLeases}
	if err := store.Create(ctx, st, testSubnet()); err != nil {
		t.Fatal(err)
	}
	a, err := ipam.New(ctx, ipam.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	sel := func(mac string) *dhcp.LeaseRequest {
		r := req(mac)
		r.Requested, r.ServerID = netip.MustParseAddr("10.20.0.10"), link[0]
		return r
	}
	st.Fail.Store(true)
	d, err := a.Request(ctx, sel("52:54:00:00:00:01"))
	if err != nil || d.Action != dhcp.ActionAck {
		t.Fatalf("request: %v %v", err, d.Action)
	}
	if err := durable(d); err == nil {
		t.Fatal("commit reported success for a failed write")
	}
	if _, err := store.Get[model.Lease](ctx, st, "10.20.0.10"); !errors.Is(err, model.ErrNotFound) {
		t.Fatalf("store after failed write: %v, want not found", err)
	}
	// The binding was undone: another client may take the address.
	st.Fail.Store(false)
	d, err = a.Request(ctx, sel("52:54:00:00:00:02"))
	if err != nil || d.Action != dhcp.ActionAck {
		t.Fatalf("second client: %v %v %s, want ack", err, d.Action, d.Reason)
	}
	if err := durable(d); err != nil {
		t.Fatal(err)
	}
	l, err := store.Get[model.Lease](ctx, st, "10.20.0.10")
	if err != nil || l.Token != "52:54:00:00:00:02" || l.State != model.LeaseBound {
		t.Fatalf("stored lease %+v (%v), want bound to the second client", l, err)
	}
	// A renewal whose write fails leaves the stored expiry in memory too.
	st.Fail.Store(true)
	r := req("52:54:00:00:00:02")
	r.ClientAddr = netip.MustParseAddr("10.20.0.10")
	if d, err = a.Request(ctx, r); err != nil || durable(d) == nil {
		t.Fatalf("renewal with a failing store: %v, want a failed commit", err)
	}
	st.Fail.Store(false)
	if err := a.Release(ctx, r); err != nil {
		t.Fatalf("release after failed renewal: %v (binding lost)", err)
	}
}

// lagStore hands the test each lease watch channel, so that the test can
// close one as the store does when a watcher falls behind. Events are
// never delivered on them.
type lagStore struct {
	store.Store
	watches chan chan store.Event
}

func (s *lagStore) Watch(ctx context.Context, kind string) (<-chan store.Event, error) {
	if kind != model.KindLeases {
		return s.Store.Watch(ctx, kind)
	}
	ch := make(chan store.Event)
	s.watches <- ch
	return ch, nil
}

func TestLeaseWatchLagRereadsLeases(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := &lagStore{Store: openStore(t, filepath.Join(t.TempDir(), "ironcast.db")), watches: make(chan chan store.Event, 4)}
	one := testSubnet()
	one.ActiveEnd = one.ActiveStart // a single address
	if err := store.Create(ctx, st, one); err != nil {
		t.Fatal(err)
	}
	a, err := ipam.New(ctx, ipam.Config{Store: st})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	e := &env{st: st, a: a}
	addr := e.dora(t, "52:54:00:00:00:01")
	if _, err := a.Discover(ctx, req("52:54:00:00:00:02")); !errors.Is(err, dhcp.ErrExhausted) {
		t.Fatalf("second client with the only address bound: %v, want exhausted", err)
	}
	w := <-st.watches
	// The operator deletes the lease; the watch misses it and lags.
	if err := st.Delete(ctx, model.KindLeases, addr.String(), store.AnyRevision); err != nil {
		t.Fatal(err)
	}
	close(w)
	<-st.watches // restarted
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := a.Discover(ctx, req("52:54:00:00:00:02"))
		if err == nil {
			if d.Addr != addr {
				t.Fatalf("offered %s, want %s", d.Addr, addr)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("deleted lease still held after the watch restarted: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestSweepStoresExpiredLeases(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	st := openStore(t, filepath.Join(t.TempDir(), "ironcast.db"))
	if err := store.Create(ctx, st, testSubnet()); err != nil {
		t.Fatal(err)
	}
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	a, err := ipam.New(ctx, ipam.Config{Store: st, Now: clk.Now, SweepInterval: 10 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, a: a, clock: clk}
	addr := e.dora(t, "52:54:00:00:00:01")
	done := make(chan error, 1)
	go func() { done <- a.Run(ctx) }()
	clk.Add(2 * time.Hour) // past the one-hour lease
	deadline := time.Now().Add(10 * time.Second)
	for e.stored(t, addr.String()).State != model.LeaseExpired {
		if time.Now().After(deadline) {
			t.Fatalf("lease never stored as expired: %+v", e.stored(t, addr.String()))
		}
		time.Sleep(10 * time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// waitStored polls the store until addr's lease satisfies ok: offers are
// written behind the OFFER, so the test waits for the writer (bounded).
func waitStored(t testing.TB, st store.Store, addr string, what string, ok func(*model.Lease) bool) *model.Lease {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		l, err := store.Get[model.Lease](context.Background(), st, addr)
		if err == nil && ok(l) {
			return l
		}
		if time.Now().After(deadline) {
			t.Fatalf("lease %s never %s in the store: %+v (%v)", addr, what, l, err)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// TestOfferPersistsAndHoldsAcrossRestart: an offer is written to the
// store (state offered, the hold's end as ExpireTime), which is what
// `ironcast leases list` and the API show; after a restart on the same
// bbolt file the offered address is still held for its MAC and offered
// to no one else; once the hold has ended it is free.
func TestOfferPersistsAndHoldsAcrossRestart(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ironcast.db")
	clk := &clock{t: time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)}
	one := testSubnet()
	one.ActiveEnd = one.ActiveStart // a single address: 10.20.0.10
	const mac1, mac2 = "52:54:00:00:00:01", "52:54:00:00:00:02"

	// start opens the file and an allocator on it, as a restart does.
	start := func(create bool) (*bolt.Store, *ipam.Allocator) {
		t.Helper()
		st, err := bolt.Open(path, nil)
		if err != nil {
			t.Fatal(err)
		}
		if create {
			if err := store.Create(ctx, st, one); err != nil {
				t.Fatal(err)
			}
		}
		a, err := ipam.New(ctx, ipam.Config{Store: st, Now: clk.Now})
		if err != nil {
			t.Fatal(err)
		}
		return st, a
	}

	st, a := start(true)
	d, err := a.Discover(ctx, req(mac1))
	if err != nil || d.Addr.String() != "10.20.0.10" {
		t.Fatalf("discover: %v %s", err, d.Addr)
	}
	if d.Commit != nil {
		t.Fatal("offer has a Commit: the OFFER would wait for the disk")
	}
	l := waitStored(t, st, "10.20.0.10", "offered", func(l *model.Lease) bool { return l.State == model.LeaseOffered })
	got := struct {
		Token, Subnet string
		State         model.LeaseState
		Expire        time.Time
	}{l.Token, l.Subnet, l.State, l.ExpireTime}
	want := got
	want.Token, want.Subnet, want.State, want.Expire = mac1, "rack1", model.LeaseOffered, clk.Now().Add(30*time.Second)
	if diff := cmp.Diff(got, want); diff != "" {
		t.Fatalf("stored offer (-got +want):\n%s", diff)
	}
	// The list the API serves (GET /leases reads the store) shows it.
	ls, err := store.List[model.Lease](ctx, st)
	if err != nil || len(ls) != 1 || ls[0].State != model.LeaseOffered || ls[0].Token != mac1 {
		t.Fatalf("lease list: %v %+v, want one offered lease", err, ls)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}

	// Restart within the hold: the address is still mac1's.
	clk.Add(10 * time.Second)
	st, a = start(false)
	if _, err := a.Discover(ctx, req(mac2)); !errors.Is(err, dhcp.ErrExhausted) {
		t.Fatalf("another client's discover during the hold after a restart: %v, want exhausted", err)
	}
	r := req(mac2)
	r.Requested, r.ServerID = netip.MustParseAddr("10.20.0.10"), link[0]
	if d, err := a.Request(ctx, r); err != nil || d.Action != dhcp.ActionNak {
		t.Fatalf("another client's request during the hold after a restart: %v %v, want nak", err, d.Action)
	}
	// mac1's REQUEST for its offer is acked.
	r = req(mac1)
	r.Requested, r.ServerID = netip.MustParseAddr("10.20.0.10"), link[0]
	ack, err := a.Request(ctx, r)
	if err != nil || ack.Action != dhcp.ActionAck {
		t.Fatalf("request of the offered address after a restart: %v %v %s", err, ack.Action, ack.Reason)
	}
	if err := durable(ack); err != nil {
		t.Fatal(err)
	}
	if l := waitStored(t, st, "10.20.0.10", "bound", func(l *model.Lease) bool { return true }); l.State != model.LeaseBound || l.Token != mac1 {
		t.Fatalf("after the ack: %+v, want bound to %s", l, mac1)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
}

// TestLapsedOfferIsFreeAfterRestart: an offer whose hold ended while the
// server was down does not hold its address after the restart.
func TestLapsedOfferIsFreeAfterRestart(t *testing.T) {
	ctx := context.Background()
	one := testSubnet()
	one.ActiveEnd = one.ActiveStart
	e := newEnv(t, one)
	if _, err := e.a.Discover(ctx, req("52:54:00:00:00:01")); err != nil {
		t.Fatal(err)
	}
	waitStored(t, e.st, "10.20.0.10", "offered", func(l *model.Lease) bool { return l.State == model.LeaseOffered })
	e.clock.Add(31 * time.Second) // past the 30 s hold
	a, err := ipam.New(ctx, ipam.Config{Store: e.st, Now: e.clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	d, err := a.Discover(ctx, req("52:54:00:00:00:02"))
	if err != nil || d.Addr.String() != "10.20.0.10" {
		t.Fatalf("another client after the hold ended: %v %s, want 10.20.0.10", err, d.Addr)
	}
	waitStored(t, e.st, "10.20.0.10", "offered to the second client", func(l *model.Lease) bool {
		return l.State == model.LeaseOffered && l.Token == "52:54:00:00:00:02"
	})
}

// countingStore counts lease writes.
type countingStore struct {
	store.Store
	puts atomic.Int64
}

func (c *countingStore) Put(ctx context.Context, kind, key string, value []byte, want int64, idx map[string][]string) (int64, error) {
	if kind == model.KindLeases {
		c.puts.Add(1)
	}
	return c.Store.Put(ctx, kind, key, value, want, idx)
}

func (c *countingStore) PutBatch(ctx context.Context, ops []store.PutOp) []error {
	for _, op := range ops {
		if op.Kind == model.KindLeases {
			c.puts.Add(1)
		}
	}
	return c.Store.PutBatch(ctx, ops)
}

// TestOfferAndAckShareOneWrite: an offer is written behind and held back
// for up to CommitInterval (here an hour), so the REQUEST that follows is
// written over it in the same round: one lease write for the DORA, and
// the ACK does not wait for the offer's interval.
func TestOfferAndAckShareOneWrite(t *testing.T) {
	ctx := context.Background()
	st := &countingStore{Store: openStore(t, filepath.Join(t.TempDir(), "ironcast.db"))}
	if err := store.Create(ctx, st, testSubnet()); err != nil {
		t.Fatal(err)
	}
	a, err := ipam.New(ctx, ipam.Config{Store: st, CommitInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	e := &env{st: st, a: a}
	addr := e.dora(t, "52:54:00:00:00:01")
	if got := st.puts.Load(); got != 1 {
		t.Fatalf("%d lease writes for one DORA, want 1", got)
	}
	if l := e.stored(t, addr.String()); l.State != model.LeaseBound {
		t.Fatalf("stored %+v, want bound", l)
	}
}

// TestOffersAloneWaitForTheirInterval: more than roundWrites (32) offers
// queued do not start a round: no reply waits for them, so they wait for
// CommitInterval (here an hour) and the REQUESTs that follow. The first
// REQUEST starts a round at once, which writes the queued offers with it.
func TestOffersAloneWaitForTheirInterval(t *testing.T) {
	ctx := context.Background()
	st := &countingStore{Store: openStore(t, filepath.Join(t.TempDir(), "ironcast.db"))}
	s := testSubnet()
	s.ActiveEnd = "10.20.0.200"
	if err := store.Create(ctx, st, s); err != nil {
		t.Fatal(err)
	}
	a, err := ipam.New(ctx, ipam.Config{Store: st, CommitInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	const n = 40
	var first dhcp.Decision
	for i := range n {
		d, err := a.Discover(ctx, req(fmt.Sprintf("52:54:00:00:01:%02x", i)))
		if err != nil {
			t.Fatal(err)
		}
		if i == 0 {
			first = d
		}
	}
	time.Sleep(200 * time.Millisecond)
	if got := st.puts.Load(); got != 0 {
		t.Fatalf("%d offers written before their interval, want 0", got)
	}
	r := req("52:54:00:00:01:00")
	r.Requested, r.ServerID = first.Addr, netip.MustParseAddr("10.20.0.2")
	ack, err := a.Request(ctx, r)
	if err != nil || ack.Action != dhcp.ActionAck {
		t.Fatalf("request: %v %v", err, ack.Action)
	}
	if err := durable(ack); err != nil {
		t.Fatal(err)
	}
	if got := st.puts.Load(); got != n {
		t.Fatalf("%d lease writes in the REQUEST's round, want %d (the ACK and %d offers)", got, n, n-1)
	}
}
