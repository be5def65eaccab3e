package cli

import (
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ironcast/ironcast/clientcfg"
)

func ptr[T any](v T) *T { return &v }

func TestResolveConn(t *testing.T) {
	type local struct {
		ls       clientcfg.LocalServer
		password string // written to PasswordFile unless empty
	}
	localSrv := local{
		ls:       clientcfg.LocalServer{Endpoint: "https://127.0.0.1:8092", CACertFile: "/data/tls.crt", PasswordFile: "PWFILE", Username: "admin"},
		password: "s3cret\n",
	}
	tests := []struct {
		name    string
		args    []string
		env     map[string]string
		config  string // written to the default config file unless empty
		local   *local
		want    conn
		wantErr string
	}{
		{
			name: "flags win over env",
			args: []string{"--endpoint", "https://flag", "--token", "ft"},
			env:  map[string]string{envEndpoint: "https://env", envToken: "et", envCACert: "/env.pem"},
			want: conn{Endpoint: "https://flag", Token: "ft", CACert: "/env.pem", From: "--endpoint"},
		},
		{
			name:   "env wins over config file",
			env:    map[string]string{envEndpoint: "https://env", envInsecure: "false"},
			config: "endpoint: https://file\nusername: fu\npassword: fp\ninsecure: true\n",
			want:   conn{Endpoint: "https://env", Username: "fu", Password: "fp", Insecure: ptr(false), From: envEndpoint},
		},
		{
			name:   "config file wins over local server",
			config: "endpoint: https://file\ntoken: ft\n",
			local:  &localSrv,
			want:   conn{Endpoint: "https://file", Token: "ft", From: "config file CONFIG"},
		},
		{
			name:  "local server alone: endpoint, CA and admin password",
			local: &localSrv,
			want:  conn{Endpoint: "https://127.0.0.1:8092", CACert: "/data/tls.crt", Username: "admin", Password: "s3cret", From: "local server file LOCAL"},
		},
		{
			name:  "local server with a token keeps the token",
			env:   map[string]string{envToken: "et"},
			local: &localSrv,
			want:  conn{Endpoint: "https://127.0.0.1:8092", CACert: "/data/tls.crt", Token: "et", From: "local server file LOCAL"},
		},
		{
			name:  "same endpoint named explicitly still uses the local CA and password",
			args:  []string{"--endpoint", "https://127.0.0.1:8092"},
			local: &localSrv,
			want:  conn{Endpoint: "https://127.0.0.1:8092", CACert: "/data/tls.crt", Username: "admin", Password: "s3cret", From: "--endpoint"},
		},
		{
			name:  "another endpoint never gets the local CA or password",
			env:   map[string]string{envEndpoint: "https://remote:8092"},
			local: &localSrv,
			want:  conn{Endpoint: "https://remote:8092", From: envEndpoint},
		},
		{
			name:  "--insecure replaces the local CA",
			args:  []string{"--insecure"},
			local: &localSrv,
			want:  conn{Endpoint: "https://127.0.0.1:8092", Insecure: ptr(true), Username: "admin", Password: "s3cret", From: "local server file LOCAL"},
		},
		{
			name:  "another username does not get the admin password",
			args:  []string{"--username", "alice"},
			local: &localSrv,
			want:  conn{Endpoint: "https://127.0.0.1:8092", CACert: "/data/tls.crt", Username: "alice", From: "local server file LOCAL"},
		},
		{
			name:  "the admin username gets the admin password",
			env:   map[string]string{envUsername: "admin"},
			local: &localSrv,
			want:  conn{Endpoint: "https://127.0.0.1:8092", CACert: "/data/tls.crt", Username: "admin", Password: "s3cret", From: "local server file LOCAL"},
		},
		{
			name:    "unreadable local password without credentials",
			local:   &local{ls: localSrv.ls},
			wantErr: "password is unreadable",
		},
		{
			name:    "explicit config file missing",
			args:    []string{"--config", "/nonexistent/ironcast.yaml"},
			wantErr: "/nonexistent/ironcast.yaml",
		},
		{
			name:    "config file with an unknown key",
			config:  "endpiont: https://typo\n",
			wantErr: "endpiont",
		},
		{
			name:    "IRONCAST_INSECURE not a boolean",
			env:     map[string]string{envEndpoint: "https://env", envInsecure: "maybe"},
			wantErr: "IRONCAST_INSECURE",
		},
		{
			name:    "nothing configured",
			wantErr: "no API endpoint: pass --endpoint",
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := isolate(t)
			for k, v := range tt.env {
				t.Setenv(k, v)
			}
			configPath := clientcfg.ConfigPath()
			if tt.config != "" {
				// The default location: --config is not needed.
				if err := os.MkdirAll(filepath.Dir(configPath), 0o700); err != nil {
					t.Fatal(err)
				}
				writeFile(t, filepath.Dir(configPath), "config.yaml", tt.config)
			}
			if tt.local != nil {
				ls := tt.local.ls
				pwFile := filepath.Join(dir, "admin-password")
				ls.PasswordFile = pwFile
				if tt.local.password != "" {
					writeFile(t, dir, "admin-password", tt.local.password)
				}
				if err := clientcfg.Write(ls); err != nil {
					t.Fatal(err)
				}
			}
			a := newApp(strings.NewReader(""), io.Discard, io.Discard)
			root := a.rootCmd()
			if err := root.ParseFlags(tt.args); err != nil {
				t.Fatal(err)
			}
			got, err := a.resolveConn(root.Flags())
			if tt.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tt.wantErr) {
					t.Fatalf("resolveConn() err = %v, want one containing %q", err, tt.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatalf("resolveConn(): %v", err)
			}
			want := tt.want
			want.From = strings.NewReplacer("CONFIG", configPath, "LOCAL", clientcfg.Path()).Replace(want.From)
			if diff := cmp.Diff(got, want); diff != "" {
				t.Errorf("resolveConn() mismatch (-got +want):\n%s", diff)
			}
		})
	}
}
