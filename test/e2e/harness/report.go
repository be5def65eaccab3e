package harness

import (
	"fmt"
	"strings"
	"time"
)

// Phases are the times of a machine's lifecycle, as the table prints
// them. Zero durations were not measured.
type Phases struct {
	Machine  string
	Firmware Firmware
	Accel    string
	// Discovery boot: power-on → first DHCP ack; ack → iPXE script or
	// GRUB config served (the boot program, for UEFI paths); script →
	// initrd served; initrd → registered and ready.
	DHCP, BootProgram, KernelInitrd, Registration time.Duration
	// Provisioning is the provision action → running; Wipe the release
	// action → wiped and ready; Back wiped → booted discovery again,
	// registered and waiting for instructions.
	Provisioning, Wipe, Back time.Duration
}

func since(a, b time.Time) time.Duration {
	if a.IsZero() || b.IsZero() || b.Before(a) {
		return 0
	}
	return b.Sub(a)
}

// PhasesOf computes the table row of a machine from its boots (any may be
// nil); back is Rediscover's.
func (e *Env) PhasesOf(vm *VM, discovery, provision, wipe, back *Boot) Phases {
	p := Phases{Machine: vm.Name, Firmware: vm.Firmware, Accel: e.accelName(vm.Firmware)}
	if b := discovery; b != nil {
		p.DHCP = since(b.Start, b.Ack)
		p.BootProgram = since(b.Ack, b.Script)
		p.KernelInitrd = since(b.Script, b.Initrd)
		p.Registration = since(b.Initrd, b.Done)
	}
	if provision != nil {
		p.Provisioning = since(provision.Start, provision.Done)
	}
	if wipe != nil {
		p.Wipe = since(wipe.Start, wipe.Done)
		if back != nil {
			p.Back = since(wipe.Done, back.Done)
		}
	}
	return p
}

// FormatPhases prints rows as a fixed-width table, in seconds.
func FormatPhases(rows []Phases) string {
	var sb strings.Builder
	fmt.Fprintf(&sb, "%-10s %-10s %-5s %8s %13s %14s %13s %13s %8s %8s\n",
		"machine", "firmware", "accel", "DHCP", "boot program", "kernel+initrd", "registration", "provisioning", "wipe", "back")
	sec := func(d time.Duration) string {
		if d == 0 {
			return "-"
		}
		return fmt.Sprintf("%.1fs", d.Seconds())
	}
	for _, r := range rows {
		fmt.Fprintf(&sb, "%-10s %-10s %-5s %8s %13s %14s %13s %13s %8s %8s\n", r.Machine, r.Firmware, r.Accel,
			sec(r.DHCP), sec(r.BootProgram), sec(r.KernelInitrd), sec(r.Registration), sec(r.Provisioning), sec(r.Wipe), sec(r.Back))
	}
	return sb.String()
}
