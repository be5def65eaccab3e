package dhcp

import (
	"context"
	"encoding/binary"
	"flag"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/ironcast/ironcast/model"
	"github.com/prometheus/client_golang/prometheus"
)

var addrCmp = cmp.Comparer(func(a, b netip.Addr) bool { return a == b })

var update = flag.Bool("update", false, "rewrite testdata/*.golden")

// fixedLeases answers every call with the same decision: the handler's
// tests are about packets, ipam's about addresses.
type fixedLeases struct{ d Decision }

func (f fixedLeases) Discover(context.Context, *LeaseRequest) (Decision, error) {
	d := f.d
	d.Action = ActionOffer
	return d, nil
}
func (f fixedLeases) Request(context.Context, *LeaseRequest) (Decision, error) { return f.d, nil }
func (f fixedLeases) Release(context.Context, *LeaseRequest) error             { return nil }
func (f fixedLeases) Decline(context.Context, *LeaseRequest) error             { return nil }
func (f fixedLeases) Conflict(context.Context, netip.Addr, string) error       { return nil }
func (f fixedLeases) Inform(context.Context, *LeaseRequest) (Decision, error) {
	return Decision{Action: ActionAck, Subnet: f.d.Subnet}, nil
}

var (
	testSubnet = &model.Subnet{Name: "rack1", Subnet: "10.20.0.0/24", ActiveStart: "10.20.0.10", ActiveEnd: "10.20.0.200",
		Router: "10.20.0.1", DNS: []string{"10.20.0.1", "10.20.0.3"}, Domain: "rack1.example", Enabled: true,
		Options: []model.DHCPOption{{Code: 12, Value: "m-{{.MAC}}"}}}
	proxySubnet     = &model.Subnet{Name: "proxy", Subnet: "10.20.0.0/24", Enabled: true, Proxy: true}
	unmanagedSubnet = &model.Subnet{Name: "plain", Subnet: "10.20.0.0/24", ActiveStart: "10.20.0.10", ActiveEnd: "10.20.0.200", Enabled: true, Unmanaged: true}
)

func testLink() *link {
	l := &link{name: "eth0", index: 2}
	ps := []netip.Prefix{netip.MustParsePrefix("10.20.0.2/24")}
	l.addrs.Store(&ps)
	return l
}

