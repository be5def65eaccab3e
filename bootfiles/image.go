package bootfiles

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"strings"
	"unicode/utf16"

	"github.com/kdomanski/iso9660"
)

// node is a file or directory of an image, whichever tree its names come
// from.
type node interface {
	name() string
	isDir() bool
	symlink() bool
	size() int64
	// reader returns the file's contents.
	reader() io.Reader
	// children lists a directory, without "." and "..".
	children() ([]node, error)
}

// openImage returns the root of an image's tree to extract: the primary
// tree read by github.com/kdomanski/iso9660, with Rock Ridge names where
// the image has them; else the Joliet tree when there is one (the library
// does not read Joliet); else the primary tree with ISO 9660 names as
// Linux shows them (plainName). checkImage runs first and refuses what
// the library cannot survive; a panic of the library becomes an error.
func openImage(ra io.ReaderAt) (root node, err error) {
	defer recoverTo(&err)
	if err := checkImage(ra); err != nil {
		return nil, err
	}
	im, err := iso9660.OpenImage(ra)
	if err != nil {
		return nil, err
	}
	r, err := im.RootDir()
	if err != nil {
		return nil, fmt.Errorf("no primary volume: %w", err)
	}
	kids, err := r.GetAllChildren()
	if err != nil {
		return nil, fmt.Errorf("read root directory: %w", err)
	}
	if len(kids) == 0 {
		return nil, errors.New("empty or unreadable root directory")
	}
	// The library hides whether Rock Ridge was found; its PX entries give
	// POSIX permissions, which plain ISO 9660 entries lack.
	for _, k := range kids {
		if k.Mode().Perm() != 0 {
			return libNode{f: r, rr: true}, nil
		}
	}
	if j, err := jolietRoot(ra); err != nil || j != nil {
		return j, err
	}
	return libNode{f: r}, nil
}

// libNode is an entry of the primary tree, read by the library.
type libNode struct {
	f  *iso9660.File
	rr bool // names are Rock Ridge names
}

func (n libNode) name() string {
	if n.rr {
		return n.f.Name()
	}
	return plainName(n.f.Name())
}
func (n libNode) isDir() bool       { return n.f.IsDir() }
func (n libNode) symlink() bool     { return n.f.Mode()&fs.ModeSymlink != 0 }
func (n libNode) size() int64       { return n.f.Size() }
func (n libNode) reader() io.Reader { return n.f.Reader() }

func (n libNode) children() ([]node, error) {
	kids, err := n.f.GetAllChildren()
	if err != nil {
		return nil, err
	}
	out := make([]node, 0, len(kids))
	for _, k := range kids {
		if nm := k.Name(); nm == "\x00" || nm == "\x01" {
			continue // "." and ".."
		}
		out = append(out, libNode{f: k, rr: n.rr})
	}
	return out, nil
}

// jolietRoot returns the root of the Joliet tree (a supplementary volume
// descriptor with a UCS-2 escape sequence, "%/@", "%/C" or "%/E"), or nil
// when the image has none.
func jolietRoot(ra io.ReaderAt) (node, error) {
	buf := make([]byte, sector)
	for s := int64(16); s <= 16+64; s++ {
		if _, err := ra.ReadAt(buf, s*sector); err != nil {
			return nil, fmt.Errorf("read volume descriptor %d: %w", s-16, err)
		}
		switch buf[0] {
		case 255:
			return nil, nil
		case 2:
			if esc := string(buf[88:91]); esc == "%/@" || esc == "%/C" || esc == "%/E" {
				rec := buf[156 : 156+34]
				return &jolietNode{t: &jolietTree{ra: ra, seen: map[uint32]bool{}}, dir: true,
					lba: le32(rec[2:]), length: le32(rec[10:])}, nil
			}
		}
	}
	return nil, nil
}

// jolietTree is what the nodes of one Joliet tree share.
type jolietTree struct {
	ra   io.ReaderAt
	seen map[uint32]bool // directory extents listed, against loops
}

// jolietNode is an entry of the Joliet tree.
type jolietNode struct {
	t           *jolietTree
	nm          string
	dir         bool
	lba, length uint32
}

func (n *jolietNode) name() string  { return n.nm }
func (n *jolietNode) isDir() bool   { return n.dir }
func (n *jolietNode) symlink() bool { return false }
func (n *jolietNode) size() int64   { return int64(n.length) }
func (n *jolietNode) reader() io.Reader {
	return io.NewSectionReader(n.t.ra, int64(n.lba)*sector, int64(n.length))
}

// children parses the directory's records (ECMA-119 9.1), whose
// identifiers are UCS-2 big-endian in a Joliet tree.
func (n *jolietNode) children() ([]node, error) {
	if n.t.seen[n.lba] {
		return nil, fmt.Errorf("directory extent %d is reached twice (a directory loop)", n.lba)
	}
	n.t.seen[n.lba] = true
	var out []node
	buf := make([]byte, sector)
	for off := uint32(0); off < n.length; off += sector {
		if _, err := n.t.ra.ReadAt(buf, int64(n.lba)*sector+int64(off)); err != nil {
			return nil, fmt.Errorf("read directory extent %d: %w", n.lba, err)
		}
		for i := 0; i < sector; {
			l := int(buf[i])
			if l == 0 {
				break
			}
			if i+l > sector || l < 34 || 33+int(buf[i+32]) > l {
				return nil, fmt.Errorf("malformed directory record in extent %d", n.lba)
			}
			rec := buf[i : i+l]
			i += l
			if len(out) >= maxEntries {
				return nil, fmt.Errorf("directory extent %d holds more than %d records", n.lba, maxEntries)
			}
			id := rec[33 : 33+int(rec[32])]
			if len(id) == 1 && (id[0] == 0 || id[0] == 1) {
				continue // "." and ".."
			}
			if rec[25]&0x80 != 0 {
				return nil, errors.New("the image holds a file in several extents (over 4 GiB), which cannot be extracted")
			}
			out = append(out, &jolietNode{t: n.t, nm: ucs2Name(id), dir: rec[25]&2 != 0,
				lba: le32(rec[2:]), length: le32(rec[10:])})
		}
	}
	return out, nil
}

// ucs2Name decodes a Joliet identifier and drops a ";1" version.
func ucs2Name(b []byte) string {
	u := make([]uint16, len(b)/2)
	for i := range u {
		u[i] = uint16(b[2*i])<<8 | uint16(b[2*i+1])
	}
	name := string(utf16.Decode(u))
	if i := strings.LastIndexByte(name, ';'); i >= 0 {
		name = name[:i]
	}
	return name
}
