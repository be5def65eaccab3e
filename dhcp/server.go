package dhcp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"runtime/debug"
	"sync"
	"syscall"
	"time"

	"github.com/ironcast/ironcast/model"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"
	"golang.org/x/sys/unix"
)

// Config configures a Server. The zero value, with Interfaces and Leases
// set, is a working server with the defaults documented on each field.
type Config struct {
	// Interfaces are the network interfaces to answer on (--dhcp-interface).
	// Every packet is handled as coming from the interface it arrived on.
	Interfaces []string
	// Leases decides addresses; required.
	Leases Leases
	// Booter decides boot information; nil means StaticBooter{}.
	Booter Booter
	// Notifier receives dhcp.* events; nil means none.
	Notifier Notifier
	// OnBound is called after an ACK that bound an address the client did
	// not hold before (not on renewals), once the reply is sent, from one
	// goroutine in the order of the replies. It may block (a store write):
	// calls queue up behind it in memory. Nil means none.
	OnBound func(ctx context.Context, l model.Lease)
	// Logger receives logs; nil discards them. Dropped packets are logged
	// at debug level.
	Logger *slog.Logger
	// Registerer receives the metrics; nil registers none.
	Registerer prometheus.Registerer
	// Workers is the number of goroutines handling requests (default 8).
	// A worker does not wait for an ACK's store write (Decision.Commit):
	// the reply is sent when the write completes. Workers still wait for
	// the Booter, which may read the store.
	Workers int
	// QueueLen bounds the requests waiting for a worker (default 8192);
	// beyond it requests are dropped (reason "queue_full").
	QueueLen int
	// ReadBuffer is the socket receive buffer in bytes (default 8 MiB),
	// set with SO_RCVBUFFORCE (root) or SO_RCVBUF.
	ReadBuffer int
	// Port is the server port (default 67). Replies go to port 68, or 67
	// through a relay.
	Port int
	// ProxyPort is the PXE boot server port served for proxyDHCP (default
	// 4011); -1 turns it off.
	ProxyPort int
	// PingTimeout is how long a ping check (Subnet.PingCheck) waits for an
	// echo reply before the OFFER leaves (default 300 ms). The wait holds
	// no worker: other clients' requests go on meanwhile.
	PingTimeout time.Duration
}

