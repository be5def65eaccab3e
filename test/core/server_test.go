// Package core tests the ironcast binary as operators run it: `ironcast
// serve` as a process with a real data directory, driven by the CLI and
// the Go client over HTTPS.
package core

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/ironcast/ironcast/api/client"
	"github.com/ironcast/ironcast/test/testenv"
)

// binary is the ironcast binary under test, built once per run.
func binary(t *testing.T) string { return testenv.IroncastBinary(t) }

func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// server is one `ironcast serve` process on 127.0.0.1.
type server struct {
	t        *testing.T
	dataDir  string
	config   string // XDG_CONFIG_HOME and HOME for the server and the CLI (the token cache is below it)
	apiPort  int
	httpPort int
	cmd      *exec.Cmd
	log      *testenv.LockedBuffer
}

func newServer(t *testing.T) *server {
	return &server{t: t, dataDir: t.TempDir(), config: t.TempDir(), apiPort: freePort(t), httpPort: freePort(t)}
}

func (s *server) env() []string {
	return append(os.Environ(), "XDG_CONFIG_HOME="+s.config, "XDG_CACHE_HOME="+filepath.Join(s.config, "cache"), "HOME="+s.config,
		"IRONCAST_ENDPOINT=", "IRONCAST_TOKEN=", "IRONCAST_USERNAME=", "IRONCAST_PASSWORD=")
}

// start runs serve with extra flags and waits until /healthz answers.
func (s *server) start(extra ...string) {
	t := s.t
	t.Helper()
	args := append([]string{"serve", "--data-dir", s.dataDir, "--listen", "127.0.0.1",
		"--api-port", strconv.Itoa(s.apiPort), "--http-port", strconv.Itoa(s.httpPort)}, extra...)
	s.log = &testenv.LockedBuffer{}
	s.cmd = exec.Command(binary(t), args...)
	s.cmd.Env = s.env()
	s.cmd.Stdout, s.cmd.Stderr = s.log, s.log
	if err := s.cmd.Start(); err != nil {
		t.Fatal(err)
	}
	cmd := s.cmd
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			cmd.Process.Signal(syscall.SIGTERM)
			done := make(chan struct{})
			go func() { cmd.Wait(); close(done) }()
			select {
			case <-done:
			case <-time.After(15 * time.Second):
				cmd.Process.Kill()
				<-done
			}
		}
		if t.Failed() {
			t.Logf("server log:\n%s", s.logText())
		}
	})
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	deadline := time.Now().Add(30 * time.Second)
	for time.Now().Before(deadline) {
		resp, err := hc.Get(s.url("/healthz"))
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return
			}
		}
		if s.cmd.ProcessState != nil {
			break
		}
		time.Sleep(50 * time.Millisecond)
	}
	t.Fatalf("server did not become healthy:\n%s", s.logText())
}

func (s *server) logText() string { return s.log.String() }

func (s *server) url(p string) string { return fmt.Sprintf("https://127.0.0.1:%d%s", s.apiPort, p) }

// kill ends the server with SIGKILL.
func (s *server) kill() {
	s.cmd.Process.Kill()
	s.cmd.Wait()
}

// stop ends the server with SIGTERM and waits.
func (s *server) stop() {
	s.cmd.Process.Signal(syscall.SIGTERM)
	if err := s.cmd.Wait(); err != nil {
		s.t.Errorf("serve exited with %v after SIGTERM:\n%s", err, s.logText())
	}
}

func (s *server) password() string {
	b, err := os.ReadFile(filepath.Join(s.dataDir, "admin-password"))
	if err != nil {
		s.t.Fatal(err)
	}
	return strings.TrimSpace(string(b))
}

// httpsClient trusts the server's certificate.
func (s *server) httpsClient() *http.Client {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(s.caPEM())
	return &http.Client{Timeout: 30 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
}

// caPEM returns the server's generated certificate.
func (s *server) caPEM() []byte {
	s.t.Helper()
	pem, err := os.ReadFile(filepath.Join(s.dataDir, "tls.crt"))
	if err != nil {
		s.t.Fatal(err)
	}
	return pem
}

// client returns an API client that trusts the generated certificate.
func (s *server) client(opts ...client.Option) *client.Client {
	s.t.Helper()
	all := append([]client.Option{client.WithCACert(s.caPEM()), client.WithBasicAuth("admin", s.password())}, opts...)
	c, err := client.New(s.url(""), all...)
	if err != nil {
		s.t.Fatal(err)
	}
	return c
}

// cli runs the ironcast CLI as a local user would: no flags, relying on
// the local-server file the server wrote.
func (s *server) cli(stdin string, args ...string) (string, string, int) {
	cmd := exec.Command(binary(s.t), args...)
	cmd.Env = s.env()
	cmd.Stdin = strings.NewReader(stdin)
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		s.t.Fatal(err)
	}
	return out.String(), errb.String(), code
}

