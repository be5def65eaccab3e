package auth

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/google/go-cmp/cmp"

	"github.com/ironcast/ironcast/model"
)

type users map[string]*model.User

func (u users) get(_ context.Context, name string) (*model.User, error) {
	if x, ok := u[name]; ok {
		c := *x
		return &c, nil
	}
	return nil, fmt.Errorf("user %s: %w", name, model.ErrNotFound)
}

func newAuth(t *testing.T, us users, now func() time.Time) *Authenticator {
	t.Helper()
	a, err := New(Config{Key: []byte(strings.Repeat("k", 32)), Users: us.get, Now: now})
	if err != nil {
		t.Fatal(err)
	}
	return a
}

func TestIssueVerify(t *testing.T) {
	us := users{"alice": {Name: "alice", Role: model.RoleOperator}}
	a := newAuth(t, us, nil)
	tok, exp, err := a.Issue(Principal{Name: "alice", Role: model.RoleOperator}, 2*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(exp); d < time.Hour || d > 2*time.Hour {
		t.Errorf("expiry in %v, want about 2h", d)
	}
	p, err := a.Verify(context.Background(), tok)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(*p, Principal{Name: "alice", Role: model.RoleOperator, ExpiresAt: exp}); diff != "" {
		t.Errorf("principal (-got +want):\n%s", diff)
	}

	// Demoting the user takes effect on the next request.
	us["alice"].Role = model.RoleReadOnly
	if p, err = a.Verify(context.Background(), tok); err != nil || p.Role != model.RoleReadOnly {
		t.Errorf("after demotion: role %v, err %v; want readonly", p, err)
	}
	// Deleting the user revokes its tokens.
	delete(us, "alice")
	if _, err := a.Verify(context.Background(), tok); !errors.Is(err, ErrUnauthenticated) {
		t.Errorf("deleted user: err %v, want ErrUnauthenticated", err)
	}
}

func TestIssueCapsTTL(t *testing.T) {
	a := newAuth(t, users{}, nil)
	_, exp, err := a.Issue(Principal{Name: "m", Role: model.RoleReadOnly, Scope: MachineScope("x")}, 1000*time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if d := time.Until(exp); d > MaxTTL {
		t.Errorf("ttl %v exceeds MaxTTL %v", d, MaxTTL)
	}
}

func TestVerifyRejects(t *testing.T) {
	us := users{"bob": {Name: "bob", Role: model.RoleAdmin}}
	now := time.Now()
	past := newAuth(t, us, func() time.Time { return now.Add(-3 * time.Hour) })
	a := newAuth(t, us, nil)
	other, err := New(Config{Key: []byte(strings.Repeat("x", 32)), Users: us.get})
	if err != nil {
		t.Fatal(err)
	}
	expired, _, _ := past.Issue(Principal{Name: "bob", Role: model.RoleAdmin}, time.Hour)
	foreign, _, _ := other.Issue(Principal{Name: "bob", Role: model.RoleAdmin}, time.Hour)
	good, _, _ := a.Issue(Principal{Name: "bob", Role: model.RoleAdmin}, time.Hour)
	none, _ := jwt.NewWithClaims(jwt.SigningMethodNone, jwt.MapClaims{
		"sub": "bob", "role": "admin", "iss": "ironcast", "exp": now.Add(time.Hour).Unix(),
	}).SignedString(jwt.UnsafeAllowNoneSignatureType)
	noExp, _ := jwt.NewWithClaims(jwt.SigningMethodHS256, jwt.MapClaims{
		"sub": "bob", "role": "admin", "iss": "ironcast",
	}).SignedString([]byte(strings.Repeat("k", 32)))
	badScope, _, _ := a.Issue(Principal{Name: "bob", Role: model.RoleAdmin, Scope: "everything"}, time.Hour)
	tests := []struct {
		name, token, want string
	}{
		{name: "expired", token: expired, want: "token expired"},
		{name: "signed with another key", token: foreign, want: "invalid token"},
		{name: "alg none", token: none, want: "invalid token"},
		{name: "no expiry", token: noExp, want: "invalid token"},
		{name: "tampered", token: good[:len(good)-2] + "xx", want: "invalid token"},
		{name: "garbage", token: "abc", want: "invalid token"},
		{name: "unknown scope", token: badScope, want: "invalid token scope"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := a.Verify(context.Background(), tt.token)
			if !errors.Is(err, ErrUnauthenticated) || !strings.Contains(err.Error(), tt.want) {
				t.Errorf("Verify = %v, want ErrUnauthenticated %q", err, tt.want)
			}
			if err != nil && strings.Contains(err.Error(), tt.token) {
				t.Error("error message contains the token")
			}
		})
	}
}

func TestCheckPassword(t *testing.T) {
	h, err := HashPassword("correct horse")
	if err != nil {
		t.Fatal(err)
	}
	us := users{"carol": {Name: "carol", Role: model.RoleReadOnly, PasswordHash: h}, "nopw": {Name: "nopw", Role: model.RoleAdmin}}
	a := newAuth(t, us, nil)
	if u, err := a.CheckPassword(context.Background(), "carol", "correct horse"); err != nil || u.Name != "carol" {
		t.Errorf("right password: %v, %v", u, err)
	}
	for _, c := range []struct{ name, user, pw string }{
		{"wrong password", "carol", "wrong horse"},
		{"unknown user", "dave", "correct horse"},
		{"user without a password", "nopw", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, err := a.CheckPassword(context.Background(), c.user, c.pw)
			if !errors.Is(err, ErrUnauthenticated) || err.Error() != "wrong user name or password: unauthenticated" {
				t.Errorf("err = %v, want the one generic ErrUnauthenticated", err)
			}
		})
	}
}

