package tftp_test

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	pintftp "github.com/pin/tftp/v3"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/ironcast/ironcast/bootfs"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/tftp"
)

// randomBytes returns n bytes from a fixed seed.
func randomBytes(n int, seed uint64) []byte {
	r := rand.New(rand.NewPCG(seed, seed))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return b
}

// syncBuffer is a log sink safe for concurrent writes.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

type outcome struct {
	path  string
	bytes int64
	err   error
}

type fixture struct {
	srv      *tftp.Server
	addr     netip.AddrPort
	root     string
	log      *syncBuffer
	reg      *prometheus.Registry
	mu       sync.Mutex
	outcomes []outcome
	cancel   context.CancelFunc
	done     chan error
	stopOnce sync.Once
	serveErr error
}

func (f *fixture) results() []outcome {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]outcome(nil), f.outcomes...)
}

// waitOutcomes waits (bounded) until n transfers have been reported.
func (f *fixture) waitOutcomes(t *testing.T, n int) []outcome {
	t.Helper()
	for range 1000 {
		if r := f.results(); len(r) >= n {
			return r
		}
		time.Sleep(10 * time.Millisecond)
	}
	t.Fatalf("only %d of %d transfers reported", len(f.results()), n)
	return nil
}

// stop ends Serve and checks it returned nil.
func (f *fixture) stop(t *testing.T) {
	t.Helper()
	f.stopOnce.Do(func() {
		f.cancel()
		f.serveErr = <-f.done
	})
	if f.serveErr != nil {
		t.Errorf("Serve returned %v", f.serveErr)
	}
}

var errRender = errors.New(`template "ipxe": map has no entry for key "kernel"`)

