package harness

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"sync"
	"syscall"

	"golang.org/x/sys/unix"
)

// netns is a network namespace made by the harness. Unlike test/testenv's
// Netns it reports errors instead of failing a test, so that `ironcast
// selftest` can use it.
type netns struct {
	name string
}

func suffix() string {
	b := make([]byte, 3)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// run runs a command on the host and returns its error with its output.
func run(name string, args ...string) (string, error) {
	out, err := exec.Command(name, args...).CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s %s: %w: %s", name, strings.Join(args, " "), err, bytes.TrimSpace(out))
	}
	return string(out), nil
}

func newNetns() (*netns, error) {
	n := &netns{name: "ic-e2e-" + suffix()}
	if _, err := run("ip", "netns", "add", n.name); err != nil {
		return nil, err
	}
	if err := n.run("ip", "link", "set", "lo", "up"); err != nil {
		n.delete()
		return nil, err
	}
	return n, nil
}

// run runs a command inside the namespace.
func (n *netns) run(name string, args ...string) error {
	_, err := run("ip", append([]string{"netns", "exec", n.name, name}, args...)...)
	return err
}

// command returns a command that runs inside the namespace. Start it with
// start, so that it gets SIGKILL when the harness's process dies (ip netns
// exec execs the program, so the setting reaches it).
func (n *netns) command(ctx context.Context, name string, args ...string) *exec.Cmd {
	cmd := exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", n.name, name}, args...)...)
	cmd.SysProcAttr = &syscall.SysProcAttr{Pdeathsig: syscall.SIGKILL, Setpgid: true}
	return cmd
}

// start starts cmd from one OS thread that lives as long as the process.
// The parent-death signal fires when the thread that forked the child
// exits, not the process, and Go ends threads: a goroutine that exits
// while locked to its thread (as netns.do's do) takes the thread with it,
// which would kill children forked from it at random.
func start(cmd *exec.Cmd) error {
	spawnOnce.Do(func() {
		spawnc = make(chan spawnReq)
		go func() {
			runtime.LockOSThread() // never unlocked: the thread outlives every child
			for r := range spawnc {
				r.err <- r.cmd.Start()
			}
		}()
	})
	errc := make(chan error, 1)
	spawnc <- spawnReq{cmd: cmd, err: errc}
	return <-errc
}

type spawnReq struct {
	cmd *exec.Cmd
	err chan error
}

var (
	spawnOnce sync.Once
	spawnc    chan spawnReq
)

// delete removes the namespace; its links go with it once no process
// holds it.
func (n *netns) delete() error {
	_, err := run("ip", "netns", "del", n.name)
	return err
}

// do runs fn on an OS thread switched into the namespace. Sockets fn
// opens stay in the namespace and may be used from any goroutine.
func (n *netns) do(fn func() error) error {
	errc := make(chan error, 1)
	go func() {
		// Never unlocked: the thread dies with the goroutine.
		runtime.LockOSThread()
		f, err := os.Open("/var/run/netns/" + n.name)
		if err != nil {
			errc <- fmt.Errorf("open netns %s: %w", n.name, err)
			return
		}
		defer f.Close()
		if err := unix.Setns(int(f.Fd()), unix.CLONE_NEWNET); err != nil {
			errc <- fmt.Errorf("setns %s: %w", n.name, err)
			return
		}
		errc <- fn()
	}()
	return <-errc
}

// dialContext dials inside the namespace; it is an http.Transport's
// DialContext for clients of the server at 10.77.0.1.
func (n *netns) dialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := n.do(func() error {
		var d net.Dialer
		var err error
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// bridge creates a bridge with addr (CIDR) and IPv6 turned off on it.
func (n *netns) bridge(addr string) (string, error) {
	br := "br" + suffix()
	for _, c := range [][]string{
		{"ip", "link", "add", br, "type", "bridge"},
		// Forward at once: a new port would otherwise listen and learn
		// for 15 s before passing the firmware's first DHCP packets.
		{"ip", "link", "set", br, "type", "bridge", "forward_delay", "0", "stp_state", "0"},
		{"ip", "addr", "add", addr, "dev", br},
		{"ip", "link", "set", br, "up"},
	} {
		if err := n.run(c[0], c[1:]...); err != nil {
			return "", err
		}
	}
	return br, nil
}

// tap creates a tap port of br for one QEMU machine.
func (n *netns) tap(br string) (string, error) {
	tap := "tap" + suffix()
	for _, c := range [][]string{
		{"ip", "tuntap", "add", "dev", tap, "mode", "tap"},
		{"ip", "link", "set", tap, "master", br},
		{"ip", "link", "set", tap, "up"},
	} {
		if err := n.run(c[0], c[1:]...); err != nil {
			return "", err
		}
	}
	return tap, nil
}
