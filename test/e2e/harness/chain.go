package harness

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/ironcast/ironcast/model"
)

// Deadlines of the steps of a boot. They are generous for TCG on a busy
// two-core machine (a boot takes 20–50 s there); a broken chain is
// usually caught much sooner by a failure signal (a failed render, a
// failed callback, a kernel panic, QEMU exiting).
var (
	// StepTimeout bounds each wait inside a boot.
	StepTimeout = 4 * time.Minute
	// BootTimeout bounds a whole boot, from power-on or action to the
	// machine's new state.
	BootTimeout = 8 * time.Minute
)

// ChainError says where a machine's boot chain broke, with the evidence.
type ChainError struct {
	Machine  string
	Firmware Firmware
	// Step is what was awaited when the chain broke.
	Step string
	Err  error
	// Serial and ServerLog are the tails of the machine's console and of
	// the server's log; Events lists the server events about the machine.
	Serial, ServerLog, Events string
	// Artifacts is where the complete logs are.
	Artifacts string
}

func (e *ChainError) Error() string {
	return fmt.Sprintf("machine %s (%s): %s: %v\n--- serial console (last lines) ---\n%s--- server events for this machine ---\n%s--- server log (last lines) ---\n%s--- full logs in %s",
		e.Machine, e.Firmware, e.Step, e.Err, e.Serial, e.Events, e.ServerLog, e.Artifacts)
}

func (e *ChainError) Unwrap() error { return e.Err }

// failPatterns on a serial console end a wait at once.
var failPatterns = []match{
	{regexp.MustCompile(`Kernel panic`), "kernel panic"},
	{regexp.MustCompile(`ironcast: FAILED`), "the image reported a failure"},
	{regexp.MustCompile(`ironcast: booting \S+ failed`), "the iPXE script could not boot its kernel"},
}

// Boot is one netboot of a machine: from power-on, or the action that made
// it reboot, to the state its OS reported. Zero times were not observed.
type Boot struct {
	BootEnv string
	Start   time.Time
	// Ack is the first DHCP ack; Program the boot program served (zero for
	// BIOS, whose ROM is already iPXE); Script the iPXE script or GRUB
	// config rendered; Initrd the initrd fully served; Done the state
	// change (ready after discovery and wipe, running after provisioning).
	Ack, Program, Script, Initrd, Done time.Time
	// DHCPFirmware is how the server classified the first request.
	DHCPFirmware string
	// ProgramFile and ScriptPath are what was served.
	ProgramFile, ScriptPath string
	// PowerCycled is true when the harness reset the machine to start
	// the boot (the running image did not reboot by itself).
	PowerCycled bool
}

// pollingRe is the line of an image that waits on its machine record.
var pollingRe = regexp.MustCompile(`ironcast: waiting for instructions`)

// cursor is a position in the event stream and in a serial console.
type cursor struct {
	event  int
	serial int64
}

// Mark returns the current position in the machine's event stream and
// console; waits started from it see only what comes later.
func (e *Env) mark(vm *VM) cursor {
	evs, _ := e.rec.snapshot()
	return cursor{event: len(evs), serial: vm.serialSize()}
}

// fail builds a ChainError for vm.
func (e *Env) fail(vm *VM, step string, err error) *ChainError {
	return &ChainError{Machine: vm.Name, Firmware: vm.Firmware, Step: step, Err: err,
		Serial: vm.SerialTail(40), ServerLog: e.ServerLogTail(25), Events: e.eventSummary(vm), Artifacts: e.artifacts}
}

// eventSummary lists the server events about vm, one per line, with
// wall-clock times, or with offsets from base when it is not zero.
func (e *Env) eventSummary(vm *VM) string { return e.formatEvents(vm, time.Time{}) }

