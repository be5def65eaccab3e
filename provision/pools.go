package provision

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"sort"
	"time"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
)

// AllocateRequest asks a pool for ready machines; see model.AllocateRequest.
type AllocateRequest = model.AllocateRequest

// Pool event types published through the Notifier. Kind is "pools", Key
// the pool, and Attrs name the machine ("machine"), the allocation
// ("allocation", "owner") and, for pool.reclaim, the reason: "expired",
// "failed", "min-ready" or "orphaned".
const (
	EventPoolAllocate = "pool.allocate"
	EventPoolRelease  = "pool.release"
	EventPoolReclaim  = "pool.reclaim"
)

// errNotClaimable makes a claim skip a machine another caller changed.
var errNotClaimable = errors.New("machine is no longer ready and free")

// Allocate takes req.Count (default 1) ready, unallocated, unlocked
// machines of pool, longest-ready first, and provisions them: each gets the
// pool's Profiles, the pool's Params overlaid with req.Params, an
// Allocation record and the provision transition with req.BootEnv (default
// the pool's BootEnv). It returns the machines as stored.
//
// Allocation is all or nothing and safe for concurrent callers: machines
// are first claimed one by one with compare-and-swap, so no machine is
// ever handed to two callers; if fewer than Count can be claimed, or
// provisioning one fails, every machine taken is put back as it was. Too
// few ready machines is a *model.ConflictError (HTTP 409) saying how many
// are ready; an unknown pool is model.ErrNotFound.
func (s *Service) Allocate(ctx context.Context, pool string, req AllocateRequest) ([]*model.Machine, error) {
	if err := req.Validate(); err != nil {
		return nil, err
	}
	count := req.Count
	if count == 0 {
		count = 1
	}
	p, err := store.Get[model.Pool](ctx, s.st, pool)
	if err != nil {
		return nil, fmt.Errorf("pool %q: %w", pool, err)
	}
	bootenv := req.BootEnv
	if bootenv == "" {
		bootenv = p.BootEnv
	}
	if bootenv == "" {
		return nil, model.Invalid("BootEnv", "pool %s has no BootEnv: name one in the request", pool)
	}
	if _, err := s.Get(ctx, model.KindBootEnvs, bootenv); errors.Is(err, model.ErrNotFound) {
		return nil, model.Invalid("BootEnv", "bootenv %q does not exist", bootenv)
	} else if err != nil {
		return nil, err
	}
	ms, err := s.poolMachines(ctx, pool)
	if err != nil {
		return nil, err
	}
	ready := freeMachines(ms, pool)
	if len(ready) < count {
		return nil, notEnough(pool, len(ready), count)
	}

	now := s.clock.Now().UTC()
	ttl := req.TTL
	if ttl == 0 {
		ttl = p.AllocationTTL
	}
	alloc := model.Allocation{ID: model.NewUUID(), Owner: req.Owner, Since: now, Reclaimable: req.Reclaimable, BootEnv: bootenv}
	if ttl > 0 {
		alloc.Expires = now.Add(time.Duration(ttl) * time.Second)
	}

	// Phase 1: claim. A claimed machine stays ready but carries the
	// allocation, which makes every other allocator skip it.
	prevBootEnv := map[string]string{}
	var claimed []string
	for _, cand := range ready {
		if len(claimed) == count {
			break
		}
		m, err := s.mutateMachine(ctx, cand.UUID, func(m *model.Machine) error {
			if !free(m, pool) {
				return errNotClaimable
			}
			a := alloc
			m.Allocation = &a
			return nil
		})
		if errors.Is(err, errNotClaimable) || errors.Is(err, model.ErrNotFound) {
			continue
		}
		if err != nil {
			s.unclaim(ctx, claimed, alloc.ID, prevBootEnv)
			return nil, fmt.Errorf("allocate from pool %s: claim machine %s: %w", pool, cand.UUID, err)
		}
		prevBootEnv[m.UUID] = m.BootEnv
		claimed = append(claimed, m.UUID)
	}
	if len(claimed) < count {
		s.unclaim(ctx, claimed, alloc.ID, prevBootEnv)
		return nil, notEnough(pool, len(claimed), count)
	}

	// Phase 2: apply the pool and request, and provision.
	out := make([]*model.Machine, 0, count)
	for _, uuid := range claimed {
		m, err := s.mutateMachine(ctx, uuid, func(m *model.Machine) error {
			if m.Allocation == nil || m.Allocation.ID != alloc.ID {
				return &model.ConflictError{Field: "Allocation", Message: fmt.Sprintf("machine %s was changed while it was being allocated", m.UUID)}
			}
			applyAllocation(m, p, req.Params)
			if err := s.applyEvent(m, model.EventProvision, ""); err != nil {
				return err
			}
			m.BootEnv = bootenv
			return nil
		})
		if err != nil {
			s.unclaim(ctx, claimed, alloc.ID, prevBootEnv)
			return nil, fmt.Errorf("allocate from pool %s: provision machine %s: %w", pool, uuid, err)
		}
		out = append(out, m)
	}
	for _, m := range out {
		s.publishPool(EventPoolAllocate, pool, m, m.Allocation, "")
	}
	s.log.Info("allocated machines", "pool", pool, "count", count, "owner", req.Owner, "allocation", alloc.ID, "bootenv", bootenv)
	return out, nil
}

