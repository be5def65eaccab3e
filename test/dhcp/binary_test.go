// Package dhcp tests DHCP as operators run it: the real `ironcast serve`
// binary inside a network namespace, configured and inspected with the
// real CLI (`ironcast subnets create`, `ironcast leases list -o json`),
// with busybox udhcpc, ISC dhclient and perfdhcp as clients in namespaces
// of their own. Nothing touches the host's interfaces.
package dhcp

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ironcast/ironcast/test/testenv"
)

// binary is the ironcast binary under test, built once per run.
func binary(t *testing.T) string { return testenv.IroncastBinary(t) }

// server is `ironcast serve` running inside ns, serving DHCP on ifc, with
// its API and HTTP boot on the namespace's own loopback. The CLI runs in
// the same namespace and finds the server through the local-server file
// under config (XDG_CONFIG_HOME).
type server struct {
	t       *testing.T
	ns      *testenv.Netns
	ifc     string
	dataDir string
	config  string
	cmd     *exec.Cmd
	log     *testenv.LockedBuffer
}

func newServer(t *testing.T, ns *testenv.Netns, ifc string) *server {
	return &server{t: t, ns: ns, ifc: ifc, dataDir: t.TempDir(), config: t.TempDir()}
}

func (s *server) env() []string {
	return append(os.Environ(), "XDG_CONFIG_HOME="+s.config, "HOME="+s.config,
		"IRONCAST_ENDPOINT=", "IRONCAST_TOKEN=", "IRONCAST_USERNAME=", "IRONCAST_PASSWORD=")
}

// start runs serve and waits until the CLI reaches it (bounded).
func (s *server) start() {
	t := s.t
	t.Helper()
	s.log = &testenv.LockedBuffer{}
	// `ip netns exec` execs in place: cmd.Process is the server itself.
	s.cmd = exec.Command("ip", "netns", "exec", s.ns.Name, binary(t), "serve", "--data-dir", s.dataDir,
		"--dhcp-interface", s.ifc, "--listen", "127.0.0.1", "--api-port", "8092", "--http-port", "8091", "--log-level", "debug")
	s.cmd.Env = s.env()
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd, log := s.cmd, s.log
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { _ = cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				_ = cmd.Process.Kill()
				<-done
			}
		}
		if t.Failed() {
			t.Logf("server log:\n%s", log)
		}
	})
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		if _, _, code := s.cli("subnets", "list"); code == 0 {
			return
		}
		if err := syscall.Kill(cmd.Process.Pid, 0); err != nil {
			break
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("server did not answer the CLI:\n%s", s.log)
}

// kill ends the server with SIGKILL.
func (s *server) kill() {
	_ = s.cmd.Process.Kill()
	_ = s.cmd.Wait()
}

