package provision

import (
	"context"
	"encoding/json"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/ironcast/ironcast/model"
)

// TestTimelineKeepsNewest: a machine's timeline merges the entries filed
// under its UUID and its MAC, oldest first, and keeps only the newest
// perKey of each once more arrive (the ring wraps several times); keys
// beyond maxKeys are dropped oldest first.
func TestTimelineKeepsNewest(t *testing.T) {
	ctx := context.Background()
	svc, _, _ := newService(t)
	m := &model.Machine{Name: "n1", UUID: "6f1f2a3b-0000-4000-8000-000000000001", HardwareAddrs: []string{"52:54:00:00:00:01"}}
	mustCreate(t, svc, m)
	tl := newTimelines(svc, 4, 3)
	t0 := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	for i := range 11 {
		// Even seconds under the UUID, odd ones under the MAC (by path).
		ev := model.Event{Time: t0.Add(time.Duration(2*i) * time.Second), Type: "render", Kind: model.KindMachines, Key: m.UUID,
			Attrs: map[string]any{"n": 2 * i}}
		tl.Record(ctx, ev)
		tl.Record(ctx, model.Event{Time: t0.Add(time.Duration(2*i+1) * time.Second), Type: "http.file",
			Attrs: map[string]any{"path": "52-54-00-00-00-01.ipxe", "n": 2*i + 1}})
	}
	got, err := tl.Get(ctx, m.UUID)
	if err != nil {
		t.Fatal(err)
	}
	// Each key keeps its newest 4 (UUID: 14..20 even; MAC: 15..21 odd);
	// the merge keeps the newest 4 of those.
	want := []int{18, 19, 20, 21}
	if len(got) != len(want) {
		t.Fatalf("got %d entries, want %d: %v", len(got), len(want), got)
	}
	for i, e := range got {
		if e.Attrs["n"] != float64(want[i]) { // JSON numbers
			t.Fatalf("entry %d is %v, want n=%d (all: %v)", i, e.Attrs, want[i], got)
		}
	}
	// Three more keys: the two oldest (the UUID and the MAC) are dropped.
	for i := range 3 {
		tl.Record(ctx, model.Event{Type: "dhcp.offer", Attrs: map[string]any{"mac": fmt.Sprintf("52:54:00:00:01:%02x", i)}})
	}
	got, err = tl.Get(ctx, m.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 0 {
		t.Fatalf("after eviction: %v", got)
	}
}

// TestEncodeAttrs holds encodeAttrs to json.Marshal, on the fast path and
// on each way off it.
func TestEncodeAttrs(t *testing.T) {
	for _, attrs := range []map[string]any{
		nil,
		{},
		{"path": "52:54:00:12:34:56.ipxe", "mac": "52:54:00:12:34:56", "bytes": 1178, "protocol": "http", "cached": true},
		{"path": "/kernel", "bytes": int64(1 << 40), "duration_ms": 0.125, "status": 200, "client": "10.0.0.5:1234"},
		{"n": uint64(1 << 63), "f": 0.0, "g": -3.5, "h": 1e20, "neg": -7},
		{"tiny": 1e-7, "huge": 1e21},           // floats encoding/json writes with an exponent
		{"html": "<a&b>", "quote": `say "hi"`}, // escaped strings
		{"ctl": "a\tb\x00", "utf8": "grüße", "bad": "\xff"},
		{"nested": map[string]any{"a": 1}, "list": []string{"x"}, "nil": nil},
		{"esc\"key": 1},
		{"k00": 0, "k01": 1, "k02": 2, "k03": 3, "k04": 4, "k05": 5, "k06": 6, "k07": 7, "k08": 8,
			"k09": 9, "k10": 10, "k11": 11, "k12": 12, "k13": 13, "k14": 14, "k15": 15, "k16": 16, "k17": 17},
	} {
		got := encodeAttrs(attrs)
		if len(attrs) == 0 {
			if got != nil {
				t.Errorf("encodeAttrs(%v) = %q, want nil", attrs, got)
			}
			continue
		}
		want, err := json.Marshal(attrs)
		if err != nil {
			t.Fatal(err)
		}
		if string(got) != string(want) {
			t.Errorf("encodeAttrs(%v)\n got %s\nwant %s", attrs, got, want)
		}
		if back := decodeAttrs(got); len(back) != len(attrs) {
			t.Errorf("decodeAttrs(%s) = %v", got, back)
		}
	}
	// A map json.Marshal refuses is kept as its error, not dropped.
	got := decodeAttrs(encodeAttrs(map[string]any{"inf": math.Inf(1)}))
	if s, _ := got["attrs_error"].(string); !strings.Contains(s, "unsupported value") {
		t.Errorf("infinite float kept as %v", got)
	}
}
