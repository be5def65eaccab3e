package api

import (
	"errors"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ironcast/ironcast/model"
)

func TestParseListQuery(t *testing.T) {
	tests := []struct {
		name      string
		kind      string
		query     string
		want      *listQuery
		wantField string // non-empty: a 400 naming this parameter
	}{
		{name: "empty", kind: "machines", query: "", want: &listQuery{limit: -1}},
		{name: "field canonicalised", kind: "machines", query: "arch=amd64", want: &listQuery{limit: -1, filters: []filter{{path: []string{"Arch"}, values: []string{"amd64"}}}}},
		{name: "param", kind: "machines", query: "param.ntp=a&param.ntp=b", want: &listQuery{limit: -1, filters: []filter{{path: []string{"Params", "ntp"}, values: []string{"a", "b"}}}}},
		{name: "nested", kind: "machines", query: "inventory.disks.model=x", want: &listQuery{limit: -1, filters: []filter{{path: []string{"Inventory", "Disks", "Model"}, values: []string{"x"}}}}},
		{name: "embedded meta", kind: "users", query: "sort=revision&reverse=1", want: &listQuery{limit: -1, sort: []string{"Revision"}, reverse: true}},
		{name: "MAC normalised", kind: "machines", query: "HardwareAddrs=52-54-00-AA-BB-CC", want: &listQuery{limit: -1, filters: []filter{{path: []string{"HardwareAddrs"}, values: []string{"52:54:00:aa:bb:cc"}}}}},
		{name: "page", kind: "leases", query: "offset=5&limit=10&decode=true", want: &listQuery{offset: 5, limit: 10}},
		{name: "unknown field", kind: "machines", query: "Color=red", wantField: "Color"},
		{name: "param on a kind without params", kind: "users", query: "param.x=1", wantField: "param.x"},
		{name: "below a scalar", kind: "machines", query: "Name.first=x", wantField: "Name.first"},
		{name: "below a time", kind: "machines", query: "CreatedAt.Year=2020", wantField: "CreatedAt.Year"},
		{name: "empty segment", kind: "machines", query: "Inventory..CPUs=1", wantField: "Inventory..CPUs"},
		{name: "password hash", kind: "users", query: "sort=PasswordHash", wantField: "sort"},
		{name: "negative limit", kind: "machines", query: "limit=-1", wantField: "limit"},
		{name: "bad reverse", kind: "machines", query: "reverse=perhaps", wantField: "reverse"},
		{name: "empty sort", kind: "machines", query: "sort=", wantField: "sort"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			q, err := url.ParseQuery(tt.query)
			if err != nil {
				t.Fatal(err)
			}
			got, err := parseListQuery(tt.kind, q)
			if tt.wantField != "" {
				var re *requestError
				if !errors.As(err, &re) || re.field != tt.wantField || re.status != 400 {
					t.Fatalf("err = %#v, want a 400 naming %q", err, tt.wantField)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, tt.want, cmp.AllowUnexported(listQuery{}, filter{})); diff != "" {
				t.Errorf("query (-got +want):\n%s", diff)
			}
		})
	}
}

// fuzzObjects are the objects fuzzed queries run against.
func fuzzObjects() []model.Object {
	return []model.Object{
		&model.Machine{UUID: "b", Name: "n2", HardwareAddrs: []string{"52:54:00:00:00:01"}, Params: map[string]any{"rack": "r1", "n": 2.0, "l": []any{"a", map[string]any{"x": nil}}}, Inventory: &model.Inventory{CPUs: 4, Disks: []model.Disk{{Name: "sda"}}}},
		&model.Machine{UUID: "a", Name: "n1", Params: map[string]any{"rack": 7.0}},
		&model.Machine{UUID: "c", Name: "n3"},
	}
}

func FuzzListQuery(f *testing.F) {
	for _, s := range []string{
		"", "Name=n1", "param.rack=r1&sort=param.n&reverse=true", "sort=Inventory.CPUs&offset=1&limit=1",
		"Inventory.Disks.Name=sda", "param.l.x=null", "HardwareAddrs=52-54-00-00-00-01", "limit=0", "offset=99999999999999999999",
		"sort=Params", "Params.l=a", "%zz", "param.=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		q, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		lq, err := parseListQuery(model.KindMachines, q)
		if err != nil {
			var re *requestError
			if !errors.As(err, &re) || re.status != 400 {
				t.Fatalf("parse error %v is not a 400", err)
			}
			return
		}
		objs := fuzzObjects()
		page, total := lq.apply(objs)
		if total > len(objs) || len(page) > total {
			t.Fatalf("page %d, total %d of %d objects", len(page), total, len(objs))
		}
		if lq.limit >= 0 && len(page) > lq.limit {
			t.Fatalf("page of %d exceeds limit %d", len(page), lq.limit)
		}
		if len(lq.filters) == 0 && total != len(objs) {
			t.Fatalf("no filter but total %d", total)
		}
	})
}
