package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
)

// fakeClock is a Clock the test moves by hand; its ticker is a channel the
// test sends on.
type fakeClock struct {
	mu    sync.Mutex
	now   time.Time
	ticks chan time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC), ticks: make(chan time.Time)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) Advance(d time.Duration) time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
	return c.now
}

func (c *fakeClock) Tick(time.Duration) (<-chan time.Time, func()) { return c.ticks, func() {} }

// poolEvents is a Notifier safe for concurrent publishers that keeps the
// pool.* events and, when ch is set, also sends them there.
type poolEvents struct {
	mu     sync.Mutex
	events []model.Event
	ch     chan model.Event
}

func (p *poolEvents) Publish(ev model.Event) {
	if !strings.HasPrefix(ev.Type, "pool.") {
		return
	}
	p.mu.Lock()
	p.events = append(p.events, ev)
	p.mu.Unlock()
	if p.ch != nil {
		p.ch <- ev
	}
}

// summary lists "type pool machine reason" per event.
func (p *poolEvents) summary() []string {
	p.mu.Lock()
	defer p.mu.Unlock()
	var out []string
	for _, ev := range p.events {
		s := fmt.Sprintf("%s %s %s", ev.Type, ev.Key, ev.Attrs["machine"])
		if r, ok := ev.Attrs["reason"]; ok {
			s += fmt.Sprintf(" %s", r)
		}
		out = append(out, s)
	}
	p.events = nil
	return out
}

// newPoolService is newService with a fake clock, a concurrency-safe
// notifier, the profile "web-base" and the pool "web" (linuxkit, that
// profile, a param).
func newPoolService(t *testing.T) (*Service, *fakeClock, *poolEvents) {
	t.Helper()
	svc, _, _ := newService(t)
	clk := newFakeClock()
	ev := &poolEvents{}
	svc.clock, svc.notify = clk, ev
	mustCreate(t, svc, &model.Profile{Name: "web-base", Params: map[string]any{"tier": "web"}})
	mustCreate(t, svc, &model.Pool{Name: "web", BootEnv: model.BootEnvLinuxKit, Profiles: []string{"web-base"},
		Params: map[string]any{"role": "frontend", "ntp": "pool"}})
	return svc, clk, ev
}

// readyMachines creates n ready machines in pool, one minute apart, with
// UUIDs that sort in the reverse order of their creation (so that
// longest-ready first is not key order). It returns them oldest first.
func readyMachines(t *testing.T, svc *Service, clk *fakeClock, pool string, n int) []*model.Machine {
	t.Helper()
	n0, err := svc.st.Count(context.Background(), model.KindMachines)
	if err != nil {
		t.Fatal(err)
	}
	var out []*model.Machine
	for i := range n {
		m := &model.Machine{
			UUID:          fmt.Sprintf("00000000-0000-4000-8000-%012d", 999-n0-i),
			Name:          fmt.Sprintf("%s-%d", pool, i),
			HardwareAddrs: []string{fmt.Sprintf("52:54:00:00:00:%02x", n0+i)},
			Pool:          pool, State: model.StateReady,
		}
		mustCreate(t, svc, m)
		out = append(out, m)
		clk.Advance(time.Minute)
	}
	return out
}

