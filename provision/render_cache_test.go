package provision

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ironcast/ironcast/bootenvs"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/secrets"
	"github.com/ironcast/ironcast/store"
	"github.com/ironcast/ironcast/store/bolt"
	"github.com/ironcast/ironcast/templates"
)

// waitWatching waits (bounded) until Run has opened its watches.
func waitWatching(t testing.TB, svc *Service) {
	t.Helper()
	for range 1000 {
		svc.state.mu.Lock()
		ok := svc.state.watches != nil && !svc.state.broken
		svc.state.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("Run never opened its watches")
}

type cacheOpts struct {
	cache       RenderCacheConfig
	clock       Clock
	watchBuffer int
}

// newCachedService is newService with Run running (so renders are
// cached), on a bbolt file of its own.
func newCachedService(t *testing.T, o cacheOpts) (*Service, *bolt.Store) {
	t.Helper()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "ironcast.db"), &bolt.Options{NoSync: true, WatchBuffer: o.watchBuffer})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	key, err := secrets.LoadOrCreateKey(filepath.Join(t.TempDir(), "secrets.key"))
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := secrets.New(key)
	if err != nil {
		t.Fatal(err)
	}
	cat, err := bootenvs.Load()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := New(Config{Store: st, Sealer: sealer, Catalog: cat, Tokens: fixedTokens{}, Notifier: nopNotifier{},
		Clock: o.clock, RenderCache: o.cache})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.EnsureDefaults(context.Background()); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- svc.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	waitWatching(t, svc)
	return svc, st
}

// cacheFixture stores what the invalidation tests change: a template and
// a bootenv using it, a param with a default, a profile, and a machine.
const cacheTemplate = `#!ipxe
# {{.Machine.Name}} boots {{.BootEnv.Name}} on {{.Firmware}}
set greeting {{.Param "greeting"}}
set color {{.Param "color"}}
set size {{.Param "size"}}
kernel {{.Env.PathFor "http" .BootEnv.Kernel}} {{.BootParams}}
`

const (
	cacheMAC  = "52:54:00:aa:00:01"
	cacheUUID = "00000000-0000-4000-8000-00000000aa01"
)

func cacheFixture(t *testing.T, svc *Service) {
	t.Helper()
	mustCreate(t, svc, &model.Template{ID: "cache-ipxe", Contents: cacheTemplate})
	mustCreate(t, svc, &model.Param{Name: "size", Default: "small"})
	mustCreate(t, svc, &model.Profile{Name: "blue", Params: map[string]any{"color": "blue"}})
	for _, name := range []string{"cache-a", "cache-b"} {
		mustCreate(t, svc, &model.BootEnv{
			Name:       name,
			BootParams: `mode=` + name + ` greet={{.Param "greeting"}}`,
			Arches:     map[string]model.ArchInfo{model.ArchAMD64: {Kernel: name + "/vmlinuz"}},
			Templates:  []model.TemplateInfo{{Name: model.TemplateIPXE, ID: "cache-ipxe"}},
		})
	}
	ctx := context.Background()
	g, err := svc.Get(ctx, model.KindProfiles, model.GlobalProfile)
	if err != nil {
		t.Fatal(err)
	}
	g.(*model.Profile).Params = map[string]any{"greeting": "hello"}
	if err := svc.Update(ctx, g, store.AnyRevision); err != nil {
		t.Fatal(err)
	}
	mustCreate(t, svc, &model.Machine{UUID: cacheUUID, Name: "node-a", HardwareAddrs: []string{cacheMAC}, Arch: "amd64",
		BootEnv: "cache-a", Profiles: []string{"blue"}})
}

func mustRender(t *testing.T, svc *Service, path string) string {
	t.Helper()
	out, ok, err := svc.Render(context.Background(), req(path))
	if err != nil || !ok {
		t.Fatalf("render %s: ok=%v err=%v", path, ok, err)
	}
	return string(out)
}

