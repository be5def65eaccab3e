package dhcp

import (
	"errors"
	"fmt"
	"io"
	"net"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/insomniacslk/dhcp/iana"
)

// The codec below decodes and encodes exactly as dhcpv4.FromBytes and
// (*dhcpv4.DHCPv4).ToBytes do (FuzzCodec checks it against them), with
// far fewer allocations: FromBytes copies every address field and option
// into its own slice and ToBytes grows its buffer option by option, which
// made the codec the largest source of garbage per packet.

// bootpHeaderLen is the fixed BOOTP header with the magic cookie.
const bootpHeaderLen = 236 + 4

// bootpMinLen is the shortest message some relays accept (RFC 951);
// dhcpv4 pads to it.
const bootpMinLen = 300

var magicCookie = [4]byte{99, 130, 83, 99}

var errShort = errors.New("packet shorter than a BOOTP header")

// parsed holds a packet and the backing arrays of its address fields, so
// that a parse allocates the struct, the options map and one buffer for
// the option values.
type parsed struct {
	p   dhcpv4.DHCPv4
	ips [16]byte
	hw  [16]byte
}

// parse decodes a DHCPv4 packet as dhcpv4.FromBytes does. The result does
// not refer to b.
func parse(b []byte) (*dhcpv4.DHCPv4, error) {
	if len(b) < bootpHeaderLen {
		return nil, fmt.Errorf("%w: %d bytes", errShort, len(b))
	}
	if [4]byte(b[236:240]) != magicCookie {
		return nil, fmt.Errorf("malformed DHCP packet: got magic cookie %v, want %v", b[236:240], magicCookie[:])
	}
	x := &parsed{}
	p := &x.p
	p.OpCode = dhcpv4.OpcodeType(b[0])
	p.HWType = iana.HWType(b[1])
	hlen := int(b[2])
	p.HopCount = b[3]
	copy(p.TransactionID[:], b[4:8])
	p.NumSeconds = uint16(b[8])<<8 | uint16(b[9])
	p.Flags = uint16(b[10])<<8 | uint16(b[11])
	copy(x.ips[:], b[12:28])
	p.ClientIPAddr = net.IP(x.ips[0:4:4])
	p.YourIPAddr = net.IP(x.ips[4:8:8])
	p.ServerIPAddr = net.IP(x.ips[8:12:12])
	p.GatewayIPAddr = net.IP(x.ips[12:16:16])
	copy(x.hw[:], b[28:44])
	p.ClientHWAddr = net.HardwareAddr(x.hw[:min(hlen, 16)])
	p.ServerHostName = cString(b[44:108])
	p.BootFileName = cString(b[108:236])

	opts := b[bootpHeaderLen:]
	// First pass: validate and count, so that the map is sized once.
	n, end := 0, false
	for i := 0; i < len(opts); {
		code := opts[i]
		i++
		if code == 0 {
			continue
		}
		if code == 255 {
			end = true
			break
		}
		if i >= len(opts) || i+1+int(opts[i]) > len(opts) {
			return nil, fmt.Errorf("error collecting options: option %d runs past the packet", code)
		}
		i += 1 + int(opts[i])
		n++
	}
	p.Options = make(dhcpv4.Options, n)
	if len(opts) == 0 {
		return p, nil // as dhcpv4: no options at all is not an error
	}
	if !end {
		return nil, io.ErrUnexpectedEOF
	}
	vals := make([]byte, 0, len(opts))
	for i := 0; i < len(opts); {
		code := opts[i]
		i++
		if code == 0 {
			continue
		}
		if code == 255 {
			break
		}
		l := int(opts[i])
		v := opts[i+1 : i+1+l]
		i += 1 + l
		if old, ok := p.Options[code]; ok {
			// RFC 3396: repeated options are concatenated.
			p.Options[code] = append(old[:len(old):len(old)], v...)
			continue
		}
		if l == 0 {
			p.Options[code] = nil // as dhcpv4's append of nothing
			continue
		}
		start := len(vals)
		vals = append(vals, v...)
		p.Options[code] = vals[start:len(vals):len(vals)]
	}
	return p, nil
}

// cString is b up to its first NUL.
func cString(b []byte) string {
	if i := strings.IndexByte(string(b), 0); i >= 0 {
		b = b[:i]
	}
	return string(b)
}

// encode returns the packet's wire form, byte for byte what
// (*dhcpv4.DHCPv4).ToBytes returns: options in code order with relay
// agent information (82) last, long options split (RFC 3396), End, then
// padding to bootpMinLen.
func encode(d *dhcpv4.DHCPv4) []byte {
	size := bootpHeaderLen + 1
	var present [256]bool
	for code, v := range d.Options {
		if code == 0 || code == 255 {
			continue
		}
		present[code] = true
		size += 2 + len(v) + 2*((len(v)-1)/255)
	}
	size = max(size, bootpMinLen)
	b := make([]byte, 0, size)
	b = append(b, byte(d.OpCode), byte(d.HWType), byte(len(d.ClientHWAddr)), d.HopCount)
	b = append(b, d.TransactionID[:]...)
	b = append(b, byte(d.NumSeconds>>8), byte(d.NumSeconds), byte(d.Flags>>8), byte(d.Flags))
	for _, ip := range []net.IP{d.ClientIPAddr, d.YourIPAddr, d.ServerIPAddr, d.GatewayIPAddr} {
		var a [4]byte
		if v4 := ip.To4(); v4 != nil {
			a = [4]byte(v4)
		}
		b = append(b, a[:]...)
	}
	var hw [16]byte
	copy(hw[:], d.ClientHWAddr)
	b = append(b, hw[:]...)
	var sname [64]byte
	copy(sname[:63], d.ServerHostName)
	b = append(b, sname[:]...)
	var file [128]byte
	copy(file[:127], d.BootFileName)
	b = append(b, file[:]...)
	b = append(b, magicCookie[:]...)
	put := func(code uint8) {
		v := d.Options[code]
		if len(v) == 0 {
			b = append(b, code, 0)
			return
		}
		for len(v) > 0 {
			n := min(len(v), 255)
			b = append(b, code, byte(n))
			b = append(b, v[:n]...)
			v = v[n:]
		}
	}
	for code := 1; code < 255; code++ {
		if present[code] && code != 82 {
			put(uint8(code))
		}
	}
	if present[82] {
		put(82)
	}
	b = append(b, 255)
	for len(b) < bootpMinLen {
		b = append(b, 0)
	}
	return b
}
