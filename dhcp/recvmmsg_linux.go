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

// read fills sizes[i] and srcs[i] for the datagrams received into bufs
// (at most readBatch, none empty) and returns how many there were. It
// waits for the first one as a blocking read does, honouring the socket's
// read deadline; a datagram larger than its buffer is truncated.
func (r *batchReader) read(bufs [][]byte, sizes []int, srcs []netip.AddrPort) (int, error) {
	k := min(len(bufs), readBatch)
	for i := range k {
		r.iovs[i].Base = &bufs[i][0]
		r.iovs[i].SetLen(len(bufs[i]))
		r.msgs[i].hdr.Namelen = unix.SizeofSockaddrInet4
		r.msgs[i].hdr.Flags = 0
		r.msgs[i].n = 0
	}
	var n int
	var serr error
	err := r.rc.Read(func(fd uintptr) bool {
		for {
			// A raw system call: it never blocks (MSG_DONTWAIT), and
			// Syscall6's scheduler bookkeeping wakes the runtime's sysmon
			// thread whenever it sleeps, which at a few thousand packets a
			// second is after every idle gap: a thread wake-up and a train
			// of sysmon ticks per packet (about 30 % of the CPU per DORA at
			// 4,000/s; see test/bench/dhcp).
			v, _, e := unix.RawSyscall6(unix.SYS_RECVMMSG, fd, uintptr(unsafe.Pointer(&r.msgs[0])), uintptr(k), unix.MSG_DONTWAIT, 0, 0)
			switch e {
			case 0:
				n = int(v)
			case unix.EINTR:
				continue
			case unix.EAGAIN:
				return false // wait in the poller
			default:
				serr = e
			}
			return true
		}
	})
	if err != nil {
		return 0, err
	}
	if serr != nil {
		return 0, fmt.Errorf("recvmmsg: %w", serr)
	}
	for i := range n {
		sizes[i] = min(int(r.msgs[i].n), len(bufs[i]))
		sa := &r.names[i]
		port := binary.BigEndian.Uint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:])
		srcs[i] = netip.AddrPortFrom(netip.AddrFrom4(sa.Addr), port)
	}
	return n, nil
}
