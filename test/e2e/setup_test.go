package e2e

import (
	"context"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"os/signal"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ironcast/ironcast/imagebuild"
	"github.com/ironcast/ironcast/test/e2e/harness"
	"github.com/ironcast/ironcast/test/testenv"
)

// tmpRoot holds what every test of the run shares: the ironcast binary and
// the built images.
var tmpRoot string

func TestMain(m *testing.M) {
	var err error
	tmpRoot, err = os.MkdirTemp("", "ironcast-e2e-")
	if err != nil {
		fmt.Fprintln(os.Stderr, "e2e:", err)
		os.Exit(1)
	}
	// An interrupted run tears down its namespaces, servers and machines
	// (they also die with this process: they carry a parent-death signal).
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, syscall.SIGINT, syscall.SIGTERM)
	go func() {
		s := <-sig
		fmt.Fprintf(os.Stderr, "e2e: %v: tearing down\n", s)
		harness.CloseAll()
		os.RemoveAll(tmpRoot)
		os.Exit(130)
	}()
	code := m.Run()
	harness.CloseAll()
	os.RemoveAll(tmpRoot)
	os.Exit(code)
}

// requireTools skips (or, strict, fails) without root or the tools the
// harness runs.
func requireTools(t *testing.T, arm64 bool) {
	t.Helper()
	testenv.RequireRoot(t)
	tools := []string{"ip", "qemu-system-x86_64", "dnsmasq", "apt-get", "dpkg", "go"}
	if arm64 {
		tools = append(tools, "qemu-system-aarch64")
	}
	for _, tool := range tools {
		testenv.RequireTool(t, tool)
	}
	files := []string{"/usr/share/OVMF/OVMF_CODE_4M.fd", "/usr/share/OVMF/OVMF_VARS_4M.fd", "/usr/lib/ipxe/snponly.efi", "/usr/lib/ipxe/qemu/pxe-virtio.rom"}
	if arm64 {
		files = append(files, "/usr/share/AAVMF/AAVMF_CODE.fd")
	}
	for _, f := range files {
		if _, err := os.Stat(f); err != nil {
			testenv.RequireTool(t, f) // skips or fails with the package hint
		}
	}
}

var (
	binOnce sync.Once
	binPath string
	binErr  error
)

