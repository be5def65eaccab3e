package provision

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"time"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
)

// DefaultReclaimInterval is how often RunReclaim runs a pass by default.
const DefaultReclaimInterval = 30 * time.Second

// claimGrace is how long a ready machine may carry an allocation: Allocate
// claims machines and provisions them moments later, so an older one was
// left behind by an allocator that stopped half-way.
const claimGrace = time.Minute

// Reasons the reclaim loop gives for what it does.
const (
	ReclaimExpired  = "expired"
	ReclaimFailed   = "failed"
	ReclaimMinReady = "min-ready"
	ReclaimOrphaned = "orphaned"
)

// ReclaimAction is one thing a reclaim pass did to a machine.
type ReclaimAction struct {
	Pool    string
	Machine string
	// Reason is ReclaimExpired, ReclaimFailed, ReclaimMinReady or
	// ReclaimOrphaned.
	Reason string
}

// RunReclaim runs ReclaimOnce every interval (DefaultReclaimInterval when
// interval is not positive), ticked by the service's Clock, until ctx
// ends; it returns nil then. A failed pass is logged and the loop goes on.
func (s *Service) RunReclaim(ctx context.Context, interval time.Duration) error {
	if interval <= 0 {
		interval = DefaultReclaimInterval
	}
	tick, stop := s.clock.Tick(interval)
	defer stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-tick:
		}
		acts, err := s.ReclaimOnce(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("reclaim pass", "err", err)
		}
		for _, a := range acts {
			s.log.Info("reclaimed machine", "pool", a.Pool, "machine", a.Machine, "reason", a.Reason)
		}
	}
}

// ReclaimOnce runs one pass of the reclaim policy over every pool, at the
// Clock's now, and returns what it did. Per pool, in this order:
//
//  1. orphaned: an allocation left on a machine that is releasing, wiping
//     or discovered (released through the machine actions rather than the
//     pool), or on a ready machine for longer than a minute (an allocator
//     that stopped half-way), is taken away with what it added;
//  2. expired: allocated machines whose allocation has expired are
//     released;
//  3. failed: with ReleaseFailedAfter set, machines failed for at least
//     that long are released (which wipes them);
//  4. min-ready: with MinReady set, while ready plus returning (releasing
//     or wiping) machines are fewer than MinReady, reclaimable allocations
//     are released, the longest-held first. Allocations that are not
//     Reclaimable are never taken early.
//
// Each released machine is published as a pool.reclaim event with its
// reason. A machine that changed since the pass looked at it is skipped;
// other errors are joined and returned after the pass has done the rest.
func (s *Service) ReclaimOnce(ctx context.Context) ([]ReclaimAction, error) {
	pools, err := store.List[model.Pool](ctx, s.st)
	if err != nil {
		return nil, fmt.Errorf("reclaim: list pools: %w", err)
	}
	var (
		acts []ReclaimAction
		errs []error
	)
	for _, p := range pools {
		a, err := s.reclaimPool(ctx, p)
		acts = append(acts, a...)
		if err != nil {
			errs = append(errs, fmt.Errorf("reclaim pool %s: %w", p.Name, err))
		}
		if ctx.Err() != nil {
			break
		}
	}
	return acts, errors.Join(errs...)
}

