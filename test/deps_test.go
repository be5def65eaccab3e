// Package test holds whole-product tests: the architecture rules below,
// end-to-end boots under test/e2e and benchmarks under test/bench.
package test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"testing"
)

const module = "github.com/ironcast/ironcast"

type pkg struct {
	ImportPath string
	Deps       []string // transitive
	Imports    []string // direct
	Standard   bool
}

// listDeps returns every package of the module with its transitive deps.
func listDeps(t *testing.T) []pkg {
	t.Helper()
	out, err := exec.Command("go", "list", "-deps=false", "-json=ImportPath,Deps,Imports,Standard", module+"/...").Output()
	if err != nil {
		t.Fatalf("go list: %v", err)
	}
	var pkgs []pkg
	dec := json.NewDecoder(strings.NewReader(string(out)))
	for dec.More() {
		var p pkg
		if err := dec.Decode(&p); err != nil {
			t.Fatalf("decode go list: %v", err)
		}
		pkgs = append(pkgs, p)
	}
	if len(pkgs) == 0 {
		t.Fatal("go list returned no packages")
	}
	return pkgs
}

func isStd(imp string) bool {
	first := strings.SplitN(imp, "/", 2)[0]
	return !strings.Contains(first, ".")
}

func within(imp string, pkgs ...string) bool {
	for _, p := range pkgs {
		full := module + "/" + p
		if imp == full || strings.HasPrefix(imp, full+"/") {
			return true
		}
	}
	return false
}

// TestDependencyRules enforces the layering of ../shared/STYLE.md: the
// domain core depends on nothing, protocol servers never reach the store or
// the API, and only the composition root picks the storage backend.
func TestDependencyRules(t *testing.T) {
	rules := []struct {
		name      string
		pkgs      []string // packages the rule applies to
		forbidden func(dep string) bool
		direct    bool // check direct imports only (wiring may pass through)
	}{
		{
			name:      "model imports only the standard library",
			pkgs:      []string{"model"},
			forbidden: func(d string) bool { return !isStd(d) },
		},
		{
			name: "protocol packages never import the store, provision, the API or bbolt",
			pkgs: []string{"dhcp", "tftp", "httpboot", "bootfs", "templates"},
			forbidden: func(d string) bool {
				return within(d, "store", "provision", "api", "daemon", "cli") || strings.HasPrefix(d, "go.etcd.io/bbolt")
			},
		},
		{
			name: "the API never imports protocol servers or the bbolt backend",
			pkgs: []string{"api"},
			forbidden: func(d string) bool {
				return within(d, "dhcp", "tftp", "httpboot", "store/bolt", "daemon", "cli") || strings.HasPrefix(d, "go.etcd.io/bbolt")
			},
		},
		{
			name:      "the API client imports only model",
			pkgs:      []string{"api/client"},
			forbidden: func(d string) bool { return strings.HasPrefix(d, module) && !within(d, "model") },
		},
		{
			name: "nothing but the daemon (and tests) imports store/bolt",
			pkgs: []string{"model", "store", "provision", "api", "dhcp", "tftp", "httpboot", "bootfs", "templates", "bootenvs", "ipam", "events", "secrets", "auth", "cli"},
			forbidden: func(d string) bool {
				return within(d, "store/bolt") || strings.HasPrefix(d, "go.etcd.io/bbolt")
			},
			direct: true,
		},
		{
			name:      "nothing imports cli or daemon except cmd",
			pkgs:      []string{"model", "store", "provision", "api", "dhcp", "tftp", "httpboot", "bootfs", "templates", "bootenvs", "ipam", "events", "secrets", "auth"},
			forbidden: func(d string) bool { return within(d, "cli", "daemon") },
		},
	}
	pkgs := listDeps(t)
	for _, r := range rules {
		t.Run(r.name, func(t *testing.T) {
			checked := 0
			for _, p := range pkgs {
				rel := strings.TrimPrefix(p.ImportPath, module+"/")
				if !within(p.ImportPath, r.pkgs...) || (rel != p.ImportPath && strings.Contains(rel, "internal/test")) {
					continue
				}
				// "store" rules apply to store itself, not its backends.
				if r.name == "nothing but the daemon (and tests) imports store/bolt" && within(p.ImportPath, "store/bolt", "store/storetest") {
					continue
				}
				checked++
				deps := p.Deps
				if r.direct {
					deps = p.Imports
				}
				for _, d := range deps {
					if r.forbidden(d) {
						t.Errorf("%s imports %s", rel, d)
					}
				}
			}
			if checked == 0 {
				t.Skip("no package of the rule exists yet")
			}
		})
	}
}
