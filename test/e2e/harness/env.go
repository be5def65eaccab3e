package harness

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"

	"github.com/ironcast/ironcast/api/client"
	"github.com/ironcast/ironcast/model"
)

// Options configure an Env. Binary and WorkDir are required.
type Options struct {
	// Binary is the ironcast executable to run as the server.
	Binary string
	// WorkDir holds the data dir, disks and firmware variables. The caller
	// owns it (a t.TempDir(), or a directory removed after selftest).
	WorkDir string
	// ArtifactsDir receives the serial consoles, the server's JSON log and
	// the event stream. Default: WorkDir/artifacts.
	ArtifactsDir string
	// Accel is "kvm", "tcg" or "" (KVM when /dev/kvm can be opened). arm64
	// machines always run under TCG.
	Accel string
	// BootDir is copied into the server's boot root before it starts: the
	// discovery image (discovery/<arch>/vmlinuz, initrd.img), test images
	// (linuxkit/...) and boot programs the packages do not provide.
	BootDir string
	// ServerArgs are added to `ironcast serve`'s arguments.
	ServerArgs []string
	// RouterAdvertisements runs an RA-only dnsmasq (router lifetime 0) on
	// the bridge so that iPXE's IPv6 autoconfiguration ends at once
	// instead of after its ~16 s timeout. Needs dnsmasq.
	RouterAdvertisements bool
	// Firmware images; defaults are Debian's ovmf and qemu-efi-aarch64.
	OVMFCode, OVMFVars, AAVMFCode, AAVMFVars string
	// Logf receives progress lines; nil discards them.
	Logf func(format string, args ...any)
}

func (o *Options) defaults() error {
	if o.Binary == "" || o.WorkDir == "" {
		return errors.New("harness: Binary and WorkDir are required")
	}
	if o.ArtifactsDir == "" {
		o.ArtifactsDir = filepath.Join(o.WorkDir, "artifacts")
	}
	return o.defaults2()
}

// defaults2 fills the firmware paths and the log function.
func (o *Options) defaults2() error {
	def := func(p *string, v string) {
		if *p == "" {
			*p = v
		}
	}
	def(&o.OVMFCode, "/usr/share/OVMF/OVMF_CODE_4M.fd")
	def(&o.OVMFVars, "/usr/share/OVMF/OVMF_VARS_4M.fd")
	def(&o.AAVMFCode, "/usr/share/AAVMF/AAVMF_CODE.fd")
	def(&o.AAVMFVars, "/usr/share/AAVMF/AAVMF_VARS.fd")
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	return nil
}

// Env is a private network with an ironcast server and the machines
// booted on it. Its methods are safe for concurrent use, so several
// machines can be driven at once.
type Env struct {
	opts      Options
	workDir   string
	artifacts string
	kvm       bool

	ns      *netns
	bridge  string
	ra      *exec.Cmd
	srv     *server
	rec     *recorder
	stopRec context.CancelFunc
	evFile  *os.File

	mu     sync.Mutex
	vms    []*VM
	closed bool
}

