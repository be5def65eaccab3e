package dhcp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"time"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/ironcast/ironcast/model"
)

// Drop reasons, the values of the dropped counter's "reason" label.
const (
	dropMalformed     = "malformed"
	dropOversized     = "oversized"
	dropWrongOp       = "wrong_op"
	dropWrongType     = "wrong_type"
	dropContradictory = "contradictory"
	dropNoSubnet      = "no_subnet"
	dropNotReserved   = "not_reserved"
	dropExhausted     = "exhausted"
	dropNotOurs       = "not_ours"
	dropNotPXE        = "not_pxe"
	dropLeaseError    = "lease_error"
	dropQueueFull     = "queue_full"
	dropPanic         = "panic"
	dropSendError     = "send_error"
	dropInUse         = "in_use"
)

var errMalformed = errors.New("malformed packet")

// dropError is a request dropped without a reply, with the reason label.
type dropError struct {
	reason string
	err    error
}

func (e *dropError) Error() string { return e.reason + ": " + e.err.Error() }
func (e *dropError) Unwrap() error { return e.err }

func drop(reason string, format string, args ...any) error {
	return &dropError{reason: reason, err: fmt.Errorf(format, args...)}
}

// maxPacket is the largest request accepted: a full Ethernet frame's UDP
// payload. Anything bigger is not from a sane DHCP client or relay.
const maxPacket = 1500 - 20 - 8

const (
	serverPort = 67
	clientPort = 68
	pxePort    = 4011
)

// inbound says where a packet came from.
type inbound struct {
	link *link
	// port is the local port it arrived on (67 or 4011).
	port int
	src  netip.AddrPort
}

// result is what the handler asks the server to do.
type result struct {
	data []byte
	dst  netip.AddrPort
	// bound is set when the reply binds a new lease (Config.OnBound).
	bound *model.Lease
	// commit, if set, must report the lease durable before the reply is
	// sent (Decision.Commit).
	commit func(done func(error))
	// ev is published once the reply is sent.
	ev *model.Event
	// typ is the reply's message type, for the sent counter.
	typ dhcpv4.MessageType
	// probe, if valid, is to be pinged before the OFFER leaves
	// (Decision.Probe); mac is the client's.
	probe netip.Addr
	mac   string
}

// handler turns one request into at most one reply. It holds no socket,
// so tests and FuzzHandler drive it directly.
type handler struct {
	leases   Leases
	booter   Booter
	notifier Notifier
	log      *slog.Logger
	m        *metrics
	// ours reports whether an address is one of this server's (option 54).
	ours func(netip.Addr) bool
}

// handle parses, classifies and decides. A nil result with a nil error
// means no reply is due (RELEASE, DECLINE).
func (h *handler) handle(ctx context.Context, b []byte, in inbound) (*result, error) {
	if len(b) > maxPacket {
		return nil, drop(dropOversized, "%d bytes", len(b))
	}
	req, err := parse(b)
	if err != nil {
		return nil, drop(dropMalformed, "parse: %w", err)
	}
	if req.OpCode != dhcpv4.OpcodeBootRequest {
		return nil, drop(dropWrongOp, "op code %d", req.OpCode)
	}
	if len(req.ClientHWAddr) != 6 {
		return nil, drop(dropMalformed, "hardware address length %d", len(req.ClientHWAddr))
	}
	mt := req.Options[dhcpv4.OptionDHCPMessageType.Code()]
	if len(mt) != 1 {
		return nil, drop(dropMalformed, "message type option length %d (BOOTP is not served)", len(mt))
	}
	typ := dhcpv4.MessageType(mt[0])
	h.m.received(typ)
	for _, code := range []uint8{50, 54} {
		if v, ok := req.Options[code]; ok && len(v) != 4 {
			return nil, drop(dropMalformed, "option %d length %d", code, len(v))
		}
	}
	c, err := classify(req)
	if err != nil {
		if errors.Is(err, errContradictory) {
			return nil, &dropError{dropContradictory, err}
		}
		return nil, &dropError{dropMalformed, err}
	}
	lr := h.leaseRequest(req, in)
	if in.port == pxePort {
		return h.pxeBootServer(ctx, req, typ, c, lr, in)
	}
	switch typ {
	case dhcpv4.MessageTypeDiscover:
		d, err := h.leases.Discover(ctx, lr)
		if err != nil {
			return nil, leaseDrop(err)
		}
		return h.offerOrAck(ctx, req, dhcpv4.MessageTypeOffer, d, c, lr, in)
	case dhcpv4.MessageTypeRequest:
		d, err := h.leases.Request(ctx, lr)
		if err != nil {
			return nil, leaseDrop(err)
		}
		switch d.Action {
		case ActionAck:
			return h.offerOrAck(ctx, req, dhcpv4.MessageTypeAck, d, c, lr, in)
		case ActionNak:
			return h.nak(req, d, lr, in)
		}
		return nil, drop(dropNotOurs, "no decision")
	case dhcpv4.MessageTypeRelease:
		if err := h.leases.Release(ctx, lr); err != nil {
			return nil, leaseDrop(err)
		}
		h.publish("dhcp.release", lr.ClientAddr, lr, nil)
		return nil, nil
	case dhcpv4.MessageTypeDecline:
		if err := h.leases.Decline(ctx, lr); err != nil {
			return nil, leaseDrop(err)
		}
		h.publish("dhcp.decline", lr.Requested, lr, nil)
		return nil, nil
	case dhcpv4.MessageTypeInform:
		d, err := h.leases.Inform(ctx, lr)
		if err != nil {
			return nil, leaseDrop(err)
		}
		d.Addr = netip.Addr{}
		d.LeaseTime = 0
		return h.offerOrAck(ctx, req, dhcpv4.MessageTypeAck, d, c, lr, in)
	}
	return nil, drop(dropWrongType, "message type %s", typ)
}

