// Package testenv gives ironcast's tests real peers in isolation: network
// namespaces joined by veth pairs and bridges, helpers to run commands or
// open sockets inside them, and the skip-or-fail policy for tests that
// need root or a tool.
//
// Nothing here touches the host's own interfaces: every link is created
// inside namespaces this package makes, with private addresses, and is
// deleted by t.Cleanup.
//
// Tests that need root or an external tool skip when it is missing, except
// when IRONCAST_TEST_STRICT=1 (set by `make test`), where they fail.
package testenv

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"testing"

	"golang.org/x/sys/unix"
)

// Strict reports whether missing prerequisites fail tests instead of
// skipping them.
func Strict() bool { return os.Getenv("IRONCAST_TEST_STRICT") == "1" }

// skip skips the test, or fails it in strict mode.
func skip(t testing.TB, format string, args ...any) {
	t.Helper()
	if Strict() {
		t.Fatalf("IRONCAST_TEST_STRICT=1 and "+format, args...)
	}
	t.Skipf(format, args...)
}

// RequireRoot skips (or, strict, fails) unless the test runs as root.
func RequireRoot(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		skip(t, "test needs root (network namespaces)")
	}
}

// RequireTool returns the path of an executable, skipping (or, strict,
// failing) when it is not installed.
func RequireTool(t testing.TB, name string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		for _, dir := range []string{"/usr/sbin", "/sbin"} {
			if _, serr := os.Stat(dir + "/" + name); serr == nil {
				return dir + "/" + name
			}
		}
		skip(t, "test needs %s: %v (make test installs it)", name, err)
	}
	return p
}

// Short random suffix so that parallel tests and aborted runs never clash.
func suffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// Run runs a command and fails the test with its output on error.
func Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		t.Fatalf("%s %s: %v\n%s", name, strings.Join(args, " "), err, out)
	}
	return string(out)
}

// Netns is a network namespace made for one test.
type Netns struct {
	Name string
}

// NewNetns creates a namespace with loopback up and deletes it (with every
// interface inside it) when the test ends.
func NewNetns(t testing.TB) *Netns {
	t.Helper()
	RequireRoot(t)
	RequireTool(t, "ip")
	n := &Netns{Name: "ic-" + suffix()}
	Run(t, "ip", "netns", "add", n.Name)
	t.Cleanup(func() {
		_ = exec.Command("ip", "netns", "pids", n.Name).Run()
		if out, err := exec.Command("ip", "netns", "del", n.Name).CombinedOutput(); err != nil {
			t.Logf("ip netns del %s: %v %s", n.Name, err, out)
		}
	})
	n.Run(t, "ip", "link", "set", "lo", "up")
	return n
}

// Command returns an *exec.Cmd that runs inside the namespace.
func (n *Netns) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Run runs a command inside the namespace and fails the test on error.
func (n *Netns) Run(t testing.TB, name string, args ...string) string {
	t.Helper()
	return Run(t, "ip", append([]string{"netns", "exec", n.Name, name}, args...)...)
}

// Do runs fn on an OS thread switched into the namespace. Sockets opened by
// fn stay in the namespace after Do returns and may be used from any
// goroutine; fn must not start goroutines that open sockets.
func (n *Netns) Do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// The thread is never unlocked: it dies with the goroutine, so no
		// other goroutine ever runs in the namespace by accident.
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + n.Name)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", n.Name, err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.Name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// Veth joins two namespaces with a veth pair, names the ends, gives them
// addresses in CIDR form (either may be empty) and sets them up. It
// returns the interface names.
func Veth(t testing.TB, a *Netns, aAddr string, b *Netns, bAddr string) (aIf, bIf string) {
	t.Helper()
	s := suffix()
	aIf, bIf = "va"+s, "vb"+s
	Run(t, "ip", "link", "add", aIf, "netns", a.Name, "type", "veth", "peer", "name", bIf, "netns", b.Name)
	for _, e := range []struct {
		ns   *Netns
		ifc  string
		addr string
	}{{a, aIf, aAddr}, {b, bIf, bAddr}} {
		if e.addr != "" {
			e.ns.Run(t, "ip", "addr", "add", e.addr, "dev", e.ifc)
		}
		e.ns.Run(t, "ip", "link", "set", e.ifc, "up")
	}
	return aIf, bIf
}

// Bridge creates a bridge inside n with an optional address and returns
// its name. Attach ports with AttachVeth or AddTap.
func (n *Netns) Bridge(t testing.TB, addr string) string {
	t.Helper()
	br := "br" + suffix()
	n.Run(t, "ip", "link", "add", br, "type", "bridge")
	if addr != "" {
		n.Run(t, "ip", "addr", "add", addr, "dev", br)
	}
	n.Run(t, "ip", "link", "set", br, "up")
	return br
}

// AttachVeth joins namespace peer to bridge br in n through a veth pair;
// peerAddr (CIDR, may be empty) goes on the peer's end. It returns the
// peer's interface name.
func (n *Netns) AttachVeth(t testing.TB, br string, peer *Netns, peerAddr string) string {
	t.Helper()
	brIf, peerIf := Veth(t, n, "", peer, peerAddr)
	n.Run(t, "ip", "link", "set", brIf, "master", br)
	return peerIf
}

// AddTap creates a tap device in n for QEMU, enslaved to br, and returns
// its name.
func (n *Netns) AddTap(t testing.TB, br string) string {
	t.Helper()
	tap := "tap" + suffix()
	n.Run(t, "ip", "tuntap", "add", "dev", tap, "mode", "tap")
	n.Run(t, "ip", "link", "set", tap, "master", br)
	n.Run(t, "ip", "link", "set", tap, "up")
	return tap
}

// MAC returns the hardware address of ifc inside n.
func (n *Netns) MAC(t testing.TB, ifc string) string {
	t.Helper()
	out := n.Run(t, "cat", "/sys/class/net/"+ifc+"/address")
	return string(bytes.TrimSpace([]byte(out)))
}
