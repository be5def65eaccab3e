package tftp

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"

	"github.com/ironcast/ironcast/bootfs"
	"github.com/ironcast/ironcast/model"
)

// Transfer outcomes reported to OnTransfer (wrapped with context).
var (
	// ErrTimeout means the client stopped answering: every retransmission
	// went unacknowledged.
	ErrTimeout = errors.New("tftp: client timed out")
	// ErrAborted means the client sent an error packet, its port became
	// unreachable, or the server shut down.
	ErrAborted = errors.New("tftp: transfer aborted")
	// ErrUnacknowledged means every block but the last was acknowledged
	// and the last was sent, but its ACK never came: the client went quiet
	// or closed its port. The file was most likely delivered (boot
	// loaders such as GRUB do not dally after the final ACK, so one lost
	// ACK ends like this) but the server cannot confirm it. It wraps the
	// ErrTimeout, or the ErrAborted with ECONNREFUSED, that ended the
	// transfer; a client's ERROR packet stays an ErrAborted.
	ErrUnacknowledged = errors.New("tftp: last block sent, its ACK never came")
)

// maxNetascii bounds files sent in netascii mode, which are converted in
// memory. Boot loaders ask for octet; netascii is for people with tftp(1).
const maxNetascii = 16 << 20

// transfer serves one read request on its own socket. It always reports
// to the metrics and the observer, and leaves no goroutine or descriptor.
func (s *Server) transfer(ctx context.Context, req request, freq model.FileRequest) {
	start := time.Now()
	var sent int64
	var err error
	result := "ok"
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("tftp transfer panic: %v", r)
			result = "error"
			s.log.Error("tftp transfer panic", "path", freq.Path, "client", freq.Remote, "panic", r)
		}
		s.met.transfers.WithLabelValues(result).Inc()
		s.observe(freq, sent, time.Since(start), err)
	}()

	conn, err := s.dial(freq.Local.Addr(), freq.Remote)
	if err != nil {
		result = "error"
		s.log.Warn("tftp transfer socket", "path", freq.Path, "client", freq.Remote, "err", err)
		return
	}
	defer conn.close()
	stop := context.AfterFunc(ctx, conn.shutdown)
	defer stop()

	f, err := s.cfg.Source.Open(ctx, freq)
	if err != nil {
		code, msg := errNotDefined, "file unavailable"
		switch {
		case errors.Is(err, bootfs.ErrAccess):
			code, msg, result = errAccessViolation, "access violation", "access"
			s.log.Debug("tftp refused path", "path", freq.Path, "client", freq.Remote, "err", err)
		case errors.Is(err, bootfs.ErrNotFound):
			code, msg, result = errFileNotFound, "file not found", "not_found"
			s.log.Debug("tftp file not found", "path", freq.Path, "client", freq.Remote)
		default:
			result = "render_error"
			s.log.Warn("tftp file unavailable", "path", freq.Path, "client", freq.Remote, "err", err)
		}
		_ = conn.write(appendError(nil, code, msg))
		return
	}
	defer f.Close()

	var r io.ReaderAt = f
	size := f.Size()
	if req.mode == "netascii" {
		if size > maxNetascii {
			result, err = "error", fmt.Errorf("netascii transfer of %d bytes: too large", size)
			_ = conn.write(appendError(nil, errNotDefined, "file too large for netascii, use octet"))
			return
		}
		raw := make([]byte, size)
		if _, err = f.ReadAt(raw, 0); err != nil && !errors.Is(err, io.EOF) {
			result = "error"
			_ = conn.write(appendError(nil, errNotDefined, "read error"))
			return
		}
		conv := toNetascii(raw)
		r, size = bytes.NewReader(conv), int64(len(conv))
	}

	p := negotiate(req.opts, limits{maxBlockSize: min(s.cfg.MaxBlockSize, conn.pathBlockLimit()), maxWindowSize: s.cfg.MaxWindowSize})
	// The first retransmission comes after Config.Timeout, or the
	// client's timeout option if shorter (rto). After three quick tries the
	// server waits a ceiling of at least backoffFloor (and twice the
	// client's timeout), so that a client waiting for its own timer gets a
	// quiet gap and re-acknowledges: atftp, after a lost ACK, ignores
	// resent windows and repeats its ACK only after about 3 s of silence,
	// whatever timeout it negotiated.
	rto := s.cfg.Timeout
	ceiling := max(16*rto, backoffFloor)
	if p.timeoutSec > 0 {
		ct := time.Duration(p.timeoutSec) * time.Second
		rto = min(rto, ct)
		ceiling = max(ceiling, 2*ct+rto)
	}
	b := bufPool.Get().(*buffers)
	defer bufPool.Put(b)
	snd := &sender{
		conn:    conn,
		active:  &s.active,
		r:       r,
		size:    size,
		blk:     p.blockSize,
		ws:      p.windowSize,
		rto:     rto,
		ceiling: ceiling,
		retries: s.cfg.Retries,
		cache:   b.cache[:p.blockSize*max(1, len(b.cache)/p.blockSize)],
		in:      b.in[:],
		b:       b,
	}
	if len(p.acked) > 0 {
		err = snd.oack(appendOACK(nil, p, size))
	}
	if err == nil {
		err = snd.run()
	}
	sent = snd.sent
	if err != nil {
		switch {
		case errors.Is(err, ErrUnacknowledged):
			result = "unacknowledged"
		case errors.Is(err, ErrTimeout):
			result = "timeout"
		case errors.Is(err, ErrAborted), ctx.Err() != nil:
			result = "aborted"
		default:
			result = "error"
			_ = conn.write(appendError(nil, errNotDefined, "read error"))
		}
		s.log.Debug("tftp transfer failed", "path", freq.Path, "client", freq.Remote, "bytes", sent, "err", err)
	}
	s.met.bytes.Add(float64(sent))
}

