package model

import "net/netip"

// Firmware is the boot environment a netbooting client runs, as told by
// DHCP option 93 (RFC 4578 client system architecture, with the IANA
// registry's later additions) and options 60, 77 and 175.
type Firmware string

// Firmware kinds ironcast distinguishes.
const (
	FirmwareUnknown       Firmware = ""
	FirmwareBIOS          Firmware = "bios"            // arch 0: x86 BIOS PXE
	FirmwareUEFI32        Firmware = "uefi-ia32"       // arch 6
	FirmwareUEFI64        Firmware = "uefi-x64"        // arch 7 (OVMF), 9 (some vendors)
	FirmwareUEFIARM32     Firmware = "uefi-arm32"      // arch 10
	FirmwareUEFIARM64     Firmware = "uefi-arm64"      // arch 11
	FirmwareUEFIHTTP64    Firmware = "uefi-http-x64"   // arch 16: x64 UEFI HTTP boot
	FirmwareUEFIHTTPARM64 Firmware = "uefi-http-arm64" // arch 19: arm64 UEFI HTTP boot
)

// FirmwareFromArchType maps an option 93 value to a Firmware. ok is false
// for values ironcast does not boot.
func FirmwareFromArchType(code uint16) (f Firmware, ok bool) {
	switch code {
	case 0:
		return FirmwareBIOS, true
	case 6:
		return FirmwareUEFI32, true
	case 7, 9:
		return FirmwareUEFI64, true
	case 10:
		return FirmwareUEFIARM32, true
	case 11:
		return FirmwareUEFIARM64, true
	case 16:
		return FirmwareUEFIHTTP64, true
	case 19:
		return FirmwareUEFIHTTPARM64, true
	}
	return FirmwareUnknown, false
}

// Arch returns the CPU architecture the firmware runs on ("amd64" or
// "arm64"), or "" when unknown or unsupported.
func (f Firmware) Arch() string {
	switch f {
	case FirmwareBIOS, FirmwareUEFI64, FirmwareUEFIHTTP64:
		return ArchAMD64
	case FirmwareUEFIARM64, FirmwareUEFIHTTPARM64:
		return ArchARM64
	}
	return ""
}

// HTTPBoot reports whether the firmware boots over UEFI HTTP boot rather
// than TFTP.
func (f Firmware) HTTPBoot() bool {
	return f == FirmwareUEFIHTTP64 || f == FirmwareUEFIHTTPARM64
}

// UEFI reports whether the firmware is UEFI (PXE or HTTP).
func (f Firmware) UEFI() bool {
	return f != FirmwareBIOS && f != FirmwareUnknown
}

// BootRequest is what a DHCP request tells about a netbooting client.
type BootRequest struct {
	MAC      string
	Firmware Firmware
	// IPXE is true when the client is iPXE (user class "iPXE" or option 175).
	IPXE bool
	// ClientUUID is option 97's GUID, if sent.
	ClientUUID string `json:",omitempty"`
	// ServerAddr is our address on the interface the request arrived on;
	// URLs given to the client use it.
	ServerAddr netip.Addr
	// Interface is the name of that interface.
	Interface string `json:",omitempty"`
}

// BootReply is the boot information to give a client. A zero BootReply
// means "address only, no boot options".
type BootReply struct {
	// NextServer goes in siaddr and option 66.
	NextServer netip.Addr
	// Filename goes in option 67 and the BOOTP file field: a TFTP path or,
	// for iPXE and HTTP boot clients, an http:// URL.
	Filename string
	// HTTPClient asks for option 60 "HTTPClient" in the reply, which UEFI
	// HTTP boot requires.
	HTTPClient bool
}

// Empty reports whether the reply carries no boot information.
func (r BootReply) Empty() bool { return r.Filename == "" }
