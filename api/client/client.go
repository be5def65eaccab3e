// Package client is a Go client for the ironcast REST API (/api/v1). It
// imports only package model and the standard library, so that tools can
// depend on it without pulling in the server.
//
// Objects travel as json.RawMessage so that callers (the CLI) can print
// them as the server sent them; the typed helpers decode into model types.
// A Client is safe for concurrent use.
package client

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/ironcast/ironcast/model"
)

// APIPrefix is the path of the API below the endpoint.
const APIPrefix = "/api/v1"

// DefaultTimeout bounds a request (not a stream) when no WithTimeout is given.
const DefaultTimeout = 60 * time.Second

// Client talks to one ironcast server.
type Client struct {
	base    *url.URL
	hc      *http.Client
	tls     *tls.Config
	timeout time.Duration
	agent   string

	mu       sync.Mutex
	token    string
	tokenExp time.Time // zero for a static token
	user     string
	password string
	cache    TokenCache // nil: tokens live only as long as the Client
}

// Option configures a Client.
type Option func(*Client) error

// WithToken authenticates every request with a bearer token.
func WithToken(token string) Option {
	return func(c *Client) error { c.token = token; return nil }
}

// WithBasicAuth makes the client obtain a token for user with password
// from POST /api/v1/users/{user}/token, and obtain a new one before it
// expires or when the server rejects it.
func WithBasicAuth(user, password string) Option {
	return func(c *Client) error { c.user, c.password = user, password; return nil }
}

// TokenCache keeps the token a Client obtains with WithBasicAuth beyond
// the Client's life, for example in a file, so that a short-lived process
// (one CLI call) does not log in, and the server does not check a
// password, on every run. Its methods are called with the Client's lock
// held, never concurrently by one Client; they report no errors, since a
// cache that fails only costs a login.
type TokenCache interface {
	// Load returns the cached token, if any. The Client uses it only while
	// it is more than RenewBefore from its expiry.
	Load() (Token, bool)
	// Store replaces the cached token with t, just obtained.
	Store(t Token)
	// Drop forgets the cached token: the server refused it, or a new login
	// failed.
	Drop()
}

// RenewBefore is how long before its expiry a token obtained with
// WithBasicAuth (or loaded from a TokenCache) is replaced by a new login.
const RenewBefore = time.Minute

// WithTokenCache makes a Client with WithBasicAuth try the token in tc
// before it logs in, and store every token it obtains there. A 401 to a
// cached token drops it and logs in once more. Without WithBasicAuth the
// cache is never read or written.
func WithTokenCache(tc TokenCache) Option {
	return func(c *Client) error { c.cache = tc; return nil }
}

// WithTLSConfig sets the TLS configuration (it is cloned).
func WithTLSConfig(cfg *tls.Config) Option {
	return func(c *Client) error { c.tls = cfg.Clone(); return nil }
}

// WithCACert trusts the PEM certificates in pem (and only those) for the
// server's certificate.
func WithCACert(pem []byte) Option {
	return func(c *Client) error {
		pool := x509.NewCertPool()
		if !pool.AppendCertsFromPEM(pem) {
			return errors.New("ca certificate: no PEM certificate found")
		}
		c.tlsConfig().RootCAs = pool
		return nil
	}
}

// WithInsecure skips verification of the server's certificate.
func WithInsecure() Option {
	return func(c *Client) error { c.tlsConfig().InsecureSkipVerify = true; return nil }
}

// WithTimeout bounds each request; streams (Events, Backup) are bounded
// only by their context. Zero means DefaultTimeout.
func WithTimeout(d time.Duration) Option {
	return func(c *Client) error { c.timeout = d; return nil }
}

// WithHTTPClient uses hc instead of a client built from the TLS options.
func WithHTTPClient(hc *http.Client) Option {
	return func(c *Client) error { c.hc = hc; return nil }
}

// WithUserAgent sets the User-Agent header.
func WithUserAgent(ua string) Option {
	return func(c *Client) error { c.agent = ua; return nil }
}

func (c *Client) tlsConfig() *tls.Config {
	if c.tls == nil {
		c.tls = &tls.Config{MinVersion: tls.VersionTLS12}
	}
	return c.tls
}