func getMachine(t *testing.T, svc *Service, uuid string) *model.Machine {
	t.Helper()
	m, err := store.Get[model.Machine](context.Background(), svc.st, uuid)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func uuids(ms []*model.Machine) []string {
	out := make([]string, len(ms))
	for i, m := range ms {
		out[i] = m.UUID
	}
	return out
}

func TestAllocatePicksLongestReadyAndAppliesPool(t *testing.T) {
	ctx := context.Background()
	svc, clk, ev := newPoolService(t)
	ms := readyMachines(t, svc, clk, "web", 4)
	// The oldest has a param of its own that the allocation overrides.
	ms[0].Params = map[string]any{"role": "spare", "rack": "r1"}
	if err := svc.Update(ctx, ms[0], store.AnyRevision); err != nil {
		t.Fatal(err)
	}
	now := clk.Now()

	got, err := svc.Allocate(ctx, "web", AllocateRequest{Count: 2, Owner: "ci", TTL: 3600, Params: map[string]any{"ntp": "10.0.0.1"}})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(uuids(got), uuids(ms[:2])); diff != "" {
		t.Fatalf("allocated machines (-got +want, longest-ready first):\n%s", diff)
	}
	for _, m := range got {
		stored := getMachine(t, svc, m.UUID)
		a := stored.Allocation
		if a == nil {
			t.Fatalf("machine %s has no allocation", m.UUID)
		}
		if stored.State != model.StateProvisioning || stored.BootEnv != model.BootEnvLinuxKit {
			t.Errorf("machine %s: state %s bootenv %s, want provisioning linuxkit", m.Name, stored.State, stored.BootEnv)
		}
		if !slices.Contains(stored.Profiles, "web-base") {
			t.Errorf("machine %s profiles %v lack the pool's", m.Name, stored.Profiles)
		}
		wantParams := map[string]any{"role": "frontend", "ntp": "10.0.0.1"}
		if m.UUID == ms[0].UUID {
			wantParams["rack"] = "r1"
		}
		if diff := cmp.Diff(stored.Params, wantParams); diff != "" {
			t.Errorf("machine %s params (-got +want):\n%s", m.Name, diff)
		}
		if a.Owner != "ci" || !a.Since.Equal(now) || !a.Expires.Equal(now.Add(time.Hour)) || a.BootEnv != model.BootEnvLinuxKit {
			t.Errorf("allocation %+v, want owner ci since %v expiring an hour later", a, now)
		}
		if a.ID != got[0].Allocation.ID {
			t.Errorf("machines of one request have allocations %s and %s", a.ID, got[0].Allocation.ID)
		}
	}
	if diff := cmp.Diff(ev.summary(), []string{
		"pool.allocate web " + ms[0].UUID, "pool.allocate web " + ms[1].UUID,
	}); diff != "" {
		t.Errorf("events (-got +want):\n%s", diff)
	}

	// The next request gets the next-oldest, with the request's bootenv
	// and the pool's default TTL (none).
	more, err := svc.Allocate(ctx, "web", AllocateRequest{BootEnv: model.BootEnvLocal})
	if err != nil {
		t.Fatal(err)
	}
	if len(more) != 1 || more[0].UUID != ms[2].UUID || more[0].BootEnv != model.BootEnvLocal || !more[0].Allocation.Expires.IsZero() {
		t.Errorf("second allocation %+v, want %s on local, never expiring", more[0], ms[2].Name)
	}

	// Releasing takes away exactly what the allocation added.
	rel, err := svc.ReleaseAllocation(ctx, ms[0].UUID)
	if err != nil {
		t.Fatal(err)
	}
	if rel.Allocation != nil || rel.Profiles != nil || rel.State != model.StateReleasing || rel.BootEnv != model.BootEnvWipe {
		t.Errorf("released machine: allocation %+v profiles %v state %s bootenv %s", rel.Allocation, rel.Profiles, rel.State, rel.BootEnv)
	}
	if diff := cmp.Diff(rel.Params, map[string]any{"role": "spare", "rack": "r1"}); diff != "" {
		t.Errorf("params after release (-got +want):\n%s", diff)
	}
}

func TestAllocateRefuses(t *testing.T) {
	ctx := context.Background()
	svc, clk, _ := newPoolService(t)
	ms := readyMachines(t, svc, clk, "web", 3)
	mustCreate(t, svc, &model.Pool{Name: "bare"})
	readyMachines(t, svc, clk, "bare", 1)
	ms[2].Locked = true
	if err := svc.Update(ctx, ms[2], store.AnyRevision); err != nil {
		t.Fatal(err)
	}

	tests := []struct {
		name      string
		pool      string
		req       AllocateRequest
		wantErr   error
		wantField string
		wantMsg   string
	}{
		{"more than ready (a locked machine is not ready)", "web", AllocateRequest{Count: 3}, model.ErrConflict, "Count", "pool web has 2 ready machines, 3 requested"},
		{"unknown pool", "nope", AllocateRequest{}, model.ErrNotFound, "", `pool "nope"`},
		{"pool without bootenv", "bare", AllocateRequest{}, nil, "BootEnv", "pool bare has no BootEnv"},
		{"unknown bootenv", "web", AllocateRequest{BootEnv: "nope"}, nil, "BootEnv", `bootenv "nope" does not exist`},
		{"negative count", "web", AllocateRequest{Count: -1}, nil, "Count", "must not be negative"},
		{"negative ttl", "web", AllocateRequest{TTL: -5}, nil, "TTL", "must not be negative"},
		{"bad param name", "web", AllocateRequest{Params: map[string]any{"no spaces": 1}}, nil, "Params", "not valid"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := revisions(t, svc)
			_, err := svc.Allocate(ctx, tt.pool, tt.req)
			if err == nil {
				t.Fatal("allocate succeeded")
			}
			if tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
				t.Errorf("err = %v, want %v", err, tt.wantErr)
			}
			if tt.wantField != "" {
				var fields []string
				for _, ve := range model.ValidationErrors(err) {
					fields = append(fields, ve.Field)
				}
				var ce *model.ConflictError
				if errors.As(err, &ce) {
					fields = append(fields, ce.Field)
				}
				if !slices.Contains(fields, tt.wantField) {
					t.Errorf("err %v names fields %v, want %s", err, fields, tt.wantField)
				}
			}
			if !strings.Contains(err.Error(), tt.wantMsg) {
				t.Errorf("err = %q, want it to contain %q", err, tt.wantMsg)
			}
			if diff := cmp.Diff(revisions(t, svc), before); diff != "" {
				t.Errorf("a refused allocation changed machines (-after +before):\n%s", diff)
			}
		})
	}
}

