package bolt_test

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/ironcast/ironcast/store"
	"github.com/ironcast/ironcast/store/bolt"
)

// FuzzOpen feeds arbitrary file contents to Open and Restore. Each must
// return an error or a usable store, never crash the process.
func FuzzOpen(f *testing.F) {
	dir := f.TempDir()
	s, err := bolt.Open(filepath.Join(dir, "seed.db"), nil)
	if err != nil {
		f.Fatal(err)
	}
	if _, err := s.Put(context.Background(), "machines", "k", []byte(`{}`), store.MustNotExist, map[string][]string{"mac": {"01"}}); err != nil {
		f.Fatal(err)
	}
	var snap bytes.Buffer
	if _, err := s.Backup(context.Background(), &snap); err != nil {
		f.Fatal(err)
	}
	if err := s.Close(); err != nil {
		f.Fatal(err)
	}
	good := snap.Bytes()
	f.Add(good)
	f.Add(good[:len(good)/2])
	f.Add(good[:8192])
	f.Add([]byte("not a database"))
	f.Add([]byte{})
	f.Fuzz(func(t *testing.T, data []byte) {
		dir := t.TempDir()
		path := filepath.Join(dir, "fuzz.db")
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		if s, err := bolt.Open(path, nil); err == nil {
			if _, err := s.Count(context.Background(), "machines"); err != nil {
				t.Errorf("Count on an opened store: %v", err)
			}
			if err := s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
		target := filepath.Join(dir, "target.db")
		if err := bolt.Restore(bytes.NewReader(data), target); err == nil {
			if err := bolt.Verify(target); err != nil {
				t.Errorf("Restore accepted a file Verify refuses: %v", err)
			}
		}
	})
}
