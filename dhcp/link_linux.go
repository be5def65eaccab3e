package dhcp

import (
	"encoding/binary"
	"fmt"
	"net/netip"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// link is one interface the server answers on.
type link struct {
	name  string
	index int
	addrs atomic.Pointer[[]netip.Prefix]
}

// prefixes returns the interface's IPv4 addresses, primary first. The
// slice is shared and must not be modified.
func (l *link) prefixes() []netip.Prefix {
	if p := l.addrs.Load(); p != nil {
		return *p
	}
	return nil
}

// addrSource reads interface addresses over a netlink socket opened when
// the server is created. The socket stays in the network namespace it was
// opened in, so the server keeps seeing its own namespace's addresses from
// any goroutine (tests create servers inside namespaces).
type addrSource struct {
	mu  sync.Mutex
	fd  int
	seq uint32
	buf []byte
}

func openAddrSource() (*addrSource, error) {
	fd, err := unix.Socket(unix.AF_NETLINK, unix.SOCK_RAW|unix.SOCK_CLOEXEC, unix.NETLINK_ROUTE)
	if err != nil {
		return nil, fmt.Errorf("netlink socket: %w", err)
	}
	if err := unix.Bind(fd, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink bind: %w", err)
	}
	tv := unix.NsecToTimeval(int64(2 * time.Second))
	if err := unix.SetsockoptTimeval(fd, unix.SOL_SOCKET, unix.SO_RCVTIMEO, &tv); err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("netlink timeout: %w", err)
	}
	return &addrSource{fd: fd, buf: make([]byte, 1<<16)}, nil
}

func (a *addrSource) Close() error { return unix.Close(a.fd) }

// dump returns the IPv4 addresses of every interface by index, in the
// kernel's order (primary addresses first).
func (a *addrSource) dump() (map[int][]netip.Prefix, error) {
	a.mu.Lock()
	defer a.mu.Unlock()
	a.seq++
	req := make([]byte, unix.NLMSG_HDRLEN+4)
	binary.NativeEndian.PutUint32(req[0:], uint32(unix.NLMSG_HDRLEN+1))
	binary.NativeEndian.PutUint16(req[4:], unix.RTM_GETADDR)
	binary.NativeEndian.PutUint16(req[6:], unix.NLM_F_REQUEST|unix.NLM_F_DUMP)
	binary.NativeEndian.PutUint32(req[8:], a.seq)
	req[unix.NLMSG_HDRLEN] = unix.AF_INET
	if err := unix.Sendto(a.fd, req, 0, &unix.SockaddrNetlink{Family: unix.AF_NETLINK}); err != nil {
		return nil, fmt.Errorf("netlink send: %w", err)
	}
	out := map[int][]netip.Prefix{}
	for {
		n, _, err := unix.Recvfrom(a.fd, a.buf, 0)
		if err != nil {
			return nil, fmt.Errorf("netlink receive: %w", err)
		}
		msgs, err := syscall.ParseNetlinkMessage(a.buf[:n])
		if err != nil {
			return nil, fmt.Errorf("netlink parse: %w", err)
		}
		for i := range msgs {
			m := &msgs[i]
			if m.Header.Seq != a.seq {
				continue
			}
			switch m.Header.Type {
			case unix.NLMSG_DONE:
				return out, nil
			case unix.NLMSG_ERROR:
				return nil, fmt.Errorf("netlink address dump refused")
			case unix.RTM_NEWADDR:
				if len(m.Data) < unix.SizeofIfAddrmsg {
					continue
				}
				bits := int(m.Data[1])
				index := int(binary.NativeEndian.Uint32(m.Data[4:8]))
				attrs, err := syscall.ParseNetlinkRouteAttr(m)
				if err != nil {
					continue
				}
				var addr, local netip.Addr
				for _, at := range attrs {
					if len(at.Value) != 4 {
						continue
					}
					switch at.Attr.Type {
					case unix.IFA_ADDRESS:
						addr = netip.AddrFrom4([4]byte(at.Value))
					case unix.IFA_LOCAL:
						local = netip.AddrFrom4([4]byte(at.Value))
					}
				}
				if local.IsValid() {
					addr = local
				}
				if addr.IsValid() {
					out[index] = append(out[index], netip.PrefixFrom(addr, bits))
				}
			}
		}
	}
}
