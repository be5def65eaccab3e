package dhcp

import (
	"encoding/binary"
	"net/netip"
	"syscall"
	"unsafe"

	"golang.org/x/sys/unix"
)

// writeBatch is the most replies one sendmmsg(2) sends.
const writeBatch = 64

// batchWriter sends up to writeBatch datagrams per system call on a UDP
// socket, each to its own destination: the ACKs a lease commit releases
// together, or the OFFERs of one read batch, cost one system call instead
// of one each. Not safe for concurrent use.
type batchWriter struct {
	rc    syscall.RawConn
	msgs  [writeBatch]unix.Mmsghdr
	iovs  [writeBatch]unix.Iovec
	names [writeBatch]unix.RawSockaddrInet4
}

func newBatchWriter(rc syscall.RawConn) *batchWriter {
	w := &batchWriter{rc: rc}
	for i := range w.msgs {
		w.msgs[i].Hdr.Name = (*byte)(unsafe.Pointer(&w.names[i]))
		w.msgs[i].Hdr.Namelen = unix.SizeofSockaddrInet4
		w.msgs[i].Hdr.Iov = &w.iovs[i]
		w.msgs[i].Hdr.SetIovlen(1)
	}
	return w
}

// write sends datas[i] to dsts[i] (at most writeBatch, none empty) and
// sets errs[i] for each datagram the kernel refused; the others were
// sent. It waits in the poller while the send buffer is full. The error
// it returns means the socket is unusable (closed); errs then holds it
// for every datagram not sent.
func (w *batchWriter) write(datas [][]byte, dsts []netip.AddrPort, errs []error) error {
	k := min(len(datas), writeBatch)
	for i := range k {
		w.iovs[i].Base = &datas[i][0]
		w.iovs[i].SetLen(len(datas[i]))
		sa := &w.names[i]
		sa.Family = unix.AF_INET
		binary.BigEndian.PutUint16((*[2]byte)(unsafe.Pointer(&sa.Port))[:], dsts[i].Port())
		sa.Addr = dsts[i].Addr().Unmap().As4()
		w.msgs[i].Len = 0
		errs[i] = nil
	}
	next := 0
	err := w.rc.Write(func(fd uintptr) bool {
		for next < k {
			// Raw, as in batchReader.read: MSG_DONTWAIT never blocks.
			r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(&w.msgs[next])), uintptr(k-next), unix.MSG_DONTWAIT, 0, 0)
			switch e {
			case 0:
				next += int(r)
			case unix.EINTR:
			case unix.EAGAIN:
				return false // wait in the poller for room
			default:
				// The datagram at next was refused (sendmmsg reports an
				// error only when it is the first of the call): skip it.
				errs[next] = e
				next++
			}
		}
		return true
	})
	if err != nil {
		for i := next; i < k; i++ {
			errs[i] = err
		}
	}
	return err
}
