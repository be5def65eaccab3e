package tftp

import (
	"fmt"
	"net"
	"net/netip"
	"os"
	"sync"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sock is a transfer's UDP socket: blocking, connected to the client, with
// SO_RCVTIMEO for the retransmission timeout.
//
// It bypasses Go's network poller on purpose. A transfer is a ping-pong of
// one ACK per window; through the poller every ACK costs a failed
// recvfrom, a park, an epoll_wait and a second recvfrom, which made the
// lock-step server cost about 1.5x tftpd-hpa's CPU per MiB. A blocking
// recvfrom costs one system call; the runtime hands the goroutine's P to
// another thread while it blocks, so other transfers keep running. The
// price is one OS thread per transfer waiting for an ACK, bounded by
// Config.MaxTransfers.
//
// shutdown may be called from another goroutine to wake a blocked read;
// close must be called once, by the owner.
type sock struct {
	fd int

	mu     sync.Mutex
	closed bool
	down   bool

	timeo time.Duration // SO_RCVTIMEO currently set
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
	for {
		// MSG_DONTWAIT: a send that would block (a full send buffer) is
		// retried below as an ordinary blocking system call, so the raw
		// call (no scheduler bookkeeping per packet) never blocks.
		var p unsafe.Pointer
		if len(b) > 0 {
			p = unsafe.Pointer(&b[0])
		}
		_, _, e := unix.RawSyscall6(unix.SYS_SENDTO, uintptr(s.fd), uintptr(p), uintptr(len(b)), unix.MSG_DONTWAIT, 0, 0)
		var err error
		if e != 0 {
			err = e
		}
		if err == unix.EAGAIN {
			_, err = unix.Write(s.fd, b)
		}
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			if s.isDown() {
				return net.ErrClosed
			}
			return err
		}
		return nil
	}
}

// read receives one datagram, waiting at most timeout. It returns
// os.ErrDeadlineExceeded when none came, net.ErrClosed after shutdown,
// and unix.ECONNREFUSED when an ICMP error said the client's port is gone.
func (s *sock) read(b []byte, timeout time.Duration) (int, error) {
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

// shutdown wakes a blocked read and makes later reads and writes fail
// with net.ErrClosed. It is safe to call concurrently with read and close.
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
	if !s.closed {
		s.closed = true
		unix.Close(s.fd)
	}
}
