package api_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
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
	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/provision"
	"github.com/ironcast/ironcast/secrets"
	"github.com/ironcast/ironcast/store/bolt"
)

// poolEnv is a real API server with the pool routes over a real
// provision.Service on a bbolt file, and a client per role.
type poolEnv struct {
	srv                          *httptest.Server
	svc                          *provision.Service
	authn                        *auth.Authenticator
	operator, readonly, admin    *client.Client
	machineTok                   string
	web                          []*model.Machine // ready machines of pool "web", oldest first
	other                        *model.Machine   // a ready machine of pool "db"
	operatorToken, readonlyToken string
}

func newPoolEnv(t *testing.T) *poolEnv {
	t.Helper()
	ctx := context.Background()
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
	e := &poolEnv{svc: svc}
	e.authn, err = auth.New(auth.Config{Key: []byte(strings.Repeat("k", auth.KeySize)), Users: func(ctx context.Context, name string) (*model.User, error) {
		obj, err := svc.Get(ctx, model.KindUsers, name)
		if err != nil {
			return nil, err
		}
		return obj.(*model.User), nil
	}})
	if err != nil {
		t.Fatal(err)
	}
	for _, obj := range []model.Object{
		&model.User{Name: "admin", Role: model.RoleAdmin, Password: "admin-password-1"},
		&model.User{Name: "op", Role: model.RoleOperator},
		&model.User{Name: "ro", Role: model.RoleReadOnly},
		&model.Profile{Name: "web-base"},
		&model.Pool{Name: "web", BootEnv: model.BootEnvLinuxKit, Profiles: []string{"web-base"}, Params: map[string]any{"role": "frontend"}},
		&model.Pool{Name: "db", BootEnv: model.BootEnvLinuxKit},
	} {
		if err := svc.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
	}
	for i, pool := range []string{"web", "web", "web", "db"} {
		m := &model.Machine{Name: fmt.Sprintf("n%d", i), HardwareAddrs: []string{fmt.Sprintf("52:54:00:00:00:%02x", i)}, Pool: pool, State: model.StateReady}
		if err := svc.Create(ctx, m); err != nil {
			t.Fatal(err)
		}
		if pool == "web" {
			e.web = append(e.web, m)
		} else {
			e.other = m
		}
	}
	s := newServer(t, api.Config{Backend: svc, Lifecycle: svc, Pools: svc, Auth: e.authn, Registerer: prometheus.NewRegistry(), Version: "test"})
	e.srv = httptest.NewTLSServer(s.Handler())
	t.Cleanup(func() {
		s.Close()
		e.srv.Close()
		st.Close()
	})
	tok := func(name string, role model.Role, scope string) string {
		tok, _, err := e.authn.Issue(auth.Principal{Name: name, Role: role, Scope: scope}, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		return tok
	}
	e.operatorToken, e.readonlyToken = tok("op", model.RoleOperator, ""), tok("ro", model.RoleReadOnly, "")
	e.machineTok = tok("machine:"+e.web[0].UUID, model.RoleReadOnly, auth.MachineScope(e.web[0].UUID))
	e.operator = e.client(t, client.WithToken(e.operatorToken))
	e.readonly = e.client(t, client.WithToken(e.readonlyToken))
	e.admin = e.client(t, client.WithBasicAuth("admin", "admin-password-1"))
	return e
}

func (e *poolEnv) client(t *testing.T, opts ...client.Option) *client.Client {
	t.Helper()
	roots := x509.NewCertPool()
	roots.AddCert(e.srv.Certificate())
	c, err := client.New(e.srv.URL, append([]client.Option{client.WithTLSConfig(&tls.Config{RootCAs: roots})}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// do sends a raw request and returns the status and body.
func (e *poolEnv) do(t *testing.T, method, path, token, body string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(method, e.srv.URL+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+token)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := e.srv.Client().Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// wantAPIError asserts err is an API error with status code whose
// message contains msg.
func wantAPIError(t *testing.T, err error, code int, msg string) {
	t.Helper()
	var ae *client.APIError
	if !errors.As(err, &ae) {
		t.Fatalf("err = %v, want an API error %d", err, code)
	}
	if ae.StatusCode != code || !strings.Contains(ae.Message, msg) {
		t.Fatalf("API error %d %q, want %d containing %q", ae.StatusCode, ae.Message, code, msg)
	}
}

func TestPoolRoutes(t *testing.T) {
	ctx := context.Background()
	e := newPoolEnv(t)

	got, err := e.operator.Allocate(ctx, "web", model.AllocateRequest{Count: 2, Owner: "ci", TTL: 600})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{got[0].UUID, got[1].UUID}, []string{e.web[0].UUID, e.web[1].UUID}); diff != "" {
		t.Errorf("allocated (-got +want):\n%s", diff)
	}
	for _, m := range got {
		if m.State != model.StateProvisioning || m.BootEnv != model.BootEnvLinuxKit || m.Allocation == nil ||
			m.Allocation.Owner != "ci" || m.Params["role"] != "frontend" {
			t.Errorf("allocated machine %s: state %s bootenv %s allocation %+v params %v", m.Name, m.State, m.BootEnv, m.Allocation, m.Params)
		}
	}

	st, err := e.readonly.PoolStatus(ctx, "web")
	if err != nil {
		t.Fatal(err)
	}
	want := &model.PoolStatus{Pool: "web", Machines: 3, Ready: 1, Allocated: 2, Expiring: 2,
		States: map[model.MachineState]int{model.StateReady: 1, model.StateProvisioning: 2}}
	if diff := cmp.Diff(st, want); diff != "" {
		t.Errorf("status (-got +want):\n%s", diff)
	}

	rel, err := e.admin.ReleaseMachines(ctx, "web", []string{got[0].UUID})
	if err != nil {
		t.Fatal(err)
	}
	if len(rel) != 1 || rel[0].State != model.StateReleasing || rel[0].BootEnv != model.BootEnvWipe || rel[0].Allocation != nil || rel[0].Params != nil {
		t.Errorf("released: %+v", rel)
	}

	// An empty body allocates one machine.
	if code, body := e.do(t, "POST", "/api/v1/pools/web/allocate", e.operatorToken, ""); code != http.StatusOK || !strings.Contains(body, e.web[2].UUID) {
		t.Errorf("allocate with no body: %d %s", code, body)
	}
}

func TestPoolRoutesRefuse(t *testing.T) {
	ctx := context.Background()
	e := newPoolEnv(t)
	if _, err := e.operator.Allocate(ctx, "web", model.AllocateRequest{}); err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name, method, path, token, body string
		wantCode                        int
		wantMsg                         string
	}{
		{"not enough ready", "POST", "/api/v1/pools/web/allocate", e.operatorToken, `{"Count":3}`, 409, "pool web has 2 ready machines, 3 requested"},
		{"unknown pool", "POST", "/api/v1/pools/nope/allocate", e.operatorToken, `{}`, 404, "not found"},
		{"unknown field", "POST", "/api/v1/pools/web/allocate", e.operatorToken, `{"Cuont":1}`, 400, "Cuont: unknown field"},
		{"negative count", "POST", "/api/v1/pools/web/allocate", e.operatorToken, `{"Count":-1}`, 422, "Count: must not be negative"},
		{"unknown bootenv", "POST", "/api/v1/pools/web/allocate", e.operatorToken, `{"BootEnv":"nope"}`, 422, `bootenv \"nope\" does not exist`},
		{"readonly may not allocate", "POST", "/api/v1/pools/web/allocate", e.readonlyToken, `{}`, 403, ""},
		{"readonly may not release", "POST", "/api/v1/pools/web/release", e.readonlyToken, `{"Machines":["` + e.web[0].UUID + `"]}`, 403, ""},
		{"machine token may not read status", "GET", "/api/v1/pools/web/status", e.machineTok, "", 403, ""},
		{"release of a ready machine", "POST", "/api/v1/pools/web/release", e.operatorToken, `{"Machines":["` + e.web[1].UUID + `"]}`, 409, "release is not allowed in state ready"},
		{"release of another pool's machine", "POST", "/api/v1/pools/web/release", e.operatorToken, `{"Machines":["` + e.other.UUID + `"]}`, 409, "is in pool db, not web"},
		{"release of an unknown machine", "POST", "/api/v1/pools/web/release", e.operatorToken, `{"Machines":["00000000-0000-4000-8000-000000000000"]}`, 404, "not found"},
		{"release without machines", "POST", "/api/v1/pools/web/release", e.operatorToken, `{"Machines":[]}`, 422, "name at least one machine"},
		{"release without a body", "POST", "/api/v1/pools/web/release", e.operatorToken, "", 400, "body is empty"},
		{"status of an unknown pool", "GET", "/api/v1/pools/nope/status", e.readonlyToken, "", 404, "not found"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before, err := e.svc.PoolStatus(ctx, "web")
			if err != nil {
				t.Fatal(err)
			}
			code, body := e.do(t, tt.method, tt.path, tt.token, tt.body)
			if code != tt.wantCode || !strings.Contains(body, tt.wantMsg) {
				t.Fatalf("%d %s, want %d containing %q", code, body, tt.wantCode, tt.wantMsg)
			}
			after, err := e.svc.PoolStatus(ctx, "web")
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(after, before); diff != "" {
				t.Errorf("a refused request changed the pool (-after +before):\n%s", diff)
			}
		})
	}
	// The client reports the 409 as a conflict with the count.
	_, err := e.operator.Allocate(ctx, "web", model.AllocateRequest{Count: 5})
	wantAPIError(t, err, http.StatusConflict, "pool web has 2 ready machines, 5 requested")
	if !client.IsConflict(err) {
		t.Errorf("IsConflict(%v) = false", err)
	}
}
