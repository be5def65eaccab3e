package ipam_test

import (
	"context"
	"fmt"
	"net/netip"
	"path/filepath"
	"runtime"
	"sync"
	"testing"

	"github.com/ironcast/ironcast/dhcp"
	"github.com/ironcast/ironcast/ipam"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
	"github.com/ironcast/ironcast/store/bolt"
)

// BenchmarkGCWithLeases measures what the allocator's in-memory state
// costs the garbage collector: ns/op is one full GC cycle with N bound
// leases live (and little else). The DHCP server pays that cost once per
// cycle, and cycles come about as often whatever the lease count, so a
// state that is cheap to mark keeps CPU per DORA flat as clients grow.
func BenchmarkGCWithLeases(b *testing.B) {
	for _, n := range []int{1000, 50000} {
		b.Run(fmt.Sprintf("leases=%d", n), func(b *testing.B) {
			ctx := context.Background()
			st, err := bolt.Open(filepath.Join(b.TempDir(), "ironcast.db"), &bolt.Options{NoSync: true})
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			sub := &model.Subnet{Name: "bench", Subnet: "10.40.0.0/16", ActiveStart: "10.40.1.0", ActiveEnd: "10.40.255.254", Enabled: true}
			if err := store.Create(ctx, st, sub); err != nil {
				b.Fatal(err)
			}
			a, err := ipam.New(ctx, ipam.Config{Store: st})
			if err != nil {
				b.Fatal(err)
			}
			relay := netip.MustParseAddr("10.40.0.2")
			var wg sync.WaitGroup
			const workers = 64
			for w := range workers {
				wg.Go(func() {
					for i := w; i < n; i += workers {
						mac := fmt.Sprintf("02:00:00:%02x:%02x:%02x", i>>16&0xff, i>>8&0xff, i&0xff)
						d, err := a.Discover(ctx, &dhcp.LeaseRequest{MAC: mac, Relay: relay})
						if err != nil {
							b.Error(err)
							return
						}
						ack, err := a.Request(ctx, &dhcp.LeaseRequest{MAC: mac, Relay: relay, Requested: d.Addr, ServerID: relay})
						if err != nil || ack.Action != dhcp.ActionAck {
							b.Errorf("request %s: %v %v", mac, err, ack.Reason)
							return
						}
						if err := durable(ack); err != nil {
							b.Error(err)
							return
						}
					}
				})
			}
			wg.Wait()
			runtime.GC()
			var ms runtime.MemStats
			runtime.ReadMemStats(&ms)
			for b.Loop() {
				runtime.GC()
			}
			b.ReportMetric(float64(ms.HeapAlloc)/float64(n), "heap-B/lease")
			b.ReportMetric(float64(ms.HeapObjects)/float64(n), "objects/lease")
			runtime.KeepAlive(a)
		})
	}
}