// sender runs the data phase of one transfer.
//
// Blocks are numbered from 1 in an int64; the wire carries the low 16
// bits, so block 65536 goes out as 0 (the rollover tftpd-hpa, atftp and
// iPXE implement). With windowsize W (RFC 7440) up to W blocks are sent
// before waiting; an ACK of block k means every block up to k arrived, and
// sending restarts at k+1. W=1 is RFC 1350 lock-step.
type sender struct {
	conn    *sock
	active  *atomic.Int64 // transfers under way, this one included
	r       io.ReaderAt
	size    int64
	blk     int
	ws      int
	rto     time.Duration // first retransmission timeout
	ceiling time.Duration // backoff limit
	retries int
	// cache holds file bytes [cacheOff, cacheOff+cacheLen), a whole
	// number of blocks (about 64 KiB) read ahead. Queued DATA packets
	// point into it until flush.
	cache    []byte
	cacheOff int64
	cacheLen int
	in       []byte   // receive buffer
	b        *buffers // cache, in and the send batch
	queued   int      // packets in the batch
	sent     int64    // distinct file bytes sent (retransmissions not counted)
	high     int64    // highest block sent so far
	qSent    int64    // sent and high once the batch is flushed
	qHigh    int64
	acked    int64 // highest block acknowledged
}

// batchMax is the most DATA packets sent with one sendmmsg.
const batchMax = 64

// buffers are a transfer's working memory, reused through bufPool: many
// short transfers (firmware fetching a boot program and a few small
// files) would otherwise allocate and zero 64 KiB each.
type buffers struct {
	cache [65536]byte
	in    [1024]byte
	hdr   [batchMax][4]byte
	iov   [2 * batchMax]unix.Iovec
	msgs  [batchMax]unix.Mmsghdr
}

var bufPool = sync.Pool{New: func() any { return new(buffers) }}

// backoffFloor is the least ceiling of the retransmission backoff.
const backoffFloor = 6 * time.Second

// oackPatience is the least time to wait for ACK 0 before resending the
// OACK. atftp aborts on a second OACK ("unexpected OACK"), and every client
// recovers by itself within its own timeout (atftp 5 s, PXE ROMs about 4
// s): a lost OACK makes it resend the RRQ (a fresh transfer), a lost ACK 0
// makes it resend the ACK. Resending the OACK quickly would only turn a
// lost ACK into a failed boot.
const oackPatience = 6 * time.Second

// oack sends the option acknowledgement and waits for ACK 0.
func (s *sender) oack(pkt []byte) error {
	wait := max(s.rto, oackPatience)
	for try := 0; try <= s.retries; try++ {
		if err := s.write(pkt); err != nil {
			return fmt.Errorf("send oack: %w", err)
		}
		deadline := time.Now().Add(wait)
		for left := wait; ; {
			block, isAck, err := s.recv(left, deadline)
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				return err
			}
			if err == nil && isAck && block == 0 {
				return nil
			}
			// Anything else is ignored until the deadline.
			if left = time.Until(deadline); err != nil || left <= 0 {
				break
			}
		}
		wait = s.rto
	}
	return fmt.Errorf("oack: %w", ErrTimeout)
}

// write sends one packet. Only errors that mean the client or the socket
// is gone end the transfer; a packet the local stack refused (ENOBUFS, a
// firewall's EPERM) counts as lost and is retransmitted like one.
func (s *sender) write(pkt []byte) error {
	err := s.conn.write(pkt)
	if err == nil || !(errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, net.ErrClosed)) {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrAborted, err)
}