// TestFreshStartAndCLI is the README path: serve with only --data-dir (and
// test ports), then the CLI with no flags creates and lists a machine over
// HTTPS with a token.
func TestFreshStartAndCLI(t *testing.T) {
	s := newServer(t)
	s.start()
	st, err := os.Stat(filepath.Join(s.dataDir, "admin-password"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("admin-password: %v mode %v, want 0600", err, st.Mode())
	}
	if strings.Contains(s.logText(), s.password()) {
		t.Fatal("the admin password appears in the server's output")
	}
	if !strings.Contains(s.logText(), filepath.Join(s.dataDir, "admin-password")) {
		t.Error("the server does not say where the admin password is")
	}
	out, errOut, code := s.cli("", "machines", "create", `{"Name":"n1","HardwareAddrs":["52:54:00:12:34:56"]}`)
	if code != 0 {
		t.Fatalf("machines create: exit %d: %s %s", code, out, errOut)
	}
	out, errOut, code = s.cli("", "machines", "list", "-o", "json")
	if code != 0 {
		t.Fatalf("machines list: exit %d: %s", code, errOut)
	}
	var ms []map[string]any
	if err := json.Unmarshal([]byte(out), &ms); err != nil || len(ms) != 1 || ms[0]["Name"] != "n1" {
		t.Fatalf("machines list -o json = %s (%v)", out, err)
	}
	// Errors are one line and a non-zero exit.
	_, errOut, code = s.cli("", "machines", "create", `{"Name":"n2","HardwareAddrs":["52:54:00:12:34:56"]}`)
	if code == 0 || strings.Count(strings.TrimSpace(errOut), "\n") != 0 || !strings.Contains(errOut, "52:54:00:12:34:56") {
		t.Errorf("duplicate MAC: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = s.cli("", "machines", "show", "00000000-0000-4000-8000-000000000000")
	if code == 0 || !strings.Contains(errOut, "404") {
		t.Errorf("unknown machine: exit %d, stderr %q", code, errOut)
	}
	_, errOut, code = s.cli("", "machines", "create", `{"Name":`)
	if code == 0 || strings.Contains(errOut, "goroutine") {
		t.Errorf("invalid JSON: exit %d, stderr %q", code, errOut)
	}
}

// TestRestartKeepsData stops and starts the server on the same data dir.
func TestRestartKeepsData(t *testing.T) {
	s := newServer(t)
	s.start()
	ctx := context.Background()
	c := s.client()
	if _, err := c.Create(ctx, "machines", map[string]any{"Name": "keep", "HardwareAddrs": []string{"52:54:00:00:00:11"}}); err != nil {
		t.Fatal(err)
	}
	s.stop()
	pw := s.password()
	s.start()
	if s.password() != pw {
		t.Error("restart changed the admin password")
	}
	list, total, err := s.client().List(ctx, "machines", nil)
	if err != nil || total != 1 || len(list) != 1 {
		t.Fatalf("after restart: %d machines (%v)", total, err)
	}
}

// TestBackupAndRestore takes a backup over the API and starts a second
// server from it with --restore.
func TestBackupAndRestore(t *testing.T) {
	ctx := context.Background()
	s := newServer(t)
	s.start()
	c := s.client()
	for i := range 5 {
		if _, err := c.Create(ctx, "machines", map[string]any{"Name": fmt.Sprintf("b%d", i)}); err != nil {
			t.Fatal(err)
		}
	}
	backup := filepath.Join(t.TempDir(), "ironcast.backup")
	_, errOut, code := s.cli("", "backup", backup)
	if code != 0 {
		t.Fatalf("ironcast backup: %s", errOut)
	}
	s2 := newServer(t)
	s2.start("--restore", backup)
	// The restored store holds the first server's users, so the admin
	// password is the first server's; the certificate is the new one's.
	if _, err := os.Stat(filepath.Join(s2.dataDir, "admin-password")); err == nil {
		t.Error("a restored store with users got a new admin password")
	}
	pem, _ := os.ReadFile(filepath.Join(s2.dataDir, "tls.crt"))
	c2, err := client.New(s2.url(""), client.WithCACert(pem), client.WithBasicAuth("admin", s.password()))
	if err != nil {
		t.Fatal(err)
	}
	_, total, err := c2.List(ctx, "machines", nil)
	if err != nil || total != 5 {
		t.Fatalf("restored server lists %d machines (%v), want 5", total, err)
	}
	if err := os.WriteFile(backup, []byte("not a backup"), 0o600); err != nil {
		t.Fatal(err)
	}
	out, err := exec.Command(binary(t), "serve", "--data-dir", t.TempDir(), "--restore", backup,
		"--listen", "127.0.0.1", "--api-port", strconv.Itoa(freePort(t)), "--http-port", strconv.Itoa(freePort(t))).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "restore") {
		t.Errorf("restore of garbage: err %v, output %s", err, out)
	}
}