func (e *Env) formatEvents(vm *VM, base time.Time) string {
	evs, _ := e.rec.snapshot()
	var sb strings.Builder
	for _, ev := range evs {
		if !e.about(vm, ev) || ev.Type == "created" || ev.Type == "updated" {
			continue
		}
		keys := make([]string, 0, len(ev.Attrs))
		for k := range ev.Attrs {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		if base.IsZero() {
			fmt.Fprintf(&sb, "%s %-14s", ev.Time.Format("15:04:05.000"), ev.Type)
		} else {
			fmt.Fprintf(&sb, "  +%6.1fs %-14s", ev.Time.Sub(base).Seconds(), ev.Type)
		}
		for _, k := range keys {
			if k == "mac" || k == "iface" {
				continue
			}
			v := ev.Attrs[k]
			if f, ok := v.(float64); ok && f == float64(int64(f)) {
				v = int64(f) // JSON numbers: print byte counts as integers
			}
			fmt.Fprintf(&sb, " %s=%v", k, v)
		}
		sb.WriteByte('\n')
	}
	if sb.Len() == 0 {
		return "(none)\n"
	}
	return sb.String()
}

// uuidOf returns the UUID of the machine record holding vm's MAC, from
// the object events seen so far.
func (e *Env) uuidOf(vm *VM) string {
	if u := vm.uuid.Load(); u != nil {
		return *u
	}
	evs, _ := e.rec.snapshot()
	for _, ev := range evs {
		if ev.Kind != model.KindMachines || (ev.Type != "created" && ev.Type != "updated") || len(ev.Object) == 0 {
			continue
		}
		var m model.Machine
		if json.Unmarshal(ev.Object, &m) == nil && slices.Contains(m.HardwareAddrs, vm.MAC) && m.UUID != "" {
			vm.uuid.Store(&m.UUID)
			return m.UUID
		}
	}
	return ""
}

// about reports whether ev concerns vm.
func (e *Env) about(vm *VM, ev model.Event) bool {
	if e.rec.mac(ev) == vm.MAC {
		return true
	}
	return ev.Kind == model.KindMachines && ev.Key != "" && ev.Key == e.uuidOf(vm)
}

// failure returns why vm's chain has broken since c, or nil. The console
// is scanned only when serial is true.
func (e *Env) failure(vm *VM, c *cursor, serial bool) error {
	evs, _ := e.rec.snapshot()
	for _, ev := range evs[min(c.event, len(evs)):] {
		if !e.about(vm, ev) {
			continue
		}
		switch {
		case ev.Type == "render.failed" && bootChainPath(attr(ev, "path")):
			return fmt.Errorf("server could not render %s: %s", attr(ev, "path"), attr(ev, "error"))
		case ev.Type == "transition" && attr(ev, "to") == string(model.StateFailed):
			return fmt.Errorf("machine failed: %s", attr(ev, "reason"))
		}
	}
	if vm.exited.Load() {
		return fmt.Errorf("QEMU exited: %v", vm.waitErr)
	}
	if !serial {
		return nil
	}
	_, line, err := vm.serial.wait(context.Background(), c.serial, regexp.MustCompile(`$^`), failPatterns, func() error { return errStopScan })
	if err != nil && !errors.Is(err, errStopScan) {
		return fmt.Errorf("%w (%s)", err, line)
	}
	return nil
}

var errStopScan = errors.New("stop")

// bootChainPath reports whether a rendered path is a boot loader's script
// or config (an iPXE script, a GRUB or pxelinux config): a failure there
// breaks the boot. Failures of per-machine files under machines/ (metadata,
// cloud-init) are left to the image, which may fall back to another
// source and reports failures itself.
func bootChainPath(p string) bool {
	return !strings.HasPrefix(strings.TrimPrefix(p, "/"), "machines/")
}

// awaitEvent waits for the first event after c about vm that pred
// accepts, and moves c past it.
func (e *Env) awaitEvent(ctx context.Context, vm *VM, c *cursor, step string, pred func(model.Event) bool) (model.Event, error) {
	ctx, cancel := context.WithTimeout(ctx, StepTimeout)
	defer cancel()
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		evs, changed := e.rec.snapshot()
		for i := c.event; i < len(evs); i++ {
			if e.about(vm, evs[i]) && pred(evs[i]) {
				c.event = i + 1
				return evs[i], nil
			}
		}
		if err := e.failure(vm, c, true); err != nil {
			return model.Event{}, e.fail(vm, step, err)
		}
		select {
		case <-ctx.Done():
			return model.Event{}, e.fail(vm, step, fmt.Errorf("not seen within %s: %w", StepTimeout, ctx.Err()))
		case <-changed:
		case <-t.C: // the serial console and QEMU have no event stream
		}
	}
}

