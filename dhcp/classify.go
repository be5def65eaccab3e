package dhcp

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/insomniacslk/dhcp/dhcpv4"
	"github.com/ironcast/ironcast/model"
)

// Option codes used here that dhcpv4 does not name, or names long.
const (
	optVendorClass   = 60  // RFC 2132 class identifier: "PXEClient:Arch:…"
	optUserClass     = 77  // RFC 3004 user class; iPXE sends "iPXE"
	optClientArch    = 93  // RFC 4578 client system architecture
	optClientNDI     = 94  // RFC 4578 network device interface
	optClientUUID    = 97  // RFC 4578 client machine identifier
	optIPXEEncap     = 175 // iPXE encapsulated options
	optVendorOptions = 43  // PXE vendor options in proxyDHCP replies
)

// class is what the request tells about a netbooting client.
type class struct {
	boot model.BootRequest
	// pxe and http are set by option 60's prefix.
	pxe, http bool
	// netboot is true for PXE, HTTP boot and iPXE clients, and for any
	// client sending option 93.
	netboot bool
	// arch is option 93's first value (-1 if absent).
	arch int
}

var errContradictory = errors.New("contradictory options")

// classify reads options 60, 77, 93, 97 and 175 (see FIELD.md for what real
// firmware sends). It fails for malformed option 93 or 97, and for an
// option 60 "…:Arch:NNNNN" that disagrees with option 93.
func classify(req *dhcpv4.DHCPv4) (class, error) {
	c := class{arch: -1}
	c.boot.MAC = macString(req.ClientHWAddr)
	vc := req.Options[optVendorClass]
	switch {
	case bytes.HasPrefix(vc, []byte("PXEClient")):
		c.pxe = true
	case bytes.HasPrefix(vc, []byte("HTTPClient")):
		c.http = true
	}
	if v, ok := req.Options[optClientArch]; ok {
		if len(v) == 0 || len(v)%2 != 0 {
			return c, fmt.Errorf("option 93 length %d: %w", len(v), errMalformed)
		}
		c.arch = int(binary.BigEndian.Uint16(v))
	}
	if c.pxe || c.http {
		// "PXEClient:Arch:00007:UNDI:003016": the arch must match option 93.
		if _, rest, ok := strings.Cut(string(vc), ":Arch:"); ok && len(rest) >= 5 {
			a, err := strconv.Atoi(rest[:5])
			if err != nil {
				return c, fmt.Errorf("option 60 %q: %w", vc, errMalformed)
			}
			if c.arch < 0 {
				c.arch = a
			} else if a != c.arch {
				return c, fmt.Errorf("option 60 arch %d, option 93 arch %d: %w", a, c.arch, errContradictory)
			}
		}
	}
	if c.arch >= 0 {
		c.boot.Firmware, _ = model.FirmwareFromArchType(uint16(c.arch))
	}
	if _, ok := req.Options[optIPXEEncap]; ok {
		c.boot.IPXE = true
	}
	if uc, ok := req.Options[optUserClass]; ok && isIPXEUserClass(uc) {
		c.boot.IPXE = true
	}
	if v, ok := req.Options[optClientUUID]; ok {
		// RFC 4578: type 0 followed by a 16-byte GUID.
		if len(v) != 17 || v[0] != 0 {
			return c, fmt.Errorf("option 97 length %d: %w", len(v), errMalformed)
		}
		g := v[1:]
		if !bytes.Equal(g, make([]byte, 16)) {
			c.boot.ClientUUID = fmt.Sprintf("%x-%x-%x-%x-%x", g[0:4], g[4:6], g[6:8], g[8:10], g[10:16])
		}
	}
	c.netboot = c.pxe || c.http || c.boot.IPXE || c.arch >= 0
	return c, nil
}

// isIPXEUserClass accepts both the RFC 3004 form (length-prefixed strings,
// as iPXE sends it) and the plain string some clients (udhcpc -x 77:…)
// send.
func isIPXEUserClass(v []byte) bool {
	if bytes.Equal(v, []byte("iPXE")) {
		return true
	}
	for len(v) > 0 {
		n := int(v[0])
		if n == 0 || 1+n > len(v) {
			return false
		}
		if string(v[1:1+n]) == "iPXE" {
			return true
		}
		v = v[1+n:]
	}
	return false
}

const hexDigits = "0123456789abcdef"

// macString formats a hardware address like model.NormalizeMAC, without
// allocating more than the result.
func macString(hw []byte) string {
	if len(hw) == 0 {
		return ""
	}
	b := make([]byte, 0, len(hw)*3-1)
	for i, c := range hw {
		if i > 0 {
			b = append(b, ':')
		}
		b = append(b, hexDigits[c>>4], hexDigits[c&0xf])
	}
	return string(b)
}
