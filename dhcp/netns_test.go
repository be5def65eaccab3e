package dhcp_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/ironcast/ironcast/dhcp"
	"github.com/ironcast/ironcast/ipam"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
	"github.com/ironcast/ironcast/store/bolt"
	"github.com/ironcast/ironcast/store/storetest"
	"github.com/ironcast/ironcast/test/testenv"
	"github.com/prometheus/client_golang/prometheus"
)

// logBuf collects the server's logs for assertions and for failures.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) { l.mu.Lock(); defer l.mu.Unlock(); return l.b.Write(p) }
func (l *logBuf) String() string              { l.mu.Lock(); defer l.mu.Unlock(); return l.b.String() }

// server is ironcast's DHCP server and allocator running in a namespace
// on a bbolt file.
type server struct {
	ns     *testenv.Netns
	ifaces []string
	path   string
	st     store.Store
	srv    *dhcp.Server
	reg    *prometheus.Registry
	logs   *logBuf
	events *eventLog
	cancel context.CancelFunc
	done   chan struct{}
}

// startServer opens (or reopens) the store at path, seeds objs and serves
// DHCP on ifaces inside ns until stop or the end of the test.
func startServer(t *testing.T, ns *testenv.Netns, ifaces []string, path string, booter dhcp.Booter, objs ...model.Object) *server {
	t.Helper()
	st, err := bolt.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	return startServerOn(t, ns, ifaces, path, st, booter, objs...)
}

