package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"
)

// Firmware is how a test machine boots.
type Firmware string

// The firmware paths the harness drives.
const (
	// BIOS is SeaBIOS with the NIC's iPXE ROM (ipxe-qemu): the first DHCP
	// request already comes from iPXE (option 93 = 0, user class iPXE),
	// which gets the HTTP URL of its script directly.
	BIOS Firmware = "bios"
	// UEFIPXE is OVMF with the NIC ROM disabled: UEFI's own PXE (option 93
	// = 7) fetches snponly.efi over TFTP, which then fetches the script.
	UEFIPXE Firmware = "uefi-pxe"
	// UEFIHTTP is OVMF with PXE turned off and the NIC ROM disabled: UEFI
	// HTTP boot (option 93 = 16) fetches snponly.efi over HTTP.
	UEFIHTTP Firmware = "uefi-http"
	// ARM64 is AAVMF on qemu-system-aarch64 (virt, cortex-a57, TCG): UEFI
	// PXE (option 93 = 11) fetches grubnetaa64.efi over TFTP, which reads
	// its per-machine grub.cfg and the kernel and initrd over TFTP.
	ARM64 Firmware = "arm64"
)

// Firmwares lists every firmware path.
var Firmwares = []Firmware{BIOS, UEFIPXE, UEFIHTTP, ARM64}

// Arch is the machine's CPU architecture as ironcast names it.
func (f Firmware) Arch() string {
	if f == ARM64 {
		return "arm64"
	}
	return "amd64"
}

// DHCPFirmware is the firmware ironcast's DHCP server must classify the
// machine's first request as (model.Firmware; the option 93 value is in
// the comment of each constant above).
func (f Firmware) DHCPFirmware() string {
	switch f {
	case BIOS:
		return "bios"
	case UEFIPXE:
		return "uefi-x64"
	case UEFIHTTP:
		return "uefi-http-x64"
	case ARM64:
		return "uefi-arm64"
	}
	return ""
}

// Files of the firmware paths.
const (
	// DiskSize is the size of each machine's raw disk image.
	DiskSize = 64 << 20
	mib      = 1 << 20
)

// VM is one QEMU machine on the test network.
type VM struct {
	Name     string
	Firmware Firmware
	MAC      string
	// Disk is the raw disk image; its first and last MiB start out filled
	// with a non-zero pattern so that a wipe is visible from the host.
	Disk string
	// SerialPath is the serial console log.
	SerialPath string
	// Started is when QEMU was started.
	Started time.Time

	uuid        atomic.Pointer[string] // the machine record's, once known
	provisioned atomic.Int64           // console offset where provisioning began
	released    cursor                 // where Release saw the machine ready again
	serial      *logFile
	cmd         *exec.Cmd
	monitor     string // HMP monitor socket
	done        chan struct{}
	exited      atomic.Bool
	waitErr     error
}

// randomMAC returns a locally administered unicast MAC in QEMU's range.
func randomMAC() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return fmt.Sprintf("52:54:00:%02x:%02x:%02x", b[0], b[1], b[2])
}

// makeDisk writes a sparse raw image of DiskSize whose first and last MiB
// hold a non-zero pattern.
func makeDisk(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("create disk: %w", err)
	}
	defer f.Close()
	if err := f.Truncate(DiskSize); err != nil {
		return fmt.Errorf("size disk: %w", err)
	}
	pat := bytes.Repeat([]byte("IRONCAST-E2E-DIRTY\xa5"), mib/19+1)[:mib]
	if _, err := f.WriteAt(pat, 0); err != nil {
		return fmt.Errorf("write disk: %w", err)
	}
	if _, err := f.WriteAt(pat, DiskSize-mib); err != nil {
		return fmt.Errorf("write disk: %w", err)
	}
	return f.Close()
}

// DiskWiped reports whether the first and the last MiB of the disk image
// are all zeros, as the wipe image leaves them.
func (vm *VM) DiskWiped() (bool, error) {
	f, err := os.Open(vm.Disk)
	if err != nil {
		return false, err
	}
	defer f.Close()
	buf := make([]byte, mib)
	for _, off := range []int64{0, DiskSize - mib} {
		if _, err := f.ReadAt(buf, off); err != nil && !errors.Is(err, io.EOF) {
			return false, fmt.Errorf("read disk: %w", err)
		}
		if !allZero(buf) {
			return false, nil
		}
	}
	return true, nil
}

func allZero(b []byte) bool {
	for _, c := range b {
		if c != 0 {
			return false
		}
	}
	return true
}

