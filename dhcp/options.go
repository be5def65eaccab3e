package dhcp

import (
	"bytes"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"net/netip"
	"strconv"
	"strings"
	"sync"
	"text/template"
)

// optType is how an option's text value is encoded (RFC 2132).
type optType int

const (
	typeString optType = iota
	typeIPs
	typeU32
	typeU16
	typeU8
	typeRoutes // RFC 3442 classless static routes
)

// optTypes lists the options whose value is not a plain string. Values may
// also be given raw as "0x0a0b…" or "hex:0a:0b:…" for any option.
var optTypes = map[uint8]optType{
	1: typeIPs, 3: typeIPs, 4: typeIPs, 5: typeIPs, 6: typeIPs, 7: typeIPs,
	8: typeIPs, 9: typeIPs, 10: typeIPs, 11: typeIPs, 16: typeIPs, 21: typeIPs,
	28: typeIPs, 32: typeIPs, 33: typeIPs, 41: typeIPs, 42: typeIPs, 44: typeIPs,
	45: typeIPs, 48: typeIPs, 49: typeIPs, 65: typeIPs, 68: typeIPs, 69: typeIPs,
	70: typeIPs, 71: typeIPs, 72: typeIPs, 73: typeIPs, 74: typeIPs, 75: typeIPs,
	76: typeIPs, 150: typeIPs,
	2: typeU32, 24: typeU32, 35: typeU32, 38: typeU32, 51: typeU32, 58: typeU32, 59: typeU32,
	13: typeU16, 22: typeU16, 26: typeU16, 57: typeU16,
	19: typeU8, 20: typeU8, 23: typeU8, 27: typeU8, 29: typeU8, 30: typeU8,
	31: typeU8, 34: typeU8, 36: typeU8, 37: typeU8, 39: typeU8, 46: typeU8,
	121: typeRoutes, 249: typeRoutes,
}

// optionData is what option value templates see.
type optionData struct {
	MAC, Hostname, Firmware, Arch, ClientUUID, Interface, Subnet string
	// Addr is the address given to the client ("" for proxy and NAK).
	Addr string
	// ServerAddr is our address on the interface.
	ServerAddr string
	IPXE       bool
}

// optionTemplates caches parsed value templates by text.
var optionTemplates sync.Map // string → *template.Template

// renderOption renders a value that contains "{{" as a text/template over
// d (missingkey=error) and returns other values unchanged.
func renderOption(code uint8, val string, d *optionData) (string, error) {
	if !strings.Contains(val, "{{") {
		return val, nil
	}
	var t *template.Template
	if v, ok := optionTemplates.Load(val); ok {
		t = v.(*template.Template)
	} else {
		var err error
		t, err = template.New(strconv.Itoa(int(code))).Option("missingkey=error").Parse(val)
		if err != nil {
			return "", fmt.Errorf("option %d template: %w", code, err)
		}
		optionTemplates.Store(val, t)
	}
	var b bytes.Buffer
	if err := t.Execute(&b, d); err != nil {
		return "", fmt.Errorf("option %d template: %w", code, err)
	}
	return b.String(), nil
}

// encodeOption encodes an option's text value by the option's type.
func encodeOption(code uint8, val string) ([]byte, error) {
	if v, ok := strings.CutPrefix(val, "0x"); ok {
		b, err := hex.DecodeString(v)
		if err != nil {
			return nil, fmt.Errorf("option %d: %q is not hex: %w", code, val, err)
		}
		return b, nil
	}
	if v, ok := strings.CutPrefix(val, "hex:"); ok {
		b, err := hex.DecodeString(strings.ReplaceAll(v, ":", ""))
		if err != nil {
			return nil, fmt.Errorf("option %d: %q is not hex: %w", code, val, err)
		}
		return b, nil
	}
	fields := func() []string {
		return strings.FieldsFunc(val, func(r rune) bool { return r == ',' || r == ' ' })
	}
	switch optTypes[code] {
	case typeIPs:
		var b []byte
		for _, f := range fields() {
			a, err := netip.ParseAddr(f)
			if err != nil || !a.Is4() {
				return nil, fmt.Errorf("option %d: %q is not an IPv4 address", code, f)
			}
			s := a.As4()
			b = append(b, s[:]...)
		}
		if len(b) == 0 {
			return nil, fmt.Errorf("option %d: no address", code)
		}
		return b, nil
	case typeU32, typeU16, typeU8:
		bits := map[optType]int{typeU32: 32, typeU16: 16, typeU8: 8}[optTypes[code]]
		n, err := strconv.ParseUint(strings.TrimSpace(val), 10, bits)
		if err != nil {
			return nil, fmt.Errorf("option %d: %q is not a %d-bit number", code, val, bits)
		}
		b := binary.BigEndian.AppendUint32(nil, uint32(n))
		return b[4-bits/8:], nil
	case typeRoutes:
		// "10.0.0.0/8 10.1.1.1, 0.0.0.0/0 10.1.1.254"
		var b []byte
		for _, r := range strings.Split(val, ",") {
			f := strings.Fields(r)
			if len(f) != 2 {
				return nil, fmt.Errorf("option %d: route %q is not \"PREFIX ROUTER\"", code, r)
			}
			p, err1 := netip.ParsePrefix(f[0])
			gw, err2 := netip.ParseAddr(f[1])
			if err1 != nil || err2 != nil || !p.Addr().Is4() || !gw.Is4() {
				return nil, fmt.Errorf("option %d: route %q is not \"PREFIX ROUTER\"", code, r)
			}
			p = p.Masked()
			a, g := p.Addr().As4(), gw.As4()
			b = append(b, byte(p.Bits()))
			b = append(b, a[:(p.Bits()+7)/8]...)
			b = append(b, g[:]...)
		}
		return b, nil
	}
	return []byte(val), nil
}
