// Package httpboot serves the boot tree over plain HTTP, for iPXE and UEFI
// HTTP boot firmware, which speak neither TLS nor authentication. It is
// the HTTP face of the same file source TFTP uses (bootfs): real files from
// the boot root and per-machine files rendered from templates.
//
// Only GET and HEAD are answered (405 otherwise). Responses carry an exact
// Content-Length and honour Range requests (http.ServeContent). Files from
// disk are copied with sendfile(2): the *os.File under a bootfs.File
// reaches net/http's ReaderFrom, and the response-writer wrapper here keeps
// that path open. There are no directory listings; hostile paths (".."
// in any encoding, NUL, backslashes, symlinks leaving the root) and missing
// files are 404 alike, so a prober learns nothing. A file that fails to
// render is a 500 with a short body and a log line; since rendering
// finishes before the first byte is written, a client never gets half a
// script.
package httpboot
