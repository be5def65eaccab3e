package dhcp

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
)

// pinger sends ICMP echo requests and reports, per probe, whether the
// address answered within the timeout. It never blocks its callers: a
// probe's result is delivered to a callback, from the reading goroutine
// (answered) or a timer (not answered). Safe for concurrent use.
type pinger struct {
	c  *net.IPConn
	id uint16

	mu   sync.Mutex
	seq  uint16
	wait map[uint16]*probe
}

type probe struct {
	addr  netip.Addr
	timer *time.Timer
	done  func(alive bool)
}

// openPinger opens a raw ICMP socket in the calling thread's network
// namespace. It needs CAP_NET_RAW, which a DHCP server (port 67, raw
// replies) has anyway.
func openPinger() (*pinger, error) {
	pc, err := net.ListenPacket("ip4:icmp", "0.0.0.0")
	if err != nil {
		return nil, fmt.Errorf("icmp socket for ping checks: %w", err)
	}
	return &pinger{c: pc.(*net.IPConn), id: uint16(os.Getpid()), wait: map[uint16]*probe{}}, nil
}

// probe sends one echo request to addr and calls done(true) when the
// reply arrives, or done(false) after timeout or when sending fails.
// done runs exactly once.
func (p *pinger) probe(addr netip.Addr, timeout time.Duration, done func(alive bool)) {
	p.mu.Lock()
	p.seq++
	seq := p.seq
	pr := &probe{addr: addr, done: done}
	p.wait[seq] = pr
	pr.timer = time.AfterFunc(timeout, func() { p.finish(seq, addr, false) })
	p.mu.Unlock()
	msg := echoRequest(p.id, seq)
	if _, err := p.c.WriteToIP(msg, &net.IPAddr{IP: net.IP(addr.AsSlice())}); err != nil {
		p.finish(seq, addr, false)
	}
}

// finish completes the probe seq of addr once.
func (p *pinger) finish(seq uint16, from netip.Addr, alive bool) {
	p.mu.Lock()
	pr := p.wait[seq]
	if pr == nil || pr.addr != from {
		p.mu.Unlock()
		return
	}
	delete(p.wait, seq)
	p.mu.Unlock()
	pr.timer.Stop()
	pr.done(alive)
}

// read delivers echo replies until the socket is closed.
func (p *pinger) read() {
	b := make([]byte, 1500)
	for {
		n, from, err := p.c.ReadFromIP(b)
		if err != nil {
			if errors.Is(err, net.ErrClosed) {
				return
			}
			continue
		}
		// The kernel strips the IPv4 header of raw ICMP sockets' reads.
		if n < 8 || b[0] != 0 || b[1] != 0 { // echo reply, code 0
			continue
		}
		if binary.BigEndian.Uint16(b[4:]) != p.id {
			continue
		}
		addr, ok := netip.AddrFromSlice(from.IP)
		if !ok {
			continue
		}
		p.finish(binary.BigEndian.Uint16(b[6:]), addr.Unmap(), true)
	}
}

func (p *pinger) close() error { return p.c.Close() }

// echoRequest builds an ICMP echo request (RFC 792) with a short payload.
func echoRequest(id, seq uint16) []byte {
	m := []byte{8, 0, 0, 0, 0, 0, 0, 0, 'i', 'r', 'o', 'n', 'c', 'a', 's', 't'}
	binary.BigEndian.PutUint16(m[4:], id)
	binary.BigEndian.PutUint16(m[6:], seq)
	binary.BigEndian.PutUint16(m[2:], checksum(m))
	return m
}

// checksum is the Internet checksum (RFC 1071).
func checksum(b []byte) uint16 {
	var s uint32
	for i := 0; i+1 < len(b); i += 2 {
		s += uint32(b[i])<<8 | uint32(b[i+1])
	}
	if len(b)%2 == 1 {
		s += uint32(b[len(b)-1]) << 8
	}
	for s>>16 != 0 {
		s = s&0xffff + s>>16
	}
	return ^uint16(s)
}
