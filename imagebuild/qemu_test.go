package imagebuild

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/test/testenv"
)

// These tests boot the real images in QEMU (-kernel/-initrd, user-mode
// networking: no host interface is touched; the guest reaches the host's
// 127.0.0.1 as 10.0.2.2) against fakeAPI, a test double of the ironcast
// endpoints the images call.

const (
	registerToken = "register-token"
	machineToken  = "machine-token"
	fakeUUID      = "6f1c1e3a-5d7e-4b7e-9a51-0c2d3e4f5a6b"
)

// fakeAPI implements register, machine poll, callbacks and metadata.json.
type fakeAPI struct {
	t  *testing.T
	mu sync.Mutex
	// registrations are the decoded register bodies.
	registrations []registration
	callbacks     []callbackCall
	bootEnv       string
	state         model.MachineState
	params        map[string]any
	noMetadata    bool          // answer metadata.json and user-data with 500
	changed       chan struct{} // closed and replaced on every request
}

type registration struct {
	HardwareAddrs []string
	Arch          string
	Inventory     *model.Inventory
}

type callbackCall struct {
	Event string
	Body  map[string]any
}

func newFakeAPI(t *testing.T, bootEnv string, state model.MachineState) (*fakeAPI, string) {
	f := &fakeAPI{t: t, bootEnv: bootEnv, state: state, changed: make(chan struct{}),
		params: map[string]any{"greeting": "hello from ironcast", "other": 42}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /api/v1/machines/register", f.register)
	mux.HandleFunc("GET /api/v1/machines/{uuid}", f.machine)
	mux.HandleFunc("GET /machines/{uuid}/metadata.json", f.metadata)
	mux.HandleFunc("POST /api/v1/machines/{uuid}/callbacks/{event}", f.callback)
	// Listen on all loopback traffic: QEMU's slirp forwards 10.0.2.2 to the
	// host's 127.0.0.1.
	l, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewUnstartedServer(mux)
	srv.Listener.Close()
	srv.Listener = l
	srv.Start()
	t.Cleanup(srv.Close)
	return f, fmt.Sprintf("http://10.0.2.2:%d", l.Addr().(*net.TCPAddr).Port)
}

func (f *fakeAPI) notify() {
	close(f.changed)
	f.changed = make(chan struct{})
}

func (f *fakeAPI) auth(w http.ResponseWriter, r *http.Request, token string) bool {
	if r.Header.Get("Authorization") != "Bearer "+token {
		http.Error(w, "bad token", http.StatusUnauthorized)
		return false
	}
	return true
}

func (f *fakeAPI) register(w http.ResponseWriter, r *http.Request) {
	if !f.auth(w, r, registerToken) {
		return
	}
	var reg registration
	dec := json.NewDecoder(r.Body)
	dec.DisallowUnknownFields()
	if err := dec.Decode(&reg); err != nil {
		f.t.Errorf("register body: %v", err)
		http.Error(w, err.Error(), http.StatusUnprocessableEntity)
		return
	}
	f.mu.Lock()
	f.registrations = append(f.registrations, reg)
	f.notify()
	f.mu.Unlock()
	f.writeMachine(w)
}

func (f *fakeAPI) writeMachine(w http.ResponseWriter) {
	f.mu.Lock()
	defer f.mu.Unlock()
	// Pretty-printed on purpose: the image must not depend on layout.
	b, _ := json.MarshalIndent(map[string]any{
		"UUID": fakeUUID, "Token": machineToken, "BootEnv": f.bootEnv, "State": f.state,
		"Inventory": map[string]any{"SystemUUID": "00000000-0000-0000-0000-000000000000"},
	}, "", "  ")
	w.Header().Set("Content-Type", "application/json")
	w.Write(b)
}

func (f *fakeAPI) machine(w http.ResponseWriter, r *http.Request) {
	if !f.auth(w, r, machineToken) {
		return
	}
	if r.PathValue("uuid") != fakeUUID {
		http.NotFound(w, r)
		return
	}
	f.writeMachine(w)
}

func (f *fakeAPI) metadata(w http.ResponseWriter, r *http.Request) {
	if !f.auth(w, r, machineToken) || r.PathValue("uuid") != fakeUUID {
		http.Error(w, "no", http.StatusForbidden)
		return
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if f.noMetadata {
		http.Error(w, "metadata unavailable", http.StatusInternalServerError)
		return
	}
	json.NewEncoder(w).Encode(map[string]any{
		"UUID": fakeUUID, "Name": "m-525400123456", "BootEnv": f.bootEnv, "State": f.state,
		"Params": f.params,
	})
}

func (f *fakeAPI) callback(w http.ResponseWriter, r *http.Request) {
	if !f.auth(w, r, machineToken) || r.PathValue("uuid") != fakeUUID {
		http.Error(w, "no", http.StatusForbidden)
		return
	}
	var body map[string]any
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		f.t.Errorf("callback %s body: %v", r.PathValue("event"), err)
	}
	f.mu.Lock()
	f.callbacks = append(f.callbacks, callbackCall{Event: r.PathValue("event"), Body: body})
	f.notify()
	f.mu.Unlock()
	w.WriteHeader(http.StatusNoContent)
}

// set changes what the machine record says.
func (f *fakeAPI) set(bootEnv string, state model.MachineState) {
	f.mu.Lock()
	f.bootEnv, f.state = bootEnv, state
	f.mu.Unlock()
}

// waitFor waits until cond (called under the lock) holds, or the VM's
// deadline passes.
func (f *fakeAPI) waitFor(t *testing.T, vm *qemuVM, what string, cond func() bool) {
	t.Helper()
	for {
		f.mu.Lock()
		ok, ch := cond(), f.changed
		f.mu.Unlock()
		if ok {
			return
		}
		select {
		case <-ch:
		case <-vm.exited:
			t.Fatalf("VM exited while waiting for %s; serial log:\n%s", what, vm.serial())
		case <-vm.ctx.Done():
			t.Fatalf("timed out waiting for %s; serial log:\n%s", what, vm.serial())
		}
	}
}

func (f *fakeAPI) hasCallback(event string) bool {
	for _, c := range f.callbacks {
		if c.Event == event {
			return true
		}
	}
	return false
}

// qemuVM is one running QEMU with its serial console in a file.
type qemuVM struct {
	ctx    context.Context
	log    string
	cmd    *exec.Cmd
	exited chan struct{}
}

type vmConfig struct {
	arch                    string // "" (amd64) or "arm64"
	nic                     string // QEMU NIC model; default virtio-net-pci
	kernel, initrd, cmdline string
	mac                     string
	cpus, memMiB            int
	disk                    string // raw image, optional
}

var (
	accelOnce sync.Once
	accel     string
)

// qemuAccel returns "kvm" when /dev/kvm really runs a guest, else "tcg".
// Opening /dev/kvm is not enough: some nested hosts offer a /dev/kvm that
// hangs a Linux guest before its first console line, so this boots the
// kernel once (no initrd: it panics and, with panic=-1 and -no-reboot,
// QEMU exits) and looks for the kernel banner.
func qemuAccel(t *testing.T, kernel string) string {
	accelOnce.Do(func() {
		accel = "tcg"
		if v := os.Getenv("IRONCAST_QEMU_ACCEL"); v != "" {
			accel = v
			return
		}
		f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
		if err != nil {
			return
		}
		f.Close()
		ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
		defer cancel()
		out, _ := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", "kvm", "-m", "256",
			"-kernel", kernel, "-append", "console=ttyS0 panic=-1", "-display", "none",
			"-serial", "stdio", "-monitor", "none", "-no-reboot", "-nic", "none").Output()
		if bytes.Contains(out, []byte("Linux version")) {
			accel = "kvm"
		}
	})
	t.Logf("QEMU accelerator: %s", accel)
	return accel
}