// updateObj applies fn to the stored object of kind and key through the
// service.
func updateObj(t *testing.T, svc *Service, kind, key string, fn func(model.Object)) {
	t.Helper()
	obj, err := svc.Get(context.Background(), kind, key)
	if err != nil {
		t.Fatal(err)
	}
	fn(obj)
	if err := svc.Update(context.Background(), obj, store.AnyRevision); err != nil {
		t.Fatalf("update %s %s: %v", kind, key, err)
	}
}

// TestRenderCacheInvalidation renders a machine's script twice (the
// second from the cache), changes one thing it depends on, and checks
// that the very next render shows the change: no TTL, no waiting.
func TestRenderCacheInvalidation(t *testing.T) {
	ctx := context.Background()
	path := cacheMAC + ".ipxe"
	tests := []struct {
		name   string
		change func(t *testing.T, svc *Service, st store.Store)
		want   string // a line the next render must contain
	}{
		{"machine param", func(t *testing.T, svc *Service, _ store.Store) {
			updateObj(t, svc, model.KindMachines, cacheUUID, func(o model.Object) { o.(*model.Machine).Params = map[string]any{"color": "red"} })
		}, "set color red"},
		{"profile param", func(t *testing.T, svc *Service, _ store.Store) {
			updateObj(t, svc, model.KindProfiles, "blue", func(o model.Object) { o.(*model.Profile).Params["color"] = "navy" })
		}, "set color navy"},
		{"global profile", func(t *testing.T, svc *Service, _ store.Store) {
			updateObj(t, svc, model.KindProfiles, model.GlobalProfile, func(o model.Object) { o.(*model.Profile).Params["greeting"] = "hi" })
		}, "set greeting hi"},
		{"param default", func(t *testing.T, svc *Service, _ store.Store) {
			updateObj(t, svc, model.KindParams, "size", func(o model.Object) { o.(*model.Param).Default = "large" })
		}, "set size large"},
		{"bootenv", func(t *testing.T, svc *Service, _ store.Store) {
			updateObj(t, svc, model.KindBootEnvs, "cache-a", func(o model.Object) { o.(*model.BootEnv).BootParams = "mode=changed" })
		}, "vmlinuz mode=changed"},
		{"bootenv params", func(t *testing.T, svc *Service, _ store.Store) {
			updateObj(t, svc, model.KindBootEnvs, "cache-a", func(o model.Object) { o.(*model.BootEnv).Params = map[string]any{"size": "medium"} })
		}, "set size medium"},
		{"template", func(t *testing.T, svc *Service, _ store.Store) {
			updateObj(t, svc, model.KindTemplates, "cache-ipxe", func(o model.Object) {
				o.(*model.Template).Contents = "#!ipxe\necho new template for {{.Machine.Name}}\n"
			})
		}, "echo new template for node-a"},
		{"machine's bootenv", func(t *testing.T, svc *Service, _ store.Store) {
			updateObj(t, svc, model.KindMachines, cacheUUID, func(o model.Object) { o.(*model.Machine).BootEnv = "cache-b" })
		}, "mode=cache-b"},
		{"machine's profiles", func(t *testing.T, svc *Service, _ store.Store) {
			updateObj(t, svc, model.KindMachines, cacheUUID, func(o model.Object) { o.(*model.Machine).Profiles = nil })
		}, "set color <no value>"},
		{"profile written to the store directly", func(t *testing.T, svc *Service, st store.Store) {
			p, err := store.Get[model.Profile](ctx, st, "blue")
			if err != nil {
				t.Fatal(err)
			}
			p.Params["color"] = "teal"
			if err := store.Put(ctx, st, p, p.Revision); err != nil {
				t.Fatal(err)
			}
		}, "set color teal"},
		{"template written to the store directly", func(t *testing.T, svc *Service, st store.Store) {
			if err := store.Put(ctx, st, &model.Template{ID: "cache-ipxe", Contents: "#!ipxe\necho direct\n"}, store.AnyRevision); err != nil {
				t.Fatal(err)
			}
		}, "echo direct"},
		{"machine written to the store directly", func(t *testing.T, svc *Service, st store.Store) {
			if _, err := store.Mutate[model.Machine](ctx, st, cacheUUID, func(m *model.Machine) error {
				m.Params = map[string]any{"color": "direct"}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
		}, "set color direct"},
		{"machine's MAC moved to another machine", func(t *testing.T, svc *Service, st store.Store) {
			updateObj(t, svc, model.KindMachines, cacheUUID, func(o model.Object) { o.(*model.Machine).HardwareAddrs = []string{"52:54:00:aa:00:99"} })
			mustCreate(t, svc, &model.Machine{UUID: "00000000-0000-4000-8000-00000000aa02", Name: "node-b", HardwareAddrs: []string{cacheMAC}, BootEnv: "cache-b", Profiles: []string{"blue"}})
		}, "# node-b boots cache-b"},
		{"firmware reported by DHCP", func(t *testing.T, svc *Service, _ store.Store) {
			svc.firmware.put(cacheMAC, model.FirmwareUEFI64)
		}, "on uefi-x64"},
		{"machine deleted", func(t *testing.T, svc *Service, _ store.Store) {
			if _, err := svc.Delete(ctx, model.KindMachines, cacheUUID, store.AnyRevision); err != nil {
				t.Fatal(err)
			}
		}, "ironcast: discovery for unknown machine " + cacheMAC},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc, st := newCachedService(t, cacheOpts{})
			cacheFixture(t, svc)
			if tc.name == "machine's profiles" {
				updateObj(t, svc, model.KindTemplates, "cache-ipxe", func(o model.Object) {
					o.(*model.Template).Contents = strings.Replace(cacheTemplate, `{{.Param "color"}}`, `{{if .ParamExists "color"}}{{.Param "color"}}{{else}}<no value>{{end}}`, 1)
				})
			}
			first := mustRender(t, svc, path)
			before := svc.RenderCacheStats()
			if got := mustRender(t, svc, path); got != first {
				t.Fatalf("second render differs:\n%s", cmp.Diff(got, first))
			}
			if s := svc.RenderCacheStats(); s.Hits != before.Hits+1 {
				t.Fatalf("second render was not a cache hit: %+v, before %+v", s, before)
			}
			tc.change(t, svc, st)
			got := mustRender(t, svc, path)
			if !strings.Contains(got, tc.want) {
				t.Errorf("render after the change lacks %q:\n%s\nbefore the change:\n%s", tc.want, got, first)
			}
			if again := mustRender(t, svc, path); again != got {
				t.Errorf("render after that differs:\n%s", cmp.Diff(again, got))
			}
		})
	}
}