// revisions maps every machine to its revision.
func revisions(t *testing.T, svc *Service) map[string]int64 {
	t.Helper()
	ms, err := store.List[model.Machine](context.Background(), svc.st)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]int64{}
	for _, m := range ms {
		out[m.Name] = m.Revision
	}
	return out
}

func TestAllocateConcurrent(t *testing.T) {
	tests := []struct {
		name              string
		machines, callers int
		count             int
	}{
		{"more callers than machines", 10, 14, 1},
		{"batches that cannot all fit", 10, 5, 3},
		{"exactly enough", 12, 6, 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ctx := context.Background()
			svc, clk, _ := newPoolService(t)
			readyMachines(t, svc, clk, "web", tt.machines)

			var (
				wg      sync.WaitGroup
				mu      sync.Mutex
				got     = map[string]string{} // machine → caller
				ok, bad int
			)
			start := make(chan struct{})
			for c := range tt.callers {
				wg.Go(func() {
					<-start
					ms, err := svc.Allocate(ctx, "web", AllocateRequest{Count: tt.count, Owner: fmt.Sprint("caller-", c)})
					mu.Lock()
					defer mu.Unlock()
					if err != nil {
						var ce *model.ConflictError
						if !errors.As(err, &ce) || ce.Field != "Count" {
							t.Errorf("caller %d: %v, want a Count conflict", c, err)
						}
						bad++
						return
					}
					ok++
					if len(ms) != tt.count {
						t.Errorf("caller %d got %d machines, want %d", c, len(ms), tt.count)
					}
					for _, m := range ms {
						if prev, dup := got[m.UUID]; dup {
							t.Errorf("machine %s allocated to %s and caller-%d", m.Name, prev, c)
						}
						got[m.UUID] = fmt.Sprint("caller-", c)
					}
				})
			}
			close(start)
			wg.Wait()

			if most := tt.machines / tt.count; ok > most || (tt.callers <= most && ok != tt.callers) {
				t.Errorf("%d callers succeeded, %d failed; at most %d can, all when there are enough", ok, bad, most)
			}
			if tt.count == 1 && ok != min(tt.callers, tt.machines) {
				t.Errorf("%d single-machine callers succeeded, want %d", ok, min(tt.callers, tt.machines))
			}
			// The store agrees: every allocated machine is provisioning for
			// the caller that got it; every other machine is ready and free
			// (failed allocations put their claims back).
			ms, err := svc.poolMachines(ctx, "web")
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range ms {
				owner, taken := got[m.UUID]
				switch {
				case taken && (m.State != model.StateProvisioning || m.Allocation == nil || m.Allocation.Owner != owner):
					t.Errorf("machine %s given to %s is %s with allocation %+v", m.Name, owner, m.State, m.Allocation)
				case !taken && (m.State != model.StateReady || m.Allocation != nil || m.Profiles != nil || m.Params != nil):
					t.Errorf("machine %s not given to anyone is %s with allocation %+v, profiles %v, params %v", m.Name, m.State, m.Allocation, m.Profiles, m.Params)
				}
			}
			st, err := svc.PoolStatus(ctx, "web")
			if err != nil {
				t.Fatal(err)
			}
			if st.Ready != tt.machines-len(got) || st.Allocated != len(got) {
				t.Errorf("status ready %d allocated %d, want %d and %d", st.Ready, st.Allocated, tt.machines-len(got), len(got))
			}
		})
	}
}

