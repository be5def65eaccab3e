package dhcp

import (
	"bytes"
	"net"
	"reflect"
	"testing"

	"github.com/insomniacslk/dhcp/dhcpv4"
)

// FuzzCodec checks parse and encode against the library they replace:
// parse fails exactly when dhcpv4.FromBytes fails and otherwise gives an
// equal packet, and encode gives ToBytes's bytes.
func FuzzCodec(f *testing.F) {
	mac := net.HardwareAddr{2, 0, 0, 0, 0, 1}
	long := bytes.Repeat([]byte("x"), 300) // split in two (RFC 3396)
	for _, p := range []*dhcpv4.DHCPv4{
		pxeRequest(dhcpv4.MessageTypeDiscover, "PXEClient:Arch:00000:UNDI:002001", 0),
		pxeRequest(dhcpv4.MessageTypeRequest, "HTTPClient:Arch:00016:UNDI:003000", 16),
		pxeRequest(dhcpv4.MessageTypeInform, "", -1, opt(77, []byte("\x04iPXE")), opt(82, []byte{1, 2, 3, 4}), opt(43, long)),
		must(dhcpv4.NewDiscovery(mac, dhcpv4.WithRelay(net.IPv4(10, 40, 0, 2)), dhcpv4.WithOption(dhcpv4.OptHostName("h")))),
	} {
		f.Add(p.ToBytes())
	}
	d := must(dhcpv4.NewDiscovery(mac)).ToBytes()
	f.Add(d[:bootpHeaderLen])                             // no options
	f.Add(append(bytes.Clone(d[:bootpHeaderLen]), 53, 1)) // truncated option
	f.Add(append(bytes.Clone(d[:bootpHeaderLen]), 12, 0, 12, 2, 'a', 'b', 0, 12, 1, 'c', 255, 7))
	f.Fuzz(func(t *testing.T, b []byte) {
		want, werr := dhcpv4.FromBytes(b)
		got, gerr := parse(b)
		if (werr == nil) != (gerr == nil) {
			t.Fatalf("parse error %v, dhcpv4.FromBytes error %v", gerr, werr)
		}
		if werr != nil {
			return
		}
		if !reflect.DeepEqual(got, want) {
			t.Fatalf("parse:\n%v\ndhcpv4.FromBytes:\n%v", got.Summary(), want.Summary())
		}
		if enc, lib := encode(got), want.ToBytes(); !bytes.Equal(enc, lib) {
			t.Fatalf("encode:\n% x\nToBytes:\n% x", enc, lib)
		}
	})
}

func must(p *dhcpv4.DHCPv4, err error) *dhcpv4.DHCPv4 {
	if err != nil {
		panic(err)
	}
	return p
}
