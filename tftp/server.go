package tftp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"os"
	"runtime/debug"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sys/unix"

	"github.com/ironcast/ironcast/bootfs"
	"github.com/ironcast/ironcast/model"
)

// FileSource opens the files the server sends. *bootfs.Source implements
// it. Errors wrapping bootfs.ErrNotFound become "file not found", those
// wrapping bootfs.ErrAccess "access violation", any other "not defined"
// with a short message (the full error is logged).
type FileSource interface {
	Open(ctx context.Context, req model.FileRequest) (bootfs.File, error)
}

var _ FileSource = (*bootfs.Source)(nil)

// Config configures a Server. The zero value, with a Source, is a server
// on port 69 of every IPv4 address with the defaults documented per field.
type Config struct {
	// Addr is the UDP address to listen on, "host:port". Empty means
	// ":69". The host part must be an IPv4 address or empty.
	Addr string
	// Source opens the files to send. Required.
	Source FileSource
	// MaxTransfers caps concurrent transfers; requests beyond it get an
	// error packet. Zero means 256.
	MaxTransfers int
	// Timeout is the retransmission timeout when the client does not ask
	// for one with the timeout option. Zero means 1s.
	Timeout time.Duration
	// Retries is how many times a packet is retransmitted before the
	// transfer is abandoned. Zero means 5.
	Retries int
	// MaxBlockSize caps the blksize option below the path MTU limit. Zero
	// means 65464 (the RFC 2348 maximum).
	MaxBlockSize int
	// MaxWindowSize caps the windowsize option (RFC 7440). Zero means 64.
	MaxWindowSize int
	// Logger receives one line per failed transfer and rate-limited lines
	// when the cap is reached. Nil discards.
	Logger *slog.Logger
	// Registerer, when set, gets the server's metrics:
	// ironcast_tftp_transfers_total{result}, ironcast_tftp_bytes_total and
	// ironcast_tftp_active_transfers.
	Registerer prometheus.Registerer
	// OnTransfer, when set, is called once per read request after the
	// transfer ends (or is refused), from the transfer's goroutine, with
	// the bytes of file data sent and nil or the reason it failed. It must
	// not block for long.
	OnTransfer func(req model.FileRequest, bytes int64, dur time.Duration, err error)
}

func (c *Config) setDefaults() {
	if c.Addr == "" {
		c.Addr = ":69"
	}
	if c.MaxTransfers <= 0 {
		c.MaxTransfers = 256
	}
	if c.Timeout <= 0 {
		c.Timeout = time.Second
	}
	if c.Retries <= 0 {
		c.Retries = 5
	}
	if c.MaxBlockSize <= 0 || c.MaxBlockSize > maxBlockSize {
		c.MaxBlockSize = maxBlockSize
	}
	c.MaxBlockSize = max(c.MaxBlockSize, minBlockSize)
	if c.MaxWindowSize <= 0 {
		c.MaxWindowSize = 64
	}
	c.MaxWindowSize = min(c.MaxWindowSize, 65535)
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
}

// Server is a read-only TFTP server. Create it with Listen and run it with
// Serve.
type Server struct {
	cfg    Config
	log    *slog.Logger
	conn   *net.UDPConn
	port   uint16
	netns  *os.File // the listener's network namespace, when not the process's
	met    metrics
	active atomic.Int64
	wg     sync.WaitGroup

	busyMu      sync.Mutex
	busyLogged  time.Time
	busyDropped int
}