// New returns a client for endpoint, for example "https://10.0.0.1:8092".
// A path in endpoint is kept as a prefix before /api/v1.
func New(endpoint string, opts ...Option) (*Client, error) {
	u, err := url.Parse(endpoint)
	if err != nil {
		return nil, fmt.Errorf("endpoint %q: %w", endpoint, err)
	}
	if u.Scheme != "http" && u.Scheme != "https" || u.Host == "" {
		return nil, fmt.Errorf("endpoint %q: want http(s)://host[:port]", endpoint)
	}
	u.Path = strings.TrimSuffix(u.Path, "/")
	u.RawQuery, u.Fragment = "", ""
	c := &Client{base: u, timeout: DefaultTimeout, agent: "ironcast-client"}
	for _, o := range opts {
		if err := o(c); err != nil {
			return nil, err
		}
	}
	if c.timeout <= 0 {
		c.timeout = DefaultTimeout
	}
	if c.hc == nil {
		tr := http.DefaultTransport.(*http.Transport).Clone()
		tr.TLSClientConfig = c.tls
		c.hc = &http.Client{Transport: tr}
	}
	return c, nil
}

// Endpoint returns the server's base URL.
func (c *Client) Endpoint() string { return c.base.String() }

// APIError is an error answer from the server.
type APIError struct {
	StatusCode int
	// Message says what is wrong; Field names the offending field, if any.
	Message string
	Field   string
	// Errors lists every invalid field of a 422 answer.
	Errors []FieldError `json:",omitempty"`
}

// FieldError is one invalid field.
type FieldError struct {
	Field   string `json:",omitempty"`
	Message string
}

// Error returns one line: "Field: message (422 Unprocessable Entity)".
func (e *APIError) Error() string {
	var b strings.Builder
	switch {
	case len(e.Errors) > 1:
		for i, fe := range e.Errors {
			if i > 0 {
				b.WriteString("; ")
			}
			if fe.Field != "" {
				b.WriteString(fe.Field + ": ")
			}
			b.WriteString(fe.Message)
		}
	case e.Field != "" && !strings.HasPrefix(e.Message, e.Field+":"):
		b.WriteString(e.Field + ": " + e.Message)
	default:
		b.WriteString(e.Message)
	}
	if b.Len() == 0 {
		b.WriteString("request failed")
	}
	fmt.Fprintf(&b, " (%d %s)", e.StatusCode, http.StatusText(e.StatusCode))
	return strings.ReplaceAll(b.String(), "\n", " ")
}

// IsNotFound reports whether err is an API 404.
func IsNotFound(err error) bool { return statusIs(err, http.StatusNotFound) }

// IsConflict reports whether err is an API 409.
func IsConflict(err error) bool { return statusIs(err, http.StatusConflict) }

func statusIs(err error, code int) bool {
	var ae *APIError
	return errors.As(err, &ae) && ae.StatusCode == code
}

// request is one API call.
type request struct {
	method  string
	path    string // below APIPrefix, already escaped
	query   url.Values
	body    []byte
	ctype   string
	header  http.Header
	stream  bool // no per-request timeout
	noAuth  bool
	basicOK bool // send basic credentials instead of a token
}

// do sends req and returns the response if its status is 2xx; otherwise it
// returns an *APIError. The caller closes the body. cancel must be called
// once the body is consumed.
func (c *Client) do(ctx context.Context, req request) (*http.Response, context.CancelFunc, error) {
	resp, cancel, err := c.send(ctx, req, false)
	if err != nil {
		return nil, nil, err
	}
	if resp.StatusCode == http.StatusUnauthorized && c.user != "" && !req.noAuth && !req.basicOK {
		// The cached token expired or was revoked: get a new one, once.
		drain(resp)
		cancel()
		if resp, cancel, err = c.send(ctx, req, true); err != nil {
			return nil, nil, err
		}
	}
	if resp.StatusCode/100 != 2 {
		defer cancel()
		defer drain(resp)
		return nil, nil, decodeError(resp)
	}
	return resp, cancel, nil
}

func (c *Client) send(ctx context.Context, req request, refresh bool) (*http.Response, context.CancelFunc, error) {
	cancel := context.CancelFunc(func() {})
	if !req.stream {
		ctx, cancel = context.WithTimeout(ctx, c.timeout)
	}
	u := *c.base
	u.Path = c.base.Path + APIPrefix + req.path
	u.RawPath = c.base.EscapedPath() + APIPrefix + req.path
	if len(req.query) > 0 {
		u.RawQuery = req.query.Encode()
	}
	var body io.Reader
	if req.body != nil {
		body = bytes.NewReader(req.body)
	}
	hr, err := http.NewRequestWithContext(ctx, req.method, u.String(), body)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("%s %s: %w", req.method, req.path, err)
	}
	for k, v := range req.header {
		hr.Header[k] = v
	}
	if req.body != nil {
		ct := req.ctype
		if ct == "" {
			ct = "application/json"
		}
		hr.Header.Set("Content-Type", ct)
	}
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("User-Agent", c.agent)
	switch {
	case req.noAuth:
	case req.basicOK:
		hr.SetBasicAuth(c.user, c.password)
	default:
		tok, err := c.bearer(ctx, refresh)
		if err != nil {
			cancel()
			return nil, nil, err
		}
		if tok != "" {
			hr.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		cancel()
		return nil, nil, fmt.Errorf("%s %s: %w", req.method, u.Redacted(), err)
	}
	return resp, cancel, nil
}