// newServer serves a tree with a few files and two virtual ones on
// 127.0.0.1 (an ephemeral port). The fixture stops when the test ends.
func newServer(t *testing.T, cfg tftp.Config) *fixture {
	t.Helper()
	root := t.TempDir()
	files := map[string][]byte{
		"pxelinux.0":      randomBytes(100_000, 1),
		"small.txt":       []byte("hello\nworld\n"),
		"empty":           nil,
		"exact512":        randomBytes(512, 2),
		"grub/grub.cfg":   []byte("menuentry x {}\n"),
		"big.img":         randomBytes(3<<20+17, 3),
		"rollover.bin":    randomBytes(8*70_000+5, 4),
		"../outside.conf": []byte("secret"),
	}
	for name, b := range files {
		p := filepath.Join(root, "boot", name)
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.Symlink("../outside.conf", filepath.Join(root, "boot", "escape.cfg")); err != nil {
		t.Fatal(err)
	}
	f := &fixture{root: filepath.Join(root, "boot"), log: &syncBuffer{}, reg: prometheus.NewRegistry(), done: make(chan error, 1)}
	src, err := bootfs.New(bootfs.Config{
		Root: f.root,
		Renderer: bootfs.RendererFunc(func(_ context.Context, req model.FileRequest) ([]byte, bool, error) {
			switch req.Path {
			case "01-52-54-00-12-34-56.ipxe":
				return []byte("#!ipxe\nchain http://" + req.Local.Addr().String() + "/boot\n"), true, nil
			case "broken.ipxe":
				return nil, true, errRender
			}
			return nil, false, nil
		}),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { src.Close() })
	cfg.Addr = "127.0.0.1:0"
	cfg.Source = src
	cfg.Logger = slog.New(slog.NewTextHandler(f.log, &slog.HandlerOptions{Level: slog.LevelDebug}))
	cfg.Registerer = f.reg
	cfg.OnTransfer = func(req model.FileRequest, n int64, _ time.Duration, err error) {
		f.mu.Lock()
		defer f.mu.Unlock()
		f.outcomes = append(f.outcomes, outcome{req.Path, n, err})
	}
	f.srv, err = tftp.Listen(cfg)
	if err != nil {
		t.Fatal(err)
	}
	f.addr = f.srv.Addr()
	ctx, cancel := context.WithCancel(context.Background())
	f.cancel = cancel
	go func() { f.done <- f.srv.Serve(ctx) }()
	t.Cleanup(func() { f.stop(t) })
	return f
}

func (f *fixture) file(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(f.root, name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// rawClient speaks TFTP packet by packet, to drive the server into the
// corners real clients avoid.
type rawClient struct {
	t      *testing.T
	conn   *net.UDPConn
	server netip.AddrPort
	tid    netip.AddrPort // the server's transfer socket, once known
}

func newRawClient(t *testing.T, server netip.AddrPort) *rawClient {
	t.Helper()
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return &rawClient{t: t, conn: c, server: server}
}

func packet(op uint16, fields ...string) []byte {
	b := binary.BigEndian.AppendUint16(nil, op)
	for _, f := range fields {
		b = append(b, f...)
		b = append(b, 0)
	}
	return b
}

func (c *rawClient) request(op uint16, fields ...string) {
	c.t.Helper()
	if _, err := c.conn.WriteToUDPAddrPort(packet(op, fields...), c.server); err != nil {
		c.t.Fatal(err)
	}
}

func (c *rawClient) ack(block uint16) {
	c.t.Helper()
	b := binary.BigEndian.AppendUint16(nil, 4)
	b = binary.BigEndian.AppendUint16(b, block)
	if _, err := c.conn.WriteToUDPAddrPort(b, c.tid); err != nil {
		c.t.Fatal(err)
	}
}

// recv returns the next packet's opcode and body (after the opcode). The
// 10 s bound only keeps a broken server from hanging the test.
func (c *rawClient) recv() (uint16, []byte) {
	c.t.Helper()
	buf := make([]byte, 70000)
	_ = c.conn.SetReadDeadline(time.Now().Add(10 * time.Second))
	n, from, err := c.conn.ReadFromUDPAddrPort(buf)
	if err != nil {
		c.t.Fatalf("recv: %v", err)
	}
	c.tid = from
	if n < 2 {
		c.t.Fatalf("recv: %d-byte packet", n)
	}
	return binary.BigEndian.Uint16(buf), buf[2:n]
}

// recvData expects a DATA packet and returns its block number and data.
func (c *rawClient) recvData() (uint16, []byte) {
	c.t.Helper()
	op, body := c.recv()
	if op != 3 {
		c.t.Fatalf("got opcode %d %q, want DATA", op, body)
	}
	return binary.BigEndian.Uint16(body), body[2:]
}

// recvError expects an ERROR packet and returns its code and message.
func (c *rawClient) recvError() (uint16, string) {
	c.t.Helper()
	op, body := c.recv()
	if op != 5 {
		c.t.Fatalf("got opcode %d %q, want ERROR", op, body)
	}
	return binary.BigEndian.Uint16(body), strings.TrimRight(string(body[2:]), "\x00")
}

// recvOACK expects an OACK and returns its options.
func (c *rawClient) recvOACK() map[string]string {
	c.t.Helper()
	op, body := c.recv()
	if op != 6 {
		c.t.Fatalf("got opcode %d %q, want OACK", op, body)
	}
	fields := strings.Split(strings.TrimSuffix(string(body), "\x00"), "\x00")
	m := map[string]string{}
	for i := 0; i+1 < len(fields); i += 2 {
		m[fields[i]] = fields[i+1]
	}
	return m
}

// fetchWindowed receives a whole file the RFC 7440 way, acknowledging
// the last block of each window, and records whether block numbers
// wrapped.
func (c *rawClient) fetchWindowed(name string, blksize, window int) (data []byte, wrapped bool) {
	c.t.Helper()
	c.request(1, name, "octet", "blksize", itoa(blksize), "windowsize", itoa(window))
	if opts := c.recvOACK(); opts["windowsize"] != itoa(window) || opts["blksize"] != itoa(blksize) {
		c.t.Fatalf("OACK %v", opts)
	}
	c.ack(0)
	var next uint16 = 1
	inWindow := 0
	for {
		block, d := c.recvData()
		if block != next {
			c.t.Fatalf("got block %d, want %d (loopback does not reorder)", block, next)
		}
		if block == 0 {
			wrapped = true
		}
		data = append(data, d...)
		next++
		inWindow++
		if len(d) < blksize {
			c.ack(block)
			return data, wrapped
		}
		if inWindow == window {
			c.ack(block)
			inWindow = 0
		}
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

// TestPinClient fetches files with pin/tftp's client: an independent
// implementation of blksize and tsize.
func TestPinClient(t *testing.T) {
	f := newServer(t, tftp.Config{})
	tests := []struct {
		name    string
		path    string
		blksize int
		want    []byte
	}{
		{"default block size", "pxelinux.0", 0, f.file(t, "pxelinux.0")},
		{"blksize 1468", "pxelinux.0", 1468, f.file(t, "pxelinux.0")},
		{"blksize 600 (pin's client refuses less than 512)", "pxelinux.0", 600, f.file(t, "pxelinux.0")},
		{"large blksize", "big.img", 65464, f.file(t, "big.img")},
		{"leading slash", "/grub/grub.cfg", 0, f.file(t, "grub/grub.cfg")},
		{"empty file", "empty", 0, []byte{}},
		{"exact multiple of block size", "exact512", 512, f.file(t, "exact512")},
		{"rendered", "01-52-54-00-12-34-56.ipxe", 0, []byte("#!ipxe\nchain http://127.0.0.1/boot\n")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := pintftp.NewClient(f.addr.String())
			if err != nil {
				t.Fatal(err)
			}
			if tt.blksize != 0 {
				c.SetBlockSize(tt.blksize)
			}
			c.RequestTSize(true)
			wt, err := c.Receive(tt.path, "octet")
			if err != nil {
				t.Fatalf("Receive: %v", err)
			}
			if n, ok := wt.(pintftp.IncomingTransfer).Size(); !ok || n != int64(len(tt.want)) {
				t.Errorf("tsize = %d, %v; want %d", n, ok, len(tt.want))
			}
			var got bytes.Buffer
			if _, err := wt.WriteTo(&got); err != nil {
				t.Fatalf("WriteTo: %v", err)
			}
			if !bytes.Equal(got.Bytes(), tt.want) {
				t.Errorf("got %d bytes, want %d (contents differ)", got.Len(), len(tt.want))
			}
		})
	}
	f.waitOutcomes(t, len(tests))
	f.stop(t)
	for _, o := range f.results() {
		if o.err != nil {
			t.Errorf("transfer %s reported %v", o.path, o.err)
		}
	}
	if got := counter(t, f.reg, "ok"); got != float64(len(tests)) {
		t.Errorf("transfers_total{result=ok} = %v, want %d", got, len(tests))
	}
}

// counter returns ironcast_tftp_transfers_total{result} from reg.
func counter(t *testing.T, reg *prometheus.Registry, result string) float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		if mf.GetName() != "ironcast_tftp_transfers_total" {
			continue
		}
		for _, m := range mf.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "result" && l.GetValue() == result {
					return m.GetCounter().GetValue()
				}
			}
		}
	}
	return 0
}

func TestOptionNegotiation(t *testing.T) {
	f := newServer(t, tftp.Config{})
	size := itoa(len(f.file(t, "pxelinux.0")))
	tests := []struct {
		name string
		opts []string
		want map[string]string // nil: no OACK, data block 1 first
	}{
		{"no options", nil, nil},
		{"unknown option only", []string{"multicast", ""}, nil},
		{"tsize", []string{"tsize", "0"}, map[string]string{"tsize": size}},
		{"all four", []string{"blksize", "1468", "tsize", "0", "timeout", "3", "windowsize", "8"},
			map[string]string{"blksize": "1468", "tsize": size, "timeout": "3", "windowsize": "8"}},
		// Loopback's MTU (65536) allows the RFC maximum.
		{"blksize maximum", []string{"blksize", "65464"}, map[string]string{"blksize": "65464"}},
		{"blksize too large ignored", []string{"blksize", "65465", "tsize", "0"}, map[string]string{"tsize": size}},
		{"windowsize capped", []string{"windowsize", "500"}, map[string]string{"windowsize": "64"}},
		{"option names are case-insensitive", []string{"BlkSize", "1000"}, map[string]string{"blksize": "1000"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newRawClient(t, f.addr)
			c.request(1, append([]string{"pxelinux.0", "octet"}, tt.opts...)...)
			if tt.want == nil {
				block, data := c.recvData()
				if block != 1 || len(data) != 512 {
					t.Errorf("first DATA: block %d, %d bytes; want block 1, 512 bytes", block, len(data))
				}
			} else if diff := cmp.Diff(c.recvOACK(), tt.want); diff != "" {
				t.Errorf("OACK (-got +want):\n%s", diff)
			}
			// Abort so the transfer ends now.
			c.conn.WriteToUDPAddrPort(packet(5, "\x00\x00bye"), c.tid)
		})
	}
}

// TestRefusals: hostile paths get access violation (code 2), missing files
// code 1, render errors code 0 with a log line, write requests code 2.
func TestRefusals(t *testing.T) {
	f := newServer(t, tftp.Config{})
	tests := []struct {
		name string
		op   uint16
		path string
		code uint16
	}{
		{"dotdot", 1, "../outside.conf", 2},
		{"dotdot after root slash", 1, "/../outside.conf", 2},
		{"dotdot deep", 1, "grub/../../outside.conf", 2},
		{"dotdot many", 1, "../../../../../../etc/passwd", 2},
		{"dotdot harmless still refused", 1, "grub/../pxelinux.0", 2},
		{"backslash", 1, "grub\\grub.cfg", 2},
		{"backslash dotdot", 1, "..\\outside.conf", 2},
		{"symlink out of the root", 1, "escape.cfg", 2},
		{"nul in name", 1, "pxelinux.0\x00x", 1}, // the NUL ends the name on the wire: "pxelinux.0", mode "x" is malformed
		{"missing", 1, "nope.0", 1},
		{"absolute path stays under the root", 1, "/etc/passwd", 1},
		{"directory", 1, "grub", 1},
		{"root", 1, "/", 1},
		{"render error", 1, "broken.ipxe", 0},
		{"write request", 2, "pxelinux.0", 2},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if strings.Contains(tt.path, "\x00") {
				t.Skip("covered by TestMalformedIgnored: a NUL cannot be inside a TFTP filename")
			}
			c := newRawClient(t, f.addr)
			c.request(tt.op, tt.path, "octet")
			code, msg := c.recvError()
			if code != tt.code {
				t.Errorf("error code %d %q, want %d", code, msg, tt.code)
			}
			if tt.code == 0 && strings.Contains(msg, "kernel") {
				t.Errorf("error message %q leaks the template error", msg)
			}
		})
	}
	f.stop(t)
	log := f.log.String()
	if !strings.Contains(log, "broken.ipxe") || !strings.Contains(log, `map has no entry for key \"kernel\"`) || !strings.Contains(log, "client=127.0.0.1:") {
		t.Errorf("render error not logged with path, client and error:\n%s", log)
	}
	var renderReported bool
	for _, o := range f.results() {
		if o.path == "broken.ipxe" && errors.Is(o.err, errRender) && o.bytes == 0 {
			renderReported = true
		}
		if o.err == nil {
			t.Errorf("%s reported success", o.path)
		}
	}
	if !renderReported {
		t.Errorf("render error not reported to OnTransfer: %+v", f.results())
	}
}

