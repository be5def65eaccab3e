// Command dhcpload is a DHCPv4 load generator for test/bench/dhcp/run.sh:
// it acts as a relay (giaddr = its address, port 67) and runs full DORA
// exchanges (DISCOVER, OFFER, REQUEST, ACK) at a fixed rate of new
// DISCOVERs, like `perfdhcp -l ADDR -r RATE -R CLIENTS`.
//
// It exists because perfdhcp, pinned to one core, becomes the limit near
// 10,000 DORA/s on the benchmark machine (its core is 100 % busy while
// both Kea and ironcast still keep up), so it cannot show how far either
// server goes. dhcpload runs one event loop on one locked thread,
// sends and receives with sendmmsg and recvmmsg in batches, builds each
// packet by patching a template made once with the dhcpv4 package, and
// reads replies with a small option scanner instead of a full decode, so
// that a DORA costs it a few microseconds.
//
//	dhcpload -server 10.50.0.1 -relay 10.40.0.2 -rate 20000 -clients 1000 -duration 5s
//
// At the end it prints one line of key=value figures:
//
//	dhcpload: discovers=N offers=N requests=N acks=N naks=N lat_do_ms=F lat_ra_ms=F nonunique=N rcvbuf_drops=N
//
// A DISCOVER counts as dropped unless its exchange ends in an ACK before
// the run ends (-wait after the last DISCOVER). With -unique every client
// runs once and the acked addresses are checked: nonunique counts
// addresses acked to more than one client. rcvbuf_drops are replies lost
// in dhcpload's own socket (SO_RXQ_OVFL): a client that lost them is the
// limit, not the server.
package main

import (
	"encoding/binary"
	"errors"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"runtime"
	"time"
	"unsafe"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"golang.org/x/sys/unix"
)

func main() {
	if err := run(); err != nil {
		fmt.Fprintln(os.Stderr, "dhcpload:", err)
		os.Exit(1)
	}
}

type config struct {
	server   netip.Addr
	relay    netip.Addr
	rate     int
	clients  int
	duration time.Duration
	wait     time.Duration
	unique   bool
}

func run() error {
	var c config
	server := flag.String("server", "", "server address (required)")
	relay := flag.String("relay", "", "relay address to bind (port 67) and send as giaddr (required)")
	flag.IntVar(&c.rate, "rate", 1000, "new DISCOVERs per second")
	flag.IntVar(&c.clients, "clients", 1000, "distinct client MACs, used in turn")
	flag.DurationVar(&c.duration, "duration", 5*time.Second, "how long to send DISCOVERs")
	flag.DurationVar(&c.wait, "wait", 500*time.Millisecond, "how long to wait for replies after the last DISCOVER")
	flag.BoolVar(&c.unique, "unique", false, "run each client once and check that no address is acked to two clients (the run sends at most -clients DISCOVERs)")
	flag.Parse()
	var err error
	if c.server, err = netip.ParseAddr(*server); err != nil || !c.server.Is4() {
		return fmt.Errorf("-server %q: want an IPv4 address", *server)
	}
	if c.relay, err = netip.ParseAddr(*relay); err != nil || !c.relay.Is4() {
		return fmt.Errorf("-relay %q: want an IPv4 address", *relay)
	}
	if c.rate <= 0 || c.clients <= 0 || c.duration <= 0 {
		return errors.New("-rate, -clients and -duration must be positive")
	}
	runtime.LockOSThread()
	g, err := newGen(c)
	if err != nil {
		return err
	}
	defer unix.Close(g.fd)
	if err := g.loop(); err != nil {
		return err
	}
	g.report(os.Stdout)
	return nil
}

const (
	batch    = 64
	pktSize  = 1500
	tableLen = 1 << 20 // exchanges in flight or recent, indexed by xid
)

// exchange is one DORA, found by its xid.
type exchange struct {
	xid     uint32
	client  uint32
	state   uint8 // 0 free, 1 discover sent, 2 request sent, 3 acked
	tSend   int64 // DISCOVER sent (ns since start)
	tReq    int64 // REQUEST sent
	offered [4]byte
}

