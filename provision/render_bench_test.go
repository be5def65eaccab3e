package provision

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/ironcast/ironcast/auth"
	"github.com/ironcast/ironcast/bootenvs"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/secrets"
	"github.com/ironcast/ironcast/store"
	"github.com/ironcast/ironcast/store/bolt"
)

// jwtTokens issues real HS256 tokens, as the daemon does.
type jwtTokens struct{ a *auth.Authenticator }

func (t jwtTokens) MachineToken(uuid string) (string, error) {
	tok, _, err := t.a.Issue(auth.Principal{Name: "machine:" + uuid, Role: model.RoleReadOnly, Scope: auth.MachineScope(uuid)}, 24*time.Hour)
	return tok, err
}

func (t jwtTokens) RegisterToken() (string, error) {
	tok, _, err := t.a.Issue(auth.Principal{Name: "discovery", Role: model.RoleReadOnly, Scope: auth.ScopeRegister}, time.Hour)
	return tok, err
}

// benchMAC is the primary MAC of bench machine i.
func benchMAC(i int) string {
	return fmt.Sprintf("52:54:01:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff)
}

// newBenchService returns a Service on a real bbolt file holding n
// machines booting discovery (whose iPXE script embeds a machine token),
// each in one of 10 rack profiles, with param definitions and global
// params, and real HS256 tokens. Run runs when run is true (shared objects
// decoded once per generation, outputs cached as cache allows).
func newBenchService(b testing.TB, n int, run bool, cache RenderCacheConfig) *Service {
	b.Helper()
	ctx := context.Background()
	st, err := bolt.Open(filepath.Join(b.TempDir(), "ironcast.db"), &bolt.Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { st.Close() })
	key, err := secrets.LoadOrCreateKey(filepath.Join(b.TempDir(), "secrets.key"))
	if err != nil {
		b.Fatal(err)
	}
	sealer, err := secrets.New(key)
	if err != nil {
		b.Fatal(err)
	}
	cat, err := bootenvs.Load()
	if err != nil {
		b.Fatal(err)
	}
	a, err := auth.New(auth.Config{Key: make([]byte, auth.KeySize), Users: func(context.Context, string) (*model.User, error) {
		return nil, model.ErrNotFound
	}})
	if err != nil {
		b.Fatal(err)
	}
	svc, err := New(Config{Store: st, Sealer: sealer, Catalog: cat, Tokens: jwtTokens{a}, Notifier: nopNotifier{}, RenderCache: cache})
	if err != nil {
		b.Fatal(err)
	}
	if err := svc.EnsureDefaults(ctx); err != nil {
		b.Fatal(err)
	}
	for _, p := range []*model.Param{
		{Name: "ntp-servers", Default: []any{"pool.ntp.org"}},
		{Name: "rack"},
		{Name: "role", Default: "worker"},
		{Name: "locale", Default: "en_US.UTF-8"},
	} {
		if err := svc.Create(ctx, p); err != nil {
			b.Fatal(err)
		}
	}
	g, err := store.Get[model.Profile](ctx, st, model.GlobalProfile)
	if err != nil {
		b.Fatal(err)
	}
	g.Params = map[string]any{"timezone": "UTC", "dns-domain": "lab.example"}
	if err := svc.Update(ctx, g, g.Revision); err != nil {
		b.Fatal(err)
	}
	for r := range 10 {
		if err := svc.Create(ctx, &model.Profile{Name: fmt.Sprintf("rack-%d", r), Params: map[string]any{"rack": r, "ntp-servers": []any{"10.0.0.1"}}}); err != nil {
			b.Fatal(err)
		}
	}
	for i := range n {
		m := &model.Machine{
			Name: fmt.Sprintf("node-%06d", i), HardwareAddrs: []string{benchMAC(i)},
			Address: fmt.Sprintf("10.30.%d.%d", i>>8&0xff, i&0xff), BootEnv: model.BootEnvDiscovery,
			Profiles: []string{fmt.Sprintf("rack-%d", i%10)}, Params: map[string]any{"role": "worker", "index": i},
		}
		if err := store.Create(ctx, st, m); err != nil {
			b.Fatal(err)
		}
	}
	if run {
		rctx, cancel := context.WithCancel(ctx)
		done := make(chan struct{})
		go func() { defer close(done); _ = svc.Run(rctx) }()
		b.Cleanup(func() { cancel(); <-done })
		waitWatching(b, svc)
	}
	return svc
}

type nopNotifier struct{}

func (nopNotifier) Publish(model.Event) {}

func benchReq(i int) model.FileRequest {
	return model.FileRequest{Path: benchMAC(i) + ".ipxe", Protocol: "http",
		Remote: netip.MustParseAddrPort("10.30.0.9:40000"), Local: netip.MustParseAddrPort("10.30.255.1:8091")}
}

// BenchmarkRenderIPXE renders per-machine iPXE scripts (discovery, with a
// machine token) for 1,000 machines on a real bbolt store, cycling through
// the machines, as Service.Render does for an HTTP or TFTP request.
//
//	store   Run not running: every render reads param definitions,
//	        profiles and the bootenv from the store (no cache at all)
//	miss    Run running, output cache off: what a cache miss costs (machine
//	        lookup and decode, shared objects from the generation's
//	        snapshot, template execution, token)
//	cached  Run running, cache warm: machine lookup by MAC and a hit
func BenchmarkRenderIPXE(b *testing.B) {
	const n = 1000
	for _, bc := range []struct {
		name  string
		run   bool
		cache RenderCacheConfig
	}{
		{"store", false, RenderCacheConfig{}},
		{"miss", true, RenderCacheConfig{MaxEntries: -1}},
		{"cached", true, RenderCacheConfig{}},
	} {
		b.Run(bc.name, func(b *testing.B) {
			svc := newBenchService(b, n, bc.run, bc.cache)
			ctx := context.Background()
			reqs := make([]model.FileRequest, n)
			for i := range reqs {
				reqs[i] = benchReq(i)
			}
			for _, r := range reqs { // warm
				if _, _, err := svc.Render(ctx, r); err != nil {
					b.Fatal(err)
				}
			}
			before := svc.RenderCacheStats()
			var next atomic.Int64
			b.ReportAllocs()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := int(next.Add(1)) % n
					out, ok, err := svc.Render(ctx, reqs[i])
					if err != nil || !ok || len(out) == 0 {
						b.Errorf("render %s: ok=%v err=%v", reqs[i].Path, ok, err)
						return
					}
				}
			})
			b.StopTimer()
			after := svc.RenderCacheStats()
			if hits := after.Hits - before.Hits; bc.name == "cached" && hits != uint64(b.N) {
				b.Errorf("%d hits for %d renders", hits, b.N)
			} else if bc.name != "cached" && hits != 0 {
				b.Errorf("%d cache hits", hits)
			}
		})
	}
}