// leaseDrop maps a Leases error to a drop reason.
func leaseDrop(err error) error {
	for _, e := range []struct {
		err    error
		reason string
	}{{ErrNoSubnet, dropNoSubnet}, {ErrNotReserved, dropNotReserved}, {ErrExhausted, dropExhausted}, {ErrNotOurs, dropNotOurs}} {
		if errors.Is(err, e.err) {
			return &dropError{e.reason, err}
		}
	}
	return &dropError{dropLeaseError, err}
}

func (h *handler) leaseRequest(req *dhcpv4.DHCPv4, in inbound) *LeaseRequest {
	lr := &LeaseRequest{
		MAC:       macString(req.ClientHWAddr),
		Hostname:  string(req.Options[dhcpv4.OptionHostName.Code()]),
		Interface: in.link.name,
	}
	lr.Requested = addr4(req.Options[dhcpv4.OptionRequestedIPAddress.Code()])
	lr.ServerID = addr4(req.Options[dhcpv4.OptionServerIdentifier.Code()])
	lr.ClientAddr = addr4(req.ClientIPAddr)
	lr.Relay = addr4(req.GatewayIPAddr)
	if lr.ServerID.IsValid() && h.ours != nil && !h.ours(lr.ServerID) {
		lr.OtherServer = true
	}
	if lr.Relay.IsValid() {
		lr.Links = []netip.Addr{lr.Relay}
	} else {
		for _, p := range in.link.prefixes() {
			lr.Links = append(lr.Links, p.Addr())
		}
	}
	return lr
}

// addr4 converts a 4-byte address; anything else (including 0.0.0.0) is
// the zero Addr.
func addr4(b []byte) netip.Addr {
	if len(b) == 16 {
		b = net.IP(b).To4()
	}
	if len(b) != 4 {
		return netip.Addr{}
	}
	a := netip.AddrFrom4([4]byte(b))
	if a.IsUnspecified() {
		return netip.Addr{}
	}
	return a
}

// serverAddr picks our address for the reply: the interface address inside
// the subnet, else the interface's first address.
func serverAddr(l *link, s *model.Subnet) netip.Addr {
	ps := l.prefixes()
	if s != nil {
		if sp, err := netip.ParsePrefix(s.Subnet); err == nil {
			for _, p := range ps {
				if sp.Contains(p.Addr()) {
					return p.Addr()
				}
			}
		}
	}
	if len(ps) > 0 {
		return ps[0].Addr()
	}
	return netip.Addr{}
}