// cli runs the ironcast CLI in the server's namespace.
func (s *server) cli(args ...string) (stdout, stderr string, code int) {
	cmd := exec.Command("ip", append([]string{"netns", "exec", s.ns.Name, binary(s.t)}, args...)...)
	cmd.Env = s.env()
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// mustCLI runs the CLI and fails the test on a non-zero exit.
func (s *server) mustCLI(args ...string) string {
	s.t.Helper()
	out, errOut, code := s.cli(args...)
	if code != 0 {
		s.t.Fatalf("ironcast %s: exit %d: %s %s", strings.Join(args, " "), code, out, errOut)
	}
	return out
}

// lease is what `ironcast leases list -o json` shows of a lease.
type lease struct {
	Addr, Token, State, Subnet string
	ExpireTime                 time.Time
}

func (s *server) leases() []lease {
	s.t.Helper()
	out := s.mustCLI("leases", "list", "-o", "json")
	var ls []lease
	if err := json.Unmarshal([]byte(out), &ls); err != nil {
		s.t.Fatalf("leases list -o json: %v\n%s", err, out)
	}
	return ls
}

func (s *server) lease(addr string) *lease {
	for _, l := range s.leases() {
		if l.Addr == addr {
			return &l
		}
	}
	return nil
}

// waitLease polls `ironcast leases list` until addr's lease satisfies ok.
func (s *server) waitLease(addr, what string, ok func(*lease) bool) *lease {
	s.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		l := s.lease(addr)
		if l != nil && ok(l) {
			return l
		}
		if time.Now().After(deadline) {
			s.t.Fatalf("lease %s never %s; last %+v", addr, what, l)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// machineAddress returns the Address of the machine named name.
func (s *server) machineAddress(name string) string {
	s.t.Helper()
	out := s.mustCLI("machines", "list", "-o", "json")
	var ms []struct{ Name, Address string }
	if err := json.Unmarshal([]byte(out), &ms); err != nil {
		s.t.Fatalf("machines list -o json: %v\n%s", err, out)
	}
	for _, m := range ms {
		if m.Name == name {
			return m.Address
		}
	}
	s.t.Fatalf("no machine %s in %s", name, out)
	return ""
}

// script writes a client hook script that configures the address and
// appends each event's environment to the returned events file.
func script(t *testing.T, body string) (path, events string) {
	t.Helper()
	dir := t.TempDir()
	path, events = filepath.Join(dir, "script"), filepath.Join(dir, "events")
	if err := os.WriteFile(path, []byte(fmt.Sprintf(body, events)), 0o755); err != nil {
		t.Fatal(err)
	}
	return path, events
}

const udhcpcScript = `#!/bin/sh
case "$1" in
bound|renew) ip addr replace "$ip/${mask:-24}" dev "$interface" ;;
deconfig) ip addr flush dev "$interface" ;;
esac
{ echo "event=$1"; env | sort; echo "--"; } >> %s
`

const dhclientScript = `#!/bin/sh
case "$reason" in
PREINIT) ip link set "$interface" up ;;
BOUND|RENEW|REBIND|REBOOT) ip addr replace "$new_ip_address/$new_subnet_mask" dev "$interface" ;;
RELEASE|EXPIRE|STOP) ip addr flush dev "$interface" ;;
esac
{ echo "event=$reason"; env | grep -E '^(new|old)_|^interface=' | sort; echo "--"; } >> %s
`

// waitEvent waits (bounded) for the n-th event named name in a script's
// events file and returns its environment.
func waitEvent(t *testing.T, path, name string, n int) map[string]string {
	t.Helper()
	deadline := time.Now().Add(60 * time.Second)
	for time.Now().Before(deadline) {
		b, _ := os.ReadFile(path)
		seen := 0
		cur := map[string]string{}
		sc := bufio.NewScanner(bytes.NewReader(b))
		for sc.Scan() {
			if sc.Text() == "--" {
				if cur["event"] == name {
					if seen++; seen == n {
						return cur
					}
				}
				cur = map[string]string{}
				continue
			}
			if k, v, ok := strings.Cut(sc.Text(), "="); ok {
				cur[k] = v
			}
		}
		time.Sleep(50 * time.Millisecond)
	}
	b, _ := os.ReadFile(path)
	t.Fatalf("no event %s #%d; events:\n%s", name, n, b)
	return nil
}

// start runs a client process in ns until the test ends.
func startClient(t *testing.T, ns *testenv.Netns, name string, args ...string) *exec.Cmd {
	t.Helper()
	cmd := ns.Command(context.Background(), name, args...)
	out := &testenv.LockedBuffer{}
	cmd.Stdout, cmd.Stderr = out, out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Signal(syscall.SIGTERM)
			_ = cmd.Wait()
		}
		if t.Failed() {
			t.Logf("%s:\n%s", name, out)
		}
	})
	return cmd
}

