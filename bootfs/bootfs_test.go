package bootfs_test

import (
	"context"
	"errors"
	"io"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ironcast/ironcast/bootfs"
	"github.com/ironcast/ironcast/model"
)

// newTree builds a boot root next to a secret outside it:
//
//	dir/secret                 outside the root
//	dir/root/pxelinux.0        "pxe"
//	dir/root/grub/grub.cfg     "grub"
//	dir/root/link.0 -> pxelinux.0           (inside: served)
//	dir/root/esc -> ../secret               (leaves the root)
//	dir/root/abs -> /etc/passwd             (absolute target)
//	dir/root/grub/up -> ..                  (a directory inside: fine)
//	dir/root/grub/upup -> ../..             (a directory outside)
//	dir/root/fifo                           (a FIFO)
func newTree(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(os.MkdirAll(filepath.Join(root, "grub"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "secret"), []byte("secret"), 0o644))
	must(os.WriteFile(filepath.Join(root, "pxelinux.0"), []byte("pxe"), 0o644))
	must(os.WriteFile(filepath.Join(root, "grub", "grub.cfg"), []byte("grub"), 0o644))
	must(os.Symlink("pxelinux.0", filepath.Join(root, "link.0")))
	must(os.Symlink("../secret", filepath.Join(root, "esc")))
	must(os.Symlink("/etc/passwd", filepath.Join(root, "abs")))
	must(os.Symlink("..", filepath.Join(root, "grub", "up")))
	must(os.Symlink("../..", filepath.Join(root, "grub", "upup")))
	must(syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))
	return root
}

func open(t *testing.T, s *bootfs.Source, p string) (string, error) {
	t.Helper()
	f, err := s.Open(context.Background(), model.FileRequest{Path: p, Protocol: "tftp"})
	if err != nil {
		return "", err
	}
	defer f.Close()
	b, err := io.ReadAll(f)
	if err != nil {
		t.Fatalf("read %q: %v", p, err)
	}
	if int64(len(b)) != f.Size() {
		t.Errorf("%q: read %d bytes, Size() = %d", p, len(b), f.Size())
	}
	return string(b), nil
}

func TestOpenPaths(t *testing.T) {
	s, err := bootfs.New(bootfs.Config{Root: newTree(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	const ok, notFound, access = "ok", "not found", "access"
	tests := []struct {
		name string
		path string
		want string // ok, notFound or access
		body string
	}{
		{"plain", "pxelinux.0", ok, "pxe"},
		{"leading slash is root-relative", "/pxelinux.0", ok, "pxe"},
		{"double leading slash", "//grub/grub.cfg", ok, "grub"},
		{"dot segments", "./grub/./grub.cfg", ok, "grub"},
		{"repeated slashes", "grub//grub.cfg", ok, "grub"},
		{"symlink inside root", "link.0", ok, "pxe"},
		{"symlinked dir inside root", "grub/up/pxelinux.0", ok, "pxe"},
		{"missing", "nope.0", notFound, ""},
		{"absolute path names a file under the root", "/etc/passwd", notFound, ""},
		{"empty", "", notFound, ""},
		{"root", "/", notFound, ""},
		{"directory", "grub", notFound, ""},
		{"directory with slash", "grub/", notFound, ""},
		{"fifo", "fifo", notFound, ""},
		{"file as directory", "pxelinux.0/x", notFound, ""},
		{"dotdot", "../secret", access, ""},
		{"dotdot after slash", "/../secret", access, ""},
		{"dotdot in the middle", "grub/../../secret", access, ""},
		{"harmless dotdot still refused", "grub/../pxelinux.0", access, ""},
		{"many dotdots", "../../../../../../etc/passwd", access, ""},
		{"trailing dotdot", "grub/..", access, ""},
		{"nul byte", "pxelinux.0\x00.cfg", access, ""},
		{"backslash", "grub\\grub.cfg", access, ""},
		{"backslash dotdot", "..\\..\\etc\\passwd", access, ""},
		{"symlink leaving root", "esc", access, ""},
		{"symlink to absolute path", "abs", access, ""},
		{"symlinked dir leaving root", "grub/upup/secret", access, ""},
		{"long name", strings.Repeat("a", 300), notFound, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			body, err := open(t, s, tt.path)
			got := ok
			switch {
			case err == nil:
			case errors.Is(err, bootfs.ErrNotFound):
				got = notFound
				if !errors.Is(err, fs.ErrNotExist) {
					t.Errorf("error %v is not fs.ErrNotExist", err)
				}
			case errors.Is(err, bootfs.ErrAccess):
				got = access
				if !errors.Is(err, fs.ErrPermission) {
					t.Errorf("error %v is not fs.ErrPermission", err)
				}
			default:
				t.Fatalf("Open(%q): unclassified error %v", tt.path, err)
			}
			if got != tt.want {
				t.Fatalf("Open(%q) = %s (%v), want %s", tt.path, got, err, tt.want)
			}
			if diff := cmp.Diff(body, tt.body); diff != "" {
				t.Errorf("body (-got +want):\n%s", diff)
			}
		})
	}
}

func TestRenderer(t *testing.T) {
	renderErr := errors.New("template ipxe: missing param \"foo\"")
	var seen []string
	r := bootfs.RendererFunc(func(_ context.Context, req model.FileRequest) ([]byte, bool, error) {
		seen = append(seen, req.Path)
		switch req.Path {
		case "01-aa-bb.ipxe":
			return []byte("#!ipxe\nboot\n"), true, nil
		case "pxelinux.0": // a virtual file hides the disk file
			return []byte("virtual"), true, nil
		case "broken.ipxe":
			return []byte("#!ipxe\nhalf"), true, renderErr
		}
		return nil, false, nil
	})
	s, err := bootfs.New(bootfs.Config{Root: newTree(t), Renderer: r})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()

	tests := []struct {
		name     string
		path     string
		body     string
		rendered bool
		err      error
	}{
		{"rendered", "/01-aa-bb.ipxe", "#!ipxe\nboot\n", true, nil},
		{"rendered hides disk", "pxelinux.0", "virtual", true, nil},
		{"disk fallback", "grub/grub.cfg", "grub", false, nil},
		{"neither", "missing.ipxe", "", false, bootfs.ErrNotFound},
		{"render error", "broken.ipxe", "", false, renderErr},
		{"hostile never reaches renderer", "../01-aa-bb.ipxe", "", false, bootfs.ErrAccess},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f, err := s.Open(context.Background(), model.FileRequest{Path: tt.path, Protocol: "http", Remote: netip.MustParseAddrPort("192.0.2.9:1000")})
			if tt.err != nil {
				if !errors.Is(err, tt.err) {
					t.Fatalf("Open(%q) error = %v, want %v", tt.path, err, tt.err)
				}
				if f != nil {
					t.Fatalf("Open(%q) returned a file with error %v", tt.path, err)
				}
				return
			}
			if err != nil {
				t.Fatalf("Open(%q): %v", tt.path, err)
			}
			defer f.Close()
			b, err := io.ReadAll(f)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(b), tt.body); diff != "" {
				t.Errorf("body (-got +want):\n%s", diff)
			}
			if got := f.Rendered(); got != tt.rendered {
				t.Errorf("Rendered() = %v, want %v", got, tt.rendered)
			}
			if f.Size() != int64(len(tt.body)) {
				t.Errorf("Size() = %d, want %d", f.Size(), len(tt.body))
			}
		})
	}
	if diff := cmp.Diff(seen, []string{"01-aa-bb.ipxe", "pxelinux.0", "grub/grub.cfg", "missing.ipxe", "broken.ipxe"}); diff != "" {
		t.Errorf("renderer saw (-got +want):\n%s", diff)
	}
}

