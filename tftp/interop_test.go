package tftp_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/ironcast/ironcast/bootfs"
	"github.com/ironcast/ironcast/test/testenv"
	"github.com/ironcast/ironcast/tftp"
)

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// TestInteropClients fetches files with the Debian clients a person or a
// script would use, over loopback, and compares sha256.
func TestInteropClients(t *testing.T) {
	f := newServer(t, tftp.Config{})
	port := strconv.Itoa(int(f.addr.Port()))
	tests := []struct {
		name string
		tool string
		file string
		args func(out string) []string
	}{
		{"curl", "curl", "big.img", func(out string) []string {
			return []string{"-sS", "-o", out, "tftp://127.0.0.1:" + port + "/big.img"}
		}},
		{"curl blksize 1468", "curl", "big.img", func(out string) []string {
			return []string{"-sS", "--tftp-blksize", "1468", "-o", out, "tftp://127.0.0.1:" + port + "/big.img"}
		}},
		{"curl rendered file", "curl", "01-52-54-00-12-34-56.ipxe", func(out string) []string {
			return []string{"-sS", "-o", out, "tftp://127.0.0.1:" + port + "/01-52-54-00-12-34-56.ipxe"}
		}},
		{"tftp-hpa binary", "tftp", "pxelinux.0", func(out string) []string {
			return []string{"-m", "binary", "127.0.0.1", port, "-c", "get", "pxelinux.0", out}
		}},
		{"tftp-hpa netascii", "tftp", "small.txt", func(out string) []string {
			return []string{"-m", "netascii", "127.0.0.1", port, "-c", "get", "small.txt", out}
		}},
		{"atftp blksize tsize", "atftp", "big.img", func(out string) []string {
			return []string{"--option", "blksize 1468", "--option", "tsize", "-g", "-r", "big.img", "-l", out, "127.0.0.1", port}
		}},
		{"atftp windowsize 8", "atftp", "big.img", func(out string) []string {
			return []string{"--option", "blksize 1468", "--option", "windowsize 8", "--option", "tsize", "-g", "-r", "big.img", "-l", out, "127.0.0.1", port}
		}},
		{"atftp windowsize 16 blksize 512", "atftp", "big.img", func(out string) []string {
			return []string{"--option", "blksize 512", "--option", "windowsize 16", "-g", "-r", "big.img", "-l", out, "127.0.0.1", port}
		}},
		{"atftp empty file", "atftp", "empty", func(out string) []string {
			return []string{"--option", "tsize", "-g", "-r", "empty", "-l", out, "127.0.0.1", port}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bin := testenv.RequireTool(t, tt.tool)
			out := filepath.Join(t.TempDir(), "out")
			ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
			defer cancel()
			if b, err := exec.CommandContext(ctx, bin, tt.args(out)...).CombinedOutput(); err != nil {
				t.Fatalf("%s: %v\n%s", tt.tool, err, b)
			}
			got, err := os.ReadFile(out)
			if err != nil {
				t.Fatal(err)
			}
			var want []byte
			if tt.file == "01-52-54-00-12-34-56.ipxe" {
				want = []byte("#!ipxe\nchain http://127.0.0.1/boot\n")
			} else {
				want = f.file(t, tt.file)
			}
			if sha(got) != sha(want) {
				t.Errorf("%s: sha256 %s (%d bytes), want %s (%d bytes)", tt.name, sha(got), len(got), sha(want), len(want))
			}
		})
	}
}

// TestInteropCurlNotFound: curl reports the server's error packet.
func TestInteropCurlNotFound(t *testing.T) {
	bin := testenv.RequireTool(t, "curl")
	f := newServer(t, tftp.Config{})
	out, err := exec.Command(bin, "-sS", "-o", "/dev/null", fmt.Sprintf("tftp://127.0.0.1:%d/nope.0", f.addr.Port())).CombinedOutput()
	// curl exits 68 (CURLE_TFTP_NOTFOUND) on TFTP error code 1.
	if ee, ok := err.(*exec.ExitError); !ok || ee.ExitCode() != 68 {
		t.Errorf("curl on a missing file: %v %s, want exit status 68", err, out)
	}
}

