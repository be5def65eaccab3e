package dhcp

import (
	"bytes"
	"errors"
	"net"
	"net/netip"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestBatchWriter: one call sends each datagram to its own destination;
// a datagram the kernel refuses (here too big for UDP) gets its error and
// the ones after it are still sent.
func TestBatchWriter(t *testing.T) {
	var rx [2]*net.UDPConn
	var dst [2]netip.AddrPort
	for i := range rx {
		c, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
		rx[i], dst[i] = c, c.LocalAddr().(*net.UDPAddr).AddrPort()
	}
	tx, err := net.ListenUDP("udp4", net.UDPAddrFromAddrPort(netip.MustParseAddrPort("127.0.0.1:0")))
	if err != nil {
		t.Fatal(err)
	}
	defer tx.Close()
	rc, err := tx.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	w := newBatchWriter(rc)
	datas := [][]byte{[]byte("one"), make([]byte, 70000), []byte("two"), []byte("three")}
	dsts := []netip.AddrPort{dst[0], dst[1], dst[1], dst[0]}
	errs := make([]error, len(datas))
	if err := w.write(datas, dsts, errs); err != nil {
		t.Fatalf("write: %v", err)
	}
	for i, want := range []error{nil, unix.EMSGSIZE, nil, nil} {
		if !errors.Is(errs[i], want) && !(want == nil && errs[i] == nil) {
			t.Errorf("datagram %d: error %v, want %v", i, errs[i], want)
		}
	}
	for i, want := range [][]string{{"one", "three"}, {"two"}} {
		for _, w := range want {
			buf := make([]byte, 100)
			_ = rx[i].SetReadDeadline(time.Now().Add(5 * time.Second))
			n, from, err := rx[i].ReadFromUDPAddrPort(buf)
			if err != nil {
				t.Fatalf("receiver %d: %v, want %q", i, err, w)
			}
			if !bytes.Equal(buf[:n], []byte(w)) || from != tx.LocalAddr().(*net.UDPAddr).AddrPort() {
				t.Errorf("receiver %d got %q from %s, want %q from the writer", i, buf[:n], from, w)
			}
		}
	}
}