// Listen validates cfg and binds the listening socket. Nothing is served
// until Serve. Transfer sockets are created in the network namespace
// Listen ran in.
func Listen(cfg Config) (*Server, error) {
	cfg.setDefaults()
	if cfg.Source == nil {
		return nil, errors.New("tftp: Config.Source is required")
	}
	la, err := net.ResolveUDPAddr("udp4", cfg.Addr)
	if err != nil {
		return nil, fmt.Errorf("tftp address %s: %w", cfg.Addr, err)
	}
	ns, err := foreignNetns()
	if err != nil {
		return nil, err
	}
	conn, err := net.ListenUDP("udp4", la)
	if err != nil {
		if ns != nil {
			ns.Close()
		}
		return nil, fmt.Errorf("tftp listen %s: %w", cfg.Addr, err)
	}
	// IP_PKTINFO tells which local address each request reached, so the
	// transfer socket can be bound to that address.
	if err := setsockopt(conn, unix.IPPROTO_IP, unix.IP_PKTINFO, 1); err != nil {
		conn.Close()
		if ns != nil {
			ns.Close()
		}
		return nil, fmt.Errorf("tftp listen %s: IP_PKTINFO: %w", cfg.Addr, err)
	}
	s := &Server{
		cfg:   cfg,
		log:   cfg.Logger,
		conn:  conn,
		port:  uint16(conn.LocalAddr().(*net.UDPAddr).Port),
		netns: ns,
		met:   newMetrics(cfg.Registerer),
	}
	return s, nil
}

// Addr returns the listening address.
func (s *Server) Addr() netip.AddrPort {
	return s.conn.LocalAddr().(*net.UDPAddr).AddrPort()
}

// Serve answers requests until ctx ends, then closes the listener, aborts
// the transfers under way, waits for them and returns nil. It returns an
// error only when the listening socket fails. Serve must be called once.
func (s *Server) Serve(ctx context.Context) error {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(ctx, func() { s.conn.Close() })
	defer stop()
	defer func() {
		if s.netns != nil {
			s.netns.Close()
		}
	}()

	buf := make([]byte, 65536)
	oob := make([]byte, 128)
	var err error
	for {
		var n, oobn int
		var from netip.AddrPort
		n, oobn, _, from, err = s.conn.ReadMsgUDPAddrPort(buf, oob)
		if err != nil {
			if ctx.Err() != nil {
				err = nil
			} else if isTemporary(err) {
				continue
			} else {
				err = fmt.Errorf("tftp read: %w", err)
			}
			break
		}
		s.handle(ctx, buf[:n], oob[:oobn], from)
	}
	cancel()
	s.conn.Close()
	s.wg.Wait()
	return err
}

func isTemporary(err error) bool {
	// ICMP errors reported on the unconnected socket (ECONNREFUSED from an
	// earlier reply) and interrupted reads are not the socket failing.
	return errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, unix.EINTR) || errors.Is(err, unix.ENOBUFS)
}

