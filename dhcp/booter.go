package dhcp

import (
	"context"
	"fmt"
	"net/netip"
	"strings"

	"github.com/ironcast/ironcast/model"
)

// Default boot program names, as shipped by Debian's ipxe and
// grub-efi-arm64-bin packages (/usr/lib/ipxe and
// /usr/lib/grub/arm64-efi/monolithic); the TFTP and HTTP servers look them
// up there.
const (
	DefaultBIOSFile   = "undionly.kpxe"
	DefaultUEFI64File = "snponly.efi"
	DefaultARM64File  = "grubnetaa64.efi"
	DefaultHTTPPort   = 8091
	// DefaultScriptPath is the iPXE script path; {mac} becomes the
	// client's MAC address (lower-case, colon-separated).
	DefaultScriptPath = "/{mac}.ipxe"
)

// StaticBooter gives every netbooting client the boot program for its
// firmware, without looking at the machine:
//
//   - BIOS PXE (arch 0) → BIOSFile over TFTP (undionly.kpxe);
//   - UEFI x64 PXE (arch 7, 9) → UEFI64File over TFTP (snponly.efi; ipxe.efi
//     also works, about 6 s slower to reach the script);
//   - UEFI arm64 PXE (arch 11) → ARM64File over TFTP (grubnetaa64.efi:
//     Debian ships no arm64 iPXE);
//   - UEFI x64 HTTP boot (arch 16) → http://server:port/UEFI64File with
//     option 60 "HTTPClient"; arm64 HTTP boot (19) → the ARM64File URL;
//   - iPXE (user class "iPXE" or option 175), any arch but arm64 →
//     http://server:port/ScriptPath.
//
// Other architectures (IA32, ARM32) get no boot options. DHCP cannot tell a
// ROM iPXE from a chainloaded one (FIELD.md), so iPXE always gets the
// script, never iPXE again. The zero value uses the defaults above and is
// safe for concurrent use.
type StaticBooter struct {
	// NextServer is the TFTP server; zero means the request's ServerAddr.
	NextServer netip.Addr
	// HTTPHost is the host in URLs; empty means the request's ServerAddr.
	HTTPHost string
	// HTTPPort is the HTTP boot port (default 8091).
	HTTPPort int
	// BIOSFile, UEFI64File and ARM64File name the boot programs.
	BIOSFile, UEFI64File, ARM64File string
	// ScriptPath is the iPXE script path ("/{mac}.ipxe"); {mac} and {uuid}
	// (option 97, may be empty) are replaced.
	ScriptPath string
}

var _ Booter = StaticBooter{}

// BootReply implements Booter.
func (b StaticBooter) BootReply(_ context.Context, req model.BootRequest) (model.BootReply, error) {
	ns := b.NextServer
	if !ns.IsValid() {
		ns = req.ServerAddr
	}
	host := b.HTTPHost
	if host == "" && req.ServerAddr.IsValid() {
		host = req.ServerAddr.String()
	}
	port := b.HTTPPort
	if port == 0 {
		port = DefaultHTTPPort
	}
	url := func(path string) string {
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		return fmt.Sprintf("http://%s:%d%s", host, port, path)
	}
	bios, x64, arm := or(b.BIOSFile, DefaultBIOSFile), or(b.UEFI64File, DefaultUEFI64File), or(b.ARM64File, DefaultARM64File)
	if req.IPXE && req.Firmware.Arch() != model.ArchARM64 {
		p := or(b.ScriptPath, DefaultScriptPath)
		p = strings.NewReplacer("{mac}", req.MAC, "{uuid}", req.ClientUUID).Replace(p)
		return model.BootReply{NextServer: ns, Filename: url(p)}, nil
	}
	switch req.Firmware {
	case model.FirmwareBIOS:
		return model.BootReply{NextServer: ns, Filename: bios}, nil
	case model.FirmwareUEFI64:
		return model.BootReply{NextServer: ns, Filename: x64}, nil
	case model.FirmwareUEFIARM64:
		return model.BootReply{NextServer: ns, Filename: arm}, nil
	case model.FirmwareUEFIHTTP64:
		return model.BootReply{NextServer: ns, Filename: url(x64), HTTPClient: true}, nil
	case model.FirmwareUEFIHTTPARM64:
		return model.BootReply{NextServer: ns, Filename: url(arm), HTTPClient: true}, nil
	}
	return model.BootReply{}, nil
}

func or(s, def string) string {
	if s == "" {
		return def
	}
	return s
}