// replyPool recycles replies between packets: a reply is dead once
// encoded, and its options map was the largest allocation per packet
// (about a third of the garbage per DORA, and the collector's work with
// it).
var replyPool = sync.Pool{New: func() any {
	// Sized for a typical reply's options, so that it never grows.
	return &dhcpv4.DHCPv4{Options: make(dhcpv4.Options, 16)}
}}

// encodeReply returns r's wire form and gives r back to replyPool; r and
// its options must not be used after.
func encodeReply(r *dhcpv4.DHCPv4) []byte {
	b := encode(r)
	replyPool.Put(r)
	return b
}

// newReply starts a reply as RFC 2131 table 3 says: xid, flags, giaddr and
// chaddr copied; option 82 (RFC 3046) and option 61 (RFC 6842) echoed.
// The reply comes from replyPool: encodeReply gives it back.
func newReply(req *dhcpv4.DHCPv4, typ dhcpv4.MessageType, sid netip.Addr) *dhcpv4.DHCPv4 {
	r := replyPool.Get().(*dhcpv4.DHCPv4)
	opts := r.Options
	clear(opts)
	*r = dhcpv4.DHCPv4{
		OpCode:        dhcpv4.OpcodeBootReply,
		HWType:        req.HWType,
		TransactionID: req.TransactionID,
		Flags:         req.Flags,
		ClientIPAddr:  net.IPv4zero,
		YourIPAddr:    net.IPv4zero,
		ServerIPAddr:  net.IPv4zero,
		GatewayIPAddr: req.GatewayIPAddr,
		ClientHWAddr:  req.ClientHWAddr,
		Options:       opts,
	}
	r.Options[dhcpv4.OptionDHCPMessageType.Code()] = []byte{byte(typ)}
	if sid.IsValid() {
		s := sid.As4()
		r.Options[dhcpv4.OptionServerIdentifier.Code()] = s[:]
	}
	for _, code := range []uint8{61, 82} {
		if v, ok := req.Options[code]; ok {
			r.Options[code] = v
		}
	}
	return r
}

func ip(a netip.Addr) net.IP {
	if !a.IsValid() {
		return net.IPv4zero
	}
	s := a.As4()
	return net.IP(s[:])
}

// offerOrAck builds an OFFER, an ACK (with or without a lease) or, for a
// proxy subnet, a proxyDHCP OFFER with no address.
func (h *handler) offerOrAck(ctx context.Context, req *dhcpv4.DHCPv4, typ dhcpv4.MessageType, d Decision, c class, lr *LeaseRequest, in inbound) (*result, error) {
	s := d.Subnet
	if s == nil {
		return nil, drop(dropNoSubnet, "decision without subnet")
	}
	proxy := s.Proxy && typ == dhcpv4.MessageTypeOffer
	if proxy && !c.pxe && !c.http {
		return nil, drop(dropNotPXE, "proxy subnet %s ignores non-PXE clients", s.Name)
	}
	sid := serverAddr(in.link, s)
	r := newReply(req, typ, sid)
	if typ == dhcpv4.MessageTypeAck {
		r.ClientIPAddr = req.ClientIPAddr // RFC 2131 table 3: ciaddr from the request
	}
	r.YourIPAddr = ip(d.Addr)
	od := &optionData{MAC: lr.MAC, Hostname: lr.Hostname, Firmware: string(c.boot.Firmware), Arch: c.boot.Firmware.Arch(),
		ClientUUID: c.boot.ClientUUID, Interface: lr.Interface, Subnet: s.Name, ServerAddr: sid.String(), IPXE: c.boot.IPXE}
	if d.Addr.IsValid() {
		od.Addr = d.Addr.String()
	}
	if !proxy {
		if err := h.subnetOptions(r, d, od); err != nil {
			h.log.Warn("subnet option", "subnet", s.Name, "mac", lr.MAC, "err", err)
		}
	}
	bootGiven := false
	if c.netboot && !s.Unmanaged {
		var err error
		bootGiven, err = h.bootOptions(ctx, r, d, c, sid, lr, proxy)
		if err != nil {
			h.log.Warn("boot decision", "subnet", s.Name, "mac", lr.MAC, "err", err)
		}
	}
	if proxy && !bootGiven {
		return nil, drop(dropNotPXE, "no boot information for %s on proxy subnet %s", lr.MAC, s.Name)
	}
	if v, ok := req.Options[optClientUUID]; ok && proxy {
		r.Options[optClientUUID] = v // PXE spec: proxyDHCP echoes the client GUID
	}
	res := &result{dst: replyDest(req, typ, in), data: encodeReply(r), commit: d.Commit, typ: typ, mac: lr.MAC}
	if d.Probe && typ == dhcpv4.MessageTypeOffer && d.Addr.IsValid() {
		res.probe = d.Addr
	}
	ev := "dhcp.offer"
	if typ == dhcpv4.MessageTypeAck {
		ev = "dhcp.ack"
		if d.NewBinding {
			l := d.Lease
			res.bound = &l
		}
	}
	if h.notifier != nil && (typ == dhcpv4.MessageTypeAck && d.Addr.IsValid() || typ == dhcpv4.MessageTypeOffer) {
		res.ev = h.event(ev, d.Addr, lr, map[string]any{"subnet": s.Name, "firmware": string(c.boot.Firmware), "proxy": proxy})
	}
	return res, nil
}

