// Package bootfilestest builds ISO 9660 images for tests with xorriso
// (Debian package xorriso), skipping the test, or failing it when
// IRONCAST_TEST_STRICT=1, if xorriso is missing.
package bootfilestest

import (
	"os"
	"os/exec"
	"path/filepath"
	"testing"

	"github.com/ironcast/ironcast/test/testenv"
)

// BuildISO writes files (path → contents) into a directory and makes an
// ISO 9660 image of it with Rock Ridge and Joliet names. It returns the
// image's path, in a directory removed when the test ends.
func BuildISO(t testing.TB, files map[string]string) string {
	t.Helper()
	xorriso := testenv.RequireTool(t, "xorriso")
	dir := t.TempDir()
	src := filepath.Join(dir, "src")
	for p, c := range files {
		full := filepath.Join(src, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte(c), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(dir, "image.iso")
	cmd := exec.Command(xorriso, "-as", "mkisofs", "-quiet", "-R", "-J", "-V", "IRONCAST_TEST", "-o", out, src)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("xorriso: %v\n%s", err, b)
	}
	return out
}