// TestServeLeaseLifecycleWithRealClients: udhcpc and then dhclient each
// get a lease from `ironcast serve`, renew it and release it, and
// `ironcast leases list -o json` shows the lease bound, renewed and
// released; the machine created beforehand with the client's MAC gets
// the address in Machine.Address. Then udhcpc's ARP check declines an
// address another host uses, and the list shows it declined. ("offered"
// is shown by TestServeOfferStoredAndHeldAcrossKill; "expired" appears
// once the sweep runs, every 30 s, which ipam's tests cover.)
func TestServeLeaseLifecycleWithRealClients(t *testing.T) {
	testenv.RequireRoot(t)
	srvNS, cliNS := testenv.NewNetns(t), testenv.NewNetns(t)
	srvIf, cliIf := testenv.Veth(t, srvNS, "10.20.0.2/24", cliNS, "")
	s := newServer(t, srvNS, srvIf)
	s.start()
	// Option 58 (T1) of 2 s makes dhclient renew within the test.
	s.mustCLI("subnets", "create", `{"Name":"rack1","Subnet":"10.20.0.0/24","ActiveStart":"10.20.0.10","ActiveEnd":"10.20.0.20",`+
		`"Router":"10.20.0.1","Enabled":true,"Options":[{"Code":58,"Value":"2"},{"Code":59,"Value":"3000"}]}`)

	t.Run("udhcpc", func(t *testing.T) {
		udhcpc := testenv.RequireTool(t, "udhcpc")
		mac := "02:00:00:00:01:01"
		cliNS.Run(t, "ip", "link", "set", cliIf, "address", mac)
		s.mustCLI("machines", "create", `{"Name":"m-udhcpc","HardwareAddrs":["`+mac+`"]}`)
		sc, events := script(t, udhcpcScript)
		cmd := startClient(t, cliNS, udhcpc, "-f", "-i", cliIf, "-s", sc, "-t", "10", "-T", "1")
		addr := waitEvent(t, events, "bound", 1)["ip"]
		if addr == "" {
			t.Fatal("bound without an address")
		}
		// The ACK left only once the lease was stored: it is there now.
		bound := s.lease(addr)
		if bound == nil || bound.State != "bound" || bound.Token != mac || bound.Subnet != "rack1" {
			t.Fatalf("leases list after bind: %+v", bound)
		}
		deadline := time.Now().Add(30 * time.Second)
		for s.machineAddress("m-udhcpc") != addr {
			if time.Now().After(deadline) {
				t.Fatalf("Machine.Address is %q, want %s", s.machineAddress("m-udhcpc"), addr)
			}
			time.Sleep(100 * time.Millisecond)
		}
		_ = cmd.Process.Signal(syscall.SIGUSR1) // renew now
		waitEvent(t, events, "renew", 1)
		if l := s.lease(addr); l == nil || l.State != "bound" || !l.ExpireTime.After(bound.ExpireTime) {
			t.Fatalf("leases list after renew: %+v (expiry before %s)", l, bound.ExpireTime)
		}
		_ = cmd.Process.Signal(syscall.SIGUSR2) // release
		waitEvent(t, events, "deconfig", 2)
		s.waitLease(addr, "released", func(l *lease) bool { return l.State == "released" && l.Token == mac })
	})

	t.Run("dhclient", func(t *testing.T) {
		dhclient := testenv.RequireTool(t, "dhclient")
		mac := "02:00:00:00:01:02"
		cliNS.Run(t, "ip", "addr", "flush", "dev", cliIf)
		cliNS.Run(t, "ip", "link", "set", cliIf, "address", mac)
		s.mustCLI("machines", "create", `{"Name":"m-dhclient","HardwareAddrs":["`+mac+`"]}`)
		sc, events := script(t, dhclientScript)
		dir := t.TempDir()
		conf := filepath.Join(dir, "dhclient.conf")
		if err := os.WriteFile(conf, nil, 0o644); err != nil {
			t.Fatal(err)
		}
		// Own script, lease, pid and config files: nothing of the host's.
		files := []string{"-sf", sc, "-lf", filepath.Join(dir, "leases"), "-pf", filepath.Join(dir, "pid"), "-cf", conf}
		cmd := startClient(t, cliNS, dhclient, append(append([]string{"-4", "-d", "-v"}, files...), cliIf)...)
		addr := waitEvent(t, events, "BOUND", 1)["new_ip_address"]
		bound := s.lease(addr)
		if bound == nil || bound.State != "bound" || bound.Token != mac {
			t.Fatalf("leases list after bind: %+v", bound)
		}
		deadline := time.Now().Add(30 * time.Second)
		for s.machineAddress("m-dhclient") != addr {
			if time.Now().After(deadline) {
				t.Fatalf("Machine.Address is %q, want %s", s.machineAddress("m-dhclient"), addr)
			}
			time.Sleep(100 * time.Millisecond)
		}
		waitEvent(t, events, "RENEW", 1)
		if l := s.lease(addr); l == nil || l.State != "bound" || !l.ExpireTime.After(bound.ExpireTime) {
			t.Fatalf("leases list after renew: %+v (expiry before %s)", l, bound.ExpireTime)
		}
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
		rel := cliNS.Command(context.Background(), dhclient, append(append([]string{"-4", "-r", "-v"}, files...), cliIf)...)
		if b, err := rel.CombinedOutput(); err != nil {
			t.Fatalf("dhclient -r: %v\n%s", err, b)
		}
		s.waitLease(addr, "released", func(l *lease) bool { return l.State == "released" && l.Token == mac })
	})

	t.Run("declined", func(t *testing.T) {
		udhcpc := testenv.RequireTool(t, "udhcpc")
		// Another host already uses the next free address (here a second
		// address of the server's own interface, which answers ARP).
		// The server hands out never-used addresses in order: the next one
		// is the lowest of the range without a lease.
		used := map[string]bool{}
		for _, l := range s.leases() {
			used[l.Addr] = true
		}
		next := ""
		for i := 10; i <= 20 && next == ""; i++ {
			if a := fmt.Sprintf("10.20.0.%d", i); !used[a] {
				next = a
			}
		}
		srvNS.Run(t, "ip", "addr", "add", next+"/32", "dev", srvIf)
		cliNS.Run(t, "ip", "addr", "flush", "dev", cliIf)
		cliNS.Run(t, "ip", "link", "set", cliIf, "address", "02:00:00:00:01:03")
		sc, events := script(t, udhcpcScript)
		// -a: udhcpc checks the offered address with ARP and declines it.
		startClient(t, cliNS, udhcpc, "-f", "-i", cliIf, "-s", sc, "-t", "10", "-T", "1", "-a200")
		if got := waitEvent(t, events, "bound", 1)["ip"]; got == next || got == "" {
			t.Fatalf("bound to %q after declining %s", got, next)
		}
		s.waitLease(next, "declined", func(l *lease) bool { return l.State == "declined" && l.Token == "" })
	})

	// The object commands #3 names, on what the clients above left.
	t.Run("cli", func(t *testing.T) {
		if out := s.mustCLI("subnets", "list"); !strings.Contains(out, "rack1") {
			t.Errorf("subnets list has no rack1:\n%s", out)
		}
		if out := s.mustCLI("subnets", "show", "rack1"); !strings.Contains(out, "10.20.0.0/24") {
			t.Errorf("subnets show rack1:\n%s", out)
		}
		s.mustCLI("reservations", "create", `{"Addr":"10.20.0.19","Token":"02:00:00:00:01:19"}`)
		if out := s.mustCLI("reservations", "list"); !strings.Contains(out, "02:00:00:00:01:19") {
			t.Errorf("reservations list has no 02:00:00:00:01:19:\n%s", out)
		}
		if out := s.mustCLI("reservations", "show", "10.20.0.19"); !strings.Contains(out, "02:00:00:00:01:19") {
			t.Errorf("reservations show 10.20.0.19:\n%s", out)
		}
		ls := s.leases()
		if len(ls) == 0 {
			t.Fatal("no leases to show and destroy")
		}
		addr := ls[0].Addr
		if out := s.mustCLI("leases", "show", addr); !strings.Contains(out, addr) {
			t.Errorf("leases show %s:\n%s", addr, out)
		}
		s.mustCLI("leases", "destroy", addr)
		if s.lease(addr) != nil {
			t.Errorf("lease %s still listed after leases destroy", addr)
		}
		if _, _, code := s.cli("leases", "show", addr); code == 0 {
			t.Errorf("leases show %s exits 0 after destroy", addr)
		}
	})
}