// startVM boots cfg; the VM is killed (by PID) when the test ends. Every
// wait on it ends by timeout at the latest.
func startVM(t *testing.T, cfg vmConfig, timeout time.Duration) *qemuVM {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	t.Cleanup(cancel)
	var args []string
	var qemu string
	dir := t.TempDir()
	if cfg.arch == "arm64" {
		// The virt machine with AAVMF (UEFI) firmware, which gives the
		// guest SMBIOS tables and boots the kernel through its EFI stub.
		qemu = testenv.RequireTool(t, "qemu-system-aarch64")
		code, vars := "/usr/share/AAVMF/AAVMF_CODE.fd", "/usr/share/AAVMF/AAVMF_VARS.fd"
		if _, err := os.Stat(code); err != nil {
			testenv.RequireTool(t, "AAVMF (package qemu-efi-aarch64): "+code)
		}
		varsCopy := filepath.Join(dir, "vars.fd")
		b, err := os.ReadFile(vars)
		if err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(varsCopy, b, 0o644); err != nil {
			t.Fatal(err)
		}
		args = []string{"-machine", "virt", "-cpu", "cortex-a57", "-accel", "tcg",
			"-drive", "if=pflash,format=raw,readonly=on,file=" + code,
			"-drive", "if=pflash,format=raw,file=" + varsCopy}
	} else {
		qemu = testenv.RequireTool(t, "qemu-system-x86_64")
		args = []string{"-accel", qemuAccel(t, cfg.kernel)}
	}
	vm := &qemuVM{ctx: ctx, log: filepath.Join(dir, "serial.log"), exited: make(chan struct{})}
	nic := cfg.nic
	if nic == "" {
		nic = "virtio-net-pci"
	}
	args = append(args,
		"-m", fmt.Sprint(cfg.memMiB), "-smp", fmt.Sprint(cfg.cpus),
		"-kernel", cfg.kernel, "-initrd", cfg.initrd, "-append", cfg.cmdline,
		"-nographic", "-serial", "file:"+vm.log, "-monitor", "none",
		// reboot -f ends QEMU, which is how the tests see a reboot.
		"-no-reboot",
		"-netdev", "user,id=n0", "-device", nic+",netdev=n0,mac="+cfg.mac,
	)
	if cfg.disk != "" {
		args = append(args, "-drive", "file="+cfg.disk+",format=raw,if=virtio")
	}
	vm.cmd = exec.Command(qemu, args...)
	var stderr bytes.Buffer
	vm.cmd.Stderr = &stderr
	if err := vm.cmd.Start(); err != nil {
		t.Fatalf("start qemu: %v", err)
	}
	go func() {
		_ = vm.cmd.Wait()
		close(vm.exited)
	}()
	t.Cleanup(func() {
		select {
		case <-vm.exited:
		default:
			_ = vm.cmd.Process.Kill() // our own QEMU, by PID
			<-vm.exited
		}
		if t.Failed() {
			t.Logf("qemu stderr: %s", stderr.String())
		}
	})
	return vm
}