// AwaitSerial waits for a console line matching re after c and returns it.
func (e *Env) awaitSerial(ctx context.Context, vm *VM, c *cursor, step string, re *regexp.Regexp) (string, error) {
	ctx, cancel := context.WithTimeout(ctx, StepTimeout)
	defer cancel()
	pos, line, err := vm.serial.wait(ctx, c.serial, re, failPatterns, func() error {
		// Server-side failures end the wait too; the console is
		// scanned by the wait itself.
		return e.failure(vm, c, false)
	})
	if err != nil {
		if errors.Is(err, errGone) {
			err = fmt.Errorf("QEMU exited: %v", vm.waitErr)
		}
		return "", e.fail(vm, step, err)
	}
	c.serial = pos
	return line, nil
}

// AwaitConsole waits until a line of vm's console (from its start) matches
// re, and returns it. It fails like every other wait: on a deadline, on a
// failure seen on the console or the server, or when QEMU exits.
func (e *Env) AwaitConsole(ctx context.Context, vm *VM, re *regexp.Regexp) (string, error) {
	return e.awaitSerial(ctx, vm, &cursor{}, "console line "+re.String(), re)
}

func isFile(proto, name string, ok bool) func(model.Event) bool {
	return func(ev model.Event) bool {
		if ev.Type != proto+".file" {
			return false
		}
		p := strings.TrimPrefix(attr(ev, "path"), "/")
		if p != name {
			return false
		}
		st, _ := ev.Attrs["status"].(float64)
		return !ok || st == 0 || st == 200 || st == 206
	}
}

// fileProto is how a machine's loader fetches kernels: iPXE over HTTP,
// GRUB over TFTP.
func fileProto(fw Firmware) string {
	if fw == ARM64 {
		return "tftp"
	}
	return "http"
}

// netboot follows one boot of vm from c: DHCP, boot program, script,
// kernel and initrd, ending when the machine record makes the transition
// done accepts. kernel and initrd are boot-root paths.
func (e *Env) netboot(ctx context.Context, vm *VM, c *cursor, b *Boot, kernel, initrd string, done func(model.Event) bool) error {
	ctx, cancel := context.WithTimeout(ctx, BootTimeout)
	defer cancel()
	ack, err := e.awaitEvent(ctx, vm, c, "DHCP ack", func(ev model.Event) bool { return ev.Type == "dhcp.ack" })
	if err != nil {
		return err
	}
	b.Ack, b.DHCPFirmware = ack.Time, attr(ack, "firmware")
	if want := vm.Firmware.DHCPFirmware(); b.DHCPFirmware != want {
		return e.fail(vm, "DHCP ack", fmt.Errorf("first request classified as firmware %q, want %q: the machine took a fallback path", b.DHCPFirmware, want))
	}
	switch vm.Firmware {
	case UEFIPXE:
		b.ProgramFile = "snponly.efi"
		ev, err := e.awaitEvent(ctx, vm, c, "snponly.efi over TFTP", isFile("tftp", "snponly.efi", true))
		if err != nil {
			return err
		}
		b.Program = ev.Time
	case UEFIHTTP:
		b.ProgramFile = "snponly.efi"
		ev, err := e.awaitEvent(ctx, vm, c, "snponly.efi over HTTP boot", isFile("http", "snponly.efi", true))
		if err != nil {
			return err
		}
		b.Program = ev.Time
	case ARM64:
		b.ProgramFile = "grubnetaa64.efi"
		ev, err := e.awaitEvent(ctx, vm, c, "grubnetaa64.efi over TFTP", isFile("tftp", "grubnetaa64.efi", true))
		if err != nil {
			return err
		}
		b.Program = ev.Time
	}
	script, err := e.awaitEvent(ctx, vm, c, "boot script rendered", func(ev model.Event) bool {
		p := attr(ev, "path")
		if ev.Type != "render" {
			return false
		}
		if vm.Firmware == ARM64 {
			return strings.Contains(p, "grub.cfg")
		}
		return strings.HasSuffix(p, ".ipxe")
	})
	if err != nil {
		return err
	}
	b.Script, b.ScriptPath = script.Time, attr(script, "path")
	proto := fileProto(vm.Firmware)
	if _, err := e.awaitEvent(ctx, vm, c, "kernel "+kernel+" over "+proto, isFile(proto, kernel, true)); err != nil {
		return err
	}
	afterKernel := *c
	ev, err := e.awaitEvent(ctx, vm, c, "initrd "+initrd+" over "+proto, isFile(proto, initrd, true))
	if err != nil {
		return err
	}
	b.Initrd = ev.Time
	// A file's event comes when the server's transfer ends. Over TFTP
	// that can be well after the machine has booted the file: when the
	// ACK of the last block never comes, the server resends it for tens of
	// seconds (seen with GRUB on arm64 under TCG: 28 s), and the machine
	// registers meanwhile. So the state after boot is looked for from the
	// kernel's event on, and the cursor then moves past both.
	afterInitrd := *c
	*c = afterKernel
	ev, err = e.awaitEvent(ctx, vm, c, "machine state after boot", done)
	if err != nil {
		return err
	}
	c.event, c.serial = max(c.event, afterInitrd.event), max(c.serial, afterInitrd.serial)
	b.Done = ev.Time
	return nil
}

