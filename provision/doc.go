// Package provision holds ironcast's use cases on top of the store: object
// writes with their cross-object rules (param schemas, secure params,
// password hashing, references, built-in content), param resolution, the
// machine lifecycle, boot decisions and per-machine rendering.
//
// It knows no protocol: the API, DHCP, TFTP and HTTP servers call it
// through interfaces they declare. A Service is safe for concurrent use.
package provision
