package model

import (
	"encoding/json"
	"errors"
	"fmt"
)

// Param defines a named parameter: its JSON Schema, default and whether
// it is secure. Values live on machines, profiles and bootenvs.
type Param struct {
	ObjectMeta
	Name        string
	Description string `json:",omitempty"`
	// Schema is a JSON Schema (draft 2020-12) every value must satisfy.
	Schema json.RawMessage `json:",omitempty" swaggertype:"object"`
	// Default is used when no machine, profile, bootenv or global value is set.
	Default any `json:",omitempty"`
	// Secure values are encrypted at rest and shown only to callers
	// allowed to see them.
	Secure bool `json:",omitempty"`
}

func (*Param) Kind() string                   { return KindParams }
func (p *Param) Key() string                  { return p.Name }
func (p *Param) Normalize()                   {}
func (p *Param) Indexes() map[string][]string { return nil }

// Validate checks the name and that Schema is a JSON object.
func (p *Param) Validate() error {
	var errs []error
	if err := validName("Name", p.Name); err != nil {
		errs = append(errs, err)
	}
	if len(p.Schema) > 0 {
		var m map[string]any
		if err := json.Unmarshal(p.Schema, &m); err != nil {
			errs = append(errs, Invalid("Schema", "is not a JSON object: %v", err))
		}
	}
	return errors.Join(errs...)
}

// Profile is a named set of param values that machines include by name.
// The profile named GlobalProfile applies to every machine.
type Profile struct {
	ObjectMeta
	Name        string
	Description string         `json:",omitempty"`
	Params      map[string]any `json:",omitempty"`
}

// GlobalProfile applies to every machine, below its bootenv's params.
const GlobalProfile = "global"

func (*Profile) Kind() string                   { return KindProfiles }
func (p *Profile) Key() string                  { return p.Name }
func (p *Profile) Normalize()                   {}
func (p *Profile) Indexes() map[string][]string { return nil }

// Validate checks the name and param names.
func (p *Profile) Validate() error {
	var errs []error
	if err := validName("Name", p.Name); err != nil {
		errs = append(errs, err)
	}
	for k := range p.Params {
		if validName("", k) != nil {
			errs = append(errs, Invalid("Params", "param name %q is not valid", k))
		}
	}
	return errors.Join(errs...)
}

// ParamSource says where a resolved param value came from.
type ParamSource struct {
	// Kind is "machine", "profile", "bootenv", "global" or "default".
	Kind string
	// Name is the profile or bootenv name, empty for machine and default.
	Name string `json:",omitempty"`
}

func (s ParamSource) String() string {
	if s.Name == "" {
		return s.Kind
	}
	return fmt.Sprintf("%s %s", s.Kind, s.Name)
}

// ResolvedParam is one param's effective value and its origin.
type ResolvedParam struct {
	Name   string
	Value  any
	Source ParamSource
	Secure bool `json:",omitempty"`
}

// ParamLayers are the places a machine's param values come from. Profiles
// are the machine's profiles in the machine's order; missing ones are
// skipped by the caller.
type ParamLayers struct {
	Machine  *Machine
	Profiles []*Profile
	BootEnv  *BootEnv
	Global   *Profile
	Defs     map[string]*Param
}

// Resolve returns the effective value of name, in this order:
// the machine's own params → its profiles in order → its bootenv's params →
// the global profile → the param's default. ok is false when none sets it.
func (l ParamLayers) Resolve(name string) (ResolvedParam, bool) {
	secure := false
	if d := l.Defs[name]; d != nil {
		secure = d.Secure
	}
	found := func(v any, src ParamSource) (ResolvedParam, bool) {
		return ResolvedParam{Name: name, Value: v, Source: src, Secure: secure}, true
	}
	if l.Machine != nil {
		if v, ok := l.Machine.Params[name]; ok {
			return found(v, ParamSource{Kind: "machine"})
		}
	}
	for _, p := range l.Profiles {
		if p == nil {
			continue
		}
		if v, ok := p.Params[name]; ok {
			return found(v, ParamSource{Kind: "profile", Name: p.Name})
		}
	}
	if l.BootEnv != nil {
		if v, ok := l.BootEnv.Params[name]; ok {
			return found(v, ParamSource{Kind: "bootenv", Name: l.BootEnv.Name})
		}
	}
	if l.Global != nil {
		if v, ok := l.Global.Params[name]; ok {
			return found(v, ParamSource{Kind: "global", Name: GlobalProfile})
		}
	}
	if d := l.Defs[name]; d != nil && d.Default != nil {
		return found(d.Default, ParamSource{Kind: "default"})
	}
	return ResolvedParam{}, false
}

// All resolves every param that any layer or definition names, sorted by
// the caller as needed.
func (l ParamLayers) All() map[string]ResolvedParam {
	names := map[string]bool{}
	if l.Machine != nil {
		for k := range l.Machine.Params {
			names[k] = true
		}
	}
	for _, p := range l.Profiles {
		if p != nil {
			for k := range p.Params {
				names[k] = true
			}
		}
	}
	if l.BootEnv != nil {
		for k := range l.BootEnv.Params {
			names[k] = true
		}
	}
	if l.Global != nil {
		for k := range l.Global.Params {
			names[k] = true
		}
	}
	for k, d := range l.Defs {
		if d.Default != nil {
			names[k] = true
		}
	}
	out := make(map[string]ResolvedParam, len(names))
	for k := range names {
		if r, ok := l.Resolve(k); ok {
			out[k] = r
		}
	}
	return out
}