func notEnough(pool string, ready, want int) error {
	return &model.ConflictError{Field: "Count", Message: fmt.Sprintf("pool %s has %d ready machines, %d requested", pool, ready, want)}
}

// unclaim puts machines taken by allocation id back as they were before:
// ready, on their previous bootenv, without what the allocation added.
// It is best effort (the caller is already failing); problems are logged.
func (s *Service) unclaim(ctx context.Context, uuids []string, id string, prevBootEnv map[string]string) {
	for _, uuid := range uuids {
		_, err := s.mutateMachine(ctx, uuid, func(m *model.Machine) error {
			if m.Allocation == nil || m.Allocation.ID != id {
				return errNotClaimable
			}
			unapplyAllocation(m)
			if m.State == model.StateProvisioning {
				// Never booted: compensate the provision transition.
				m.State = model.StateReady
				m.BootEnv = prevBootEnv[m.UUID]
			}
			return nil
		})
		if err != nil {
			s.log.Warn("put back a machine of a failed allocation", "machine", uuid, "allocation", id, "err", err)
		}
	}
}

// applyAllocation adds the pool's profiles and the pool's and request's
// params to m and records in m.Allocation what it added and replaced.
func applyAllocation(m *model.Machine, p *model.Pool, reqParams map[string]any) {
	a := m.Allocation
	a.Profiles, a.Params, a.Replaced = nil, nil, nil
	for _, pr := range p.Profiles {
		if !slices.Contains(m.Profiles, pr) {
			m.Profiles = append(m.Profiles, pr)
			a.Profiles = append(a.Profiles, pr)
		}
	}
	params := maps.Clone(p.Params)
	if params == nil {
		params = map[string]any{}
	}
	maps.Copy(params, reqParams)
	if len(params) > 0 && m.Params == nil {
		m.Params = map[string]any{}
	}
	for _, k := range slices.Sorted(maps.Keys(params)) {
		if old, ok := m.Params[k]; ok {
			if a.Replaced == nil {
				a.Replaced = map[string]any{}
			}
			a.Replaced[k] = old
		}
		m.Params[k] = params[k]
		a.Params = append(a.Params, k)
	}
}

// unapplyAllocation takes away what applyAllocation added and clears the
// allocation.
func unapplyAllocation(m *model.Machine) {
	a := m.Allocation
	if a == nil {
		return
	}
	m.Profiles = slices.DeleteFunc(m.Profiles, func(p string) bool { return slices.Contains(a.Profiles, p) })
	if len(m.Profiles) == 0 {
		m.Profiles = nil
	}
	for _, k := range a.Params {
		if old, ok := a.Replaced[k]; ok {
			m.Params[k] = old
		} else {
			delete(m.Params, k)
		}
	}
	if len(m.Params) == 0 {
		m.Params = nil
	}
	m.Allocation = nil
}

// ReleaseAllocation releases a machine: the release transition (the
// machine boots wipe, or returns straight to ready when its pool has
// SkipWipe), minus the profiles and params its allocation added, and
// without the allocation. A machine that is not allocated is released all
// the same. A state that cannot be released is a *model.TransitionError.
func (s *Service) ReleaseAllocation(ctx context.Context, uuid string) (*model.Machine, error) {
	return s.release(ctx, uuid, "", EventPoolRelease, "")
}

// ReleaseMachines releases machines of pool with ReleaseAllocation. Every
// machine is checked first: an unknown machine is model.ErrNotFound, one
// of another pool or in a state that cannot be released is an
// ErrConflict, and then none is released.
func (s *Service) ReleaseMachines(ctx context.Context, pool string, uuids []string) ([]*model.Machine, error) {
	if len(uuids) == 0 {
		return nil, model.Invalid("Machines", "name at least one machine")
	}
	if _, err := store.Get[model.Pool](ctx, s.st, pool); err != nil {
		return nil, fmt.Errorf("pool %q: %w", pool, err)
	}
	for i, uuid := range uuids {
		m, err := store.Get[model.Machine](ctx, s.st, uuid)
		if err != nil {
			return nil, fmt.Errorf("machine %s: %w", uuid, err)
		}
		if m.Pool != pool {
			return nil, &model.ConflictError{Field: fmt.Sprintf("Machines[%d]", i), Message: fmt.Sprintf("machine %s is in pool %s, not %s", uuid, m.Pool, pool)}
		}
		if _, err := m.State.Next(model.EventRelease); err != nil {
			return nil, fmt.Errorf("machine %s: %w", uuid, err)
		}
	}
	out := make([]*model.Machine, 0, len(uuids))
	var errs []error
	for _, uuid := range uuids {
		m, err := s.release(ctx, uuid, pool, EventPoolRelease, "")
		if err != nil {
			errs = append(errs, fmt.Errorf("release machine %s: %w", uuid, err))
			continue
		}
		out = append(out, m)
	}
	return out, errors.Join(errs...)
}

