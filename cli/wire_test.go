package cli

import (
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

// TestWire checks, against a fake API, what each verb sends: the local
// server file is enough to log in, Name: keys become a list lookup, update
// is a merge patch and patch a JSON Patch.
func TestWire(t *testing.T) {
	isolate(t)
	// Each step shows its own login; TestTokenCache covers reusing it.
	t.Setenv(envNoTokenCache, "1")
	f := newFakeAPI(t)
	f.useLocalServerFile(t)

	steps := []struct {
		name    string
		stdin   string
		args    []string
		want    []string // requests, in order
		wantOut string
	}{
		{
			name: "create logs in with the local admin password",
			args: []string{"machines", "create", `{"Name":"n1","HardwareAddrs":["52:54:00:12:34:56"]}`},
			want: []string{
				"POST /api/v1/users/admin/token",
				`POST /api/v1/machines application/json {"Name":"n1","HardwareAddrs":["52:54:00:12:34:56"]}`,
			},
			wantOut: `"UUID": "00000000-0000-4000-8000-000000000001"`,
		},
		{
			name:    "create with just a name",
			args:    []string{"machines", "create", "n2"},
			want:    []string{"POST /api/v1/users/admin/token", `POST /api/v1/machines application/json {"Name":"n2"}`},
			wantOut: `"Name": "n2"`,
		},
		{
			name:    "show by Name: resolves with a list filter",
			args:    []string{"machines", "show", "Name:n1"},
			want:    []string{"POST /api/v1/users/admin/token", "GET /api/v1/machines?Name=n1&limit=2", "GET /api/v1/machines/00000000-0000-4000-8000-000000000001"},
			wantOut: `"Name": "n1"`,
		},
		{
			name:  "update sends an RFC 7396 merge patch from YAML on stdin",
			stdin: "Description: rack 4\nBootEnv: null\n",
			args:  []string{"machines", "update", "00000000-0000-4000-8000-000000000001", "-", "--if-match", "7"},
			want: []string{"POST /api/v1/users/admin/token",
				`PATCH /api/v1/machines/00000000-0000-4000-8000-000000000001 application/merge-patch+json {"BootEnv":null,"Description":"rack 4"}`},
		},
		{
			name: "patch sends an RFC 6902 JSON Patch",
			args: []string{"machines", "patch", "Name:n1", `[{"op":"add","path":"/Profiles/-","value":"p1"}]`},
			want: []string{"POST /api/v1/users/admin/token", "GET /api/v1/machines?Name=n1&limit=2",
				`PATCH /api/v1/machines/00000000-0000-4000-8000-000000000001 application/json-patch+json [{"op":"add","path":"/Profiles/-","value":"p1"}]`},
		},
		{
			name:    "list filters, sorts and pages",
			args:    []string{"machines", "list", "Name=n1", "param.rack=4", "--sort", "Name", "--reverse", "--offset", "1", "--limit", "5"},
			want:    []string{"POST /api/v1/users/admin/token", "GET /api/v1/machines?Name=n1&limit=5&offset=1&param.rack=4&reverse=true&sort=Name"},
			wantOut: "000000000001  n1    52:54:00:12:34:56\n",
		},
		{
			name:    "token for another user logs in first, then uses the token",
			args:    []string{"users", "token", "ci", "--ttl", "1h"},
			want:    []string{"POST /api/v1/users/admin/token", "GET /api/v1/whoami", `POST /api/v1/users/ci/token application/json {"TTL":"1h0m0s"}`},
			wantOut: `"Token": "tok-ci"`,
		},
		{
			name:    "destroy",
			args:    []string{"machines", "destroy", "Name:n1"},
			want:    []string{"POST /api/v1/users/admin/token", "GET /api/v1/machines?Name=n1&limit=2", "DELETE /api/v1/machines/00000000-0000-4000-8000-000000000001"},
			wantOut: "Deleted machine 00000000-0000-4000-8000-000000000001\n",
		},
	}
	for _, s := range steps {
		t.Run(s.name, func(t *testing.T) {
			code, stdout, stderr := run(t, s.stdin, s.args...)
			if code != 0 {
				t.Fatalf("exit code %d, stderr %q", code, stderr)
			}
			if !strings.Contains(stdout, s.wantOut) {
				t.Errorf("stdout = %q, want it to contain %q", stdout, s.wantOut)
			}
			got := f.requests()
			for i := range got {
				// The token request body varies; keep its method and path.
				if strings.HasPrefix(got[i], "POST /api/v1/users/admin/token") {
					got[i] = "POST /api/v1/users/admin/token"
				}
			}
			if diff := cmp.Diff(got, s.want); diff != "" {
				t.Errorf("requests mismatch (-got +want):\n%s", diff)
			}
		})
	}
}

func TestWireErrors(t *testing.T) {
	isolate(t)
	f := newFakeAPI(t)
	tests := []struct {
		name     string
		args     []string
		setup    func()
		wantCode int
		wantErr  string
	}{
		{name: "conflict names the field and status", setup: f.useLocalServerFileFn(t),
			args:     []string{"machines", "create", `{"Name":"n1"}`},
			wantCode: 1, wantErr: "ironcast: create machine: Name: n1 is taken by machine 00000000-0000-4000-8000-000000000001 (409 Conflict)\n"},
		{name: "not found", args: []string{"machines", "show", "nope"},
			wantCode: 1, wantErr: "ironcast: show machine nope: machine nope not found (404 Not Found)\n"},
		{name: "exists is quiet when missing", args: []string{"machines", "exists", "nope"}, wantCode: 1},
		{name: "exists is quiet when a Name: lookup finds nothing", args: []string{"machines", "exists", "Name:zz"}, wantCode: 1},
		{name: "exists", args: []string{"machines", "exists", "Name:n1"}, wantCode: 0},
		{name: "a Name: key matching two machines", args: []string{"machines", "show", "Name:twin"},
			wantCode: 1, wantErr: "ironcast: Name \"twin\" matches more than one machine: use the key\n"},
		{name: "wrong token", args: []string{"--token", "bogus", "machines", "list"},
			wantCode: 1, wantErr: "ironcast: list machines: authentication required (401 Unauthorized)\n"},
		// Another endpoint than the local server's: its CA is not used.
		{name: "unknown CA gets a hint", args: []string{"--endpoint", strings.Replace(f.srv.URL, "127.0.0.1", "localhost", 1), "--token", "x", "info"},
			wantCode: 1, wantErr: "(pass --ca-cert with the server's certificate, or --insecure)\n"},
		{name: "connection refused gets a hint", args: []string{"--endpoint", "https://127.0.0.1:" + freePort(t), "--token", "x", "info"},
			wantCode: 1, wantErr: "connection refused (is ironcast serve running there?)\n"},
		{name: "invalid input is caught before sending", args: []string{"machines", "create", `["n1"]`},
			wantCode: 1, wantErr: "ironcast: read input: want an object, got a list\n"},
	}
	// The first case seeds a machine named n1 so that creating it again conflicts.
	f.machines["00000000-0000-4000-8000-000000000001"] = map[string]any{"UUID": "00000000-0000-4000-8000-000000000001", "Name": "n1"}
	// The real server keeps names unique; the fake lets a lookup find two.
	f.machines["00000000-0000-4000-8000-00000000000a"] = map[string]any{"UUID": "00000000-0000-4000-8000-00000000000a", "Name": "twin"}
	f.machines["00000000-0000-4000-8000-00000000000b"] = map[string]any{"UUID": "00000000-0000-4000-8000-00000000000b", "Name": "twin"}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if tt.setup != nil {
				tt.setup()
			}
			code, stdout, stderr := run(t, "", tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.wantCode, stderr)
			}
			if tt.wantErr == "" && (stderr != "" || stdout != "") {
				t.Errorf("stdout %q, stderr %q; want both empty", stdout, stderr)
			}
			if !strings.HasSuffix(stderr, tt.wantErr) || strings.Count(stderr, "\n") > 1 {
				t.Errorf("stderr = %q, want one line ending %q", stderr, tt.wantErr)
			}
		})
	}
}

func TestCompleteKeys(t *testing.T) {
	isolate(t)
	f := newFakeAPI(t)
	f.useLocalServerFile(t)
	f.machines["00000000-0000-4000-8000-000000000001"] = map[string]any{"UUID": "00000000-0000-4000-8000-000000000001", "Name": "n1"}
	f.machines["10000000-0000-4000-8000-000000000002"] = map[string]any{"UUID": "10000000-0000-4000-8000-000000000002", "Name": "n2"}
	code, stdout, stderr := run(t, "", "__complete", "machines", "show", "0")
	if code != 0 {
		t.Fatalf("exit code %d: %s", code, stderr)
	}
	if got, want := stdout, "00000000-0000-4000-8000-000000000001\n:4\n"; got != want {
		t.Errorf("completion = %q, want %q", got, want)
	}
}