func TestLoadOrCreateKey(t *testing.T) {
	path := filepath.Join(t.TempDir(), "sub", "token.key")
	var wg sync.WaitGroup
	keys := make([][]byte, 8)
	errs := make([]error, 8)
	for i := range keys {
		wg.Go(func() { keys[i], errs[i] = LoadOrCreateKey(path) })
	}
	wg.Wait()
	for i := range keys {
		if errs[i] != nil {
			t.Fatal(errs[i])
		}
		if diff := cmp.Diff(keys[i], keys[0]); diff != "" {
			t.Errorf("caller %d got another key", i)
		}
	}
	if len(keys[0]) != KeySize {
		t.Errorf("key is %d bytes", len(keys[0]))
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	again, err := LoadOrCreateKey(path)
	if err != nil || string(again) != string(keys[0]) {
		t.Errorf("reload: %v", err)
	}
	short := filepath.Join(t.TempDir(), "short")
	_ = os.WriteFile(short, []byte("abc"), 0o600)
	if _, err := LoadOrCreateKey(short); err == nil {
		t.Error("short key accepted")
	}
}

func TestAuthorize(t *testing.T) {
	const m1, m2 = "11111111-1111-4111-8111-111111111111", "22222222-2222-4222-8222-222222222222"
	admin := &Principal{Name: "root", Role: model.RoleAdmin}
	op := &Principal{Name: "op", Role: model.RoleOperator}
	ro := &Principal{Name: "ro", Role: model.RoleReadOnly}
	mach := &Principal{Name: "root", Role: model.RoleReadOnly, Scope: MachineScope(m1)}
	reg := &Principal{Name: "root", Role: model.RoleReadOnly, Scope: ScopeRegister}
	tests := []struct {
		name   string
		p      *Principal
		method string
		path   string
		decode bool
		ok     bool
	}{
		{"admin writes users", admin, "POST", "/api/v1/users", false, true},
		{"admin backup", admin, "GET", "/api/v1/backup", false, true},
		{"admin decode", admin, "GET", "/api/v1/machines/" + m1, true, true},
		{"operator creates machine", op, "POST", "/api/v1/machines", false, true},
		{"operator lists users", op, "GET", "/api/v1/users", false, true},
		{"operator creates user", op, "POST", "/api/v1/users", false, false},
		{"operator patches user", op, "PATCH", "/api/v1/users/ro", false, false},
		{"operator own token", op, "POST", "/api/v1/users/op/token", false, true},
		{"operator other token", op, "POST", "/api/v1/users/root/token", false, false},
		{"operator backup", op, "GET", "/api/v1/backup", false, false},
		{"operator decode", op, "GET", "/api/v1/machines/" + m1, true, true},
		{"operator unclean path", op, "POST", "/api/v1/machines/../users", false, false},
		{"readonly lists", ro, "GET", "/api/v1/machines", false, true},
		{"readonly head", ro, "HEAD", "/api/v1/machines/" + m1, false, true},
		{"readonly creates", ro, "POST", "/api/v1/machines", false, false},
		{"readonly deletes", ro, "DELETE", "/api/v1/machines/" + m1, false, false},
		{"readonly decode", ro, "GET", "/api/v1/machines/" + m1, true, false},
		{"readonly own token", ro, "POST", "/api/v1/users/ro/token", false, true},
		{"readonly backup", ro, "GET", "/api/v1/backup", false, false},
		{"machine own", mach, "GET", "/api/v1/machines/" + m1, false, true},
		{"machine own params", mach, "GET", "/api/v1/machines/" + m1 + "/params", false, true},
		{"machine own metadata", mach, "GET", "/api/v1/machines/" + m1 + "/meta-data", false, true},
		{"machine own callback", mach, "POST", "/api/v1/machines/" + m1 + "/callbacks/done", false, true},
		{"machine list", mach, "GET", "/api/v1/machines", false, false},
		{"machine other", mach, "GET", "/api/v1/machines/" + m2, false, false},
		{"machine other via dots", mach, "GET", "/api/v1/machines/" + m1 + "/../" + m2, false, false},
		{"machine writes itself", mach, "PUT", "/api/v1/machines/" + m1, false, false},
		{"machine sets a param", mach, "PUT", "/api/v1/machines/" + m1 + "/params/x", false, false},
		{"machine decode", mach, "GET", "/api/v1/machines/" + m1 + "/params", true, false},
		{"machine profiles", mach, "GET", "/api/v1/profiles", false, false},
		{"machine registers itself", mach, "POST", "/api/v1/machines/register", false, true},
		{"machine reads register", mach, "GET", "/api/v1/machines/register", false, false},
		{"machine whoami", mach, "GET", "/api/v1/whoami", false, true},
		{"register registers", reg, "POST", "/api/v1/machines/register", false, true},
		{"register lists", reg, "GET", "/api/v1/machines", false, false},
		{"register creates", reg, "POST", "/api/v1/machines", false, false},
		{"unknown role", &Principal{Name: "x", Role: "god"}, "GET", "/api/v1/machines", false, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := Authorize(tt.p, tt.method, tt.path, tt.decode)
			if got := err == nil; got != tt.ok {
				t.Errorf("Authorize = %v, want ok=%v", err, tt.ok)
			}
			if err != nil && !errors.Is(err, ErrForbidden) {
				t.Errorf("err = %v, want ErrForbidden", err)
			}
		})
	}
}