type gen struct {
	cfg  config
	fd   int
	dst  unix.RawSockaddrInet4
	disc []byte // DISCOVER template
	req  []byte // REQUEST template
	// offsets of option 50 and 54 values in req
	reqIPOff, sidOff int

	table []exchange
	start time.Time

	// counters
	discovers, offers, requests, acks, naks, stale, nonunique uint64
	sumDO, sumRA                                              int64
	ovfl                                                      uint32

	// pending REQUESTs to send (xids)
	pend []uint32

	// unique mode: the address each client was acked
	ackedTo map[[4]byte]uint32

	// send and receive buffers
	sbuf  [batch][pktSize]byte
	smsgs [batch]unix.Mmsghdr
	siovs [batch]unix.Iovec
	rbuf  [batch][pktSize]byte
	rmsgs [batch]unix.Mmsghdr
	riovs [batch]unix.Iovec
	rctl  [batch][64]byte
	pfd   [1]unix.PollFd
}

func newGen(c config) (*gen, error) {
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	ok := false
	defer func() {
		if !ok {
			unix.Close(fd)
		}
	}()
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_REUSEADDR, 1)
	// A large receive buffer (SO_RCVBUFFORCE needs root) so that bursts of
	// replies are not lost here; SO_RXQ_OVFL reports any that still are.
	if unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 16<<20) != nil {
		_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 16<<20)
	}
	_ = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_SNDBUF, 4<<20)
	if err := unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RXQ_OVFL, 1); err != nil {
		return nil, fmt.Errorf("SO_RXQ_OVFL: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrInet4{Addr: c.relay.As4(), Port: dhcpv4.ServerPort}); err != nil {
		return nil, fmt.Errorf("bind %v:67: %w", c.relay, err)
	}
	g := &gen{cfg: c, fd: fd, table: make([]exchange, tableLen)}
	g.dst.Family = unix.AF_INET
	g.dst.Addr = c.server.As4()
	binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&g.dst.Port))[:], dhcpv4.ServerPort)
	if c.unique {
		g.ackedTo = make(map[[4]byte]uint32, c.clients)
	}
	if err := g.templates(); err != nil {
		return nil, err
	}
	for i := range g.smsgs {
		g.siovs[i].Base = &g.sbuf[i][0]
		g.smsgs[i].Hdr.Iov = &g.siovs[i]
		g.smsgs[i].Hdr.SetIovlen(1)
		g.smsgs[i].Hdr.Name = (*byte)(unsafe.Pointer(&g.dst))
		g.smsgs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
	}
	for i := range g.rmsgs {
		g.riovs[i].Base = &g.rbuf[i][0]
		g.riovs[i].SetLen(pktSize)
		g.rmsgs[i].Hdr.Iov = &g.riovs[i]
		g.rmsgs[i].Hdr.SetIovlen(1)
	}
	ok = true
	return g, nil
}

// templates builds the DISCOVER and REQUEST with the dhcpv4 package once;
// each packet sent is a copy with its xid, MAC and addresses patched in.
func (g *gen) templates() error {
	mac := net.HardwareAddr{0x02, 0, 0, 0, 0, 0}
	giaddr := net.IP(g.cfg.relay.AsSlice())
	params := dhcpv4.WithRequestedOptions(dhcpv4.OptionSubnetMask, dhcpv4.OptionRouter, dhcpv4.OptionDomainNameServer)
	d, err := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeDiscover), params,
		dhcpv4.WithRelay(giaddr))
	if err != nil {
		return fmt.Errorf("discover template: %w", err)
	}
	marker := net.IPv4(192, 0, 2, 77).To4()
	sid := net.IPv4(192, 0, 2, 78).To4()
	r, err := dhcpv4.New(dhcpv4.WithHwAddr(mac), dhcpv4.WithMessageType(dhcpv4.MessageTypeRequest), params,
		dhcpv4.WithRelay(giaddr),
		dhcpv4.WithOption(dhcpv4.OptRequestedIPAddress(marker)), dhcpv4.WithOption(dhcpv4.OptServerIdentifier(sid)))
	if err != nil {
		return fmt.Errorf("request template: %w", err)
	}
	g.disc, g.req = d.ToBytes(), r.ToBytes()
	g.reqIPOff = optionOffset(g.req, dhcpv4.OptionRequestedIPAddress.Code())
	g.sidOff = optionOffset(g.req, dhcpv4.OptionServerIdentifier.Code())
	if g.reqIPOff < 0 || g.sidOff < 0 || len(g.disc) > pktSize || len(g.req) > pktSize {
		return errors.New("templates: options 50 and 54 not found")
	}
	return nil
}

