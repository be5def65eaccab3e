// Package auth issues and verifies the API's bearer tokens, checks user
// passwords, and decides what a principal may do.
//
// Tokens are JWTs signed with HS256 under a key the daemon keeps in its
// data directory (LoadOrCreateKey). A token names a user and a role, an
// expiry, and optionally a scope that narrows it: ScopeRegister for the
// discovery image, MachineScope(uuid) for a machine's own calls.
//
// Secrets (passwords, tokens, the key) are never logged by this package.
package auth

import (
	"context"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"golang.org/x/crypto/bcrypt"

	"github.com/ironcast/ironcast/model"
)

// Errors returned by Verify, CheckPassword and Authorize. The API maps
// ErrUnauthenticated to 401 and ErrForbidden to 403.
var (
	ErrUnauthenticated = errors.New("unauthenticated")
	ErrForbidden       = errors.New("forbidden")
)

// Scopes narrow a token.
const (
	// ScopeRegister lets the discovery image register a machine (POST
	// /api/v1/machines/register) and nothing else.
	ScopeRegister = "register"
	// scopeMachinePrefix starts a machine scope; see MachineScope.
	scopeMachinePrefix = "machine:"
)

// MachineScope is the scope of a token for the machine uuid: it may read
// its own machine, params and metadata, and post its own callbacks.
func MachineScope(uuid string) string { return scopeMachinePrefix + uuid }

// KeySize is the length of a generated signing key in bytes.
const KeySize = 32

// Defaults for token lifetimes.
const (
	DefaultTTL = time.Hour
	MaxTTL     = 7 * 24 * time.Hour
)

// dummyHash is a bcrypt hash (default cost) of a random password nobody
// knows. CheckPassword compares against it when the user does not exist,
// so that unknown and known users take the same time.
const dummyHash = "$2a$10$4dHCLPDJm4aSSStnmoQTOO5McpAZUaVE.7BhAANgi3q/5nOu8o7ay"

// UserFunc returns the user called name, or an error wrapping
// model.ErrNotFound when there is none.
type UserFunc func(ctx context.Context, name string) (*model.User, error)

// Config configures an Authenticator.
type Config struct {
	// Key signs and verifies tokens; at least 32 bytes. Required.
	Key []byte
	// Users looks users up for passwords and for checking that a token's
	// user still exists (and still has the role). Required.
	Users UserFunc
	// DefaultTTL is the lifetime of a token when none is asked for
	// (zero: DefaultTTL); MaxTTL caps what may be asked for (zero: MaxTTL).
	DefaultTTL, MaxTTL time.Duration
	// Now is the clock (nil: time.Now).
	Now func() time.Time
}

// Authenticator issues and verifies tokens. It is safe for concurrent use.
type Authenticator struct {
	key    []byte
	users  UserFunc
	defTTL time.Duration
	maxTTL time.Duration
	now    func() time.Time
}

// New returns an Authenticator for cfg.
func New(cfg Config) (*Authenticator, error) {
	if len(cfg.Key) < KeySize {
		return nil, fmt.Errorf("auth: signing key is %d bytes, want at least %d", len(cfg.Key), KeySize)
	}
	if cfg.Users == nil {
		return nil, errors.New("auth: Users is required")
	}
	a := &Authenticator{
		key: append([]byte(nil), cfg.Key...), users: cfg.Users,
		defTTL: cfg.DefaultTTL, maxTTL: cfg.MaxTTL, now: cfg.Now,
	}
	if a.defTTL <= 0 {
		a.defTTL = DefaultTTL
	}
	if a.maxTTL <= 0 {
		a.maxTTL = MaxTTL
	}
	if a.now == nil {
		a.now = time.Now
	}
	return a, nil
}

// Principal is the caller of a request.
type Principal struct {
	// Name is the user name (for machine tokens, the name they were issued as).
	Name string
	Role model.Role
	// Scope is empty for a full user token, or ScopeRegister, or a
	// MachineScope.
	Scope     string `json:",omitempty"`
	ExpiresAt time.Time
}

// Machine returns the machine a machine-scoped principal is bound to.
func (p *Principal) Machine() (uuid string, ok bool) {
	return strings.CutPrefix(p.Scope, scopeMachinePrefix)
}