// transition accepts the machine's transition into state to (from any
// state: callbacks' transitions do not always name their event).
func transition(to model.MachineState) func(model.Event) bool {
	return func(ev model.Event) bool {
		return ev.Type == "transition" && attr(ev, "to") == string(to)
	}
}

// Discover follows vm's first boot: from power-on through DHCP, the boot
// program of its firmware path, the iPXE script or GRUB config, the
// discovery kernel and initrd, to the machine registering and becoming
// ready. It returns the boot and the machine record.
func (e *Env) Discover(ctx context.Context, vm *VM) (*Boot, *model.Machine, error) {
	c := cursor{}
	b := &Boot{BootEnv: "discovery", Start: vm.Started}
	arch := vm.Firmware.Arch()
	if err := e.netboot(ctx, vm, &c, b, "discovery/"+arch+"/vmlinuz", "discovery/"+arch+"/initrd.img",
		transition(model.StateReady)); err != nil {
		return b, nil, err
	}
	m, err := e.machine(ctx, vm)
	if err != nil {
		return b, nil, err
	}
	e.logf("%s: discovered as %s: %s", vm.Name, m.UUID, inventorySummary(m.Inventory))
	return b, m, nil
}

// machine reads vm's machine record.
func (e *Env) machine(ctx context.Context, vm *VM) (*model.Machine, error) {
	uuid := e.uuidOf(vm)
	if uuid == "" {
		return nil, e.fail(vm, "machine record", errors.New("no machine record holds the MAC"))
	}
	var m model.Machine
	if err := e.Call(ctx, "GET", "/machines/"+uuid, nil, &m); err != nil {
		return nil, e.fail(vm, "machine record", err)
	}
	return &m, nil
}

// Machine returns vm's machine record as the API shows it now.
func (e *Env) Machine(ctx context.Context, vm *VM) (*model.Machine, error) { return e.machine(ctx, vm) }

func inventorySummary(inv *model.Inventory) string {
	if inv == nil {
		return "no inventory"
	}
	var disks []string
	for _, d := range inv.Disks {
		disks = append(disks, fmt.Sprintf("%s %d MiB", d.Name, d.SizeBytes>>20))
	}
	var nics []string
	for _, n := range inv.NICs {
		nics = append(nics, n.Name+" "+n.MAC)
	}
	return fmt.Sprintf("%d CPU, %d MiB, disks [%s], nics [%s]", inv.CPUs, inv.MemoryMiB, strings.Join(disks, ", "), strings.Join(nics, ", "))
}

// LinuxKit describes the test image to provision with.
type LinuxKit struct {
	// Image is the linuxkit-image param: files linuxkit/<Image>-kernel and
	// -initrd.img must be in the boot root.
	Image string
	// Cmdline is the linuxkit-cmdline param (the image's -cmdline file).
	Cmdline string
	// Params are set on the machine before provisioning.
	Params map[string]any
}