func testHandler(t testing.TB, d Decision) *handler {
	m, err := newMetrics(prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	return &handler{leases: fixedLeases{d}, booter: StaticBooter{}, m: m, log: discard(),
		ours: func(a netip.Addr) bool { return a == netip.MustParseAddr("10.20.0.2") }}
}

var testMAC = net.HardwareAddr{0x52, 0x54, 0x00, 0x12, 0x34, 0x56}

// pxeRequest builds a request the way the firmware in FIELD.md does.
func pxeRequest(typ dhcpv4.MessageType, vendor string, arch int, extra ...dhcpv4.Option) *dhcpv4.DHCPv4 {
	p := &dhcpv4.DHCPv4{OpCode: dhcpv4.OpcodeBootRequest, HWType: 1, TransactionID: dhcpv4.TransactionID{1, 2, 3, 4},
		ClientIPAddr: net.IPv4zero, YourIPAddr: net.IPv4zero, ServerIPAddr: net.IPv4zero, GatewayIPAddr: net.IPv4zero,
		ClientHWAddr: testMAC, Options: dhcpv4.Options{}}
	p.Options[53] = []byte{byte(typ)}
	if vendor != "" {
		p.Options[60] = []byte(vendor)
	}
	if arch >= 0 {
		p.Options[93] = binary.BigEndian.AppendUint16(nil, uint16(arch))
		p.Options[94] = []byte{1, 3, 0}
		p.Options[97] = append([]byte{0}, make([]byte, 16)...)
	}
	for _, o := range extra {
		p.Options[o.Code.Code()] = o.Value.ToBytes()
	}
	return p
}

func opt(code uint8, v []byte) dhcpv4.Option {
	return dhcpv4.Option{Code: dhcpv4.GenericOptionCode(code), Value: dhcpv4.OptionGeneric{Data: v}}
}

// dump renders a reply as stable text for the golden files.
func dump(dst netip.AddrPort, b []byte) string {
	p, err := dhcpv4.FromBytes(b)
	if err != nil {
		return "unparseable reply: " + err.Error()
	}
	var s strings.Builder
	fmt.Fprintf(&s, "dst %s\nop %d xid %x flags %#04x\nciaddr %s yiaddr %s siaddr %s giaddr %s\nchaddr %s\nsname %q\nfile %q\n",
		dst, p.OpCode, p.TransactionID[:], p.Flags, p.ClientIPAddr, p.YourIPAddr, p.ServerIPAddr, p.GatewayIPAddr, p.ClientHWAddr, p.ServerHostName, p.BootFileName)
	var codes []int
	for c := range p.Options {
		codes = append(codes, int(c))
	}
	slices.Sort(codes)
	for _, c := range codes {
		v := p.Options[uint8(c)]
		fmt.Fprintf(&s, "option %3d % x", c, v)
		if printable(v) {
			fmt.Fprintf(&s, " %q", v)
		}
		s.WriteByte('\n')
	}
	return s.String()
}

func printable(v []byte) bool {
	for _, c := range v {
		if c < 0x20 || c > 0x7e {
			return false
		}
	}
	return len(v) > 0
}

func golden(t *testing.T, name, got string) {
	t.Helper()
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.WriteFile(path, []byte(got), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test -update)", err)
	}
	if diff := cmp.Diff(got, string(want)); diff != "" {
		t.Errorf("%s (-got +want):\n%s", path, diff)
	}
}

