package bootfiles

import (
	"bytes"
	"context"
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

// FuzzExtract feeds corrupted images to PutISO: it must return (an error
// or a result) without panicking, and write nothing outside the root or
// left over.
func FuzzExtract(f *testing.F) {
	isoPath := buildISO(f, isoSpec{
		files:    map[string]string{"casper/vmlinuz": "kernel", "casper/initrd": "initrd", "a/b/c/d": "deep"},
		symlinks: map[string]string{"link": "."},
	})
	img, err := os.ReadFile(isoPath)
	if err != nil {
		f.Fatal(err)
	}
	// Seeds corrupt the volume descriptor, the path table and directory
	// records, and the first file.
	for _, off := range []int{16 * 2048, 16*2048 + 156, 18 * 2048, 19 * 2048, 20*2048 + 33, 22 * 2048, 23 * 2048} {
		if off < len(img) {
			f.Add(uint32(off), []byte{0xff, 0x00, 0xff, 0x7f})
		}
	}
	f.Fuzz(func(t *testing.T, off uint32, patch []byte) {
		b := bytes.Clone(img)
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
