package core

import (
	"context"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/ironcast/ironcast/test/testenv"
)

// TestSwaggerUILoads opens the Swagger UI of a running server in headless
// Chromium and checks that the UI rendered the spec's operations (which
// only happens when the UI's JavaScript loaded and fetched doc.json).
func TestSwaggerUILoads(t *testing.T) {
	chromium := testenv.RequireTool(t, "chromium")
	s := newServer(t)
	s.start()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, chromium,
		"--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--ignore-certificate-errors",
		"--virtual-time-budget=15000", "--dump-dom", s.url("/swagger/index.html"))
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("chromium: %v\n%s", err, out)
	}
	dom := string(out)
	for _, want := range []string{`class="swagger-ui`, "ironcast API", "opblock-summary-path", "/machines"} {
		if !strings.Contains(dom, want) {
			t.Errorf("Swagger UI DOM lacks %q (%d bytes of DOM)", want, len(dom))
		}
	}
}
