package httpboot_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironcast/ironcast/bootfs"
	"github.com/ironcast/ironcast/httpboot"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/templates"
	"github.com/ironcast/ironcast/test/testenv"
)

// served is one OnServed call.
type served struct {
	Path   string
	Status int
	Bytes  int64
	Err    bool
}

// fixture is a running HTTP boot server on 127.0.0.1 over a real boot root
// and a renderer built on the template engine.
type fixture struct {
	url    string
	port   int
	big    []byte // contents of big.img
	reg    *prometheus.Registry
	logs   *syncBuffer
	mu     sync.Mutex
	reqs   []model.FileRequest // what the renderer was asked
	served []served
}

type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

const ipxeTemplate = "#!ipxe\nkernel {{.Env.PathFor \"http\" \"vmlinuz\"}} mac={{.Machine.MAC}}\nboot\n"

// newFixture lays out:
//
//	dir/secret                       outside the root
//	dir/root/big.img                 1 MiB + 123 random bytes
//	dir/root/grub/grub.cfg           "grub"
//	dir/root/esc -> ../secret        symlink leaving the root
//	dir/root/abs -> /etc/passwd      absolute symlink
//	dir/root/grub/upup -> ../..      directory symlink leaving the root
//	dir/root/fifo
//
// and renders machines/<mac>.ipxe and broken.ipxe (a template missing a param).
func newFixture(t *testing.T) *fixture {
	t.Helper()
	dir := t.TempDir()
	root := filepath.Join(dir, "root")
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	f := &fixture{big: make([]byte, 1<<20+123), logs: &syncBuffer{}, reg: prometheus.NewRegistry()}
	_, _ = rand.Read(f.big)
	must(os.MkdirAll(filepath.Join(root, "grub"), 0o755))
	must(os.WriteFile(filepath.Join(dir, "secret"), []byte("TOPSECRET"), 0o644))
	must(os.WriteFile(filepath.Join(root, "big.img"), f.big, 0o644))
	must(os.WriteFile(filepath.Join(root, "grub", "grub.cfg"), []byte("grub"), 0o644))
	must(os.Symlink("../secret", filepath.Join(root, "esc")))
	must(os.Symlink("/etc/passwd", filepath.Join(root, "abs")))
	must(os.Symlink("../..", filepath.Join(root, "grub", "upup")))
	must(syscall.Mkfifo(filepath.Join(root, "fifo"), 0o644))

	eng := templates.NewEngine()
	must(eng.Set("ipxe", ipxeTemplate))
	must(eng.Set("broken", "#!ipxe\necho this line must never reach the client\n{{.Param \"root-password\"}}\n"))
	renderer := bootfs.RendererFunc(func(ctx context.Context, req model.FileRequest) ([]byte, bool, error) {
		f.mu.Lock()
		f.reqs = append(f.reqs, req)
		f.mu.Unlock()
		rc := &templates.RenderContext{ServerAddr: req.Local.Addr(), HTTPPort: int(req.Local.Port())}
		switch {
		case req.Path == "broken.ipxe":
			rc.Machine = templates.Machine{Name: "node-9"}
			b, err := eng.Render("broken", rc)
			return b, true, err
		case strings.HasPrefix(req.Path, "machines/") && strings.HasSuffix(req.Path, ".ipxe"):
			rc.Machine = templates.MachineFrom(nil, strings.TrimSuffix(strings.TrimPrefix(req.Path, "machines/"), ".ipxe"))
			b, err := eng.Render("ipxe", rc)
			return b, true, err
		}
		return nil, false, nil
	})
	src, err := bootfs.New(bootfs.Config{Root: root, Renderer: renderer})
	must(err)
	t.Cleanup(func() { src.Close() })

	srv := httpboot.New(httpboot.Config{
		Source:     src,
		Logger:     slog.New(slog.NewTextHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
		Registerer: f.reg,
		OnServed: func(req model.FileRequest, status int, n int64, _ time.Duration, err error) {
			f.mu.Lock()
			f.served = append(f.served, served{Path: req.Path, Status: status, Bytes: n, Err: err != nil})
			f.mu.Unlock()
		},
	})
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	must(err)
	f.port = ln.Addr().(*net.TCPAddr).Port
	f.url = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Serve returned %v after cancel, want nil", err)
		}
	})
	return f
}