// kvmUsable reports whether KVM really runs machines here: /dev/kvm must
// open, and OVMF must print on its console under KVM within a few seconds.
// The probe matters under nested virtualisation, where /dev/kvm exists
// but OVMF dies with "KVM internal error" before its first line. The
// answer is computed once per process.
func kvmUsable(ovmfCode, ovmfVars, dir string) bool {
	kvmOnce.Do(func() { kvmOK = probeKVM(ovmfCode, ovmfVars, dir) })
	return kvmOK
}

var (
	kvmOnce sync.Once
	kvmOK   bool
)

func probeKVM(ovmfCode, ovmfVars, dir string) bool {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return false
	}
	f.Close()
	dir, err = os.MkdirTemp(dir, "kvm-probe-")
	if err != nil {
		return false
	}
	defer os.RemoveAll(dir)
	vars := filepath.Join(dir, "vars.fd")
	if err := copyFile(ovmfVars, vars, 0o644); err != nil {
		return false
	}
	serial := filepath.Join(dir, "serial.log")
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "qemu-system-x86_64", "-accel", "kvm", "-cpu", "host", "-nodefaults", "-no-user-config",
		"-display", "none", "-vga", "none", "-serial", "file:"+serial, "-monitor", "none", "-machine", "q35", "-m", "256",
		"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+ovmfCode,
		"-drive", "if=pflash,format=raw,unit=1,file="+vars)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL}
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := start(cmd); err != nil {
		return false
	}
	var exited atomic.Bool
	go func() { _ = cmd.Wait(); exited.Store(true) }()
	defer func() { _ = cmd.Process.Kill() }()
	lf := &logFile{path: serial, alive: func() bool { return !exited.Load() }}
	_, _, err = lf.wait(ctx, 0, regexp.MustCompile(`\S`), nil, func() error {
		if strings.Contains(stderr.String(), "KVM internal error") {
			return errors.New("KVM internal error")
		}
		return nil
	})
	return err == nil
}

// syncBuffer is a bytes.Buffer safe for one writer and concurrent readers.
type syncBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *syncBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *syncBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// qemuArgs builds the command line of vm.
func (e *Env) qemuArgs(vm *VM, tap, dir string) (string, []string, error) {
	nic := fmt.Sprintf("virtio-net-pci,netdev=n0,mac=%s,bootindex=1", vm.MAC)
	args := []string{
		"-name", vm.Name, "-nodefaults", "-no-user-config", "-display", "none", "-vga", "none",
		"-serial", "file:" + vm.SerialPath,
		"-monitor", "unix:" + vm.monitor + ",server=on,wait=off",
		"-netdev", fmt.Sprintf("tap,id=n0,ifname=%s,script=no,downscript=no", tap),
		"-drive", "file=" + vm.Disk + ",format=raw,if=none,id=d0",
		"-device", "virtio-blk-pci,drive=d0",
		"-object", "rng-random,id=rng0,filename=/dev/urandom", "-device", "virtio-rng-pci,rng=rng0",
	}
	accel := []string{"-accel", "tcg"}
	if e.kvm && vm.Firmware != ARM64 {
		accel = []string{"-accel", "kvm", "-cpu", "host"}
	}
	copyVars := func(src string) (string, error) {
		dst := filepath.Join(dir, "vars.fd")
		b, err := os.ReadFile(src)
		if err != nil {
			return "", fmt.Errorf("read firmware variables: %w", err)
		}
		return dst, os.WriteFile(dst, b, 0o644)
	}
	switch vm.Firmware {
	case BIOS:
		// SeaBIOS and iPXE print on COM1 only when told its port.
		sercon := filepath.Join(dir, "sercon-port")
		if err := os.WriteFile(sercon, []byte{0xf8, 0x03}, 0o644); err != nil {
			return "", nil, err
		}
		args = append(args, "-machine", "pc", "-m", "512", "-smp", "1", "-boot", "n",
			"-fw_cfg", "name=etc/sercon-port,file="+sercon, "-device", nic)
		return "qemu-system-x86_64", append(accel, args...), nil
	case UEFIPXE, UEFIHTTP:
		vars, err := copyVars(e.opts.OVMFVars)
		if err != nil {
			return "", nil, err
		}
		args = append(args, "-machine", "q35", "-m", "512", "-smp", "1",
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+e.opts.OVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars,
			"-device", nic+",romfile=")
		if vm.Firmware == UEFIHTTP {
			args = append(args,
				"-fw_cfg", "name=opt/org.tianocore/IPv4PXESupport,string=no",
				"-fw_cfg", "name=opt/org.tianocore/IPv6PXESupport,string=no")
		}
		return "qemu-system-x86_64", append(accel, args...), nil
	case ARM64:
		vars, err := copyVars(e.opts.AAVMFVars)
		if err != nil {
			return "", nil, err
		}
		args = append(args, "-machine", "virt", "-cpu", "cortex-a57", "-m", "768", "-smp", "1",
			"-drive", "if=pflash,format=raw,unit=0,readonly=on,file="+e.opts.AAVMFCode,
			"-drive", "if=pflash,format=raw,unit=1,file="+vars,
			"-device", nic+",romfile=")
		return "qemu-system-aarch64", append([]string{"-accel", "tcg,thread=multi"}, args...), nil
	}
	return "", nil, fmt.Errorf("unknown firmware %q", vm.Firmware)
}

