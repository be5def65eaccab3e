package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ironcast/ironcast/daemon"
)

func TestServeFlags(t *testing.T) {
	defaults := daemon.Config{
		DataDir:          daemon.DefaultDataDir(),
		APIPort:          8092,
		HTTPPort:         8091,
		TFTPPort:         69,
		TFTPMaxTransfers: 256,
		BootProgramDirs:  []string{"/usr/lib/ipxe", "/usr/lib/grub/arm64-efi/monolithic"},
		ReclaimInterval:  daemon.DefaultReclaimInterval,
		Version:          version(),
	}
	tests := []struct {
		name     string
		args     []string
		want     func(c *daemon.Config)
		wantCode int
		wantErr  string
	}{
		{name: "no flags", want: func(*daemon.Config) {}},
		{
			name: "every flag",
			args: []string{
				"--data-dir", "/srv/ic", "--restore", "/b.db", "--listen", "10.0.0.1",
				"--api-port", "9443", "--http-port", "9080", "--tftp-port", "6969", "--tftp-max-transfers", "32",
				"--tls-cert", "/c.pem", "--tls-key", "/k.pem",
				"--dhcp-interface", "eth1", "--dhcp-interface", "eth2",
				"--tftp-addr", "10.0.0.1", "--boot-program-dir", "/opt/ipxe", "--boot-program-dir", "/opt/grub",
				"--log-level", "debug", "--log-format", "json", "--reclaim-interval", "45s",
			},
			want: func(c *daemon.Config) {
				c.DataDir, c.Restore, c.ListenAddr = "/srv/ic", "/b.db", "10.0.0.1"
				c.APIPort, c.HTTPPort, c.TFTPPort, c.TFTPMaxTransfers = 9443, 9080, 6969, 32
				c.TLSCert, c.TLSKey = "/c.pem", "/k.pem"
				c.DHCPInterfaces = []string{"eth1", "eth2"}
				c.TFTPAddrs = []string{"10.0.0.1"}
				c.BootProgramDirs = []string{"/opt/ipxe", "/opt/grub"}
				c.ReclaimInterval = 45 * time.Second
			},
		},
		{name: "tls cert without key", args: []string{"--tls-cert", "/c.pem"}, wantCode: exitUsage, wantErr: "--tls-cert and --tls-key must be given together"},
		{name: "same ports", args: []string{"--http-port", "8092"}, wantCode: exitUsage, wantErr: "both 8092"},
		{name: "port out of range", args: []string{"--tftp-port", "70000"}, wantCode: exitUsage, wantErr: "--tftp-port 70000 is not a port"},
		{name: "negative transfer cap", args: []string{"--tftp-max-transfers", "-1"}, wantCode: exitUsage, wantErr: "--tftp-max-transfers -1 is negative"},
		{name: "negative reclaim interval", args: []string{"--reclaim-interval", "-1s"}, wantCode: exitUsage, wantErr: "--reclaim-interval -1s is negative"},
		{name: "bad log level", args: []string{"--log-level", "loud"}, wantCode: exitUsage, wantErr: `--log-level "loud"`},
		{name: "bad log format", args: []string{"--log-format", "xml"}, wantCode: exitUsage, wantErr: `--log-format "xml"`},
		{name: "port not a number", args: []string{"--api-port", "https"}, wantCode: exitUsage, wantErr: "invalid argument"},
		{name: "stray argument", args: []string{"now"}, wantCode: exitUsage, wantErr: "serve: want 0 argument(s), got 1"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var stdout, stderr bytes.Buffer
			a := newApp(strings.NewReader(""), &stdout, &stderr)
			var got *daemon.Config
			a.serve = func(_ context.Context, c daemon.Config) error {
				got = &c
				return nil
			}
			code := a.run(context.Background(), append([]string{"serve"}, tt.args...))
			if code != tt.wantCode {
				t.Fatalf("exit code = %d, want %d (stderr %q)", code, tt.wantCode, stderr.String())
			}
			if tt.wantErr != "" {
				if got != nil {
					t.Errorf("daemon ran despite the error")
				}
				if !strings.HasPrefix(stderr.String(), "ironcast: ") || !strings.Contains(stderr.String(), tt.wantErr) || strings.Count(stderr.String(), "\n") != 1 {
					t.Errorf("stderr = %q, want one line with %q", stderr.String(), tt.wantErr)
				}
				return
			}
			if got == nil {
				t.Fatal("daemon did not run")
			}
			if got.Logger == nil {
				t.Error("Logger is nil")
			}
			want := defaults
			tt.want(&want)
			if diff := cmp.Diff(*got, want, cmpopts.IgnoreFields(daemon.Config{}, "Logger")); diff != "" {
				t.Errorf("daemon.Config mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

func TestServeLogger(t *testing.T) {
	var stderr bytes.Buffer
	a := newApp(strings.NewReader(""), &bytes.Buffer{}, &stderr)
	a.serve = func(_ context.Context, c daemon.Config) error {
		c.Logger.Debug("hidden")
		c.Logger.Warn("shown", "port", c.APIPort)
		return nil
	}
	if code := a.run(context.Background(), []string{"serve", "--log-level", "warn", "--log-format", "json"}); code != 0 {
		t.Fatalf("exit code %d: %s", code, stderr.String())
	}
	got := stderr.String()
	if strings.Contains(got, "hidden") || !strings.Contains(got, `"msg":"shown","port":8092`) {
		t.Errorf("log output = %q, want only the warning, as JSON", got)
	}
}

func TestServeError(t *testing.T) {
	var stderr bytes.Buffer
	a := newApp(strings.NewReader(""), &bytes.Buffer{}, &stderr)
	a.serve = func(context.Context, daemon.Config) error {
		return errorString("listen tcp :8092: bind: address already in use\nsecond line")
	}
	if code := a.run(context.Background(), []string{"serve"}); code != exitError {
		t.Errorf("exit code = %d, want %d", code, exitError)
	}
	if got, want := stderr.String(), "ironcast: listen tcp :8092: bind: address already in use; second line\n"; got != want {
		t.Errorf("stderr = %q, want %q", got, want)
	}
}

type errorString string

func (e errorString) Error() string { return string(e) }
