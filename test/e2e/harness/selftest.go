package harness

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"time"
)

// SelftestOptions configure Selftest. Binary is required.
type SelftestOptions struct {
	// Binary is the ironcast server binary under test.
	Binary string
	// Firmware is the machine to boot (default BIOS).
	Firmware Firmware
	// BootDir holds discovery/<arch>/{vmlinuz,initrd.img}. When empty the
	// discovery image is built with `Binary bootenvs build discovery`.
	BootDir string
	// CacheDir keeps downloaded packages for that build (default: the
	// binary's own default).
	CacheDir string
	// Accel is "kvm", "tcg" or "" (KVM when it works).
	Accel string
	// WorkDir is kept after the run when set; otherwise a temporary
	// directory is used and removed.
	WorkDir string
	// Out receives progress and the timeline.
	Out io.Writer
}

// Selftest boots one QEMU machine in a private namespace against the
// given ironcast binary, follows it from power-on to registration, prints
// its boot timeline and tears everything down. It needs root, QEMU and
// the firmware packages. It returns a *ChainError when the boot chain
// breaks.
func Selftest(ctx context.Context, o SelftestOptions) (err error) {
	if o.Binary == "" {
		return errors.New("selftest: no ironcast binary given")
	}
	if o.Firmware == "" {
		o.Firmware = BIOS
	}
	if !slices.Contains(Firmwares, o.Firmware) {
		return fmt.Errorf("selftest: firmware %q is not one of %v", o.Firmware, Firmwares)
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	if os.Geteuid() != 0 {
		return errors.New("selftest: needs root (it creates a network namespace and taps)")
	}
	bin, err := filepath.Abs(o.Binary)
	if err != nil {
		return err
	}
	qemu := "qemu-system-x86_64"
	if o.Firmware == ARM64 {
		qemu = "qemu-system-aarch64"
	}
	for _, tool := range []string{"ip", qemu} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("selftest: %s is not installed (Debian: iproute2, qemu-system-x86, qemu-system-arm, ipxe-qemu, ovmf, qemu-efi-aarch64)", tool)
		}
	}
	work := o.WorkDir
	if work == "" {
		if work, err = os.MkdirTemp("", "ironcast-selftest-"); err != nil {
			return err
		}
		defer os.RemoveAll(work)
	} else if err := os.MkdirAll(work, 0o755); err != nil {
		return err
	}
	logf := func(format string, args ...any) {
		fmt.Fprintf(o.Out, "%s  %s\n", time.Now().Format("15:04:05"), fmt.Sprintf(format, args...))
	}
	arch := o.Firmware.Arch()
	boot := o.BootDir
	if boot == "" {
		boot = filepath.Join(work, "boot")
		logf("building the %s discovery image with %s bootenvs build discovery", arch, bin)
		args := []string{"bootenvs", "build", "discovery", "--arch", arch, "--out", boot}
		if o.CacheDir != "" {
			args = append(args, "--cache-dir", o.CacheDir)
		}
		if out, err := exec.CommandContext(ctx, bin, args...).CombinedOutput(); err != nil {
			return fmt.Errorf("selftest: build the discovery image: %v\n%s", err, out)
		}
	}
	for _, f := range []string{"vmlinuz", "initrd.img"} {
		if _, err := os.Stat(filepath.Join(boot, "discovery", arch, f)); err != nil {
			return fmt.Errorf("selftest: no discovery image in %s: %w", boot, err)
		}
	}

	env, err := Start(ctx, Options{Binary: bin, WorkDir: work, BootDir: boot, Accel: o.Accel,
		RouterAdvertisements: hasDnsmasq(), Logf: logf})
	if err != nil {
		return err
	}
	defer env.Close()
	vm, err := env.StartVM(ctx, "selftest", o.Firmware)
	if err != nil {
		return err
	}
	b, m, err := env.Discover(ctx, vm)
	if err != nil {
		return err
	}
	logf("machine %s registered: %s", m.UUID, inventorySummary(m.Inventory))
	fmt.Fprintf(o.Out, "\nboot timeline of machine %s (%s, MAC %s):\n", m.UUID, o.Firmware, vm.MAC)
	fmt.Fprint(o.Out, env.formatEvents(vm, b.Start))
	fmt.Fprintf(o.Out, "\n%s", FormatPhases([]Phases{env.PhasesOf(vm, b, nil, nil, nil)}))
	return nil
}

func hasDnsmasq() bool {
	if _, err := exec.LookPath("dnsmasq"); err == nil {
		return true
	}
	_, err := os.Stat("/usr/sbin/dnsmasq")
	return err == nil
}