// StartVM creates a machine with a fresh MAC, disk and tap on the bridge
// and powers it on. Nothing is configured for it on the server.
func (e *Env) StartVM(ctx context.Context, name string, fw Firmware) (*VM, error) {
	dir := filepath.Join(e.workDir, "vm-"+name)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	vm := &VM{Name: name, Firmware: fw, MAC: randomMAC(), Disk: filepath.Join(dir, "disk.raw"),
		SerialPath: filepath.Join(e.artifacts, name+".serial.log"), monitor: filepath.Join(dir, "monitor.sock"),
		done: make(chan struct{})}
	vm.serial = &logFile{path: vm.SerialPath, alive: func() bool { return !vm.exited.Load() }}
	if err := makeDisk(vm.Disk); err != nil {
		return nil, err
	}
	tap, err := e.ns.tap(e.bridge)
	if err != nil {
		return nil, err
	}
	bin, args, err := e.qemuArgs(vm, tap, dir)
	if err != nil {
		return nil, err
	}
	out, err := os.Create(filepath.Join(e.artifacts, name+".qemu.log"))
	if err != nil {
		return nil, err
	}
	defer out.Close()
	fmt.Fprintf(out, "%s %q\n", bin, args)
	vm.cmd = e.ns.command(context.Background(), bin, args...)
	vm.cmd.Stdout, vm.cmd.Stderr = out, out
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return nil, errors.New("environment is closed")
	}
	if err := start(vm.cmd); err != nil {
		e.mu.Unlock()
		return nil, fmt.Errorf("start %s: %w", bin, err)
	}
	vm.Started = time.Now()
	e.vms = append(e.vms, vm)
	e.mu.Unlock()
	go func() {
		vm.waitErr = vm.cmd.Wait()
		vm.exited.Store(true)
		close(vm.done)
	}()
	e.logf("%s: started %s machine %s (%s)", name, fw, vm.MAC, e.accelName(fw))
	return vm, nil
}

func (e *Env) accelName(fw Firmware) string {
	if e.kvm && fw != ARM64 {
		return "kvm"
	}
	return "tcg"
}

// Reset presses the machine's reset button (QEMU system_reset), as an
// operator's power cycle through a BMC would.
func (vm *VM) Reset() error {
	c, err := net.DialTimeout("unix", vm.monitor, 5*time.Second)
	if err != nil {
		return fmt.Errorf("connect to the monitor of %s: %w", vm.Name, err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	// HMP: wait for the prompt, send the command, wait for the next
	// prompt; a command sent before the prompt, or a socket closed before
	// the answer, may be dropped.
	if err := readPrompt(c); err != nil {
		return fmt.Errorf("monitor of %s: %w", vm.Name, err)
	}
	if _, err := io.WriteString(c, "system_reset\n"); err != nil {
		return fmt.Errorf("monitor of %s: %w", vm.Name, err)
	}
	if err := readPrompt(c); err != nil {
		return fmt.Errorf("monitor of %s: %w", vm.Name, err)
	}
	return nil
}

// readPrompt reads the HMP monitor's output up to its "(qemu) " prompt.
func readPrompt(r io.Reader) error {
	var seen []byte
	buf := make([]byte, 512)
	for !bytes.Contains(seen, []byte("(qemu) ")) {
		n, err := r.Read(buf)
		seen = append(seen, buf[:n]...)
		if err != nil {
			return fmt.Errorf("read monitor prompt: %w (got %q)", err, seen)
		}
		seen = seen[max(0, len(seen)-64):]
	}
	return nil
}

// stop kills QEMU (a machine has nothing to save) and waits for it.
func (vm *VM) stop() {
	if vm.exited.Load() {
		return
	}
	_ = vm.cmd.Process.Signal(syscall.SIGKILL)
	select {
	case <-vm.done:
	case <-time.After(10 * time.Second):
	}
}

// SerialTail returns the last n lines of the machine's console.
func (vm *VM) SerialTail(n int) string { return vm.serial.tail(n) }

// serialSize is the current length of the console log, a mark for waits
// that must only see what comes after it.
func (vm *VM) serialSize() int64 { return vm.serial.size() }
