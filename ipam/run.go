package ipam

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
)

// Run keeps the allocator current until ctx ends, then returns nil:
// subnet and reservation changes in the store are applied at once (a
// watch; if the watch falls behind, everything is reread), leases deleted
// through the API are forgotten, and every SweepInterval bound leases and
// offers that ran out are stored as expired (lapsed offers never stored
// are dropped).
func (a *Allocator) Run(ctx context.Context) error {
	go a.watchLeases(ctx)
	t := time.NewTicker(a.cfg.SweepInterval)
	defer t.Stop()
	defer func() {
		a.mu.Lock()
		rounds, writes := a.rounds, a.writes
		a.mu.Unlock()
		a.log.Info("ipam stopped", "writer_rounds", rounds, "lease_writes", writes)
	}()
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
// destroy). Whenever the watch (re)starts, which includes after it fell
// behind and was closed, the leases are reread so that deletes made
// meanwhile are not missed.
func (a *Allocator) watchLeases(ctx context.Context) {
	first := true
	for ctx.Err() == nil {
		ch, err := a.st.Watch(ctx, model.KindLeases)
		if err != nil {
			if !sleep(ctx, time.Second) {
				return
			}
			continue
		}
		if !first {
			// Started after the watch: deletes from before are read here.
			if err := a.syncLeases(ctx); err != nil {
				a.log.Warn("ipam lease resync", "err", err)
			}
		}
		first = false
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
		if ctx.Err() == nil {
			a.log.Info("ipam lease watch fell behind; rereading leases")
		}
	}
}

// syncLeases forgets the stored leases the store no longer holds. Leases
// not stored yet (an offer or ACK still queued) and leases written since
// the listing began are kept.
func (a *Allocator) syncLeases(ctx context.Context) error {
	a.mu.Lock()
	r0 := a.rounds
	a.mu.Unlock()
	keys := map[string]bool{}
	if err := a.st.List(ctx, model.KindLeases, func(e store.Entry) error {
		keys[e.Key] = true
		return nil
	}); err != nil {
		return fmt.Errorf("list leases: %w", err)
	}
	var gone []netip.Addr
	a.mu.Lock()
	for v, l := range a.leases {
		if addr := addrOf(v); l.stored && l.savedAt <= r0 && !keys[addr.String()] {
			gone = append(gone, addr)
		}
	}
	a.mu.Unlock()
	for _, addr := range gone {
		a.forget(addr)
	}
	if len(gone) > 0 {
		a.log.Info("ipam forgot leases deleted while the watch lagged", "leases", len(gone))
	}
	return nil
}

// forget drops the lease of addr from memory.
func (a *Allocator) forget(addr netip.Addr) {
	a.mu.Lock()
	defer a.mu.Unlock()
	if l := a.lease(addr); l != nil {
		a.drop(l)
	}
}

// sweep stores bound leases and stored offers that ran out as expired,
// and drops lapsed offers that were never stored (their write failed or
// is still queued), freeing their addresses for nextFree.
func (a *Allocator) sweep(ctx context.Context) {
	now := stampOf(a.cfg.Now())
	var ended []*lease
	a.mu.Lock()
	for _, l := range a.leases {
		if live(l, now) {
			continue
		}
		switch {
		case l.state == stateOffered && !l.stored:
			a.drop(l) // deleting the entry being visited is allowed
		case l.state == stateBound || l.state == stateOffered:
			l.state = stateExpired
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
