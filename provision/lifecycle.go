package provision

import (
	"context"
	"errors"
	"fmt"
	"slices"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
)

// Registration is what the discovery image posts about a machine.
type Registration struct {
	// UUID, when set, binds the registration to that machine: the caller
	// holds the machine's own token (a known machine booting discovery
	// again, say after a wipe). Its MACs must then belong to that machine
	// or to none; a MAC of another machine is a conflict. The API sets it
	// from the token and never from the request body.
	UUID          string `json:"-"`
	HardwareAddrs []string
	Arch          string `json:",omitempty"`
	Inventory     *model.Inventory
}

// Register creates or updates the machine that owns any of the posted MACs,
// records its inventory and moves it to ready. A new machine boots the
// discovery bootenv until it is given another.
func (s *Service) Register(ctx context.Context, reg Registration) (*model.Machine, error) {
	if len(reg.HardwareAddrs) == 0 {
		return nil, model.Invalid("HardwareAddrs", "at least one MAC is required")
	}
	macs := make([]string, 0, len(reg.HardwareAddrs))
	for i, a := range reg.HardwareAddrs {
		hw, err := model.NormalizeMAC(a)
		if err != nil {
			return nil, model.Invalid(fmt.Sprintf("HardwareAddrs[%d]", i), "%v", err)
		}
		if !slices.Contains(macs, hw) {
			macs = append(macs, hw)
		}
	}
	for attempt := 0; attempt < 5; attempt++ {
		var existing *model.Machine
		for _, mac := range macs {
			m, err := store.LookupBy[model.Machine](ctx, s.st, "mac", mac)
			if err == nil {
				existing = m
				break
			}
			if !errors.Is(err, model.ErrNotFound) {
				return nil, err
			}
		}
		if reg.UUID != "" {
			if existing != nil && existing.UUID != reg.UUID {
				return nil, fmt.Errorf("register as machine %s: a MAC belongs to machine %s: %w", reg.UUID, existing.UUID, model.ErrConflict)
			}
			m, err := store.Get[model.Machine](ctx, s.st, reg.UUID)
			if err != nil {
				return nil, fmt.Errorf("register as machine %s: %w", reg.UUID, err)
			}
			existing = m
		}
		addr := s.boundAddress(ctx, macs)
		if existing == nil {
			m := &model.Machine{HardwareAddrs: macs, Arch: reg.Arch, Inventory: reg.Inventory,
				BootEnv: s.unknownBootEnv, State: model.StateReady, Address: addr}
			err := s.Create(ctx, m)
			if errors.Is(err, model.ErrExists) || errors.Is(err, model.ErrConflict) {
				continue // raced with another registration of the same machine
			}
			if err != nil {
				return nil, err
			}
			s.transitioned(m, model.StateDiscovered, model.EventRegister, "")
			return m, nil
		}
		m, err := s.mutateMachineEvent(ctx, existing.UUID, model.EventRegister, func(m *model.Machine) error {
			for _, mac := range macs {
				if !m.HasMAC(mac) {
					m.HardwareAddrs = append(m.HardwareAddrs, mac)
				}
			}
			if reg.Arch != "" {
				m.Arch = reg.Arch
			}
			if reg.Inventory != nil {
				m.Inventory = reg.Inventory
			}
			if m.BootEnv == "" {
				m.BootEnv = s.unknownBootEnv
			}
			if addr != "" {
				m.Address = addr
			}
			return s.applyEvent(m, model.EventRegister, "")
		})
		if errors.Is(err, model.ErrConflict) {
			var te *model.TransitionError
			if errors.As(err, &te) {
				return nil, err
			}
			continue
		}
		return m, err
	}
	return nil, fmt.Errorf("register %v: too many concurrent changes: %w", macs, model.ErrConflict)
}

// boundAddress returns the address of the newest bound, unexpired lease
// held by one of macs, so that a machine registering after its DHCP ack
// (the usual order: the ack comes first) knows its address. Leases are
// keyed by address, so this is a scan; registrations are rare.
func (s *Service) boundAddress(ctx context.Context, macs []string) string {
	now := s.clock.Now()
	var best *model.Lease
	err := s.st.List(ctx, model.KindLeases, func(e store.Entry) error {
		l, err := store.Decode[model.Lease](e)
		if err != nil {
			return nil
		}
		if l.State == model.LeaseBound && !l.Expired(now) && slices.Contains(macs, l.Token) &&
			(best == nil || l.ExpireTime.After(best.ExpireTime)) {
			best = l
		}
		return nil
	})
	if err != nil || best == nil {
		return ""
	}
	if other, err := store.LookupBy[model.Machine](ctx, s.st, "ip", best.Addr); err == nil && !slices.ContainsFunc(macs, other.HasMAC) {
		return "" // another machine claims it; LeaseBound sorts that out on the next ack
	}
	return best.Addr
}