// perfdhcpRelay builds the topology perfdhcp needs in relay mode: the
// server's namespace and perfdhcp's, joined by a veth pair (10.50.0.1 on the
// server's side, 10.50.0.2 on perfdhcp's), with the relay address 10.40.0.2
// (giaddr, in the served 10.40.0.0/16) on perfdhcp's side and routed from
// the server's. It returns perfdhcp's path, the namespaces and the veth ends.
func perfdhcpRelay(t *testing.T) (perfdhcp string, srvNS, cliNS *testenv.Netns, srvIf, cliIf string) {
	t.Helper()
	testenv.RequireRoot(t)
	perfdhcp = testenv.RequireTool(t, "perfdhcp")
	srvNS, cliNS = testenv.NewNetns(t), testenv.NewNetns(t)
	srvIf, cliIf = testenv.Veth(t, srvNS, "10.50.0.1/24", cliNS, "10.50.0.2/24")
	cliNS.Run(t, "ip", "addr", "add", "10.40.0.2/32", "dev", cliIf)
	srvNS.Run(t, "ip", "route", "add", "10.40.0.2/32", "via", "10.50.0.2")
	return perfdhcp, srvNS, cliNS, srvIf, cliIf
}

// TestServeKilledDuringPerfdhcp kills `ironcast serve` with SIGKILL in the
// middle of a bounded perfdhcp run (a relay in its own namespace, routed
// to the server's), restarts it on the same data directory, and checks
// through the CLI that the store opened and that no client holds two
// bound leases; addresses are the store's keys, so no address can be
// bound to two MACs.
func TestServeKilledDuringPerfdhcp(t *testing.T) {
	perfdhcp, srvNS, cliNS, srvIf, cliIf := perfdhcpRelay(t)
	s := newServer(t, srvNS, srvIf)
	s.start()
	s.mustCLI("subnets", "create", `{"Name":"bench","Subnet":"10.40.0.0/16","ActiveStart":"10.40.1.0","ActiveEnd":"10.40.255.254","Enabled":true}`)

	// 2,000 clients at 500 DORA/s for at most 10 s.
	pctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	perf := cliNS.Command(pctx, perfdhcp, "-4", "-R", "2000", "-r", "500", "-p", "10", "-l", "10.40.0.2", "10.50.0.1")
	pout := &testenv.LockedBuffer{}
	perf.Stdout, perf.Stderr = pout, pout
	if err := perf.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		if perf.ProcessState == nil {
			_ = perf.Process.Kill()
			_ = perf.Wait()
		}
	}()
	// Kill once a few hundred leases are bound (bounded wait).
	deadline := time.Now().Add(30 * time.Second)
	for {
		n := 0
		for _, l := range s.leases() {
			if l.State == "bound" {
				n++
			}
		}
		if n >= 300 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("only %d leases bound after 30 s; perfdhcp:\n%s", n, pout)
		}
		time.Sleep(100 * time.Millisecond)
	}
	s.kill()
	_ = perf.Wait()

	s.start()
	ls := s.leases()
	byMAC := map[string]string{}
	bound := 0
	for _, l := range ls {
		if l.State != "bound" || time.Now().After(l.ExpireTime) {
			continue
		}
		bound++
		if other, ok := byMAC[l.Token]; ok {
			t.Errorf("%s holds %s and %s", l.Token, other, l.Addr)
		}
		byMAC[l.Token] = l.Addr
	}
	if bound < 300 {
		t.Fatalf("%d bound leases after the restart, at least 300 were bound before the kill", bound)
	}
	t.Logf("%d leases, %d bound to %d clients after kill -9 and restart", len(ls), bound, len(byMAC))
	// The restarted server still serves: one more client gets an address.
	if udhcpc, err := exec.LookPath("udhcpc"); err == nil {
		sc, events := script(t, udhcpcScript)
		srvNS.Run(t, "ip", "addr", "add", "10.40.0.1/16", "dev", srvIf)
		cliNS.Run(t, "ip", "addr", "flush", "dev", cliIf)
		startClient(t, cliNS, udhcpc, "-f", "-i", cliIf, "-s", sc, "-t", "10", "-T", "1")
		addr := waitEvent(t, events, "bound", 1)["ip"]
		if l := s.lease(addr); l == nil || l.State != "bound" {
			t.Fatalf("new client after restart: lease %+v", l)
		}
		for _, l := range ls {
			if l.Addr == addr && l.State == "bound" && time.Now().Before(l.ExpireTime) {
				t.Fatalf("new client got %s, bound to %s before the restart", addr, l.Token)
			}
		}
	}
}