// recv reads one packet, waiting at most wait and not past deadline when
// waiting through the poller (in a blocking read, wait bounds the wait).
// It returns the ACK's block number, or isAck=false for a packet to
// ignore; an ERROR packet from the client or a socket error ends the
// transfer. A packet that was read is always returned, even when the
// goroutine got to it after the deadline: dropping it would lose an ACK
// the client sent in time (a late final ACK left a lock-step transfer
// retransmitting to a client that had already booted). Callers decide
// what an ignored packet past the deadline means. Callers pass the same
// wait for the first read of a window, so that the socket timeout is set
// once per window, not per packet.
func (s *sender) recv(wait time.Duration, deadline time.Time) (block uint16, isAck bool, err error) {
	n, err := s.conn.read(s.in, wait, deadline, s.active.Load() <= 1)
	if err != nil {
		if errors.Is(err, os.ErrDeadlineExceeded) {
			return 0, false, err
		}
		// ECONNREFUSED: the client's port is gone (ICMP port unreachable).
		return 0, false, fmt.Errorf("%w: %w", ErrAborted, err)
	}
	return s.parse(n)
}

// parse classifies the packet in s.in[:n] as recv does.
func (s *sender) parse(n int) (block uint16, isAck bool, err error) {
	block, ok, isErr := parseAck(s.in[:n])
	if isErr {
		code := binary.BigEndian.Uint16(s.in[2:4])
		msg := string(bytes.TrimRight(s.in[4:n], "\x00"))
		return 0, false, fmt.Errorf("%w: client error %d %q", ErrAborted, code, msg)
	}
	return block, ok, nil
}

// queuedAck reports whether the datagrams already queued on the socket
// hold an ACK of block want. Linux reports a pending ICMP error before
// queued datagrams, so a client that acknowledged the last block and
// closed its port while a retransmission of that block was on its way
// shows up as ECONNREFUSED with its ACK still in the queue.
func (s *sender) queuedAck(want uint16) bool {
	for range 64 { // what a receive buffer holds, not a flood
		n, err := s.conn.readQueued(s.in)
		if err != nil {
			return false
		}
		if block, isAck, err := s.parse(n); err == nil && isAck && block == want {
			return true
		}
	}
	return false
}

// queue adds block i (1-based) to the batch of DATA packets, which is
// sent when it is full, when the read-ahead cache must be refilled (the
// queued packets point into it) and by flush.
func (s *sender) queue(i int64) error {
	off := (i - 1) * int64(s.blk)
	n := int(min(int64(s.blk), s.size-off))
	if n > 0 && (off < s.cacheOff || off+int64(n) > s.cacheOff+int64(s.cacheLen)) {
		if err := s.flush(); err != nil {
			return err
		}
		// Read ahead: one pread fills about 64 KiB of blocks, where a
		// read per block would cost a system call per packet.
		want := int(min(int64(len(s.cache)), s.size-off))
		m, err := s.r.ReadAt(s.cache[:want], off)
		if m < n {
			s.cacheLen = 0
			return fmt.Errorf("read block %d at %d: %d of %d bytes: %w", i, off, m, n, err)
		}
		s.cacheOff, s.cacheLen = off, m
	}
	k := s.queued
	h := &s.b.hdr[k]
	binary.BigEndian.PutUint16(h[0:2], opDATA)
	binary.BigEndian.PutUint16(h[2:4], uint16(i))
	iov := s.b.iov[2*k : 2*k+2]
	iov[0].Base = &h[0]
	iov[0].SetLen(4)
	iovlen := 1
	if n > 0 {
		iov[1].Base = &s.cache[off-s.cacheOff]
		iov[1].SetLen(n)
		iovlen = 2
	}
	m := &s.b.msgs[k]
	*m = unix.Mmsghdr{}
	m.Hdr.Iov = &iov[0]
	m.Hdr.SetIovlen(iovlen)
	s.queued++
	if i > s.qHigh {
		s.qHigh = i
		s.qSent += int64(n)
	}
	if s.queued == batchMax {
		return s.flush()
	}
	return nil
}

// flush sends the queued DATA packets.
func (s *sender) flush() error {
	if s.queued == 0 {
		return nil
	}
	err := s.conn.writeBatch(s.b.msgs[:s.queued])
	s.queued = 0
	if err == nil || !(errors.Is(err, unix.ECONNREFUSED) || errors.Is(err, net.ErrClosed)) {
		// As in write: a packet the local stack refused counts as lost.
		s.sent, s.high = s.qSent, s.qHigh
		return nil
	}
	s.qSent, s.qHigh = s.sent, s.high
	return fmt.Errorf("send blocks to %d: %w: %w", s.qHigh, ErrAborted, err)
}

// run sends every block and returns when the last one is acknowledged.
// When everything but the last block was acknowledged, a transfer that
// then fails ends with ErrUnacknowledged wrapping the reason.
func (s *sender) run() error {
	err := s.send()
	if err != nil && s.high == s.last() && s.acked == s.last()-1 && (errors.Is(err, ErrTimeout) || errors.Is(err, unix.ECONNREFUSED)) {
		return fmt.Errorf("%w: %w", ErrUnacknowledged, err)
	}
	return err
}

