package harness

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
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/ironcast/ironcast/api/client"
	"github.com/ironcast/ironcast/model"
)

// Addresses of the private network inside the namespace.
const (
	ServerAddr = "10.77.0.1"
	serverCIDR = ServerAddr + "/24"
	SubnetCIDR = "10.77.0.0/24"
	APIPort    = 8092
	HTTPPort   = 8091
)

// server is one `ironcast serve` process inside the namespace.
type server struct {
	cmd     *exec.Cmd
	dataDir string
	log     *logFile
	done    chan struct{} // closed when the process has exited
	exited  atomic.Bool
	waitErr error

	hc     *http.Client // dials inside the namespace, trusts the server's CA
	client *client.Client
	token  string
}

// startServer runs bin serve inside ns with DHCP on br and waits until it
// says it is serving. Its JSON log goes to logPath.
func startServer(ctx context.Context, ns *netns, bin, br, dataDir, workDir, logPath string, extra []string) (*server, error) {
	logf, err := os.Create(logPath)
	if err != nil {
		return nil, fmt.Errorf("create server log: %w", err)
	}
	defer logf.Close()
	args := []string{"serve", "--data-dir", dataDir, "--dhcp-interface", br,
		"--api-port", fmt.Sprint(APIPort), "--http-port", fmt.Sprint(HTTPPort),
		"--log-level", "debug", "--log-format", "json"}
	args = append(args, extra...)
	// No ctx: the server is stopped by stop, with SIGTERM first.
	cmd := ns.command(context.Background(), bin, args...)
	cmd.Stdout, cmd.Stderr = logf, logf
	// The server records its endpoint for the local CLI under
	// $XDG_CONFIG_HOME; keep that out of the host user's config.
	cmd.Env = append(os.Environ(), "XDG_CONFIG_HOME="+filepath.Join(workDir, "config"), "HOME="+workDir)
	if err := start(cmd); err != nil {
		return nil, fmt.Errorf("start %s serve: %w", bin, err)
	}
	s := &server{cmd: cmd, dataDir: dataDir, done: make(chan struct{})}
	s.log = &logFile{path: logPath, alive: func() bool { return !s.exited.Load() }}
	go func() {
		s.waitErr = cmd.Wait()
		s.exited.Store(true)
		close(s.done)
	}()

	wctx, cancel := context.WithTimeout(ctx, 60*time.Second)
	defer cancel()
	_, _, err = s.log.wait(wctx, 0, regexp.MustCompile(`"msg":"ironcast serving"`), nil, nil)
	if err != nil {
		s.stop()
		if errors.Is(err, errGone) {
			err = fmt.Errorf("exited: %v", s.waitErr)
		}
		return nil, fmt.Errorf("ironcast serve did not start: %w\n%s", err, s.log.tail(30))
	}
	if err := s.connect(ctx, ns); err != nil {
		s.stop()
		return nil, err
	}
	return s, nil
}

// connect builds the API client: its sockets are opened inside the
// namespace, it trusts the certificate the server generated and logs in as
// admin with the password the server wrote on first start.
func (s *server) connect(ctx context.Context, ns *netns) error {
	pw, err := os.ReadFile(filepath.Join(s.dataDir, "admin-password"))
	if err != nil {
		return fmt.Errorf("read admin password: %w", err)
	}
	ca, err := os.ReadFile(filepath.Join(s.dataDir, "tls.crt"))
	if err != nil {
		return fmt.Errorf("read server certificate: %w", err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(ca) {
		return errors.New("server certificate: no PEM certificate")
	}
	tr := http.DefaultTransport.(*http.Transport).Clone()
	tr.DialContext = ns.dialContext
	tr.Proxy = nil
	tr.TLSClientConfig = &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
	c, err := client.New(fmt.Sprintf("https://%s:%d", ServerAddr, APIPort),
		client.WithBasicAuth("admin", strings.TrimSpace(string(pw))),
		client.WithTimeout(30*time.Second), client.WithHTTPClient(&http.Client{Transport: tr}))
	if err != nil {
		return err
	}
	tok, err := c.Token(ctx, "admin", strings.TrimSpace(string(pw)), 12*time.Hour)
	if err != nil {
		return fmt.Errorf("log in to the API as admin: %w", err)
	}
	s.client, s.hc, s.token = c, &http.Client{Transport: tr, Timeout: 30 * time.Second}, tok.Token
	return nil
}

// call sends a JSON request to the API (path below /api/v1) and decodes
// the reply into out (when not nil).
func (s *server) call(ctx context.Context, method, path string, body, out any) error {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, fmt.Sprintf("https://%s:%d%s%s", ServerAddr, APIPort, client.APIPrefix, path), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+s.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := s.hc.Do(req)
	if err != nil {
		return fmt.Errorf("%s %s: %w", method, path, err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(resp.Body, 8<<20))
	if resp.StatusCode/100 != 2 {
		return fmt.Errorf("%s %s: %s: %s", method, path, resp.Status, bytes.TrimSpace(b))
	}
	if out != nil {
		if err := json.Unmarshal(b, out); err != nil {
			return fmt.Errorf("%s %s: decode reply: %w", method, path, err)
		}
	}
	return nil
}

// stop ends the server: SIGTERM, then SIGKILL after a grace period.
func (s *server) stop() {
	if s.exited.Load() {
		return
	}
	_ = s.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-s.done:
	case <-time.After(15 * time.Second):
		_ = s.cmd.Process.Kill()
		<-s.done
	}
}

// machines lists the server's machines.
func (s *server) machines(ctx context.Context) ([]model.Machine, error) {
	raws, _, err := s.client.List(ctx, model.KindMachines, nil)
	if err != nil {
		return nil, err
	}
	out := make([]model.Machine, 0, len(raws))
	for _, r := range raws {
		var m model.Machine
		if err := json.Unmarshal(r, &m); err != nil {
			return nil, fmt.Errorf("decode machine: %w", err)
		}
		out = append(out, m)
	}
	return out, nil
}
