package dhcp_test

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"path/filepath"
	"sync/atomic"
	"syscall"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/ironcast/ironcast/dhcp"
	"github.com/ironcast/ironcast/ipam"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
	"github.com/ironcast/ironcast/store/bolt"
)

// cpuTime is the process's user+system CPU time in nanoseconds.
func cpuTime() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}

// BenchmarkDORA runs DISCOVER → OFFER → REQUEST → ACK through the handler
// and ipam with every ACK fsync'ed to a bbolt file before the reply is
// returned (ipam's group-commit writer). Many clients are in flight at
// once, as with perfdhcp's rate-driven load: each waits for its ACK, the
// writer commits their leases together. ns/op is per DORA (wall time);
// cpu-µs/DORA is the process's CPU time per DORA, client side (building
// and parsing packets) included. test/bench/dhcp/run.sh measures the
// server as a process against perfdhcp.
func BenchmarkDORA(b *testing.B) {
	for _, clients := range []int{1000, 50000} {
		b.Run(fmt.Sprintf("clients=%d", clients), func(b *testing.B) {
			ctx := context.Background()
			st, err := bolt.Open(filepath.Join(b.TempDir(), "ironcast.db"), nil)
			if err != nil {
				b.Fatal(err)
			}
			defer st.Close()
			sub := &model.Subnet{Name: "bench", Subnet: "10.40.0.0/16", ActiveStart: "10.40.1.0", ActiveEnd: "10.40.255.254", Enabled: true}
			if err := store.Create(ctx, st, sub); err != nil {
				b.Fatal(err)
			}
			alloc, err := ipam.New(ctx, ipam.Config{Store: st})
			if err != nil {
				b.Fatal(err)
			}
			handle := dhcp.HandlerForTest(alloc, netip.MustParsePrefix("10.40.0.1/16"))
			var next atomic.Int64
			b.SetParallelism(64) // clients in flight per CPU
			b.ResetTimer()
			cpu0 := cpuTime()
			defer func() {
				b.ReportMetric(float64(cpuTime()-cpu0)/1e3/float64(b.N), "cpu-µs/DORA")
			}()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := next.Add(1) % int64(clients)
					mac := net.HardwareAddr{2, 0, 0, byte(i >> 16), byte(i >> 8), byte(i)}
					d, _ := dhcpv4.NewDiscovery(mac, dhcpv4.WithRelay(net.IPv4(10, 40, 0, 2)))
					out, err := handle(ctx, d.ToBytes())
					if err != nil {
						b.Error(err)
						return
					}
					offer, err := dhcpv4.FromBytes(out)
					if err != nil {
						b.Error(err)
						return
					}
					r, _ := dhcpv4.NewRequestFromOffer(offer, dhcpv4.WithRelay(net.IPv4(10, 40, 0, 2)))
					out, err = handle(ctx, r.ToBytes())
					if err != nil {
						b.Error(err)
						return
					}
					if ack, err := dhcpv4.FromBytes(out); err != nil || ack.MessageType() != dhcpv4.MessageTypeAck {
						b.Errorf("no ack: %v", err)
						return
					}
				}
			})
		})
	}
}