func (c *Config) defaults() {
	if c.Booter == nil {
		c.Booter = StaticBooter{}
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	if c.Workers <= 0 {
		c.Workers = 8
	}
	if c.QueueLen <= 0 {
		c.QueueLen = 8192
	}
	if c.ReadBuffer <= 0 {
		c.ReadBuffer = 8 << 20
	}
	if c.Port == 0 {
		c.Port = serverPort
	}
	if c.ProxyPort == 0 {
		c.ProxyPort = pxePort
	}
	if c.PingTimeout <= 0 {
		c.PingTimeout = 300 * time.Millisecond
	}
}

// maxProbes bounds the addresses pinged for one DISCOVER.
const maxProbes = 3

// Server is a DHCPv4 and proxyDHCP server on a set of interfaces. Create
// it with New, which binds every socket, then call Serve once.
type Server struct {
	cfg   Config
	h     *handler
	m     *metrics
	links []*link
	conns []*conn
	addrs *addrSource
	queue chan packet
	pool  sync.Pool
	// inflight counts ACKs waiting for their lease write.
	inflight sync.WaitGroup
	// bound queues OnBound calls for boundLoop; bwake signals it.
	bmu   sync.Mutex
	bound []model.Lease
	bwake chan struct{}
	// ping sends ping checks; nil if the ICMP socket could not be opened.
	ping *pinger
}

type conn struct {
	uc   *net.UDPConn
	link *link
	port int
	out  outbox
}

// outbox holds the replies waiting to leave through one socket. Whoever
// decides a reply (a worker, the lease writer's commit callback, a ping
// check) appends it and goes on; the socket's sender goroutine sends what
// has gathered with one sendmmsg, so that a burst (the ACKs one lease
// commit releases, the OFFERs of one read batch) costs one system call.
type outbox struct {
	mu   sync.Mutex
	q    []outgoing
	wake chan struct{}
}

type outgoing struct {
	res   *result
	start time.Time
}

type packet struct {
	buf *[]byte
	n   int
	c   *conn
	src netip.AddrPort
}

const readSize = 2048

// New validates cfg and binds the server's sockets: UDP port 67 and the
// PXE port 4011 on each interface, bound to the interface with
// SO_BINDTODEVICE. It fails if an interface does not exist or a port is
// taken. Sockets are opened in the calling thread's network namespace.
func New(cfg Config) (*Server, error) {
	cfg.defaults()
	if len(cfg.Interfaces) == 0 {
		return nil, errors.New("dhcp: no interfaces given")
	}
	if cfg.Leases == nil {
		return nil, errors.New("dhcp: Config.Leases is nil")
	}
	m, err := newMetrics(cfg.Registerer)
	if err != nil {
		return nil, fmt.Errorf("dhcp metrics: %w", err)
	}
	s := &Server{cfg: cfg, m: m, queue: make(chan packet, cfg.QueueLen), bwake: make(chan struct{}, 1)}
	s.pool.New = func() any { b := make([]byte, readSize); return &b }
	if s.addrs, err = openAddrSource(); err != nil {
		return nil, err
	}
	ok := false
	defer func() {
		if !ok {
			s.close()
		}
	}()
	seen := map[string]bool{}
	for _, name := range cfg.Interfaces {
		if seen[name] {
			continue
		}
		seen[name] = true
		ifi, err := net.InterfaceByName(name)
		if err != nil {
			return nil, fmt.Errorf("dhcp interface %s: %w", name, err)
		}
		l := &link{name: name, index: ifi.Index}
		s.links = append(s.links, l)
		ports := []int{cfg.Port}
		if cfg.ProxyPort > 0 {
			ports = append(ports, cfg.ProxyPort)
		}
		for _, port := range ports {
			uc, err := listen(name, port, cfg.ReadBuffer)
			if err != nil {
				return nil, err
			}
			s.conns = append(s.conns, &conn{uc: uc, link: l, port: port, out: outbox{wake: make(chan struct{}, 1)}})
		}
	}
	if err := s.refreshAddrs(); err != nil {
		return nil, err
	}
	if s.ping, err = openPinger(); err != nil {
		cfg.Logger.Warn("ping checks off: subnets with PingCheck offer without one", "err", err)
	}
	s.h = &handler{leases: cfg.Leases, booter: cfg.Booter, notifier: cfg.Notifier, log: cfg.Logger, m: m, ours: s.ours}
	ok = true
	return s, nil
}

// listen opens a UDP socket on 0.0.0.0:port bound to the interface.
func listen(ifname string, port, rcvbuf int) (*net.UDPConn, error) {
	lc := net.ListenConfig{Control: func(_, _ string, rc syscall.RawConn) error {
		var serr error
		err := rc.Control(func(fd uintptr) {
			f := int(fd)
			if serr = unix.SetsockoptInt(f, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1); serr != nil {
				return
			}
			if serr = unix.SetsockoptInt(f, unix.SOL_SOCKET, unix.SO_BROADCAST, 1); serr != nil {
				return
			}
			if serr = unix.BindToDevice(f, ifname); serr != nil {
				serr = fmt.Errorf("SO_BINDTODEVICE %s: %w", ifname, serr)
				return
			}
			if unix.SetsockoptInt(f, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, rcvbuf) != nil {
				_ = unix.SetsockoptInt(f, unix.SOL_SOCKET, unix.SO_RCVBUF, rcvbuf)
			}
		})
		if err != nil {
			return err
		}
		return serr
	}}
	pc, err := lc.ListenPacket(context.Background(), "udp4", fmt.Sprintf("0.0.0.0:%d", port))
	if err != nil {
		return nil, fmt.Errorf("dhcp listen %s port %d: %w", ifname, port, err)
	}
	return pc.(*net.UDPConn), nil
}

// refreshAddrs rereads the interfaces' IPv4 addresses.
func (s *Server) refreshAddrs() error {
	all, err := s.addrs.dump()
	if err != nil {
		return fmt.Errorf("dhcp interface addresses: %w", err)
	}
	for _, l := range s.links {
		ps := all[l.index]
		if len(ps) == 0 {
			s.cfg.Logger.Warn("dhcp interface has no IPv4 address", "iface", l.name)
		}
		l.addrs.Store(&ps)
	}
	return nil
}

// ours reports whether a is an address of one of the server's interfaces.
func (s *Server) ours(a netip.Addr) bool {
	for _, l := range s.links {
		for _, p := range l.prefixes() {
			if p.Addr() == a {
				return true
			}
		}
	}
	return false
}

func (s *Server) close() {
	for _, c := range s.conns {
		c.uc.Close()
	}
	if s.addrs != nil {
		s.addrs.Close()
	}
	if s.ping != nil {
		s.ping.close()
	}
}

// Serve handles requests until ctx ends, then stops reading, lets the
// workers finish the requests already queued, sends the ACKs whose lease
// writes complete, runs the pending OnBound calls, closes the sockets and
// returns nil. It returns an error only when a socket fails. Serve must be
// called once.
func (s *Server) Serve(ctx context.Context) error {
	defer s.close()
	writers := make([]*batchWriter, len(s.conns))
	for i, c := range s.conns {
		rc, err := c.uc.SyscallConn()
		if err != nil {
			return fmt.Errorf("dhcp send %s port %d: %w", c.link.name, c.port, err)
		}
		writers[i] = newBatchWriter(rc)
	}
	g, gctx := errgroup.WithContext(ctx)
	// Requests in hand finish even when ctx ends, so that an ACK being
	// written is either sent or not, never half done.
	wctx := context.WithoutCancel(ctx)
	boundDone := make(chan struct{})
	boundStop := make(chan struct{})
	go func() {
		defer close(boundDone)
		s.boundLoop(wctx, boundStop)
	}()
	senderStop := make(chan struct{})
	var senders sync.WaitGroup
	for i, c := range s.conns {
		senders.Add(1)
		go func() {
			defer senders.Done()
			s.sendLoop(c, writers[i], senderStop)
		}()
	}
	var readers sync.WaitGroup
	for _, c := range s.conns {
		readers.Add(1)
		g.Go(func() error {
			defer readers.Done()
			return s.read(gctx, c)
		})
	}
	if s.ping != nil {
		go s.ping.read()
	}
	var workers sync.WaitGroup
	for range s.cfg.Workers {
		workers.Add(1)
		go func() {
			defer workers.Done()
			for p := range s.queue {
				s.work(wctx, p)
			}
		}()
	}
	g.Go(func() error {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
				if err := s.refreshAddrs(); err != nil {
					s.cfg.Logger.Warn("dhcp address refresh", "err", err)
				}
			}
		}
	})
	g.Go(func() error {
		<-gctx.Done()
		// Wake the readers without closing the sockets: replies still
		// go out through them.
		for _, c := range s.conns {
			_ = c.uc.SetReadDeadline(time.Now())
		}
		return nil
	})
	err := g.Wait()
	readers.Wait()
	close(s.queue)
	workers.Wait()
	s.inflight.Wait()
	close(senderStop)
	senders.Wait()
	close(boundStop)
	<-boundDone
	if ctx.Err() != nil {
		return nil
	}
	return err
}

