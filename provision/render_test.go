package provision

import (
	"context"
	"errors"
	"flag"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ironcast/ironcast/model"
)

var update = flag.Bool("update", false, "rewrite golden files")

func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test ./provision -run %s -update)", err, t.Name())
	}
	if diff := cmp.Diff(string(got), string(want)); diff != "" {
		t.Errorf("%s (-got +want):\n%s", p, diff)
	}
}

var server = netip.MustParseAddrPort("10.20.0.1:8091")

func req(path string) model.FileRequest {
	return model.FileRequest{Path: path, Protocol: "http", Remote: netip.MustParseAddrPort("10.20.0.50:40000"), Local: server}
}

// TestBuiltinRenderings renders every built-in bootenv for a BIOS and a
// UEFI x86-64 machine (iPXE, pxelinux) and an arm64 machine (GRUB), plus
// each bootenv's per-machine files, against golden files.
func TestBuiltinRenderings(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := newService(t)
	mustCreate(t, svc, &model.Param{Name: "provisioner-password-hash", Secure: true})
	g, _ := svc.Get(ctx, model.KindProfiles, model.GlobalProfile)
	g.(*model.Profile).Params = map[string]any{
		"ssh-authorized-keys":       []any{"ssh-ed25519 AAAAC3Nza test@ironcast"},
		"provisioner-password-hash": "$6$salt$hash",
		"linuxkit-image":            "demo",
		"linuxkit-cmdline":          "console=ttyS0 page_poison=1",
	}
	if err := svc.Update(ctx, g, g.GetMeta().Revision); err != nil {
		t.Fatal(err)
	}
	bootenvs, err := svc.List(ctx, model.KindBootEnvs)
	if err != nil {
		t.Fatal(err)
	}
	machines := []struct {
		name, uuid, mac, arch string
		firmware              model.Firmware
		loaders               []string
	}{
		{"bios", "00000000-0000-4000-8000-000000000001", "52:54:00:00:00:01", "amd64", model.FirmwareBIOS, []string{"ipxe", "pxelinux"}},
		{"uefi-x64", "00000000-0000-4000-8000-000000000002", "52:54:00:00:00:02", "amd64", model.FirmwareUEFI64, []string{"ipxe", "grub"}},
		{"arm64", "00000000-0000-4000-8000-000000000003", "52:54:00:00:00:03", "arm64", model.FirmwareUEFIARM64, []string{"grub"}},
	}
	for _, b := range bootenvs {
		be := b.(*model.BootEnv)
		for _, mc := range machines {
			t.Run(be.Name+"/"+mc.name, func(t *testing.T) {
				svc.firmware.put(mc.mac, mc.firmware)
				m := &model.Machine{UUID: mc.uuid, Name: "node-" + mc.name, HardwareAddrs: []string{mc.mac}, Arch: mc.arch, BootEnv: be.Name, Address: "10.20.0.50"}
				if err := svc.Create(ctx, m); err != nil {
					t.Fatal(err)
				}
				defer svc.Delete(ctx, model.KindMachines, m.UUID, -1)
				paths := map[string]string{
					"ipxe":     mc.mac + ".ipxe",
					"pxelinux": "pxelinux.cfg/01-" + strings.ReplaceAll(mc.mac, ":", "-"),
					"grub":     "grub/grub.cfg-01-" + strings.ReplaceAll(mc.mac, ":", "-"),
				}
				for _, l := range mc.loaders {
					out, ok, err := svc.Render(ctx, req(paths[l]))
					if err != nil || !ok {
						t.Fatalf("render %s: ok=%v err=%v", paths[l], ok, err)
					}
					golden(t, filepath.Join(be.Name, mc.name+"."+l), out)
				}
				for _, tpl := range be.Templates {
					if model.IsBootLoaderTemplate(tpl.Name) {
						continue
					}
					out, ok, err := svc.Render(ctx, req("machines/"+m.UUID+"/"+tpl.Path))
					if err != nil || !ok {
						t.Fatalf("render %s: ok=%v err=%v", tpl.Path, ok, err)
					}
					golden(t, filepath.Join(be.Name, mc.name+"."+tpl.Path), out)
				}
			})
		}
	}
}

