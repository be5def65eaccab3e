package api_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/url"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ironcast/ironcast/model"
)

// TestFastPathsMatchTheGeneralPath checks that a plain list (served from
// the stored JSON), an indexed filter (served by a lookup) and a filter
// without sort (decoded one object at a time, the page written as stored)
// answer exactly what the general decode-filter-sort path answers.
func TestFastPathsMatchTheGeneralPath(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := range 12 {
		e.createMachine(e.admin, &model.Machine{Name: fmt.Sprintf("f%02d", i), HardwareAddrs: []string{fmt.Sprintf("52:54:00:00:0f:%02x", i)},
			Address: fmt.Sprintf("10.9.0.%d", i+10), Params: map[string]any{"n": float64(i)}})
	}
	decodeAll := func(q url.Values) ([]map[string]any, int) {
		t.Helper()
		list, total, err := e.admin.List(ctx, "machines", q)
		if err != nil {
			t.Fatal(err)
		}
		out := make([]map[string]any, len(list))
		for i, raw := range list {
			if err := json.Unmarshal(raw, &out[i]); err != nil {
				t.Fatalf("item %d is not JSON: %v\n%s", i, err, raw)
			}
		}
		return out, total
	}
	cases := []struct {
		name        string
		fast, slow  url.Values
		wantTotal   int
		wantEntries int
	}{
		{"all", url.Values{}, url.Values{"sort": {"UUID"}}, 12, 12},
		{"page", url.Values{"offset": {"3"}, "limit": {"4"}}, url.Values{"sort": {"UUID"}, "offset": {"3"}, "limit": {"4"}}, 12, 4},
		{"past the end", url.Values{"offset": {"20"}}, url.Values{"sort": {"UUID"}, "offset": {"20"}}, 12, 0},
		{"by MAC", url.Values{"HardwareAddrs": {"52-54-00-00-0F-05"}}, url.Values{"HardwareAddrs": {"52:54:00:00:0f:05"}, "sort": {"Name"}}, 1, 1},
		{"by unknown MAC", url.Values{"HardwareAddrs": {"52:54:00:00:0f:99"}}, url.Values{"HardwareAddrs": {"52:54:00:00:0f:99"}, "sort": {"Name"}}, 0, 0},
		{"by address", url.Values{"Address": {"10.9.0.15"}}, url.Values{"Address": {"10.9.0.15"}, "sort": {"Name"}}, 1, 1},
		{"by name", url.Values{"Name": {"f07"}}, url.Values{"Name": {"f07"}, "sort": {"Name"}}, 1, 1},
		// Filters without an index: decoded one at a time, page kept raw.
		{"by param", url.Values{"param.n": {"3", "4", "9"}}, url.Values{"param.n": {"3", "4", "9"}, "sort": {"UUID"}}, 3, 3},
		{"by param, paged", url.Values{"param.n": {"3", "4", "9"}, "offset": {"1"}, "limit": {"1"}},
			url.Values{"param.n": {"3", "4", "9"}, "sort": {"UUID"}, "offset": {"1"}, "limit": {"1"}}, 3, 1},
		{"by field and param", url.Values{"State": {"discovered"}, "param.n": {"2"}}, url.Values{"State": {"discovered"}, "param.n": {"2"}, "sort": {"UUID"}}, 1, 1},
		{"by state, paged", url.Values{"State": {"discovered"}, "limit": {"5"}}, url.Values{"State": {"discovered"}, "sort": {"UUID"}, "limit": {"5"}}, 12, 5},
		{"two names (no lookup)", url.Values{"Name": {"f01", "f05"}}, url.Values{"Name": {"f01", "f05"}, "sort": {"UUID"}}, 2, 2},
		{"two MACs (no lookup)", url.Values{"HardwareAddrs": {"52:54:00:00:0f:01", "52:54:00:00:0f:02"}},
			url.Values{"HardwareAddrs": {"52:54:00:00:0f:01", "52:54:00:00:0f:02"}, "sort": {"UUID"}}, 2, 2},
		{"no match", url.Values{"param.n": {"99"}}, url.Values{"param.n": {"99"}, "sort": {"UUID"}}, 0, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fast, ft := decodeAll(c.fast)
			slow, st := decodeAll(c.slow)
			if ft != c.wantTotal || st != c.wantTotal || len(fast) != c.wantEntries {
				t.Fatalf("totals fast %d slow %d entries %d, want %d and %d", ft, st, len(fast), c.wantTotal, c.wantEntries)
			}
			if diff := cmp.Diff(fast, slow); diff != "" {
				t.Errorf("fast path differs (-fast +general):\n%s", diff)
			}
		})
	}
}
