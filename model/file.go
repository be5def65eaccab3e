package model

import "net/netip"

// FileRequest is a boot file asked for over TFTP or HTTP, as the file
// source sees it.
type FileRequest struct {
	// Path is the requested path, not yet cleaned; the file source cleans
	// and confines it.
	Path string
	// Protocol is "tftp" or "http".
	Protocol string
	// Remote is the client's address and port.
	Remote netip.AddrPort
	// Local is our address the client reached; URLs rendered for the
	// client use it.
	Local netip.AddrPort
	// Query holds HTTP query parameters (e.g. mac=...); nil for TFTP.
	Query map[string]string `json:",omitempty"`
}