func TestRenderUnknownMachine(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := newService(t)
	tests := []struct {
		name, path string
		want       string
	}{
		{"ipxe by colon MAC", "52:54:00:aa:bb:cc.ipxe", "ironcast.token=register-token"},
		{"ipxe by dashed MAC", "52-54-00-aa-bb-cc.ipxe", "discovery/amd64/vmlinuz"},
		{"ipxe by plain MAC", "525400aabbcc.ipxe", "ironcast.mode=discover"},
		{"pxelinux by MAC", "pxelinux.cfg/01-52-54-00-aa-bb-cc", "KERNEL discovery/amd64/vmlinuz"},
		{"pxelinux default", "pxelinux.cfg/default", "APPEND console=tty0"},
		{"grub generic", "grub/grub.cfg", "configfile $prefix/grub.cfg-01-$net_default_mac"},
		{"grub by colon MAC", "grub/grub.cfg-01-52:54:00:aa:bb:cc", "linux /discovery/amd64/vmlinuz"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			out, ok, err := svc.Render(ctx, req(tt.path))
			if err != nil || !ok {
				t.Fatalf("ok=%v err=%v", ok, err)
			}
			if !strings.Contains(string(out), tt.want) {
				t.Errorf("render %s:\n%s\nwant it to contain %q", tt.path, out, tt.want)
			}
		})
	}
	for _, p := range []string{"undionly.kpxe", "pxelinux.cfg/C0A8", "machines/not-a-uuid/x", "notamac.ipxe", "grub/other.cfg"} {
		if _, ok, err := svc.Render(ctx, req(p)); ok || err != nil {
			t.Errorf("%s: ok=%v err=%v, want not virtual", p, ok, err)
		}
	}
}

func TestRenderByAddressAndLease(t *testing.T) {
	ctx := context.Background()
	svc, st, _ := newService(t)
	m := &model.Machine{Name: "n1", HardwareAddrs: []string{"52:54:00:00:00:09"}, BootEnv: "local"}
	mustCreate(t, svc, m)
	l := &model.Lease{Addr: "10.20.0.77", Token: "52:54:00:00:00:09", State: model.LeaseBound}
	if err := svc.Create(ctx, l); err != nil {
		t.Fatal(err)
	}
	r := req("pxelinux.cfg/0A14004D") // 10.20.0.77
	out, ok, err := svc.Render(ctx, r)
	if err != nil || !ok || !strings.Contains(string(out), "LOCALBOOT 0") {
		t.Fatalf("by hex IP through the lease: ok=%v err=%v\n%s", ok, err, out)
	}
	if err := svc.LeaseBound(ctx, *l); err != nil {
		t.Fatal(err)
	}
	got, _ := svc.Get(ctx, model.KindMachines, m.UUID)
	if got.(*model.Machine).Address != "10.20.0.77" {
		t.Fatalf("LeaseBound did not set Address: %+v", got)
	}
	st.Delete(ctx, model.KindLeases, "10.20.0.77", -1)
	r.Remote = netip.MustParseAddrPort("10.20.0.77:1000")
	out, ok, err = svc.Render(ctx, model.FileRequest{Path: "grub/grub.cfg", Remote: r.Remote, Local: server})
	if err != nil || !ok || !strings.Contains(string(out), "local disk") {
		t.Fatalf("grub.cfg by Machine.Address: ok=%v err=%v\n%s", ok, err, out)
	}
}

func TestRenderMissingParamFailsCleanly(t *testing.T) {
	ctx := context.Background()
	svc, _, rec := newService(t)
	m := &model.Machine{Name: "n1", HardwareAddrs: []string{"52:54:00:00:00:0a"}, BootEnv: "linuxkit"}
	mustCreate(t, svc, m)
	out, ok, err := svc.Render(ctx, req("52:54:00:00:00:0a.ipxe"))
	if !ok || err == nil || out != nil {
		t.Fatalf("ok=%v err=%v out=%q, want a render error and no output", ok, err, out)
	}
	if !strings.Contains(err.Error(), `"linuxkit-image"`) {
		t.Errorf("error %v does not name the missing param", err)
	}
	if len(rec.events) == 0 || rec.events[len(rec.events)-1].Type != "render.failed" {
		t.Errorf("no render.failed event: %+v", rec.events)
	}
	if _, err := svc.RenderPath(ctx, m.UUID, "ipxe", server.Addr()); err == nil {
		t.Error("RenderPath succeeded without the param")
	}
}