// Start builds the network and starts the server. On error everything
// made so far is torn down. Call Close when done.
func Start(ctx context.Context, opts Options) (_ *Env, err error) {
	if err := opts.defaults(); err != nil {
		return nil, err
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("harness: needs root (network namespaces, taps)")
	}
	e := &Env{opts: opts, workDir: opts.WorkDir, artifacts: opts.ArtifactsDir}
	liveMu.Lock()
	live[e] = true
	liveMu.Unlock()
	switch opts.Accel {
	case "":
		e.kvm = kvmUsable(opts.OVMFCode, opts.OVMFVars, opts.WorkDir)
	case "kvm":
		e.kvm = true
	case "tcg":
	default:
		return nil, fmt.Errorf("harness: accel %q is not kvm or tcg", opts.Accel)
	}
	if err := os.MkdirAll(e.artifacts, 0o755); err != nil {
		return nil, fmt.Errorf("create artifacts dir: %w", err)
	}
	defer func() {
		if err != nil {
			e.Close()
		}
	}()
	if e.ns, err = newNetns(); err != nil {
		return nil, err
	}
	if e.bridge, err = e.ns.bridge(serverCIDR); err != nil {
		return nil, err
	}
	if opts.RouterAdvertisements {
		if err := e.startRA(); err != nil {
			return nil, err
		}
	}
	dataDir := filepath.Join(e.workDir, "data")
	if opts.BootDir != "" {
		if err := copyTree(opts.BootDir, filepath.Join(dataDir, "boot")); err != nil {
			return nil, fmt.Errorf("install boot files: %w", err)
		}
	}
	e.opts.Logf("server: starting %s in netns %s (DHCP on %s, %s)", opts.Binary, e.ns.name, e.bridge, SubnetCIDR)
	if e.srv, err = startServer(ctx, e.ns, opts.Binary, e.bridge, dataDir, e.workDir,
		filepath.Join(e.artifacts, "server.log"), opts.ServerArgs); err != nil {
		return nil, err
	}
	if err := e.recordEvents(ctx); err != nil {
		return nil, err
	}
	subnet := map[string]any{"Name": "e2e", "Subnet": SubnetCIDR, "ActiveStart": "10.77.0.100",
		"ActiveEnd": "10.77.0.200", "Router": ServerAddr, "Enabled": true}
	if _, err := e.srv.client.Create(ctx, model.KindSubnets, subnet); err != nil {
		return nil, fmt.Errorf("create subnet: %w", err)
	}
	return e, nil
}

// recordEvents subscribes to the server's whole event stream.
func (e *Env) recordEvents(ctx context.Context) error {
	f, err := os.Create(filepath.Join(e.artifacts, "events.jsonl"))
	if err != nil {
		return err
	}
	e.evFile = f
	e.rec = newRecorder(f)
	sctx, cancel := context.WithCancel(context.Background())
	e.stopRec = cancel
	ch, err := e.srv.client.Events(sctx, "")
	if err != nil {
		return fmt.Errorf("subscribe to events: %w", err)
	}
	go func() {
		for ev := range ch {
			e.rec.add(ev)
		}
	}()
	return nil
}

// startRA runs an RA-only dnsmasq on the bridge: no DNS, no DHCPv4, no
// DHCPv6, router lifetime 0 (it offers no default route).
func (e *Env) startRA() error {
	if err := e.ns.run("ip", "-6", "addr", "add", "fd77::1/64", "dev", e.bridge, "nodad"); err != nil {
		return err
	}
	bin, err := exec.LookPath("dnsmasq")
	if err != nil {
		bin = "/usr/sbin/dnsmasq"
	}
	logPath := filepath.Join(e.artifacts, "dnsmasq-ra.log")
	cmd := e.ns.command(context.Background(), bin, "--keep-in-foreground", "--conf-file=/dev/null",
		"--port=0", "--no-resolv", "--no-hosts", "--interface="+e.bridge, "--bind-interfaces",
		"--enable-ra", "--dhcp-range=fd77::,ra-only,64", "--ra-param="+e.bridge+",10,0",
		"--pid-file=", "--dhcp-leasefile="+filepath.Join(e.workDir, "dnsmasq.leases"),
		"--log-facility="+logPath)
	if err := start(cmd); err != nil {
		return fmt.Errorf("start dnsmasq for router advertisements: %w", err)
	}
	e.ra = cmd
	go func() { _ = cmd.Wait() }()
	return nil
}

// Close stops every machine, the server and the RA source, and deletes
// the namespace. It is safe to call more than once and concurrently.
func (e *Env) Close() {
	e.mu.Lock()
	if e.closed {
		e.mu.Unlock()
		return
	}
	e.closed = true
	vms := e.vms
	e.mu.Unlock()
	liveMu.Lock()
	delete(live, e)
	liveMu.Unlock()
	for _, vm := range vms {
		vm.stop()
	}
	if e.stopRec != nil {
		e.stopRec()
	}
	if e.srv != nil {
		e.srv.stop()
	}
	if e.ra != nil && e.ra.Process != nil {
		_ = e.ra.Process.Signal(syscall.SIGTERM)
	}
	if e.evFile != nil {
		e.evFile.Close()
	}
	if e.ns != nil {
		// Taps and the bridge go with the namespace once nothing holds it.
		if err := e.ns.delete(); err != nil {
			e.opts.Logf("teardown: %v", err)
		}
	}
}

// live are the environments not yet closed, for CloseAll.
var (
	liveMu sync.Mutex
	live   = map[*Env]bool{}
)