// curl runs curl with args and returns stdout; -w output follows the body.
func curl(t *testing.T, args ...string) string {
	t.Helper()
	bin := testenv.RequireTool(t, "curl")
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, bin, append([]string{"-sS", "--max-time", "20"}, args...)...).Output()
	if err != nil {
		t.Fatalf("curl %s: %v", strings.Join(args, " "), err)
	}
	return string(out)
}

func sha(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

func TestGetHeadRange(t *testing.T) {
	f := newFixture(t)
	dir := t.TempDir()
	out := filepath.Join(dir, "big.img")
	n := len(f.big)

	// Whole file: exact bytes, exact Content-Length.
	got := curl(t, "-o", out, "-w", "%{http_code} %{size_download}", f.url+"/big.img")
	if want := fmt.Sprintf("200 %d", n); got != want {
		t.Errorf("GET big.img: %q, want %q", got, want)
	}
	b, err := os.ReadFile(out)
	if err != nil {
		t.Fatal(err)
	}
	if sha(b) != sha(f.big) {
		t.Errorf("GET big.img: body differs from the file (%d bytes, want %d)", len(b), n)
	}

	head := curl(t, "-I", f.url+"/big.img")
	for _, want := range []string{"HTTP/1.1 200 OK", "Content-Length: " + strconv.Itoa(n), "Accept-Ranges: bytes", "Content-Type: application/octet-stream", "Last-Modified: "} {
		if !strings.Contains(head, want) {
			t.Errorf("HEAD big.img: no %q in\n%s", want, head)
		}
	}

	tests := []struct {
		name      string
		rng       string
		wantCode  string
		wantBody  []byte
		wantRange string
	}{
		{"middle", "100-199", "206", f.big[100:200], "Content-Range: bytes 100-199/" + strconv.Itoa(n)},
		{"open end", strconv.Itoa(n-10) + "-", "206", f.big[n-10:], fmt.Sprintf("Content-Range: bytes %d-%d/%d", n-10, n-1, n)},
		{"suffix", "-50", "206", f.big[n-50:], fmt.Sprintf("Content-Range: bytes %d-%d/%d", n-50, n-1, n)},
		{"past the end is clamped", "1048000-99999999", "206", f.big[1048000:], ""},
		{"unsatisfiable", "99999999-", "416", nil, "Content-Range: bytes */" + strconv.Itoa(n)},
	}
	for _, tc := range tests {
		t.Run("range "+tc.name, func(t *testing.T) {
			hdr := filepath.Join(dir, "hdr")
			body := filepath.Join(dir, "body")
			code := curl(t, "-r", tc.rng, "-D", hdr, "-o", body, "-w", "%{http_code}", f.url+"/big.img")
			if code != tc.wantCode {
				t.Fatalf("code %s, want %s", code, tc.wantCode)
			}
			h, _ := os.ReadFile(hdr)
			if tc.wantRange != "" && !strings.Contains(string(h), tc.wantRange) {
				t.Errorf("no %q in\n%s", tc.wantRange, h)
			}
			if tc.wantBody != nil {
				got, _ := os.ReadFile(body)
				if !bytes.Equal(got, tc.wantBody) {
					t.Errorf("body: %d bytes, want %d (equal=%v)", len(got), len(tc.wantBody), bytes.Equal(got, tc.wantBody))
				}
				if want := "Content-Length: " + strconv.Itoa(len(tc.wantBody)); !strings.Contains(string(h), want) {
					t.Errorf("no %q in\n%s", want, h)
				}
			}
		})
	}

	t.Run("multiple ranges", func(t *testing.T) {
		got := curl(t, "-r", "0-9,20-29", "-D", "-", f.url+"/big.img")
		if !strings.Contains(got, "206 Partial Content") || !strings.Contains(got, "multipart/byteranges") {
			t.Errorf("multi-range response:\n%.400s", got)
		}
	})
}

func TestRendered(t *testing.T) {
	f := newFixture(t)
	hdr := filepath.Join(t.TempDir(), "hdr")
	body := curl(t, "-D", hdr, f.url+"/machines/52:54:00:12:34:56.ipxe?mac=52:54:00:12:34:56&arch=x86_64")
	want := fmt.Sprintf("#!ipxe\nkernel http://127.0.0.1:%d/vmlinuz mac=52:54:00:12:34:56\nboot\n", f.port)
	if diff := cmp.Diff(body, want); diff != "" {
		t.Errorf("rendered body (-got +want):\n%s", diff)
	}
	h, _ := os.ReadFile(hdr)
	for _, w := range []string{"Content-Length: " + strconv.Itoa(len(want)), "Cache-Control: no-store", "Content-Type: text/plain; charset=utf-8", "Accept-Ranges: bytes"} {
		if !strings.Contains(string(h), w) {
			t.Errorf("no %q in\n%s", w, h)
		}
	}
	if strings.Contains(string(h), "Last-Modified") {
		t.Errorf("rendered file has Last-Modified:\n%s", h)
	}

	// Range on a rendered file.
	if got := curl(t, "-r", "0-5", f.url+"/machines/aa:bb:cc:dd:ee:ff.ipxe"); got != "#!ipxe" {
		t.Errorf("range on rendered file = %q", got)
	}
	// HEAD renders (to know the length) but sends no body.
	head := curl(t, "-I", f.url+"/machines/aa:bb:cc:dd:ee:ff.ipxe")
	if !strings.Contains(head, "Content-Length: "+strconv.Itoa(len(strings.ReplaceAll(want, "52:54:00:12:34:56", "aa:bb:cc:dd:ee:ff")))) {
		t.Errorf("HEAD rendered:\n%s", head)
	}

	f.mu.Lock()
	req := f.reqs[0]
	f.mu.Unlock()
	if req.Protocol != "http" || req.Path != "machines/52:54:00:12:34:56.ipxe" {
		t.Errorf("renderer got Protocol %q Path %q", req.Protocol, req.Path)
	}
	if req.Local != netip.MustParseAddrPort(fmt.Sprintf("127.0.0.1:%d", f.port)) {
		t.Errorf("renderer got Local %v", req.Local)
	}
	if req.Remote.Addr() != netip.MustParseAddr("127.0.0.1") || req.Remote.Port() == 0 || req.Remote.Port() == uint16(f.port) {
		t.Errorf("renderer got Remote %v", req.Remote)
	}
	if diff := cmp.Diff(req.Query, map[string]string{"mac": "52:54:00:12:34:56", "arch": "x86_64"}); diff != "" {
		t.Errorf("renderer got Query (-got +want):\n%s", diff)
	}
}

func TestRenderErrorIs500WithNoPartialBody(t *testing.T) {
	f := newFixture(t)
	got := curl(t, "-w", "\n%{http_code}", f.url+"/broken.ipxe")
	i := strings.LastIndex(got, "\n")
	body, code := got[:i], got[i+1:]
	if code != "500" {
		t.Fatalf("code %q, want 500 (output %q)", code, got)
	}
	if strings.Contains(body, "#!ipxe") || strings.Contains(body, "never reach") {
		t.Errorf("500 body carries part of the script: %q", body)
	}
	if len(body) > 200 {
		t.Errorf("500 body is %d bytes, want a short one", len(body))
	}
	logs := f.logs.String()
	for _, w := range []string{"level=ERROR", "path=/broken.ipxe", "client=127.0.0.1:", `root-password`, "broken"} {
		if !strings.Contains(logs, w) {
			t.Errorf("log has no %q:\n%s", w, logs)
		}
	}
}

// rawGet sends one request line exactly as given (no client-side cleaning)
// and returns the status code and body.
func rawGet(t *testing.T, addr, target string) (int, string) {
	t.Helper()
	c, err := net.DialTimeout("tcp", addr, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(10 * time.Second))
	fmt.Fprintf(c, "GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n", target)
	resp, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("GET %q: %v", target, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestHostilePaths(t *testing.T) {
	f := newFixture(t)
	addr := strings.TrimPrefix(f.url, "http://")
	tests := []struct {
		name   string
		target string
	}{
		{"dotdot", "/../secret"},
		{"dotdot deeper", "/grub/../../secret"},
		{"dotdot encoded", "/%2e%2e/secret"},
		{"dotdot encoded upper with slash", "/%2E%2E%2Fsecret"},
		{"dotdot half encoded", "/.%2e/secret"},
		{"dotdot to etc", "/../../../../../../etc/passwd"},
		{"absolute", "//etc/passwd"},
		{"absolute single", "/etc/passwd"},
		{"absolute form", "http://x/../secret"},
		{"nul", "/big.img%00.txt"},
		{"nul alone", "/%00"},
		{"backslash encoded", "/..%5csecret"},
		{"backslash raw", `/..\secret`},
		{"backslash to real file", `/grub\grub.cfg`},
		{"symlink escaping root", "/esc"},
		{"symlink absolute", "/abs"},
		{"dir symlink escaping root", "/grub/upup/secret"},
		{"directory no listing", "/grub/"},
		{"directory without slash", "/grub"},
		{"root", "/"},
		{"fifo", "/fifo"},
		{"missing", "/nope.efi"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			code, body := rawGet(t, addr, tc.target)
			if code != http.StatusNotFound {
				t.Errorf("GET %q = %d, want 404 (body %.80q)", tc.target, code, body)
			}
			if strings.Contains(body, "TOPSECRET") || strings.Contains(body, "root:") || strings.Contains(body, "grub.cfg") {
				t.Errorf("GET %q leaked: %.80q", tc.target, body)
			}
		})
	}
	// The same through curl, which must be told not to clean the path.
	for _, p := range []string{"/../secret", "/%2e%2e/secret", "/esc", "/big.img%00"} {
		if code := curl(t, "--path-as-is", "-o", "/dev/null", "-w", "%{http_code}", f.url+p); code != "404" {
			t.Errorf("curl %s = %s, want 404", p, code)
		}
	}
	// A legitimate file next to them is served.
	if code, body := rawGet(t, addr, "/grub/grub.cfg"); code != 200 || body != "grub" {
		t.Errorf("GET /grub/grub.cfg = %d %q", code, body)
	}
}

func TestMethods(t *testing.T) {
	f := newFixture(t)
	for _, m := range []string{"POST", "PUT", "DELETE", "OPTIONS", "PATCH"} {
		t.Run(m, func(t *testing.T) {
			got := curl(t, "-X", m, "-D", "-", "-o", "/dev/null", f.url+"/big.img")
			if !strings.Contains(got, "405 Method Not Allowed") || !strings.Contains(got, "Allow: GET, HEAD") {
				t.Errorf("%s:\n%s", m, got)
			}
		})
	}
}

func TestMetricsAndOnServed(t *testing.T) {
	f := newFixture(t)
	curl(t, "-o", "/dev/null", f.url+"/big.img")
	curl(t, "-o", "/dev/null", f.url+"/machines/aa:bb:cc:dd:ee:ff.ipxe")
	curl(t, "-o", "/dev/null", f.url+"/nope")
	curl(t, "-o", "/dev/null", f.url+"/broken.ipxe")

	f.mu.Lock()
	got := append([]served(nil), f.served...)
	f.mu.Unlock()
	rendered := int64(len(fmt.Sprintf("#!ipxe\nkernel http://127.0.0.1:%d/vmlinuz mac=aa:bb:cc:dd:ee:ff\nboot\n", f.port)))
	want := []served{
		{Path: "/big.img", Status: 200, Bytes: int64(len(f.big))},
		{Path: "/machines/aa:bb:cc:dd:ee:ff.ipxe", Status: 200, Bytes: rendered},
		{Path: "/nope", Status: 404, Bytes: int64(len("404 page not found\n")), Err: true},
		{Path: "/broken.ipxe", Status: 500, Bytes: got[3].Bytes, Err: true},
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("OnServed calls (-got +want):\n%s", diff)
	}

	mfs, err := f.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	values := map[string]float64{}
	for _, mf := range mfs {
		for _, m := range mf.GetMetric() {
			key := mf.GetName()
			for _, l := range m.GetLabel() {
				key += " " + l.GetName() + "=" + l.GetValue()
			}
			values[key] = m.GetCounter().GetValue()
		}
	}
	wantValues := map[string]float64{
		"ironcast_httpboot_requests_total code=200 kind=file":     1,
		"ironcast_httpboot_requests_total code=200 kind=rendered": 1,
		"ironcast_httpboot_requests_total code=404 kind=none":     1,
		"ironcast_httpboot_requests_total code=500 kind=none":     1,
		"ironcast_httpboot_bytes_total kind=file":                 float64(len(f.big)),
		"ironcast_httpboot_bytes_total kind=rendered":             float64(rendered),
	}
	if diff := cmp.Diff(values, wantValues); diff != "" {
		t.Errorf("metrics (-got +want):\n%s", diff)
	}
}

// readFromRecorder is a ResponseWriter with ReadFrom, like net/http's own;
// it records what the handler hands to ReadFrom.
type readFromRecorder struct {
	h    http.Header
	code int
	src  io.Reader
	body bytes.Buffer
}

func (r *readFromRecorder) Header() http.Header         { return r.h }
func (r *readFromRecorder) WriteHeader(code int)        { r.code = code }
func (r *readFromRecorder) Write(p []byte) (int, error) { return r.body.Write(p) }
func (r *readFromRecorder) ReadFrom(src io.Reader) (int64, error) {
	r.src = src
	return r.body.ReadFrom(src)
}

// TestDiskFilesReachSendfile checks the plumbing that gives sendfile(2) to
// large files: the handler must pass the file itself (an io.LimitedReader over a
// syscall.Conn, which is what net.sendFile accepts) to the connection's
// ReadFrom, not copy it through a buffer. test/bench/http/run.sh confirms
// with strace that the syscall is made.
func TestDiskFilesReachSendfile(t *testing.T) {
	dir := t.TempDir()
	data := bytes.Repeat([]byte("0123456789abcdef"), 16384) // 256 KiB
	if err := os.WriteFile(filepath.Join(dir, "f.img"), data, 0o644); err != nil {
		t.Fatal(err)
	}
	src, err := bootfs.New(bootfs.Config{Root: dir})
	if err != nil {
		t.Fatal(err)
	}
	defer src.Close()
	h := httpboot.New(httpboot.Config{Source: src}).Handler()

	// Small bodies (under 64 KiB) are copied through the response buffer
	// so headers and body leave in one write.
	if err := os.WriteFile(filepath.Join(dir, "small.ipxe"), data[:2048], 0o644); err != nil {
		t.Fatal(err)
	}
	rec := &readFromRecorder{h: http.Header{}}
	req, _ := http.NewRequest("GET", "/small.ipxe", nil)
	h.ServeHTTP(rec, req)
	if rec.src != nil {
		t.Errorf("small file went to ReadFrom (%T)", rec.src)
	}
	if !bytes.Equal(rec.body.Bytes(), data[:2048]) {
		t.Errorf("small file body: %d bytes, want 2048", rec.body.Len())
	}

	for _, rng := range []string{"", "bytes=1000-200000"} {
		rec := &readFromRecorder{h: http.Header{}}
		req, _ := http.NewRequest("GET", "/f.img", nil)
		if rng != "" {
			req.Header.Set("Range", rng)
		}
		h.ServeHTTP(rec, req)
		lr, ok := rec.src.(*io.LimitedReader)
		if !ok {
			t.Fatalf("range %q: ReadFrom got %T, want *io.LimitedReader", rng, rec.src)
		}
		if _, ok := lr.R.(syscall.Conn); !ok {
			t.Errorf("range %q: ReadFrom's reader wraps %T, which is not a syscall.Conn: no sendfile", rng, lr.R)
		}
		want := data
		if rng != "" {
			want = data[1000:200001]
		}
		if !bytes.Equal(rec.body.Bytes(), want) {
			t.Errorf("range %q: body %d bytes, want %d", rng, rec.body.Len(), len(want))
		}
	}
}

func TestServeShutdownLetsRequestsFinish(t *testing.T) {
	started := make(chan struct{})
	release := make(chan struct{})
	src := sourceFunc(func(ctx context.Context, req model.FileRequest) (bootfs.File, error) {
		close(started)
		<-release
		s, err := bootfs.New(bootfs.Config{Renderer: bootfs.RendererFunc(func(context.Context, model.FileRequest) ([]byte, bool, error) {
			return []byte("late but whole"), true, nil
		})})
		if err != nil {
			return nil, err
		}
		return s.Open(ctx, req)
	})
	srv := httpboot.New(httpboot.Config{Source: src, ShutdownTimeout: 30 * time.Second})
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Serve(ctx, ln) }()

	type result struct {
		body string
		err  error
	}
	resc := make(chan result, 1)
	go func() {
		resp, err := http.Get("http://" + ln.Addr().String() + "/x.ipxe")
		if err != nil {
			resc <- result{err: err}
			return
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		resc <- result{string(b), err}
	}()
	<-started
	cancel() // shutdown begins with the request in flight
	close(release)
	r := <-resc
	if r.err != nil || r.body != "late but whole" {
		t.Errorf("request in flight during shutdown: %q, %v", r.body, r.err)
	}
	if err := <-done; err != nil {
		t.Errorf("Serve = %v, want nil", err)
	}
	if _, err := net.DialTimeout("tcp", ln.Addr().String(), time.Second); err == nil {
		t.Errorf("listener still accepts after Serve returned")
	}
}

type sourceFunc func(ctx context.Context, req model.FileRequest) (bootfs.File, error)

func (f sourceFunc) Open(ctx context.Context, req model.FileRequest) (bootfs.File, error) {
	return f(ctx, req)
}