// bearer returns the token to send, obtaining one with the basic
// credentials when there is none, it is about to expire, or refresh is set.
func (c *Client) bearer(ctx context.Context, refresh bool) (string, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.user == "" {
		return c.token, nil
	}
	fresh := func(exp time.Time) bool { return exp.IsZero() || time.Until(exp) > RenewBefore }
	if c.token != "" && !refresh && fresh(c.tokenExp) {
		return c.token, nil
	}
	if c.token == "" && !refresh && c.cache != nil {
		if t, ok := c.cache.Load(); ok && t.Token != "" && !t.ExpiresAt.IsZero() && fresh(t.ExpiresAt) {
			c.token, c.tokenExp = t.Token, t.ExpiresAt
			return c.token, nil
		}
	}
	if c.password == "" {
		return "", fmt.Errorf("log in as %s: no password", c.user)
	}
	tok, err := c.Token(ctx, c.user, c.password, 0)
	if err != nil {
		c.token, c.tokenExp = "", time.Time{}
		if c.cache != nil {
			c.cache.Drop()
		}
		return "", fmt.Errorf("log in as %s: %w", c.user, err)
	}
	c.token, c.tokenExp = tok.Token, tok.ExpiresAt
	if c.cache != nil {
		c.cache.Store(*tok)
	}
	return c.token, nil
}

// forget drops the token obtained with the basic credentials, here and in
// the cache, after the server refused it and the request could not be
// sent again: the next request logs in.
func (c *Client) forget() {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.user == "" {
		return
	}
	c.token, c.tokenExp = "", time.Time{}
	if c.cache != nil {
		c.cache.Drop()
	}
}

func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	_ = resp.Body.Close()
}

func decodeError(resp *http.Response) error {
	e := &APIError{StatusCode: resp.StatusCode}
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err := json.Unmarshal(b, e); err != nil || e.Message == "" {
		e.Message = strings.TrimSpace(string(b))
		if len(e.Message) > 200 {
			e.Message = e.Message[:200] + "…"
		}
		if e.Message == "" || strings.HasPrefix(e.Message, "<") {
			e.Message = strings.ToLower(http.StatusText(resp.StatusCode))
		}
	}
	e.StatusCode = resp.StatusCode
	return e
}

// call sends req and decodes a JSON answer into out (unless out is nil).
func (c *Client) call(ctx context.Context, req request, out any) (http.Header, error) {
	resp, cancel, err := c.do(ctx, req)
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer drain(resp)
	if out != nil && resp.StatusCode != http.StatusNoContent && req.method != http.MethodHead {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return nil, fmt.Errorf("%s %s: decode answer: %w", req.method, req.path, err)
		}
	}
	return resp.Header, nil
}

func marshalBody(body any) ([]byte, error) {
	switch b := body.(type) {
	case nil:
		return []byte("null"), nil
	case []byte:
		return b, nil
	case json.RawMessage:
		return b, nil
	case string:
		return []byte(b), nil
	}
	b, err := json.Marshal(body)
	if err != nil {
		return nil, fmt.Errorf("encode body: %w", err)
	}
	return b, nil
}

func objPath(kind string, key ...string) string {
	p := "/" + url.PathEscape(kind)
	for _, k := range key {
		p += "/" + url.PathEscape(k)
	}
	return p
}

func ifMatchHeader(etag string) http.Header {
	if etag == "" {
		return nil
	}
	if !strings.HasPrefix(etag, `"`) && !strings.HasPrefix(etag, "W/") && etag != "*" {
		etag = `"` + etag + `"`
	}
	return http.Header{"If-Match": {etag}}
}

// List returns the objects of kind matching query (field filters such as
// "Name=n1" or "param.NAME=value", and sort, reverse, offset, limit) and
// the total number of matches before offset and limit.
func (c *Client) List(ctx context.Context, kind string, query url.Values) ([]json.RawMessage, int, error) {
	var out []json.RawMessage
	h, err := c.call(ctx, request{method: http.MethodGet, path: objPath(kind), query: query}, &out)
	if err != nil {
		return nil, 0, err
	}
	total := len(out)
	if v := h.Get("X-Total-Count"); v != "" {
		if n, err := strconv.Atoi(v); err == nil {
			total = n
		}
	}
	return out, total, nil
}

