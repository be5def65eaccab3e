package secrets

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func TestSealRoundTrip(t *testing.T) {
	key, err := LoadOrCreateKey(filepath.Join(t.TempDir(), "k"))
	if err != nil {
		t.Fatal(err)
	}
	s, err := New(key)
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		in   any
	}{
		{"string", "hunter2-password"},
		{"number", 42.0},
		{"object", map[string]any{"user": "root", "pass": "x"}},
		{"list", []any{"a", "b"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			sealed, err := s.Seal(tt.in)
			if err != nil {
				t.Fatal(err)
			}
			if !IsSealed(sealed) {
				t.Fatalf("Seal(%v) = %v, not sealed", tt.in, sealed)
			}
			if str, ok := tt.in.(string); ok && strings.Contains(sealed.(map[string]any)[SealedKey].(string), str) {
				t.Fatal("sealed value contains the plaintext")
			}
			again, _ := s.Seal(sealed)
			if diff := cmp.Diff(again, sealed); diff != "" {
				t.Errorf("sealing twice changed the value (-got +want):\n%s", diff)
			}
			got, err := s.Open(sealed)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, tt.in); diff != "" {
				t.Errorf("Open(Seal(x)) (-got +want):\n%s", diff)
			}
		})
	}
}

func TestOpenRejectsTampering(t *testing.T) {
	k1, _ := LoadOrCreateKey(filepath.Join(t.TempDir(), "k1"))
	k2, _ := LoadOrCreateKey(filepath.Join(t.TempDir(), "k2"))
	s1, _ := New(k1)
	s2, _ := New(k2)
	sealed, _ := s1.Seal("secret")
	if _, err := s2.Open(sealed); err == nil {
		t.Error("a value sealed under another key opened")
	}
	if _, err := s1.Open(map[string]any{SealedKey: "!!!"}); err == nil {
		t.Error("garbage opened")
	}
}

func TestKeyFile(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "secrets.key")
	a, err := LoadOrCreateKey(p)
	if err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("key file mode %v, want 0600", st.Mode().Perm())
	}
	b, err := LoadOrCreateKey(p)
	if err != nil || string(a) != string(b) {
		t.Errorf("second load gave another key (err %v)", err)
	}
	os.WriteFile(p, []byte("short"), 0o600)
	if _, err := LoadOrCreateKey(p); err == nil {
		t.Error("short key accepted")
	}
}
