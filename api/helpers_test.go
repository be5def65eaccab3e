package api_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironcast/ironcast/api"
	"github.com/ironcast/ironcast/api/client"
	"github.com/ironcast/ironcast/auth"
	"github.com/ironcast/ironcast/bootenvs"
	"github.com/ironcast/ironcast/events"
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/provision"
	"github.com/ironcast/ironcast/secrets"
	"github.com/ironcast/ironcast/store"
	"github.com/ironcast/ironcast/store/bolt"

	"net/http/httptest"
)

// env is a real API server (TLS, httptest) over a real provision.Service
// on a bbolt file, with one client per role.
type env struct {
	t        *testing.T
	srv      *httptest.Server
	svc      *provision.Service
	auth     *auth.Authenticator
	key      []byte
	bus      *events.Bus
	logs     *lockedBuffer // everything the server logged
	admin    *client.Client
	operator *client.Client
	readonly *client.Client
}

const adminPassword = "admin-password-1"

var (
	usersOnce  sync.Once
	usersErr   error
	userHashes = map[string]string{}
)

// testUsers returns admin, op and ro with their password hashes.
func testUsers(t *testing.T) []*model.User {
	t.Helper()
	users := []*model.User{
		{Name: "admin", Role: model.RoleAdmin, Password: adminPassword},
		{Name: "op", Role: model.RoleOperator, Password: "operator-password"},
		{Name: "ro", Role: model.RoleReadOnly, Password: "readonly-password"},
	}
	usersOnce.Do(func() {
		for _, u := range users {
			if userHashes[u.Name], usersErr = auth.HashPassword(u.Password); usersErr != nil {
				return
			}
		}
	})
	if usersErr != nil {
		t.Fatal(usersErr)
	}
	for _, u := range users {
		u.PasswordHash, u.Password = userHashes[u.Name], ""
	}
	return users
}

func newEnv(t *testing.T) *env {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	st, err := bolt.Open(filepath.Join(t.TempDir(), "ironcast.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	sealer, err := secrets.New([]byte(strings.Repeat("s", secrets.KeySize)))
	if err != nil {
		t.Fatal(err)
	}
	cat, err := bootenvs.Load()
	if err != nil {
		t.Fatal(err)
	}
	svc, err := provision.New(provision.Config{Store: st, Sealer: sealer, Catalog: cat})
	if err != nil {
		t.Fatal(err)
	}
	if err := svc.EnsureDefaults(ctx); err != nil {
		t.Fatal(err)
	}
	e := &env{t: t, svc: svc, bus: &events.Bus{}, key: []byte(strings.Repeat("k", auth.KeySize)), logs: &lockedBuffer{}}
	e.auth, err = auth.New(auth.Config{Key: e.key, Users: e.user})
	if err != nil {
		t.Fatal(err)
	}
	// The users go straight to the store with hashes made once per test
	// binary: bcrypt is slow under -race, and provision's hashing has its
	// own tests.
	for _, u := range testUsers(t) {
		if err := store.Create(ctx, st, u); err != nil {
			t.Fatal(err)
		}
	}
	done := make(chan struct{})
	go func() { defer close(done); _ = api.PublishStoreEvents(ctx, st, e.bus) }()
	s := newServer(t, api.Config{
		Backend: svc, Auth: e.auth, Bus: e.bus, Registerer: prometheus.NewRegistry(), Version: "test",
		Info: func() api.Info {
			return api.Info{Version: "test", Ports: map[string]int{"api": 8092}, Features: []string{"dhcp"}}
		},
		KeepAlive: 50 * time.Millisecond,
		Logger:    slog.New(slog.NewTextHandler(e.logs, &slog.HandlerOptions{Level: slog.LevelDebug})),
	})
	e.srv = httptest.NewTLSServer(s.Handler())
	t.Cleanup(func() {
		s.Close() // ends event streams, which would hold srv.Close
		e.srv.Close()
		cancel()
		<-done
		st.Close()
	})
	e.admin = e.client(client.WithToken(e.token("admin", model.RoleAdmin, "")))
	e.operator = e.client(client.WithToken(e.token("op", model.RoleOperator, "")))
	e.readonly = e.client(client.WithToken(e.token("ro", model.RoleReadOnly, "")))
	return e
}

func (e *env) user(ctx context.Context, name string) (*model.User, error) {
	obj, err := e.svc.Get(ctx, model.KindUsers, name)
	if err != nil {
		return nil, err
	}
	return obj.(*model.User), nil
}

// client returns an API client trusting the test server's certificate.
func (e *env) client(opts ...client.Option) *client.Client {
	e.t.Helper()
	pool := x509.NewCertPool()
	pool.AddCert(e.srv.Certificate())
	opts = append([]client.Option{client.WithTLSConfig(&tls.Config{RootCAs: pool})}, opts...)
	c, err := client.New(e.srv.URL, opts...)
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

func (e *env) token(name string, role model.Role, scope string) string {
	e.t.Helper()
	tok, _, err := e.auth.Issue(auth.Principal{Name: name, Role: role, Scope: scope}, time.Hour)
	if err != nil {
		e.t.Fatal(err)
	}
	return tok
}

// raw sends a request with an optional bearer token and returns status and body.
func (e *env) raw(method, path, token, ctype, body string) (int, http.Header, string) {
	e.t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		e.t.Fatal(err)
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, resp.Header, string(b)
}

func (e *env) createMachine(c *client.Client, m *model.Machine) *model.Machine {
	e.t.Helper()
	obj, err := c.CreateObject(context.Background(), m)
	if err != nil {
		e.t.Fatalf("create machine %s: %v", m.Name, err)
	}
	return obj.(*model.Machine)
}

func (e *env) count(kind string) int {
	e.t.Helper()
	_, total, err := e.admin.List(context.Background(), kind, nil)
	if err != nil {
		e.t.Fatal(err)
	}
	return total
}

// apiError asserts err is an *client.APIError with status code.
func apiError(t *testing.T, err error, code int) *client.APIError {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want an API error %d", err, code)
	}
	if ae.StatusCode != code {
		t.Fatalf("status %d (%v), want %d", ae.StatusCode, ae, code)
	}
	return ae
}

func decodeInto[T any](t *testing.T, raw json.RawMessage) *T {
	t.Helper()
	v := new(T)
	if err := json.Unmarshal(raw, v); err != nil {
		t.Fatalf("decode %s: %v", raw, err)
	}
	return v
}

func joinRaw(list []json.RawMessage) string {
	b, _ := json.Marshal(list)
	return string(b)
}

// lockedBuffer is an io.Writer safe for concurrent use.
type lockedBuffer struct {
	mu  sync.Mutex
	buf strings.Builder
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// newServer is api.New for a test that expects cfg to be valid.
func newServer(t *testing.T, cfg api.Config) *api.Server {
	t.Helper()
	s, err := api.New(cfg)
	if err != nil {
		t.Fatalf("api.New: %v", err)
	}
	return s
}
