package tftp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"sync/atomic"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestRecvPastDeadline: an ACK already in the socket when the sender gets
// to it after its deadline (a goroutine scheduled late on a busy server)
// is returned, not dropped as a timeout, both in a blocking read (alone)
// and through the poller (other transfers under way). Dropping it lost
// the final ACK of a lock-step transfer whose client then booted and
// never acknowledged again.
func TestRecvPastDeadline(t *testing.T) {
	for _, tc := range []struct {
		name   string
		active int64
	}{
		{"blocking", 1},
		{"poller", 2},
	} {
		t.Run(tc.name, func(t *testing.T) {
			client, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
			if err != nil {
				t.Fatal(err)
			}
			defer client.Close()
			conn, err := openSock(netip.MustParseAddr("127.0.0.1"), client.LocalAddr().(*net.UDPAddr).AddrPort())
			if err != nil {
				t.Fatal(err)
			}
			defer conn.close()
			var active atomic.Int64
			active.Store(tc.active)
			s := &sender{conn: conn, active: &active, in: make([]byte, 1024)}
			// A first read through the poller registers the socket; the
			// blocking case then reads the same registered descriptor.
			if tc.active > 1 {
				if _, _, err := s.recv(time.Millisecond, time.Now()); err == nil {
					t.Fatal("read a packet from an idle socket")
				}
				active.Store(1)
				if _, _, err := s.recv(time.Millisecond, time.Now()); err == nil {
					t.Fatal("read a packet from an idle socket")
				}
				active.Store(tc.active)
			}

			ack := binary.BigEndian.AppendUint16([]byte{0, 4}, 7)
			if _, err := client.WriteToUDPAddrPort(ack, conn.localAddr()); err != nil {
				t.Fatal(err)
			}
			// Wait (bounded) until the ACK is queued, without reading it.
			fds := []unix.PollFd{{Fd: int32(conn.fd), Events: unix.POLLIN}}
			if n, err := unix.Poll(fds, 10_000); n != 1 || err != nil {
				t.Fatalf("ACK never queued: poll %d %v", n, err)
			}
			block, isAck, err := s.recv(time.Second, time.Now().Add(-time.Second))
			if err != nil || !isAck || block != 7 {
				t.Errorf("recv past the deadline = block %d, ack %v, err %v; want the queued ACK 7", block, isAck, err)
			}
		})
	}
}