// TestFirmwareReplies is the firmware table of issue 3 as golden replies.
func TestFirmwareReplies(t *testing.T) {
	ack := Decision{Action: ActionAck, Addr: netip.MustParseAddr("10.20.0.10"), Subnet: testSubnet, LeaseTime: time.Hour}
	ipxeUC := opt(77, []byte("\x04iPXE"))
	relayed := func(p *dhcpv4.DHCPv4) *dhcpv4.DHCPv4 {
		p.GatewayIPAddr = net.IPv4(10, 99, 0, 1).To4()
		p.HopCount = 1
		p.Options[82] = []byte{1, 4, 'p', 'o', 'r', 't'}
		return p
	}
	tests := []struct {
		name string
		d    Decision
		req  *dhcpv4.DHCPv4
		port int
	}{
		{"bios-offer", ack, pxeRequest(dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00000:UNDI:002001", 0), 67},
		{"bios-ack", ack, pxeRequest(dhcpv4.MessageTypeRequest, "PXEClient:Arch:00000:UNDI:002001", 0), 67},
		{"uefi-x64-arch7", ack, pxeRequest(dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00007:UNDI:003016", 7), 67},
		{"uefi-x64-arch9", ack, pxeRequest(dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00009:UNDI:003016", 9), 67},
		{"uefi-arm64", ack, pxeRequest(dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00011:UNDI:003000", 11), 67},
		{"http-x64", ack, pxeRequest(dhcpv4.MessageTypeDiscover, "HTTPClient:Arch:00016:UNDI:003000", 16), 67},
		{"http-arm64", ack, pxeRequest(dhcpv4.MessageTypeDiscover, "HTTPClient:Arch:00019:UNDI:003000", 19), 67},
		{"ipxe-bios", ack, pxeRequest(dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00000:UNDI:002001", 0, ipxeUC, opt(175, []byte{0xb1, 1, 1})), 67},
		{"ipxe-uefi", ack, pxeRequest(dhcpv4.MessageTypeRequest, "PXEClient:Arch:00007:UNDI:003016", 7, ipxeUC), 67},
		{"plain-client", ack, pxeRequest(dhcpv4.MessageTypeDiscover, "udhcp 1.36.1", -1), 67},
		{"unmanaged-pxe", Decision{Addr: ack.Addr, Subnet: unmanagedSubnet, LeaseTime: time.Hour}, pxeRequest(dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00000:UNDI:002001", 0), 67},
		{"relayed-offer", ack, relayed(pxeRequest(dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00007:UNDI:003016", 7)), 67},
		{"proxy-offer-bios", Decision{Subnet: proxySubnet}, pxeRequest(dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00000:UNDI:002001", 0), 67},
		{"proxy-offer-uefi", Decision{Subnet: proxySubnet}, pxeRequest(dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00007:UNDI:003016", 7), 67},
		{"proxy-4011-uefi", Decision{Subnet: proxySubnet}, func() *dhcpv4.DHCPv4 {
			p := pxeRequest(dhcpv4.MessageTypeRequest, "PXEClient:Arch:00007:UNDI:003016", 7)
			p.ClientIPAddr = net.IPv4(10, 20, 0, 77).To4()
			return p
		}(), 4011},
		{"nak-relayed", Decision{Action: ActionNak, Subnet: testSubnet, Reason: "10.20.0.99 is in use by another client"},
			relayed(pxeRequest(dhcpv4.MessageTypeRequest, "", -1, opt(50, []byte{10, 20, 0, 99}))), 67},
		{"inform", ack, func() *dhcpv4.DHCPv4 {
			p := pxeRequest(dhcpv4.MessageTypeInform, "", -1)
			p.ClientIPAddr = net.IPv4(10, 20, 0, 55).To4()
			return p
		}(), 67},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := testHandler(t, tt.d)
			src := netip.MustParseAddrPort("0.0.0.0:68")
			if tt.port == pxePort {
				src = netip.MustParseAddrPort("10.20.0.77:68")
			}
			res, err := h.handle(context.Background(), tt.req.ToBytes(), inbound{link: testLink(), port: tt.port, src: src})
			if err != nil {
				t.Fatal(err)
			}
			golden(t, tt.name, dump(res.dst, res.data))
		})
	}
}

func TestProxyIgnoresNonPXEClients(t *testing.T) {
	h := testHandler(t, Decision{Subnet: proxySubnet})
	req := pxeRequest(dhcpv4.MessageTypeDiscover, "udhcp 1.36.1", -1)
	res, err := h.handle(context.Background(), req.ToBytes(), inbound{link: testLink(), port: 67})
	if res != nil || !isDrop(err, dropNotPXE) {
		t.Fatalf("got %v %v, want drop %s", res, err, dropNotPXE)
	}
}

func isDrop(err error, reason string) bool {
	de, ok := err.(*dropError)
	return ok && de.reason == reason
}

func TestBadInputIsDropped(t *testing.T) {
	good := pxeRequest(dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00000:UNDI:002001", 0).ToBytes()
	mutate := func(f func(p *dhcpv4.DHCPv4)) []byte {
		p := pxeRequest(dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00000:UNDI:002001", 0)
		f(p)
		return p.ToBytes()
	}
	tests := []struct {
		name   string
		pkt    []byte
		reason string
	}{
		{"empty", nil, dropMalformed},
		{"truncated", good[:100], dropMalformed},
		{"bad cookie", append(append([]byte{}, good[:236]...), 1, 2, 3, 4, 255), dropMalformed},
		{"oversized", append(append([]byte{}, good...), make([]byte, 1500)...), dropOversized},
		{"reply op", mutate(func(p *dhcpv4.DHCPv4) { p.OpCode = dhcpv4.OpcodeBootReply }), dropWrongOp},
		{"bootp", mutate(func(p *dhcpv4.DHCPv4) { delete(p.Options, 53) }), dropMalformed},
		{"offer from a client", mutate(func(p *dhcpv4.DHCPv4) { p.Options[53] = []byte{2} }), dropWrongType},
		{"long hw address", mutate(func(p *dhcpv4.DHCPv4) { p.ClientHWAddr = make(net.HardwareAddr, 16) }), dropMalformed},
		{"odd option 93", mutate(func(p *dhcpv4.DHCPv4) { p.Options[93] = []byte{0} }), dropMalformed},
		{"short option 50", mutate(func(p *dhcpv4.DHCPv4) { p.Options[50] = []byte{10, 0} }), dropMalformed},
		{"arch disagrees", mutate(func(p *dhcpv4.DHCPv4) { p.Options[93] = []byte{0, 7} }), dropContradictory},
		{"bad uuid", mutate(func(p *dhcpv4.DHCPv4) { p.Options[97] = []byte{1, 2} }), dropMalformed},
	}
	h := testHandler(t, Decision{Action: ActionAck, Subnet: testSubnet, Addr: netip.MustParseAddr("10.20.0.10")})
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			res, err := h.handle(context.Background(), tt.pkt, inbound{link: testLink(), port: 67})
			if res != nil || !isDrop(err, tt.reason) {
				t.Fatalf("got %v, %v; want drop %q", res, err, tt.reason)
			}
		})
	}
}

func TestClassify(t *testing.T) {
	tests := []struct {
		name string
		req  *dhcpv4.DHCPv4
		want model.BootRequest
	}{
		{"bios", pxeRequest(dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00000:UNDI:002001", 0), model.BootRequest{Firmware: model.FirmwareBIOS}},
		{"arch from option 60 only", pxeRequest(dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00007:UNDI:003016", -1), model.BootRequest{Firmware: model.FirmwareUEFI64}},
		{"http boot", pxeRequest(dhcpv4.MessageTypeDiscover, "HTTPClient:Arch:00016:UNDI:003000", 16), model.BootRequest{Firmware: model.FirmwareUEFIHTTP64}},
		{"ipxe user class rfc 3004", pxeRequest(dhcpv4.MessageTypeDiscover, "", 7, opt(77, []byte("\x04iPXE"))), model.BootRequest{Firmware: model.FirmwareUEFI64, IPXE: true}},
		{"ipxe user class plain", pxeRequest(dhcpv4.MessageTypeDiscover, "", 0, opt(77, []byte("iPXE"))), model.BootRequest{Firmware: model.FirmwareBIOS, IPXE: true}},
		{"ipxe option 175", pxeRequest(dhcpv4.MessageTypeDiscover, "", 0, opt(175, []byte{1, 1, 1})), model.BootRequest{Firmware: model.FirmwareBIOS, IPXE: true}},
		{"uuid", pxeRequest(dhcpv4.MessageTypeDiscover, "", 11, opt(97, append([]byte{0}, []byte("0123456789abcdef")...))),
			model.BootRequest{Firmware: model.FirmwareUEFIARM64, ClientUUID: "30313233-3435-3637-3839-616263646566"}},
		{"unknown arch", pxeRequest(dhcpv4.MessageTypeDiscover, "", 42), model.BootRequest{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := classify(tt.req)
			if err != nil {
				t.Fatal(err)
			}
			tt.want.MAC = "52:54:00:12:34:56"
			if diff := cmp.Diff(c.boot, tt.want, addrCmp); diff != "" {
				t.Errorf("(-got +want):\n%s", diff)
			}
			if !c.netboot {
				t.Error("not classified as netboot")
			}
		})
	}
}

func TestEncodeOption(t *testing.T) {
	tests := []struct {
		name string
		code uint8
		val  string
		want []byte
	}{
		{"addresses", 6, "10.0.0.1, 10.0.0.2", []byte{10, 0, 0, 1, 10, 0, 0, 2}},
		{"u32", 51, "600", []byte{0, 0, 2, 88}},
		{"u16", 26, "9000", []byte{0x23, 0x28}},
		{"u8", 23, "64", []byte{64}},
		{"string", 15, "example.org", []byte("example.org")},
		{"hex", 43, "0x060108ff", []byte{6, 1, 8, 255}},
		{"hex colons", 250, "hex:01:02", []byte{1, 2}},
		{"routes", 121, "10.0.0.0/8 10.1.1.1, 0.0.0.0/0 10.1.1.254", []byte{8, 10, 10, 1, 1, 1, 0, 10, 1, 1, 254}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := encodeOption(tt.code, tt.val)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("(-got +want):\n%s", diff)
			}
		})
	}
	for _, bad := range []struct {
		code uint8
		val  string
	}{{3, "not-an-ip"}, {51, "-1"}, {23, "300"}, {121, "10.0.0.0/8"}, {43, "0xzz"}} {
		if _, err := encodeOption(bad.code, bad.val); err == nil {
			t.Errorf("encodeOption(%d, %q) succeeded", bad.code, bad.val)
		}
	}
}

func TestStaticBooterConfigurable(t *testing.T) {
	b := StaticBooter{HTTPPort: 8080, UEFI64File: "ipxe.efi", ScriptPath: "/boot.ipxe?mac={mac}", NextServer: netip.MustParseAddr("10.0.0.9")}
	srv := netip.MustParseAddr("10.0.0.2")
	tests := []struct {
		name string
		req  model.BootRequest
		want model.BootReply
	}{
		{"uefi", model.BootRequest{Firmware: model.FirmwareUEFI64, ServerAddr: srv}, model.BootReply{NextServer: b.NextServer, Filename: "ipxe.efi"}},
		{"http", model.BootRequest{Firmware: model.FirmwareUEFIHTTP64, ServerAddr: srv}, model.BootReply{NextServer: b.NextServer, Filename: "http://10.0.0.2:8080/ipxe.efi", HTTPClient: true}},
		{"ipxe", model.BootRequest{MAC: "52:54:00:00:00:01", Firmware: model.FirmwareBIOS, IPXE: true, ServerAddr: srv}, model.BootReply{NextServer: b.NextServer, Filename: "http://10.0.0.2:8080/boot.ipxe?mac=52:54:00:00:00:01"}},
		{"ia32 unsupported", model.BootRequest{Firmware: model.FirmwareUEFI32, ServerAddr: srv}, model.BootReply{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := b.BootReply(context.Background(), tt.req)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, tt.want, addrCmp); diff != "" {
				t.Errorf("(-got +want):\n%s", diff)
			}
		})
	}
}

// FuzzHandler drives the handler with random packets, seeded from the
// firmware table: it must never panic, and whatever it sends must parse.
func FuzzHandler(f *testing.F) {
	for _, p := range []*dhcpv4.DHCPv4{
		pxeRequest(dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00000:UNDI:002001", 0),
		pxeRequest(dhcpv4.MessageTypeRequest, "HTTPClient:Arch:00016:UNDI:003000", 16),
		pxeRequest(dhcpv4.MessageTypeInform, "", -1, opt(77, []byte("\x04iPXE"))),
		pxeRequest(dhcpv4.MessageTypeRelease, "", -1),
	} {
		f.Add(p.ToBytes(), uint16(67))
		f.Add(p.ToBytes(), uint16(4011))
	}
	h := testHandler(f, Decision{Action: ActionAck, Subnet: testSubnet, Addr: netip.MustParseAddr("10.20.0.10"), LeaseTime: time.Hour})
	hp := testHandler(f, Decision{Subnet: proxySubnet})
	f.Fuzz(func(t *testing.T, b []byte, port uint16) {
		for _, h := range []*handler{h, hp} {
			res, err := h.handle(context.Background(), b, inbound{link: testLink(), port: int(port), src: netip.MustParseAddrPort("10.20.0.50:68")})
			if err != nil {
				if _, ok := err.(*dropError); !ok {
					t.Fatalf("error is not a drop: %v", err)
				}
				continue
			}
			if res == nil {
				continue
			}
			if _, err := dhcpv4.FromBytes(res.data); err != nil {
				t.Fatalf("reply does not parse: %v", err)
			}
		}
	})
}
