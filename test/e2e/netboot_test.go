package e2e

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ironcast/ironcast/api/client"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/test/e2e/harness"
)

// phaseTable collects the rows of every machine of the run; it is
// printed (and written to the artifacts) by the tests that fill it.
type phaseTable struct {
	mu   sync.Mutex
	rows []harness.Phases
}

func (p *phaseTable) add(r harness.Phases) {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.rows = append(p.rows, r)
}

func (p *phaseTable) String() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	rows := slices.Clone(p.rows)
	slices.SortFunc(rows, func(a, b harness.Phases) int { return strings.Compare(a.Machine, b.Machine) })
	return harness.FormatPhases(rows)
}

// lifecycle walks one machine through discovery, provisioning with the
// test image and release, asserting each step, and returns its phases.
// discovered, when not nil, is called with the discovery boot and record.
func lifecycle(t *testing.T, env *harness.Env, vm *harness.VM, wantMem int64, discovered func(*harness.Boot, *model.Machine)) harness.Phases {
	t.Helper()
	ctx := context.Background()
	arch := vm.Firmware.Arch()

	// Discovery: DHCP → boot program → script → kernel and initrd →
	// registration with inventory → ready.
	disc, m, err := env.Discover(ctx, vm)
	if err != nil {
		t.Fatal(err)
	}
	checkDiscovered(t, env, vm, m, wantMem)
	checkOwnChain(t, env, vm, disc, m)
	checkTimeline(t, env, vm)
	if discovered != nil {
		discovered(disc, m)
	}
	t.Logf("%s: discovery boot took its path: DHCP firmware %s, boot program %q, script %s",
		vm.Name, disc.DHCPFirmware, disc.ProgramFile, disc.ScriptPath)

	// Provisioning with the LinuxKit-style test image and a param it
	// prints.
	image := testImage(arch)
	cmdline, err := os.ReadFile(filepath.Join(env.DataDir(), "boot", "linuxkit", image+"-cmdline"))
	if err != nil {
		t.Fatalf("read the test image's cmdline: %v", err)
	}
	word := randomWord()
	prov, console, err := env.Provision(ctx, vm, harness.LinuxKit{
		Image:   image,
		Cmdline: strings.TrimSpace(string(cmdline)) + " ironcast.param=greeting",
		Params:  map[string]any{"greeting": word},
	})
	if err != nil {
		t.Fatal(err)
	}
	if want := "ironcast: param greeting=" + word; !strings.Contains(console, want) {
		t.Errorf("%s: the test image's console lacks %q:\n%s", vm.Name, want, tail(console, 30))
	}
	m, err = env.Machine(ctx, vm)
	if err != nil {
		t.Fatal(err)
	}
	if m.State != model.StateRunning || m.BootEnv != "linuxkit" {
		t.Fatalf("%s after provisioning: state %s, bootenv %s; want running, linuxkit", vm.Name, m.State, m.BootEnv)
	}

	// Release: the wipe image zeroes the disk, reports wiped, the machine
	// is ready again, and the host sees zeros.
	wipe, err := env.Release(ctx, vm)
	if err != nil {
		t.Fatal(err)
	}
	m, err = env.Machine(ctx, vm)
	if err != nil {
		t.Fatal(err)
	}
	if m.State != model.StateReady {
		t.Fatalf("%s after release: state %s, want ready", vm.Name, m.State)
	}
	wiped, err := vm.DiskWiped()
	if err != nil {
		t.Fatal(err)
	}
	if !wiped {
		t.Fatalf("%s: the machine reported wiped but the first or last MiB of %s is not zeros\n%s", vm.Name, vm.Disk, vm.SerialTail(30))
	}
	// Back in the pool: the machine boots discovery again, registers itself
	// with its own token and waits for its next provisioning.
	back, err := env.Rediscover(ctx, vm)
	if err != nil {
		t.Fatal(err)
	}
	return env.PhasesOf(vm, disc, prov, wipe, back)
}

