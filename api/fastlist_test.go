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

// TestFastPathsMatchTheGeneralPath checks that the paths that serve lists
// from the stored JSON answer exactly what the general path (decode every
// object, filter, sort, page, encode) answers, which ?decode=true forces:
// a plain list, an indexed filter (a lookup), and filters, sorts and
// reverses over objects decoded one at a time.
func TestFastPathsMatchTheGeneralPath(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	for i := range 12 {
		m := &model.Machine{Name: fmt.Sprintf("f%02d", (i*5)%12), HardwareAddrs: []string{fmt.Sprintf("52:54:00:00:0f:%02x", i)},
			Address: fmt.Sprintf("10.9.0.%d", i+10), Params: map[string]any{"n": float64(i % 4)}}
		if i%3 == 0 {
			m.Params["only-some"] = fmt.Sprint("v", i)
		}
		e.createMachine(e.admin, m)
	}
	list := func(q url.Values) ([]map[string]any, int) {
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
		q           url.Values
		wantTotal   int
		wantEntries int
	}{
		{"all", url.Values{}, 12, 12},
		{"page", url.Values{"offset": {"3"}, "limit": {"4"}}, 12, 4},
		{"past the end", url.Values{"offset": {"20"}}, 12, 0},
		{"by MAC", url.Values{"HardwareAddrs": {"52-54-00-00-0F-05"}}, 1, 1},
		{"by unknown MAC", url.Values{"HardwareAddrs": {"52:54:00:00:0f:99"}}, 0, 0},
		{"by address", url.Values{"Address": {"10.9.0.15"}}, 1, 1},
		{"by name", url.Values{"Name": {"f07"}}, 1, 1},
		// Filters no index answers: decoded one at a time.
		{"by param", url.Values{"param.n": {"1", "3"}}, 6, 6},
		{"by param, paged", url.Values{"param.n": {"1", "3"}, "offset": {"1"}, "limit": {"2"}}, 6, 2},
		{"by field and param", url.Values{"State": {"discovered"}, "param.n": {"2"}}, 3, 3},
		{"by state, paged", url.Values{"State": {"discovered"}, "limit": {"5"}}, 12, 5},
		{"two names (no lookup)", url.Values{"Name": {"f01", "f05"}}, 2, 2},
		{"two MACs (no lookup)", url.Values{"HardwareAddrs": {"52:54:00:00:0f:01", "52:54:00:00:0f:02"}}, 2, 2},
		{"no match", url.Values{"param.n": {"99"}}, 0, 0},
		// Sorts and reverses: the matches are kept as stored with their keys.
		{"sort by name", url.Values{"sort": {"Name"}}, 12, 12},
		{"sort by name, reversed, paged", url.Values{"sort": {"Name"}, "reverse": {"true"}, "offset": {"2"}, "limit": {"3"}}, 12, 3},
		{"sort by param (ties keep key order)", url.Values{"sort": {"param.n"}}, 12, 12},
		{"sort by a param some lack", url.Values{"sort": {"param.only-some"}}, 12, 12},
		{"reverse without sort", url.Values{"reverse": {"true"}, "limit": {"4"}}, 12, 4},
		{"filter and sort", url.Values{"param.n": {"0", "2"}, "sort": {"Address"}, "reverse": {"1"}}, 6, 6},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			fast, ft := list(c.q)
			gq := url.Values{"decode": {"true"}}
			for k, v := range c.q {
				gq[k] = v
			}
			general, gt := list(gq)
			if ft != c.wantTotal || gt != c.wantTotal || len(fast) != c.wantEntries {
				t.Fatalf("totals fast %d general %d entries %d, want %d and %d", ft, gt, len(fast), c.wantTotal, c.wantEntries)
			}
			if diff := cmp.Diff(fast, general); diff != "" {
				t.Errorf("fast path differs (-fast +general):\n%s", diff)
			}
		})
	}
}