// TestRenderCacheUnknownMachineRegisters: a MAC rendered as unknown is
// cached as unknown only until a machine with that MAC exists.
func TestRenderCacheUnknownMachineRegisters(t *testing.T) {
	svc, _ := newCachedService(t, cacheOpts{})
	path := "52:54:00:bb:00:01.ipxe"
	for range 2 {
		if got := mustRender(t, svc, path); !strings.Contains(got, "unknown machine 52:54:00:bb:00:01") {
			t.Fatalf("unknown MAC renders:\n%s", got)
		}
	}
	mustCreate(t, svc, &model.Machine{UUID: "00000000-0000-4000-8000-00000000bb01", Name: "new-node", HardwareAddrs: []string{"52:54:00:bb:00:01"}})
	if got := mustRender(t, svc, path); !strings.Contains(got, "discovery for new-node") {
		t.Errorf("render after registration:\n%s", got)
	}
}

// TestRenderCacheKeyedByServerAddress: the URLs in a script name the
// address the client reached, so each address has its own entry.
func TestRenderCacheKeyedByServerAddress(t *testing.T) {
	svc, _ := newCachedService(t, cacheOpts{})
	cacheFixture(t, svc)
	for _, addr := range []string{"10.20.0.1", "192.168.7.1", "10.20.0.1"} {
		r := req(cacheMAC + ".ipxe")
		r.Local = netip.AddrPortFrom(netip.MustParseAddr(addr), 8091)
		out, _, err := svc.Render(context.Background(), r)
		if err != nil {
			t.Fatal(err)
		}
		if want := "http://" + addr + ":8091/cache-a/vmlinuz"; !strings.Contains(string(out), want) {
			t.Errorf("rendered at %s lacks %s:\n%s", addr, want, out)
		}
	}
	if s := svc.RenderCacheStats(); s.Entries != 2 || s.Hits != 1 {
		t.Errorf("stats %+v, want 2 entries and 1 hit", s)
	}
}