// optionOffset returns the offset of option code's value in pkt, or -1.
func optionOffset(pkt []byte, code uint8) int {
	for i := 240; i < len(pkt); {
		switch pkt[i] {
		case 0:
			i++
			continue
		case 255:
			return -1
		}
		if i+1 >= len(pkt) {
			return -1
		}
		if pkt[i] == code {
			return i + 2
		}
		i += 2 + int(pkt[i+1])
	}
	return -1
}

func (g *gen) now() int64 { return int64(time.Since(g.start)) }

func (g *gen) loop() error {
	g.start = time.Now()
	total := uint64(g.cfg.rate) * uint64(g.cfg.duration) / uint64(time.Second)
	if g.cfg.unique {
		total = min(total, uint64(g.cfg.clients))
	}
	end := int64(g.cfg.duration) + int64(g.cfg.wait)
	perNs := float64(g.cfg.rate) / 1e9
	for {
		now := g.now()
		if now >= end || (g.discovers >= total && g.acks+g.naks+g.stale >= g.discovers && len(g.pend) == 0) {
			return nil
		}
		due := min(uint64(float64(now)*perNs)+1, total)
		sent := false
		if len(g.pend) > 0 || g.discovers < due {
			if err := g.send(due); err != nil {
				return err
			}
			sent = true
		}
		got, err := g.recv()
		if err != nil {
			return err
		}
		if sent || got > 0 {
			continue
		}
		// Idle: wait for a reply or the next DISCOVER, whichever first.
		wait := end - now
		if g.discovers < total {
			next := int64(float64(g.discovers) / perNs)
			wait = min(wait, max(next-now, 0))
		}
		if err := g.poll(unix.POLLIN, wait); err != nil && err != unix.EINTR {
			return fmt.Errorf("ppoll: %w", err)
		}
	}
}

// send sends the pending REQUESTs and the DISCOVERs due by now (the
// discovers-th up to due), a batch at a time.
func (g *gen) send(due uint64) error {
	for len(g.pend) > 0 || g.discovers < due {
		n := 0
		now := g.now()
		for n < batch && len(g.pend) > 0 {
			xid := g.pend[len(g.pend)-1]
			g.pend = g.pend[:len(g.pend)-1]
			e := &g.table[xid%tableLen]
			if e.xid != xid || e.state != 1 {
				continue
			}
			b := g.sbuf[n][:len(g.req)]
			copy(b, g.req)
			g.patch(b, xid, e.client)
			copy(b[g.reqIPOff:], e.offered[:])
			copy(b[g.sidOff:], g.cfg.server.AsSlice())
			g.siovs[n].SetLen(len(b))
			e.state, e.tReq = 2, now
			g.requests++
			n++
		}
		for n < batch && g.discovers < due {
			xid := uint32(g.discovers + 1)
			client := uint32(g.discovers % uint64(g.cfg.clients))
			e := &g.table[xid%tableLen]
			if e.state == 1 || e.state == 2 {
				g.stale++ // an exchange older than the table: lost
			}
			*e = exchange{xid: xid, client: client, state: 1, tSend: now}
			b := g.sbuf[n][:len(g.disc)]
			copy(b, g.disc)
			g.patch(b, xid, client)
			g.siovs[n].SetLen(len(b))
			g.discovers++
			n++
		}
		for off := 0; off < n; {
			r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(g.fd), uintptr(unsafe.Pointer(&g.smsgs[off])), uintptr(n-off), 0, 0, 0)
			switch e {
			case 0:
				off += int(r)
			case unix.EINTR, unix.EAGAIN, unix.ENOBUFS:
				_ = g.poll(unix.POLLOUT, time.Millisecond.Nanoseconds())
			default:
				return fmt.Errorf("sendmmsg: %w", e)
			}
		}
	}
	return nil
}