// TestMalformedIgnored: garbage on the listening port gets no answer and
// does not stop the server.
func TestMalformedIgnored(t *testing.T) {
	f := newServer(t, tftp.Config{})
	c := newRawClient(t, f.addr)
	for _, p := range [][]byte{{0}, {0, 4, 0, 1}, packet(1, "a", "mail"), packet(1, "pxelinux.0\x00x", "octet")[:5], {0, 1, 'a', 0}} {
		c.conn.WriteToUDPAddrPort(p, f.addr)
	}
	// The next valid request is the first to get an answer.
	c.request(1, "small.txt", "octet")
	block, data := c.recvData()
	if block != 1 || string(data) != "hello\nworld\n" {
		t.Errorf("got block %d %q", block, data)
	}
	c.ack(1)
}

func TestNetascii(t *testing.T) {
	f := newServer(t, tftp.Config{})
	c := newRawClient(t, f.addr)
	c.request(1, "small.txt", "netascii")
	_, data := c.recvData()
	c.ack(1)
	if got, want := string(data), "hello\r\nworld\r\n"; got != want {
		t.Errorf("netascii data %q, want %q", got, want)
	}
}

// TestRollover sends more than 65535 blocks: block numbers wrap to 0.
func TestRollover(t *testing.T) {
	f := newServer(t, tftp.Config{})
	// rollover.bin at blksize 8 is 70,001 blocks: the block number wraps.
	want := f.file(t, "rollover.bin")
	c := newRawClient(t, f.addr)
	got, wrapped := c.fetchWindowed("rollover.bin", 8, 64)
	if !wrapped {
		t.Error("block numbers never wrapped to 0")
	}
	if !bytes.Equal(got, want) {
		t.Errorf("got %d bytes, want %d (contents differ)", len(got), len(want))
	}
	if r := f.waitOutcomes(t, 1); r[0].err != nil || r[0].bytes != int64(len(want)) {
		t.Errorf("outcome %+v", r[0])
	}
}

