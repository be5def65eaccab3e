package dhcp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// readBatch is the most packets one recvmmsg(2) takes.
const readBatch = 32

// mmsghdr is struct mmsghdr of recvmmsg(2) (x/sys/unix has no wrapper).
type mmsghdr struct {
	hdr unix.Msghdr
	n   uint32
	_   [4]byte
}

// batchReader reads up to readBatch datagrams per system call from a UDP
// socket: under load one recvmmsg replaces a recvfrom per packet and the
// poller round trip that follows each empty read. Not safe for
// concurrent use.
type batchReader struct {
	rc    syscall.RawConn
	msgs  [readBatch]mmsghdr
	iovs  [readBatch]unix.Iovec
	names [readBatch]unix.RawSockaddrInet4
}

func newBatchReader(rc syscall.RawConn) *batchReader {
	r := &batchReader{rc: rc}
	for i := range r.msgs {
		r.msgs[i].hdr.Name = (*byte)(unsafe.Pointer(&r.names[i]))
		r.msgs[i].hdr.Iov = &r.iovs[i]
		r.msgs[i].hdr.Iovlen = 1
	}
	return r
}

// receive reads datagrams into bufs until the socket is closed or its
// read deadline passes, and returns that error, or until got returns
// false, and returns nil. After each recvmmsg that returned datagrams it
// calls got with their number n: sizes[:n] and srcs[:n] are filled (none
// empty; a datagram larger than its buffer is truncated), and got must
// refill bufs[:n] before it returns. got runs in the poller's callback:
// it must not block. While full batches keep coming, receive reads on
// without a look at the deadline, so got is what stops it under a flood.
//
// A read that returns fewer than the batch emptied the socket's queue, so
// receive then waits in the poller at once, without the read that would
// only confirm the queue is empty (EAGAIN): one system call less per
// wake-up, which at low and moderate rates is once or twice per packet.
// Nothing is missed: the poller is edge-triggered and every datagram that
// arrives after the read signals it again, and the wait below is in the
// same RawRead, which resets the readiness only once, before the first
// read.
func (r *batchReader) receive(bufs [][]byte, sizes []int, srcs []netip.AddrPort, got func(n int) bool) error {
	k := min(len(bufs), readBatch)
	var serr error
	stopped := false
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			for i := range k {
				r.iovs[i].Base = &bufs[i][0]
				r.iovs[i].SetLen(len(bufs[i]))
				r.msgs[i].hdr.Namelen = unix.SizeofSockaddrInet4
				r.msgs[i].hdr.Flags = 0
				r.msgs[i].n = 0
			}
			// A raw system call: it never blocks (MSG_DONTWAIT), and
			// Syscall6's scheduler bookkeeping wakes the runtime's sysmon
			// thread whenever it sleeps, which at a few thousand packets a
			// second is after every idle gap: a thread wake-up and a train
			// of sysmon ticks per packet (about 30 % of the CPU per DORA at
			// 4,000/s; see test/bench/dhcp).
			v, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.msgs[0])), uintptr(k), unix.MSG_DONTWAIT, 0, 0)
			switch e {
			case 0:
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // wait in the poller
			default:
				serr = e
				return true
			}
			n := int(v)
			for i := range n {
				sizes[i] = min(int(r.msgs[i].n), len(bufs[i]))
				sa := &r.names[i]
				port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
				srcs[i] = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port)
			}
			if !got(n) {
				stopped = true
				return true
			}
			if n < k {
				return false // the queue is empty: wait for the next datagram
			}
		}
	})
	switch {
	case err != nil:
		return err
	case stopped:
		return nil
	}
	return fmt.Errorf("recvmmsg: %w", serr)
}