// TestRenderErrorsAreNotCached: a failed render is retried on the next
// request, and succeeds as soon as its cause is fixed.
func TestRenderErrorsAreNotCached(t *testing.T) {
	ctx := context.Background()
	svc, _ := newCachedService(t, cacheOpts{})
	cacheFixture(t, svc)
	updateObj(t, svc, model.KindProfiles, model.GlobalProfile, func(o model.Object) { o.(*model.Profile).Params = nil })
	for i := range 3 {
		_, ok, err := svc.Render(ctx, req(cacheMAC+".ipxe"))
		var missing *templates.MissingParamError
		if !ok || !errors.As(err, &missing) || missing.Name != "greeting" {
			t.Fatalf("render %d: ok=%v err=%v, want a missing greeting", i, ok, err)
		}
	}
	if s := svc.RenderCacheStats(); s.Entries != 0 || s.Hits != 0 || s.Misses != 3 {
		t.Errorf("stats after failures %+v, want 0 entries, 0 hits, 3 misses", s)
	}
	// A machine param fixes it: the next render succeeds.
	updateObj(t, svc, model.KindMachines, cacheUUID, func(o model.Object) { o.(*model.Machine).Params = map[string]any{"greeting": "fixed"} })
	if got := mustRender(t, svc, cacheMAC+".ipxe"); !strings.Contains(got, "set greeting fixed") {
		t.Errorf("render after the fix:\n%s", got)
	}
}

// TestRenderCacheBounded renders more machines than the cache holds:
// entries and bytes stay within the bounds and every render stays right.
func TestRenderCacheBounded(t *testing.T) {
	tests := []struct {
		name       string
		cfg        RenderCacheConfig
		maxEntries int
		maxBytes   int64
	}{
		{"entries", RenderCacheConfig{MaxEntries: 5}, 5, DefaultRenderCacheBytes},
		{"bytes", RenderCacheConfig{MaxBytes: 8 << 10}, DefaultRenderCacheEntries, 8 << 10},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			svc, _ := newCachedService(t, cacheOpts{cache: tc.cfg})
			for i := range 30 {
				mustCreate(t, svc, &model.Machine{UUID: fmt.Sprintf("00000000-0000-4000-8000-0000000cc%03d", i), Name: fmt.Sprintf("n%d", i),
					HardwareAddrs: []string{fmt.Sprintf("52:54:00:cc:00:%02x", i)}})
			}
			for round := range 2 {
				for i := range 30 {
					got := mustRender(t, svc, fmt.Sprintf("52:54:00:cc:00:%02x.ipxe", i))
					if !strings.Contains(got, fmt.Sprintf("discovery for n%d ", i)) {
						t.Fatalf("round %d machine %d renders:\n%s", round, i, got)
					}
					s := svc.RenderCacheStats()
					if s.Entries > tc.maxEntries || s.Bytes > tc.maxBytes {
						t.Fatalf("cache holds %d entries, %d bytes; bounds %d, %d", s.Entries, s.Bytes, tc.maxEntries, tc.maxBytes)
					}
				}
			}
			if s := svc.RenderCacheStats(); s.Entries == 0 {
				t.Errorf("nothing cached: %+v", s)
			}
		})
	}
}