// TestWindowRestart: an ACK inside the window restarts sending right after
// the acknowledged block (RFC 7440); stale ACKs are ignored.
func TestWindowRestart(t *testing.T) {
	f := newServer(t, tftp.Config{})
	c := newRawClient(t, f.addr)
	c.request(1, "pxelinux.0", "octet", "blksize", "100", "windowsize", "4")
	c.recvOACK()
	c.ack(0)
	expect := func(blocks ...uint16) {
		t.Helper()
		for _, want := range blocks {
			if got, _ := c.recvData(); got != want {
				t.Fatalf("got block %d, want %d", got, want)
			}
		}
	}
	expect(1, 2, 3, 4)
	c.ack(2) // blocks 3 and 4 "lost"
	expect(3, 4, 5, 6)
	c.ack(6)
	expect(7, 8, 9, 10)
	c.ack(1)  // stale: ignored
	c.ack(10) // progress
	expect(11, 12, 13, 14)
	c.ack(10) // duplicate of the block before the window: resend once
	expect(11, 12, 13, 14)
	c.ack(10) // a second duplicate is ignored; progress continues
	c.ack(14)
	expect(15, 16, 17, 18)
	c.conn.WriteToUDPAddrPort(packet(5, "\x00\x00bye"), c.tid)
}