// Get returns one object and its ETag. decode asks for secure param values
// in clear (admin and operator only).
func (c *Client) Get(ctx context.Context, kind, key string, decode bool) (json.RawMessage, string, error) {
	var out json.RawMessage
	h, err := c.call(ctx, request{method: http.MethodGet, path: objPath(kind, key), query: decodeQuery(decode)}, &out)
	if err != nil {
		return nil, "", err
	}
	return out, h.Get("ETag"), nil
}

func decodeQuery(decode bool) url.Values {
	if !decode {
		return nil
	}
	return url.Values{"decode": {"true"}}
}

// Create stores a new object of kind and returns it as stored. body is
// JSON ([]byte, json.RawMessage or string) or a value to marshal.
func (c *Client) Create(ctx context.Context, kind string, body any) (json.RawMessage, error) {
	b, err := marshalBody(body)
	if err != nil {
		return nil, err
	}
	var out json.RawMessage
	_, err = c.call(ctx, request{method: http.MethodPost, path: objPath(kind), body: b}, &out)
	return out, err
}

// Replace replaces the object kind/key with body. A non-empty ifMatch (an
// ETag or a bare revision) makes the write fail with 409 if the object
// changed since.
func (c *Client) Replace(ctx context.Context, kind, key string, body any, ifMatch string) (json.RawMessage, error) {
	b, err := marshalBody(body)
	if err != nil {
		return nil, err
	}
	var out json.RawMessage
	_, err = c.call(ctx, request{method: http.MethodPut, path: objPath(kind, key), body: b, header: ifMatchHeader(ifMatch)}, &out)
	return out, err
}

// Content types accepted by Patch.
const (
	JSONPatch  = "application/json-patch+json"  // RFC 6902
	MergePatch = "application/merge-patch+json" // RFC 7396
)

// Patch applies an RFC 6902 JSON Patch (contentType JSONPatch) or an RFC
// 7396 merge patch (MergePatch; the default when contentType is empty).
func (c *Client) Patch(ctx context.Context, kind, key string, patch []byte, contentType, ifMatch string) (json.RawMessage, error) {
	if contentType == "" {
		contentType = MergePatch
	}
	var out json.RawMessage
	_, err := c.call(ctx, request{method: http.MethodPatch, path: objPath(kind, key), body: patch, ctype: contentType, header: ifMatchHeader(ifMatch)}, &out)
	return out, err
}

// Delete removes kind/key (only if its ETag is ifMatch, when given) and
// returns the deleted object.
func (c *Client) Delete(ctx context.Context, kind, key, ifMatch string) (json.RawMessage, error) {
	var out json.RawMessage
	_, err := c.call(ctx, request{method: http.MethodDelete, path: objPath(kind, key), header: ifMatchHeader(ifMatch)}, &out)
	return out, err
}

// Exists reports whether kind/key exists.
func (c *Client) Exists(ctx context.Context, kind, key string) (bool, error) {
	_, err := c.call(ctx, request{method: http.MethodHead, path: objPath(kind, key)}, nil)
	if IsNotFound(err) {
		return false, nil
	}
	return err == nil, err
}

// Params returns a machine's own param values.
func (c *Client) Params(ctx context.Context, uuid string, decode bool) (map[string]any, error) {
	out := map[string]any{}
	_, err := c.call(ctx, request{method: http.MethodGet, path: objPath(model.KindMachines, uuid, "params"), query: decodeQuery(decode)}, &out)
	return out, err
}

// AggregateParams returns every param that applies to a machine with its
// effective value and source, sorted by name.
func (c *Client) AggregateParams(ctx context.Context, uuid string, decode bool) ([]model.ResolvedParam, error) {
	q := url.Values{"aggregate": {"true"}}
	if decode {
		q.Set("decode", "true")
	}
	var out []model.ResolvedParam
	_, err := c.call(ctx, request{method: http.MethodGet, path: objPath(model.KindMachines, uuid, "params"), query: q}, &out)
	return out, err
}

// SetParam sets one param on a machine and returns the machine's params.
// value is any JSON value (a json.RawMessage is sent as is).
func (c *Client) SetParam(ctx context.Context, uuid, name string, value any) (map[string]any, error) {
	var b []byte
	var err error
	if raw, ok := value.(json.RawMessage); ok {
		b = raw
	} else if b, err = json.Marshal(value); err != nil {
		return nil, fmt.Errorf("encode param %s: %w", name, err)
	}
	out := map[string]any{}
	_, err = c.call(ctx, request{method: http.MethodPut, path: objPath(model.KindMachines, uuid, "params", name), body: b}, &out)
	return out, err
}

