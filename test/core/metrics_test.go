package core

import (
	"context"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"testing"
	"time"
)

// TestServedFilesInMetricsAndEvents fetches a real boot file and a
// rendered script over HTTP boot and checks that both are counted (with
// bytes) in /metrics and appear on the event stream.
func TestServedFilesInMetricsAndEvents(t *testing.T) {
	s := newServer(t)
	s.start()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	events, err := s.client().Events(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	content := strings.Repeat("x", 5000)
	if err := os.WriteFile(filepath.Join(s.dataDir, "boot", "hello.bin"), []byte(content), 0o644); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"/hello.bin", "/52:54:00:77:00:01.ipxe"} {
		if code, body := s.plain(t, "GET", p, "", nil); code != 200 || len(body) == 0 {
			t.Fatalf("GET %s: %d", p, code)
		}
	}
	resp, err := s.httpsClient().Get(s.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	metrics := string(b)
	for _, kind := range []string{"file", "rendered"} {
		re := regexp.MustCompile(`ironcast_httpboot_bytes_total\{kind="` + kind + `"\} (\d+)`)
		m := re.FindStringSubmatch(metrics)
		if m == nil {
			t.Errorf("/metrics has no bytes counter for %s files", kind)
			continue
		}
		if n, _ := strconv.Atoi(m[1]); n == 0 || (kind == "file" && n < len(content)) {
			t.Errorf("%s bytes = %s", kind, m[1])
		}
		if !regexp.MustCompile(`ironcast_httpboot_requests_total\{code="200",kind="` + kind + `"\} [1-9]`).MatchString(metrics) {
			t.Errorf("/metrics has no 200 request count for %s files", kind)
		}
	}
	seen := map[string]bool{}
	for !(seen["/hello.bin"] && seen["/52:54:00:77:00:01.ipxe"] && seen["render"]) {
		select {
		case ev, ok := <-events:
			if !ok {
				t.Fatalf("event stream ended; seen %v", seen)
			}
			if ev.Type == "http.file" {
				p, _ := ev.Attrs["path"].(string)
				seen[p] = true
			}
			if ev.Type == "render" {
				seen["render"] = true
			}
		case <-ctx.Done():
			t.Fatalf("events not seen: %v", seen)
		}
	}
}