// TestRenderCacheLRU checks eviction order, byte accounting, generations
// and dropping a machine's entries directly.
func TestRenderCacheLRU(t *testing.T) {
	c := newRenderCache(RenderCacheConfig{MaxEntries: 2})
	now := time.Now()
	k := func(p string) cacheKey { return cacheKey{path: p, mac: "m-" + p} }
	get := func(gen uint64, p string) (string, bool) {
		out, _, ok := c.get(gen, k(p), now)
		return string(out), ok
	}
	c.put(1, 0, k("a"), "uuid-a", []byte("A"), now)
	c.put(1, 0, k("b"), "uuid-b", []byte("B"), now)
	get(1, "a") // a is now the most recent
	c.put(1, 0, k("c"), "", []byte("C"), now)
	var got []string
	for _, p := range []string{"a", "b", "c"} {
		if out, ok := get(1, p); ok {
			got = append(got, out)
		}
	}
	if diff := cmp.Diff(got, []string{"A", "C"}); diff != "" {
		t.Errorf("kept (-got +want):\n%s", diff)
	}
	if want := k("a").size() + int64(len("uuid-a")+1) + k("c").size() + 1; c.stats().Bytes != want {
		t.Errorf("bytes %d, want %d", c.stats().Bytes, want)
	}
	// A machine write drops the entries rendered for it and for its MACs,
	// and outputs rendered before it are not stored.
	c.dropMachine("uuid-a", []string{"m-c"})
	if s := c.stats(); s.Entries != 0 || s.Bytes != 0 {
		t.Errorf("after dropping uuid-a and m-c: %+v", s)
	}
	c.put(1, 0, k("d"), "", []byte("D"), now)
	if _, ok := get(1, "d"); ok {
		t.Error("an output rendered before a machine write was stored")
	}
	c.put(1, 1, k("d"), "", []byte("D"), now)
	if _, ok := get(1, "d"); !ok {
		t.Error("an output rendered after the machine write was not stored")
	}
	// An older generation's output is never stored or served; a newer one
	// flushes.
	c.put(0, 1, k("old"), "", []byte("X"), now)
	if _, ok := get(1, "old"); ok {
		t.Error("an older generation's output was stored")
	}
	if _, ok := get(2, "d"); ok {
		t.Error("a new generation still serves the old entries")
	}
	if s := c.stats(); s.Entries != 0 || s.Bytes != 0 || len(c.byMAC) != 0 || len(c.byUUID) != 0 {
		t.Errorf("after a new generation: %+v, %d MACs and %d UUIDs indexed", s, len(c.byMAC), len(c.byUUID))
	}
}

// TestRenderCacheTTL: an entry (and the token in it) is served for at
// most the TTL, which is capped at MaxRenderCacheTTL.
func TestRenderCacheTTL(t *testing.T) {
	clk := newFakeClock()
	svc, _ := newCachedService(t, cacheOpts{clock: clk, cache: RenderCacheConfig{TTL: 24 * time.Hour}})
	cacheFixture(t, svc)
	path := cacheMAC + ".ipxe"
	mustRender(t, svc, path)
	clk.Advance(MaxRenderCacheTTL - time.Second)
	mustRender(t, svc, path)
	if s := svc.RenderCacheStats(); s.Hits != 1 {
		t.Fatalf("within the TTL: %+v, want 1 hit", s)
	}
	clk.Advance(2 * time.Second)
	mustRender(t, svc, path)
	if s := svc.RenderCacheStats(); s.Hits != 1 || s.Misses != 2 {
		t.Errorf("past the TTL: %+v, want still 1 hit and 2 misses", s)
	}
}

// TestRenderCacheOnlyWhileRunning: without Run nothing is cached and every
// render reads the store.
func TestRenderCacheOnlyWhileRunning(t *testing.T) {
	svc, _, _ := newService(t)
	cacheFixture(t, svc)
	if err := svc.LoadTemplates(context.Background()); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		mustRender(t, svc, cacheMAC+".ipxe")
	}
	if s := svc.RenderCacheStats(); s.Entries != 0 || s.Hits != 0 {
		t.Errorf("cached without Run: %+v", s)
	}
}

