package ipam

import (
	"context"
	"net/netip"
	"time"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
)

// Run keeps the allocator current until ctx ends, then returns nil:
// subnet and reservation changes in the store are applied at once (a
// watch; if the watch falls behind, everything is reread), leases deleted
// through the API are forgotten, and every SweepInterval bound leases that
// ran out are stored as expired and lapsed offers are dropped.
func (a *Allocator) Run(ctx context.Context) error {
	go a.watchLeases(ctx)
	t := time.NewTicker(a.cfg.SweepInterval)
	defer t.Stop()
	for ctx.Err() == nil {
		sw, err1 := a.st.Watch(ctx, model.KindSubnets)
		rw, err2 := a.st.Watch(ctx, model.KindReservations)
		if err1 != nil || err2 != nil {
			a.log.Warn("ipam watch", "err", firstErr(err1, err2))
			if !sleep(ctx, time.Second) {
				return nil
			}
			continue
		}
		// Changes made before the watches started are read here.
		if err := a.reload(ctx); err != nil {
			a.log.Warn("ipam reload", "err", err)
		}
	watch:
		for {
			select {
			case <-ctx.Done():
				return nil
			case _, ok := <-sw:
				if !ok {
					break watch
				}
				a.changed(ctx, sw, rw)
			case _, ok := <-rw:
				if !ok {
					break watch
				}
				a.changed(ctx, sw, rw)
			case <-t.C:
				a.sweep(ctx)
			}
		}
		// A closed watch: drain the other, start over.
		for range sw {
		}
		for range rw {
		}
	}
	return nil
}

// changed rereads subnets and reservations after an event, first
// draining events already queued so that a burst costs one reload.
func (a *Allocator) changed(ctx context.Context, sw, rw <-chan store.Event) {
	for drained := false; !drained; {
		select {
		case <-sw:
		case <-rw:
		default:
			drained = true
		}
	}
	if err := a.reload(ctx); err != nil {
		a.log.Warn("ipam reload", "err", err)
		return
	}
	a.log.Info("ipam subnets or reservations changed", "subnets", len(a.subnets))
}

// watchLeases forgets leases deleted from the store (ironcast leases
// destroy). If the watch falls behind it is restarted; deletes missed
// meanwhile stay in memory until the next restart.
func (a *Allocator) watchLeases(ctx context.Context) {
	for ctx.Err() == nil {
		ch, err := a.st.Watch(ctx, model.KindLeases)
		if err != nil {
			if !sleep(ctx, time.Second) {
				return
			}
			continue
		}
		for ev := range ch {
			if ev.Type != store.Deleted {
				continue
			}
			addr, err := netip.ParseAddr(ev.Key)
			if err != nil {
				continue
			}
			a.forget(addr)
		}
	}
}

// forget drops the lease of addr from memory.
func (a *Allocator) forget(addr netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	l := a.leases[addr]
	if l == nil {
		return
	}
	delete(a.leases, addr)
	if ss := l.sub; ss != nil {
		if ss.byMAC[l.mac] == l {
			delete(ss.byMAC, l.mac)
		}
		if a.resvByAddr[addr] == nil {
			ss.setUsed(addr, false)
		}
	}
}

// sweep stores bound leases that ran out as expired and drops lapsed
// offers that were never stored, freeing their addresses for nextFree.
func (a *Allocator) sweep(ctx context.Context) {
	now := a.cfg.Now()
	var ended []*lease
	a.mu.Lock()
	for addr, l := range a.leases {
		if live(l, now) {
			continue
		}
		switch {
		case l.state == model.LeaseOffered && !l.stored:
			delete(a.leases, addr)
			if ss := l.sub; ss != nil {
				if ss.byMAC[l.mac] == l {
					delete(ss.byMAC, l.mac)
				}
				if a.resvByAddr[addr] == nil {
					ss.setUsed(addr, false)
				}
			}
		case l.state == model.LeaseBound || l.state == model.LeaseOffered:
			l.state = model.LeaseExpired
			ended = append(ended, l)
		}
	}
	if len(ended) == 0 {
		a.mu.Unlock()
		return
	}
	c := a.write(ended...)
	a.mu.Unlock()
	if err := c.wait(ctx); err != nil {
		a.log.Warn("store expired leases", "leases", len(ended), "err", err)
	}
}

func firstErr(errs ...error) error {
	for _, e := range errs {
		if e != nil {
			return e
		}
	}
	return nil
}

func sleep(ctx context.Context, d time.Duration) bool {
	select {
	case <-ctx.Done():
		return false
	case <-time.After(d):
		return true
	}
}