// CloseAll closes every environment of this process that is still open.
// Signal handlers call it before exiting, so that an interrupted run
// leaves no namespace, server or machine behind.
func CloseAll() {
	liveMu.Lock()
	envs := make([]*Env, 0, len(live))
	for e := range live {
		envs = append(envs, e)
	}
	liveMu.Unlock()
	var wg sync.WaitGroup
	for _, e := range envs {
		wg.Add(1)
		go func() { defer wg.Done(); e.Close() }()
	}
	wg.Wait()
}

// Artifacts is the directory holding the serial logs, the server log and
// the event stream.
func (e *Env) Artifacts() string { return e.artifacts }

// DataDir is the server's data directory.
func (e *Env) DataDir() string { return e.srv.dataDir }

// ServerLogTail returns the last n lines of the server's log.
func (e *Env) ServerLogTail(n int) string { return e.srv.log.tail(n) }

// Call sends a JSON request to the server's API (path below /api/v1,
// e.g. "/machines/UUID/actions/provision") and decodes the reply into out.
func (e *Env) Call(ctx context.Context, method, path string, body, out any) error {
	return e.srv.call(ctx, method, path, body, out)
}

// Create creates an object through the API.
func (e *Env) Create(ctx context.Context, kind string, obj any) error {
	_, err := e.srv.client.Create(ctx, kind, obj)
	return err
}

// SetParam sets one param on a machine.
func (e *Env) SetParam(ctx context.Context, uuid, name string, value any) error {
	_, err := e.srv.client.SetParam(ctx, uuid, name, value)
	return err
}

// Machines lists the server's machines.
func (e *Env) Machines(ctx context.Context) ([]model.Machine, error) { return e.srv.machines(ctx) }

// Timeline returns the machine's boot timeline as the API shows it
// (GET /api/v1/machines/{uuid}/timeline) and writes it to the artifacts
// as <name>.timeline.json.
func (e *Env) Timeline(ctx context.Context, vm *VM) ([]client.TimelineEntry, error) {
	uuid := e.uuidOf(vm)
	if uuid == "" {
		return nil, fmt.Errorf("%s has no machine record yet", vm.Name)
	}
	tl, err := e.srv.client.Timeline(ctx, uuid)
	if err != nil {
		return nil, fmt.Errorf("timeline of %s: %w", vm.Name, err)
	}
	if b, err := json.MarshalIndent(tl, "", "  "); err == nil {
		_ = os.WriteFile(filepath.Join(e.artifacts, vm.Name+".timeline.json"), b, 0o644)
	}
	return tl, nil
}

// Leases lists the server's leases.
func (e *Env) Leases(ctx context.Context) ([]model.Lease, error) {
	var out []model.Lease
	objs, _, err := e.srv.client.ListObjects(ctx, model.KindLeases, nil)
	if err != nil {
		return nil, err
	}
	for _, o := range objs {
		if l, ok := o.(*model.Lease); ok {
			out = append(out, *l)
		}
	}
	return out, nil
}

func (e *Env) logf(format string, args ...any) { e.opts.Logf(format, args...) }

// copyTree copies the regular files under src into dst, keeping modes.
func copyTree(src, dst string) error {
	return filepath.Walk(src, func(p string, info os.FileInfo, err error) error {
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(src, p)
		if err != nil {
			return err
		}
		target := filepath.Join(dst, rel)
		if info.IsDir() {
			return os.MkdirAll(target, 0o755)
		}
		if !info.Mode().IsRegular() {
			return nil
		}
		return copyFile(p, target, info.Mode().Perm())
	})
}

func copyFile(src, dst string, perm os.FileMode) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
		return err
	}
	out, err := os.OpenFile(dst, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, perm)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		return fmt.Errorf("copy %s: %w", src, err)
	}
	return out.Close()
}

// InstallBootFile copies a file into the server's boot root at rel (e.g.
// "linuxkit/test-kernel"), as `ironcast files upload` would.
func (e *Env) InstallBootFile(src, rel string) error {
	if strings.Contains(rel, "..") {
		return fmt.Errorf("boot file path %q", rel)
	}
	return copyFile(src, filepath.Join(e.srv.dataDir, "boot", filepath.FromSlash(rel)), 0o644)
}