// subnetOptions adds mask, router, DNS, domain, NTP, lease times and the
// subnet's then the reservation's options (the reservation wins).
func (h *handler) subnetOptions(r *dhcpv4.DHCPv4, d Decision, od *optionData) error {
	s := d.Subnet
	o := r.Options
	if p, err := netip.ParsePrefix(s.Subnet); err == nil {
		o[dhcpv4.OptionSubnetMask.Code()] = net.CIDRMask(p.Bits(), 32)
	}
	if d.LeaseTime > 0 {
		secs := uint32(d.LeaseTime / time.Second)
		o[51] = be32(secs)
		o[58] = be32(secs / 2)
		o[59] = be32(uint32(uint64(secs) * 7 / 8))
	}
	var errs []error
	set := func(code uint8, val string) {
		if val == "" {
			return
		}
		v, err := renderOption(code, val, od)
		if err == nil {
			var b []byte
			if b, err = encodeOption(code, v); err == nil {
				o[code] = b
				return
			}
		}
		errs = append(errs, err)
	}
	set(3, s.Router)
	set(6, joinComma(s.DNS))
	set(15, s.Domain)
	set(42, joinComma(s.NTP))
	for _, op := range s.Options {
		set(op.Code, op.Value)
	}
	if rv := d.Reservation; rv != nil {
		for _, op := range rv.Options {
			set(op.Code, op.Value)
		}
	}
	return errors.Join(errs...)
}

func joinComma(v []string) string {
	out := ""
	for i, s := range v {
		if i > 0 {
			out += ","
		}
		out += s
	}
	return out
}

func be32(v uint32) []byte { return []byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)} }

// bootOptions asks the Booter and writes next-server (siaddr and option
// 66) and the boot file (option 67 and the BOOTP file field), option 60
// "HTTPClient" for HTTP boot, and for proxyDHCP option 60 "PXEClient" with
// the PXE vendor options that make firmware boot the file straight away.
// It reports whether boot information was given.
func (h *handler) bootOptions(ctx context.Context, r *dhcpv4.DHCPv4, d Decision, c class, sid netip.Addr, lr *LeaseRequest, proxy bool) (bool, error) {
	br := c.boot
	br.ServerAddr = sid
	br.Interface = lr.Interface
	rep, err := h.booter.BootReply(ctx, br)
	if err != nil {
		return false, err
	}
	if rep.Empty() {
		return false, nil
	}
	ns := rep.NextServer
	if d.Reservation != nil && d.Reservation.NextServer != "" {
		ns, _ = netip.ParseAddr(d.Reservation.NextServer)
	} else if d.Subnet.NextServer != "" {
		ns, _ = netip.ParseAddr(d.Subnet.NextServer)
	}
	if !ns.IsValid() {
		ns = sid
	}
	o := r.Options
	r.ServerIPAddr = ip(ns)
	o[66] = []byte(ns.String())
	o[67] = []byte(rep.Filename)
	if len(rep.Filename) < 128 {
		r.BootFileName = rep.Filename
	}
	switch {
	case rep.HTTPClient:
		o[optVendorClass] = []byte("HTTPClient")
	case proxy && c.pxe:
		o[optVendorClass] = []byte("PXEClient")
		// PXE spec 2.1 table 2-1: discovery control (6) bit 3 = use the
		// boot file in this reply, no boot server discovery.
		o[optVendorOptions] = []byte{6, 1, 8, 255}
	}
	return true, nil
}