// TestNetnsWindowsizeRollover runs the server in one namespace and atftp
// in another over a veth pair with an Ethernet MTU. A 33 MiB file at
// blksize 512 is 67,585 blocks, so block numbers roll over (2,049 blocks
// past 65,535, inside windows); it is fetched with windowsize 32 on a
// clean link and with 5% of packets dropped in both directions (netem,
// or iptables where the kernel has no netem), and must match byte for
// byte. The MTU clamp is checked on the same link.
//
// What the lossy fetch costs is mostly waiting: a window that lost a
// block is resent when the retransmission timeout fires. With a 10 ms
// timeout and windows of 32 it takes about 25 s here, where 40 MiB with a
// 50 ms timeout and windows of 16 took about 150 s; the protocol paths it
// goes through (resent windows, duplicate and lost ACKs, the rollover)
// are the same.
func TestNetnsWindowsizeRollover(t *testing.T) {
	atftp := testenv.RequireTool(t, "atftp")
	testenv.RequireTool(t, "tc")
	srvNS, cliNS := testenv.NewNetns(t), testenv.NewNetns(t)
	srvIf, cliIf := testenv.Veth(t, srvNS, "10.77.0.1/24", cliNS, "10.77.0.2/24")

	root := t.TempDir()
	const size = 33 << 20 // 67,585 blocks of 512 bytes
	data := randomBytes(size, 7)
	if err := os.WriteFile(filepath.Join(root, "big33.img"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := bootfs.New(bootfs.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	var srv *tftp.Server
	if err := srvNS.Do(func() error {
		var err error
		srv, err = tftp.Listen(tftp.Config{Addr: "10.77.0.1:69", Source: src, Timeout: 10 * time.Millisecond, Retries: 10, Logger: slog.New(slog.NewTextHandler(testWriter{t}, nil))})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx) }()
	defer func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve: %v", err)
		}
	}()

	t.Run("blksize clamped to the veth MTU", func(t *testing.T) {
		var conn *net.UDPConn
		if err := cliNS.Do(func() error {
			var err error
			conn, err = net.ListenUDP("udp4", &net.UDPAddr{IP: net.IPv4(10, 77, 0, 2)})
			return err
		}); err != nil {
			t.Fatal(err)
		}
		c := &rawClient{t: t, conn: conn, server: netip.MustParseAddrPort("10.77.0.1:69")}
		defer conn.Close()
		c.request(1, "big33.img", "octet", "blksize", "65464")
		opts := c.recvOACK()
		if opts["blksize"] != "1468" {
			t.Errorf("OACK blksize %q on a 1500-byte MTU link, want 1468", opts["blksize"])
		}
		if c.tid.Addr() != netip.MustParseAddr("10.77.0.1") {
			t.Errorf("transfer socket address %v, want the address the request reached", c.tid)
		}
		conn.WriteToUDPAddrPort(packet(5, "\x00\x00bye"), c.tid)
	})

	// The server's 10 ms first retransmission recovers a lost tail of a
	// window quickly; a lost ACK that atftp repeats only on its own timer
	// still costs seconds (see the backoff in transfer.go).
	fetch := func(t *testing.T) {
		out := filepath.Join(t.TempDir(), "out")
		cctx, ccancel := context.WithTimeout(context.Background(), 8*time.Minute)
		defer ccancel()
		cmd := cliNS.Command(cctx, atftp, "--option", "blksize 512", "--option", "windowsize 32", "--option", "tsize",
			"-g", "-r", "big33.img", "-l", out, "10.77.0.1", "69")
		if b, err := cmd.CombinedOutput(); err != nil {
			t.Fatalf("atftp: %v\n%s", err, tail(b))
		}
		got, err := os.ReadFile(out)
		if err != nil {
			t.Fatal(err)
		}
		if sha(got) != sha(data) {
			t.Fatalf("sha256 %s (%d bytes), want %s (%d bytes)", sha(got), len(got), sha(data), len(data))
		}
	}
	t.Run("clean link", fetch)
	t.Run("5% loss", func(t *testing.T) {
		dropFivePercent(t, srvNS, srvIf)
		dropFivePercent(t, cliNS, cliIf)
		fetch(t)
	})
}

// dropFivePercent drops 5% of the packets leaving ifc in ns, with netem
// where the kernel has it. Kernels built without sch_netem (the CI's
// Firecracker kernel) get a random 5% from iptables' statistic match
// instead, on the packets arriving at ifc: a DROP in OUTPUT would fail the
// sender's sendto with EPERM, which is not what a lossy link does.
func dropFivePercent(t *testing.T, ns *testenv.Netns, ifc string) {
	t.Helper()
	out, err := ns.Command(context.Background(), "tc", "qdisc", "add", "dev", ifc, "root", "netem", "loss", "5%").CombinedOutput()
	if err == nil {
		return
	}
	testenv.RequireTool(t, "iptables")
	t.Logf("netem unavailable (%v: %s); dropping with iptables statistic instead", err, bytes.TrimSpace(out))
	ns.Run(t, "iptables", "-A", "INPUT", "-i", ifc, "-m", "statistic", "--mode", "random", "--probability", "0.05", "-j", "DROP")
}

func tail(b []byte) []byte {
	if len(b) > 2000 {
		return b[len(b)-2000:]
	}
	return b
}

// testWriter sends server log lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(string(bytes.TrimSpace(p)))
	return len(p), nil
}
