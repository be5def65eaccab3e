package cli

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ironcast/ironcast/clientcfg"
)

// lockedBuffer collects a server's log across goroutines.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

// startServe runs `ironcast serve` in-process on loopback ports (no DHCP,
// no TFTP) and waits until the CLI can reach it through the local-server
// file alone. The returned function stops it and checks it exited cleanly.
func startServe(t *testing.T, dataDir string, extra ...string) (stop func()) {
	t.Helper()
	_ = os.Remove(clientcfg.Path()) // readiness is the file of this server
	ctx, cancel := context.WithCancel(context.Background())
	logs := &lockedBuffer{}
	done := make(chan int, 1)
	args := append([]string{"serve", "--data-dir", dataDir, "--listen", "127.0.0.1",
		"--api-port", freePort(t), "--http-port", freePort(t), "--boot-program-dir", t.TempDir(),
		"--log-level", "warn"}, extra...)
	go func() { done <- Run(ctx, args, strings.NewReader(""), io.Discard, logs) }()

	// The local-server file is written after every socket is bound, so
	// once it exists requests queue until the server accepts them.
	for i := 0; ; i++ {
		select {
		case code := <-done:
			cancel()
			t.Fatalf("serve exited with %d before it was ready:\n%s", code, logs.String())
		default:
		}
		if _, err := clientcfg.Read(); err == nil {
			break
		}
		if i == 600 {
			cancel()
			t.Fatalf("serve did not write %s:\n%s", clientcfg.Path(), logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code, _, stderr := run(t, "", "info"); code != 0 {
		cancel()
		t.Fatalf("info on a fresh server: exit %d: %s\nserver log:\n%s", code, stderr, logs.String())
	}
	return func() {
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("serve exited with %d:\n%s", code, logs.String())
		}
	}
}

// step is one CLI invocation and what it must produce.
type step struct {
	name     string
	stdin    string
	args     []string
	wantCode int
	wantOut  []string // substrings of stdout
	wantErr  []string // substrings of the single stderr line
}

func (s step) check(t *testing.T) string {
	t.Helper()
	code, stdout, stderr := run(t, s.stdin, s.args...)
	if code != s.wantCode {
		t.Fatalf("%v: exit code %d, want %d\nstdout: %s\nstderr: %s", s.args, code, s.wantCode, stdout, stderr)
	}
	for _, w := range s.wantOut {
		if !strings.Contains(stdout, w) {
			t.Errorf("%v: stdout does not contain %q:\n%s", s.args, w, stdout)
		}
	}
	if len(s.wantErr) == 0 && stderr != "" {
		t.Errorf("%v: stderr = %q, want nothing", s.args, stderr)
	}
	if len(s.wantErr) > 0 && (!strings.HasPrefix(stderr, "ironcast: ") || strings.Count(stderr, "\n") != 1) {
		t.Errorf("%v: stderr = %q, want one line starting \"ironcast: \"", s.args, stderr)
	}
	for _, w := range s.wantErr {
		if !strings.Contains(stderr, w) {
			t.Errorf("%v: stderr does not contain %q: %q", s.args, w, stderr)
		}
	}
	return stdout
}

// TestServeAndCLI is the first "must show" of the core issue from the CLI
// side: `ironcast serve --data-dir DIR` with no other flag that matters,
// then the CLI on the same machine, with no flags, over HTTPS with a token.
func TestServeAndCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	cfgDir := isolate(t)
	dataDir := filepath.Join(t.TempDir(), "data")
	stop := startServe(t, dataDir)
	defer func() { stop() }()

	var n1 struct{ UUID, Name string }
	out := step{
		name:    "create from an argument",
		args:    []string{"machines", "create", `{"Name":"n1","HardwareAddrs":["52:54:00:12:34:56"]}`},
		wantOut: []string{`"Name": "n1"`, `"52:54:00:12:34:56"`},
	}.check(t)
	if err := json.Unmarshal([]byte(out), &n1); err != nil || n1.UUID == "" {
		t.Fatalf("create output %q: %v", out, err)
	}

	step{name: "list as json, still without flags", args: []string{"machines", "list", "-o", "json"},
		wantOut: []string{`"UUID": "` + n1.UUID + `"`, `"Name": "n1"`}}.check(t)

	// The flagless calls above logged in once with the admin password and
	// then reused the cached token. From here on the steps use an admin
	// token from the environment, with the endpoint and CA still from the
	// local-server file.
	out = step{args: []string{"users", "token", "admin", "--ttl", "1h"}, wantOut: []string{`"Token"`}}.check(t)
	var admin struct{ Token string }
	if err := json.Unmarshal([]byte(out), &admin); err != nil || admin.Token == "" {
		t.Fatalf("token output %q: %v", out, err)
	}
	t.Setenv(envToken, admin.Token)

	yamlFile := filepath.Join(cfgDir, "n3.yaml")
	if err := os.WriteFile(yamlFile, []byte("Name: n3\nHardwareAddrs:\n  - 52:54:00:00:00:03\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	jsonFile := filepath.Join(cfgDir, "n4.json")
	if err := os.WriteFile(jsonFile, []byte(`{"Name":"n4","HardwareAddrs":["52:54:00:00:00:04"],"Arch":"arm64"}`), 0o600); err != nil {
		t.Fatal(err)
	}
	steps := []step{
		{name: "create from YAML on stdin", stdin: "Name: n2\nHardwareAddrs: [52:54:00:00:00:02]\n", args: []string{"machines", "create", "-"}, wantOut: []string{`"Name": "n2"`}},
		{name: "create from @file", args: []string{"machines", "create", "@" + yamlFile}, wantOut: []string{`"Name": "n3"`}},
		{name: "create with -f", args: []string{"machines", "create", "-f", jsonFile}, wantOut: []string{`"Arch": "arm64"`}},
		{name: "list as a table", args: []string{"machines", "list", "--sort", "Name"}, wantOut: []string{"UUID", "BootEnv", n1.UUID + "  n1", "52:54:00:00:00:04"}},
		{name: "list filtered as yaml", args: []string{"machines", "list", "Name=n2", "-o", "yaml"}, wantOut: []string{"- Arch: amd64", "Name: n2"}},
		{name: "list with a limit", args: []string{"machines", "list", "--sort", "Name", "--limit", "1", "-o", "json"}, wantOut: []string{`"Name": "n1"`}},
		{name: "show by Name:", args: []string{"machines", "show", "Name:n1"}, wantOut: []string{`"UUID": "` + n1.UUID + `"`}},
		{name: "show by UUID as a table", args: []string{"machines", "show", n1.UUID, "-o", "table"}, wantOut: []string{"UUID", n1.UUID + "  n1"}},
		{name: "update is a merge patch", args: []string{"machines", "update", "Name:n1", `{"Description":"rack 4"}`}, wantOut: []string{`"Description": "rack 4"`, `"Name": "n1"`}},
		{name: "patch is a JSON patch", args: []string{"machines", "patch", "Name:n1", `[{"op":"replace","path":"/Description","value":"rack 5"}]`}, wantOut: []string{`"Description": "rack 5"`}},
		{name: "a MAC owned by another machine", args: []string{"machines", "create", `{"Name":"dup","HardwareAddrs":["52:54:00:12:34:56"]}`},
			wantCode: 1, wantErr: []string{"create machine:", "52:54:00:12:34:56", "(409 Conflict)"}},
		{name: "an unknown field", args: []string{"machines", "create", `{"Name":"n9","Bogus":1}`},
			wantCode: 1, wantErr: []string{"Bogus", "(4"}},
		{name: "an invalid field", args: []string{"machines", "create", `{"Name":"n9","Arch":"sparc"}`},
			wantCode: 1, wantErr: []string{"Arch", "sparc", "(422 Unprocessable Entity)"}},
		{name: "invalid JSON never reaches the server", args: []string{"machines", "create", `{"Name":`}, wantCode: 1, wantErr: []string{"read input: invalid JSON"}},
		{name: "nothing was stored by the failures", args: []string{"machines", "list", "-o", "json"}, wantOut: []string{`"n4"`}},
		{name: "create with just a name", args: []string{"profiles", "create", "rack-1"}, wantOut: []string{`"Name": "rack-1"`}},
		{name: "a param with a schema", args: []string{"params", "create", `{"Name":"ntp-servers","Schema":{"type":"array","items":{"type":"string"}}}`}, wantOut: []string{`"ntp-servers"`}},
		{name: "set a param", args: []string{"machines", "set", "Name:n1", "param", "ntp-servers", "to", `["10.0.0.1"]`}, wantOut: []string{`"ntp-servers"`, `"10.0.0.1"`}},
		{name: "set a param a string", args: []string{"machines", "set", "Name:n1", "param", "hostname", "to", "web-1"}, wantOut: []string{`"hostname": "web-1"`}},
		{name: "a value failing its schema", args: []string{"machines", "set", "Name:n1", "param", "ntp-servers", "to", "42"},
			wantCode: 1, wantErr: []string{"ntp-servers", "(422 Unprocessable Entity)"}},
		{name: "machine params", args: []string{"machines", "params", "Name:n1"}, wantOut: []string{`"ntp-servers": [`, `"hostname": "web-1"`}},
		{name: "aggregate params as a table", args: []string{"machines", "params", "Name:n1", "--aggregate", "-o", "table"}, wantOut: []string{"Name", "Source", "hostname", "web-1", "machine"}},
		{name: "exists", args: []string{"machines", "exists", "Name:n1"}},
		{name: "exists by UUID", args: []string{"machines", "exists", n1.UUID}},
		{name: "does not exist", args: []string{"machines", "exists", "Name:nope"}, wantCode: 1},
		{name: "destroy", args: []string{"machines", "destroy", "Name:n2"}, wantOut: []string{"Deleted machine "}},
		{name: "destroyed", args: []string{"machines", "exists", "Name:n2"}, wantCode: 1},
		{name: "show a missing machine", args: []string{"machines", "show", "00000000-0000-4000-8000-000000000000"},
			wantCode: 1, wantErr: []string{"show machine 00000000-0000-4000-8000-000000000000", "(404 Not Found)"}},
		{name: "info", args: []string{"info"}, wantOut: []string{`"Version"`}},
		{name: "a readonly user", args: []string{"users", "create", `{"Name":"ro","Role":"readonly","Password":"first-pass-123"}`}, wantOut: []string{`"Name": "ro"`}},
		{name: "users never show a password", args: []string{"users", "show", "ro", "-o", "json"}, wantOut: []string{`"Role": "readonly"`}},
		{name: "users password from stdin", stdin: "second-pass-456\n", args: []string{"users", "password", "ro"}, wantOut: []string{"Password of user ro changed"}},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			out := s.check(t)
			if strings.Contains(out, "first-pass-123") || strings.Contains(out, "PasswordHash") {
				t.Errorf("output shows a password: %s", out)
			}
		})
	}

	t.Run("readonly token cannot write", func(t *testing.T) {
		t.Setenv(envToken, "")
		t.Setenv(envUsername, "ro")
		t.Setenv(envPassword, "second-pass-456")
		out := step{args: []string{"users", "token", "ro", "--ttl", "1h"}, wantOut: []string{`"Token"`, `"ExpiresAt"`}}.check(t)
		var tok struct{ Token string }
		if err := json.Unmarshal([]byte(out), &tok); err != nil || tok.Token == "" {
			t.Fatalf("token output %q: %v", out, err)
		}
		t.Setenv(envUsername, "")
		t.Setenv(envPassword, "")
		t.Setenv(envToken, tok.Token)
		step{args: []string{"machines", "list", "-o", "json"}, wantOut: []string{`"n1"`}}.check(t)
		step{args: []string{"machines", "create", `{"Name":"n8"}`}, wantCode: 1, wantErr: []string{"(403 Forbidden)"}}.check(t)
		step{args: []string{"--token", "not-a-token", "machines", "list"}, wantCode: 1, wantErr: []string{"(401 Unauthorized)"}}.check(t)
		t.Setenv(envToken, admin.Token)
	})

	t.Run("events watch", func(t *testing.T) {
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		pr, pw := io.Pipe()
		done := make(chan int, 1)
		go func() {
			done <- Run(ctx, []string{"events", "watch", "--kind", "profiles"}, strings.NewReader(""), pw, io.Discard)
			pw.Close()
		}()
		lines := make(chan string)
		go func() {
			sc := bufio.NewScanner(pr)
			for sc.Scan() {
				lines <- sc.Text()
			}
			close(lines)
		}()
		// The stream may open after the first create: create until an
		// event arrives, a bounded number of times.
		var got string
		for i := 0; got == "" && i < 50; i++ {
			step{args: []string{"profiles", "create", `{"Name":"p` + strconv.Itoa(i) + `"}`}, wantOut: []string{`"Name"`}}.check(t)
			select {
			case got = <-lines:
			case <-time.After(200 * time.Millisecond):
			}
		}
		cancel()
		if code := <-done; code != 0 {
			t.Errorf("events watch exited with %d after interrupt, want 0", code)
		}
		var ev struct{ Type, Kind, Key string }
		if err := json.Unmarshal([]byte(got), &ev); err != nil || ev.Type != "created" || ev.Kind != "profiles" {
			t.Errorf("event line %q (%v), want a created profiles event", got, err)
		}
		for range lines { // drain so the reader goroutine ends
		}
	})

	// Backup, change something, restore on restart: the change is undone.
	backup := filepath.Join(t.TempDir(), "ironcast.backup")
	step{args: []string{"backup", backup}, wantOut: []string{"bytes to " + backup}}.check(t)
	if st, err := os.Stat(backup); err != nil || st.Size() == 0 || st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, %v", st, err)
	}
	step{args: []string{"machines", "destroy", "Name:n3"}, wantOut: []string{"Deleted machine"}}.check(t)
	stop()
	t.Setenv(envToken, "") // flagless again, as after any restart
	stop = startServe(t, dataDir, "--restore", backup)
	step{args: []string{"machines", "show", "Name:n3"}, wantOut: []string{`"Name": "n3"`}}.check(t)
	step{args: []string{"machines", "exists", "Name:n2"}, wantCode: 1}.check(t)
}
