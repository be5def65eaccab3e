// Package provision holds ironcast's use cases on top of the store: object
// writes with their cross-object rules (param schemas, secure params,
// password hashing, references, built-in content), param resolution, the
// machine lifecycle, boot decisions and per-machine rendering.
//
// It knows no protocol: the API, DHCP, TFTP and HTTP servers call it
// through interfaces they declare. A Service is safe for concurrent use.
//
// Rendered files are cached while Service.Run runs (render_cache.go,
// render_state.go): Run watches machines, param definitions, profiles,
// bootenvs and templates, and every render first applies the pending
// watch events, so a write invalidates before the next render with no
// TTL involved. Entries live at most MaxRenderCacheTTL (10 minutes) because
// they may embed tokens (machine tokens live 24 h, registration tokens 1 h).
package provision