// TestServeOfferStoredAndHeldAcrossKill: a client that sends DISCOVER and
// never REQUEST (perfdhcp -i) shows in `ironcast leases list` as offered.
// After kill -9 and a restart the offer is still listed, and while its
// hold lasts (30 s) another client gets no offer of the subnet's only
// address.
func TestServeOfferStoredAndHeldAcrossKill(t *testing.T) {
	perfdhcp, srvNS, cliNS, srvIf, _ := perfdhcpRelay(t)
	s := newServer(t, srvNS, srvIf)
	s.start()
	s.mustCLI("subnets", "create", `{"Name":"one","Subnet":"10.40.0.0/16","ActiveStart":"10.40.1.7","ActiveEnd":"10.40.1.7","Enabled":true}`)

	// discover runs one DISCOVER-OFFER exchange (no REQUEST) as the
	// client mac and returns perfdhcp's output.
	discover := func(mac string) string {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		out, _ := cliNS.Command(ctx, perfdhcp, "-4", "-i", "-R", "1", "-n", "1", "-r", "1", "-p", "3", "-b", "mac="+mac,
			"-l", "10.40.0.2", "10.50.0.1").CombinedOutput()
		return string(out)
	}
	const mac1, mac2 = "02:00:00:00:aa:01", "02:00:00:00:aa:02"
	out := discover(mac1)
	l := s.waitLease("10.40.1.7", "offered", func(l *lease) bool { return l.State == "offered" })
	if l.Token != mac1 || l.Subnet != "one" || !l.ExpireTime.After(time.Now()) {
		t.Fatalf("offered lease %+v, want held for %s; perfdhcp:\n%s", l, mac1, out)
	}
	s.kill()
	s.start()
	if l2 := s.lease("10.40.1.7"); l2 == nil || l2.State != "offered" || l2.Token != mac1 || !l2.ExpireTime.Equal(l.ExpireTime) {
		t.Fatalf("after kill -9 and restart: %+v, want %+v", l2, l)
	}
	out = discover(mac2)
	if l2 := s.lease("10.40.1.7"); l2 == nil || l2.State != "offered" || l2.Token != mac1 {
		t.Fatalf("another client's DISCOVER during the hold: lease %+v, want still offered to %s; perfdhcp:\n%s", l2, mac1, out)
	}
	if !strings.Contains(s.log.String(), "address range exhausted") {
		t.Fatalf("no \"address range exhausted\" for the second client in the server log; perfdhcp:\n%s", out)
	}
}