// poll waits up to ns nanoseconds for the socket to be ready for events.
func (g *gen) poll(events int16, ns int64) error {
	g.pfd[0] = unix.PollFd{Fd: int32(g.fd), Events: events}
	ts := unix.NsecToTimespec(ns)
	_, err := unix.Ppoll(g.pfd[:], &ts, nil)
	return err
}

// patch writes the xid and the client's MAC (02:xx:xx:xx:xx:xx from its
// number) into a packet copied from a template.
func (g *gen) patch(b []byte, xid, client uint32) {
	binary.BigEndian.PutUint32(b[4:8], xid)
	b[28] = 0x02
	b[29] = 0x10
	binary.BigEndian.PutUint32(b[30:34], client)
}

// recv reads the replies queued now (several batches at most) and
// handles them; it returns how many it read.
func (g *gen) recv() (int, error) {
	total := 0
	for range 4 {
		for i := range g.rmsgs {
			g.rmsgs[i].Hdr.Control = &g.rctl[i][0]
			g.rmsgs[i].Hdr.SetControllen(len(g.rctl[i]))
			g.rmsgs[i].Len = 0
		}
		r, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, uintptr(g.fd), uintptr(unsafe.Pointer(&g.rmsgs[0])), batch, unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
		case unix.EAGAIN, unix.EINTR:
			return total, nil
		default:
			return total, fmt.Errorf("recvmmsg: %w", e)
		}
		n := int(r)
		now := g.now()
		for i := range n {
			g.handle(g.rbuf[i][:g.rmsgs[i].Len], now)
			g.overflow(&g.rmsgs[i].Hdr)
		}
		total += n
		if n < batch {
			break
		}
	}
	return total, nil
}

// overflow reads SO_RXQ_OVFL's count of datagrams dropped on the socket.
func (g *gen) overflow(h *unix.Msghdr) {
	if h.Controllen == 0 {
		return
	}
	msgs, err := unix.ParseSocketControlMessage(unsafe.Slice(h.Control, h.Controllen))
	if err != nil {
		return
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SO_RXQ_OVFL && len(m.Data) >= 4 {
			g.ovfl = binary.NativeEndian.Uint32(m.Data)
		}
	}
}

// handle processes one reply: an OFFER queues the REQUEST, an ACK or NAK
// ends the exchange. Replies to unknown or finished exchanges are ignored.
func (g *gen) handle(p []byte, now int64) {
	if len(p) < 244 || p[0] != 2 {
		return
	}
	xid := binary.BigEndian.Uint32(p[4:8])
	e := &g.table[xid%tableLen]
	if e.xid != xid {
		return
	}
	mt := uint8(0)
	if off := optionOffset(p, dhcpv4.OptionDHCPMessageType.Code()); off > 0 && off < len(p) {
		mt = p[off]
	}
	switch dhcpv4.MessageType(mt) {
	case dhcpv4.MessageTypeOffer:
		if e.state != 1 {
			return
		}
		g.offers++
		g.sumDO += now - e.tSend
		copy(e.offered[:], p[16:20])
		g.pend = append(g.pend, xid)
	case dhcpv4.MessageTypeAck:
		if e.state != 2 {
			return
		}
		g.acks++
		g.sumRA += now - e.tReq
		e.state = 3
		if g.ackedTo != nil {
			var a [4]byte
			copy(a[:], p[16:20])
			if other, ok := g.ackedTo[a]; ok && other != e.client {
				g.nonunique++
			}
			g.ackedTo[a] = e.client
		}
	case dhcpv4.MessageTypeNak:
		if e.state != 2 {
			return
		}
		g.naks++
		e.state = 3
	}
}

func (g *gen) report(w *os.File) {
	avg := func(sum int64, n uint64) float64 {
		if n == 0 {
			return 0
		}
		return float64(sum) / float64(n) / 1e6
	}
	fmt.Fprintf(w, "dhcpload: discovers=%d offers=%d requests=%d acks=%d naks=%d lat_do_ms=%.3f lat_ra_ms=%.3f nonunique=%d rcvbuf_drops=%d\n",
		g.discovers, g.offers, g.requests, g.acks, g.naks, avg(g.sumDO, g.offers), avg(g.sumRA, g.acks), g.nonunique, g.ovfl)
}