func (vm *qemuVM) serial() string {
	b, _ := os.ReadFile(vm.log)
	return string(b)
}

// waitSerial polls the serial log until re matches, the VM exits or the
// deadline passes; it returns the submatches.
func (vm *qemuVM) waitSerial(t *testing.T, re *regexp.Regexp) []string {
	t.Helper()
	tick := time.NewTicker(200 * time.Millisecond)
	defer tick.Stop()
	for {
		if m := re.FindStringSubmatch(vm.serial()); m != nil {
			return m
		}
		select {
		case <-tick.C:
		case <-vm.exited:
			if m := re.FindStringSubmatch(vm.serial()); m != nil {
				return m
			}
			t.Fatalf("VM exited before %q; serial log:\n%s", re, vm.serial())
		case <-vm.ctx.Done():
			t.Fatalf("timed out waiting for %q; serial log:\n%s", re, vm.serial())
		}
	}
}

// waitExit waits for QEMU to end (the guest rebooted, with -no-reboot).
func (vm *qemuVM) waitExit(t *testing.T) {
	t.Helper()
	select {
	case <-vm.exited:
	case <-vm.ctx.Done():
		t.Fatalf("VM did not reboot; serial log:\n%s", vm.serial())
	}
}

const bootTimeout = 4 * time.Minute

