package bolt

import (
	"encoding/binary"
	"errors"
	"fmt"
	"hash/fnv"
	"io/fs"
	"os"
)

// bbolt's on-disk meta page (go.etcd.io/bbolt/internal/common/meta.go),
// written in the machine's byte order after a 16-byte page header.
const (
	boltMagic      = 0xED0CDAED
	boltVersion    = 2
	pageHeaderSize = 16
	metaSumOffset  = 56 // checksum covers the meta bytes before it
	metaSize       = 64
)

type boltMeta struct {
	pageSize        uint32
	root, freelist  uint64
	highWater, txid uint64
}

func parseMeta(page []byte) (boltMeta, bool) {
	if len(page) < pageHeaderSize+metaSize {
		return boltMeta{}, false
	}
	b := page[pageHeaderSize : pageHeaderSize+metaSize]
	ne := binary.NativeEndian
	if ne.Uint32(b[0:]) != boltMagic || ne.Uint32(b[4:]) != boltVersion {
		return boltMeta{}, false
	}
	h := fnv.New64a()
	h.Write(b[:metaSumOffset])
	if h.Sum64() != ne.Uint64(b[metaSumOffset:]) {
		return boltMeta{}, false
	}
	return boltMeta{
		pageSize:  ne.Uint32(b[8:]),
		root:      ne.Uint64(b[16:]),
		freelist:  ne.Uint64(b[32:]),
		highWater: ne.Uint64(b[40:]),
		txid:      ne.Uint64(b[48:]),
	}, true
}

// checkFile refuses a bbolt file that is shorter than its meta page says.
// bbolt maps the file and would fault (SIGBUS, which no recover catches)
// on the first page past its end, for example in a truncated copy. A
// missing or empty file passes: bbolt makes a new database there. Other
// damage is left to bbolt's own checks.
func checkFile(path string) error {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return err
	}
	defer f.Close()
	fi, err := f.Stat()
	if err != nil {
		return err
	}
	size := fi.Size()
	if size == 0 {
		return nil
	}
	read := func(off int64) []byte {
		buf := make([]byte, pageHeaderSize+metaSize)
		n, _ := f.ReadAt(buf, off)
		return buf[:n]
	}
	var metas []boltMeta
	m0, ok0 := parseMeta(read(0))
	if ok0 {
		metas = append(metas, m0)
	}
	// The second meta page is one page in; bbolt guesses the OS page size
	// when the first is unreadable.
	ps := int64(os.Getpagesize())
	if ok0 {
		ps = int64(m0.pageSize)
	}
	if m1, ok := parseMeta(read(ps)); ok {
		metas = append(metas, m1)
	}
	if len(metas) == 0 {
		return fmt.Errorf("not a bolt database or corrupted: no valid meta page in %d bytes", size)
	}
	m := metas[0]
	for _, o := range metas[1:] {
		if o.txid > m.txid {
			m = o
		}
	}
	need := int64(m.highWater) * int64(m.pageSize)
	if m.pageSize == 0 || need > size || m.root >= m.highWater || m.freelist >= m.highWater && m.freelist != ^uint64(0) {
		return fmt.Errorf("not a bolt database or corrupted: truncated, %d bytes where its meta page (txid %d) needs %d", size, m.txid, need)
	}
	return nil
}
