package imagebuild

import (
	"bytes"
	"compress/gzip"
	"fmt"
	"io"
	"path"
	"sort"
	"strings"

	"github.com/u-root/u-root/pkg/cpio"
)

// Tree is the content of an initramfs, built in memory: regular files,
// directories, symlinks and character devices keyed by their path inside
// the archive ("bin/busybox", no leading slash). Parent directories are
// added implicitly. A Tree is not safe for concurrent use.
type Tree struct {
	entries map[string]entry
}

type entry struct {
	mode         uint64 // cpio S_IF* type bits | permission bits
	data         []byte // file contents or symlink target
	rmajor, rmin uint64 // character devices only
}

// NewTree returns an empty tree.
func NewTree() *Tree { return &Tree{entries: map[string]entry{}} }

// File adds a regular file with the given permission bits. The tree keeps
// data; the caller must not modify it afterwards.
func (t *Tree) File(name string, data []byte, perm uint64) {
	t.add(name, entry{mode: cpio.S_IFREG | perm&0o7777, data: data})
}

// Symlink adds a symbolic link at name pointing to target.
func (t *Tree) Symlink(name, target string) {
	t.add(name, entry{mode: cpio.S_IFLNK | 0o777, data: []byte(target)})
}

// Dir adds a directory with the given permission bits (parents of other
// entries get 0755 without being added explicitly).
func (t *Tree) Dir(name string, perm uint64) {
	t.add(name, entry{mode: cpio.S_IFDIR | perm&0o7777})
}

// CharDev adds a character device node, e.g. dev/console (5, 1).
func (t *Tree) CharDev(name string, perm, major, minor uint64) {
	t.add(name, entry{mode: cpio.S_IFCHR | perm&0o7777, rmajor: major, rmin: minor})
}

// Has reports whether name was added (explicitly, not as an implied parent).
func (t *Tree) Has(name string) bool {
	_, ok := t.entries[clean(name)]
	return ok
}

// Names returns every explicit entry, sorted.
func (t *Tree) Names() []string {
	names := make([]string, 0, len(t.entries))
	for n := range t.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	return names
}

func (t *Tree) add(name string, e entry) { t.entries[clean(name)] = e }

func clean(name string) string {
	return strings.TrimPrefix(path.Clean("/"+name), "/")
}

// WriteCPIO writes the tree as an uncompressed newc cpio archive, the
// format the kernel unpacks as an initramfs. The output depends only on
// the tree and mtime: entries are sorted by path (so every directory comes
// before its contents), owners are 0:0, every timestamp is mtime (seconds
// since the epoch, e.g. SOURCE_DATE_EPOCH) and inode numbers are assigned
// in order.
func (t *Tree) WriteCPIO(w io.Writer, mtime int64) error {
	all := map[string]entry{}
	for name, e := range t.entries {
		all[name] = e
		for d := path.Dir(name); d != "." && d != "/"; d = path.Dir(d) {
			if _, ok := all[d]; !ok {
				all[d] = entry{mode: cpio.S_IFDIR | 0o755}
			}
		}
	}
	// An explicit entry always wins over an implied parent directory.
	for name, e := range t.entries {
		all[name] = e
	}
	for name, e := range all {
		if e.mode&cpio.S_IFMT != cpio.S_IFDIR {
			for d := path.Dir(name); d != "."; d = path.Dir(d) {
				if p := all[d]; p.mode&cpio.S_IFMT != cpio.S_IFDIR {
					return fmt.Errorf("initramfs: %s needs %s to be a directory", name, d)
				}
			}
		}
	}
	names := make([]string, 0, len(all))
	for n := range all {
		names = append(names, n)
	}
	sort.Strings(names)

	cw := cpio.Newc.Writer(w)
	for i, name := range names {
		e := all[name]
		info := cpio.Info{
			Ino:    uint64(i + 1),
			Mode:   e.mode,
			NLink:  1,
			MTime:  uint64(mtime),
			Name:   name,
			Rmajor: e.rmajor,
			Rminor: e.rmin,
		}
		if e.mode&cpio.S_IFMT == cpio.S_IFDIR {
			info.NLink = 2
		}
		var rec cpio.Record
		if e.data != nil {
			rec = cpio.StaticRecord(e.data, info)
		} else {
			rec = cpio.Record{Info: info}
		}
		if err := cw.WriteRecord(rec); err != nil {
			return fmt.Errorf("write cpio record %s: %w", name, err)
		}
	}
	if err := cpio.WriteTrailer(cw); err != nil {
		return fmt.Errorf("write cpio trailer: %w", err)
	}
	return nil
}

// Initramfs returns the tree as a gzip-compressed newc cpio archive. The
// gzip header carries no name and no timestamp, so equal trees give equal
// bytes (for a given Go version's compress/flate).
func (t *Tree) Initramfs(mtime int64) ([]byte, error) {
	var buf bytes.Buffer
	zw, err := gzip.NewWriterLevel(&buf, gzip.BestCompression)
	if err != nil {
		return nil, err
	}
	if err := t.WriteCPIO(zw, mtime); err != nil {
		return nil, err
	}
	if err := zw.Close(); err != nil {
		return nil, fmt.Errorf("gzip initramfs: %w", err)
	}
	return buf.Bytes(), nil
}