// Provision sets the image's params on vm's machine, provisions it with
// the linuxkit bootenv and follows the reboot into the image until the
// machine is running. It returns the boot and the console from the
// image's start.
func (e *Env) Provision(ctx context.Context, vm *VM, lk LinuxKit) (*Boot, string, error) {
	uuid := e.uuidOf(vm)
	params := map[string]any{"linuxkit-image": lk.Image, "linuxkit-cmdline": lk.Cmdline}
	for k, v := range lk.Params {
		params[k] = v
	}
	names := make([]string, 0, len(params))
	for k := range params {
		names = append(names, k)
	}
	slices.Sort(names)
	for _, k := range names {
		if err := e.SetParam(ctx, uuid, k, params[k]); err != nil {
			return nil, "", e.fail(vm, "set param "+k, err)
		}
	}
	c := e.mark(vm)
	b := &Boot{BootEnv: "linuxkit", Start: time.Now()}
	if err := e.Call(ctx, "POST", "/machines/"+uuid+"/actions/provision", map[string]string{"BootEnv": "linuxkit"}, nil); err != nil {
		return b, "", e.fail(vm, "provision action", err)
	}
	start := c.serial
	vm.provisioned.Store(start)
	err := e.netboot(ctx, vm, &c, b, "linuxkit/"+lk.Image+"-kernel", "linuxkit/"+lk.Image+"-initrd.img",
		transition(model.StateRunning))
	if err != nil {
		return b, "", err
	}
	if _, err := e.awaitSerial(ctx, vm, &cursor{event: c.event, serial: start}, "IRONCAST-LINUXKIT-OK on the console", regexp.MustCompile(`IRONCAST-LINUXKIT-OK`)); err != nil {
		return b, "", err
	}
	console, _ := vm.serial.read(start)
	return b, cleanText(console), nil
}

// Release releases vm's machine and follows the wipe boot until the
// machine is ready again.
func (e *Env) Release(ctx context.Context, vm *VM) (*Boot, error) {
	uuid := e.uuidOf(vm)
	c := e.mark(vm)
	b := &Boot{BootEnv: "wipe", Start: time.Now()}
	if err := e.Call(ctx, "POST", "/machines/"+uuid+"/actions/release", map[string]string{}, nil); err != nil {
		return b, e.fail(vm, "release action", err)
	}
	// An image that polls its machine record reboots into wipe by itself;
	// one that does not (it found no metadata to poll) is power-cycled,
	// as an operator would through the BMC.
	console, _ := vm.serial.read(vm.provisioned.Load())
	if i := bytes.LastIndex(console, []byte("ironcast: starting ")); i >= 0 {
		console = console[i:] // the running image's own lines
	}
	if !pollingRe.Match(console) {
		e.logf("%s: the image does not poll its machine record; power-cycling it", vm.Name)
		b.PowerCycled = true
		if err := vm.Reset(); err != nil {
			return b, e.fail(vm, "power cycle", err)
		}
	}
	arch := vm.Firmware.Arch()
	err := e.netboot(ctx, vm, &c, b, "discovery/"+arch+"/vmlinuz", "discovery/"+arch+"/initrd.img",
		transition(model.StateReady))
	vm.released = c
	return b, err
}

// Rediscover follows a released machine back into the pool: once wiped
// and ready it boots discovery again and registers itself with its own
// machine token (the discovery script of a known machine carries that,
// not a registration token), then waits for its next instructions. It
// returns when the register transition and the waiting line are seen
// after Release. Done is the moment the machine waits again.
func (e *Env) Rediscover(ctx context.Context, vm *VM) (*Boot, error) {
	c := vm.released
	b := &Boot{BootEnv: "discovery", Start: time.Now()}
	uuid := e.uuidOf(vm)
	if _, err := e.awaitEvent(ctx, vm, &c, "register again after the wipe", func(ev model.Event) bool {
		return ev.Type == "transition" && attr(ev, "event") == model.EventRegister && ev.Key == uuid
	}); err != nil {
		return b, err
	}
	if _, err := e.awaitSerial(ctx, vm, &c, "wait for instructions after registering again", pollingRe); err != nil {
		return b, err
	}
	b.Done = time.Now()
	return b, nil
}

// cleanText cleans every line of a console capture.
func cleanText(b []byte) string {
	var sb strings.Builder
	for _, l := range strings.SplitAfter(string(b), "\n") {
		if l == "" {
			continue
		}
		sb.WriteString(cleanLine([]byte(l)))
		sb.WriteByte('\n')
	}
	return sb.String()
}