func TestMiddleware(t *testing.T) {
	us := users{"ro": {Name: "ro", Role: model.RoleReadOnly}}
	a := newAuth(t, us, nil)
	tok, _, _ := a.Issue(Principal{Name: "ro", Role: model.RoleReadOnly}, 0)
	var seen *Principal
	h := a.Middleware(func(w http.ResponseWriter, _ *http.Request, err error) {
		code := http.StatusInternalServerError
		switch {
		case errors.Is(err, ErrUnauthenticated):
			code = http.StatusUnauthorized
		case errors.Is(err, ErrForbidden):
			code = http.StatusForbidden
		}
		http.Error(w, err.Error(), code)
	})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		seen, _ = FromContext(r.Context())
	}))
	tests := []struct {
		name, method, auth string
		want               int
	}{
		{"no header", "GET", "", 401},
		{"basic instead of bearer", "GET", "Basic cm86cm8=", 401},
		{"bad token", "GET", "Bearer nope", 401},
		{"readonly reads", "GET", "Bearer " + tok, 200},
		{"lower-case scheme", "GET", "bearer " + tok, 200},
		{"readonly writes", "POST", "Bearer " + tok, 403},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			seen = nil
			r := httptest.NewRequest(tt.method, "/api/v1/machines", nil)
			if tt.auth != "" {
				r.Header.Set("Authorization", tt.auth)
			}
			w := httptest.NewRecorder()
			h.ServeHTTP(w, r)
			if w.Code != tt.want {
				t.Errorf("status %d, want %d (%s)", w.Code, tt.want, w.Body)
			}
			if tt.want == 200 && (seen == nil || seen.Name != "ro") {
				t.Errorf("principal in context = %+v", seen)
			}
			if strings.Contains(w.Body.String(), tok) {
				t.Error("answer contains the token")
			}
		})
	}
}

func FuzzAuthorize(f *testing.F) {
	f.Add("GET", "/api/v1/machines/u1/params", true)
	f.Add("POST", "/api/v1/machines/u1/callbacks/x", false)
	f.Add("PUT", "/api/v1/machines/u1/../u2", false)
	f.Fuzz(func(t *testing.T, method, path string, decode bool) {
		p := &Principal{Name: "m", Role: model.RoleReadOnly, Scope: MachineScope("u1")}
		if Authorize(p, method, path, decode) == nil {
			segs := strings.Split(strings.TrimPrefix(path, apiPrefix), "/")
			if path != apiPrefix+"whoami" && (len(segs) < 2 || segs[1] != "u1" || decode) {
				t.Fatalf("machine token allowed %s %s", method, path)
			}
		}
	})
}
