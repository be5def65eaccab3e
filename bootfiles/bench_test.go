package bootfiles

import (
	"context"
	"os"
	"testing"
)

// BenchmarkPutISO uploads, hashes, checks and extracts a 48 MiB image
// (a 32 MiB "squashfs", kernel, initrd) into one tree; MB/s is of the
// image.
func BenchmarkPutISO(b *testing.B) {
	isoPath := buildISO(b, isoSpec{files: map[string]string{
		"casper/filesystem.squashfs": payload(1, 32<<20),
		"casper/vmlinuz":             payload(2, 12<<20),
		"casper/initrd":              payload(3, 4<<20),
	}})
	fi, err := os.Stat(isoPath)
	if err != nil {
		b.Fatal(err)
	}
	sum := fileSum(b, isoPath)
	s := newStore(b, b.TempDir())
	b.SetBytes(fi.Size())
	b.ResetTimer()
	for range b.N {
		f, err := os.Open(isoPath)
		if err != nil {
			b.Fatal(err)
		}
		if _, err := s.PutISO(context.Background(), "bench.iso", f, Expect{Sha256: sum, Dirs: []string{"bench/amd64"}}); err != nil {
			b.Fatal(err)
		}
		f.Close()
	}
}
