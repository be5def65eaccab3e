package daemon

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/ironcast/ironcast/clientcfg"
)

// freePort returns a TCP port on 127.0.0.1 that was free a moment ago.
func freePort(t *testing.T) int {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().(*net.TCPAddr).Port
}

// startDaemon runs Run on loopback ports (no DHCP, no TFTP) until the test
// ends, and returns the API and HTTP boot base URLs and an HTTP client that
// trusts the API's certificate. It waits for the local-server file, which
// Run writes once every socket is bound.
func startDaemon(t *testing.T) (apiURL, bootURL string, hc *http.Client) {
	t.Helper()
	cfg := Config{DataDir: t.TempDir(), ListenAddr: "127.0.0.1", APIPort: freePort(t), HTTPPort: freePort(t),
		BootProgramDirs: []string{t.TempDir()}}
	ls := runDaemon(t, cfg)
	pem, err := os.ReadFile(ls.CACertFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	hc = &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 30 * time.Second}
	t.Cleanup(hc.CloseIdleConnections)
	return ls.Endpoint, "http://127.0.0.1:" + strconv.Itoa(cfg.HTTPPort), hc
}

// runDaemon runs Run with cfg until the test ends and returns the
// local-server record, which Run writes once every socket is bound.
func runDaemon(t *testing.T, cfg Config) clientcfg.LocalServer {
	t.Helper()
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- Run(ctx, cfg) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil {
			t.Errorf("Run: %v", err)
		}
	})
	for i := 0; ; i++ {
		ls, err := clientcfg.Read()
		if err == nil {
			return ls
		}
		select {
		case err := <-done:
			t.Fatalf("Run returned before it was ready: %v", err)
		default:
		}
		if i == 600 {
			t.Fatalf("Run did not write %s", clientcfg.Path())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// scrape returns the unlabelled samples of /metrics whose names start
// with prefix.
func scrape(t *testing.T, hc *http.Client, apiURL, prefix string) map[string]float64 {
	t.Helper()
	resp, err := hc.Get(apiURL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("GET /metrics: %s", resp.Status)
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if !ok || !strings.HasPrefix(name, prefix) {
			continue
		}
		v, err := strconv.ParseFloat(value, 64)
		if err != nil {
			t.Fatalf("metric line %q: %v", sc.Text(), err)
		}
		out[name] = v
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestRenderCacheMetrics renders one iPXE script twice over HTTP boot and
// checks that the render cache's counters on /metrics move: a miss and an
// entry for the first, a hit for the second.
func TestRenderCacheMetrics(t *testing.T) {
	apiURL, bootURL, hc := startDaemon(t)
	const prefix = "ironcast_render_cache_"
	before := scrape(t, hc, apiURL, prefix)
	for _, name := range []string{"hits_total", "misses_total", "entries", "bytes"} {
		if _, ok := before[prefix+name]; !ok {
			t.Fatalf("/metrics lacks %s%s; it has %v", prefix, name, before)
		}
	}
	get := func() string {
		t.Helper()
		resp, err := hc.Get(bootURL + "/525400c0ffee.ipxe")
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil || resp.StatusCode != http.StatusOK || !strings.HasPrefix(string(b), "#!ipxe") {
			t.Fatalf("GET the iPXE script: %s, %v:\n%s", resp.Status, err, b)
		}
		return string(b)
	}

	get()
	first := scrape(t, hc, apiURL, prefix)
	if got, want := first[prefix+"misses_total"], before[prefix+"misses_total"]+1; got != want {
		t.Errorf("misses after the first render = %v, want %v", got, want)
	}
	if got, want := first[prefix+"entries"], before[prefix+"entries"]+1; got != want {
		t.Errorf("entries after the first render = %v, want %v", got, want)
	}
	if first[prefix+"bytes"] <= before[prefix+"bytes"] {
		t.Errorf("bytes after the first render = %v, want more than %v", first[prefix+"bytes"], before[prefix+"bytes"])
	}

	get()
	second := scrape(t, hc, apiURL, prefix)
	if got, want := second[prefix+"hits_total"], first[prefix+"hits_total"]+1; got != want {
		t.Errorf("hits after the second render = %v, want %v", got, want)
	}
	if got, want := second[prefix+"misses_total"], first[prefix+"misses_total"]; got != want {
		t.Errorf("misses after the second render = %v, want still %v", got, want)
	}
}
