package cli

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ironcast/ironcast/clientcfg"
)

// tokenRequests returns how many POST /api/v1/users/{key}/token requests
// the local server answered with code, from its /metrics.
func tokenRequests(t *testing.T, code int) float64 {
	t.Helper()
	return apiRequests(t, "POST", "/api/v1/users/{key}/token", code)
}

// apiRequests reads ironcast_api_requests_total{method,route,code} from the
// /metrics of the server named by the local-server file.
func apiRequests(t *testing.T, method, route string, code int) float64 {
	t.Helper()
	ls, err := clientcfg.Read()
	if err != nil {
		t.Fatal(err)
	}
	pem, err := os.ReadFile(ls.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	defer hc.CloseIdleConnections()
	resp, err := hc.Get(ls.Endpoint + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	want := []string{`method="` + method + `"`, `route="` + route + `"`, `code="` + strconv.Itoa(code) + `"`}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if !strings.HasPrefix(line, "ironcast_api_requests_total{") {
			continue
		}
		labels, value, _ := strings.Cut(line, "} ")
		match := true
		for _, w := range want {
			match = match && strings.Contains(labels, w)
		}
		if match {
			v, err := strconv.ParseFloat(value, 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return v
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return 0
}

// cachedToken returns the token the CLI cached for the local server's
// admin, failing the test when there is none.
func cachedToken(t *testing.T) (clientcfg.CachedToken, string) {
	t.Helper()
	ls, err := clientcfg.Read()
	if err != nil {
		t.Fatal(err)
	}
	tok, err := clientcfg.ReadToken(ls.Endpoint, "admin")
	if err != nil {
		t.Fatalf("no cached token: %v", err)
	}
	p, err := clientcfg.TokenPath(ls.Endpoint, "admin")
	if err != nil {
		t.Fatal(err)
	}
	return tok, p
}

// TestTokenCache checks, against a real `ironcast serve`, that CLI calls
// logging in with the local admin password log in once and then reuse the
// token kept in a 0600 file; that a token the server refuses, or one about
// to expire, is replaced; and that --token, IRONCAST_TOKEN,
// --no-token-cache and IRONCAST_NO_TOKEN_CACHE leave the cache alone.
func TestTokenCache(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	dir := isolate(t)
	stop := startServe(t, filepath.Join(t.TempDir(), "data"))
	defer stop()

	// startServe ran `info` once: that logged in and cached the token.
	logins := tokenRequests(t, http.StatusOK)
	if logins < 1 {
		t.Fatalf("%v logins after the first call, want at least 1", logins)
	}
	first, path := cachedToken(t)
	if !strings.HasPrefix(path, filepath.Join(dir, "cache", "ironcast", "tokens")+string(filepath.Separator)) {
		t.Errorf("token cached at %s, want it below $XDG_CACHE_HOME/ironcast/tokens", path)
	}
	for p, want := range map[string]os.FileMode{path: 0o600, filepath.Dir(path): 0o700} {
		st, err := os.Stat(p)
		if err != nil {
			t.Fatal(err)
		}
		if got := st.Mode().Perm(); got != want {
			t.Errorf("%s: mode %o, want %o", p, got, want)
		}
	}
	if time.Until(first.ExpiresAt) < 30*time.Minute {
		t.Errorf("cached token expires at %v, want the server's default lifetime ahead", first.ExpiresAt)
	}

	t.Run("later calls reuse it", func(t *testing.T) {
		step{args: []string{"info"}, wantOut: []string{`"Version"`}}.check(t)
		step{args: []string{"machines", "list"}}.check(t)
		if got := tokenRequests(t, http.StatusOK); got != logins {
			t.Errorf("logins = %v after two more calls, want still %v", got, logins)
		}
		if tok, _ := cachedToken(t); tok != first {
			t.Errorf("cached token changed to %+v, want %+v", tok, first)
		}
	})

	t.Run("a refused token is replaced after one 401", func(t *testing.T) {
		// A token the server does not accept (revoked, expired early, signed
		// with an old key) that the cache still believes valid.
		bogus := first
		bogus.Token = "not-a-token"
		if err := clientcfg.WriteToken(bogus); err != nil {
			t.Fatal(err)
		}
		refused := apiRequests(t, "GET", "/api/v1/machines", http.StatusUnauthorized)
		step{args: []string{"machines", "list"}}.check(t)
		if got := apiRequests(t, "GET", "/api/v1/machines", http.StatusUnauthorized); got != refused+1 {
			t.Errorf("401s on the list = %v, want %v (the cached token is tried first)", got, refused+1)
		}
		logins++
		if got := tokenRequests(t, http.StatusOK); got != logins {
			t.Errorf("logins = %v, want %v", got, logins)
		}
		tok, _ := cachedToken(t)
		if tok.Token == bogus.Token {
			t.Error("the refused token is still cached")
		}
		first = tok
		step{args: []string{"info"}}.check(t)
		if got := tokenRequests(t, http.StatusOK); got != logins {
			t.Errorf("logins = %v after the new token was cached, want %v", got, logins)
		}
	})

	t.Run("a token about to expire is not used", func(t *testing.T) {
		soon := first
		soon.ExpiresAt = time.Now().Add(30 * time.Second)
		if err := clientcfg.WriteToken(soon); err != nil {
			t.Fatal(err)
		}
		refused := tokenRequests(t, http.StatusUnauthorized)
		step{args: []string{"info"}}.check(t)
		logins++
		if got := tokenRequests(t, http.StatusOK); got != logins {
			t.Errorf("logins = %v, want %v", got, logins)
		}
		if got := tokenRequests(t, http.StatusUnauthorized); got != refused {
			t.Errorf("refused logins = %v, want %v", got, refused)
		}
		tok, _ := cachedToken(t)
		if !tok.ExpiresAt.After(soon.ExpiresAt.Add(time.Minute)) {
			t.Errorf("cached token expires at %v, want a fresh one", tok.ExpiresAt)
		}
		first = tok
	})

	t.Run("no-token-cache logs in and leaves the cache alone", func(t *testing.T) {
		step{args: []string{"--no-token-cache", "info"}}.check(t)
		t.Setenv(envNoTokenCache, "1")
		step{args: []string{"info"}}.check(t)
		logins += 2
		if got := tokenRequests(t, http.StatusOK); got != logins {
			t.Errorf("logins = %v, want %v", got, logins)
		}
		if tok, _ := cachedToken(t); tok != first {
			t.Errorf("cached token changed to %+v, want %+v", tok, first)
		}
		t.Setenv(envNoTokenCache, "maybe")
		step{args: []string{"info"}, wantCode: exitError, wantErr: []string{envNoTokenCache + `="maybe" is not a boolean`}}.check(t)
	})

	t.Run("a given token never touches the cache", func(t *testing.T) {
		if err := os.Remove(path); err != nil {
			t.Fatal(err)
		}
		step{args: []string{"--token", first.Token, "info"}}.check(t)
		t.Setenv(envToken, first.Token)
		step{args: []string{"machines", "list"}}.check(t)
		// A refused given token is reported, not replaced by a login.
		step{args: []string{"--token", "not-a-token", "info"}, wantCode: exitError, wantErr: []string{"(401 Unauthorized)"}}.check(t)
		if got := tokenRequests(t, http.StatusOK); got != logins {
			t.Errorf("logins = %v, want %v", got, logins)
		}
		if _, err := os.Stat(path); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("cache file after calls with a token: %v, want none", err)
		}
	})
}
