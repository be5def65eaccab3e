// Package bootfs is the one file source behind TFTP and HTTP boot: the boot
// root on disk (a directory under the data dir) plus virtual files rendered
// per machine (pxelinux.cfg/01-<mac>, <mac>.ipxe, machines/<uuid>/..., see
// Renderer).
//
// Every request path is cleaned and confined before anything is opened:
//
//   - NUL bytes, backslashes and ".." components are refused (ErrAccess),
//     whatever they would resolve to. Legitimate boot loaders never send
//     them.
//   - Leading slashes are stripped: many PXE ROMs and boot loaders ask for
//     "/pxelinux.0" or "/grub/grub.cfg" and mean the TFTP root. An
//     "absolute" path therefore names a file under the root, never outside
//     it: "/etc/passwd" is root/etc/passwd, which normally does not exist
//     (ErrNotFound).
//   - Files are opened through an [os.Root], so symlinks inside the root
//     work as long as they resolve inside it; one that leaves the root is
//     refused (ErrAccess).
//   - Only regular files are served. Directories, devices and FIFOs are
//     ErrNotFound: there are no listings.
//
// The renderer is asked first, with the cleaned path, so a virtual file
// hides a disk file of the same name. A render error is returned as an
// error and nothing is served: a boot loader must never get half a script.
package bootfs