// TestDiskFileSendfile checks the promise httpboot relies on: a disk file
// exposes syscall.Conn (so net/http sends it with sendfile) and ReadAt.
func TestDiskFileSendfile(t *testing.T) {
	s, err := bootfs.New(bootfs.Config{Root: newTree(t)})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	f, err := s.Open(context.Background(), model.FileRequest{Path: "pxelinux.0"})
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, ok := f.(syscall.Conn); !ok {
		t.Errorf("disk file %T does not implement syscall.Conn", f)
	}
	buf := make([]byte, 2)
	if n, err := f.ReadAt(buf, 1); n != 2 || err != nil || string(buf) != "xe" {
		t.Errorf("ReadAt = %d, %v, %q; want 2, nil, \"xe\"", n, err, buf)
	}
	if f.ModTime().IsZero() {
		t.Error("ModTime is zero")
	}
}

func TestNoRoot(t *testing.T) {
	s, err := bootfs.New(bootfs.Config{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Open(context.Background(), model.FileRequest{Path: "pxelinux.0"}); !errors.Is(err, bootfs.ErrNotFound) {
		t.Errorf("Open without root = %v, want ErrNotFound", err)
	}
	if _, err := bootfs.New(bootfs.Config{Root: filepath.Join(t.TempDir(), "missing")}); err == nil {
		t.Error("New with a missing root succeeded")
	}
}

func FuzzClean(f *testing.F) {
	for _, s := range []string{"pxelinux.0", "/pxelinux.0", "../x", "a/../b", "a\\b", "a\x00b", "//a//b/", ".", "", "...", "a/.../b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, p string) {
		c, err := bootfs.Clean(p)
		if err != nil {
			if !errors.Is(err, bootfs.ErrAccess) {
				t.Fatalf("Clean(%q) error %v is not ErrAccess", p, err)
			}
			return
		}
		if c == "" || strings.HasPrefix(c, "/") || strings.ContainsAny(c, "\x00\\") {
			t.Fatalf("Clean(%q) = %q", p, c)
		}
		for _, part := range strings.Split(c, "/") {
			if part == ".." || (part == "." && c != ".") || part == "" {
				t.Fatalf("Clean(%q) = %q has segment %q", p, c, part)
			}
		}
	})
}
