package store_test

import (
	"context"
	"errors"
	"path/filepath"
	"sync"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
	"github.com/ironcast/ironcast/store/bolt"
)

// newStore opens a real bbolt store in t.TempDir(). (Only tests import
// store/bolt from here; the package itself does not.)
func newStore(t *testing.T) store.Store {
	t.Helper()
	s, err := bolt.Open(filepath.Join(t.TempDir(), "ironcast.db"), nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = s.Close() })
	return s
}

func machine(mac string) *model.Machine {
	return &model.Machine{HardwareAddrs: []string{mac}, BootEnv: "discovery"}
}

func TestCreateGetList(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	m := machine("52:54:00:AA:00:01")
	if err := store.Create(ctx, s, m); err != nil {
		t.Fatal(err)
	}
	if m.Revision == 0 || m.CreatedAt.IsZero() || !m.UpdatedAt.Equal(m.CreatedAt) {
		t.Errorf("after Create: revision %d, created %v, updated %v", m.Revision, m.CreatedAt, m.UpdatedAt)
	}
	if m.HardwareAddrs[0] != "52:54:00:aa:00:01" || !model.ValidUUID(m.UUID) {
		t.Errorf("Create did not normalise: %+v", m)
	}
	got, err := store.Get[model.Machine](ctx, s, m.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, m); diff != "" {
		t.Errorf("Get (-got +want):\n%s", diff)
	}
	e, err := s.Get(ctx, model.KindMachines, m.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if got, err := store.Decode[model.Machine](e); err != nil || got.Revision != e.Revision {
		t.Errorf("Decode: %v, revision %d; want %d", err, got.Revision, e.Revision)
	}

	tests := []struct {
		name    string
		obj     *model.Machine
		wantErr error
	}{
		{name: "same key", obj: &model.Machine{UUID: m.UUID, HardwareAddrs: []string{"52:54:00:aa:00:02"}}, wantErr: model.ErrExists},
		{name: "MAC of another machine", obj: machine("52:54:00:aa:00:01"), wantErr: model.ErrConflict},
		{name: "invalid object", obj: machine("not-a-mac")},
		{name: "second machine", obj: machine("52:54:00:aa:00:03")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := store.Create(ctx, s, tt.obj)
			switch {
			case tt.name == "invalid object":
				if len(model.ValidationErrors(err)) == 0 {
					t.Errorf("Create: %v, want validation errors", err)
				}
			case tt.wantErr == nil && err != nil:
				t.Errorf("Create: %v", err)
			case !errors.Is(err, tt.wantErr):
				t.Errorf("Create: %v, want %v", err, tt.wantErr)
			}
		})
	}
	all, err := store.List[model.Machine](ctx, s)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 2 || all[0].UUID > all[1].UUID {
		t.Errorf("List returned %d machines, want 2 in key order", len(all))
	}
	for _, got := range all {
		if got.Revision == 0 {
			t.Errorf("List: %s has no revision", got.UUID)
		}
	}
	byMAC, err := store.LookupBy[model.Machine](ctx, s, "mac", "52:54:00:aa:00:03")
	if err != nil || !byMAC.HasMAC("52:54:00:aa:00:03") {
		t.Errorf("LookupBy mac: %v, %+v", err, byMAC)
	}
	if _, err := store.LookupBy[model.Machine](ctx, s, "mac", "52:54:00:ff:ff:ff"); !errors.Is(err, model.ErrNotFound) {
		t.Errorf("LookupBy missing mac: %v, want ErrNotFound", err)
	}
}