func TestQEMUDiscover(t *testing.T) {
	coveredByE2E(t)
	res := realBuild(t, "amd64", ModeDiscovery)
	api, url := newFakeAPI(t, "discovery", model.StateReady)
	disk := filepath.Join(t.TempDir(), "disk.raw")
	const diskSize = 96 << 20
	if err := os.WriteFile(disk, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Truncate(disk, diskSize); err != nil {
		t.Fatal(err)
	}
	const mac = "52:54:00:12:34:56"
	vm := startVM(t, vmConfig{
		kernel: res.Kernel, initrd: res.Initrd, mac: mac, cpus: 2, memMiB: 512, disk: disk,
		cmdline: "console=ttyS0 ironcast.url=" + url + " ironcast.token=" + registerToken + " ironcast.mode=discover ironcast.poll=1",
	}, bootTimeout)

	api.waitFor(t, vm, "registration", func() bool { return len(api.registrations) > 0 })
	api.mu.Lock()
	reg := api.registrations[0]
	api.mu.Unlock()
	inv := reg.Inventory
	if inv == nil {
		t.Fatalf("registration has no inventory: %+v", reg)
	}
	if diff := cmp.Diff(reg.HardwareAddrs, []string{mac}); diff != "" {
		t.Errorf("HardwareAddrs (-got +want):\n%s", diff)
	}
	if reg.Arch != "amd64" {
		t.Errorf("Arch = %q, want amd64", reg.Arch)
	}
	if inv.CPUs != 2 {
		t.Errorf("CPUs = %d, want 2 (-smp 2)", inv.CPUs)
	}
	if inv.MemoryMiB != 512 {
		t.Errorf("MemoryMiB = %d, want 512 (-m 512)", inv.MemoryMiB)
	}
	if diff := cmp.Diff(inv.Disks, []model.Disk{{Name: "vda", SizeBytes: diskSize}}); diff != "" {
		t.Errorf("Disks (-got +want):\n%s", diff)
	}
	if diff := cmp.Diff(inv.NICs, []model.NIC{{Name: "eth0", MAC: mac, Driver: "virtio_net"}}); diff != "" {
		t.Errorf("NICs (-got +want):\n%s", diff)
	}
	if inv.Manufacturer != "QEMU" || inv.CPUModel == "" {
		t.Errorf("Manufacturer %q, CPUModel %q: want QEMU and a model", inv.Manufacturer, inv.CPUModel)
	}

	// The machine waits on its record while it stays on discovery...
	vm.waitSerial(t, regexp.MustCompile(`ironcast: machine `+fakeUUID+` is ready, bootenv discovery`))
	// ...and reboots once it is given another bootenv.
	api.set("linuxkit", model.StateProvisioning)
	vm.waitSerial(t, regexp.MustCompile(`ironcast: rebooting into linuxkit`))
	vm.waitExit(t)
}

func TestQEMUWipe(t *testing.T) {
	res := realBuild(t, "amd64", ModeDiscovery)
	const mib = 1 << 20
	const diskSize = 16 * mib
	tests := []struct {
		name, cmdline, nic string
		wantMiddle         byte // what the disk holds between its first and last MiB
	}{
		// The ends only, over QEMU's default e1000 NIC.
		{"ends", "", "e1000", 0xAA},
		{"full", " ironcast.wipe=full", "virtio-net-pci", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.name == "ends" {
				coveredByE2E(t)
			}
			api, url := newFakeAPI(t, "wipe", model.StateReleasing)
			disk := filepath.Join(t.TempDir(), "disk.raw")
			if err := os.WriteFile(disk, bytes.Repeat([]byte{0xAA}, diskSize), 0o644); err != nil {
				t.Fatal(err)
			}
			vm := startVM(t, vmConfig{
				kernel: res.Kernel, initrd: res.Initrd, nic: tt.nic, mac: "52:54:00:12:34:57", cpus: 1, memMiB: 384, disk: disk,
				cmdline: "console=ttyS0 ironcast.url=" + url + " ironcast.token=" + machineToken +
					" ironcast.mode=wipe ironcast.uuid=" + fakeUUID + " ironcast.poll=1" + tt.cmdline,
			}, bootTimeout)
			api.waitFor(t, vm, "the wiped callback", func() bool { return api.hasCallback("wiped") })
			vm.waitSerial(t, regexp.MustCompile(`ironcast: wiped vda`))
			api.mu.Lock()
			var events []string
			for _, c := range api.callbacks {
				events = append(events, c.Event)
			}
			api.mu.Unlock()
			if diff := cmp.Diff(events, []string{"wiping", "wiped"}); diff != "" {
				t.Errorf("callbacks (-got +want):\n%s", diff)
			}
			// The server moves the machine back to discovery; the VM reboots.
			api.set("discovery", model.StateReady)
			vm.waitSerial(t, regexp.MustCompile(`ironcast: rebooting into discovery`))
			vm.waitExit(t)

			got, err := os.ReadFile(disk)
			if err != nil {
				t.Fatal(err)
			}
			zero := make([]byte, mib)
			if !bytes.Equal(got[:mib], zero) {
				t.Errorf("first MiB of the disk is not zero")
			}
			if !bytes.Equal(got[diskSize-mib:], zero) {
				t.Errorf("last MiB of the disk is not zero")
			}
			if !bytes.Equal(got[mib:diskSize-mib], bytes.Repeat([]byte{tt.wantMiddle}, diskSize-2*mib)) {
				t.Errorf("the middle of the disk is not all %#x", tt.wantMiddle)
			}
		})
	}
}

