package api_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironcast/ironcast/api"
	"github.com/ironcast/ironcast/api/client"
	"github.com/ironcast/ironcast/auth"
	"github.com/ironcast/ironcast/bootenvs"
	"github.com/ironcast/ironcast/bootfiles"
	"github.com/ironcast/ironcast/bootfiles/bootfilestest"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/provision"
	"github.com/ironcast/ironcast/secrets"
	"github.com/ironcast/ironcast/store/bolt"
)

// filesEnv is an API server whose provision.Service and bootfiles.Store
// share one boot root, with a client per role.
type filesEnv struct {
	root string
	// done receives the route of every request the server has finished.
	done                      chan string
	srv                       *httptest.Server
	authn                     *auth.Authenticator
	admin, operator, readonly *client.Client
}

func newFilesEnv(t *testing.T) *filesEnv {
	t.Helper()
	root := t.TempDir()
	st, err := bolt.Open(filepath.Join(t.TempDir(), "ironcast.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { st.Close() })
	sealer, err := secrets.New([]byte(strings.Repeat("s", secrets.KeySize)))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := bootenvs.Load()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := provision.New(provision.Config{Store: st, Sealer: sealer, Catalog: cat, BootRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.EnsureDefaults(context.Background()); err != nil {
		t.Fatal(err)
	}
	files, err := bootfiles.New(bootfiles.Config{Root: root})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { files.Close() })
	roles := map[string]model.Role{"admin": model.RoleAdmin, "op": model.RoleOperator, "ro": model.RoleReadOnly}
	authn, err := auth.New(auth.Config{Key: []byte(strings.Repeat("k", auth.KeySize)), Users: func(_ context.Context, name string) (*model.User, error) {
		if r, ok := roles[name]; ok {
			return &model.User{Name: name, Role: r}, nil
		}
		return nil, model.ErrNotFound
	}})
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan string, 100)
	s := newServer(t, api.Config{Backend: svc, Files: files, Auth: authn, Registerer: prometheus.NewRegistry(),
		Logger: slog.New(routeHandler{done: done})})
	e := &filesEnv{root: root, srv: httptest.NewTLSServer(s.Handler()), authn: authn, done: done}
	t.Cleanup(e.srv.Close)
	e.admin, e.operator, e.readonly = e.client(t, "admin"), e.client(t, "op"), e.client(t, "ro")
	return e
}

// routeHandler is a slog.Handler that sends the route of each "api
// request" line, which the server logs once a request is finished.
type routeHandler struct{ done chan string }

func (routeHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h routeHandler) Handle(_ context.Context, r slog.Record) error {
	if r.Message == "api request" {
		r.Attrs(func(a slog.Attr) bool {
			if a.Key == "route" {
				select {
				case h.done <- a.Value.String():
				default:
				}
			}
			return true
		})
	}
	return nil
}
func (h routeHandler) WithAttrs([]slog.Attr) slog.Handler { return h }
func (h routeHandler) WithGroup(string) slog.Handler      { return h }

// waitRoute waits until the server has finished a request on route.
func (e *filesEnv) waitRoute(t *testing.T, route string) {
	t.Helper()
	for r := range e.done {
		if r == route {
			return
		}
	}
}

func (e *filesEnv) token(t *testing.T, name string) string {
	tok, _, err := e.authn.Issue(auth.Principal{Name: name, Role: model.RoleReadOnly}, time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	return tok
}

func (e *filesEnv) client(t *testing.T, name string) *client.Client {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(e.srv.Certificate())
	c, err := client.New(e.srv.URL, client.WithTLSConfig(&tls.Config{RootCAs: pool}), client.WithToken(e.token(t, name)))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func statusOf(t *testing.T, err error) int {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want an API error", err)
	}
	return ae.StatusCode
}

func hexSum(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}

// TestISOUploadMakesBootEnvAvailable: a stored override of a built-in
// bootenv names an ISO and its sha256; it is unavailable until the ISO is
// uploaded, a wrong image is refused with both sums, and the right one
// is extracted where the bootenv's kernel and initrd point.
func TestISOUploadMakesBootEnvAvailable(t *testing.T) {
	e := newFilesEnv(t)
	ctx := context.Background()
	isoFiles := map[string]string{"casper/vmlinuz": "a kernel", "casper/initrd": "an initrd", ".disk/info": "test"}
	isoPath := bootfilestest.BuildISO(t, isoFiles)
	img, err := os.ReadFile(isoPath)
	if err != nil {
		t.Fatal(err)
	}
	sum := hexSum(img)
	const name = "test-live-server-amd64.iso"

	obj, _, err := e.admin.GetObject(ctx, model.KindBootEnvs, "ubuntu-24.04-install", false)
	if err != nil {
		t.Fatal(err)
	}
	be := obj.(*model.BootEnv)
	be.ReadOnly, be.Available, be.Errors = false, false, nil
	amd := be.Arches["amd64"]
	amd.IsoFile, amd.IsoSha256 = name, sum
	be.Arches = map[string]model.ArchInfo{"amd64": amd}
	if _, err := e.admin.CreateObject(ctx, be); err != nil {
		t.Fatalf("store the override: %v", err)
	}
	available := func() (bool, []string) {
		t.Helper()
		obj, _, err := e.readonly.GetObject(ctx, model.KindBootEnvs, be.Name, false)
		if err != nil {
			t.Fatal(err)
		}
		b := obj.(*model.BootEnv)
		return b.Available, b.Errors
	}
	if ok, errs := available(); ok || !strings.Contains(strings.Join(errs, "\n"), "isos/"+name+" is missing") {
		t.Fatalf("before the upload: available %v, errors %q", ok, errs)
	}

	_, err = e.readonly.UploadISO(ctx, name, bytes.NewReader(img), int64(len(img)), "")
	if got := statusOf(t, err); got != http.StatusForbidden {
		t.Errorf("readonly upload: status %d, want 403", got)
	}

	wrong := bootfilestest.BuildISO(t, map[string]string{"casper/vmlinuz": "another kernel"})
	wrongImg, err := os.ReadFile(wrong)
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.operator.UploadISO(ctx, name, bytes.NewReader(wrongImg), int64(len(wrongImg)), "")
	if got := statusOf(t, err); got != http.StatusUnprocessableEntity {
		t.Errorf("wrong image: status %d, want 422", got)
	}
	if msg := err.Error(); !strings.Contains(msg, sum) || !strings.Contains(msg, hexSum(wrongImg)) {
		t.Errorf("wrong image: %q does not name both sums", msg)
	}
	if list, err := e.readonly.ListISOs(ctx, false); err != nil || len(list) != 0 {
		t.Errorf("ISOs after a refused upload: %+v, %v", list, err)
	}

	res, err := e.operator.UploadISO(ctx, name, bytes.NewReader(img), int64(len(img)), "")
	if err != nil {
		t.Fatal(err)
	}
	want := &client.FileResult{Path: "isos/" + name, Size: int64(len(img)), Sha256: sum,
		Extracted: []client.ExtractedTree{{Dir: "ubuntu-24.04-install/amd64", Files: 3, Bytes: int64(len("a kernelan initrdtest"))}}}
	if diff := cmp.Diff(res, want); diff != "" {
		t.Errorf("upload result (-got +want):\n%s", diff)
	}
	if ok, errs := available(); !ok || len(errs) != 0 {
		t.Errorf("after the upload: available %v, errors %q", ok, errs)
	}
	for p, c := range isoFiles {
		b, err := os.ReadFile(filepath.Join(e.root, "ubuntu-24.04-install/amd64", p))
		if err != nil || string(b) != c {
			t.Errorf("%s: %q, %v; want %q", p, b, err, c)
		}
	}
	list, err := e.readonly.ListISOs(ctx, true)
	if err != nil || len(list) != 1 || list[0].Path != "isos/"+name || list[0].Sha256 != sum {
		t.Errorf("ISOs: %+v, %v", list, err)
	}

	// The stored ISO going bad is reported with both sums.
	if err := os.WriteFile(filepath.Join(e.root, "isos", name), []byte("truncated"), 0o644); err != nil {
		t.Fatal(err)
	}
	if ok, errs := available(); ok || !strings.Contains(strings.Join(errs, "\n"), sum) {
		t.Errorf("after corrupting the ISO: available %v, errors %q", ok, errs)
	}

	if err := e.readonly.DeleteISO(ctx, name); statusOf(t, err) != http.StatusForbidden {
		t.Errorf("readonly delete: %v, want 403", err)
	}
	if err := e.operator.DeleteISO(ctx, name); err != nil {
		t.Fatal(err)
	}
	if err := e.operator.DeleteISO(ctx, name); statusOf(t, err) != http.StatusNotFound {
		t.Errorf("second delete: %v, want 404", err)
	}
}

// TestFileRoutes: uploads larger than the API's body limit stream through,
// other routes keep the limit, and hostile paths are refused.
func TestFileRoutes(t *testing.T) {
	e := newFilesEnv(t)
	ctx := context.Background()
	big := bytes.Repeat([]byte("0123456789abcdef"), (api.MaxBodyBytes+(1<<20))/16)
	res, err := e.operator.UploadFile(ctx, "linuxkit/big-kernel", bytes.NewReader(big), int64(len(big)))
	if err != nil {
		t.Fatalf("upload of %d bytes: %v", len(big), err)
	}
	if res.Size != int64(len(big)) || res.Sha256 != hexSum(big) {
		t.Errorf("upload result %+v", res)
	}
	// A chunked upload (size unknown) works too.
	if _, err := e.admin.UploadFile(ctx, "discovery/amd64/vmlinuz", strings.NewReader("kernel"), -1); err != nil {
		t.Fatal(err)
	}
	req, err := http.NewRequest(http.MethodPost, e.srv.URL+"/api/v1/machines", bytes.NewReader(big))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+e.token(t, "admin"))
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusRequestEntityTooLarge {
		t.Errorf("POST /machines with %d bytes: status %d, want 413", len(big), resp.StatusCode)
	}

	list, err := e.readonly.ListFiles(ctx, "", true)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, f := range list {
		got = append(got, fmt.Sprintf("%s %d %.8s", f.Path, f.Size, f.Sha256))
	}
	wantList := []string{"discovery/amd64/vmlinuz 6 " + hexSum([]byte("kernel"))[:8], fmt.Sprintf("linuxkit/big-kernel %d %.8s", len(big), hexSum(big))}
	if diff := cmp.Diff(got, wantList); diff != "" {
		t.Errorf("list (-got +want):\n%s", diff)
	}

	for _, tt := range []struct {
		name   string
		method string
		path   string
		token  string
		want   int
	}{
		{"readonly may not upload", http.MethodPut, "/api/v1/files/linuxkit/x", "ro", 403},
		{"readonly may not delete", http.MethodDelete, "/api/v1/files/linuxkit/big-kernel", "ro", 403},
		{"parent reference", http.MethodPut, "/api/v1/files/a/../../etc/x", "admin", 422},
		{"escaped parent reference", http.MethodPut, "/api/v1/files/a/%2e%2e/%2e%2e/x", "admin", 422},
		{"escaped slash in an ISO name", http.MethodPost, "/api/v1/isos/..%2Fx.iso", "admin", 422},
		{"hidden file", http.MethodPut, "/api/v1/files/.ironcast-upload-x", "admin", 422},
		{"not an ISO", http.MethodPost, "/api/v1/isos/x.iso", "op", 422},
		{"bad sha256 override", http.MethodPost, "/api/v1/isos/x.iso?sha256=zz", "op", 422},
		{"delete the isos directory", http.MethodDelete, "/api/v1/files/isos", "admin", 422},
		{"delete missing", http.MethodDelete, "/api/v1/files/nothing/here", "op", 404},
		{"file where a directory is", http.MethodPut, "/api/v1/files/linuxkit", "op", 409},
		{"operator deletes a tree", http.MethodDelete, "/api/v1/files/linuxkit", "op", 204},
	} {
		t.Run(tt.name, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, e.srv.URL+tt.path, strings.NewReader("not an image, 32 bytes or so...."))
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Authorization", "Bearer "+e.token(t, tt.token))
			resp, err := e.srv.Client().Do(req)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			if resp.StatusCode != tt.want {
				t.Errorf("status %d, want %d", resp.StatusCode, tt.want)
			}
		})
	}
	if _, err := os.Stat(filepath.Join(e.root, "linuxkit")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("linuxkit after delete: %v", err)
	}
	if entries, _ := os.ReadDir(filepath.Join(e.root, "isos")); len(entries) != 0 {
		t.Errorf("isos/ holds %v after refused uploads", entries)
	}
}

