package bolt

import (
	"log/slog"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ironcast/ironcast/store"
)

// TestHubReorders checks that events handed over out of order (bbolt runs
// commit handlers outside its writer lock) are delivered in revision order.
func TestHubReorders(t *testing.T) {
	tests := []struct {
		name    string
		start   int64 // revision of the store when opened
		publish []int64
		want    []int64 // delivered so far
	}{
		{name: "in order", start: 0, publish: []int64{1, 2, 3}, want: []int64{1, 2, 3}},
		{name: "reversed", start: 0, publish: []int64{3, 2, 1}, want: []int64{1, 2, 3}},
		{name: "gap held back", start: 10, publish: []int64{11, 13, 14}, want: []int64{11}},
		{name: "gap filled", start: 10, publish: []int64{12, 13, 11, 14}, want: []int64{11, 12, 13, 14}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := newHub(tt.start, 16, slog.New(slog.DiscardHandler))
			w, err := h.add("")
			if err != nil {
				t.Fatal(err)
			}
			for _, r := range tt.publish {
				h.publish(store.Event{Type: store.Created, Kind: "k", Key: "x", Revision: r})
			}
			h.closeAll()
			var got []int64
			for ev := range w.c {
				got = append(got, ev.Revision)
			}
			if diff := cmp.Diff(got, tt.want); diff != "" {
				t.Errorf("delivered (-got +want):\n%s", diff)
			}
		})
	}
}
