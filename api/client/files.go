package client

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"
)

// FileResult is what an upload stored (the API's bootfiles.Result).
type FileResult struct {
	// Path is relative to the boot root, e.g. "isos/x.iso".
	Path   string
	Size   int64
	Sha256 string
	// Extracted lists the trees an ISO was extracted into.
	Extracted []ExtractedTree `json:",omitempty"`
}

// ExtractedTree is one directory an ISO was extracted into.
type ExtractedTree struct {
	Dir     string
	Files   int
	Bytes   int64
	Skipped []string `json:",omitempty"`
}

// FileEntry is a file in the boot root (the API's bootfiles.Entry).
type FileEntry struct {
	Path    string
	Size    int64
	ModTime time.Time
	Sha256  string `json:",omitempty"`
}

// UploadISO streams an ISO image of size bytes (-1 if unknown) from r to
// the server as isos/<name>. sha256, when not empty, overrides the
// checksum the server's bootenvs expect. The upload is bounded only by
// ctx, not by the client's request timeout. A wrong checksum comes back
// as an *APIError with status 422 naming both sums.
func (c *Client) UploadISO(ctx context.Context, name string, r io.Reader, size int64, sha256 string) (*FileResult, error) {
	var q url.Values
	if sha256 != "" {
		q = url.Values{"sha256": {sha256}}
	}
	var out FileResult
	if err := c.upload(ctx, http.MethodPost, "/isos/"+url.PathEscape(name), q, r, size, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// UploadFile streams size bytes (-1 if unknown) from r to path below the
// server's boot root ("linuxkit/demo-kernel"), replacing the file there.
func (c *Client) UploadFile(ctx context.Context, path string, r io.Reader, size int64) (*FileResult, error) {
	var out FileResult
	if err := c.upload(ctx, http.MethodPut, filePath(path), nil, r, size, &out); err != nil {
		return nil, err
	}
	return &out, nil
}

// ListISOs lists the uploaded ISOs, with their sha256 if sums is set.
func (c *Client) ListISOs(ctx context.Context, sums bool) ([]FileEntry, error) {
	var out []FileEntry
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/isos", query: sumsQuery(sums), stream: sums}, &out)
	return out, err
}

// DeleteISO removes isos/<name> from the server.
func (c *Client) DeleteISO(ctx context.Context, name string) error {
	_, err := c.call(ctx, request{method: http.MethodDelete, path: "/isos/" + url.PathEscape(name)}, nil)
	return err
}

// ListFiles lists the files at or below prefix in the boot root ("" for
// all), with their sha256 if sums is set (then bounded only by ctx).
func (c *Client) ListFiles(ctx context.Context, prefix string, sums bool) ([]FileEntry, error) {
	q := sumsQuery(sums)
	if prefix != "" {
		if q == nil {
			q = url.Values{}
		}
		q.Set("prefix", prefix)
	}
	var out []FileEntry
	_, err := c.call(ctx, request{method: http.MethodGet, path: "/files", query: q, stream: sums}, &out)
	return out, err
}

// DeleteFile removes the file or directory tree at path in the boot root.
func (c *Client) DeleteFile(ctx context.Context, path string) error {
	_, err := c.call(ctx, request{method: http.MethodDelete, path: filePath(path)}, nil)
	return err
}

func sumsQuery(sums bool) url.Values {
	if !sums {
		return nil
	}
	return url.Values{"sha256": {"true"}}
}

// filePath escapes each component of a boot root path.
func filePath(p string) string {
	parts := strings.Split(strings.TrimLeft(p, "/"), "/")
	for i, s := range parts {
		parts[i] = url.PathEscape(s)
	}
	return "/files/" + strings.Join(parts, "/")
}

// upload sends a streamed body. A streamed body cannot be sent twice, so
// the token is fetched (or renewed) before the body starts; a 401 is not
// retried unless r can seek back to its start (when it is not, the token
// is forgotten so that the next request logs in).
func (c *Client) upload(ctx context.Context, method, path string, q url.Values, r io.Reader, size int64, out any) error {
	start := int64(-1)
	if sk, ok := r.(io.Seeker); ok {
		if pos, err := sk.Seek(0, io.SeekCurrent); err == nil {
			start = pos
		}
	}
	resp, err := c.sendStream(ctx, method, path, q, r, size, false)
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusUnauthorized && c.user != "" && start >= 0 {
		drain(resp)
		if _, err := r.(io.Seeker).Seek(start, io.SeekStart); err != nil {
			return fmt.Errorf("%s %s: rewind for a second try: %w", method, path, err)
		}
		if resp, err = c.sendStream(ctx, method, path, q, r, size, true); err != nil {
			return err
		}
	} else if resp.StatusCode == http.StatusUnauthorized {
		// Not sent again: at least the next request logs in afresh.
		c.forget()
	}
	defer drain(resp)
	if resp.StatusCode/100 != 2 {
		return decodeError(resp)
	}
	if out != nil {
		if err := json.NewDecoder(resp.Body).Decode(out); err != nil {
			return fmt.Errorf("%s %s: decode answer: %w", method, path, err)
		}
	}
	return nil
}

func (c *Client) sendStream(ctx context.Context, method, path string, q url.Values, r io.Reader, size int64, refresh bool) (*http.Response, error) {
	u := *c.base
	u.Path = c.base.Path + APIPrefix + path
	u.RawPath = c.base.EscapedPath() + APIPrefix + path
	u.RawQuery = q.Encode()
	hr, err := http.NewRequestWithContext(ctx, method, u.String(), io.NopCloser(r))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, path, err)
	}
	hr.ContentLength = size
	if size == 0 {
		hr.Body = http.NoBody
	}
	hr.Header.Set("Content-Type", "application/octet-stream")
	hr.Header.Set("Accept", "application/json")
	hr.Header.Set("User-Agent", c.agent)
	tok, err := c.bearer(ctx, refresh)
	if err != nil {
		return nil, err
	}
	if tok != "" {
		hr.Header.Set("Authorization", "Bearer "+tok)
	}
	resp, err := c.hc.Do(hr)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u.Redacted(), err)
	}
	return resp, nil
}