func (s *Service) reclaimPool(ctx context.Context, p *model.Pool) ([]ReclaimAction, error) {
	ms, err := s.poolMachines(ctx, p.Name)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	var (
		acts []ReclaimAction
		errs []error
	)
	do := func(m *model.Machine, reason string, fn func() error) {
		err := fn()
		switch {
		case err == nil:
			acts = append(acts, ReclaimAction{Pool: p.Name, Machine: m.UUID, Reason: reason})
		case changedMeanwhile(err):
			s.log.Debug("reclaim: machine changed meanwhile", "pool", p.Name, "machine", m.UUID, "reason", reason, "err", err)
		default:
			errs = append(errs, fmt.Errorf("%s machine %s: %w", reason, m.UUID, err))
		}
	}
	release := func(m *model.Machine, reason string) {
		do(m, reason, func() error {
			_, err := s.release(ctx, m.UUID, p.Name, EventPoolReclaim, reason)
			return err
		})
	}
	for _, m := range ms {
		switch {
		case orphaned(m, now):
			do(m, ReclaimOrphaned, func() error { return s.clearOrphan(ctx, m.UUID, m.Allocation.ID, now) })
		case m.Allocation.Expired(now) && releasable(m.State):
			release(m, ReclaimExpired)
		case p.ReleaseFailedAfter > 0 && m.State == model.StateFailed &&
			now.Sub(stateSince(m)) >= time.Duration(p.ReleaseFailedAfter)*time.Second:
			release(m, ReclaimFailed)
		}
	}
	if p.MinReady > 0 {
		if ms, err = s.poolMachines(ctx, p.Name); err != nil {
			return acts, errors.Join(append(errs, err)...)
		}
		st := poolStatus(p, ms, now)
		need := p.MinReady - st.Ready - st.Returning
		for _, m := range reclaimable(ms) {
			if need <= 0 {
				break
			}
			n := len(acts)
			release(m, ReclaimMinReady)
			if len(acts) > n {
				need--
			}
		}
	}
	return acts, errors.Join(errs...)
}

// changedMeanwhile reports errors that mean the machine moved on since the
// pass read it: not the loop's business any more.
func changedMeanwhile(err error) bool {
	var (
		te *model.TransitionError
		ce *model.ConflictError
	)
	return errors.As(err, &te) || errors.As(err, &ce) || errors.Is(err, errNotClaimable) || errors.Is(err, model.ErrNotFound) ||
		errors.Is(err, model.ErrReadOnly)
}

// orphaned reports whether m carries an allocation that no allocate or
// release is going to finish.
func orphaned(m *model.Machine, now time.Time) bool {
	if m.Allocation == nil {
		return false
	}
	switch m.State {
	case model.StateReleasing, model.StateWiping, model.StateDiscovered:
		return true
	case model.StateReady:
		return now.Sub(m.Allocation.Since) >= claimGrace
	}
	return false
}

// clearOrphan takes allocation id and what it added off machine uuid, if
// it is still orphaned.
func (s *Service) clearOrphan(ctx context.Context, uuid, id string, now time.Time) error {
	var alloc *model.Allocation
	m, err := s.mutateMachine(ctx, uuid, func(m *model.Machine) error {
		if m.Allocation == nil || m.Allocation.ID != id || !orphaned(m, now) {
			return errNotClaimable
		}
		alloc = m.Allocation
		unapplyAllocation(m)
		return nil
	})
	if err != nil {
		return err
	}
	s.publishPool(EventPoolReclaim, m.Pool, m, alloc, ReclaimOrphaned)
	return nil
}

// releasable reports whether the release transition applies in state.
func releasable(state model.MachineState) bool {
	_, err := state.Next(model.EventRelease)
	return err == nil
}

// stateSince is when m entered its state: StateChangedAt, or UpdatedAt for
// machines stored before StateChangedAt was kept.
func stateSince(m *model.Machine) time.Time {
	if !m.StateChangedAt.IsZero() {
		return m.StateChangedAt
	}
	return m.UpdatedAt
}

// reclaimable returns the machines whose allocation the min-ready rule may
// take back early, the longest-held first (then by UUID).
func reclaimable(ms []*model.Machine) []*model.Machine {
	var out []*model.Machine
	for _, m := range ms {
		if m.Allocation != nil && m.Allocation.Reclaimable && m.State != model.StateFailed && releasable(m.State) {
			out = append(out, m)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].Allocation.Since, out[j].Allocation.Since
		if !a.Equal(b) {
			return a.Before(b)
		}
		return out[i].UUID < out[j].UUID
	})
	return out
}
