// Package bootfiles changes the boot root, the directory that bootfs serves
// read-only over TFTP and HTTP: it stores uploaded ISOs under isos/ and
// extracts their ISO 9660 contents where bootenvs expect them
// (<bootenv>/<arch>/), and it stores, lists and deletes any other boot
// file (linuxkit/<name>-kernel, discovery/amd64/vmlinuz, ...).
//
// Every change is all or nothing, also across a crash or a cancelled
// request. Uploads stream to a temporary file in the boot root's own
// filesystem (never whole in memory) and are renamed into place once
// complete and synced; an ISO's trees are extracted into temporary
// directories next to their targets, synced, and then exchanged with the
// old trees in one rename each; the ISO itself is renamed into isos/ last.
// An upload that fails (a wrong checksum, a reader error, a cancelled
// context, a full disk) removes what it wrote and leaves the old files
// untouched. Temporary entries are named ".ironcast-*"; List hides them
// and New removes those a crash left behind.
//
// Paths are confined to the root with os.Root: no "..", no absolute
// paths, no symlinks leading out. Names given by clients are restricted to
// a portable character set (see CleanName and CleanPath); names inside an
// ISO may be any UTF-8 without control characters.
//
// ISO 9660 images are read with github.com/kdomanski/iso9660, which
// gives Rock Ridge names where the image has them. The library does not
// read Joliet: an image without Rock Ridge but with a Joliet tree is
// extracted from that tree by a small reader here (image.go); an image
// with neither is extracted with its ISO 9660 names lower-cased and
// without their ";1" versions, as Linux mounts it by default. Symlinks
// inside an image are skipped (the library cannot give their targets),
// and files over 4 GiB (multi-extent) are refused. Before
// the library sees an image, checkImage walks its directory records and
// refuses what the library cannot survive (a zero-length System Use entry
// it loops on forever, self-referencing continuation areas, directory
// loops), and extraction is bounded in depth, entries and bytes.
package bootfiles
