package cli

import (
	"encoding/json"
	"encoding/pem"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"

	"github.com/ironcast/ironcast/clientcfg"
)

// fakeAPI is a small stand-in for the ironcast API, used to check what the
// CLI sends on the wire (content types, credentials, lookups). It keeps
// machines in memory; the real server is exercised in e2e_test.go.
type fakeAPI struct {
	t        *testing.T
	srv      *httptest.Server
	caFile   string
	user, pw string // basic credentials that buy the token "tok-"+user

	mu       sync.Mutex
	machines map[string]map[string]any
	log      []string // "METHOD /path?query content-type body" per request
}

func newFakeAPI(t *testing.T) *fakeAPI {
	f := &fakeAPI{t: t, user: "admin", pw: "s3cret", machines: map[string]map[string]any{}}
	f.srv = httptest.NewTLSServer(http.HandlerFunc(f.serve))
	t.Cleanup(f.srv.Close)
	f.caFile = filepath.Join(t.TempDir(), "ca.pem")
	b := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: f.srv.Certificate().Raw})
	if err := os.WriteFile(f.caFile, b, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

// requests returns the request log and clears it.
func (f *fakeAPI) requests() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	l := f.log
	f.log = nil
	return l
}

func (f *fakeAPI) fail(w http.ResponseWriter, code int, field, msg string) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(map[string]string{"Message": msg, "Field": field})
}

func (f *fakeAPI) reply(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func (f *fakeAPI) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	f.mu.Lock()
	defer f.mu.Unlock()
	line := r.Method + " " + r.URL.RequestURI()
	if ct := r.Header.Get("Content-Type"); ct != "" {
		line += " " + ct + " " + string(body)
	}
	f.log = append(f.log, line)

	path := strings.TrimPrefix(r.URL.Path, "/api/v1/")
	parts := strings.Split(path, "/")
	if len(parts) == 3 && parts[0] == "users" && parts[2] == "token" {
		u, p, ok := r.BasicAuth()
		switch {
		case ok && u == parts[1] && u == f.user && p == f.pw:
		case !ok && r.Header.Get("Authorization") == "Bearer tok-"+f.user:
		default:
			f.fail(w, http.StatusUnauthorized, "", "bad credentials")
			return
		}
		f.reply(w, map[string]any{"Token": "tok-" + parts[1], "ExpiresAt": "2030-01-01T00:00:00Z"})
		return
	}
	if r.Header.Get("Authorization") != "Bearer tok-"+f.user {
		f.fail(w, http.StatusUnauthorized, "", "authentication required")
		return
	}
	switch {
	case path == "whoami":
		f.reply(w, map[string]any{"Name": f.user, "Role": "admin"})
	case path == "machines" && r.Method == http.MethodGet:
		out := []map[string]any{}
		for _, m := range f.machines {
			if n := r.URL.Query().Get("Name"); n == "" || m["Name"] == n {
				out = append(out, m)
			}
		}
		w.Header().Set("X-Total-Count", strconv.Itoa(len(out)))
		f.reply(w, out)
	case path == "machines" && r.Method == http.MethodPost:
		var m map[string]any
		if err := json.Unmarshal(body, &m); err != nil {
			f.fail(w, http.StatusBadRequest, "", "invalid JSON")
			return
		}
		for _, o := range f.machines {
			if o["Name"] == m["Name"] {
				f.fail(w, http.StatusConflict, "Name", "n1 is taken by machine "+o["UUID"].(string))
				return
			}
		}
		m["UUID"] = "00000000-0000-4000-8000-00000000000" + strconv.Itoa(len(f.machines)+1)
		f.machines[m["UUID"].(string)] = m
		w.WriteHeader(http.StatusCreated)
		f.reply(w, m)
	case len(parts) == 2 && parts[0] == "machines":
		m, ok := f.machines[parts[1]]
		if !ok {
			f.fail(w, http.StatusNotFound, "", "machine "+parts[1]+" not found")
			return
		}
		switch r.Method {
		case http.MethodHead:
		case http.MethodGet:
			f.reply(w, m)
		case http.MethodPatch:
			f.reply(w, m) // the wire format is what the tests check
		case http.MethodDelete:
			delete(f.machines, parts[1])
			f.reply(w, m)
		}
	default:
		f.fail(w, http.StatusNotFound, "", "no route")
	}
}

// useFake points the CLI at f through the local-server file only, as a
// local `ironcast serve` would.
func (f *fakeAPI) useLocalServerFile(t *testing.T) {
	t.Helper()
	pw := filepath.Join(t.TempDir(), "admin-password")
	if err := os.WriteFile(pw, []byte(f.pw+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := clientcfg.Write(clientcfg.LocalServer{Endpoint: f.srv.URL, CACertFile: f.caFile, PasswordFile: pw, Username: f.user}); err != nil {
		t.Fatal(err)
	}
}

func (f *fakeAPI) useLocalServerFileFn(t *testing.T) func() {
	return func() { f.useLocalServerFile(t) }
}