// release applies the release transition to uuid, takes its allocation
// away and publishes evType. pool, when set, must be the machine's pool.
func (s *Service) release(ctx context.Context, uuid, pool, evType, reason string) (*model.Machine, error) {
	cur, err := store.Get[model.Machine](ctx, s.st, uuid)
	if err != nil {
		return nil, fmt.Errorf("machine %s: %w", uuid, err)
	}
	skipWipe := false
	if p, err := store.Get[model.Pool](ctx, s.st, cur.Pool); err == nil {
		skipWipe = p.SkipWipe
	}
	var alloc *model.Allocation
	m, err := s.mutateMachine(ctx, uuid, func(m *model.Machine) error {
		if pool != "" && m.Pool != pool {
			return &model.ConflictError{Field: "Pool", Message: fmt.Sprintf("machine %s is in pool %s, not %s", m.UUID, m.Pool, pool)}
		}
		if err := s.applyEvent(m, model.EventRelease, ""); err != nil {
			return err
		}
		alloc = m.Allocation
		unapplyAllocation(m)
		// As Act does for release.
		if skipWipe {
			m.State = model.StateReady
			m.BootEnv = s.unknownBootEnv
		} else {
			m.BootEnv = model.BootEnvWipe
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	s.publishPool(evType, m.Pool, m, alloc, reason)
	return m, nil
}

func (s *Service) publishPool(evType, pool string, m *model.Machine, a *model.Allocation, reason string) {
	attrs := map[string]any{"machine": m.UUID, "state": string(m.State)}
	if a != nil {
		attrs["allocation"] = a.ID
		if a.Owner != "" {
			attrs["owner"] = a.Owner
		}
		if !a.Expires.IsZero() {
			attrs["expires"] = a.Expires.Format(time.RFC3339)
		}
	}
	if reason != "" {
		attrs["reason"] = reason
	}
	s.publish(model.Event{Time: s.clock.Now().UTC(), Type: evType, Kind: model.KindPools, Key: pool, Attrs: attrs})
}

// PoolStatus counts the machines of pool by state, and how many are free,
// on their way back, allocated and expiring. An unknown pool is
// model.ErrNotFound.
func (s *Service) PoolStatus(ctx context.Context, pool string) (*model.PoolStatus, error) {
	p, err := store.Get[model.Pool](ctx, s.st, pool)
	if err != nil {
		return nil, fmt.Errorf("pool %q: %w", pool, err)
	}
	ms, err := s.poolMachines(ctx, pool)
	if err != nil {
		return nil, err
	}
	st := poolStatus(p, ms, s.clock.Now())
	return &st, nil
}

func poolStatus(p *model.Pool, ms []*model.Machine, now time.Time) model.PoolStatus {
	st := model.PoolStatus{Pool: p.Name, Machines: len(ms), States: map[model.MachineState]int{}, MinReady: p.MinReady}
	for _, m := range ms {
		st.States[m.State]++
		if free(m, p.Name) {
			st.Ready++
		}
		if returning(m) {
			st.Returning++
		}
		if a := m.Allocation; a != nil {
			st.Allocated++
			if !a.Expires.IsZero() {
				st.Expiring++
			}
			if a.Expired(now) {
				st.Expired++
			}
		}
	}
	return st
}

// poolMachines returns the machines of pool in key order.
func (s *Service) poolMachines(ctx context.Context, pool string) ([]*model.Machine, error) {
	var out []*model.Machine
	err := s.st.List(ctx, model.KindMachines, func(e store.Entry) error {
		m, err := store.Decode[model.Machine](e)
		if err != nil {
			return err
		}
		if m.Pool == pool {
			out = append(out, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list machines of pool %s: %w", pool, err)
	}
	return out, nil
}

// free reports whether m can be allocated from pool now.
func free(m *model.Machine, pool string) bool {
	return m.Pool == pool && m.State == model.StateReady && m.Allocation == nil && !m.Locked
}

// returning reports whether m is on its way back to ready.
func returning(m *model.Machine) bool {
	return m.State == model.StateReleasing || m.State == model.StateWiping
}

// freeMachines returns the machines of ms that can be allocated, the
// longest-ready first (then by UUID, so the order is deterministic).
func freeMachines(ms []*model.Machine, pool string) []*model.Machine {
	var out []*model.Machine
	for _, m := range ms {
		if free(m, pool) {
			out = append(out, m)
		}
	}
	sort.SliceStable(out, func(i, j int) bool {
		a, b := out[i].StateChangedAt, out[j].StateChangedAt
		if !a.Equal(b) {
			return a.Before(b)
		}
		return out[i].UUID < out[j].UUID
	})
	return out
}
