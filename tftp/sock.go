package tftp

import (
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sock is a transfer's UDP socket: connected to the client, blocking, with
// SO_RCVTIMEO for the retransmission timeout when it waits in a blocking
// read, or registered with Go's network poller when it waits there.
//
// It waits for ACKs in one of two ways, chosen before each wait:
//
//   - Alone (no other transfer under way), in a blocking recv. A transfer
//     is a ping-pong of one ACK per window; through the poller every ACK
//     costs a failed recvfrom, a park, an epoll_wait and a second
//     recvfrom, which made the lock-step server cost about 1.5x
//     tftpd-hpa's CPU per MiB. A blocking recv costs one system call.
//   - With other transfers, through the poller. A goroutine blocked in a
//     system call keeps its P (GOMAXPROCS may be 1: a server pinned to one
//     core) until sysmon takes it back, at least 20 µs and up to 10 ms
//     later, and a thread whose ACK came in while another holds the P
//     queues its goroutine and sleeps on a futex: many blocking transfers
//     spend their time handing the P around. Through the poller one
//     thread runs every transfer whose ACK is in, and a recvfrom tried
//     before parking usually finds the ACK already there.
//
// The descriptor stays in blocking mode in both: reads through the poller
// and every send use MSG_DONTWAIT.
//
// shutdown may be called from another goroutine to wake a waiting read;
// close must be called once, by the owner.
type sock struct {
	fd int

	mu     sync.Mutex
	closed bool
	down   bool

	timeo time.Duration // SO_RCVTIMEO currently set

	// file is set once the socket is registered with the poller; it owns
	// fd from then on. rc is its RawConn and deadline the read deadline
	// last set on it.
	file     *os.File
	rc       syscall.RawConn
	deadline time.Time
}

// openSock creates the socket bound to local (port 0: a new transfer ID)
// and connected to remote, so that the kernel drops other senders.
func openSock(local netip.Addr, remote netip.AddrPort) (*sock, error) {
	if !remote.Addr().Is4() {
		return nil, fmt.Errorf("client %v is not IPv4", remote)
	}
	fd, err := unix.Socket(unix.AF_INET, unix.SOCK_DGRAM|unix.SOCK_CLOEXEC, 0)
	if err != nil {
		return nil, fmt.Errorf("socket: %w", err)
	}
	la := &unix.SockaddrInet4{}
	if local.Is4() && !local.IsUnspecified() {
		la.Addr = local.As4()
	}
	if err := unix.Bind(fd, la); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("bind %v: %w", local, err)
	}
	if err := unix.Connect(fd, &unix.SockaddrInet4{Addr: remote.Addr().As4(), Port: int(remote.Port())}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("connect %v: %w", remote, err)
	}
	return &sock{fd: fd}, nil
}

// localAddr returns the bound address and port.
func (s *sock) localAddr() netip.AddrPort {
	sa, err := unix.Getsockname(s.fd)
	if err != nil {
		return netip.AddrPort{}
	}
	if a, ok := sa.(*unix.SockaddrInet4); ok {
		return netip.AddrPortFrom(netip.AddrFrom4(a.Addr), uint16(a.Port))
	}
	return netip.AddrPort{}
}

// write sends one datagram.
func (s *sock) write(b []byte) error {
	var iov unix.Iovec
	if len(b) > 0 {
		iov.Base = &b[0]
	}
	iov.SetLen(len(b))
	var m [1]unix.Mmsghdr
	m[0].Hdr.Iov = &iov
	m[0].Hdr.SetIovlen(1)
	return s.writeBatch(m[:])
}

// writeBatch sends one datagram per message with sendmmsg, so that a
// window costs one system call instead of one per block. The raw call
// (no scheduler bookkeeping) never blocks: MSG_DONTWAIT. When the send
// buffer is full the rest waits for room, through the poller when the
// socket is registered with it, else in a blocking call. The caller keeps
// msgs and the memory they point to alive until it returns.
func (s *sock) writeBatch(msgs []unix.Mmsghdr) error {
	for len(msgs) > 0 {
		r, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(&msgs[0])), uintptr(len(msgs)), unix.MSG_DONTWAIT, 0, 0)
		var err error
		switch {
		case e == 0:
			msgs = msgs[int(r):]
			continue
		case e == unix.EAGAIN:
			err = s.waitWritable(&msgs[0])
			if err == nil {
				msgs = msgs[1:]
				continue
			}
		case e == unix.EINTR:
			continue
		default:
			err = e
		}
		if s.isDown() {
			return net.ErrClosed
		}
		return err
	}
	return nil
}

// waitWritable sends the message m once the send buffer has room.
func (s *sock) waitWritable(m *unix.Mmsghdr) error {
	if s.rc == nil {
		_, _, e := unix.Syscall6(unix.SYS_SENDMMSG, uintptr(s.fd), uintptr(unsafe.Pointer(m)), 1, 0, 0, 0)
		if e != 0 {
			return e
		}
		return nil
	}
	var serr error
	err := s.rc.Write(func(fd uintptr) bool {
		_, _, e := unix.RawSyscall6(unix.SYS_SENDMMSG, fd, uintptr(unsafe.Pointer(m)), 1, unix.MSG_DONTWAIT, 0, 0)
		if e == unix.EAGAIN {
			return false
		}
		if e != 0 {
			serr = e
		}
		return true
	})
	if err != nil {
		return err
	}
	return serr
}