func TestReleaseWipesAndReturnsToPool(t *testing.T) {
	ctx := context.Background()
	svc, clk, ev := newPoolService(t)
	readyMachines(t, svc, clk, "web", 3)
	ms, err := svc.Allocate(ctx, "web", AllocateRequest{Count: 2, Owner: "job-7"})
	if err != nil {
		t.Fatal(err)
	}
	m := ms[0]
	if _, err := svc.Act(ctx, m.UUID, model.EventRunning, ActionOptions{}); err != nil {
		t.Fatal(err)
	}
	status := func() model.PoolStatus {
		t.Helper()
		st, err := svc.PoolStatus(ctx, "web")
		if err != nil {
			t.Fatal(err)
		}
		return *st
	}
	want := model.PoolStatus{Pool: "web", Machines: 3, Ready: 1, Allocated: 2,
		States: map[model.MachineState]int{model.StateReady: 1, model.StateRunning: 1, model.StateProvisioning: 1}}
	if diff := cmp.Diff(status(), want); diff != "" {
		t.Errorf("status while allocated (-got +want):\n%s", diff)
	}

	got, err := svc.ReleaseMachines(ctx, "web", []string{m.UUID})
	if err != nil {
		t.Fatal(err)
	}
	if got[0].State != model.StateReleasing || got[0].BootEnv != model.BootEnvWipe || got[0].Allocation != nil {
		t.Fatalf("released: state %s bootenv %s allocation %+v, want releasing on wipe without allocation", got[0].State, got[0].BootEnv, got[0].Allocation)
	}
	want = model.PoolStatus{Pool: "web", Machines: 3, Ready: 1, Returning: 1, Allocated: 1,
		States: map[model.MachineState]int{model.StateReady: 1, model.StateReleasing: 1, model.StateProvisioning: 1}}
	if diff := cmp.Diff(status(), want); diff != "" {
		t.Errorf("status while releasing (-got +want):\n%s", diff)
	}
	// The wipe image reports, and the machine is ready again on discovery.
	for _, cb := range []string{model.EventWiping, model.EventWiped} {
		if _, err := svc.Act(ctx, m.UUID, cb, ActionOptions{}); err != nil {
			t.Fatalf("%s: %v", cb, err)
		}
	}
	back := getMachine(t, svc, m.UUID)
	if back.State != model.StateReady || back.BootEnv != model.BootEnvDiscovery || back.Params != nil || back.Profiles != nil {
		t.Errorf("after wiped: state %s bootenv %s params %v profiles %v", back.State, back.BootEnv, back.Params, back.Profiles)
	}
	if st := status(); st.Ready != 2 || st.Returning != 0 {
		t.Errorf("status after wiped: ready %d returning %d, want 2 and 0", st.Ready, st.Returning)
	}
	// It can be allocated again, and being the freshest ready machine it
	// comes last.
	again, err := svc.Allocate(ctx, "web", AllocateRequest{Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	if again[1].UUID != m.UUID {
		t.Errorf("re-allocation order %v, want the wiped machine %s last", uuids(again), m.UUID)
	}
	if diff := cmp.Diff(ev.summary()[2], "pool.release web "+m.UUID); diff != "" {
		t.Errorf("release event (-got +want):\n%s", diff)
	}
}

func TestReleaseMachinesRefusesAll(t *testing.T) {
	ctx := context.Background()
	svc, clk, _ := newPoolService(t)
	readyMachines(t, svc, clk, "web", 3)
	mustCreate(t, svc, &model.Pool{Name: "db", BootEnv: model.BootEnvLinuxKit})
	other := readyMachines(t, svc, clk, "db", 1)[0]
	ms, err := svc.Allocate(ctx, "web", AllocateRequest{Count: 2})
	if err != nil {
		t.Fatal(err)
	}
	free, err := svc.poolMachines(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	var ready string
	for _, m := range free {
		if m.State == model.StateReady {
			ready = m.UUID
		}
	}
	tests := []struct {
		name    string
		pool    string
		uuids   []string
		wantErr error
		wantMsg string
	}{
		{"machine of another pool", "web", []string{ms[0].UUID, other.UUID}, model.ErrConflict, "is in pool db, not web"},
		{"ready machine", "web", []string{ms[0].UUID, ready}, model.ErrConflict, "release is not allowed in state ready"},
		{"unknown machine", "web", []string{ms[0].UUID, "00000000-0000-4000-8000-000000000000"}, model.ErrNotFound, "not found"},
		{"unknown pool", "nope", []string{ms[0].UUID}, model.ErrNotFound, `pool "nope"`},
		{"no machines", "web", nil, nil, "name at least one machine"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := revisions(t, svc)
			_, err := svc.ReleaseMachines(ctx, tt.pool, tt.uuids)
			if err == nil || (tt.wantErr != nil && !errors.Is(err, tt.wantErr)) || !strings.Contains(err.Error(), tt.wantMsg) {
				t.Fatalf("err = %v, want %v containing %q", err, tt.wantErr, tt.wantMsg)
			}
			if diff := cmp.Diff(revisions(t, svc), before); diff != "" {
				t.Errorf("a refused release changed machines (-after +before):\n%s", diff)
			}
		})
	}
}

func TestReleaseSkipWipe(t *testing.T) {
	ctx := context.Background()
	svc, clk, _ := newPoolService(t)
	mustCreate(t, svc, &model.Pool{Name: "fast", BootEnv: model.BootEnvLinuxKit, SkipWipe: true})
	readyMachines(t, svc, clk, "fast", 1)
	ms, err := svc.Allocate(ctx, "fast", AllocateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	m, err := svc.ReleaseAllocation(ctx, ms[0].UUID)
	if err != nil {
		t.Fatal(err)
	}
	if m.State != model.StateReady || m.BootEnv != model.BootEnvDiscovery || m.Allocation != nil {
		t.Errorf("SkipWipe release: state %s bootenv %s allocation %+v, want ready on discovery", m.State, m.BootEnv, m.Allocation)
	}
}

func TestReclaimOnce(t *testing.T) {
	ctx := context.Background()
	svc, clk, ev := newPoolService(t)
	mustCreate(t, svc, &model.Pool{Name: "ci", BootEnv: model.BootEnvLinuxKit, AllocationTTL: 3600, ReleaseFailedAfter: 600})
	ms := readyMachines(t, svc, clk, "ci", 5)
	t0 := clk.Now()

	short, err := svc.Allocate(ctx, "ci", AllocateRequest{Owner: "short"}) // pool TTL: 1 h
	if err != nil {
		t.Fatal(err)
	}
	long, err := svc.Allocate(ctx, "ci", AllocateRequest{Owner: "long", TTL: 7200})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := svc.Act(ctx, ms[4].UUID, model.EventFailed, ActionOptions{Reason: "disk"}); err != nil {
		t.Fatal(err)
	}
	ev.summary()

	steps := []struct {
		name string
		at   time.Duration // since t0
		want []ReclaimAction
	}{
		{"nothing due", 5 * time.Minute, nil},
		{"failed for ten minutes", 10 * time.Minute, []ReclaimAction{{"ci", ms[4].UUID, ReclaimFailed}}},
		{"pool TTL expired", time.Hour, []ReclaimAction{{"ci", short[0].UUID, ReclaimExpired}}},
		{"nothing new", 90 * time.Minute, nil},
		{"request TTL expired", 2 * time.Hour, []ReclaimAction{{"ci", long[0].UUID, ReclaimExpired}}},
	}
	for _, s := range steps {
		clk.Advance(t0.Add(s.at).Sub(clk.Now()))
		got, err := svc.ReclaimOnce(ctx)
		if err != nil {
			t.Fatalf("%s: %v", s.name, err)
		}
		if diff := cmp.Diff(got, s.want); diff != "" {
			t.Errorf("%s: actions (-got +want):\n%s", s.name, diff)
		}
	}
	for _, m := range []string{ms[4].UUID, short[0].UUID, long[0].UUID} {
		got := getMachine(t, svc, m)
		if got.State != model.StateReleasing || got.BootEnv != model.BootEnvWipe || got.Allocation != nil {
			t.Errorf("reclaimed machine %s: state %s bootenv %s allocation %+v", m, got.State, got.BootEnv, got.Allocation)
		}
	}
	if diff := cmp.Diff(ev.summary(), []string{
		"pool.reclaim ci " + ms[4].UUID + " failed",
		"pool.reclaim ci " + short[0].UUID + " expired",
		"pool.reclaim ci " + long[0].UUID + " expired",
	}); diff != "" {
		t.Errorf("events (-got +want):\n%s", diff)
	}
}

func TestReclaimMinReady(t *testing.T) {
	ctx := context.Background()
	svc, clk, ev := newPoolService(t)
	mustCreate(t, svc, &model.Pool{Name: "burst", BootEnv: model.BootEnvLinuxKit, MinReady: 3})
	readyMachines(t, svc, clk, "burst", 6)
	var held []*model.Machine
	for _, req := range []AllocateRequest{
		{Owner: "pinned"}, // not reclaimable: never taken early
		{Owner: "oldest", Reclaimable: true},
		{Owner: "middle", Reclaimable: true},
		{Owner: "newest", Reclaimable: true},
		{Owner: "last", Reclaimable: true},
	} {
		ms, err := svc.Allocate(ctx, "burst", req)
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, ms[0])
		clk.Advance(time.Minute)
	}
	// 1 ready; the oldest running machine fails and is not reclaimable
	// either way.
	if _, err := svc.Act(ctx, held[1].UUID, model.EventFailed, ActionOptions{}); err != nil {
		t.Fatal(err)
	}
	ev.summary()

	got, err := svc.ReclaimOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := []ReclaimAction{{"burst", held[2].UUID, ReclaimMinReady}, {"burst", held[3].UUID, ReclaimMinReady}}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("first pass (-got +want):\n%s", diff)
	}
	// Machines on their way back count: the next pass takes nothing more.
	if got, err := svc.ReclaimOnce(ctx); err != nil || got != nil {
		t.Errorf("second pass: %v, %v; want nothing", got, err)
	}
	if diff := cmp.Diff(len(ev.summary()), 2); diff != "" {
		t.Errorf("pool.reclaim events (-got +want):\n%s", diff)
	}
}

func TestReclaimOrphans(t *testing.T) {
	ctx := context.Background()
	svc, clk, _ := newPoolService(t)
	ms := readyMachines(t, svc, clk, "web", 2)
	got, err := svc.Allocate(ctx, "web", AllocateRequest{})
	if err != nil {
		t.Fatal(err)
	}
	// Released through the machine action, not the pool: the allocation
	// and the pool's profile and params stay behind.
	if _, err := svc.Act(ctx, got[0].UUID, model.EventRelease, ActionOptions{}); err != nil {
		t.Fatal(err)
	}
	// An allocator that stopped after claiming: a ready machine with an
	// allocation.
	if _, err := svc.mutateMachine(ctx, ms[1].UUID, func(m *model.Machine) error {
		m.Allocation = &model.Allocation{ID: "stale", Since: clk.Now()}
		return nil
	}); err != nil {
		t.Fatal(err)
	}

	acts, err := svc.ReclaimOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(acts, []ReclaimAction{{"web", got[0].UUID, ReclaimOrphaned}}); diff != "" {
		t.Errorf("pass within the claim grace (-got +want):\n%s", diff)
	}
	if m := getMachine(t, svc, got[0].UUID); m.Allocation != nil || m.Profiles != nil || m.Params != nil || m.State != model.StateReleasing {
		t.Errorf("orphan after cleanup: %s allocation %+v profiles %v params %v", m.State, m.Allocation, m.Profiles, m.Params)
	}
	clk.Advance(claimGrace)
	acts, err = svc.ReclaimOnce(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(acts, []ReclaimAction{{"web", ms[1].UUID, ReclaimOrphaned}}); diff != "" {
		t.Errorf("pass after the claim grace (-got +want):\n%s", diff)
	}
	if st, err := svc.PoolStatus(ctx, "web"); err != nil || st.Ready != 1 {
		t.Errorf("status %+v, %v; want 1 ready", st, err)
	}
}

// TestRunReclaim drives the loop itself with the fake clock's ticker.
func TestRunReclaim(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	svc, clk, ev := newPoolService(t)
	readyMachines(t, svc, clk, "web", 1)
	ms, err := svc.Allocate(ctx, "web", AllocateRequest{TTL: 60})
	if err != nil {
		t.Fatal(err)
	}
	ev.summary()
	ev.ch = make(chan model.Event, 8)

	done := make(chan error, 1)
	go func() { done <- svc.RunReclaim(ctx, time.Second) }()
	clk.ticks <- clk.Advance(30 * time.Second) // not yet expired
	clk.ticks <- clk.Advance(31 * time.Second) // the first pass has ended: this send was received
	got := <-ev.ch
	if got.Type != EventPoolReclaim || got.Attrs["machine"] != ms[0].UUID || got.Attrs["reason"] != ReclaimExpired {
		t.Errorf("event %+v, want pool.reclaim of %s, expired", got, ms[0].UUID)
	}
	cancel()
	if err := <-done; err != nil {
		t.Errorf("RunReclaim returned %v after cancel, want nil", err)
	}
	if n := len(ev.summary()); n != 1 {
		t.Errorf("%d pool events, want 1", n)
	}
}

func TestFreeMachinesOrder(t *testing.T) {
	// freeMachines orders by readiness age, then UUID for equal times.
	at := time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	ms := []*model.Machine{
		{UUID: "c", Pool: "p", State: model.StateReady, StateChangedAt: at},
		{UUID: "b", Pool: "p", State: model.StateReady, StateChangedAt: at.Add(-time.Hour)},
		{UUID: "a", Pool: "p", State: model.StateReady, StateChangedAt: at},
		{UUID: "d", Pool: "p", State: model.StateRunning},
		{UUID: "e", Pool: "q", State: model.StateReady},
		{UUID: "f", Pool: "p", State: model.StateReady, Locked: true},
	}
	got := uuids(freeMachines(ms, "p"))
	if diff := cmp.Diff(got, []string{"b", "a", "c"}); diff != "" {
		t.Errorf("free machines (-got +want):\n%s", diff)
	}
}

// TestAllocateRollsBack makes provisioning fail after the machines were
// claimed (the pool names a profile deleted since) and checks that every
// claimed machine is put back as it was.
func TestAllocateRollsBack(t *testing.T) {
	ctx := context.Background()
	svc, clk, ev := newPoolService(t)
	ms := readyMachines(t, svc, clk, "web", 3)
	if _, err := svc.Delete(ctx, model.KindProfiles, "web-base", store.AnyRevision); err != nil {
		t.Fatal(err)
	}
	ev.summary()

	_, err := svc.Allocate(ctx, "web", AllocateRequest{Count: 2})
	var fields []string
	for _, ve := range model.ValidationErrors(err) {
		fields = append(fields, ve.Field)
	}
	if !slices.Contains(fields, "Profiles[0]") {
		t.Fatalf("err = %v, want the missing profile named", err)
	}
	for _, m := range ms {
		got := getMachine(t, svc, m.UUID)
		if got.State != model.StateReady || got.Allocation != nil || got.Profiles != nil || got.Params != nil || got.BootEnv != m.BootEnv {
			t.Errorf("machine %s after a failed allocation: %s on %s, allocation %+v, profiles %v, params %v",
				m.Name, got.State, got.BootEnv, got.Allocation, got.Profiles, got.Params)
		}
	}
	if got := ev.summary(); got != nil {
		t.Errorf("a failed allocation published %v", got)
	}
	if st, err := svc.PoolStatus(ctx, "web"); err != nil || st.Ready != 3 {
		t.Errorf("status %+v, %v; want 3 ready", st, err)
	}
}
