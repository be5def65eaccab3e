package cli

import (
	"bytes"
	"encoding/json"
	"flag"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/ironcast/ironcast/model"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

// golden compares got with testdata/name, or rewrites it with -update.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	p := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(p)
	if err != nil {
		t.Fatalf("%v (run go test -update to create it)", err)
	}
	if diff := cmp.Diff(string(got), string(want)); diff != "" {
		t.Errorf("%s mismatch (-got +want):\n%s", name, diff)
	}
}

// samples are two objects of every kind, as the server would send them.
func samples(t *testing.T) map[string][]json.RawMessage {
	t.Helper()
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	objs := map[string][]model.Object{
		model.KindMachines: {
			&model.Machine{UUID: "3f2b8f6e-9d7a-4c1e-8b2a-5e6f7a8b9c0d", Name: "n1", HardwareAddrs: []string{"52:54:00:12:34:56"}, Address: "10.0.0.21", State: model.StateReady, BootEnv: "discovery", Arch: "amd64"},
			&model.Machine{UUID: "a1b2c3d4-0000-4000-8000-000000000002", Name: "web-2", HardwareAddrs: []string{"52:54:00:00:00:02", "52:54:00:00:00:03"}, State: model.StateProvisioning, BootEnv: "debian-12", Arch: "arm64"},
		},
		model.KindBootEnvs: {
			&model.BootEnv{Name: "discovery", Available: true, ReadOnly: true, Description: "Discovery image"},
			&model.BootEnv{Name: "debian-12", Description: "Debian 12\tnetinst: put the installer's linux and initrd.gz under debian-12/ARCH/"},
		},
		model.KindTemplates: {
			&model.Template{ID: "ipxe.tmpl", ReadOnly: true, Description: "iPXE boot script"},
			&model.Template{ID: "preseed.tmpl", Contents: "d-i ..."},
		},
		model.KindParams: {
			&model.Param{Name: "ntp-servers", Default: []any{"10.0.0.1", "10.0.0.2"}, Description: "NTP servers"},
			&model.Param{Name: "root-password", Secure: true, Default: map[string]any{"a": 1}},
		},
		model.KindProfiles: {
			&model.Profile{Name: "global", Description: "Applies to every machine", Params: map[string]any{"x": 1}},
			&model.Profile{Name: "rack-4"},
		},
		model.KindSubnets: {
			&model.Subnet{Name: "lab", Subnet: "10.0.0.0/24", ActiveStart: "10.0.0.20", ActiveEnd: "10.0.0.200", Enabled: true},
			&model.Subnet{Name: "proxy", Subnet: "192.168.1.0/24", Proxy: true},
		},
		model.KindReservations: {
			&model.Reservation{Addr: "10.0.0.5", Token: "52:54:00:12:34:56", Description: "bmc"},
			&model.Reservation{Addr: "10.0.0.6", Token: "52:54:00:12:34:57"},
		},
		model.KindLeases: {
			&model.Lease{Addr: "10.0.0.21", Token: "52:54:00:12:34:56", Subnet: "lab", State: model.LeaseBound, ExpireTime: at, Hostname: "n1"},
			&model.Lease{Addr: "10.0.0.22", Token: "52:54:00:12:34:58", Subnet: "lab", State: model.LeaseOffered, ExpireTime: at.Add(time.Hour)},
		},
		model.KindPools: {
			&model.Pool{Name: "default", Description: "Machines not in another pool"},
			&model.Pool{Name: "web", BootEnv: "debian-12", MinReady: 2},
		},
		model.KindUsers: {
			&model.User{Name: "admin", Role: model.RoleAdmin},
			&model.User{Name: "ci", Role: model.RoleReadOnly, Description: "CI robot"},
		},
	}
	out := map[string][]json.RawMessage{}
	for kind, list := range objs {
		for _, o := range list {
			o.GetMeta().Revision = 7
			o.GetMeta().CreatedAt = at
			b, err := json.Marshal(o)
			if err != nil {
				t.Fatal(err)
			}
			out[kind] = append(out[kind], b)
		}
	}
	return out
}

func TestTableGolden(t *testing.T) {
	s := samples(t)
	for _, kind := range model.Kinds {
		t.Run(kind, func(t *testing.T) {
			var buf bytes.Buffer
			if err := (printer{out: &buf, format: formatTable}).list(kind, s[kind]); err != nil {
				t.Fatal(err)
			}
			golden(t, "table-"+kind+".golden", buf.Bytes())
		})
	}
}

// TestColumnsNameFields catches a column that names a field its kind
// does not have: it would print an empty column forever.
func TestColumnsNameFields(t *testing.T) {
	for _, kind := range model.Kinds {
		cols, ok := columns[kind]
		if !ok {
			t.Errorf("no table columns for %s", kind)
			continue
		}
		fields := fieldNames(kind)
		for _, c := range cols {
			if fields[strings.ToLower(c.Field)] != c.Field {
				t.Errorf("%s column %q shows field %q, which model.%T does not have", kind, c.Header, c.Field, model.New(kind))
			}
		}
	}
}

func TestPrinterFormats(t *testing.T) {
	obj := json.RawMessage(`{"Name":"n1","Big":12345678901234567890,"List":["a","b"],"Nested":{"k":[1,{"x":true}]}}`)
	tests := []struct {
		name   string
		format string
		list   bool
		items  []json.RawMessage
		want   string
	}{
		{name: "json object", format: formatJSON, items: []json.RawMessage{obj},
			want: "{\n  \"Name\": \"n1\",\n  \"Big\": 12345678901234567890,\n  \"List\": [\n    \"a\",\n    \"b\"\n  ],\n  \"Nested\": {\n    \"k\": [\n      1,\n      {\n        \"x\": true\n      }\n    ]\n  }\n}\n"},
		{name: "yaml object", format: formatYAML, items: []json.RawMessage{obj},
			want: "Big: 12345678901234567890\nList:\n- a\n- b\nName: n1\nNested:\n  k:\n  - 1\n  - x: true\n"},
		{name: "table of an unknown kind is field lines", format: formatTable, items: []json.RawMessage{obj},
			want: "Big     12345678901234567890\nList    a,b\nName    n1\nNested  {\"k\":[1,{\"x\":true}]}\n"},
		{name: "json list", format: formatJSON, list: true, items: []json.RawMessage{[]byte(`{"a":1}`), []byte(`{"a":2}`)},
			want: "[\n  {\n    \"a\": 1\n  },\n  {\n    \"a\": 2\n  }\n]\n"},
		{name: "empty json list", format: formatJSON, list: true, want: "[]\n"},
		{name: "empty yaml list", format: formatYAML, list: true, want: "[]\n"},
		{name: "empty table has a header", format: formatTable, list: true, want: "Name  Role  Description\n"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var buf bytes.Buffer
			p := printer{out: &buf, format: tt.format}
			var err error
			if tt.list {
				err = p.list(model.KindUsers, tt.items)
			} else {
				err = p.value("", tt.items[0])
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(buf.String(), tt.want); diff != "" {
				t.Errorf("output mismatch (-got +want):\n%s", diff)
			}
		})
	}
}
