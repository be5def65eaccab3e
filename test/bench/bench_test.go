// Package bench holds the benchmark scripts (core, dhcp, tftp, http).
// Their figures come from full runs on a quiet machine; this test runs
// each script at its quick size so that CI proves every one of them still
// builds, starts its peers, checks its answers and prints its table. The
// figures of a quick run mean nothing and are not asserted.
package bench

import (
	"bytes"
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ironcast/ironcast/test/testenv"
)

func TestScriptsQuick(t *testing.T) {
	testenv.RequireRoot(t)
	cases := []struct {
		dir   string
		env   []string
		tools []string
		// want are lines of the printed table that a working run has.
		want []string
	}{
		{"core", []string{"N=2000", "REPS=1"}, []string{"bc"},
			[]string{"list all: median", "list ?param.rack=17: median", "list ?sort=Name&reverse=true&limit=10: median", "get by MAC", "create (durable", "peak"}},
		{"dhcp", []string{"QUICK=1"}, []string{"perfdhcp", "kea-dhcp4", "dnsmasq", "taskset"},
			[]string{"highest DORA rate", "rate/Kea", "ladder driven by dhcpload", "perfdhcp -u:", "dhcpload -unique:", "after restart:"}},
		{"tftp", []string{"TFTP_BENCH_QUICK=1"}, []string{"atftp", "dnsmasq", "taskset"},
			[]string{"TFTP benchmark:", "ironcast vs peer", "tftpd-hpa", "atftpd"}},
		{"http", []string{"HTTPBENCH_QUICK=1"}, []string{"nginx", "wrk", "taskset"},
			[]string{"ratio large files ironcast/nginx", "ratio rendered (hits)/nginx static", "back to back"}},
	}
	for _, c := range cases {
		t.Run(c.dir, func(t *testing.T) {
			for _, tool := range c.tools {
				testenv.RequireTool(t, tool)
			}
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
			defer cancel()
			cmd := exec.CommandContext(ctx, "bash", filepath.Join(c.dir, "run.sh"))
			cmd.Env = append(os.Environ(), c.env...)
			var out bytes.Buffer
			cmd.Stdout, cmd.Stderr = &out, &out
			start := time.Now()
			err := cmd.Run()
			t.Logf("%s/run.sh %s: %s\n%s", c.dir, strings.Join(c.env, " "), time.Since(start).Round(time.Second), out.String())
			if err != nil {
				t.Fatalf("%s/run.sh: %v", c.dir, err)
			}
			for _, w := range c.want {
				if !strings.Contains(out.String(), w) {
					t.Errorf("%s/run.sh printed no %q", c.dir, w)
				}
			}
		})
	}
}