// TestLockstepDuplicateAck: in lock-step a duplicate ACK is not answered
// (no Sorcerer's Apprentice doubling).
func TestLockstepDuplicateAck(t *testing.T) {
	f := newServer(t, tftp.Config{})
	c := newRawClient(t, f.addr)
	c.request(1, "pxelinux.0", "octet")
	if b, _ := c.recvData(); b != 1 {
		t.Fatalf("block %d", b)
	}
	c.ack(1)
	c.ack(1)
	if b, _ := c.recvData(); b != 2 {
		t.Fatalf("block %d, want 2", b)
	}
	c.ack(2)
	if b, _ := c.recvData(); b != 3 {
		t.Fatalf("block %d after ACK 2, want 3 (a duplicate ACK caused a resend)", b)
	}
	c.conn.WriteToUDPAddrPort(packet(5, "\x00\x00bye"), c.tid)
}

// openFDs counts this process's open file descriptors.
func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(ents)
}

// settle waits (bounded) for the goroutine and descriptor counts to come
// back to a baseline.
func settle(t *testing.T, goroutines, fds int) {
	t.Helper()
	var g, n int
	for range 500 {
		g, n = runtime.NumGoroutine(), openFDs(t)
		if g <= goroutines && n <= fds {
			return
		}
		time.Sleep(10 * time.Millisecond)
	}
	buf := make([]byte, 1<<16)
	buf = buf[:runtime.Stack(buf, true)]
	t.Errorf("leak: %d goroutines (baseline %d), %d fds (baseline %d)\n%s", g, goroutines, n, fds, buf)
}