// TestRenderCacheWatchOverflow: a watch that falls behind (more writes
// than its buffer before anything drains it) is closed by the store; the
// service then renders from the store, and Run re-opens it.
func TestRenderCacheWatchOverflow(t *testing.T) {
	svc, st := newCachedService(t, cacheOpts{watchBuffer: 2})
	cacheFixture(t, svc) // may itself overflow: Run re-opens
	waitWatching(t, svc)
	ctx := context.Background()
	mustRender(t, svc, cacheMAC+".ipxe")
	// Written to the store directly, in one burst, so that nothing drains
	// between the writes.
	svc.state.mu.Lock()
	for i := range 5 {
		p := &model.Profile{Name: "blue", Params: map[string]any{"color": fmt.Sprintf("shade-%d", i)}}
		if err := store.Put(ctx, st, p, store.AnyRevision); err != nil {
			svc.state.mu.Unlock()
			t.Fatal(err)
		}
	}
	svc.drainLocked()
	broken := svc.state.broken
	svc.state.mu.Unlock()
	if !broken {
		t.Fatal("5 writes did not overflow a watch buffer of 2")
	}
	if got := mustRender(t, svc, cacheMAC+".ipxe"); !strings.Contains(got, "set color shade-4") {
		t.Fatalf("render after the overflow:\n%s", got)
	}
	waitWatching(t, svc)
	before := svc.RenderCacheStats()
	for range 2 {
		if got := mustRender(t, svc, cacheMAC+".ipxe"); !strings.Contains(got, "set color shade-4") {
			t.Fatalf("render after the watches are back:\n%s", got)
		}
	}
	if s := svc.RenderCacheStats(); s.Hits == before.Hits {
		t.Errorf("no cache hit once the watches are back: %+v", s)
	}
}

// TestRenderCacheConcurrent renders from many goroutines while a profile
// changes: every output is one of the profile's values, and once the last
// write has returned every render shows it. Run with -race.
func TestRenderCacheConcurrent(t *testing.T) {
	svc, _ := newCachedService(t, cacheOpts{cache: RenderCacheConfig{MaxEntries: 3}})
	cacheFixture(t, svc)
	for i := range 4 {
		mustCreate(t, svc, &model.Machine{UUID: fmt.Sprintf("00000000-0000-4000-8000-0000000dd%03d", i), Name: fmt.Sprintf("d%d", i),
			HardwareAddrs: []string{fmt.Sprintf("52:54:00:dd:00:%02x", i)}, BootEnv: "cache-a", Profiles: []string{"blue"}})
	}
	const writes = 20
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	errs := make(chan error, 8)
	for g := range 8 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ctx.Err() == nil && i < 5000; i++ {
				path := fmt.Sprintf("52:54:00:dd:00:%02x.ipxe", (g+i)%4)
				out, _, err := svc.Render(context.Background(), req(path))
				if err != nil {
					errs <- err
					return
				}
				if !strings.Contains(string(out), "set color shade-") && !strings.Contains(string(out), "set color blue") {
					errs <- fmt.Errorf("%s renders:\n%s", path, out)
					return
				}
			}
		}()
	}
	for i := range writes {
		updateObj(t, svc, model.KindProfiles, "blue", func(o model.Object) { o.(*model.Profile).Params["color"] = fmt.Sprintf("shade-%d", i) })
	}
	for i := range 4 {
		got := mustRender(t, svc, fmt.Sprintf("52:54:00:dd:00:%02x.ipxe", i))
		if want := fmt.Sprintf("set color shade-%d\n", writes-1); !strings.Contains(got, want) {
			t.Errorf("machine %d after the last write lacks %q:\n%s", i, want, got)
		}
	}
	cancel()
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
}

// TestRenderCacheSharedValuesAreCopied: a template that changes a param
// dict in place (sprig's set) does not change what the next render sees.
func TestRenderCacheSharedValuesAreCopied(t *testing.T) {
	svc, _ := newCachedService(t, cacheOpts{cache: RenderCacheConfig{MaxEntries: -1}})
	cacheFixture(t, svc)
	updateObj(t, svc, model.KindProfiles, "blue", func(o model.Object) { o.(*model.Profile).Params["disk"] = map[string]any{"dev": "sda"} })
	updateObj(t, svc, model.KindTemplates, "cache-ipxe", func(o model.Object) {
		o.(*model.Template).Contents = `{{$d := .Param "disk"}}dev={{$d.dev}}{{$_ := set $d "dev" "mutated"}}`
	})
	for range 3 {
		if got := mustRender(t, svc, cacheMAC+".ipxe"); got != "dev=sda" {
			t.Fatalf("got %q, want dev=sda", got)
		}
	}
}