// claims is the JWT body.
type claims struct {
	jwt.RegisteredClaims
	Role  model.Role `json:"role"`
	Scope string     `json:"scope,omitempty"`
}

const issuer = "ironcast"

// Issue signs a token for p valid for ttl (0: the default; capped at the
// maximum) and returns it with its expiry. p.ExpiresAt is ignored.
func (a *Authenticator) Issue(p Principal, ttl time.Duration) (string, time.Time, error) {
	if p.Name == "" || !p.Role.Valid() {
		return "", time.Time{}, fmt.Errorf("issue token: principal %q with role %q: %w", p.Name, p.Role, ErrForbidden)
	}
	if ttl <= 0 {
		ttl = a.defTTL
	}
	if ttl > a.maxTTL {
		ttl = a.maxTTL
	}
	now := a.now()
	exp := now.Add(ttl).Truncate(time.Second)
	c := claims{
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer:    issuer,
			Subject:   p.Name,
			IssuedAt:  jwt.NewNumericDate(now),
			NotBefore: jwt.NewNumericDate(now.Add(-time.Minute)),
			ExpiresAt: jwt.NewNumericDate(exp),
		},
		Role:  p.Role,
		Scope: p.Scope,
	}
	tok, err := jwt.NewWithClaims(jwt.SigningMethodHS256, c).SignedString(a.key)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("sign token: %w", err)
	}
	return tok, exp, nil
}

// Verify checks a token's signature, expiry and issuer, and for user
// tokens (no scope) that the user still exists; the user's current role
// is used, so demoting a user takes effect at once. Errors wrap
// ErrUnauthenticated and never include the token.
func (a *Authenticator) Verify(ctx context.Context, token string) (*Principal, error) {
	var c claims
	_, err := jwt.ParseWithClaims(token, &c, func(*jwt.Token) (any, error) { return a.key, nil },
		jwt.WithValidMethods([]string{jwt.SigningMethodHS256.Alg()}),
		jwt.WithIssuer(issuer),
		jwt.WithExpirationRequired(),
		jwt.WithTimeFunc(a.now),
	)
	if err != nil {
		why := "invalid token"
		if errors.Is(err, jwt.ErrTokenExpired) {
			why = "token expired"
		}
		return nil, fmt.Errorf("%s: %w", why, ErrUnauthenticated)
	}
	p := &Principal{Name: c.Subject, Role: c.Role, Scope: c.Scope, ExpiresAt: c.ExpiresAt.Time}
	if !p.Role.Valid() || p.Name == "" {
		return nil, fmt.Errorf("invalid token: %w", ErrUnauthenticated)
	}
	if p.Scope != "" {
		if uuid, ok := p.Machine(); !(ok && uuid != "" || p.Scope == ScopeRegister) {
			return nil, fmt.Errorf("invalid token scope: %w", ErrUnauthenticated)
		}
		return p, nil
	}
	u, err := a.users(ctx, p.Name)
	if errors.Is(err, model.ErrNotFound) {
		return nil, fmt.Errorf("user %s no longer exists: %w", p.Name, ErrUnauthenticated)
	}
	if err != nil {
		return nil, fmt.Errorf("look up user %s: %w", p.Name, err)
	}
	p.Role = u.Role
	return p, nil
}

// CheckPassword returns the user if password is theirs. A wrong password
// and an unknown user give the same ErrUnauthenticated error after the
// same amount of work.
func (a *Authenticator) CheckPassword(ctx context.Context, name, password string) (*model.User, error) {
	u, err := a.users(ctx, name)
	if err != nil && !errors.Is(err, model.ErrNotFound) {
		return nil, fmt.Errorf("look up user %s: %w", name, err)
	}
	hash := []byte(dummyHash)
	if u != nil && u.PasswordHash != "" {
		hash = []byte(u.PasswordHash)
	}
	ok := bcrypt.CompareHashAndPassword(hash, []byte(password)) == nil
	if u == nil || u.PasswordHash == "" || !ok {
		return nil, fmt.Errorf("wrong user name or password: %w", ErrUnauthenticated)
	}
	return u, nil
}

// HashPassword returns the bcrypt hash of password.
func HashPassword(password string) (string, error) {
	h, err := bcrypt.GenerateFromPassword([]byte(password), bcrypt.DefaultCost)
	if err != nil {
		return "", fmt.Errorf("hash password: %w", err)
	}
	return string(h), nil
}