// last is the number of the last block, which is short, maybe empty.
func (s *sender) last() int64 { return s.size/int64(s.blk) + 1 }

// send is run without the classification of the end.
func (s *sender) send() error {
	last := s.last()
	base := int64(1) // first unacknowledged block
	tries := 0
	// dupResend allows one window resend on a duplicate ACK per window
	// sent for progress or timeout: a lost first block in a window shows
	// up as a repeated ACK of the block before it, and waiting for the
	// timeout would stall the transfer. Lock-step never resends on a
	// duplicate ACK (the Sorcerer's Apprentice bug, RFC 1123 4.2.3.1).
	dupResend := true
	for {
		end := min(base+int64(s.ws)-1, last)
		for i := base; i <= end; i++ {
			if err := s.queue(i); err != nil {
				return err
			}
		}
		if err := s.flush(); err != nil {
			if end == last && errors.Is(err, unix.ECONNREFUSED) && s.queuedAck(uint16(last)) {
				return nil
			}
			return err
		}
		// Backoff on consecutive timeouts: three quick retransmissions
		// (rto, 2rto, 4rto) recover a lost tail of a window; after that
		// the server waits the whole ceiling, which leaves a client whose
		// ACK was lost a quiet gap longer than its own timeout, after which
		// it re-acknowledges. atftp ignores repeated
		// windows once it has sent one extra ACK, so resending at a fixed
		// pace would keep it silent until we give up.
		timeout := s.ceiling
		if tries < 3 {
			timeout = min(s.rto<<tries, s.ceiling)
		}
		deadline := time.Now().Add(timeout)
		left := timeout
	wait:
		for {
			block, isAck, err := s.recv(left, deadline)
			if err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
				if end == last && errors.Is(err, unix.ECONNREFUSED) && s.queuedAck(uint16(last)) {
					return nil
				}
				return err
			}
			if err == nil && isAck {
				// Map the 16-bit block number onto [base-1, end]: the
				// window is far smaller than 65536, so the distance is
				// unambiguous. Anything older than the window (a stale
				// duplicate) or bogus is ignored.
				if d := int64(block - uint16(base-1)); d <= end-(base-1) {
					k := base - 1 + d
					if k == last {
						return nil
					}
					if k >= base {
						base, tries, dupResend = k+1, 0, true
						s.acked = k
						break wait
					}
					// k == base-1: a duplicate ACK.
					if s.ws > 1 && dupResend {
						dupResend = false
						break wait
					}
				}
			}
			// Nothing to act on: wait for the rest of the timeout. Packets to
			// ignore that keep coming do not extend it.
			if left = time.Until(deadline); err == nil && left > 0 {
				continue
			}
			tries++
			if tries > s.retries {
				return fmt.Errorf("block %d: %w after %d retransmissions", base, ErrTimeout, s.retries)
			}
			dupResend = true
			break wait
		}
	}
}

// dial opens the transfer socket: a new port (the server's TID) on the
// local address the request reached, connected to the client so that the
// kernel filters other senders. In a foreign namespace it is created
// there.
func (s *Server) dial(local netip.Addr, remote netip.AddrPort) (*sock, error) {
	if s.netns == nil {
		return openSock(local, remote)
	}
	type result struct {
		c   *sock
		err error
	}
	ch := make(chan result, 1)
	go func() {
		// The thread is left locked so that it exits with the goroutine
		// instead of returning to the pool inside the other namespace.
		runtime.LockOSThread()
		if err := unix.Setns(int(s.netns.Fd()), unix.CLONE_NEWNET); err != nil {
			ch <- result{nil, fmt.Errorf("setns: %w", err)}
			return
		}
		c, err := openSock(local, remote)
		ch <- result{c, err}
	}()
	r := <-ch
	return r.c, r.err
}

// processNetns names the network namespace the process started in,
// read during package initialisation on the main thread. /proc/self/ns/net
// would not do: it follows the main thread, which Go keeps (wedged, not
// exited) when a goroutine that switched namespaces while locked to it
// ends.
var processNetns, _ = os.Readlink("/proc/thread-self/ns/net")

// foreignNetns returns the network namespace of the calling thread when it
// differs from the process's (a test or benchmark that opened the server
// inside a namespace), or nil.
func foreignNetns() (*os.File, error) {
	thread, err := os.Readlink("/proc/thread-self/ns/net")
	if err != nil || processNetns == "" || thread == processNetns {
		return nil, nil
	}
	f, err := os.Open("/proc/thread-self/ns/net")
	if err != nil {
		return nil, fmt.Errorf("open network namespace: %w", err)
	}
	return f, nil
}
