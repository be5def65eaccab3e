package ipam

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/ironcast/ironcast/model"
)

func TestAppendLeaseJSON(t *testing.T) {
	at := time.Date(2026, 1, 2, 3, 4, 5, 600, time.UTC)
	for _, tt := range []struct {
		name     string
		l        model.Lease
		fallback bool
	}{
		{name: "bound", l: model.Lease{ObjectMeta: model.ObjectMeta{CreatedAt: at, UpdatedAt: at.Add(time.Second)},
			Addr: "10.20.0.10", Token: "52:54:00:00:00:01", Subnet: "rack1", State: model.LeaseBound, Hostname: "node-1", ExpireTime: at.Add(time.Hour)}},
		{name: "declined without MAC", l: model.Lease{Addr: "10.20.0.11", State: model.LeaseDeclined, ExpireTime: at}},
		{name: "revision and zone", l: model.Lease{ObjectMeta: model.ObjectMeta{Revision: 42, CreatedAt: at.In(time.FixedZone("x", 3600))},
			Addr: "10.20.0.12", State: model.LeaseOffered}},
		{name: "hostname needing escapes", l: model.Lease{Addr: "10.20.0.13", Hostname: "a<b>&\"c\\\n\xff", State: model.LeaseBound}, fallback: true},
		{name: "year out of range", l: model.Lease{Addr: "10.20.0.14", ExpireTime: time.Date(10000, 1, 1, 0, 0, 0, 0, time.UTC)}, fallback: true},
	} {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := appendLeaseJSON(nil, &tt.l)
			if ok == tt.fallback {
				t.Fatalf("ok = %v, want %v", ok, !tt.fallback)
			}
			if !ok {
				return
			}
			want, err := json.Marshal(&tt.l)
			if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(string(got), string(want)); diff != "" {
				t.Fatalf("appendLeaseJSON (-got +json.Marshal):\n%s", diff)
			}
		})
	}
}
