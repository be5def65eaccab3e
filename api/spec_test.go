package api_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	"github.com/go-chi/chi/v5"
	"github.com/go-openapi/loads"
	"github.com/go-openapi/spec"
	"github.com/go-openapi/strfmt"
	"github.com/go-openapi/validate"
	"github.com/google/go-cmp/cmp"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironcast/ironcast/api"
	"github.com/ironcast/ironcast/auth"
	"github.com/ironcast/ironcast/model"
)

// TestSpecIsValidSwagger validates the committed spec with go-openapi's
// Swagger 2.0 validator (schema and semantic checks). Staleness of docs/
// against the annotations is checked by `make spec-check`.
func TestSpecIsValidSwagger(t *testing.T) {
	doc, err := loads.Spec("../docs/swagger.json")
	if err != nil {
		t.Fatalf("load spec: %v", err)
	}
	if err := validate.Spec(doc, strfmt.Default); err != nil {
		t.Fatalf("docs/swagger.json is not a valid Swagger 2.0 spec:\n%v", err)
	}
}

// TestSpecCoversRoutes checks that every /api/v1 route of the router is in
// the spec and the spec has no route the router lacks.
func TestSpecCoversRoutes(t *testing.T) {
	doc, err := loads.Spec("../docs/swagger.json")
	if err != nil {
		t.Fatal(err)
	}
	param := regexp.MustCompile(`\{[^}]+\}`)
	norm := func(method, path string) string {
		// A chi catch-all ("/*") is one path parameter in the spec.
		path = strings.TrimSuffix(strings.ReplaceAll(path, "/*", "/{rest}"), "/")
		return method + " " + param.ReplaceAllString(path, "{}")
	}
	var inSpec []string
	for path, item := range doc.Spec().Paths.Paths {
		for method, op := range map[string]*spec.Operation{"GET": item.Get, "HEAD": item.Head, "POST": item.Post, "PUT": item.Put, "PATCH": item.Patch, "DELETE": item.Delete} {
			if op != nil {
				inSpec = append(inSpec, norm(method, path))
			}
		}
	}
	srv := newServer(t, api.Config{Backend: nopBackend{}, Lifecycle: nopLifecycle{}, Pools: nopPools{}, Files: nopFiles{}, Auth: newAuthenticator(t)})
	routes, ok := srv.Handler().(chi.Routes)
	if !ok {
		t.Fatalf("Handler is a %T, not a chi router", srv.Handler())
	}
	var inRouter []string
	err = chi.Walk(routes, func(method, route string, _ http.Handler, _ ...func(http.Handler) http.Handler) error {
		if r, ok := strings.CutPrefix(route, "/api/v1"); ok {
			inRouter = append(inRouter, norm(method, r))
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(inSpec)
	sort.Strings(inRouter)
	inRouter = slices.Compact(inRouter)
	if diff := cmp.Diff(inRouter, inSpec); diff != "" {
		t.Errorf("routes (-router +spec):\n%s", diff)
	}
}

// nopBackend, nopLifecycle and nopPools are for tests that only walk routes.
type (
	nopBackend   struct{ api.Backend }
	nopLifecycle struct{ api.Lifecycle }
	nopPools     struct{ api.Pools }
	nopFiles     struct{ api.BootFiles }
)

func newAuthenticator(t *testing.T) *auth.Authenticator {
	t.Helper()
	a, err := auth.New(auth.Config{Key: make([]byte, auth.KeySize), Users: func(_ context.Context, name string) (*model.User, error) {
		if name == "ro" {
			return &model.User{Name: "ro", Role: model.RoleReadOnly}, nil
		}
		return nil, model.ErrNotFound
	}})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestMetricsAuth(t *testing.T) {
	a := newAuthenticator(t)
	srv := httptest.NewServer(newServer(t, api.Config{Backend: nopBackend{}, Auth: a, MetricsAuth: true}).Handler())
	defer srv.Close()
	tok, _, err := a.Issue(auth.Principal{Name: "ro", Role: model.RoleReadOnly}, 0)
	if err != nil {
		t.Fatal(err)
	}
	machine, _, err := a.Issue(auth.Principal{Name: "ro", Role: model.RoleReadOnly, Scope: auth.MachineScope("u1")}, 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, token string
		want        int
	}{{"no token", "", 401}, {"readonly user token", tok, 200}, {"machine token", machine, 403}} {
		req, _ := http.NewRequest("GET", srv.URL+"/metrics", nil)
		if tc.token != "" {
			req.Header.Set("Authorization", "Bearer "+tc.token)
		}
		resp, err := srv.Client().Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, resp.StatusCode, tc.want)
		}
	}
}

func TestNewRejectsBadConfig(t *testing.T) {
	a := newAuthenticator(t)
	// A collector of another type already holds the name of an API metric.
	taken := prometheus.NewRegistry()
	taken.MustRegister(prometheus.NewGauge(prometheus.GaugeOpts{Name: "ironcast_api_requests_total", Help: "not the API's"}))
	tests := []struct {
		name    string
		cfg     api.Config
		wantErr string
	}{
		{name: "no backend", cfg: api.Config{Auth: a}, wantErr: "Config.Backend is required"},
		{name: "no auth", cfg: api.Config{Backend: nopBackend{}}, wantErr: "Config.Auth is required"},
		{name: "neither", cfg: api.Config{}, wantErr: "Config.Backend is required\napi: Config.Auth is required"},
		{name: "metric name taken", cfg: api.Config{Backend: nopBackend{}, Auth: a, Registerer: taken}, wantErr: "register metrics"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s, err := api.New(tt.cfg)
			if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
				t.Errorf("api.New() err = %v, want one containing %q", err, tt.wantErr)
			}
			if s != nil {
				t.Errorf("api.New() = %p with an error, want nil", s)
			}
		})
	}
	// A second Server on the same registry shares the metrics.
	shared := prometheus.NewRegistry()
	for i := range 2 {
		if _, err := api.New(api.Config{Backend: nopBackend{}, Auth: a, Registerer: shared}); err != nil {
			t.Errorf("api.New() #%d on a shared registry: %v", i+1, err)
		}
	}
}
