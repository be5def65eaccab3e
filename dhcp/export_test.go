package dhcp

import (
	"context"
	"net/netip"

	"github.com/prometheus/client_golang/prometheus"
)

// HandlerForTest returns the packet handler as a function, for the external
// benchmarks: a request arriving on an interface with address ifaddr
// gives the reply bytes (nil for none), once its lease write is durable.
func HandlerForTest(l Leases, ifaddr netip.Prefix) func(ctx context.Context, pkt []byte) ([]byte, error) {
	m, _ := newMetrics(prometheus.NewRegistry())
	lk := &link{name: "bench0", index: 1}
	ps := []netip.Prefix{ifaddr}
	lk.addrs.Store(&ps)
	h := &handler{leases: l, booter: StaticBooter{}, m: m, log: discard(), ours: func(a netip.Addr) bool { return a == ifaddr.Addr() }}
	return func(ctx context.Context, pkt []byte) ([]byte, error) {
		res, err := h.handle(ctx, pkt, inbound{link: lk, port: serverPort})
		if err != nil || res == nil {
			return nil, err
		}
		if res.commit != nil {
			ch := make(chan error, 1)
			res.commit(func(err error) { ch <- err })
			if err := <-ch; err != nil {
				return nil, err
			}
		}
		return res.data, nil
	}
}