// pxeBootServer answers a PXE client's REQUEST (or INFORM) on port 4011
// with its boot information; the client already has an address.
func (h *handler) pxeBootServer(ctx context.Context, req *dhcpv4.DHCPv4, typ dhcpv4.MessageType, c class, lr *LeaseRequest, in inbound) (*result, error) {
	if typ != dhcpv4.MessageTypeRequest && typ != dhcpv4.MessageTypeInform {
		return nil, drop(dropWrongType, "message type %s on port %d", typ, pxePort)
	}
	if !c.pxe && !c.http {
		return nil, drop(dropNotPXE, "port %d request without PXEClient", pxePort)
	}
	d, err := h.leases.Inform(ctx, lr)
	if err != nil {
		return nil, leaseDrop(err)
	}
	sid := serverAddr(in.link, d.Subnet)
	r := newReply(req, dhcpv4.MessageTypeAck, sid)
	r.ClientIPAddr = req.ClientIPAddr
	ok, err := h.bootOptions(ctx, r, d, c, sid, lr, true)
	if err != nil || !ok {
		return nil, drop(dropNotPXE, "no boot information for %s: %v", lr.MAC, err)
	}
	if v, ok := req.Options[optClientUUID]; ok {
		r.Options[optClientUUID] = v
	}
	return &result{data: encodeReply(r), dst: in.src, typ: dhcpv4.MessageTypeAck}, nil
}

func (h *handler) nak(req *dhcpv4.DHCPv4, d Decision, lr *LeaseRequest, in inbound) (*result, error) {
	sid := serverAddr(in.link, d.Subnet)
	r := newReply(req, dhcpv4.MessageTypeNak, sid)
	if d.Reason != "" {
		r.Options[dhcpv4.OptionMessage.Code()] = []byte(d.Reason)
	}
	if lr.Relay.IsValid() {
		// RFC 2131 4.3.2: a NAK through a relay asks it to broadcast.
		r.SetBroadcast()
	}
	ev := h.event("dhcp.nak", lr.Requested, lr, map[string]any{"reason": d.Reason})
	return &result{dst: replyDest(req, dhcpv4.MessageTypeNak, in), data: encodeReply(r), ev: ev, typ: dhcpv4.MessageTypeNak}, nil
}

var broadcast = netip.AddrPortFrom(netip.AddrFrom4([4]byte{255, 255, 255, 255}), clientPort)

// replyDest applies RFC 2131 section 4.1: through the relay (giaddr, port
// 67); NAKs broadcast; to ciaddr when set; broadcast when the client asks.
// A client that can receive unicast before it has an address would
// otherwise get the reply at yiaddr; it is broadcast instead (the server
// does not write ARP entries), which every client accepts.
func replyDest(req *dhcpv4.DHCPv4, typ dhcpv4.MessageType, in inbound) netip.AddrPort {
	if g := addr4(req.GatewayIPAddr); g.IsValid() {
		return netip.AddrPortFrom(g, serverPort)
	}
	if typ == dhcpv4.MessageTypeNak {
		return broadcast
	}
	if c := addr4(req.ClientIPAddr); c.IsValid() {
		return netip.AddrPortFrom(c, clientPort)
	}
	return broadcast
}

// publish sends a server event about addr.
func (h *handler) publish(typ string, addr netip.Addr, lr *LeaseRequest, attrs map[string]any) {
	if ev := h.event(typ, addr, lr, attrs); ev != nil {
		h.notifier.Publish(*ev)
	}
}

// event describes a server event about addr; nil without a Notifier.
func (h *handler) event(typ string, addr netip.Addr, lr *LeaseRequest, attrs map[string]any) *model.Event {
	if h.notifier == nil {
		return nil
	}
	if attrs == nil {
		attrs = map[string]any{}
	}
	attrs["mac"] = lr.MAC
	attrs["iface"] = lr.Interface
	ev := model.Event{Type: typ, Kind: model.KindLeases, Attrs: attrs}
	if addr.IsValid() {
		ev.Key = addr.String()
		attrs["addr"] = ev.Key
	}
	if lr.Relay.IsValid() {
		attrs["relay"] = lr.Relay.String()
	}
	return &ev
}
