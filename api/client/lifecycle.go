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

// ActionOptions qualify a lifecycle action (provision needs a BootEnv
// unless the machine's pool names one).
type ActionOptions struct {
	BootEnv string `json:",omitempty"`
}

// Act applies an operator action (provision, release, reboot) to a
// machine and returns the machine after it.
func (c *Client) Act(ctx context.Context, uuid, action string, opts ActionOptions) (json.RawMessage, error) {
	body, err := json.Marshal(opts)
	if err != nil {
		return nil, err
	}
	var out json.RawMessage
	_, err = c.call(ctx, request{method: http.MethodPost, path: objPath("machines", uuid) + "/actions/" + url.PathEscape(action),
		body: body, ctype: "application/json"}, &out)
	return out, err
}

// Callback posts what the booted OS reports (running, installed, wiping,
// wiped, failed) for a machine; reason explains a failure.
func (c *Client) Callback(ctx context.Context, uuid, event, reason string) (json.RawMessage, error) {
	body, err := json.Marshal(map[string]string{"Reason": reason})
	if err != nil {
		return nil, err
	}
	var out json.RawMessage
	_, err = c.call(ctx, request{method: http.MethodPost, path: objPath("machines", uuid) + "/callbacks/" + url.PathEscape(event),
		body: body, ctype: "application/json"}, &out)
	return out, err
}

// TimelineEntry is one thing that happened to a machine.
type TimelineEntry struct {
	Time  time.Time
	Type  string
	Attrs map[string]any `json:",omitempty"`
}

// Timeline returns a machine's boot timeline, oldest first.
func (c *Client) Timeline(ctx context.Context, uuid string) ([]TimelineEntry, error) {
	var out []TimelineEntry
	_, err := c.call(ctx, request{method: http.MethodGet, path: objPath("machines", uuid) + "/timeline"}, &out)
	return out, err
}

// Explain returns why a machine boots what it boots (params with their
// sources, files it would be served, problems).
func (c *Client) Explain(ctx context.Context, uuid string) (json.RawMessage, error) {
	var out json.RawMessage
	_, err := c.call(ctx, request{method: http.MethodGet, path: objPath("machines", uuid) + "/explain"}, &out)
	return out, err
}

// Metadata returns a machine's metadata document.
func (c *Client) Metadata(ctx context.Context, uuid string) (json.RawMessage, error) {
	var out json.RawMessage
	_, err := c.call(ctx, request{method: http.MethodGet, path: objPath("machines", uuid) + "/metadata"}, &out)
	return out, err
}

// Render returns exactly what a machine would be served at path (ipxe,
// pxelinux, grub, or a bootenv file such as preseed.cfg).
func (c *Client) Render(ctx context.Context, uuid, path string) ([]byte, error) {
	parts := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i, p := range parts {
		parts[i] = url.PathEscape(p)
	}
	resp, cancel, err := c.do(ctx, request{method: http.MethodGet, path: objPath("machines", uuid) + "/render/" + strings.Join(parts, "/")})
	if err != nil {
		return nil, err
	}
	defer cancel()
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		return nil, fmt.Errorf("render %s: %w", path, err)
	}
	return b, nil
}