func TestBooter(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := newService(t)
	mustCreate(t, svc, &model.Machine{Name: "local1", HardwareAddrs: []string{"52:54:00:00:01:01"}, BootEnv: "local"})
	mustCreate(t, svc, &model.Machine{Name: "disc1", HardwareAddrs: []string{"52:54:00:00:01:02"}, BootEnv: "discovery"})
	next := BooterFunc(func(_ context.Context, r model.BootRequest) (model.BootReply, error) {
		return model.BootReply{Filename: "by-firmware-" + string(r.Firmware)}, nil
	})
	b := svc.Booter(next)
	tests := []struct {
		mac  string
		want string
	}{
		{"52:54:00:00:01:01", ""},
		{"52:54:00:00:01:02", "by-firmware-bios"},
		{"52:54:00:00:01:03", "by-firmware-bios"},
	}
	for _, tt := range tests {
		got, err := b.BootReply(ctx, model.BootRequest{MAC: tt.mac, Firmware: model.FirmwareBIOS})
		if err != nil || got.Filename != tt.want {
			t.Errorf("%s: %q, %v; want %q", tt.mac, got.Filename, err, tt.want)
		}
	}
	if f := svc.firmwareOf("52:54:00:00:01:03"); f != model.FirmwareBIOS {
		t.Errorf("firmware not remembered: %q", f)
	}
}

func TestLifecycleThroughService(t *testing.T) {
	ctx := context.Background()
	svc, _, rec := newService(t)
	m, err := svc.Register(ctx, Registration{HardwareAddrs: []string{"52:54:00:00:02:01", "52:54:00:00:02:02"}, Inventory: &model.Inventory{CPUs: 2, MemoryMiB: 1024}})
	if err != nil {
		t.Fatal(err)
	}
	if m.State != model.StateReady || m.BootEnv != "discovery" || m.Inventory.CPUs != 2 {
		t.Fatalf("registered machine: %+v", m)
	}
	again, err := svc.Register(ctx, Registration{HardwareAddrs: []string{"52:54:00:00:02:02"}, Inventory: &model.Inventory{CPUs: 4}})
	if err != nil || again.UUID != m.UUID || again.Inventory.CPUs != 4 {
		t.Fatalf("re-registration: %+v, %v", again, err)
	}
	steps := []struct {
		event   string
		opts    ActionOptions
		state   model.MachineState
		bootenv string
		err     error
	}{
		{model.EventRelease, ActionOptions{}, model.StateReady, "discovery", model.ErrConflict},
		{model.EventProvision, ActionOptions{}, model.StateReady, "discovery", nil}, // no bootenv: validation error
		{model.EventProvision, ActionOptions{BootEnv: "debian-12-install"}, model.StateProvisioning, "debian-12-install", nil},
		{model.EventInstalled, ActionOptions{}, model.StateInstalled, "local", nil},
		{model.EventProvision, ActionOptions{BootEnv: "linuxkit"}, model.StateInstalled, "local", model.ErrConflict},
		{model.EventRelease, ActionOptions{}, model.StateReleasing, "wipe", nil},
		{model.EventWiping, ActionOptions{}, model.StateWiping, "wipe", nil},
		{model.EventWiped, ActionOptions{}, model.StateReady, "discovery", nil},
		{model.EventProvision, ActionOptions{BootEnv: "linuxkit"}, model.StateProvisioning, "linuxkit", nil},
		{model.EventFailed, ActionOptions{Reason: "kernel panic"}, model.StateFailed, "linuxkit", nil},
		{model.EventRelease, ActionOptions{}, model.StateReleasing, "wipe", nil},
	}
	for i, s := range steps {
		got, err := svc.Act(ctx, m.UUID, s.event, s.opts)
		if s.err != nil {
			if !errors.Is(err, s.err) {
				t.Fatalf("step %d %s: err %v, want %v", i, s.event, err, s.err)
			}
		} else if s.event == model.EventProvision && s.opts.BootEnv == "" {
			if len(model.ValidationErrors(err)) == 0 {
				t.Fatalf("step %d: provision without bootenv: %v", i, err)
			}
		} else if err != nil {
			t.Fatalf("step %d %s: %v", i, s.event, err)
		}
		cur, _ := svc.Get(ctx, model.KindMachines, m.UUID)
		cm := cur.(*model.Machine)
		if cm.State != s.state || cm.BootEnv != s.bootenv {
			t.Fatalf("step %d %s: state %s bootenv %s, want %s %s", i, s.event, cm.State, cm.BootEnv, s.state, s.bootenv)
		}
		if s.event == model.EventFailed && (got == nil || got.StateReason != "kernel panic") {
			t.Errorf("failed reason not recorded: %+v", got)
		}
	}
	n := 0
	for _, ev := range rec.events {
		if ev.Type == "transition" && ev.Key == m.UUID {
			n++
		}
	}
	if n < 8 {
		t.Errorf("%d transition events, want at least 8", n)
	}
}

