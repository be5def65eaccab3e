package cli

import (
	"encoding/json"
	"fmt"
	"path/filepath"
	"testing"
)

// TestPoolsCLI allocates, releases and counts through `ironcast serve`
// and the CLI.
func TestPoolsCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a server")
	}
	isolate(t)
	stop := startServe(t, filepath.Join(t.TempDir(), "data"))
	defer func() { stop() }()

	out := step{args: []string{"users", "token", "admin", "--ttl", "1h"}, wantOut: []string{`"Token"`}}.check(t)
	var admin struct{ Token string }
	if err := json.Unmarshal([]byte(out), &admin); err != nil || admin.Token == "" {
		t.Fatalf("token output %q: %v", out, err)
	}
	t.Setenv(envToken, admin.Token)

	step{args: []string{"pools", "create", `{"Name":"web","BootEnv":"linuxkit","MinReady":1}`}, wantOut: []string{`"Name": "web"`}}.check(t)
	for i := 1; i <= 3; i++ {
		step{args: []string{"machines", "create", fmt.Sprintf(`{"Name":"n%d","HardwareAddrs":["52:54:00:00:00:0%d"],"Pool":"web","State":"ready"}`, i, i)},
			wantOut: []string{`"State": "ready"`}}.check(t)
	}

	out = step{name: "allocate", args: []string{"pools", "allocate", "web", "--count", "2", "--owner", "ci", "--ttl", "1h", "--param", "image=v1", "--param", "replicas=3", "-o", "json"},
		wantOut: []string{`"State": "provisioning"`, `"BootEnv": "linuxkit"`, `"Owner": "ci"`, `"image": "v1"`, `"replicas": 3`}}.check(t)
	var got []struct{ UUID, Name string }
	if err := json.Unmarshal([]byte(out), &got); err != nil || len(got) != 2 {
		t.Fatalf("allocate output %q: %v", out, err)
	}

	steps := []step{
		{name: "not enough ready", args: []string{"pools", "allocate", "web", "--count", "2"},
			wantCode: 1, wantErr: []string{"allocate from pool web:", "pool web has 1 ready machines, 2 requested", "(409 Conflict)"}},
		{name: "ttl in fractions of a second", args: []string{"pools", "allocate", "web", "--ttl", "1500ms"},
			wantCode: exitUsage, wantErr: []string{"--ttl 1.5s is not a whole"}},
		{name: "bad param", args: []string{"pools", "allocate", "web", "--param", "novalue"},
			wantCode: exitUsage, wantErr: []string{`--param "novalue" is not NAME=VALUE`}},
		{name: "release needs machines", args: []string{"pools", "release", "web"},
			wantCode: exitUsage, wantErr: []string{"want a pool and at least one machine"}},
	}
	for _, s := range steps {
		s.check(t)
	}

	// The status after allocating two of three is a golden document.
	code, stdout, stderr := run(t, "", "pools", "status", "web")
	if code != 0 {
		t.Fatalf("status: exit %d: %s", code, stderr)
	}
	golden(t, "pools-status.golden", []byte(stdout))

	step{name: "release by Name:", args: []string{"pools", "release", "web", "Name:" + got[0].Name},
		wantOut: []string{got[0].UUID, "releasing", "wipe"}}.check(t)
	step{name: "release of a released machine", args: []string{"pools", "release", "web", got[0].UUID},
		wantCode: 1, wantErr: []string{"release is not allowed in state releasing", "(409 Conflict)"}}.check(t)
	step{name: "status as json", args: []string{"pools", "status", "web", "-o", "json"},
		wantOut: []string{`"Returning": 1`, `"Allocated": 1`, `"releasing": 1`}}.check(t)
}