// TestVanishingClient: a client that stops acknowledging gets the block
// retransmitted Retries times, then the transfer ends with ErrTimeout,
// leaving no goroutine or open file behind.
func TestVanishingClient(t *testing.T) {
	f := newServer(t, tftp.Config{Timeout: 20 * time.Millisecond, Retries: 3})
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)
	c := newRawClient(t, f.addr)
	c.request(1, "pxelinux.0", "octet", "windowsize", "2")
	c.recvOACK()
	c.ack(0)
	for i := 0; i < 4; i++ { // the window, then three retransmissions
		if b, _ := c.recvData(); b != 1 {
			t.Fatalf("send %d: block %d, want 1", i, b)
		}
		if b, _ := c.recvData(); b != 2 {
			t.Fatalf("send %d: block %d, want 2", i, b)
		}
	}
	r := f.waitOutcomes(t, 1)
	if !errors.Is(r[0].err, tftp.ErrTimeout) {
		t.Errorf("outcome error %v, want ErrTimeout", r[0].err)
	}
	c.conn.Close()
	settle(t, baseG, baseFD)
	if got := counter(t, f.reg, "timeout"); got != 1 {
		t.Errorf("transfers_total{result=timeout} = %v, want 1", got)
	}
}

// TestCap: beyond MaxTransfers requests get an error packet and one log
// line, not a transfer.
func TestCap(t *testing.T) {
	f := newServer(t, tftp.Config{MaxTransfers: 2, Timeout: time.Hour})
	var held []*rawClient
	for range 2 {
		c := newRawClient(t, f.addr)
		c.request(1, "pxelinux.0", "octet")
		c.recvData() // the transfer is running and waits for an ACK
		held = append(held, c)
	}
	for range 3 {
		c := newRawClient(t, f.addr)
		c.request(1, "pxelinux.0", "octet")
		code, msg := c.recvError()
		if code != 0 || !strings.Contains(msg, "busy") {
			t.Errorf("over the cap: error %d %q, want 0 busy", code, msg)
		}
	}
	if n := strings.Count(f.log.String(), "transfer cap reached"); n != 1 {
		t.Errorf("cap logged %d times, want once (rate-limited)", n)
	}
	if got := counter(t, f.reg, "busy"); got != 3 {
		t.Errorf("transfers_total{result=busy} = %v, want 3", got)
	}
	// Finishing one transfer frees a slot.
	held[0].conn.WriteToUDPAddrPort(packet(5, "\x00\x00bye"), held[0].tid)
	for range 100 {
		if len(f.results()) >= 4 { // 3 busy + 1 aborted
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	c := newRawClient(t, f.addr)
	c.request(1, "small.txt", "octet")
	if b, _ := c.recvData(); b != 1 {
		t.Errorf("after a slot freed: block %d", b)
	}
	c.ack(1)
}

// TestShutdown: Serve returns nil when ctx ends, with transfers under way,
// and leaves nothing running.
func TestShutdown(t *testing.T) {
	baseG, baseFD := runtime.NumGoroutine(), openFDs(t)
	f := newServer(t, tftp.Config{Timeout: time.Hour})
	var clients []*rawClient
	for range 3 {
		c := newRawClient(t, f.addr)
		c.request(1, "big.img", "octet", "windowsize", "4")
		c.recvOACK()
		clients = append(clients, c)
	}
	f.stop(t)
	for _, o := range f.waitOutcomes(t, 3) {
		if !errors.Is(o.err, tftp.ErrAborted) {
			t.Errorf("transfer ended with %v, want ErrAborted", o.err)
		}
	}
	for _, c := range clients {
		c.conn.Close()
	}
	// The fixture's own source stays open until cleanup: allow its fd.
	settle(t, baseG, baseFD+1)
}

func TestListenErrors(t *testing.T) {
	if _, err := tftp.Listen(tftp.Config{Addr: "127.0.0.1:0"}); err == nil {
		t.Error("Listen without Source succeeded")
	}
	src, _ := bootfs.New(bootfs.Config{})
	if _, err := tftp.Listen(tftp.Config{Addr: "no such host:69", Source: src}); err == nil {
		t.Error("Listen on a bad address succeeded")
	}
}

// lockstepClient fetches name in RFC 1350 lock-step like a boot loader:
// it acknowledges each block once (never a duplicate, so one ACK the
// server drops stalls the transfer), and closes its port right after
// acknowledging the last one (GRUB and PXE ROMs do not dally). late counts
// DATA packets for blocks it had already acknowledged that the server sent
// after the ACK: before each ACK it discards what is already queued (a
// retransmission sent before the ACK reached the server is not late).
func lockstepClient(server netip.AddrPort, name string) (data []byte, late int, err error) {
	c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		return nil, 0, err
	}
	defer c.Close()
	rc, err := c.SyscallConn()
	if err != nil {
		return nil, 0, err
	}
	if _, err := c.WriteToUDPAddrPort(packet(1, name, "octet"), server); err != nil {
		return nil, 0, err
	}
	buf := make([]byte, 1024)
	var tid netip.AddrPort
	var next uint16 = 1
	for {
		// The 10 s bound only keeps a broken server from hanging the test.
		_ = c.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, from, err := c.ReadFromUDPAddrPort(buf)
		if err != nil {
			return data, late, fmt.Errorf("block %d: %w", next, err)
		}
		if n < 4 || binary.BigEndian.Uint16(buf) != 3 {
			return data, late, fmt.Errorf("block %d: unexpected packet %q", next, buf[:n])
		}
		tid = from
		block := binary.BigEndian.Uint16(buf[2:])
		if block != next {
			if block == next-1 {
				late++
				continue
			}
			return data, late, fmt.Errorf("got block %d, want %d", block, next)
		}
		data = append(data, buf[4:n]...)
		final := n-4 < 512
		_ = rc.Read(func(fd uintptr) bool {
			for {
				if _, _, err := unix.Recvfrom(int(fd), buf, unix.MSG_DONTWAIT); err != nil {
					return true
				}
			}
		})
		ack := binary.BigEndian.AppendUint16([]byte{0, 4}, block)
		if _, err := c.WriteToUDPAddrPort(ack, tid); err != nil {
			return data, late, err
		}
		if final {
			return data, late, nil
		}
		next++
	}
}

// concurrentLockstep runs n lock-step clients of pxelinux.0 at once next
// to one client that stalls after the first block (so that no transfer is
// ever alone and all wait through the poller), and checks each client's
// bytes and that each transfer was reported successful. It returns the
// late retransmissions seen by all clients.
func concurrentLockstep(t *testing.T, cfg tftp.Config, n int) int {
	f := newServer(t, cfg)
	want := f.file(t, "pxelinux.0")
	stall := newRawClient(t, f.addr)
	stall.request(1, "big.img", "octet")
	stall.recvData()

	type result struct {
		data []byte
		late int
		err  error
	}
	results := make(chan result, n)
	for range n {
		go func() {
			data, late, err := lockstepClient(f.addr, "pxelinux.0")
			results <- result{data, late, err}
		}()
	}
	late := 0
	for range n {
		r := <-results
		late += r.late
		if r.err != nil {
			t.Errorf("client: %v", r.err)
		} else if !bytes.Equal(r.data, want) {
			t.Errorf("client got %d bytes, want %d (contents differ)", len(r.data), len(want))
		}
	}
	var got []outcome
	for range 1000 {
		got = got[:0]
		for _, o := range f.results() {
			if o.path == "pxelinux.0" {
				got = append(got, o)
			}
		}
		if len(got) >= n {
			break
		}
		time.Sleep(10 * time.Millisecond)
	}
	if len(got) != n {
		t.Fatalf("%d of %d transfers reported", len(got), n)
	}
	for _, o := range got {
		if o.err != nil || o.bytes != int64(len(want)) {
			t.Errorf("transfer reported %d bytes, err %v; want %d bytes, no error", o.bytes, o.err, len(want))
		}
	}
	return late
}

// TestConcurrentLockstep: with many lock-step transfers under way and no
// packet loss (loopback), every ACK is seen: no block is retransmitted
// after its ACK was sent, and every transfer, including the final ACK of
// clients that close at once, is reported successful. The timeout is long
// enough that only a missed or dropped ACK causes a retransmission.
func TestConcurrentLockstep(t *testing.T) {
	if late := concurrentLockstep(t, tftp.Config{Timeout: 5 * time.Second}, 16); late != 0 {
		t.Errorf("%d blocks retransmitted after their ACK was sent", late)
	}
}

// TestLastAckThenClose: with a retransmission timeout so short that the
// server often times out and resends the last block while the client's
// ACK is on its way or queued, a client that acknowledges the last block
// and closes its port at once still counts as a successful transfer. The
// ACK was queued before the ICMP port unreachable that the resend caused
// (Linux reports that error first), and a goroutine that got to the ACK
// after its deadline must not drop it.
func TestLastAckThenClose(t *testing.T) {
	concurrentLockstep(t, tftp.Config{Timeout: time.Millisecond}, 16)
}

// TestLastAckMissing: a client that acknowledges every block but the
// last and then goes quiet (a boot loader that took the file and
// started it, its final ACK lost) ends with ErrUnacknowledged wrapping
// ErrTimeout, all bytes counted, while a client that stops one block
// earlier stays a plain ErrTimeout. When the client's port closes
// instead (ICMP port unreachable), ErrUnacknowledged wraps ErrAborted.
func TestLastAckMissing(t *testing.T) {
	f := newServer(t, tftp.Config{Timeout: 20 * time.Millisecond, Retries: 2})
	size := len(f.file(t, "exact512")) // blocks 1 (512 bytes) and 2 (empty)

	fetch := func(stopAt uint16) *rawClient {
		c := newRawClient(t, f.addr)
		c.request(1, "exact512", "octet")
		for {
			b, _ := c.recvData()
			if b >= stopAt {
				return c
			}
			c.ack(b)
		}
	}

	quiet := fetch(2)
	r := f.waitOutcomes(t, 1)
	if !errors.Is(r[0].err, tftp.ErrUnacknowledged) || !errors.Is(r[0].err, tftp.ErrTimeout) {
		t.Errorf("quiet after the last block: error %v, want ErrUnacknowledged wrapping ErrTimeout", r[0].err)
	}
	if r[0].bytes != int64(size) {
		t.Errorf("quiet after the last block: %d bytes counted, want %d", r[0].bytes, size)
	}
	quiet.conn.Close()

	early := fetch(1)
	r = f.waitOutcomes(t, 2)
	if errors.Is(r[1].err, tftp.ErrUnacknowledged) || !errors.Is(r[1].err, tftp.ErrTimeout) {
		t.Errorf("quiet before the last block: error %v, want a plain ErrTimeout", r[1].err)
	}
	early.conn.Close()

	gone := fetch(2)
	gone.conn.Close() // the next retransmission meets a closed port
	r = f.waitOutcomes(t, 3)
	if !errors.Is(r[2].err, tftp.ErrUnacknowledged) || !errors.Is(r[2].err, tftp.ErrAborted) {
		t.Errorf("port closed after the last block: error %v, want ErrUnacknowledged wrapping ErrAborted", r[2].err)
	}
	if got := counter(t, f.reg, "unacknowledged"); got != 2 {
		t.Errorf("transfers_total{result=unacknowledged} = %v, want 2", got)
	}
}
