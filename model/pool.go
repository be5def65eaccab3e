package model

import "errors"

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
	// releasing the longest-allocated ones; 0 disables scaling.
	MinReady int `json:",omitempty"`
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
	return errors.Join(errs...)
}
