package clientcfg

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"
)

// CachedToken is a bearer token the CLI obtained by logging in to
// Endpoint as Username, kept so that the next CLI call reuses it instead
// of sending the password again (the server's password check is a
// deliberately slow bcrypt). A token given with --token or IRONCAST_TOKEN
// is never cached.
type CachedToken struct {
	Endpoint  string
	Username  string
	Token     string
	ExpiresAt time.Time
}

// TokenDir returns the directory of the token cache:
// os.UserCacheDir()/ironcast/tokens ($XDG_CACHE_HOME/ironcast/tokens, or
// ~/.cache/ironcast/tokens).
func TokenDir() (string, error) {
	d, err := os.UserCacheDir()
	if err != nil {
		return "", fmt.Errorf("token cache: %w", err)
	}
	return filepath.Join(d, "ironcast", "tokens"), nil
}

// TokenPath returns the file that caches the token of username at
// endpoint. The name is a hash of both, so that neither shows in a
// directory listing and any endpoint spelling makes a valid file name.
func TokenPath(endpoint, username string) (string, error) {
	dir, err := TokenDir()
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256([]byte(endpoint + "\x00" + username))
	return filepath.Join(dir, hex.EncodeToString(sum[:16])+".json"), nil
}

// ReadToken returns the token cached for username at endpoint. When none
// is cached the error wraps fs.ErrNotExist. A file that others than its
// owner may read or write, or that names another endpoint or user, is
// refused with an error: its token is not used.
func ReadToken(endpoint, username string) (CachedToken, error) {
	p, err := TokenPath(endpoint, username)
	if err != nil {
		return CachedToken{}, err
	}
	f, err := os.Open(p)
	if err != nil {
		return CachedToken{}, fmt.Errorf("read cached token: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return CachedToken{}, fmt.Errorf("read cached token: %w", err)
	}
	if perm := st.Mode().Perm(); perm&0o077 != 0 || !st.Mode().IsRegular() {
		return CachedToken{}, fmt.Errorf("cached token %s: mode %v, want a regular file with mode 0600", p, st.Mode())
	}
	var t CachedToken
	if err := json.NewDecoder(f).Decode(&t); err != nil {
		return CachedToken{}, fmt.Errorf("decode cached token %s: %w", p, err)
	}
	if t.Endpoint != endpoint || t.Username != username || t.Token == "" {
		return CachedToken{}, fmt.Errorf("cached token %s is not for %s at %s", p, username, endpoint)
	}
	return t, nil
}

// WriteToken caches t for t.Username at t.Endpoint, replacing what was
// cached. The file has mode 0600 and is written atomically; the directory
// is created, or narrowed, to mode 0700.
func WriteToken(t CachedToken) error {
	p, err := TokenPath(t.Endpoint, t.Username)
	if err != nil {
		return err
	}
	dir := filepath.Dir(p)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	st, err := os.Stat(dir)
	if err != nil {
		return fmt.Errorf("token cache: %w", err)
	}
	if st.Mode().Perm() != 0o700 {
		if err := os.Chmod(dir, 0o700); err != nil {
			return fmt.Errorf("token cache: %w", err)
		}
	}
	b, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("encode cached token: %w", err)
	}
	return writeAtomic(p, append(b, '\n'))
}

// RemoveToken drops the token cached for username at endpoint. Nothing
// cached is not an error.
func RemoveToken(endpoint, username string) error {
	p, err := TokenPath(endpoint, username)
	if err != nil {
		return err
	}
	if err := os.Remove(p); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("remove cached token: %w", err)
	}
	return nil
}