// handle classifies one packet on the listening socket.
func (s *Server) handle(ctx context.Context, pkt, oob []byte, from netip.AddrPort) {
	defer func() {
		if r := recover(); r != nil {
			s.log.Error("tftp request handler panic", "client", from, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	from = netip.AddrPortFrom(from.Addr().Unmap(), from.Port())
	local := s.localAddr(oob)
	req, err := parseRequest(pkt)
	if err != nil {
		s.log.Debug("tftp bad request", "client", from, "err", err)
		return
	}
	freq := model.FileRequest{Path: req.filename, Protocol: "tftp", Remote: from, Local: netip.AddrPortFrom(local, s.port)}
	if req.op == opWRQ {
		s.reply(appendError(nil, errAccessViolation, "read-only server"), from, local)
		s.met.transfers.WithLabelValues("refused").Inc()
		s.observe(freq, 0, 0, errWriteRefused)
		return
	}
	if s.active.Load() >= int64(s.cfg.MaxTransfers) {
		s.reply(appendError(nil, errNotDefined, "server busy, retry later"), from, local)
		s.met.transfers.WithLabelValues("busy").Inc()
		s.logBusy(from)
		s.observe(freq, 0, 0, ErrBusy)
		return
	}
	s.active.Add(1)
	s.met.active.Inc()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer s.met.active.Dec()
		defer s.active.Add(-1)
		s.transfer(ctx, req, freq)
	}()
}

// Errors reported to OnTransfer for requests that never become transfers.
var (
	// ErrBusy means MaxTransfers transfers were under way.
	ErrBusy = errors.New("tftp: too many transfers")
	// errWriteRefused reports a write request.
	errWriteRefused = fmt.Errorf("tftp: write request refused: %w", bootfs.ErrAccess)
)

// logBusy logs the first refusal and then at most one line per 10s with
// the count refused since.
func (s *Server) logBusy(from netip.AddrPort) {
	s.busyMu.Lock()
	defer s.busyMu.Unlock()
	s.busyDropped++
	if time.Since(s.busyLogged) < 10*time.Second {
		return
	}
	s.log.Warn("tftp transfer cap reached, refusing requests", "max_transfers", s.cfg.MaxTransfers, "refused", s.busyDropped, "client", from)
	s.busyLogged = time.Now()
	s.busyDropped = 0
}

func (s *Server) observe(req model.FileRequest, n int64, d time.Duration, err error) {
	if s.cfg.OnTransfer != nil {
		s.cfg.OnTransfer(req, n, d, err)
	}
}

// localAddr reads the IP_PKTINFO control message: the address the request
// was sent to (or, for a broadcast, our address on that interface).
// Without one it falls back to the listener's address. (The block size
// limit comes from the transfer socket's IP_MTU, which follows the route
// to the client, so the interface index is not needed.)
func (s *Server) localAddr(oob []byte) netip.Addr {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err == nil {
		for _, m := range msgs {
			if m.Header.Level != unix.IPPROTO_IP || m.Header.Type != unix.IP_PKTINFO || len(m.Data) < unix.SizeofInet4Pktinfo {
				continue
			}
			var info unix.Inet4Pktinfo
			copy(info.Spec_dst[:], m.Data[4:8])
			copy(info.Addr[:], m.Data[8:12])
			dst := netip.AddrFrom4(info.Addr)
			if dst.IsMulticast() || dst == netip.AddrFrom4([4]byte{255, 255, 255, 255}) || !dst.IsValid() || dst.IsUnspecified() {
				dst = netip.AddrFrom4(info.Spec_dst)
			}
			return dst
		}
	}
	return s.Addr().Addr()
}

// reply sends a packet from the listening socket, from the local address
// the request reached.
func (s *Server) reply(pkt []byte, to netip.AddrPort, from netip.Addr) {
	var oob []byte
	if from.Is4() && !from.IsUnspecified() {
		oob = unix.PktInfo4(&unix.Inet4Pktinfo{Spec_dst: from.As4()})
	}
	if _, _, err := s.conn.WriteMsgUDPAddrPort(pkt, oob, to); err != nil {
		s.log.Debug("tftp reply", "client", to, "err", err)
	}
}

func setsockopt(c *net.UDPConn, level, opt, val int) error {
	rc, err := c.SyscallConn()
	if err != nil {
		return err
	}
	var serr error
	if err := rc.Control(func(fd uintptr) { serr = unix.SetsockoptInt(int(fd), level, opt, val) }); err != nil {
		return err
	}
	return serr
}

// metrics are the server's Prometheus collectors; without a Registerer
// they are kept but not exported.
type metrics struct {
	transfers *prometheus.CounterVec
	bytes     prometheus.Counter
	active    prometheus.Gauge
}

func newMetrics(r prometheus.Registerer) metrics {
	m := metrics{
		transfers: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ironcast_tftp_transfers_total",
			Help: "TFTP read requests by result: ok, unacknowledged (last block sent, its ACK never came), not_found, access, render_error, timeout, aborted, error, busy, refused (write requests).",
		}, []string{"result"}),
		bytes: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "ironcast_tftp_bytes_total",
			Help: "File bytes sent over TFTP (each block counted once).",
		}),
		active: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "ironcast_tftp_active_transfers",
			Help: "TFTP transfers under way.",
		}),
	}
	if r != nil {
		m.transfers = register(r, m.transfers)
		m.bytes = register(r, m.bytes)
		m.active = register(r, m.active)
	}
	return m
}

// register registers c, or returns the collector already registered under
// its name (a second server in the same process shares the counters).
func register[C prometheus.Collector](r prometheus.Registerer, c C) C {
	if err := r.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}
