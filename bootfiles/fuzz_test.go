package bootfiles

import (
	"bytes"
	"context"
	"encoding/binary"
	"os"
	"path"
	"path/filepath"
	"strings"
	"testing"
)

var pathSeeds = []string{
	"discovery/amd64/vmlinuz", "/linuxkit/demo-kernel", "isos/ubuntu-24.04.1-live-server-amd64.iso",
	"../x", "a/../b", "a//b", "./a", "a/.", ".ironcast-upload-x", "a\x00b", "a\\b", "", "/", "//",
	"a b", "é", "a/b/", "~user", "a@b=c,d+e",
}

// FuzzCleanPath: whatever CleanPath accepts is a clean relative path of
// portable, non-hidden components that stays below any root, and cleaning
// it again changes nothing.
func FuzzCleanPath(f *testing.F) {
	for _, s := range pathSeeds {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		clean, err := CleanPath(p)
		if err != nil {
			return
		}
		if clean == "" || path.IsAbs(clean) || path.Clean(clean) != clean || strings.HasPrefix(clean, "..") {
			t.Fatalf("CleanPath(%q) = %q: not a clean relative path", p, clean)
		}
		for _, c := range strings.Split(clean, "/") {
			if c == "" || c[0] == '.' || strings.ContainsAny(c, "\x00\\ \n") {
				t.Fatalf("CleanPath(%q) = %q: component %q", p, clean, c)
			}
		}
		root := "/srv/boot"
		if j := filepath.Join(root, clean); !strings.HasPrefix(j, root+"/") {
			t.Fatalf("CleanPath(%q) = %q leaves the root: %s", p, clean, j)
		}
		if again, err := CleanPath(clean); err != nil || again != clean {
			t.Fatalf("CleanPath(%q) = %q, %v; want it unchanged", clean, again, err)
		}
		if err := CleanName(clean); err == nil && strings.Contains(clean, "/") {
			t.Fatalf("CleanName accepts %q", clean)
		}
	})
}

// FuzzImageName: names read from an image are written only when they are
// one component that cannot step out of the tree.
func FuzzImageName(f *testing.F) {
	for _, s := range append(pathSeeds, "\x00", "\x01", "..", "VMLINUZ.;1", "a\x7fb") {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, n string) {
		if !imageName(n) {
			return
		}
		if n == "." || n == ".." || strings.ContainsAny(n, "/\x00") || path.Base(n) != n {
			t.Fatalf("imageName accepts %q", n)
		}
	})
}

// FuzzExtract feeds corrupted images (Rock Ridge, or Joliet only) to PutISO: it must return (an error
// or a result) without panicking, and write nothing outside the root or
// left over.
func FuzzExtract(f *testing.F) {
	files := map[string]string{"casper/vmlinuz": "kernel", "casper/initrd": "initrd", "a/b/c/d": "deep"}
	img, err := os.ReadFile(buildISO(f, isoSpec{files: files, symlinks: map[string]string{"link": "."}}))
	if err != nil {
		f.Fatal(err)
	}
	jimg, err := os.ReadFile(buildISO(f, isoSpec{files: files, joliet: true}))
	if err != nil {
		f.Fatal(err)
	}
	// Seeds corrupt the volume descriptor, the path table and directory
	// records, and the first file.
	for _, off := range []int{16 * 2048, 16*2048 + 156, 18 * 2048, 19 * 2048, 20*2048 + 33, 22 * 2048, 23 * 2048} {
		if off < len(img) {
			f.Add(false, uint32(off), []byte{0xff, 0x00, 0xff, 0x7f})
			f.Add(true, uint32(off), []byte{0xff, 0x00, 0xff, 0x7f})
		}
	}
	// Found by this fuzzer: a directory record whose System Use area holds
	// an entry of length 0, on which the reader library loops forever.
	f.Add(false, uint32(19*2048), []byte("\xff\x00"))
	f.Fuzz(func(t *testing.T, joliet bool, off uint32, patch []byte) {
		b := bytes.Clone(img)
		if joliet {
			b = bytes.Clone(jimg)
		}
		if int(off) < len(b) {
			copy(b[off:], patch)
		}
		parent := t.TempDir()
		root := filepath.Join(parent, "root")
		if err := os.Mkdir(root, 0o755); err != nil {
			t.Fatal(err)
		}
		s := newStore(t, root)
		_, _ = s.PutISO(context.Background(), "f.iso", bytes.NewReader(b), Expect{Dirs: []string{"fz/amd64"}})
		if l := leftovers(t, root); len(l) != 0 {
			t.Fatalf("temporary entries left: %q", l)
		}
		entries, _ := os.ReadDir(parent)
		if len(entries) != 1 {
			t.Fatalf("entries written beside the root: %v", entries)
		}
	})
}

// TestCheckImage: checkImage accepts what xorriso makes and refuses the
// structures the reader library cannot survive.
func TestCheckImage(t *testing.T) {
	rr, err := os.ReadFile(buildISO(t, ubuntuLike(11)))
	if err != nil {
		t.Fatal(err)
	}
	plain, err := os.ReadFile(buildISO(t, isoSpec{files: map[string]string{"a/b": "c"}, plain: true}))
	if err != nil {
		t.Fatal(err)
	}
	patched := func(b []byte, off int, p string) []byte {
		b = bytes.Clone(b)
		copy(b[off:], p)
		return b
	}
	// The root directory's extent, from the primary volume descriptor.
	rootLBA := int(le32(rr[16*sector+156+2:]))
	first := rootLBA * sector                                       // the root's "." record
	su := first + 33 + 1                                            // its System Use area (name "\x00", no padding)
	child := first + int(rr[first]) + int(rr[first+int(rr[first])]) // after "." and "..": .disk/
	tests := []struct {
		name    string
		img     []byte
		wantErr string
	}{
		{"Rock Ridge and Joliet", rr, ""},
		{"plain ISO 9660", plain, ""},
		{"zero-length System Use entry", patched(rr, su+2, "\x00"), "length 0"},
		{"short System Use entry", patched(rr, su+2, "\x02"), "length 2"},
		{"continuation area loop", patched(rr, su, "CE\x1c\x01"+
			string(le32both(uint32(rootLBA)))+string(le32both(uint32(33+1)))+string(le32both(28))), "continuation area"},
		{"directory loop", patched(rr, child+2, string(le32both(uint32(rootLBA)))), "reached twice"},
		{"multi-extent file", patched(rr, child+25, "\x82"), "several extents"},
		{"not an image", make([]byte, 40000), "volume descriptor"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := checkImage(bytes.NewReader(tt.img))
			if tt.wantErr == "" {
				if err != nil {
					t.Fatalf("checkImage: %v", err)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("checkImage: %v, want an error containing %q", err, tt.wantErr)
			}
		})
	}
}

// le32both encodes v in ISO 9660's both-endian form.
func le32both(v uint32) []byte {
	b := make([]byte, 8)
	binary.LittleEndian.PutUint32(b, v)
	binary.BigEndian.PutUint32(b[4:], v)
	return b
}
