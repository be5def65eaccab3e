package clientcfg

import (
	"encoding/json"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"sigs.k8s.io/yaml"
)

func TestPath(t *testing.T) {
	home := t.TempDir()
	tests := []struct {
		name, xdg, want string
	}{
		{name: "xdg set", xdg: "/xdg", want: "/xdg/ironcast/local-server.json"},
		{name: "xdg unset", xdg: "", want: filepath.Join(home, ".config/ironcast/local-server.json")},
		{name: "xdg relative is ignored", xdg: "rel", want: filepath.Join(home, ".config/ironcast/local-server.json")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Setenv("HOME", home)
			t.Setenv("XDG_CONFIG_HOME", tt.xdg)
			if got := Path(); got != tt.want {
				t.Errorf("Path() = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestWriteRead(t *testing.T) {
	dir := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", dir)

	if _, err := Read(); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("Read() before Write: err = %v, want fs.ErrNotExist", err)
	}
	want := LocalServer{Endpoint: "https://127.0.0.1:8092", CACertFile: "/d/tls.crt", PasswordFile: "/d/admin-password", Username: "admin"}
	if err := Write(LocalServer{Endpoint: "stale"}); err != nil {
		t.Fatal(err)
	}
	if err := Write(want); err != nil {
		t.Fatal(err)
	}
	got, err := Read()
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("Read() mismatch (-got +want):\n%s", diff)
	}
	st, err := os.Stat(Path())
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o600 {
		t.Errorf("mode = %o, want 600", mode)
	}
	st, err = os.Stat(filepath.Dir(Path()))
	if err != nil {
		t.Fatal(err)
	}
	if mode := st.Mode().Perm(); mode != 0o700 {
		t.Errorf("dir mode = %o, want 700", mode)
	}
	// No temporary files are left behind.
	ents, err := os.ReadDir(filepath.Dir(Path()))
	if err != nil {
		t.Fatal(err)
	}
	if len(ents) != 1 {
		t.Errorf("directory holds %d entries, want only local-server.json", len(ents))
	}
}

func TestReadCorrupt(t *testing.T) {
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	if err := os.MkdirAll(filepath.Dir(Path()), 0o700); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(Path(), []byte("{not json"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := Read(); err == nil || errors.Is(err, fs.ErrNotExist) {
		t.Errorf("Read() of a corrupt file: err = %v, want a decode error", err)
	}
}

func ptr[T any](v T) *T { return &v }

func TestParseFile(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		want    File
		wantErr bool
	}{
		{name: "empty", in: "", want: File{}},
		{name: "all keys", in: "endpoint: https://h:8092\ntoken: t\nusername: u\npassword: p\nca-cert: /ca.pem\ninsecure: true\n",
			want: File{Endpoint: "https://h:8092", Token: "t", Username: "u", Password: "p", CACert: "/ca.pem", Insecure: ptr(true)}},
		{name: "insecure false is kept", in: "insecure: false", want: File{Insecure: ptr(false)}},
		{name: "json", in: `{"endpoint":"https://h"}`, want: File{Endpoint: "https://h"}},
		{name: "unknown key", in: "endpiont: https://h", wantErr: true},
		{name: "not a map", in: "- a\n- b", wantErr: true},
		{name: "wrong type", in: "insecure: [1]", wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseFile([]byte(tt.in))
			if (err != nil) != tt.wantErr {
				t.Fatalf("parseFile() err = %v, wantErr %v", err, tt.wantErr)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("parseFile() mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

func TestReadFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "config.yaml")
	if _, err := ReadFile(p); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadFile(missing) err = %v, want fs.ErrNotExist", err)
	}
	if err := os.WriteFile(p, []byte("endpoint: https://x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	got, err := ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if got.Endpoint != "https://x" {
		t.Errorf("Endpoint = %q, want https://x", got.Endpoint)
	}
}

func FuzzParseFile(f *testing.F) {
	for _, s := range []string{"", "endpoint: https://h\ninsecure: true", `{"token":"t"}`, "- a", "insecure: [1]", "a: &x b\nc: *x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := parseFile([]byte(s))
		if err != nil {
			return
		}
		// Whatever parses must survive a round trip unchanged.
		b, err := yaml.Marshal(got)
		if err != nil {
			t.Fatalf("marshal %+v: %v", got, err)
		}
		again, err := parseFile(b)
		if err != nil {
			t.Fatalf("reparse %q: %v", b, err)
		}
		if diff := cmp.Diff(again, got); diff != "" {
			t.Errorf("round trip mismatch (-again +got):\n%s", diff)
		}
	})
}

func TestTokenCache(t *testing.T) {
	cache := t.TempDir()
	t.Setenv("XDG_CACHE_HOME", cache)
	const ep, user = "https://127.0.0.1:8092", "admin"
	if _, err := ReadToken(ep, user); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadToken() before WriteToken: err = %v, want fs.ErrNotExist", err)
	}
	// A directory left too open (say by an older tool) is narrowed.
	if err := os.MkdirAll(filepath.Join(cache, "ironcast", "tokens"), 0o755); err != nil {
		t.Fatal(err)
	}
	want := CachedToken{Endpoint: ep, Username: user, Token: "tok", ExpiresAt: time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)}
	if err := WriteToken(want); err != nil {
		t.Fatal(err)
	}
	got, err := ReadToken(ep, user)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("ReadToken() mismatch (-got +want):\n%s", diff)
	}
	p, err := TokenPath(ep, user)
	if err != nil {
		t.Fatal(err)
	}
	if dir := filepath.Join(cache, "ironcast", "tokens"); filepath.Dir(p) != dir {
		t.Errorf("TokenPath() = %s, want a file in %s", p, dir)
	}
	for path, wantMode := range map[string]os.FileMode{p: 0o600, filepath.Dir(p): 0o700} {
		st, err := os.Stat(path)
		if err != nil {
			t.Fatal(err)
		}
		if mode := st.Mode().Perm(); mode != wantMode {
			t.Errorf("%s: mode = %o, want %o", path, mode, wantMode)
		}
	}

	// Each endpoint and user has its own entry.
	for _, other := range [][2]string{{"https://127.0.0.1:8093", user}, {ep, "alice"}} {
		if _, err := ReadToken(other[0], other[1]); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("ReadToken(%q, %q): err = %v, want fs.ErrNotExist", other[0], other[1], err)
		}
	}

	// A file others may read is not trusted.
	if err := os.Chmod(p, 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadToken(ep, user); err == nil {
		t.Error("ReadToken() of a 0644 file: err = nil, want an error")
	}
	if err := os.Chmod(p, 0o600); err != nil {
		t.Fatal(err)
	}

	// A file whose content names another user is not used for this one.
	other := want
	other.Username = "mallory"
	b, _ := json.Marshal(other)
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadToken(ep, user); err == nil {
		t.Error("ReadToken() of a file for another user: err = nil, want an error")
	}

	if err := RemoveToken(ep, user); err != nil {
		t.Fatal(err)
	}
	if _, err := ReadToken(ep, user); !errors.Is(err, fs.ErrNotExist) {
		t.Errorf("ReadToken() after RemoveToken: err = %v, want fs.ErrNotExist", err)
	}
	if err := RemoveToken(ep, user); err != nil {
		t.Errorf("RemoveToken() of nothing: %v", err)
	}
}
