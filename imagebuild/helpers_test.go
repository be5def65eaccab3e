package imagebuild

import (
	"context"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"testing"

	"github.com/ironcast/ironcast/test/testenv"
)

// testCacheDir is shared by every test run on this machine, so the ~70 MB
// of packages are downloaded once per package version (the .deb and
// unpacked directory names carry the version).
func testCacheDir() string {
	return filepath.Join(os.TempDir(), "ironcast-imagebuild-cache")
}

var buildMu sync.Mutex

// realBuild builds an image from the real Debian packages into a fresh
// directory, reusing the shared package cache.
func realBuild(t *testing.T, arch string, mode Mode) Result {
	t.Helper()
	testenv.RequireTool(t, "apt-get")
	testenv.RequireTool(t, "dpkg")
	if testing.Short() {
		t.Skip("builds from Debian packages (~70 MB the first time); not in -short")
	}
	buildMu.Lock()
	defer buildMu.Unlock()
	res, err := Build(context.Background(), Options{
		Arch:     arch,
		Mode:     mode,
		OutDir:   t.TempDir(),
		CacheDir: testCacheDir(),
		Logger:   slog.New(slog.NewTextHandler(testWriter{t}, nil)),
	})
	if err != nil {
		t.Fatalf("Build(%s, %s): %v", arch, mode, err)
	}
	return res
}

type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Helper()
	w.t.Log(string(p))
	return len(p), nil
}
