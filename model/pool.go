package model

import (
	"errors"
	"fmt"
	"time"
)

// DefaultPool is the pool machines join when none is named.
const DefaultPool = "default"

// Pool is a group of machines that are allocated, provisioned, released,
// wiped and returned together by the reclaim loop.
type Pool struct {
	ObjectMeta
	Name        string
	Description string `json:",omitempty"`
	// BootEnv is what allocated machines are provisioned with.
	BootEnv string `json:",omitempty"`
	// Profiles are added to a machine when it is allocated and removed
	// when it is released.
	Profiles []string `json:",omitempty"`
	// Params are set on a machine when it is allocated.
	Params map[string]any `json:",omitempty"`
	// SkipWipe returns released machines to ready without wiping them.
	SkipWipe bool `json:",omitempty"`
	// MinReady is the number of ready machines the reclaim loop keeps by
	// releasing the longest-allocated reclaimable allocations; 0 disables
	// scaling.
	MinReady int `json:",omitempty"`
	// AllocationTTL is the lifetime in seconds of an allocation that does
	// not ask for its own; the reclaim loop releases allocations once they
	// expire. 0 means allocations never expire.
	AllocationTTL int64 `json:",omitempty"`
	// ReleaseFailedAfter makes the reclaim loop release machines that have
	// been failed for this many seconds (which wipes them). 0 leaves failed
	// machines alone.
	ReleaseFailedAfter int64 `json:",omitempty"`
}

func (*Pool) Kind() string                   { return KindPools }
func (p *Pool) Key() string                  { return p.Name }
func (p *Pool) Normalize()                   {}
func (p *Pool) Indexes() map[string][]string { return nil }

// Validate checks the name and references.
func (p *Pool) Validate() error {
	var errs []error
	if err := validName("Name", p.Name); err != nil {
		errs = append(errs, err)
	}
	if p.BootEnv != "" {
		if err := validName("BootEnv", p.BootEnv); err != nil {
			errs = append(errs, err)
		}
	}
	if p.MinReady < 0 {
		errs = append(errs, Invalid("MinReady", "must not be negative"))
	}
	if p.AllocationTTL < 0 {
		errs = append(errs, Invalid("AllocationTTL", "must not be negative"))
	}
	if p.ReleaseFailedAfter < 0 {
		errs = append(errs, Invalid("ReleaseFailedAfter", "must not be negative"))
	}
	for i, pr := range p.Profiles {
		if err := validName(fmt.Sprintf("Profiles[%d]", i), pr); err != nil {
			errs = append(errs, err)
		}
	}
	for k := range p.Params {
		if validName("", k) != nil {
			errs = append(errs, Invalid("Params", "param name %q is not valid", k))
		}
	}
	return errors.Join(errs...)
}

// Allocation records that a machine was allocated from its pool: to whom,
// since when, until when, and what the allocation added to the machine so
// that releasing it can take exactly that away again.
type Allocation struct {
	// ID is shared by the machines of one allocate request.
	ID string
	// Owner says who holds the machine (free text, e.g. a user or a job).
	Owner string `json:",omitempty"`
	// Since is when the machine was allocated.
	Since time.Time
	// Expires is when the reclaim loop releases the machine; zero: never.
	Expires time.Time `json:",omitzero"`
	// Reclaimable lets the reclaim loop release the machine before it
	// expires when the pool has fewer than MinReady ready machines.
	Reclaimable bool `json:",omitempty"`
	// BootEnv is what the machine was provisioned with.
	BootEnv string `json:",omitempty"`
	// Profiles are the profiles the allocation added to the machine.
	Profiles []string `json:",omitempty"`
	// Params are the names of the params the allocation set on the machine.
	Params []string `json:",omitempty"`
	// Replaced holds the machine's own values of Params from before the
	// allocation, restored on release.
	Replaced map[string]any `json:",omitempty"`
}

// Expired reports whether the allocation has an expiry at or before now.
func (a *Allocation) Expired(now time.Time) bool {
	return a != nil && !a.Expires.IsZero() && !now.Before(a.Expires)
}

// Validate checks the allocation's fields; field names start with prefix.
func (a *Allocation) Validate(prefix string) error {
	var errs []error
	if a.ID == "" {
		errs = append(errs, Invalid(joinField(prefix, "ID"), "is required"))
	}
	if a.Since.IsZero() {
		errs = append(errs, Invalid(joinField(prefix, "Since"), "is required"))
	}
	if !a.Expires.IsZero() && !a.Expires.After(a.Since) {
		errs = append(errs, Invalid(joinField(prefix, "Expires"), "must be after Since"))
	}
	for i, p := range a.Profiles {
		if err := validName(joinField(prefix, fmt.Sprintf("Profiles[%d]", i)), p); err != nil {
			errs = append(errs, err)
		}
	}
	return errors.Join(errs...)
}

// AllocateRequest asks a pool for ready machines.
type AllocateRequest struct {
	// Count is the number of machines wanted (default 1).
	Count int `json:",omitempty"`
	// Owner is recorded on each allocation.
	Owner string `json:",omitempty"`
	// BootEnv to provision with; default: the pool's BootEnv.
	BootEnv string `json:",omitempty"`
	// Params are set on each machine, over the pool's Params.
	Params map[string]any `json:",omitempty"`
	// TTL is the allocation's lifetime in seconds; 0: the pool's
	// AllocationTTL.
	TTL int64 `json:",omitempty"`
	// Reclaimable lets the reclaim loop take the machines back early to
	// keep the pool's MinReady.
	Reclaimable bool `json:",omitempty"`
}

// Validate checks the request's fields.
func (r *AllocateRequest) Validate() error {
	var errs []error
	if r.Count < 0 {
		errs = append(errs, Invalid("Count", "must not be negative"))
	}
	if r.TTL < 0 {
		errs = append(errs, Invalid("TTL", "must not be negative"))
	}
	if r.BootEnv != "" {
		if err := validName("BootEnv", r.BootEnv); err != nil {
			errs = append(errs, err)
		}
	}
	for k := range r.Params {
		if validName("", k) != nil {
			errs = append(errs, Invalid("Params", "param name %q is not valid", k))
		}
	}
	return errors.Join(errs...)
}

// ReleaseRequest names machines of a pool to release.
type ReleaseRequest struct {
	// Machines are machine UUIDs.
	Machines []string
}

// PoolStatus counts a pool's machines.
type PoolStatus struct {
	Pool string
	// Machines is the number of machines in the pool.
	Machines int
	// States counts the machines by lifecycle state.
	States map[MachineState]int
	// Ready is the number of ready machines not allocated: what an
	// allocate request can get now.
	Ready int
	// Returning is the number of machines releasing or wiping, on their
	// way back to ready.
	Returning int
	// Allocated is the number of machines holding an allocation.
	Allocated int
	// Expiring is the number of allocations with an expiry.
	Expiring int
	// Expired is the number of allocations past their expiry, waiting
	// for the reclaim loop.
	Expired int
	// MinReady is the pool's target of ready machines.
	MinReady int `json:",omitempty"`
}
