package bootfiles

import (
	"encoding/binary"
	"errors"
	"fmt"
	"io"
)

// sector is the ISO 9660 logical block size the reader library assumes.
const sector = 2048

// Bounds on Rock Ridge continuation areas (SUSP "CE" entries). Real images
// use one area of a few hundred bytes per long name or symlink.
const (
	maxCEDepth = 8
	maxCELen   = 16 * sector
)

// checkImage walks the directory records of an ISO 9660 image the way
// github.com/kdomanski/iso9660 (v0.4.0) does, and refuses structures that
// the library cannot survive, so that a corrupt or hostile upload gets an
// error instead of hanging or crashing the server:
//
//   - a System Use entry whose length is 0 (the library's SUSP loop never
//     advances) or less than the 4-byte header;
//   - continuation areas nested deeper than maxCEDepth or longer than
//     maxCELen (unbounded recursion, unbounded allocation);
//   - a directory extent reached twice (a directory containing its
//     ancestor, which the library would walk forever).
//
// It also refuses multi-extent files (over 4 GiB), of which the library
// would extract only the first extent.
//
// Everything else the library rejects or recovers from itself is left to
// it: checkImage returns nil for records it cannot parse.
func checkImage(ra io.ReaderAt) error {
	buf := make([]byte, sector)
	var root []byte
	for s := int64(16); root == nil || buf[0] != 255; s++ {
		if s > 16+64 {
			return errors.New("no volume descriptor set terminator in the first 64 descriptors")
		}
		if _, err := ra.ReadAt(buf, s*sector); err != nil {
			return fmt.Errorf("read volume descriptor %d: %w", s-16, err)
		}
		if buf[0] == 1 && root == nil {
			root = append([]byte(nil), buf[156:156+34]...)
		}
		if buf[0] == 255 && root == nil {
			return errors.New("no primary volume descriptor")
		}
	}
	c := &imageCheck{ra: ra, seen: map[uint32]bool{}}
	return c.dir(le32(root[2:]), le32(root[10:]), true, 0)
}

type imageCheck struct {
	ra      io.ReaderAt
	susp    bool // the root's "." record starts with an SP entry
	skip    int  // bytes to skip in each System Use area (SP)
	records int
	seen    map[uint32]bool // directory extents walked
}

func le32(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }

func (c *imageCheck) dir(lba, length uint32, isRoot bool, depth int) error {
	if depth > maxDepth {
		return nil // the extractor refuses this depth itself
	}
	if c.seen[lba] {
		return fmt.Errorf("directory extent %d is reached twice (a directory loop)", lba)
	}
	c.seen[lba] = true
	buf := make([]byte, sector)
	for off := uint32(0); off < length; off += sector {
		if _, err := c.ra.ReadAt(buf, int64(lba)*sector+int64(off)); err != nil {
			return nil // the library stops reading this directory here too
		}
		for i := 0; i < sector; {
			l := int(buf[i])
			if l == 0 {
				break
			}
			if i+l > sector || l < 34 {
				return nil // the library refuses (or panics on, recovered) this record
			}
			rec := buf[i : i+l]
			i += l
			if c.records++; c.records > maxEntries {
				return fmt.Errorf("more than %d directory records", maxEntries)
			}
			nameLen := int(rec[32])
			start := 33 + nameLen + (nameLen+1)%2
			if start > l {
				return nil // library panics, recovered
			}
			su := rec[start:]
			self := nameLen == 1 && rec[33] == 0
			parent := nameLen == 1 && rec[33] == 1
			if isRoot && self {
				if _, err := c.su(su, 0); err != nil {
					return err
				}
				if len(su) >= 7 && su[0] == 'S' && su[1] == 'P' && su[4] == 0xbe && su[5] == 0xef {
					c.susp, c.skip = true, int(su[6])
				}
				continue
			}
			pxDir := false
			if c.susp && c.skip <= len(su) {
				var err error
				if pxDir, err = c.su(su[c.skip:], 0); err != nil {
					return err
				}
			}
			if self || parent {
				continue
			}
			if rec[25]&0x80 != 0 {
				// ECMA-119 9.1.6: "multi-extent", how files over 4 GiB are
				// stored; the library reads only one extent of each.
				return errors.New("the image holds a file in several extents (over 4 GiB), which cannot be extracted")
			}
			if rec[25]&2 != 0 || pxDir {
				if err := c.dir(le32(rec[2:]), le32(rec[10:]), false, depth+1); err != nil {
					return err
				}
			}
		}
	}
	return nil
}

// su checks one System Use area and the continuation areas it leads to,
// and reports whether a Rock Ridge PX entry in them marks a directory.
func (c *imageCheck) su(area []byte, depth int) (dir bool, err error) {
	for len(area) >= 4 {
		l := int(area[2])
		if l < 4 {
			return false, fmt.Errorf("malformed Rock Ridge data: %q entry of length %d", area[:2], l)
		}
		if l > len(area) {
			return dir, nil // the library refuses this area
		}
		e := area[:l]
		area = area[l:]
		switch string(e[:2]) {
		case "PX":
			if l >= 12 && le32(e[4:])&0o170000 == 0o040000 {
				dir = true
			}
		case "CE":
			if l != 28 {
				return dir, nil // the library refuses this entry
			}
			loc, off, n := le32(e[4:]), le32(e[12:]), le32(e[20:])
			if depth >= maxCEDepth || n > maxCELen {
				return false, fmt.Errorf("malformed Rock Ridge data: continuation area of %d bytes at depth %d", n, depth+1)
			}
			b := make([]byte, n)
			// The library computes the offset in uint32 arithmetic.
			if _, err := c.ra.ReadAt(b, int64(loc*sector+off)); err != nil {
				return dir, nil // the library refuses this area
			}
			d, err := c.su(b, depth+1)
			if err != nil {
				return false, err
			}
			dir = dir || d
		}
	}
	return dir, nil
}