var macTargetCases = []struct {
	name, path, query string
	mac, tmpl         string
	ok                bool
}{
	{"ipxe colon", "52:54:00:aa:00:01.ipxe", "", "52:54:00:aa:00:01", model.TemplateIPXE, true},
	{"ipxe plain hex", "525400AA0001.ipxe", "", "52:54:00:aa:00:01", model.TemplateIPXE, true},
	{"ipxe dashes", "52-54-00-aa-00-01.ipxe", "", "52:54:00:aa:00:01", model.TemplateIPXE, true},
	{"default with mac", "default.ipxe", "52:54:00:aa:00:01", "52:54:00:aa:00:01", model.TemplateIPXE, true},
	{"default without mac", "default.ipxe", "", "", "", false},
	{"boot with mac", "boot.ipxe", "525400aa0001", "52:54:00:aa:00:01", model.TemplateIPXE, true},
	{"pxelinux", "pxelinux.cfg/01-52-54-00-aa-00-01", "", "52:54:00:aa:00:01", model.TemplatePXELinux, true},
	{"pxelinux hex ip", "pxelinux.cfg/0A140032", "", "", "", false},
	{"pxelinux default", "pxelinux.cfg/default", "", "", "", false},
	{"grub 01", "grub/grub.cfg-01-52-54-00-aa-00-01", "", "52:54:00:aa:00:01", model.TemplateGRUB, true},
	{"grub bare", "grub/grub.cfg-52:54:00:aa:00:01", "", "52:54:00:aa:00:01", model.TemplateGRUB, true},
	{"grub generic", "grub/grub.cfg", "", "", "", false},
	{"not a mac", "hello.ipxe", "", "", "", false},
	{"ipxe in a directory", "x/52:54:00:aa:00:01.ipxe", "", "", "", false},
	{"machines path", "machines/00000000-0000-4000-8000-00000000aa01/user-data", "", "", "", false},
}

// TestMacTarget: the paths that name their MAC, which the cache answers
// without a store read.
func TestMacTarget(t *testing.T) {
	for _, tc := range macTargetCases {
		t.Run(tc.name, func(t *testing.T) {
			r := model.FileRequest{Path: tc.path}
			if tc.query != "" {
				r.Query = map[string]string{"mac": tc.query}
			}
			mac, tmpl, ok := macTarget(r)
			if diff := cmp.Diff([]any{mac, tmpl, ok}, []any{tc.mac, tc.tmpl, tc.ok}); diff != "" {
				t.Errorf("macTarget(%q, mac=%q) (-got +want):\n%s", tc.path, tc.query, diff)
			}
		})
	}
}

// FuzzMacTarget: a MAC found in a path is normalised, and the timeline
// files the request under the same MAC.
func FuzzMacTarget(f *testing.F) {
	for _, tc := range macTargetCases {
		f.Add(tc.path, tc.query)
	}
	f.Fuzz(func(t *testing.T, path, query string) {
		r := model.FileRequest{Path: path, Query: map[string]string{"mac": query}}
		mac, tmpl, ok := macTarget(r)
		if !ok {
			return
		}
		if n, err := model.NormalizeMAC(mac); err != nil || n != mac {
			t.Fatalf("macTarget(%q) = %q, not a normalised MAC (%q, %v)", path, mac, n, err)
		}
		if tmpl != model.TemplateIPXE && tmpl != model.TemplatePXELinux && tmpl != model.TemplateGRUB {
			t.Fatalf("macTarget(%q) template %q", path, tmpl)
		}
		if name := strings.TrimSuffix(path, ".ipxe"); name != "default" && name != "boot" {
			if k := pathKey(path); k != mac {
				t.Fatalf("macTarget(%q) = %q but the timeline files it under %q", path, mac, k)
			}
		}
	})
}