// read moves packets from one socket to the work queue; a full queue
// drops the packet rather than growing without bound.
// Packets are read up to readBatch at a time (recvmmsg).
func (s *Server) read(ctx context.Context, c *conn) error {
	rc, err := c.uc.SyscallConn()
	if err != nil {
		return fmt.Errorf("dhcp read %s port %d: %w", c.link.name, c.port, err)
	}
	br := newBatchReader(rc)
	var (
		bps   [readBatch]*[]byte
		bufs  [readBatch][]byte
		sizes [readBatch]int
		srcs  [readBatch]netip.AddrPort
	)
	defer func() {
		for _, bp := range bps {
			if bp != nil {
				s.pool.Put(bp)
			}
		}
	}()
	refill := func() {
		for i := range bps {
			if bps[i] == nil {
				bps[i] = s.pool.Get().(*[]byte)
				bufs[i] = *bps[i]
			}
		}
	}
	refill()
	err = br.receive(bufs[:], sizes[:], srcs[:], func(n int) bool {
		for i := range n {
			select {
			case s.queue <- packet{buf: bps[i], n: sizes[i], c: c, src: srcs[i]}:
				bps[i] = nil // the worker returns it to the pool
			default:
				s.m.dropped(dropQueueFull)
			}
		}
		refill()
		return ctx.Err() == nil // a flood of full batches never reaches the deadline
	})
	if err == nil || ctx.Err() != nil || errors.Is(err, net.ErrClosed) {
		return nil
	}
	return fmt.Errorf("dhcp read %s port %d: %w", c.link.name, c.port, err)
}