// startServerOn is startServer on an open store, which it closes.
func startServerOn(t *testing.T, ns *testenv.Netns, ifaces []string, path string, st store.Store, booter dhcp.Booter, objs ...model.Object) *server {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	for _, o := range objs {
		if err := store.Create(ctx, st, o); err != nil {
			t.Fatal(err)
		}
	}
	s := &server{ns: ns, ifaces: ifaces, path: path, st: st, reg: prometheus.NewRegistry(), logs: &logBuf{}, events: &eventLog{}, cancel: cancel, done: make(chan struct{})}
	log := slog.New(slog.NewTextHandler(s.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	alloc, err := ipam.New(ctx, ipam.Config{Store: st, Logger: log})
	if err != nil {
		t.Fatal(err)
	}
	err = ns.Do(func() error {
		var err error
		s.srv, err = dhcp.New(dhcp.Config{Interfaces: ifaces, Leases: alloc, Booter: booter, Logger: log, Registerer: s.reg, Notifier: s.events, Workers: 8})
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); _ = alloc.Run(ctx) }()
	go func() {
		defer wg.Done()
		if err := s.srv.Serve(ctx); err != nil {
			t.Errorf("serve: %v", err)
		}
	}()
	go func() { wg.Wait(); close(s.done) }()
	t.Cleanup(func() {
		s.stop()
		if t.Failed() {
			t.Logf("server log:\n%s", s.logs)
		}
	})
	return s
}

func (s *server) stop() {
	s.cancel()
	<-s.done
	s.st.Close()
}

func (s *server) lease(t *testing.T, addr string) *model.Lease {
	t.Helper()
	l, err := store.Get[model.Lease](context.Background(), s.st, addr)
	if err != nil {
		t.Fatalf("lease %s: %v", addr, err)
	}
	return l
}

func (s *server) counter(t *testing.T, name, label, value string) float64 {
	t.Helper()
	mfs, err := s.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, lp := range m.GetLabel() {
				if lp.GetName() == label && lp.GetValue() == value {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func subnet(name, cidr, start, end string) *model.Subnet {
	return &model.Subnet{Name: name, Subnet: cidr, ActiveStart: start, ActiveEnd: end, Enabled: true}
}

// lan is a server namespace and a client namespace joined by a veth pair.
type lan struct {
	srvNS, cliNS *testenv.Netns
	srvIf, cliIf string
}

func newLAN(t *testing.T, srvAddr string) *lan {
	t.Helper()
	testenv.RequireRoot(t)
	l := &lan{srvNS: testenv.NewNetns(t), cliNS: testenv.NewNetns(t)}
	l.srvIf, l.cliIf = testenv.Veth(t, l.srvNS, srvAddr, l.cliNS, "")
	return l
}

// udhcpcScript configures the address like the default script (renewals
// are unicast from it) and appends every event's environment to out.
const udhcpcScript = `#!/bin/sh
case "$1" in
bound|renew) ip addr replace "$ip/${mask:-24}" dev "$interface" ;;
deconfig) ip addr flush dev "$interface" ;;
esac
{ echo "event=$1"; env | sort; echo "--"; } >> %s
`

// events reads the script's dump: one map per event.
func events(t *testing.T, path string) []map[string]string {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil && !os.IsNotExist(err) {
		t.Fatal(err)
	}
	var out []map[string]string
	cur := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(b))
	for sc.Scan() {
		line := sc.Text()
		if line == "--" {
			out = append(out, cur)
			cur = map[string]string{}
			continue
		}
		if k, v, ok := strings.Cut(line, "="); ok {
			cur[k] = v
		}
	}
	return out
}

// waitEvent waits for the n-th event named name in the dump (bounded).
func waitEvent(t *testing.T, path, name string, n int) map[string]string {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		seen := 0
		for _, ev := range events(t, path) {
			if ev["event"] == name || ev["reason"] == name {
				seen++
				if seen == n {
					return ev
				}
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("no event %s #%d in %s: %v", name, n, path, events(t, path))
	return nil
}

func writeScript(t *testing.T, body string) (script, out string) {
	t.Helper()
	dir := t.TempDir()
	script, out = filepath.Join(dir, "script"), filepath.Join(dir, "events")
	if err := os.WriteFile(script, []byte(fmt.Sprintf(body, out)), 0o755); err != nil {
		t.Fatal(err)
	}
	return script, out
}

// udhcpcOnce runs udhcpc until it has a lease (or gives up) and returns
// the environment its script saw at "bound", or nil.
func udhcpcOnce(t *testing.T, ns *testenv.Netns, ifc string, args ...string) map[string]string {
	t.Helper()
	testenv.RequireTool(t, "udhcpc")
	script, out := writeScript(t, udhcpcScript)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := ns.Command(ctx, "udhcpc", append([]string{"-f", "-q", "-n", "-i", ifc, "-s", script, "-t", "4", "-T", "1"}, args...)...)
	b, err := cmd.CombinedOutput()
	for _, ev := range events(t, out) {
		if ev["event"] == "bound" {
			return ev
		}
	}
	t.Logf("udhcpc %v: %v\n%s", args, err, b)
	return nil
}

func TestUdhcpcLeaseRenewRelease(t *testing.T) {
	testenv.RequireTool(t, "udhcpc")
	l := newLAN(t, "10.20.0.2/24")
	s := subnet("rack1", "10.20.0.0/24", "10.20.0.10", "10.20.0.20")
	s.Router = "10.20.0.1"
	srv := startServer(t, l.srvNS, []string{l.srvIf}, filepath.Join(t.TempDir(), "ironcast.db"), nil, s)

	script, out := writeScript(t, udhcpcScript)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := l.cliNS.Command(ctx, "udhcpc", "-f", "-i", l.cliIf, "-s", script, "-t", "5", "-T", "1")
	var cout bytes.Buffer
	cmd.Stdout, cmd.Stderr = &cout, &cout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		// ip netns exec runs udhcpc in place (exec), so this is udhcpc's PID.
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		if t.Failed() {
			t.Logf("udhcpc:\n%s", cout.String())
		}
	}()
	bound := waitEvent(t, out, "bound", 1)
	if bound["ip"] != "10.20.0.10" || bound["router"] != "10.20.0.1" || bound["serverid"] != "10.20.0.2" {
		t.Fatalf("bound with %v", bound)
	}
	mac := l.cliNS.MAC(t, l.cliIf)
	first := srv.lease(t, "10.20.0.10")
	if first.State != model.LeaseBound || first.Token != mac {
		t.Fatalf("stored after bind: %+v", first)
	}

	_ = cmd.Process.Signal(syscall.SIGUSR1)
	waitEvent(t, out, "renew", 1)
	renewed := srv.lease(t, "10.20.0.10")
	if renewed.State != model.LeaseBound || !renewed.ExpireTime.After(first.ExpireTime) {
		t.Fatalf("after renew: %+v (before: %v)", renewed, first.ExpireTime)
	}
	if got := srv.counter(t, "ironcast_dhcp_sent_total", "type", "ack"); got != 2 {
		t.Errorf("acks sent %v, want 2", got)
	}

	_ = cmd.Process.Signal(syscall.SIGUSR2)
	waitEvent(t, out, "deconfig", 2)
	deadline := time.Now().Add(10 * time.Second)
	for srv.lease(t, "10.20.0.10").State != model.LeaseReleased {
		if time.Now().After(deadline) {
			t.Fatalf("lease not released: %+v", srv.lease(t, "10.20.0.10"))
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := srv.counter(t, "ironcast_dhcp_received_total", "type", "release"); got != 1 {
		t.Errorf("releases received %v, want 1", got)
	}
	if got := srv.counter(t, "ironcast_dhcp_sent_total", "type", "offer"); got < 1 {
		t.Errorf("offers sent %v, want at least 1", got)
	}
	// A retransmitted DISCOVER would get a second offer.
	if n := srv.events.count("dhcp.offer"); n < 1 {
		t.Errorf("dhcp.offer events %d, want at least 1", n)
	}
	for typ, want := range map[string]int{"dhcp.ack": 2, "dhcp.release": 1} {
		if n := srv.events.count(typ); n != want {
			t.Errorf("%s events %d, want %d", typ, n, want)
		}
	}
}

// eventLog is the server's Notifier in these tests: it records the types
// of the events published.
type eventLog struct {
	mu    sync.Mutex
	types []string
}

func (e *eventLog) Publish(ev model.Event) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.types = append(e.types, ev.Type)
}

func (e *eventLog) count(typ string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	n := 0
	for _, t := range e.types {
		if t == typ {
			n++
		}
	}
	return n
}

// TestOneProcessServesTwoInterfaces runs one server on two interfaces,
// each on its own segment with its own subnet: a client on each gets an
// address from the subnet of the interface its request arrived on.
func TestOneProcessServesTwoInterfaces(t *testing.T) {
	testenv.RequireTool(t, "udhcpc")
	testenv.RequireRoot(t)
	srvNS, cliA, cliB := testenv.NewNetns(t), testenv.NewNetns(t), testenv.NewNetns(t)
	srvIfA, cliIfA := testenv.Veth(t, srvNS, "10.21.0.2/24", cliA, "")
	srvIfB, cliIfB := testenv.Veth(t, srvNS, "10.22.0.2/24", cliB, "")
	startServer(t, srvNS, []string{srvIfA, srvIfB}, filepath.Join(t.TempDir(), "ironcast.db"), nil,
		subnet("a", "10.21.0.0/24", "10.21.0.10", "10.21.0.20"), subnet("b", "10.22.0.0/24", "10.22.0.10", "10.22.0.20"))
	for _, c := range []struct {
		ns      *testenv.Netns
		ifc     string
		ip, sid string
	}{{cliA, cliIfA, "10.21.0.10", "10.21.0.2"}, {cliB, cliIfB, "10.22.0.10", "10.22.0.2"}} {
		ev := udhcpcOnce(t, c.ns, c.ifc)
		if ev == nil || ev["ip"] != c.ip || ev["serverid"] != c.sid {
			t.Errorf("client on %s bound with %v, want ip %s from server %s", c.ifc, ev, c.ip, c.sid)
		}
	}
}

// TestForgedPXEClients has udhcpc pose as each firmware of FIELD.md and
// checks the boot file and next-server it received.
func TestForgedPXEClients(t *testing.T) {
	testenv.RequireTool(t, "udhcpc")
	l := newLAN(t, "10.20.0.2/24")
	startServer(t, l.srvNS, []string{l.srvIf}, filepath.Join(t.TempDir(), "ironcast.db"), nil,
		subnet("rack1", "10.20.0.0/24", "10.20.0.10", "10.20.0.100"))
	mac := l.cliNS.MAC(t, l.cliIf)
	tests := []struct {
		name string
		args []string
		// want holds udhcpc's script variables: siaddr and boot_file
		// (BOOTP header), bootfile (option 67), vendor (option 60).
		want map[string]string
	}{
		{"bios", []string{"-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000"},
			map[string]string{"siaddr": "10.20.0.2", "boot_file": "undionly.kpxe"}},
		{"uefi-x64-7", []string{"-V", "PXEClient:Arch:00007:UNDI:003016", "-x", "0x5d:0007"},
			map[string]string{"siaddr": "10.20.0.2", "boot_file": "snponly.efi"}},
		{"uefi-x64-9", []string{"-V", "PXEClient:Arch:00009:UNDI:003016", "-x", "0x5d:0009"},
			map[string]string{"siaddr": "10.20.0.2", "boot_file": "snponly.efi"}},
		{"uefi-arm64", []string{"-V", "PXEClient:Arch:00011:UNDI:003000", "-x", "0x5d:000b"},
			map[string]string{"siaddr": "10.20.0.2", "boot_file": "grubnetaa64.efi"}},
		{"http-boot-x64", []string{"-V", "HTTPClient:Arch:00016:UNDI:003000", "-x", "0x5d:0010"},
			map[string]string{"siaddr": "10.20.0.2", "boot_file": "http://10.20.0.2:8091/snponly.efi", "vendor": "HTTPClient"}},
		{"ipxe-user-class", []string{"-V", "PXEClient:Arch:00000:UNDI:002001", "-x", "0x5d:0000", "-x", "0x4d:0469505845"},
			map[string]string{"siaddr": "10.20.0.2", "boot_file": "http://10.20.0.2:8091/" + mac + ".ipxe"}},
		{"plain-client", nil, map[string]string{"siaddr": "", "boot_file": ""}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev := udhcpcOnce(t, l.cliNS, l.cliIf, tt.args...)
			if ev == nil {
				t.Fatal("no lease")
			}
			got := map[string]string{}
			for k := range tt.want {
				got[k] = ev[k]
			}
			if diff := cmpDiff(got, tt.want); diff != "" {
				t.Errorf("(-got +want):\n%s\nenv: %v", diff, ev)
			}
			// Options 66 and 67 must carry the same as the header.
			if ev["bootfile"] != tt.want["boot_file"] || ev["tftp"] != tt.want["siaddr"] {
				t.Errorf("option 66 %q, 67 %q; want %q, %q", ev["tftp"], ev["bootfile"], tt.want["siaddr"], tt.want["boot_file"])
			}
		})
	}
}

func cmpDiff(got, want any) string { return cmp.Diff(got, want) }

const dhclientScript = `#!/bin/sh
case "$reason" in
PREINIT) ip link set "$interface" up ;;
BOUND|RENEW|REBIND|REBOOT) ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
RELEASE|EXPIRE|STOP) ip addr flush dev "$interface" ;;
esac
{ echo "reason=$reason"; env | grep -E '^(new|old)_|^interface=' | sort; echo "--"; } >> %s
`

func TestDhclientLeaseRenewRelease(t *testing.T) {
	dhclient := testenv.RequireTool(t, "dhclient")
	l := newLAN(t, "10.20.0.2/24")
	s := subnet("rack1", "10.20.0.0/24", "10.20.0.10", "10.20.0.20")
	// T1 of 2 s makes dhclient renew (unicast, RENEWING) within the test.
	s.Options = []model.DHCPOption{{Code: 58, Value: "2"}, {Code: 59, Value: "3000"}}
	srv := startServer(t, l.srvNS, []string{l.srvIf}, filepath.Join(t.TempDir(), "ironcast.db"), nil, s)

	script, out := writeScript(t, dhclientScript)
	dir := t.TempDir()
	conf := filepath.Join(dir, "dhclient.conf")
	if err := os.WriteFile(conf, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	// Own script, lease file, pid file and config: the host's resolv.conf
	// and lease database are never touched.
	files := []string{"-sf", script, "-lf", filepath.Join(dir, "leases"), "-pf", filepath.Join(dir, "pid"), "-cf", conf}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := l.cliNS.Command(ctx, dhclient, append(append([]string{"-4", "-d", "-v"}, files...), l.cliIf)...)
	var cout logBuf
	cmd.Stdout, cmd.Stderr = &cout, &cout
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	stopped := false
	stop := func() {
		if !stopped {
			stopped = true
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
	}
	defer func() {
		stop()
		if t.Failed() {
			t.Logf("dhclient:\n%s", cout.String())
		}
	}()
	bound := waitEvent(t, out, "BOUND", 1)
	addr := bound["new_ip_address"]
	if addr != "10.20.0.10" {
		t.Fatalf("bound with %v", bound)
	}
	mac := l.cliNS.MAC(t, l.cliIf)
	first := srv.lease(t, addr)
	if first.State != model.LeaseBound || first.Token != mac {
		t.Fatalf("stored after bind: %+v", first)
	}
	waitEvent(t, out, "RENEW", 1)
	renewed := srv.lease(t, addr)
	if renewed.State != model.LeaseBound || !renewed.ExpireTime.After(first.ExpireTime) {
		t.Fatalf("after renew: %+v (before: %v)", renewed, first.ExpireTime)
	}
	stop()
	rel := l.cliNS.Command(ctx, dhclient, append(append([]string{"-4", "-r", "-v"}, files...), l.cliIf)...)
	if b, err := rel.CombinedOutput(); err != nil {
		t.Fatalf("dhclient -r: %v\n%s", err, b)
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.lease(t, addr).State != model.LeaseReleased {
		if time.Now().After(deadline) {
			t.Fatalf("lease not released: %+v", srv.lease(t, addr))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestRelayedClient puts isc-dhcp-relay between the client and the
// server: the client gets an address from the relay's subnet.
func TestRelayedClient(t *testing.T) {
	testenv.RequireTool(t, "udhcpc")
	dhcrelay := testenv.RequireTool(t, "dhcrelay")
	testenv.RequireRoot(t)
	srvNS, relayNS, cliNS := testenv.NewNetns(t), testenv.NewNetns(t), testenv.NewNetns(t)
	srvIf, upIf := testenv.Veth(t, srvNS, "10.99.0.1/24", relayNS, "10.99.0.2/24")
	downIf, cliIf := testenv.Veth(t, relayNS, "10.30.0.1/24", cliNS, "")
	srvNS.Run(t, "ip", "route", "add", "10.30.0.0/24", "via", "10.99.0.2")
	relayNS.Run(t, "sysctl", "-qw", "net.ipv4.ip_forward=1")
	rack2 := subnet("rack2", "10.30.0.0/24", "10.30.0.10", "10.30.0.20")
	rack2.Router = "10.30.0.1"
	srv := startServer(t, srvNS, []string{srvIf}, filepath.Join(t.TempDir(), "ironcast.db"), nil,
		subnet("core", "10.99.0.0/24", "10.99.0.10", "10.99.0.20"), rack2)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	// -a adds option 82 and -D drops replies whose option 82 does not
	// match what it sent: the reply only reaches the client if the
	// server echoed it.
	relay := relayNS.Command(ctx, dhcrelay, "-d", "-4", "-a", "-D", "--no-pid", "-id", downIf, "-iu", upIf, "10.99.0.1")
	var rout logBuf
	relay.Stdout, relay.Stderr = &rout, &rout
	if err := relay.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = relay.Wait()
		if t.Failed() {
			t.Logf("dhcrelay:\n%s", rout.String())
		}
	}()
	var ev map[string]string
	for i := 0; i < 5 && ev == nil; i++ { // the relay may still be starting
		ev = udhcpcOnce(t, cliNS, cliIf)
	}
	if ev == nil {
		t.Fatal("no lease through the relay")
	}
	got := map[string]string{"ip": ev["ip"], "router": ev["router"], "serverid": ev["serverid"]}
	want := map[string]string{"ip": "10.30.0.10", "router": "10.30.0.1", "serverid": "10.99.0.1"}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Fatalf("(-got +want):\n%s", diff)
	}
	if l := srv.lease(t, "10.30.0.10"); l.Subnet != "rack2" || l.State != model.LeaseBound {
		t.Fatalf("stored %+v", l)
	}
}

// TestProxyDHCPWithDnsmasq: dnsmasq hands out addresses on the segment,
// ironcast (proxyDHCP) gives the PXE client its boot file, on port 67 and
// on port 4011.
func TestProxyDHCPWithDnsmasq(t *testing.T) {
	dnsmasq := testenv.RequireTool(t, "dnsmasq")
	testenv.RequireRoot(t)
	sw, srvNS, dnsNS, cliNS := testenv.NewNetns(t), testenv.NewNetns(t), testenv.NewNetns(t), testenv.NewNetns(t)
	br := sw.Bridge(t, "")
	srvIf := sw.AttachVeth(t, br, srvNS, "10.20.0.2/24")
	dnsIf := sw.AttachVeth(t, br, dnsNS, "10.20.0.3/24")
	cliIf := sw.AttachVeth(t, br, cliNS, "")
	proxy := &model.Subnet{Name: "proxy", Subnet: "10.20.0.0/24", Enabled: true, Proxy: true}
	srv := startServer(t, srvNS, []string{srvIf}, filepath.Join(t.TempDir(), "ironcast.db"), nil, proxy)

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	dir := t.TempDir()
	dm := dnsNS.Command(ctx, dnsmasq, "--no-daemon", "--conf-file=/dev/null", "--port=0", "--user=root", "--pid-file=",
		"--interface="+dnsIf, "--bind-interfaces", "--dhcp-range=10.20.0.100,10.20.0.150,1h",
		"--dhcp-leasefile="+filepath.Join(dir, "leases"), "--log-dhcp")
	var dout logBuf
	dm.Stdout, dm.Stderr = &dout, &dout
	if err := dm.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		cancel()
		_ = dm.Wait()
		if t.Failed() {
			t.Logf("dnsmasq:\n%s", dout.String())
		}
	}()

	mac, _ := net.ParseMAC(cliNS.MAC(t, cliIf))
	c, err := newPXEClient(cliNS, cliIf, mac, 7)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	bcast := &net.UDPAddr{IP: net.IPv4bcast, Port: 67}
	offers, err := c.exchange(c.packet(dhcpv4.MessageTypeDiscover), bcast, dhcpv4.MessageTypeOffer, func(got []*dhcpv4.DHCPv4) bool {
		return len(got) >= 2 && hasFrom(got, "10.20.0.2") && hasFrom(got, "10.20.0.3")
	})
	if err != nil {
		t.Fatal(err)
	}
	var addrOffer, bootOffer *dhcpv4.DHCPv4
	for _, o := range offers {
		switch o.ServerIdentifier().String() {
		case "10.20.0.3":
			addrOffer = o
		case "10.20.0.2":
			bootOffer = o
		}
	}
	type view struct{ YIAddr, SIAddr, File, Opt60, Opt66, Opt67 string }
	see := func(p *dhcpv4.DHCPv4) view {
		return view{p.YourIPAddr.String(), p.ServerIPAddr.String(), p.BootFileName, p.ClassIdentifier(), p.TFTPServerName(), p.BootFileNameOption()}
	}
	if diff := cmp.Diff(see(bootOffer), view{"0.0.0.0", "10.20.0.2", "snponly.efi", "PXEClient", "10.20.0.2", "snponly.efi"}); diff != "" {
		t.Errorf("proxyDHCP offer (-got +want):\n%s", diff)
	}
	if len(bootOffer.Options.Get(dhcpv4.OptionVendorSpecificInformation)) == 0 {
		t.Error("proxyDHCP offer without option 43")
	}
	yi := addrOffer.YourIPAddr
	if !(yi[0] == 10 && yi[1] == 20 && yi[2] == 0 && yi[3] >= 100 && yi[3] <= 150) {
		t.Fatalf("dnsmasq offered %s", yi)
	}
	// Take dnsmasq's address; ironcast must stay out of it.
	req := c.packet(dhcpv4.MessageTypeRequest,
		dhcpv4.WithOption(dhcpv4.OptServerIdentifier(net.IPv4(10, 20, 0, 3))),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(yi)))
	acks, err := c.exchange(req, bcast, dhcpv4.MessageTypeAck, func(got []*dhcpv4.DHCPv4) bool { return len(got) >= 1 })
	if err != nil {
		t.Fatal(err)
	}
	if s := acks[0].ServerIdentifier().String(); s != "10.20.0.3" {
		t.Fatalf("ack from %s, want dnsmasq", s)
	}
	// Then ask the boot server on port 4011, as firmware does.
	cliNS.Run(t, "ip", "addr", "add", yi.String()+"/24", "dev", cliIf)
	bs := c.packet(dhcpv4.MessageTypeRequest, dhcpv4.WithClientIP(yi), dhcpv4.WithBroadcast(false))
	acks, err = c.exchange(bs, &net.UDPAddr{IP: net.IPv4(10, 20, 0, 2), Port: 4011}, dhcpv4.MessageTypeAck, func(got []*dhcpv4.DHCPv4) bool { return len(got) >= 1 })
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(see(acks[0]), view{"0.0.0.0", "10.20.0.2", "snponly.efi", "PXEClient", "10.20.0.2", "snponly.efi"}); diff != "" {
		t.Errorf("port 4011 ack (-got +want):\n%s", diff)
	}
	if n := srv.counter(t, "ironcast_dhcp_dropped_total", "reason", "not_ours"); n < 1 {
		t.Errorf("the REQUEST to dnsmasq was not dropped as not_ours (%v)", n)
	}
}

func hasFrom(ps []*dhcpv4.DHCPv4, sid string) bool {
	for _, p := range ps {
		if p.ServerIdentifier().String() == sid {
			return true
		}
	}
	return false
}

// TestLeasesSurviveRestart restarts the server on the same bbolt file: the
// client keeps its address and a new client does not get it.
func TestLeasesSurviveRestart(t *testing.T) {
	l := newLAN(t, "10.20.0.2/24")
	path := filepath.Join(t.TempDir(), "ironcast.db")
	srv := startServer(t, l.srvNS, []string{l.srvIf}, path, nil, subnet("rack1", "10.20.0.0/24", "10.20.0.10", "10.20.0.20"))
	ev := udhcpcOnce(t, l.cliNS, l.cliIf, "-r", "10.20.0.15")
	if ev == nil || ev["ip"] != "10.20.0.15" {
		t.Fatalf("first lease %v", ev)
	}
	srv.stop()
	srv = startServer(t, l.srvNS, []string{l.srvIf}, path, nil)
	if got := srv.lease(t, "10.20.0.15"); got.State != model.LeaseBound {
		t.Fatalf("after restart: %+v", got)
	}
	// Same client: its address again, though it asks for nothing.
	if ev := udhcpcOnce(t, l.cliNS, l.cliIf); ev == nil || ev["ip"] != "10.20.0.15" {
		t.Fatalf("same client after restart got %v", ev)
	}
	// Another client asking for that address gets another one.
	l.cliNS.Run(t, "ip", "link", "set", l.cliIf, "address", "02:00:00:00:77:01")
	if ev := udhcpcOnce(t, l.cliNS, l.cliIf, "-r", "10.20.0.15"); ev == nil || ev["ip"] == "10.20.0.15" {
		t.Fatalf("other client after restart got %v", ev)
	}
}

func TestReservationsAndOnlyReservations(t *testing.T) {
	l := newLAN(t, "10.20.0.2/24")
	l.cliNS.Run(t, "ip", "link", "set", l.cliIf, "address", "02:00:00:00:00:01")
	only := subnet("rack1", "10.20.0.0/24", "10.20.0.10", "10.20.0.20")
	only.OnlyReservations = true
	srv := startServer(t, l.srvNS, []string{l.srvIf}, filepath.Join(t.TempDir(), "ironcast.db"), nil, only,
		&model.Reservation{Addr: "10.20.0.77", Token: "02:00:00:00:00:01", Options: []model.DHCPOption{{Code: 15, Value: "reserved.example"}}})
	ev := udhcpcOnce(t, l.cliNS, l.cliIf)
	if ev == nil || ev["ip"] != "10.20.0.77" || ev["domain"] != "reserved.example" || ev["lease"] != "7200" {
		t.Fatalf("reserved client got %v", ev)
	}
	l.cliNS.Run(t, "ip", "addr", "flush", "dev", l.cliIf)
	l.cliNS.Run(t, "ip", "link", "set", l.cliIf, "address", "02:00:00:00:00:02")
	if ev := udhcpcOnce(t, l.cliNS, l.cliIf, "-t", "2"); ev != nil {
		t.Fatalf("unreserved client got %v", ev)
	}
	if n := srv.counter(t, "ironcast_dhcp_dropped_total", "reason", "not_reserved"); n < 1 {
		t.Errorf("not_reserved drops %v", n)
	}
	if !strings.Contains(srv.logs.String(), "subnet serves only reservations") {
		t.Errorf("no log line says why:\n%s", srv.logs)
	}
}

// TestDeclineAndExhaustedRange: udhcpc's ARP check finds the first
// address in use and declines it; the address is set aside and the
// client gets the next; with the range then full, a third client gets
// nothing and the log says why.
func TestDeclineAndExhaustedRange(t *testing.T) {
	l := newLAN(t, "10.20.0.2/24")
	// Another host already uses 10.20.0.10: the server's own second address.
	l.srvNS.Run(t, "ip", "addr", "add", "10.20.0.10/32", "dev", l.srvIf)
	srv := startServer(t, l.srvNS, []string{l.srvIf}, filepath.Join(t.TempDir(), "ironcast.db"), nil,
		subnet("rack1", "10.20.0.0/24", "10.20.0.10", "10.20.0.11"))
	ev := udhcpcOnce(t, l.cliNS, l.cliIf, "-a200")
	if ev == nil || ev["ip"] != "10.20.0.11" {
		t.Fatalf("client after decline got %v", ev)
	}
	if d := srv.lease(t, "10.20.0.10"); d.State != model.LeaseDeclined || d.Token != "" {
		t.Fatalf("declined address stored as %+v", d)
	}
	if !strings.Contains(srv.logs.String(), "address declined") {
		t.Errorf("no decline log:\n%s", srv.logs)
	}
	if n := srv.events.count("dhcp.decline"); n != 1 {
		t.Errorf("dhcp.decline events %d, want 1", n)
	}
	l.cliNS.Run(t, "ip", "addr", "flush", "dev", l.cliIf)
	l.cliNS.Run(t, "ip", "link", "set", l.cliIf, "address", "02:00:00:00:00:03")
	if ev := udhcpcOnce(t, l.cliNS, l.cliIf, "-t", "2"); ev != nil {
		t.Fatalf("client of a full range got %v", ev)
	}
	if n := srv.counter(t, "ironcast_dhcp_dropped_total", "reason", "exhausted"); n < 1 {
		t.Errorf("exhausted drops %v", n)
	}
	if !strings.Contains(srv.logs.String(), "address range exhausted") {
		t.Errorf("no exhaustion log:\n%s", srv.logs)
	}
}

// TestPingCheckSkipsAddressInUse: a host the server does not know owns
// the first address of the range. With PingCheck the server pings it
// before the OFFER, sees the echo reply, sets the address aside and
// offers the next one; without PingCheck (the default) it offers the
// first address unpinged.
func TestPingCheckSkipsAddressInUse(t *testing.T) {
	testenv.RequireTool(t, "udhcpc")
	testenv.RequireRoot(t)
	srvNS, cliNS, squatNS := testenv.NewNetns(t), testenv.NewNetns(t), testenv.NewNetns(t)
	br := srvNS.Bridge(t, "10.20.0.2/24")
	cliIf := srvNS.AttachVeth(t, br, cliNS, "")
	srvNS.AttachVeth(t, br, squatNS, "10.20.0.10/24")
	for _, tc := range []struct {
		name      string
		pingCheck bool
		want      string
	}{
		{"ping check", true, "10.20.0.11"},
		{"default", false, "10.20.0.10"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			s := subnet("rack1", "10.20.0.0/24", "10.20.0.10", "10.20.0.12")
			s.PingCheck = tc.pingCheck
			srv := startServer(t, srvNS, []string{br}, filepath.Join(t.TempDir(), "ironcast.db"), nil, s)
			cliNS.Run(t, "ip", "addr", "flush", "dev", cliIf)
			ev := udhcpcOnce(t, cliNS, cliIf)
			if ev == nil || ev["ip"] != tc.want {
				t.Fatalf("client got %v, want %s", ev, tc.want)
			}
			if !tc.pingCheck {
				return
			}
			if l := srv.lease(t, "10.20.0.10"); l.State != model.LeaseDeclined || l.Token != "" {
				t.Errorf("address in use stored as %+v, want declined with no MAC", l)
			}
			if !strings.Contains(srv.logs.String(), "answers ping") {
				t.Errorf("no log says why the address was skipped:\n%s", srv.logs)
			}
		})
	}
}

// TestNoAckWithoutDurableLease: while lease writes fail, udhcpc gets
// offers but no ACK, the drops are counted and logged; once writes work
// again, the same client is acked and the lease is in the store.
func TestNoAckWithoutDurableLease(t *testing.T) {
	l := newLAN(t, "10.20.0.2/24")
	path := filepath.Join(t.TempDir(), "ironcast.db")
	bst, err := bolt.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	st := &storetest.Faulty{Store: bst, Kind: model.KindLeases}
	st.Fail.Store(true)
	srv := startServerOn(t, l.srvNS, []string{l.srvIf}, path, st, nil, subnet("rack1", "10.20.0.0/24", "10.20.0.10", "10.20.0.20"))
	if ev := udhcpcOnce(t, l.cliNS, l.cliIf, "-t", "2"); ev != nil {
		t.Fatalf("client bound %v while no lease could be stored", ev)
	}
	if n := srv.counter(t, "ironcast_dhcp_sent_total", "type", "ack"); n != 0 {
		t.Errorf("%v acks sent while no lease could be stored", n)
	}
	if n := srv.counter(t, "ironcast_dhcp_dropped_total", "reason", "lease_error"); n < 1 {
		t.Errorf("lease_error drops %v, want at least 1", n)
	}
	if !strings.Contains(srv.logs.String(), "lease write failed") {
		t.Errorf("no log line says why:\n%s", srv.logs)
	}
	st.Fail.Store(false)
	ev := udhcpcOnce(t, l.cliNS, l.cliIf)
	if ev == nil {
		t.Fatal("no lease once writes work again")
	}
	if got := srv.lease(t, ev["ip"]); got.State != model.LeaseBound || got.Token != l.cliNS.MAC(t, l.cliIf) {
		t.Fatalf("stored lease %+v", got)
	}
}

// TestInformWithDhcping: a client that already has an address (set by
// hand) asks for its configuration with DHCPINFORM (dhcping -i). The ACK
// goes to the client's own address and carries the subnet's options and
// no lease; nothing is stored for the address.
func TestInformWithDhcping(t *testing.T) {
	testenv.RequireTool(t, "dhcping")
	l := newLAN(t, "10.20.0.2/24")
	l.cliNS.Run(t, "ip", "addr", "add", "10.20.0.50/24", "dev", l.cliIf)
	s := subnet("rack1", "10.20.0.0/24", "10.20.0.10", "10.20.0.20")
	s.Router, s.Domain = "10.20.0.1", "rack1.example"
	srv := startServer(t, l.srvNS, []string{l.srvIf}, filepath.Join(t.TempDir(), "ironcast.db"), nil, s)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	var out []byte
	var err error
	// The server's socket may still be coming up: a few tries.
	for range 3 {
		out, err = l.cliNS.Command(ctx, "dhcping", "-V", "-i", "-t", "2", "-c", "10.20.0.50", "-s", "10.20.0.2", "-h", "02:00:00:00:00:50").CombinedOutput()
		if err == nil {
			break
		}
	}
	t.Logf("dhcping:\n%s", out)
	if err != nil {
		t.Fatalf("dhcping -i: %v", err)
	}
	// dhcping -V prints the reply it got, field by field.
	for _, want := range []string{"Got answer from: 10.20.0.2", "DHCP message type: 5 (DHCPACK)", "ciaddr: 10.20.0.50",
		"yiaddr: 0.0.0.0", "Router: 10.20.0.1", "Subnet mask: 255.255.255.0", "Server identifier: 10.20.0.2"} {
		if !strings.Contains(string(out), want) {
			t.Errorf("dhcping's view of the reply has no %q", want)
		}
	}
	// RFC 2131 4.3.5: no lease time in the ACK to an INFORM.
	if strings.Contains(string(out), "option 51") {
		t.Errorf("the ACK to an INFORM carries a lease time (option 51)")
	}
	if got := srv.counter(t, "ironcast_dhcp_received_total", "type", "inform"); got < 1 {
		t.Errorf("inform received counter %v", got)
	}
	if got := srv.counter(t, "ironcast_dhcp_sent_total", "type", "ack"); got < 1 {
		t.Errorf("ack sent counter %v", got)
	}
	if _, err := store.Get[model.Lease](context.Background(), srv.st, "10.20.0.50"); !errors.Is(err, model.ErrNotFound) {
		t.Errorf("INFORM stored a lease for 10.20.0.50 (err %v)", err)
	}
}

// TestServeStopsUnderFlood: Serve returns soon after its context ends
// even while a flood of junk keeps its socket's queue full. The reader
// reads on without waiting while whole batches keep coming, so it has to
// notice the end by itself rather than through the socket's deadline.
func TestServeStopsUnderFlood(t *testing.T) {
	testenv.RequireRoot(t)
	srvNS, cliNS := testenv.NewNetns(t), testenv.NewNetns(t)
	srvIf, _ := testenv.Veth(t, srvNS, "10.20.0.2/24", cliNS, "10.20.0.50/24")
	srv := startServer(t, srvNS, []string{srvIf}, filepath.Join(t.TempDir(), "ironcast.db"), nil, subnet("rack1", "10.20.0.0/24", "10.20.0.10", "10.20.0.20"))
	var conns []*net.UDPConn
	if err := cliNS.Do(func() error {
		for range 4 {
			c, err := net.DialUDP("udp4", nil, &net.UDPAddr{IP: net.IPv4(10, 20, 0, 2), Port: 67})
			if err != nil {
				return err
			}
			conns = append(conns, c)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() { close(stop); wg.Wait() }()
	for _, c := range conns {
		wg.Go(func() {
			defer c.Close()
			junk := make([]byte, 16) // too short for a BOOTP header: malformed
			end := time.Now().Add(30 * time.Second)
			for i := 0; i < 10_000_000 && time.Now().Before(end); i++ {
				select {
				case <-stop:
					return
				default:
				}
				_, _ = c.Write(junk)
			}
		})
	}
	deadline := time.Now().Add(10 * time.Second)
	for srv.counter(t, "ironcast_dhcp_dropped_total", "reason", "malformed")+srv.counter(t, "ironcast_dhcp_dropped_total", "reason", "queue_full") < 20000 {
		if time.Now().After(deadline) {
			t.Fatal("the flood did not reach the server")
		}
		time.Sleep(10 * time.Millisecond)
	}
	srv.cancel()
	select {
	case <-srv.done:
	case <-time.After(10 * time.Second):
		t.Fatal("Serve still running 10 s after its context ended, under a flood")
	}
}