// ironcastBinary builds ./cmd/ironcast once per run, or returns
// $IRONCAST_E2E_BINARY when set.
func ironcastBinary(t *testing.T) string {
	t.Helper()
	if p := os.Getenv("IRONCAST_E2E_BINARY"); p != "" {
		return p
	}
	binOnce.Do(func() {
		binPath = filepath.Join(tmpRoot, "ironcast")
		cmd := exec.Command("go", "build", "-o", binPath, "github.com/ironcast/ironcast/cmd/ironcast")
		cmd.Dir = "../.."
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build ./cmd/ironcast: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// cacheDir is where downloaded packages are kept between runs.
func cacheDir() string {
	if d := os.Getenv("IRONCAST_E2E_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		return filepath.Join(os.TempDir(), "ironcast-e2e-cache")
	}
	return filepath.Join(d, "ironcast", "e2e")
}

// testImage is the name of the LinuxKit-style test image per arch.
func testImage(arch string) string { return "ironcast-test-" + arch }

type archImages struct {
	once sync.Once
	err  error
}

var (
	imagesMu sync.Mutex
	images   = map[string]*archImages{}
)

// bootDir returns a directory holding, for each arch, the discovery image
// (discovery/<arch>/) and the test image (linuxkit/), built from Debian
// packages by imagebuild, plus grubnetaa64.efi for arm64. Each arch is
// built once per run.
func bootDir(t *testing.T, arches ...string) string {
	t.Helper()
	dir := filepath.Join(tmpRoot, "boot")
	var wg sync.WaitGroup
	errs := make([]error, len(arches))
	for i, arch := range arches {
		imagesMu.Lock()
		ai := images[arch]
		if ai == nil {
			ai = &archImages{}
			images[arch] = ai
		}
		imagesMu.Unlock()
		wg.Add(1)
		go func() {
			defer wg.Done()
			ai.once.Do(func() { ai.err = buildImages(t, arch, dir) })
			errs[i] = ai.err
		}()
	}
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func buildImages(t *testing.T, arch, dir string) error {
	start := time.Now()
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	log := slog.New(slog.NewTextHandler(testWriter{t}, &slog.HandlerOptions{Level: slog.LevelWarn}))
	cache := filepath.Join(cacheDir(), "imagebuild")
	// Each arch writes its own directories; the two arches may build at once.
	if _, err := imagebuild.Build(ctx, imagebuild.Options{Arch: arch, OutDir: dir, CacheDir: cache, Logger: log}); err != nil {
		return fmt.Errorf("build the %s discovery image: %w", arch, err)
	}
	if _, err := imagebuild.BuildTestImage(ctx, imagebuild.Options{Arch: arch, OutDir: dir, CacheDir: cache, Logger: log, Name: testImage(arch)}); err != nil {
		return fmt.Errorf("build the %s test image: %w", arch, err)
	}
	if arch == "arm64" {
		if err := fetchGrubArm64(ctx, filepath.Join(cache, "apt", "arm64"), filepath.Join(cacheDir(), "grub"), dir); err != nil {
			return err
		}
	}
	t.Logf("built the %s images in %s", arch, time.Since(start).Round(time.Second))
	return nil
}

// fetchGrubArm64 puts grubnetaa64.efi into dir. Debian ships it only in
// the arm64 package grub-efi-arm64-bin, which is downloaded with the
// arm64 package lists imagebuild keeps under aptDir (the host's dpkg
// architectures are not touched) and unpacked with dpkg -x.
func fetchGrubArm64(ctx context.Context, aptDir, cache, dir string) error {
	const pkg = "grub-efi-arm64-bin"
	const rel = "usr/lib/grub/arm64-efi/monolithic/grubnetaa64.efi"
	opts := []string{
		"-o", "APT::Architecture=arm64", "-o", "APT::Architectures=arm64",
		"-o", "Dir::State=" + filepath.Join(aptDir, "state"),
		"-o", "Dir::State::Lists=" + filepath.Join(aptDir, "lists"),
		"-o", "Dir::State::Status=" + filepath.Join(aptDir, "status"),
		"-o", "Dir::Cache=" + filepath.Join(aptDir, "cache"),
		"-o", "APT::Sandbox::User=root",
	}
	if err := os.MkdirAll(cache, 0o755); err != nil {
		return err
	}
	debs, _ := filepath.Glob(filepath.Join(cache, pkg+"_*_arm64.deb"))
	if len(debs) == 0 {
		cmd := exec.CommandContext(ctx, "apt-get", append(append(opts, "-q"), "download", pkg)...)
		cmd.Dir = cache
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("apt-get download %s (arm64): %v\n%s", pkg, err, out)
		}
		if debs, _ = filepath.Glob(filepath.Join(cache, pkg+"_*_arm64.deb")); len(debs) == 0 {
			return fmt.Errorf("apt-get download %s left no .deb in %s", pkg, cache)
		}
	}
	x := filepath.Join(cache, "x")
	os.RemoveAll(x)
	if out, err := exec.CommandContext(ctx, "dpkg", "-x", debs[len(debs)-1], x).CombinedOutput(); err != nil {
		return fmt.Errorf("dpkg -x %s: %v\n%s", debs[len(debs)-1], err, out)
	}
	b, err := os.ReadFile(filepath.Join(x, rel))
	if err != nil {
		return fmt.Errorf("%s: %w", pkg, err)
	}
	return os.WriteFile(filepath.Join(dir, "grubnetaa64.efi"), b, 0o644)
}

// testWriter sends a logger's lines to t.Log.
type testWriter struct{ t *testing.T }

func (w testWriter) Write(p []byte) (int, error) {
	w.t.Log(strings.TrimRight(string(p), "\n"))
	return len(p), nil
}

// artifactsDir is where a test's logs go: $IRONCAST_E2E_ARTIFACTS or
// test/e2e/artifacts, one directory per test, emptied first.
func artifactsDir(t *testing.T) string {
	root := os.Getenv("IRONCAST_E2E_ARTIFACTS")
	if root == "" {
		root = "artifacts"
	}
	d, err := filepath.Abs(filepath.Join(root, regexp.MustCompile(`[^A-Za-z0-9_.-]+`).ReplaceAllString(t.Name(), "_")))
	if err != nil {
		t.Fatal(err)
	}
	os.RemoveAll(d)
	if err := os.MkdirAll(d, 0o755); err != nil {
		t.Fatal(err)
	}
	return d
}

// newEnv starts a server in a fresh namespace with the images of arches
// in its boot root. It is closed when the test ends; on failure the test
// says where the artifacts are.
func newEnv(t *testing.T, arches ...string) *harness.Env {
	t.Helper()
	bin := ironcastBinary(t)
	boot := bootDir(t, arches...)
	art := artifactsDir(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	env, err := harness.Start(ctx, harness.Options{
		Binary: bin, WorkDir: t.TempDir(), ArtifactsDir: art, BootDir: boot,
		Accel: os.Getenv("IRONCAST_E2E_ACCEL"), RouterAdvertisements: true, Logf: t.Logf,
	})
	if err != nil {
		t.Fatalf("start the test network and server: %v", err)
	}
	t.Cleanup(func() {
		env.Close()
		if t.Failed() {
			t.Logf("artifacts (serial consoles, server log, events) are in %s", art)
		}
	})
	return env
}