// Token is a bearer token and when it expires.
type Token struct {
	Token     string
	ExpiresAt time.Time
}

// Token obtains a bearer token for user. With a password it authenticates
// with HTTP Basic; with an empty password it uses the client's own token
// (an admin may get a token for any user, anyone for themselves). ttl 0
// means the server's default.
func (c *Client) Token(ctx context.Context, user, password string, ttl time.Duration) (*Token, error) {
	req := request{method: http.MethodPost, path: objPath(model.KindUsers, user, "token")}
	if ttl > 0 {
		req.body, _ = json.Marshal(map[string]string{"TTL": ttl.String()})
	}
	hdr := http.Header{}
	if password != "" {
		req.noAuth = true
		hdr.Set("Authorization", "Basic "+basic(user, password))
	} else {
		tok, err := c.bearer(ctx, false)
		if err != nil {
			return nil, err
		}
		req.noAuth = true
		if tok != "" {
			hdr.Set("Authorization", "Bearer "+tok)
		}
	}
	req.header = hdr
	out := &Token{}
	if _, err := c.call(ctx, req, out); err != nil {
		return nil, err
	}
	return out, nil
}

func basic(user, password string) string {
	r, _ := http.NewRequest(http.MethodGet, "/", nil)
	r.SetBasicAuth(user, password)
	return strings.TrimPrefix(r.Header.Get("Authorization"), "Basic ")
}

// Info describes the server.
type Info struct {
	Version string
	// Ports maps a service ("api", "tftp", "http", "dhcp") to its port.
	Ports      map[string]int
	Features   []string
	ServerTime time.Time
}

// Info returns what the server says about itself.
func (c *Client) Info(ctx context.Context) (*Info, error) {
	out := &Info{}
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/info"}, out)
	return out, err
}

// Whoami is the caller as the server sees it.
type Whoami struct {
	Name      string
	Role      model.Role
	Scope     string `json:",omitempty"`
	ExpiresAt time.Time
}

// Whoami returns who the server takes the caller for.
func (c *Client) Whoami(ctx context.Context) (*Whoami, error) {
	out := &Whoami{}
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/whoami"}, out)
	return out, err
}

// Backup streams a consistent snapshot of the server's store into w and
// returns the bytes written (admin only).
func (c *Client) Backup(ctx context.Context, w io.Writer) (int64, error) {
	resp, cancel, err := c.do(ctx, request{method: http.MethodGet, path: "/backup", stream: true})
	if err != nil {
		return 0, err
	}
	defer cancel()
	defer resp.Body.Close()
	n, err := io.Copy(w, resp.Body)
	if err != nil {
		return n, fmt.Errorf("backup: %w", err)
	}
	return n, nil
}

// GetObject is Get decoded into the kind's model type.
func (c *Client) GetObject(ctx context.Context, kind, key string, decode bool) (model.Object, string, error) {
	raw, etag, err := c.Get(ctx, kind, key, decode)
	if err != nil {
		return nil, "", err
	}
	obj, err := decodeObject(kind, raw)
	return obj, etag, err
}

// ListObjects is List decoded into the kind's model type.
func (c *Client) ListObjects(ctx context.Context, kind string, query url.Values) ([]model.Object, int, error) {
	raws, total, err := c.List(ctx, kind, query)
	if err != nil {
		return nil, 0, err
	}
	out := make([]model.Object, 0, len(raws))
	for _, r := range raws {
		obj, err := decodeObject(kind, r)
		if err != nil {
			return nil, 0, err
		}
		out = append(out, obj)
	}
	return out, total, nil
}

// CreateObject creates obj and returns it as stored.
func (c *Client) CreateObject(ctx context.Context, obj model.Object) (model.Object, error) {
	raw, err := c.Create(ctx, obj.Kind(), obj)
	if err != nil {
		return nil, err
	}
	return decodeObject(obj.Kind(), raw)
}

func decodeObject(kind string, raw json.RawMessage) (model.Object, error) {
	obj := model.New(kind)
	if obj == nil {
		return nil, fmt.Errorf("unknown kind %q", kind)
	}
	if err := json.Unmarshal(raw, obj); err != nil {
		return nil, fmt.Errorf("decode %s: %w", kind, err)
	}
	return obj, nil
}