func TestRegisterTakesTheLeasedAddress(t *testing.T) {
	ctx := context.Background()
	svc, _, rec := newService(t)
	l := &model.Lease{Addr: "10.20.0.33", Token: "52:54:00:00:03:01", State: model.LeaseBound, ExpireTime: time.Now().Add(time.Hour)}
	if err := svc.Create(ctx, l); err != nil {
		t.Fatal(err)
	}
	m, err := svc.Register(ctx, Registration{HardwareAddrs: []string{"52:54:00:00:03:01"}})
	if err != nil {
		t.Fatal(err)
	}
	if m.Address != "10.20.0.33" {
		t.Errorf("registered machine's address = %q, want the bound lease's 10.20.0.33", m.Address)
	}
	if _, err := svc.Act(ctx, m.UUID, model.EventProvision, ActionOptions{BootEnv: "local"}); err != nil {
		t.Fatal(err)
	}
	last := rec.events[len(rec.events)-1]
	if last.Type != "transition" || last.Attrs["event"] != model.EventProvision {
		t.Errorf("last event %+v, want a transition naming its event", last)
	}
}

func TestRegisterAgainIsRecorded(t *testing.T) {
	ctx := context.Background()
	svc, _, rec := newService(t)
	reg := Registration{HardwareAddrs: []string{"52:54:00:00:04:01"}, Inventory: &model.Inventory{CPUs: 2}}
	m, err := svc.Register(ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	// The same machine boots discovery again (after a wipe) with its own
	// token: the registration is bound to it, refreshes its inventory and
	// shows as a register transition although the state stays ready.
	reg.UUID, reg.Inventory = m.UUID, &model.Inventory{CPUs: 4}
	again, err := svc.Register(ctx, reg)
	if err != nil {
		t.Fatal(err)
	}
	if again.UUID != m.UUID || again.State != model.StateReady || again.Inventory.CPUs != 4 {
		t.Fatalf("registered again: %s %s %+v, want %s ready with 4 CPUs", again.UUID, again.State, again.Inventory, m.UUID)
	}
	last := rec.events[len(rec.events)-1]
	if last.Type != "transition" || last.Key != m.UUID || last.Attrs["event"] != model.EventRegister ||
		last.Attrs["from"] != "ready" || last.Attrs["to"] != "ready" {
		t.Errorf("last event %+v, want a ready → ready register transition", last)
	}

	// Bound to another machine, the same MAC is a conflict.
	other := &model.Machine{Name: "other", HardwareAddrs: []string{"52:54:00:00:04:02"}}
	if err := svc.Create(ctx, other); err != nil {
		t.Fatal(err)
	}
	reg.UUID = other.UUID
	if _, err := svc.Register(ctx, reg); !errors.Is(err, model.ErrConflict) {
		t.Errorf("register a MAC of %s bound to %s: %v, want ErrConflict", m.UUID, other.UUID, err)
	}
}

func TestRenderPathNamesTheAddressTheMachineReaches(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := newService(t)
	// A machine with no address: URLs name the address the caller reached.
	m := &model.Machine{Name: "n1", HardwareAddrs: []string{"52:54:00:00:05:01"}, BootEnv: "discovery"}
	mustCreate(t, svc, m)
	caller := netip.MustParseAddr("192.0.2.7")
	out, err := svc.RenderPath(ctx, m.UUID, "ipxe", caller)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "http://192.0.2.7:") {
		t.Errorf("machine without an address: render does not name the caller's address 192.0.2.7:\n%s", out)
	}
	// With an address, the source address towards it (here loopback: the
	// kernel picks 127.0.0.1 for 127.0.0.5), whatever the caller reached.
	m.Address = "127.0.0.5"
	if err := svc.Update(ctx, m, m.Revision); err != nil {
		t.Fatal(err)
	}
	out, err = svc.RenderPath(ctx, m.UUID, "ipxe", caller)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(out), "http://127.0.0.1:") || strings.Contains(string(out), "192.0.2.7") {
		t.Errorf("machine at 127.0.0.5: render should name 127.0.0.1, not the caller's address:\n%s", out)
	}
}