func TestUpdateAndDelete(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	m := machine("52:54:00:aa:00:01")
	if err := store.Create(ctx, s, m); err != nil {
		t.Fatal(err)
	}
	created := m.CreatedAt
	stale := *m
	m.Description = "first"
	if err := store.Update(ctx, s, m); err != nil {
		t.Fatal(err)
	}
	if m.Revision <= stale.Revision || !m.CreatedAt.Equal(created) {
		t.Errorf("after Update: revision %d (was %d), created %v (was %v)", m.Revision, stale.Revision, m.CreatedAt, created)
	}
	tests := []struct {
		name string
		obj  func() *model.Machine
	}{
		{name: "stale revision", obj: func() *model.Machine { c := stale; c.Description = "lost"; return &c }},
		{name: "no revision", obj: func() *model.Machine { c := *m; c.Revision = 0; return &c }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if err := store.Update(ctx, s, tt.obj()); !errors.Is(err, model.ErrConflict) {
				t.Errorf("Update: %v, want ErrConflict", err)
			}
		})
	}
	got, err := store.Get[model.Machine](ctx, s, m.UUID)
	if err != nil || got.Description != "first" {
		t.Fatalf("Get after updates: %v, %q", err, got.Description)
	}
	if err := store.Delete(ctx, s, model.KindMachines, m.UUID, stale.Revision); !errors.Is(err, model.ErrConflict) {
		t.Errorf("Delete at a stale revision: %v, want ErrConflict", err)
	}
	if err := store.Delete(ctx, s, model.KindMachines, m.UUID, m.Revision); err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get[model.Machine](ctx, s, m.UUID); !errors.Is(err, model.ErrNotFound) {
		t.Errorf("Get after Delete: %v, want ErrNotFound", err)
	}
}

// TestMutateConcurrent runs concurrent read-modify-write cycles on one
// machine through Mutate: none may be lost.
func TestMutateConcurrent(t *testing.T) {
	const writers, increments = 8, 25
	ctx := context.Background()
	s := newStore(t)
	m := machine("52:54:00:aa:00:01")
	m.Inventory = &model.Inventory{}
	if err := store.Create(ctx, s, m); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	errs := make(chan error, writers*increments)
	for range writers {
		wg.Go(func() {
			for range increments {
				_, err := store.Mutate(ctx, s, m.UUID, func(m *model.Machine) error {
					m.Inventory.CPUs++
					return nil
				})
				if err != nil {
					errs <- err
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Errorf("Mutate: %v", err)
	}
	got, err := store.Get[model.Machine](ctx, s, m.UUID)
	if err != nil {
		t.Fatal(err)
	}
	if got.Inventory.CPUs != writers*increments {
		t.Errorf("counter = %d, want %d", got.Inventory.CPUs, writers*increments)
	}
}

func TestMutateErrors(t *testing.T) {
	ctx := context.Background()
	s := newStore(t)
	a, b := machine("52:54:00:aa:00:01"), machine("52:54:00:aa:00:02")
	for _, m := range []*model.Machine{a, b} {
		if err := store.Create(ctx, s, m); err != nil {
			t.Fatal(err)
		}
	}
	errFn := errors.New("fn says no")
	calls := 0
	tests := []struct {
		name    string
		key     string
		fn      func(*model.Machine) error
		wantErr error
	}{
		{name: "missing object", key: model.NewUUID(), fn: func(*model.Machine) error { return nil }, wantErr: model.ErrNotFound},
		{name: "fn error", key: a.UUID, fn: func(*model.Machine) error { return errFn }, wantErr: errFn},
		{name: "index conflict is not retried", key: a.UUID, fn: func(m *model.Machine) error {
			calls++
			m.HardwareAddrs = append(m.HardwareAddrs, b.HardwareAddrs[0])
			return nil
		}, wantErr: model.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := store.Mutate(ctx, s, tt.key, tt.fn)
			if !errors.Is(err, tt.wantErr) {
				t.Errorf("Mutate: %v, want %v", err, tt.wantErr)
			}
		})
	}
	if calls != 1 {
		t.Errorf("fn called %d times for an index conflict, want 1", calls)
	}
	var ce *model.ConflictError
	_, err := store.Mutate(ctx, s, a.UUID, func(m *model.Machine) error {
		m.HardwareAddrs = b.HardwareAddrs
		return nil
	})
	if !errors.As(err, &ce) || ce.Field != "mac" {
		t.Errorf("Mutate onto another machine's MAC: %v, want a *model.ConflictError for mac", err)
	}
}
