package bootfiles

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/ironcast/ironcast/test/testenv"
)

// isoSpec describes an image to build with xorriso.
type isoSpec struct {
	files    map[string]string // path → contents
	symlinks map[string]string // path → target
	plain    bool              // no Rock Ridge or Joliet
	joliet   bool              // Joliet names only, no Rock Ridge
}

// buildISO writes spec into a directory and makes an ISO 9660 image of it
// with xorriso (Debian package xorriso). It returns the image's path.
func buildISO(t testing.TB, spec isoSpec) string {
	t.Helper()
	xorriso := testenv.RequireTool(t, "xorriso")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for p, c := range spec.files {
		full := filepath.Join(src, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	for p, target := range spec.symlinks {
		full := filepath.Join(src, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.Symlink(target, full); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "image.iso")
	args := []string{"-as", "mkisofs", "-quiet", "-R", "-J", "-V", "IRONCAST_TEST", "-o", out, src}
	if spec.plain || spec.joliet {
		// xorriso writes Rock Ridge unless told not to, even as mkisofs.
		joliet := "off"
		if spec.joliet {
			joliet = "on"
		}
		args = []string{"-rockridge", "off", "-joliet", joliet, "-outdev", out, "-map", src, "/"}
	}
	cmd := exec.Command(xorriso, args...)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, b)
	}
	return out
}

// payload returns n pseudo-random bytes, fixed by seed.
func payload(seed uint64, n int) string {
	r := rand.New(rand.NewPCG(seed, 1))
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(r.Uint32())
	}
	return string(b)
}

func sumOf(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

func fileSum(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return sumOf(b)
}

// tree returns every regular file below dir with its contents, and "->"
// markers for anything else that is not a directory.
func tree(t testing.TB, dir string) map[string]string {
	t.Helper()
	out := map[string]string{}
	err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		rel = filepath.ToSlash(rel)
		switch {
		case d.IsDir():
		case d.Type().IsRegular():
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			out[rel] = string(b)
		default:
			out[rel] = "-> " + d.Type().String()
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// leftovers lists temporary entries anywhere below root.
func leftovers(t testing.TB, root string) []string {
	t.Helper()
	var out []string
	_ = filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err == nil && strings.HasPrefix(d.Name(), tempPrefix) {
			out = append(out, p)
		}
		return nil
	})
	sort.Strings(out)
	return out
}

func newStore(t testing.TB, root string) *Store {
	t.Helper()
	s, err := New(Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func openISO(t testing.TB, p string) *os.File {
	t.Helper()
	f, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { f.Close() })
	return f
}

// short summarises file contents for diffs: sha256 prefix and length.
func short(m map[string]string) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if strings.HasPrefix(v, "-> ") {
			out[k] = v
			continue
		}
		out[k] = fmt.Sprintf("%.12s/%d", sumOf([]byte(v)), len(v))
	}
	return out
}
