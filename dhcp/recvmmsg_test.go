package dhcp

import (
	"encoding/binary"
	"net"
	"net/netip"
	"testing"
	"time"
)

// TestBatchReader: receive delivers queued datagrams a whole batch per
// call of got, in order and with their source; it stops, returning nil,
// when got says so, leaving the rest queued for the next receive; and a
// datagram that arrives while it waits after a short read (it waits
// without first reading the empty queue) is delivered, not stranded.
func TestBatchReader(t *testing.T) {
	rx, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer rx.Close()
	if err := rx.SetReadBuffer(1 << 20); err != nil {
		t.Fatal(err)
	}
	// A bound on the whole test: a reader that strands a datagram fails
	// with the deadline instead of hanging.
	if err := rx.SetReadDeadline(time.Now().Add(20 * time.Second)); err != nil {
		t.Fatal(err)
	}
	tx, err := net.DialUDP("udp4", nil, rx.LocalAddr().(*net.UDPAddr))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	from := tx.LocalAddr().(*net.UDPAddr).AddrPort()
	send := func(i uint32) {
		var b [8]byte
		binary.BigEndian.PutUint32(b[:], i)
		if _, err := tx.Write(b[:]); err != nil {
			t.Error(err) // also from the late sender's goroutine
		}
	}
	const queued = 100
	for i := range uint32(queued) {
		send(i)
	}
	rc, err := rx.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	br := newBatchReader(rc)
	bufs := make([][]byte, readBatch)
	for i := range bufs {
		bufs[i] = make([]byte, 64)
	}
	sizes := make([]int, readBatch)
	srcs := make([]netip.AddrPort, readBatch)
	next := uint32(0)
	var batches []int
	// check verifies a batch: sizes, sources and the datagrams' order.
	check := func(n int) {
		t.Helper()
		batches = append(batches, n)
		for i := range n {
			if sizes[i] != 8 || srcs[i] != from {
				t.Fatalf("datagram %d: %d bytes from %s, want 8 from %s", next, sizes[i], srcs[i], from)
			}
			if got := binary.BigEndian.Uint32(bufs[i]); got != next {
				t.Fatalf("datagram %d, want %d", got, next)
			}
			next++
		}
	}

	// Two whole batches, then stop with the rest still queued.
	if err := br.receive(bufs, sizes, srcs, func(n int) bool { check(n); return len(batches) < 2 }); err != nil {
		t.Fatalf("receive: %v", err)
	}
	if len(batches) != 2 || batches[0] != readBatch || batches[1] != readBatch {
		t.Fatalf("batches %v, want two of %d", batches, readBatch)
	}
	// The rest, then two more sent while the reader waits after its
	// short reads.
	batches = nil
	sent := queued
	err = br.receive(bufs, sizes, srcs, func(n int) bool {
		check(n)
		if int(next) == sent && sent < queued+2 {
			go func(i uint32) { time.Sleep(50 * time.Millisecond); send(i) }(uint32(sent))
			sent++
		}
		return int(next) < queued+2
	})
	if err != nil {
		t.Fatalf("receive: %v (datagrams delivered: %d of %d)", err, next, queued+2)
	}
	if next != queued+2 {
		t.Fatalf("delivered %d datagrams, want %d", next, queued+2)
	}
	if last := batches[len(batches)-1]; last != 1 {
		t.Fatalf("batches %v: the last should hold the one late datagram", batches)
	}
}