// checkDiscovered asserts the machine record and lease after discovery.
func checkDiscovered(t *testing.T, env *harness.Env, vm *harness.VM, m *model.Machine, wantMem int64) {
	t.Helper()
	if !slices.Contains(m.HardwareAddrs, vm.MAC) {
		t.Errorf("%s: machine %s has MACs %v, want %s among them", vm.Name, m.UUID, m.HardwareAddrs, vm.MAC)
	}
	if m.State != model.StateReady || m.Arch != vm.Firmware.Arch() {
		t.Errorf("%s: machine state %s arch %s, want ready %s", vm.Name, m.State, m.Arch, vm.Firmware.Arch())
	}
	inv := m.Inventory
	if inv == nil {
		t.Fatalf("%s: machine %s has no inventory", vm.Name, m.UUID)
	}
	if inv.CPUs != 1 {
		t.Errorf("%s: inventory CPUs %d, want 1", vm.Name, inv.CPUs)
	}
	// The kernel keeps some memory for itself: accept 80–100 %.
	if inv.MemoryMiB < wantMem*8/10 || inv.MemoryMiB > wantMem {
		t.Errorf("%s: inventory memory %d MiB, want about %d", vm.Name, inv.MemoryMiB, wantMem)
	}
	if !slices.ContainsFunc(inv.Disks, func(d model.Disk) bool { return d.SizeBytes == harness.DiskSize }) {
		t.Errorf("%s: inventory disks %+v, want one of %d bytes", vm.Name, inv.Disks, harness.DiskSize)
	}
	if !slices.ContainsFunc(inv.NICs, func(n model.NIC) bool { return strings.EqualFold(n.MAC, vm.MAC) }) {
		t.Errorf("%s: inventory NICs %+v, want %s", vm.Name, inv.NICs, vm.MAC)
	}
	leases, err := env.Leases(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	i := slices.IndexFunc(leases, func(l model.Lease) bool { return l.Token == vm.MAC && l.State == model.LeaseBound })
	if i < 0 {
		t.Errorf("%s: no bound lease for %s in %+v", vm.Name, vm.MAC, leases)
	} else if m.Address != "" && m.Address != leases[i].Addr {
		t.Errorf("%s: machine address %s, but its lease is for %s", vm.Name, m.Address, leases[i].Addr)
	}
}

// checkOwnChain asserts that what the machine was served was its own:
// the iPXE script named by its MAC, its MAC echoed by the script on its
// console, and its own machine UUID reported by the discovery image.
func checkOwnChain(t *testing.T, env *harness.Env, vm *harness.VM, b *harness.Boot, m *model.Machine) {
	t.Helper()
	var want []string
	if vm.Firmware == harness.ARM64 {
		want = []string{"ironcast: loading discovery"}
	} else {
		if b.ScriptPath != vm.MAC+".ipxe" && b.ScriptPath != "/"+vm.MAC+".ipxe" {
			t.Errorf("%s: served script %q, want its own %s.ipxe", vm.Name, b.ScriptPath, vm.MAC)
		}
		want = []string{"ironcast: booting discovery on " + vm.MAC}
	}
	want = append(want, "ironcast: registered as "+m.UUID)
	for _, w := range want {
		// The image prints after the server has recorded it: wait.
		if _, err := env.AwaitConsole(context.Background(), vm, regexp.MustCompile(regexp.QuoteMeta(w))); err != nil {
			t.Error(err)
		}
	}
}

// checkTimeline asserts that the machine's timeline in the API tells the
// story of its discovery boot: the DHCP ack, the script or config
// rendered, the initrd served and the registration.
func checkTimeline(t *testing.T, env *harness.Env, vm *harness.VM) {
	t.Helper()
	tl, err := env.Timeline(context.Background(), vm)
	if err != nil {
		t.Error(err)
		return
	}
	initrd := "discovery/" + vm.Firmware.Arch() + "/initrd.img"
	want := map[string]func(client.TimelineEntry) bool{
		"dhcp.ack": func(e client.TimelineEntry) bool { return e.Type == "dhcp.ack" },
		"render":   func(e client.TimelineEntry) bool { return e.Type == "render" },
		"initrd served": func(e client.TimelineEntry) bool {
			p, _ := e.Attrs["path"].(string)
			return strings.HasSuffix(e.Type, ".file") && strings.TrimPrefix(p, "/") == initrd
		},
		"registered": func(e client.TimelineEntry) bool {
			to, _ := e.Attrs["to"].(string)
			return e.Type == "transition" && to == string(model.StateReady)
		},
	}
	for what, ok := range want {
		if !slices.ContainsFunc(tl, ok) {
			t.Errorf("%s: the API timeline has no %s entry (%d entries; see %s.timeline.json)", vm.Name, what, len(tl), vm.Name)
		}
	}
}

func randomWord() string {
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	return "w" + hex.EncodeToString(b)
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// TestNetboot boots one machine of every firmware path from one server,
// all at once: SeaBIOS with the iPXE ROM, OVMF UEFI PXE and OVMF UEFI HTTP
// boot (three x86 machines booting concurrently must not cross wires) and
// arm64 (AAVMF, GRUB). Each is discovered, provisioned with the test image
// and released; the table of phase times is printed.
func TestNetboot(t *testing.T) {
	requireTools(t, true)
	env := newEnv(t, "amd64", "arm64")
	var table phaseTable
	t.Cleanup(func() {
		out := table.String()
		t.Logf("time per phase:\n%s", out)
		_ = os.WriteFile(filepath.Join(env.Artifacts(), "phases.txt"), []byte(out), 0o644)
	})
	machines := []struct {
		name string
		fw   harness.Firmware
		mem  int64
	}{
		{"bios", harness.BIOS, 512},
		{"uefi-pxe", harness.UEFIPXE, 512},
		{"uefi-http", harness.UEFIHTTP, 512},
		{"arm64", harness.ARM64, 768},
	}
	// Subtests run from goroutines, not t.Parallel, so that -parallel
	// (GOMAXPROCS, 2 in CI) cannot serialise them.
	var (
		wg    sync.WaitGroup
		mu    sync.Mutex
		disc  = map[string]*harness.Boot{}
		owner = map[string]string{} // machine UUID → test machine
	)
	for _, mc := range machines {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(mc.name, func(t *testing.T) {
				vm, err := env.StartVM(context.Background(), mc.name, mc.fw)
				if err != nil {
					t.Fatal(err)
				}
				// Keep the whole timeline with the artifacts.
				t.Cleanup(func() { _, _ = env.Timeline(context.Background(), vm) })
				row := lifecycle(t, env, vm, mc.mem, func(b *harness.Boot, m *model.Machine) {
					mu.Lock()
					defer mu.Unlock()
					disc[mc.name] = b
					if other, ok := owner[m.UUID]; ok {
						t.Errorf("%s registered as machine %s, which %s registered as too", mc.name, m.UUID, other)
					}
					owner[m.UUID] = mc.name
				})
				table.add(row)
			})
		}()
	}
	wg.Wait()
	// The x86 machines' discovery boots overlapped in time: the run did
	// boot them concurrently.
	var latestStart, earliestDone time.Time
	for _, name := range []string{"bios", "uefi-pxe", "uefi-http"} {
		b := disc[name]
		if b == nil || b.Done.IsZero() {
			return // that machine failed; its subtest says why
		}
		if b.Start.After(latestStart) {
			latestStart = b.Start
		}
		if earliestDone.IsZero() || b.Done.Before(earliestDone) {
			earliestDone = b.Done
		}
	}
	if !latestStart.Before(earliestDone) {
		t.Errorf("the x86 discovery boots did not overlap: the last started at %s, the first was done at %s",
			latestStart.Format(time.TimeOnly), earliestDone.Format(time.TimeOnly))
	}
}

// TestBrokenChainIsCaught shows the failure mode: a stored override of
// the discovery bootenv whose kernel parameters use a param that does not
// exist makes every discovery script fail to render. The harness must
// report the broken chain quickly, naming the failed render, with the
// machine's serial console in the report (the inner failure is the
// expected outcome; this test fails only if it is not detected).
func TestBrokenChainIsCaught(t *testing.T) {
	requireTools(t, false)
	env := newEnv(t, "amd64")
	ctx := context.Background()
	var be model.BootEnv
	if err := env.Call(ctx, "GET", "/bootenvs/discovery", nil, &be); err != nil {
		t.Fatalf("read the built-in discovery bootenv: %v", err)
	}
	be.BootParams += ` broken={{.Param "e2e-no-such-param"}}`
	be.ReadOnly = false
	// The first write of a built-in's name stores an override.
	if err := env.Call(ctx, "PUT", "/bootenvs/discovery", &be, nil); err != nil {
		t.Fatalf("store the broken discovery bootenv: %v", err)
	}
	vm, err := env.StartVM(ctx, "broken", harness.BIOS)
	if err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	_, _, err = env.Discover(ctx, vm)
	var ce *harness.ChainError
	if !errors.As(err, &ce) {
		t.Fatalf("discovery with a broken template: got %v, want a *harness.ChainError", err)
	}
	t.Logf("expected failure, detected after %s:\n%v", time.Since(start).Round(time.Second), err)
	if !strings.Contains(ce.Err.Error(), "e2e-no-such-param") || !strings.Contains(ce.Err.Error(), "render") {
		t.Errorf("the failure does not name the broken render: %v", ce.Err)
	}
	if !strings.Contains(ce.Serial, "iPXE") {
		t.Errorf("the failure report lacks the serial console (want iPXE's banner):\n%s", ce.Serial)
	}
	if !strings.Contains(err.Error(), ce.Serial) {
		t.Error("the error message does not include the serial console")
	}
}
