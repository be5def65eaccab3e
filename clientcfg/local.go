package clientcfg

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
)

// LocalServer describes an `ironcast serve` running on this machine. The
// daemon writes it on start with Write; the CLI reads it with Read and uses
// it only when nothing else names an endpoint or credentials.
type LocalServer struct {
	// Endpoint is the API base URL, for example "https://127.0.0.1:8092".
	Endpoint string
	// CACertFile is a PEM file holding the certificate (or its CA) the API
	// serves, so that the CLI can verify a self-signed server.
	CACertFile string `json:",omitempty"`
	// PasswordFile holds the password of Username on its first line. It is
	// readable only by the user that runs the server.
	PasswordFile string `json:",omitempty"`
	// Username is the account PasswordFile belongs to ("admin").
	Username string `json:",omitempty"`
}

// configDir is $XDG_CONFIG_HOME/ironcast, falling back to
// ~/.config/ironcast when XDG_CONFIG_HOME is unset or not absolute (as the
// XDG Base Directory specification requires).
func configDir() string {
	if d := os.Getenv("XDG_CONFIG_HOME"); filepath.IsAbs(d) {
		return filepath.Join(d, "ironcast")
	}
	home, err := os.UserHomeDir()
	if err != nil || home == "" {
		// No home: a relative directory is better than failing outright;
		// Read then reports the file missing.
		return filepath.Join(".config", "ironcast")
	}
	return filepath.Join(home, ".config", "ironcast")
}

// Path returns where the local-server file lives for the current user:
// $XDG_CONFIG_HOME/ironcast/local-server.json, or
// ~/.config/ironcast/local-server.json.
func Path() string { return filepath.Join(configDir(), "local-server.json") }

// Write stores ls at Path, creating the directory (0700) if needed. The
// file is written to a temporary name with mode 0600, synced and renamed
// over the old one, so a reader sees either the old or the new file whole.
func Write(ls LocalServer) error {
	b, err := json.MarshalIndent(ls, "", "  ")
	if err != nil {
		return fmt.Errorf("encode local server: %w", err)
	}
	return writeAtomic(Path(), append(b, '\n'))
}

// Read loads the local-server file from Path. When no server has written
// one, the error wraps fs.ErrNotExist.
func Read() (LocalServer, error) {
	var ls LocalServer
	p := Path()
	b, err := os.ReadFile(p)
	if err != nil {
		return ls, fmt.Errorf("read local server file: %w", err)
	}
	if err := json.Unmarshal(b, &ls); err != nil {
		return LocalServer{}, fmt.Errorf("decode local server file %s: %w", p, err)
	}
	return ls, nil
}

// writeAtomic writes b to path with mode 0600 through a temporary file and
// a rename.
func writeAtomic(path string, b []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	f, err := os.CreateTemp(dir, "."+filepath.Base(path)+".*")
	if err != nil {
		return fmt.Errorf("create temporary file in %s: %w", dir, err)
	}
	tmp := f.Name()
	defer os.Remove(tmp) // no-op after a successful rename
	// CreateTemp already uses 0600; Chmod makes it independent of that detail.
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return fmt.Errorf("chmod %s: %w", tmp, err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return fmt.Errorf("write %s: %w", tmp, err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return fmt.Errorf("sync %s: %w", tmp, err)
	}
	if err := f.Close(); err != nil {
		return fmt.Errorf("close %s: %w", tmp, err)
	}
	if err := os.Rename(tmp, path); err != nil {
		return fmt.Errorf("rename %s: %w", path, err)
	}
	return nil
}