// TestInterruptedUpload: a client that breaks off an ISO upload half way
// leaves the old ISO and tree as they were and nothing half written.
func TestInterruptedUpload(t *testing.T) {
	e := newFilesEnv(t)
	ctx := context.Background()
	const name = "test.iso"
	isoFiles := map[string]string{"casper/vmlinuz": "old kernel"}
	old := bootfilestest.BuildISO(t, isoFiles)
	oldImg, err := os.ReadFile(old)
	if err != nil {
		t.Fatal(err)
	}
	// An override so that the ISO is extracted (no sum: any image goes).
	be := &model.BootEnv{Name: "isotest", Arches: map[string]model.ArchInfo{"amd64": {IsoFile: name, Kernel: "isotest/amd64/casper/vmlinuz"}}}
	if _, err := e.admin.CreateObject(ctx, be); err != nil {
		t.Fatal(err)
	}
	if _, err := e.operator.UploadISO(ctx, name, bytes.NewReader(oldImg), int64(len(oldImg)), ""); err != nil {
		t.Fatal(err)
	}
	e.waitRoute(t, "/api/v1/isos/{name}")

	newImg, err := os.ReadFile(bootfilestest.BuildISO(t, map[string]string{"casper/vmlinuz": "new kernel", "casper/initrd": strings.Repeat("x", 1<<20)}))
	if err != nil {
		t.Fatal(err)
	}
	broken := io.MultiReader(bytes.NewReader(newImg[:len(newImg)/2]), errReader{errors.New("disk read error")})
	if _, err := e.operator.UploadISO(ctx, name, broken, int64(len(newImg)), ""); err == nil {
		t.Fatal("a broken upload succeeded")
	}
	e.waitRoute(t, "/api/v1/isos/{name}")

	if got := hexSum(mustRead(t, filepath.Join(e.root, "isos", name))); got != hexSum(oldImg) {
		t.Errorf("isos/%s changed: sha256 %s, want the old %s", name, got, hexSum(oldImg))
	}
	var found []string
	_ = filepath.WalkDir(e.root, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() {
			rel, _ := filepath.Rel(e.root, p)
			found = append(found, rel)
		}
		return nil
	})
	if diff := cmp.Diff(found, []string{"isos/" + name, "isotest/amd64/casper/vmlinuz"}); diff != "" {
		t.Errorf("boot root after the broken upload (-got +want):\n%s", diff)
	}
	if b := mustRead(t, filepath.Join(e.root, "isotest/amd64/casper/vmlinuz")); string(b) != "old kernel" {
		t.Errorf("kernel %q, want the old one", b)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

func mustRead(t *testing.T, p string) []byte {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return b
}