// work handles one packet from the queue.
func (s *Server) work(ctx context.Context, p packet) {
	defer s.pool.Put(p.buf)
	s.handle(ctx, (*p.buf)[:p.n], p.c, p.src, 0, time.Now())
}

// handle handles one request; probes counts the addresses already pinged
// for it. A panic is counted, logged and survived. data is not kept
// after handle returns.
func (s *Server) handle(ctx context.Context, data []byte, c *conn, src netip.AddrPort, probes int, start time.Time) {
	p := packet{c: c, src: src}
	defer func() {
		if r := recover(); r != nil {
			s.m.dropped(dropPanic)
			s.cfg.Logger.Error("dhcp handler panic", "iface", p.c.link.name, "src", p.src, "panic", r, "stack", string(debug.Stack()))
		}
	}()
	res, err := s.h.handle(ctx, data, inbound{link: p.c.link, port: p.c.port, src: p.src})
	if err != nil {
		reason := dropMalformed
		var de *dropError
		if errors.As(err, &de) {
			reason = de.reason
		}
		s.m.dropped(reason)
		s.cfg.Logger.Debug("dhcp request dropped", "iface", p.c.link.name, "src", p.src, "reason", reason, "err", err)
		return
	}
	if res == nil {
		s.m.latency.Observe(time.Since(start).Seconds())
		return
	}
	if res.probe.IsValid() && s.ping != nil {
		s.probe(ctx, bytes.Clone(data), c, src, probes, start, res)
		return
	}
	if res.commit == nil {
		s.send(p.c, res, start)
		return
	}
	// The worker moves on; the reply leaves when the lease is durable.
	s.inflight.Add(1)
	res.commit(func(err error) {
		defer s.inflight.Done()
		if err != nil {
			s.m.dropped(dropLeaseError)
			s.cfg.Logger.Debug("dhcp reply dropped: lease not stored", "iface", c.link.name, "dst", res.dst, "err", err)
			return
		}
		s.send(c, res, start)
	})
}

