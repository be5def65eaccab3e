package provision

import (
	"context"
	"errors"
	"fmt"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
)

// Booter decides the boot information of a DHCP reply. The DHCP server
// declares the same method; its firmware rules (which iPXE or GRUB binary,
// which URL) are the fallback this service wraps.
type Booter interface {
	BootReply(ctx context.Context, req model.BootRequest) (model.BootReply, error)
}

// BooterFunc adapts a function to Booter.
type BooterFunc func(ctx context.Context, req model.BootRequest) (model.BootReply, error)

// BootReply calls f.
func (f BooterFunc) BootReply(ctx context.Context, req model.BootRequest) (model.BootReply, error) {
	return f(ctx, req)
}

// Booter returns a Booter that applies the per-machine decisions before
// the firmware rules of next: a known machine whose bootenv boots from
// local disk gets an address and no boot options; every other machine
// (known or not) gets what next decides for its firmware. It also
// remembers each MAC's firmware for later renders.
func (s *Service) Booter(next Booter) Booter {
	return BooterFunc(func(ctx context.Context, req model.BootRequest) (model.BootReply, error) {
		s.firmware.put(req.MAC, req.Firmware)
		m, err := store.LookupBy[model.Machine](ctx, s.st, "mac", req.MAC)
		switch {
		case errors.Is(err, model.ErrNotFound):
			// Unknown machine: the discovery path, by firmware.
		case err != nil:
			return model.BootReply{}, fmt.Errorf("boot decision for %s: %w", req.MAC, err)
		default:
			be, err := s.loadBootEnv(ctx, s.bootEnvName(m)) // read-only
			if err != nil {
				return model.BootReply{}, fmt.Errorf("boot decision for %s: %w", req.MAC, err)
			}
			if be.Local {
				return model.BootReply{}, nil
			}
		}
		return next.BootReply(ctx, req)
	})
}

// LeaseBound records an acked address on the machine that owns the MAC
// (Machine.Address). An address another machine still claims is taken
// from it first. Unknown MACs are ignored.
func (s *Service) LeaseBound(ctx context.Context, l model.Lease) error {
	m, err := store.LookupBy[model.Machine](ctx, s.st, "mac", l.Token)
	if errors.Is(err, model.ErrNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	if m.Address == l.Addr {
		return nil
	}
	if other, err := store.LookupBy[model.Machine](ctx, s.st, "ip", l.Addr); err == nil && other.UUID != m.UUID {
		if _, err := store.Mutate[model.Machine](ctx, s.st, other.UUID, func(o *model.Machine) error {
			if o.Address == l.Addr {
				o.Address = ""
			}
			return nil
		}); err != nil {
			return fmt.Errorf("clear stale address %s from %s: %w", l.Addr, other.UUID, err)
		}
	}
	_, err = store.Mutate[model.Machine](ctx, s.st, m.UUID, func(o *model.Machine) error {
		o.Address = l.Addr
		return nil
	})
	return err
}
