package cli

import (
	"bytes"
	"context"
	"strings"
	"testing"
)

// run runs the CLI in-process and returns the exit code and both streams.
func run(t *testing.T, stdin string, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errOut bytes.Buffer
	code = Run(context.Background(), args, strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func TestUsageAndExitCodes(t *testing.T) {
	tests := []struct {
		name     string
		args     []string
		wantCode int
		wantOut  string // substring of stdout
		wantErr  string // substring of the one stderr line
	}{
		{name: "version", args: []string{"version"}, wantCode: 0, wantOut: version()},
		{name: "bare command prints help", args: nil, wantCode: 0, wantOut: "Where the CLI finds its server"},
		{name: "bare group prints help", args: []string{"machines"}, wantCode: 0, wantOut: "ironcast machines [command]"},
		{name: "unknown command", args: []string{"machnies"}, wantCode: exitUsage, wantErr: `unknown command "machnies" for "ironcast"`},
		{name: "unknown subcommand", args: []string{"machines", "lsit"}, wantCode: exitUsage, wantErr: `unknown command "lsit" for "ironcast machines"`},
		{name: "unknown flag", args: []string{"machines", "list", "--colour"}, wantCode: exitUsage, wantErr: "unknown flag: --colour"},
		{name: "missing argument", args: []string{"machines", "show"}, wantCode: exitUsage, wantErr: "machines show: want 1 argument(s), got 0"},
		{name: "bad output format", args: []string{"machines", "list", "-o", "xml"}, wantCode: exitUsage, wantErr: `unknown output format "xml"`},
		{name: "bad filter", args: []string{"machines", "list", "Name"}, wantCode: exitUsage, wantErr: `filter "Name" is not Field=value`},
		{name: "set without 'param'", args: []string{"machines", "set", "u", "parm", "n", "to", "v"}, wantCode: exitUsage, wantErr: "usage: ironcast machines set"},
		{name: "no endpoint anywhere", args: []string{"machines", "list"}, wantCode: exitError, wantErr: "no API endpoint"},
		{name: "bad endpoint", args: []string{"--endpoint", "ftp://x", "info"}, wantCode: exitError, wantErr: "want http(s)://host[:port] (from --endpoint)"},
		{name: "completion", args: []string{"completion", "bash"}, wantCode: 0, wantOut: "bash completion"},
		{name: "help documents precedence", args: []string{"--help"}, wantCode: 0, wantOut: "IRONCAST_ENDPOINT"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			isolate(t)
			code, stdout, stderr := run(t, "", tt.args...)
			if code != tt.wantCode {
				t.Errorf("exit code = %d, want %d (stderr %q)", code, tt.wantCode, stderr)
			}
			if !strings.Contains(stdout, tt.wantOut) {
				t.Errorf("stdout = %q, want it to contain %q", stdout, tt.wantOut)
			}
			if tt.wantErr == "" {
				if stderr != "" {
					t.Errorf("stderr = %q, want nothing", stderr)
				}
				return
			}
			if !strings.HasPrefix(stderr, "ironcast: ") || strings.Count(stderr, "\n") != 1 || !strings.Contains(stderr, tt.wantErr) {
				t.Errorf("stderr = %q, want one line \"ironcast: ...%s...\"", stderr, tt.wantErr)
			}
		})
	}
}