// TestQEMUFailure: when the image cannot do its job it reports failed with
// the reason, offers a shell and tries again, instead of exiting init.
func TestQEMUFailure(t *testing.T) {
	res := realBuild(t, "amd64", ModeTest)
	api, url := newFakeAPI(t, "linuxkit", model.StateProvisioning)
	api.mu.Lock()
	api.noMetadata = true
	api.mu.Unlock()
	vm := startVM(t, vmConfig{
		kernel: res.Kernel, initrd: res.Initrd, mac: "52:54:00:12:34:59", cpus: 1, memMiB: 384,
		cmdline: "console=ttyS0 ironcast.url=" + url + " ironcast.token=" + machineToken + " ironcast.uuid=" + fakeUUID,
	}, bootTimeout)
	api.waitFor(t, vm, "the failed callback", func() bool { return api.hasCallback("failed") })
	api.mu.Lock()
	var reason any
	for _, c := range api.callbacks {
		if c.Event == "failed" {
			reason = c.Body["Reason"]
		}
	}
	api.mu.Unlock()
	if r, _ := reason.(string); !strings.Contains(r, "could not read metadata.json or user-data") {
		t.Errorf("failed Reason = %v, want the metadata error", reason)
	}
	vm.waitSerial(t, regexp.MustCompile(`ironcast: retrying in 10s`))
	// Nothing else happened: init is still alive, so the kernel did not panic.
	if strings.Contains(vm.serial(), "Kernel panic") {
		t.Errorf("kernel panicked:\n%s", vm.serial())
	}
}