// probe pings the address of an OFFER and sends the OFFER if no echo
// reply comes within PingTimeout. An address that answers is reported to
// Leases.Conflict and the request is handled again for another address,
// up to maxProbes addresses. The worker does not wait.
func (s *Server) probe(ctx context.Context, data []byte, c *conn, src netip.AddrPort, probes int, start time.Time, res *result) {
	s.inflight.Add(1)
	s.ping.probe(res.probe, s.cfg.PingTimeout, func(alive bool) {
		defer s.inflight.Done()
		if !alive {
			s.send(c, res, start)
			return
		}
		log := s.cfg.Logger.With("iface", c.link.name, "mac", res.mac, "addr", res.probe)
		log.Warn("address answers ping: in use by an unknown host, set aside")
		if err := s.h.leases.Conflict(ctx, res.probe, res.mac); err != nil {
			log.Warn("record address conflict", "err", err)
		}
		if probes+1 >= maxProbes {
			s.m.dropped(dropInUse)
			log.Warn("no offer: every address tried answers ping", "tried", probes+1)
			return
		}
		s.inflight.Add(1)
		go func() {
			defer s.inflight.Done()
			s.handle(ctx, data, c, src, probes+1, start)
		}()
	})
}

// send queues the reply on its socket's outbox. It runs on a worker, the
// Leases' writer or a ping check and never blocks on the socket.
func (s *Server) send(c *conn, res *result, start time.Time) {
	c.out.mu.Lock()
	c.out.q = append(c.out.q, outgoing{res: res, start: start})
	first := len(c.out.q) == 1
	c.out.mu.Unlock()
	if first {
		select {
		case c.out.wake <- struct{}{}:
		default:
		}
	}
}

// sendLoop sends c's queued replies, up to writeBatch per system call,
// until stop is closed and the outbox is empty. After each batch it
// counts the replies, publishes their events and queues OnBound.
func (s *Server) sendLoop(c *conn, w *batchWriter, stop <-chan struct{}) {
	var (
		q     []outgoing
		datas [writeBatch][]byte
		dsts  [writeBatch]netip.AddrPort
		errs  [writeBatch]error
	)
	for {
		c.out.mu.Lock()
		q, c.out.q = c.out.q, q[:0]
		c.out.mu.Unlock()
		if len(q) == 0 {
			select {
			case <-c.out.wake:
				continue
			case <-stop:
				c.out.mu.Lock()
				n := len(c.out.q)
				c.out.mu.Unlock()
				if n == 0 {
					return
				}
				continue
			}
		}
		for off := 0; off < len(q); off += writeBatch {
			part := q[off:min(off+writeBatch, len(q))]
			for i, o := range part {
				datas[i], dsts[i] = o.res.data, o.res.dst
			}
			_ = w.write(datas[:len(part)], dsts[:len(part)], errs[:len(part)])
			for i, o := range part {
				s.sent(c, o.res, o.start, errs[i])
			}
		}
		clear(q)
		clear(datas[:])
	}
}

// sent accounts for one reply after its send: counts it (or the failure),
// publishes its event and queues OnBound.
func (s *Server) sent(c *conn, res *result, start time.Time, err error) {
	if err != nil {
		s.m.dropped(dropSendError)
		s.cfg.Logger.Debug("dhcp reply not sent", "iface", c.link.name, "dst", res.dst, "err", err)
		return
	}
	s.m.latency.Observe(time.Since(start).Seconds())
	s.m.sent(res.typ)
	if res.ev != nil {
		s.cfg.Notifier.Publish(*res.ev)
	}
	if res.bound != nil && s.cfg.OnBound != nil {
		s.bmu.Lock()
		s.bound = append(s.bound, *res.bound)
		s.bmu.Unlock()
		select {
		case s.bwake <- struct{}{}:
		default:
		}
	}
}

// boundLoop runs the queued OnBound calls in order until stop is closed
// and the queue is empty.
func (s *Server) boundLoop(ctx context.Context, stop <-chan struct{}) {
	for {
		s.bmu.Lock()
		q := s.bound
		s.bound = nil
		s.bmu.Unlock()
		for _, l := range q {
			s.cfg.OnBound(ctx, l)
		}
		if len(q) > 0 {
			continue
		}
		select {
		case <-s.bwake:
		case <-stop:
			s.bmu.Lock()
			n := len(s.bound)
			s.bmu.Unlock()
			if n == 0 {
				return
			}
		}
	}
}