// read receives one datagram, waiting until deadline at most (timeout
// from now: the caller passes both so that neither is recomputed per
// packet). With alone set it waits in a blocking recv for timeout,
// otherwise through the poller until deadline. A datagram it received is
// returned even when the caller's deadline has passed by then. It returns
// os.ErrDeadlineExceeded when none came,
// net.ErrClosed after shutdown, and unix.ECONNREFUSED when an ICMP error
// said the client's port is gone.
func (s *sock) read(b []byte, timeout time.Duration, deadline time.Time, alone bool) (int, error) {
	if !alone {
		return s.pollRead(b, deadline)
	}
	timeout = max(timeout, time.Millisecond)
	if timeout != s.timeo {
		tv := unix.NsecToTimeval(timeout.Nanoseconds())
		if err := unix.SetsockoptTimeval(s.fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
			return 0, fmt.Errorf("SO_RCVTIMEO: %w", err)
		}
		s.timeo = timeout
	}
	for {
		n, err := unix.Read(s.fd, b)
		switch {
		case err == unix.EINTR:
			continue
		case err == unix.EAGAIN:
			return 0, os.ErrDeadlineExceeded
		}
		return s.readResult(n, err)
	}
}

func (s *sock) readResult(n int, err error) (int, error) {
	switch {
	case err != nil:
		if s.isDown() {
			return 0, net.ErrClosed
		}
		return 0, err
	case n == 0 && s.isDown():
		return 0, net.ErrClosed
	}
	return n, nil
}

// pollRead tries a non-blocking recv, and parks in the poller when no
// datagram is there.
func (s *sock) pollRead(b []byte, deadline time.Time) (int, error) {
	n, err := recvDontwait(s.fd, b)
	if err != unix.EAGAIN || s.isDown() {
		return s.readResult(n, err)
	}
	if s.rc == nil {
		if err := s.register(); err != nil {
			return 0, err
		}
	}
	if !deadline.Equal(s.deadline) {
		if err := s.file.SetReadDeadline(deadline); err != nil {
			return 0, err
		}
		s.deadline = deadline
	}
	rerr := s.rc.Read(func(fd uintptr) bool {
		n, err = recvDontwait(int(fd), b)
		// A non-blocking recv on a UDP socket that was shut down still
		// says EAGAIN (only a blocking one returns 0): the wake-up that
		// shutdown sends the poller must end the wait here.
		return err != unix.EAGAIN || s.isDown()
	})
	if rerr != nil {
		if s.isDown() {
			return 0, net.ErrClosed
		}
		if errors.Is(rerr, os.ErrDeadlineExceeded) {
			// The scheduler runs expired timers before it asks epoll for
			// ready descriptors, so the deadline can end the wait although
			// a datagram came in before it (up to sysmon's 10 ms poll
			// interval earlier on a busy server, more under load): look
			// once more before reporting the timeout.
			return s.readQueued(b)
		}
		return 0, rerr // the file was closed
	}
	return s.readResult(n, err)
}

// readQueued returns a datagram already in the receive queue without
// waiting, or os.ErrDeadlineExceeded when the queue is empty.
func (s *sock) readQueued(b []byte) (int, error) {
	n, err := recvDontwait(s.fd, b)
	if err == unix.EAGAIN && !s.isDown() {
		return 0, os.ErrDeadlineExceeded
	}
	return s.readResult(n, err)
}

func recvDontwait(fd int, b []byte) (int, error) {
	for {
		var p unsafe.Pointer
		if len(b) > 0 {
			p = unsafe.Pointer(&b[0])
		}
		r, _, e := unix.RawSyscall6(unix.SYS_RECVFROM, uintptr(fd), uintptr(p), uintptr(len(b)), unix.MSG_DONTWAIT, 0, 0)
		switch e {
		case 0:
			return int(r), nil
		case unix.EINTR:
			continue
		}
		return 0, e
	}
}

// register hands the descriptor to the poller: os.NewFile registers a
// non-blocking descriptor, which is then put back in blocking mode for the
// blocking reads (the poller only needs readiness events; its reads and
// writes here use MSG_DONTWAIT).
func (s *sock) register() error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.down {
		return net.ErrClosed
	}
	if err := unix.SetNonblock(s.fd, true); err != nil {
		return fmt.Errorf("register with poller: %w", err)
	}
	f := os.NewFile(uintptr(s.fd), "tftp-transfer")
	rc, err := f.SyscallConn()
	if err == nil {
		err = unix.SetNonblock(s.fd, false)
	}
	if err != nil {
		// f owns the descriptor now; close releases it.
		s.file = f
		return fmt.Errorf("register with poller: %w", err)
	}
	s.file, s.rc = f, rc
	return nil
}

// pathBlockLimit is the largest block that fits the path MTU of the
// connected socket: IP_MTU minus IPv4 (20), UDP (8) and TFTP (4) headers.
// Without it, 1468 (Ethernet).
func (s *sock) pathBlockLimit() int {
	mtu, err := unix.GetsockoptInt(s.fd, unix.IPPROTO_IP, unix.IP_MTU)
	if err != nil || mtu < 68 {
		return fallbackBlockSize
	}
	return min(max(mtu-32, minBlockSize), maxBlockSize)
}

func (s *sock) isDown() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.down
}

// shutdown wakes a waiting read (a blocking recv returns 0, the poller
// sees the socket readable) and makes later reads and writes fail with
// net.ErrClosed. It is safe to call concurrently with read and close.
func (s *sock) shutdown() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed || s.down {
		return
	}
	s.down = true
	_ = unix.Shutdown(s.fd, unix.SHUT_RDWR)
}

// close releases the descriptor.
func (s *sock) close() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	s.closed = true
	if s.file != nil {
		s.file.Close()
	} else {
		unix.Close(s.fd)
	}
}