// Equal compares two secrets in constant time.
func Equal(a, b string) bool {
	return subtle.ConstantTimeCompare([]byte(a), []byte(b)) == 1
}

// BearerToken returns the token of an "Authorization: Bearer" header.
func BearerToken(r *http.Request) (string, bool) {
	h := r.Header.Get("Authorization")
	scheme, tok, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") {
		return "", false
	}
	tok = strings.TrimSpace(tok)
	return tok, tok != ""
}

type ctxKey struct{}

// WithPrincipal returns ctx carrying p.
func WithPrincipal(ctx context.Context, p *Principal) context.Context {
	return context.WithValue(ctx, ctxKey{}, p)
}

// FromContext returns the request's principal, if authenticated.
func FromContext(ctx context.Context) (*Principal, bool) {
	p, ok := ctx.Value(ctxKey{}).(*Principal)
	return p, ok && p != nil
}

// Middleware authenticates every request with its bearer token, puts the
// principal in the request context, and checks Authorize. Failures are
// handed to onError with an error wrapping ErrUnauthenticated or
// ErrForbidden (onError writes the answer).
func (a *Authenticator) Middleware(onError func(http.ResponseWriter, *http.Request, error)) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			tok, ok := BearerToken(r)
			if !ok {
				w.Header().Set("WWW-Authenticate", `Bearer realm="ironcast"`)
				onError(w, r, fmt.Errorf("missing bearer token: %w", ErrUnauthenticated))
				return
			}
			p, err := a.Verify(r.Context(), tok)
			if err != nil {
				if errors.Is(err, ErrUnauthenticated) {
					w.Header().Set("WWW-Authenticate", `Bearer realm="ironcast", error="invalid_token"`)
				}
				onError(w, r, err)
				return
			}
			if err := Authorize(p, r.Method, r.URL.EscapedPath(), WantsDecode(r)); err != nil {
				onError(w, r, err)
				return
			}
			next.ServeHTTP(w, r.WithContext(WithPrincipal(r.Context(), p)))
		})
	}
}

// WantsDecode reports whether r asks for secure values in clear: any
// ?decode= value that is not a false boolean ("1", "TRUE", even "yes")
// counts, so that no spelling slips past Authorize.
func WantsDecode(r *http.Request) bool {
	v := r.URL.Query().Get("decode")
	if v == "" {
		return false
	}
	b, err := strconv.ParseBool(v)
	return err != nil || b
}

// MayDecode reports whether p may see secure values in clear.
func MayDecode(p *Principal) bool {
	return p != nil && p.Scope == "" && (p.Role == model.RoleAdmin || p.Role == model.RoleOperator)
}

// LoadOrCreateKey reads the signing key at path, creating it (mode 0600,
// KeySize random bytes) when it does not exist. The key is written to a
// temporary file and linked into place, so a concurrent caller never reads
// a partial key.
func LoadOrCreateKey(path string) ([]byte, error) {
	b, err := os.ReadFile(path)
	if err == nil {
		if len(b) < KeySize {
			return nil, fmt.Errorf("token key %s is %d bytes, want at least %d", path, len(b), KeySize)
		}
		return b, nil
	}
	if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("read token key: %w", err)
	}
	b = make([]byte, KeySize)
	_, _ = rand.Read(b)
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create token key: %w", err)
	}
	f, err := os.CreateTemp(dir, ".token-key-*")
	if err != nil {
		return nil, fmt.Errorf("create token key: %w", err)
	}
	defer os.Remove(f.Name())
	if err := f.Chmod(0o600); err != nil {
		f.Close()
		return nil, fmt.Errorf("create token key: %w", err)
	}
	if _, err := f.Write(b); err != nil {
		f.Close()
		return nil, fmt.Errorf("write token key: %w", err)
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return nil, fmt.Errorf("sync token key: %w", err)
	}
	if err := f.Close(); err != nil {
		return nil, fmt.Errorf("write token key: %w", err)
	}
	if err := os.Link(f.Name(), path); errors.Is(err, os.ErrExist) {
		return LoadOrCreateKey(path) // another process won the race
	} else if err != nil {
		return nil, fmt.Errorf("create token key: %w", err)
	}
	return b, nil
}
