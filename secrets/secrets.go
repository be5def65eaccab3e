// Package secrets seals secure param values at rest with AES-256-GCM under
// a key kept in the data directory. A sealed value is the JSON object
// {"$sealed": "<base64 nonce+ciphertext>"}; it round-trips through the API
// unchanged, so a client that reads a sealed value and writes it back
// keeps the secret.
package secrets

import (
	"crypto/aes"
	"crypto/cipher"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
)

// SealedKey is the single key of a sealed value's JSON object.
const SealedKey = "$sealed"

// KeySize is the AES-256 key length in bytes.
const KeySize = 32

// Sealer encrypts and decrypts param values. It is safe for concurrent use.
type Sealer struct {
	aead cipher.AEAD
}

// New returns a Sealer for a 32-byte key.
func New(key []byte) (*Sealer, error) {
	if len(key) != KeySize {
		return nil, fmt.Errorf("secrets key is %d bytes, want %d", len(key), KeySize)
	}
	block, err := aes.NewCipher(key)
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	aead, err := cipher.NewGCM(block)
	if err != nil {
		return nil, fmt.Errorf("secrets key: %w", err)
	}
	return &Sealer{aead: aead}, nil
}

// LoadOrCreateKey reads a key file, creating it (0600) with a random key
// when it does not exist.
func LoadOrCreateKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) != KeySize {
			return nil, fmt.Errorf("secrets key %s is %d bytes, want %d", path, len(b), KeySize)
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read secrets key: %w", err)
	}
	b = make([]byte, KeySize)
	_, _ = rand.Read(b)
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return nil, fmt.Errorf("create secrets key dir: %w", err)
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return nil, fmt.Errorf("create secrets key: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, fmt.Errorf("write secrets key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("sync secrets key: %w", err)
	}
	return b, f.Close()
}

// IsSealed reports whether v is a sealed value.
func IsSealed(v any) bool {
	m, ok := v.(map[string]any)
	if !ok || len(m) != 1 {
		return false
	}
	_, ok = m[SealedKey].(string)
	return ok
}

// Seal encrypts the JSON encoding of v. Sealing a sealed value returns it.
func (s *Sealer) Seal(v any) (any, error) {
	if IsSealed(v) {
		return v, nil
	}
	plain, err := json.Marshal(v)
	if err != nil {
		return nil, fmt.Errorf("seal: %w", err)
	}
	nonce := make([]byte, s.aead.NonceSize())
	_, _ = rand.Read(nonce)
	ct := s.aead.Seal(nonce, nonce, plain, nil)
	return map[string]any{SealedKey: base64.StdEncoding.EncodeToString(ct)}, nil
}

// Open decrypts a sealed value. A value that is not sealed is returned as is.
func (s *Sealer) Open(v any) (any, error) {
	if !IsSealed(v) {
		return v, nil
	}
	raw, err := base64.StdEncoding.DecodeString(v.(map[string]any)[SealedKey].(string))
	if err != nil {
		return nil, fmt.Errorf("open sealed value: %w", err)
	}
	n := s.aead.NonceSize()
	if len(raw) < n {
		return nil, errors.New("open sealed value: too short")
	}
	plain, err := s.aead.Open(nil, raw[:n], raw[n:], nil)
	if err != nil {
		return nil, fmt.Errorf("open sealed value: %w", err)
	}
	var out any
	if err := json.Unmarshal(plain, &out); err != nil {
		return nil, fmt.Errorf("open sealed value: %w", err)
	}
	return out, nil
}
