package model

import (
	"slices"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

func TestPoolAndAllocationValidate(t *testing.T) {
	since := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	okMachine := func(a *Allocation) *Machine {
		m := &Machine{Name: "n1", Allocation: a}
		m.Normalize()
		return m
	}
	tests := []struct {
		name       string
		obj        interface{ Validate() error }
		wantFields []string
	}{
		{"pool ok", &Pool{Name: "web", BootEnv: "linuxkit", AllocationTTL: 3600, ReleaseFailedAfter: 600, MinReady: 2}, nil},
		{"pool negatives", &Pool{Name: "web", MinReady: -1, AllocationTTL: -1, ReleaseFailedAfter: -1}, []string{"AllocationTTL", "MinReady", "ReleaseFailedAfter"}},
		{"pool bad profile and param", &Pool{Name: "web", Profiles: []string{"bad name"}, Params: map[string]any{"a b": 1}}, []string{"Params", "Profiles[0]"}},
		{"allocation ok", okMachine(&Allocation{ID: "a1", Since: since, Expires: since.Add(time.Hour)}), nil},
		{"allocation without id and since", okMachine(&Allocation{}), []string{"Allocation.ID", "Allocation.Since"}},
		{"allocation expiring before it starts", okMachine(&Allocation{ID: "a1", Since: since, Expires: since}), []string{"Allocation.Expires"}},
		{"request ok", &AllocateRequest{Count: 2, TTL: 60, BootEnv: "local", Params: map[string]any{"x": 1}}, nil},
		{"request negatives", &AllocateRequest{Count: -1, TTL: -1}, []string{"Count", "TTL"}},
		{"request bad bootenv and param", &AllocateRequest{BootEnv: "a b", Params: map[string]any{"a b": 1}}, []string{"BootEnv", "Params"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			for _, ve := range ValidationErrors(tt.obj.Validate()) {
				got = append(got, ve.Field)
			}
			slices.Sort(got)
			if diff := cmp.Diff(got, tt.wantFields); diff != "" {
				t.Errorf("invalid fields (-got +want):\n%s", diff)
			}
		})
	}
}

func TestAllocationExpired(t *testing.T) {
	since := time.Date(2025, 3, 1, 12, 0, 0, 0, time.UTC)
	tests := []struct {
		name string
		a    *Allocation
		at   time.Time
		want bool
	}{
		{"nil", nil, since, false},
		{"never expires", &Allocation{Since: since}, since.Add(1000 * time.Hour), false},
		{"before", &Allocation{Since: since, Expires: since.Add(time.Hour)}, since.Add(time.Hour - time.Second), false},
		{"at", &Allocation{Since: since, Expires: since.Add(time.Hour)}, since.Add(time.Hour), true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := tt.a.Expired(tt.at); got != tt.want {
				t.Errorf("Expired = %v, want %v", got, tt.want)
			}
		})
	}
}