// ActionOptions qualify a lifecycle action.
type ActionOptions struct {
	// BootEnv to provision with; default: the machine's pool's BootEnv.
	BootEnv string `json:",omitempty"`
	// Reason is recorded for failed.
	Reason string `json:",omitempty"`
}

// Act applies an operator action (provision, release, reboot) or a
// callback from the booted OS (running, installed, wiping, wiped, failed)
// to a machine. Illegal transitions return a *model.TransitionError (an
// ErrConflict) naming the current state. Side effects on the bootenv:
// provision sets the requested bootenv; installed switches to local;
// release boots wipe (or, for pools with SkipWipe, returns to ready on
// discovery); wiped returns to discovery.
func (s *Service) Act(ctx context.Context, uuid, event string, opts ActionOptions) (*model.Machine, error) {
	var bootenv string
	if event == model.EventProvision {
		bootenv = opts.BootEnv
		if bootenv == "" {
			m, err := store.Get[model.Machine](ctx, s.st, uuid)
			if err != nil {
				return nil, err
			}
			if p, err := store.Get[model.Pool](ctx, s.st, m.Pool); err == nil && p.BootEnv != "" {
				bootenv = p.BootEnv
			}
		}
		if bootenv == "" {
			return nil, model.Invalid("BootEnv", "provision needs a bootenv (in the request or on the machine's pool)")
		}
		if _, err := s.Get(ctx, model.KindBootEnvs, bootenv); err != nil {
			return nil, model.Invalid("BootEnv", "bootenv %q does not exist", bootenv)
		}
	}
	skipWipe := false
	if event == model.EventRelease {
		if m, err := store.Get[model.Machine](ctx, s.st, uuid); err == nil {
			if p, err := store.Get[model.Pool](ctx, s.st, m.Pool); err == nil {
				skipWipe = p.SkipWipe
			}
		}
	}
	return s.mutateMachineEvent(ctx, uuid, event, func(m *model.Machine) error {
		if err := s.applyEvent(m, event, opts.Reason); err != nil {
			return err
		}
		switch event {
		case model.EventProvision:
			m.BootEnv = bootenv
		case model.EventInstalled:
			m.BootEnv = model.BootEnvLocal
		case model.EventRelease:
			if skipWipe {
				m.State = model.StateReady
				m.BootEnv = s.unknownBootEnv
			} else {
				m.BootEnv = model.BootEnvWipe
			}
		case model.EventWiped:
			m.BootEnv = s.unknownBootEnv
		}
		return nil
	})
}

// applyEvent moves m to its next state and records the reason.
func (s *Service) applyEvent(m *model.Machine, event, reason string) error {
	if m.Locked && event != model.EventReboot {
		return fmt.Errorf("machine %s is locked: %w", m.UUID, model.ErrReadOnly)
	}
	next, err := m.State.Next(event)
	if err != nil {
		return err
	}
	m.State = next
	m.StateReason = ""
	if event == model.EventFailed {
		m.StateReason = reason
	}
	return nil
}

// mutateMachine applies fn with compare-and-swap through the full write
// path (validation, params) and publishes the transition.
func (s *Service) mutateMachine(ctx context.Context, uuid string, fn func(*model.Machine) error) (*model.Machine, error) {
	return s.mutateMachineEvent(ctx, uuid, "", fn)
}

// mutateMachineEvent is mutateMachine for a lifecycle event, which the
// transition it publishes names.
func (s *Service) mutateMachineEvent(ctx context.Context, uuid, event string, fn func(*model.Machine) error) (*model.Machine, error) {
	for attempt := 0; attempt < 20; attempt++ {
		m, err := store.Get[model.Machine](ctx, s.st, uuid)
		if err != nil {
			return nil, err
		}
		from := m.State
		if err := fn(m); err != nil {
			return nil, err
		}
		err = s.Update(ctx, m, m.Revision)
		var ce *model.ConflictError
		if errors.Is(err, model.ErrConflict) && !errors.As(err, &ce) {
			continue
		}
		if err != nil {
			return nil, err
		}
		// A lifecycle event is published even when it keeps the state
		// (a known machine registering again, a reboot, a repeated
		// callback): the timeline shows what the machine did.
		if from != m.State || event != "" {
			s.transitioned(m, from, event, m.StateReason)
		}
		return m, nil
	}
	return nil, fmt.Errorf("machine %s: too many concurrent changes: %w", uuid, model.ErrConflict)
}

func (s *Service) transitioned(m *model.Machine, from model.MachineState, event, reason string) {
	attrs := map[string]any{"from": string(from), "to": string(m.State), "bootenv": m.BootEnv}
	if event != "" {
		attrs["event"] = event
	}
	if reason != "" {
		attrs["reason"] = reason
	}
	s.publish(model.Event{Type: "transition", Kind: model.KindMachines, Key: m.UUID, Attrs: attrs})
}