func TestQEMURunMode(t *testing.T) {
	coveredByE2E(t)
	res := realBuild(t, "amd64", ModeTest)
	cmdline, err := os.ReadFile(res.Cmdline)
	if err != nil {
		t.Fatal(err)
	}
	api, url := newFakeAPI(t, "linuxkit", model.StateProvisioning)
	// What the linuxkit bootenv appends to <name>-cmdline.
	vm := startVM(t, vmConfig{
		kernel: res.Kernel, initrd: res.Initrd, mac: "52:54:00:12:34:58", cpus: 1, memMiB: 384,
		cmdline: strings.TrimSpace(string(cmdline)) + " ironcast.url=" + url + " ironcast.token=" + machineToken +
			" ironcast.uuid=" + fakeUUID + " ironcast.param=greeting ironcast.poll=1",
	}, bootTimeout)
	vm.waitSerial(t, regexp.MustCompile(`(?m)^IRONCAST-LINUXKIT-OK`))
	vm.waitSerial(t, regexp.MustCompile(`(?m)^ironcast: param greeting=hello from ironcast\r?$`))
	api.waitFor(t, vm, "the running callback", func() bool { return api.hasCallback("running") })
	// Released: the image follows its record into the wipe bootenv.
	api.set("wipe", model.StateReleasing)
	vm.waitSerial(t, regexp.MustCompile(`ironcast: rebooting into wipe`))
	vm.waitExit(t)
}

// TestQEMUDiscoverARM64 boots the arm64 discovery image under
// qemu-system-aarch64 with AAVMF and checks its registration.
func TestQEMUDiscoverARM64(t *testing.T) {
	coveredByE2E(t)
	res := realBuild(t, "arm64", ModeDiscovery)
	api, url := newFakeAPI(t, "discovery", model.StateReady)
	const mac = "52:54:00:ab:cd:01"
	vm := startVM(t, vmConfig{
		arch: "arm64", kernel: res.Kernel, initrd: res.Initrd, mac: mac, cpus: 2, memMiB: 512,
		cmdline: "console=ttyAMA0 ironcast.url=" + url + " ironcast.token=" + registerToken + " ironcast.poll=1",
	}, 2*bootTimeout)
	api.waitFor(t, vm, "registration", func() bool { return len(api.registrations) > 0 })
	api.mu.Lock()
	reg := api.registrations[0]
	api.mu.Unlock()
	if reg.Arch != "arm64" || reg.Inventory == nil {
		t.Fatalf("registration: %+v", reg)
	}
	inv := reg.Inventory
	if diff := cmp.Diff(reg.HardwareAddrs, []string{mac}); diff != "" {
		t.Errorf("HardwareAddrs (-got +want):\n%s", diff)
	}
	if inv.CPUs != 2 || inv.MemoryMiB != 512 {
		t.Errorf("CPUs %d, MemoryMiB %d; want 2 and 512", inv.CPUs, inv.MemoryMiB)
	}
	// SMBIOS from the firmware.
	if inv.Manufacturer != "QEMU" {
		t.Errorf("Manufacturer = %q, want QEMU (from AAVMF's SMBIOS)", inv.Manufacturer)
	}
	api.set("linuxkit", model.StateProvisioning)
	vm.waitSerial(t, regexp.MustCompile(`ironcast: rebooting into linuxkit`))
	vm.waitExit(t)
}

var _ io.Writer = testWriter{}

// coveredByE2E skips a boot that test/e2e's TestNetboot makes over the
// network anyway (discovery on every firmware, the run-mode image, the
// default wipe), to keep make test inside CI's time; each such boot costs
// 30-90 s under TCG. IRONCAST_IMAGE_BOOTS=all boots them here too, against
// the fake API, which is quicker to debug than the full chain.
func coveredByE2E(t *testing.T) {
	t.Helper()
	if os.Getenv("IRONCAST_IMAGE_BOOTS") != "all" {
		t.Skip("booted over the network by test/e2e TestNetboot; IRONCAST_IMAGE_BOOTS=all boots it here too")
	}
}
