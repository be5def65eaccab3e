// Package storetest is the conformance suite for store.Store backends.
// Every backend's tests call Run (or RunWithOptions) with a constructor of
// fresh, empty stores; the suite checks the semantics the store package
// documents, including under concurrent writers.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"golang.org/x/sync/errgroup"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
)

// Options holds backend-specific hooks. The zero value is valid.
type Options struct {
	// Reopen turns the bytes written by Backup into an open store (for
	// bbolt: restore them to a new file and open it). When nil, the suite
	// only checks that Backup writes what it reports.
	Reopen func(t *testing.T, backup []byte) store.Store
}

// Run runs the conformance suite. newStore must return a new, empty, open
// store and should close it with t.Cleanup; the suite closes some stores
// itself, so that cleanup must tolerate a second Close.
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	RunWithOptions(t, newStore, Options{})
}

// RunWithOptions is Run with backend-specific hooks.
func RunWithOptions(t *testing.T, newStore func(t *testing.T) store.Store, opts Options) {
	tests := []struct {
		name string
		fn   func(t *testing.T, newStore func(t *testing.T) store.Store, opts Options)
	}{
		{"PutPreconditions", testPutPreconditions},
		{"PutBatch", testPutBatch},
		{"DeletePreconditions", testDeletePreconditions},
		{"GetAndOwnership", testGet},
		{"RevisionsAreGlobal", testRevisions},
		{"ListOrderAndCount", testList},
		{"ListIsOneSnapshot", testListSnapshot},
		{"KindsAreIsolated", testKinds},
		{"UniqueIndexes", testIndexes},
		{"WatchKind", testWatchKind},
		{"WatchAllKinds", testWatchAll},
		{"WatchClosesOnContextEnd", testWatchCancel},
		{"ConcurrentCompareAndSwap", testConcurrentCAS},
		{"ConcurrentCreateSameKey", testConcurrentCreate},
		{"ConcurrentClaimSameIndexValue", testConcurrentIndex},
		{"Backup", testBackup},
		{"CancelledContext", testCancelled},
		{"Close", testClose},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) { tt.fn(t, newStore, opts) })
	}
}

// wait bounds every blocking receive so that a broken backend fails the
// suite instead of hanging it. It is not a speed requirement.
const wait = 30 * time.Second

func put(t *testing.T, s store.Store, kind, key, value string, want int64, idx map[string][]string) int64 {
	t.Helper()
	rev, err := s.Put(context.Background(), kind, key, []byte(value), want, idx)
	if err != nil {
		t.Fatalf("Put(%s, %s, rev %d): %v", kind, key, want, err)
	}
	return rev
}

func get(t *testing.T, s store.Store, kind, key string) store.Entry {
	t.Helper()
	e, err := s.Get(context.Background(), kind, key)
	if err != nil {
		t.Fatalf("Get(%s, %s): %v", kind, key, err)
	}
	return e
}

func keys(t *testing.T, s store.Store, kind string) []string {
	t.Helper()
	var out []string
	if err := s.List(context.Background(), kind, func(e store.Entry) error {
		out = append(out, e.Key)
		return nil
	}); err != nil {
		t.Fatalf("List(%s): %v", kind, err)
	}
	return out
}

func count(t *testing.T, s store.Store, kind string) int {
	t.Helper()
	n, err := s.Count(context.Background(), kind)
	if err != nil {
		t.Fatalf("Count(%s): %v", kind, err)
	}
	return n
}

// checkErr reports whether err matches want: nil, a sentinel (errors.Is)
// or a *model.ConflictError (errors.As).
func checkErr(t *testing.T, what string, err, want error) {
	t.Helper()
	switch {
	case want == nil && err != nil:
		t.Fatalf("%s: %v, want success", what, err)
	case want == nil:
	case errors.Is(want, errConflictError):
		var ce *model.ConflictError
		if !errors.As(err, &ce) {
			t.Fatalf("%s: %v, want a *model.ConflictError", what, err)
		}
	case !errors.Is(err, want):
		t.Fatalf("%s: %v, want %v", what, err, want)
	}
}

// errConflictError stands for "a *model.ConflictError" in tables.
var errConflictError = fmt.Errorf("*model.ConflictError: %w", model.ErrConflict)

func testPutPreconditions(t *testing.T, newStore func(*testing.T) store.Store, _ Options) {
	const kind = "things"
	tests := []struct {
		name    string
		exists  bool
		want    func(cur int64) int64 // the precondition, given the current revision
		wantErr error
	}{
		{name: "create missing key", want: func(int64) int64 { return store.MustNotExist }},
		{name: "create existing key", exists: true, want: func(int64) int64 { return store.MustNotExist }, wantErr: model.ErrExists},
		{name: "any revision, missing key", want: func(int64) int64 { return store.AnyRevision }},
		{name: "any revision, existing key", exists: true, want: func(int64) int64 { return store.AnyRevision }},
		{name: "current revision", exists: true, want: func(cur int64) int64 { return cur }},
		{name: "stale revision", exists: true, want: func(cur int64) int64 { return cur - 1 }, wantErr: model.ErrConflict},
		{name: "future revision", exists: true, want: func(cur int64) int64 { return cur + 100 }, wantErr: model.ErrConflict},
		{name: "revision of a missing key", want: func(int64) int64 { return 7 }, wantErr: model.ErrConflict},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			ctx := context.Background()
			put(t, s, kind, "filler", `"filler"`, store.MustNotExist, nil) // so that cur-1 is a real revision
			var cur int64
			before := map[string]string{"filler": `"filler"`}
			if tt.exists {
				cur = put(t, s, kind, "k", `"old"`, store.MustNotExist, nil)
				before["k"] = `"old"`
			}
			rev, err := s.Put(ctx, kind, "k", []byte(`"new"`), tt.want(cur), nil)
			checkErr(t, "Put", err, tt.wantErr)
			after := map[string]string{}
			if err := s.List(ctx, kind, func(e store.Entry) error {
				after[e.Key] = string(e.Value)
				if e.Key == "k" && err == nil && e.Revision != rev {
					t.Errorf("stored revision %d, Put returned %d", e.Revision, rev)
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			want := before
			if tt.wantErr == nil {
				want = map[string]string{"filler": `"filler"`, "k": `"new"`}
				if rev <= cur {
					t.Errorf("Put returned revision %d, not above %d", rev, cur)
				}
			}
			if diff := cmp.Diff(after, want); diff != "" {
				t.Errorf("stored values (-got +want):\n%s", diff)
			}
			if got := count(t, s, kind); got != len(want) {
				t.Errorf("Count = %d, want %d", got, len(want))
			}
		})
	}
}

func testDeletePreconditions(t *testing.T, newStore func(*testing.T) store.Store, _ Options) {
	const kind = "things"
	tests := []struct {
		name    string
		exists  bool
		want    func(cur int64) int64
		wantErr error
	}{
		{name: "any revision", exists: true, want: func(int64) int64 { return store.AnyRevision }},
		{name: "current revision", exists: true, want: func(cur int64) int64 { return cur }},
		{name: "stale revision", exists: true, want: func(cur int64) int64 { return cur - 1 }, wantErr: model.ErrConflict},
		{name: "missing key, any revision", want: func(int64) int64 { return store.AnyRevision }, wantErr: model.ErrNotFound},
		{name: "missing key, a revision", want: func(int64) int64 { return 3 }, wantErr: model.ErrNotFound},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			ctx := context.Background()
			put(t, s, kind, "other", `1`, store.MustNotExist, nil)
			var cur int64
			if tt.exists {
				put(t, s, kind, "k", `1`, store.MustNotExist, nil)
				cur = put(t, s, kind, "k", `2`, store.AnyRevision, nil)
			}
			err := s.Delete(ctx, kind, "k", tt.want(cur))
			checkErr(t, "Delete", err, tt.wantErr)
			want := []string{"other"}
			if tt.exists && tt.wantErr != nil {
				want = []string{"k", "other"}
			}
			if diff := cmp.Diff(keys(t, s, kind), want); diff != "" {
				t.Errorf("keys after Delete (-got +want):\n%s", diff)
			}
			if got := count(t, s, kind); got != len(want) {
				t.Errorf("Count = %d, want %d", got, len(want))
			}
			if tt.wantErr == nil {
				if _, err := s.Get(ctx, kind, "k"); !errors.Is(err, model.ErrNotFound) {
					t.Errorf("Get after Delete: %v, want ErrNotFound", err)
				}
				// The key can be created afresh.
				put(t, s, kind, "k", `3`, store.MustNotExist, nil)
			}
		})
	}
}

func testGet(t *testing.T, newStore func(*testing.T) store.Store, _ Options) {
	s := newStore(t)
	ctx := context.Background()
	tests := []struct {
		name, kind, key string
		wantErr         error
	}{
		{name: "missing kind", kind: "nokind", key: "k", wantErr: model.ErrNotFound},
		{name: "missing key", kind: "things", key: "nokey", wantErr: model.ErrNotFound},
		{name: "present", kind: "things", key: "k"},
	}
	val := []byte(`{"a":1}`)
	rev, err := s.Put(ctx, "things", "k", val, store.MustNotExist, nil)
	if err != nil {
		t.Fatal(err)
	}
	val[2] = 'X' // the store must have copied the value
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e, err := s.Get(ctx, tt.kind, tt.key)
			checkErr(t, "Get", err, tt.wantErr)
			if tt.wantErr != nil {
				return
			}
			want := store.Entry{Key: "k", Value: []byte(`{"a":1}`), Revision: rev}
			if diff := cmp.Diff(e, want); diff != "" {
				t.Errorf("Get (-got +want):\n%s", diff)
			}
			e.Value[2] = 'Y' // the caller owns Value
			if got := get(t, s, "things", "k"); string(got.Value) != `{"a":1}` {
				t.Errorf("Get after changing a returned value: %s", got.Value)
			}
		})
	}
}

func testRevisions(t *testing.T, newStore func(*testing.T) store.Store, _ Options) {
	s := newStore(t)
	ctx := context.Background()
	var revs []int64
	step := func(what string, rev int64, err error) {
		t.Helper()
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		revs = append(revs, rev)
	}
	r, err := s.Put(ctx, "a", "k1", []byte(`1`), store.MustNotExist, nil)
	step("put a/k1", r, err)
	r, err = s.Put(ctx, "b", "k1", []byte(`1`), store.MustNotExist, nil)
	step("put b/k1", r, err)
	r, err = s.Put(ctx, "a", "k1", []byte(`2`), revs[0], nil)
	step("update a/k1", r, err)
	step("delete b/k1", 0, s.Delete(ctx, "b", "k1", store.AnyRevision))
	revs = revs[:len(revs)-1]
	r, err = s.Put(ctx, "b", "k2", []byte(`1`), store.MustNotExist, nil)
	step("put b/k2", r, err)
	if _, err := s.Put(ctx, "a", "k1", []byte(`3`), revs[0], nil); !errors.Is(err, model.ErrConflict) {
		t.Fatalf("stale update: %v, want ErrConflict", err)
	}
	r, err = s.Put(ctx, "a", "k3", []byte(`1`), store.MustNotExist, nil)
	step("put a/k3", r, err)
	for i := 1; i < len(revs); i++ {
		if revs[i] <= revs[i-1] {
			t.Errorf("revisions %v do not strictly increase", revs)
		}
	}
	// The delete took a revision too: b/k2's is at least two above a/k1's.
	if revs[3]-revs[2] < 2 {
		t.Errorf("revisions %v: the delete between the 3rd and 4th write took no revision", revs)
	}
	if got := get(t, s, "a", "k1").Revision; got != revs[2] {
		t.Errorf("a/k1 revision %d, want %d", got, revs[2])
	}
}

func testList(t *testing.T, newStore func(*testing.T) store.Store, _ Options) {
	s := newStore(t)
	ctx := context.Background()
	in := []string{"m", "b", "z", "a", "aa", "B", "0", "m1"}
	for _, k := range in {
		put(t, s, "things", k, `"`+k+`"`, store.MustNotExist, nil)
	}
	put(t, s, "others", "c", `1`, store.MustNotExist, nil)
	tests := []struct {
		name      string
		kind      string
		stopAfter int // fn fails after this many entries; 0: never
		wantKeys  []string
		wantCount int
	}{
		{name: "all in key order", kind: "things", wantKeys: []string{"0", "B", "a", "aa", "b", "m", "m1", "z"}, wantCount: len(in)},
		{name: "fn error stops the walk", kind: "things", stopAfter: 3, wantKeys: []string{"0", "B", "a"}, wantCount: len(in)},
		{name: "empty kind", kind: "nothing", wantCount: 0},
		{name: "other kind", kind: "others", wantKeys: []string{"c"}, wantCount: 1},
	}
	errStop := errors.New("stop")
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var got []string
			err := s.List(ctx, tt.kind, func(e store.Entry) error {
				got = append(got, e.Key)
				if string(e.Value) != `"`+e.Key+`"` && tt.kind == "things" {
					t.Errorf("%s: value %s", e.Key, e.Value)
				}
				if e.Revision <= 0 {
					t.Errorf("%s: revision %d", e.Key, e.Revision)
				}
				if tt.stopAfter > 0 && len(got) == tt.stopAfter {
					return errStop
				}
				return nil
			})
			if tt.stopAfter > 0 {
				if !errors.Is(err, errStop) {
					t.Errorf("List: %v, want fn's error", err)
				}
			} else if err != nil {
				t.Fatal(err)
			}
			if diff := cmp.Diff(got, tt.wantKeys); diff != "" {
				t.Errorf("keys (-got +want):\n%s", diff)
			}
			if n := count(t, s, tt.kind); n != tt.wantCount {
				t.Errorf("Count = %d, want %d", n, tt.wantCount)
			}
		})
	}
}

// testListSnapshot changes the kind from another goroutine while List is
// walking it. The walk must show the state from before the change. A
// backend whose writers wait for readers passes too: the change then lands
// after the walk.
func testListSnapshot(t *testing.T, newStore func(*testing.T) store.Store, _ Options) {
	s := newStore(t)
	ctx := context.Background()
	var want []string
	for i := range 10 {
		k := fmt.Sprintf("k%02d", i)
		put(t, s, "things", k, `1`, store.MustNotExist, nil)
		want = append(want, k)
	}
	done := make(chan error, 1)
	var got []string
	err := s.List(ctx, "things", func(e store.Entry) error {
		got = append(got, e.Key)
		if len(got) == 1 {
			go func() {
				err := s.Delete(ctx, "things", "k09", store.AnyRevision)
				if err == nil {
					_, err = s.Put(ctx, "things", "k10", []byte(`1`), store.MustNotExist, nil)
				}
				done <- err
			}()
			select {
			case err := <-done:
				done <- err
			case <-time.After(2 * time.Second): // the writer waits for us; fine
			}
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("List during writes (-got +want):\n%s", diff)
	}
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("concurrent writes: %v", err)
		}
	case <-time.After(wait):
		t.Fatal("concurrent writes never finished")
	}
	want = append(want[:9], "k10")
	if diff := cmp.Diff(keys(t, s, "things"), want); diff != "" {
		t.Errorf("List after writes (-got +want):\n%s", diff)
	}
}

func testKinds(t *testing.T, newStore func(*testing.T) store.Store, _ Options) {
	s := newStore(t)
	ctx := context.Background()
	idx := map[string][]string{"mac": {"aa"}}
	put(t, s, "a", "k", `"a"`, store.MustNotExist, idx)
	put(t, s, "b", "k", `"b"`, store.MustNotExist, idx) // same key and index value, other kind
	tests := []struct {
		name, kind, want string
	}{
		{"kind a", "a", `"a"`},
		{"kind b", "b", `"b"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := string(get(t, s, tt.kind, "k").Value); got != tt.want {
				t.Errorf("Get = %s, want %s", got, tt.want)
			}
			e, err := s.Lookup(ctx, tt.kind, "mac", "aa")
			if err != nil || string(e.Value) != tt.want {
				t.Errorf("Lookup = %s, %v; want %s", e.Value, err, tt.want)
			}
		})
	}
	if err := s.Delete(ctx, "a", "k", store.AnyRevision); err != nil {
		t.Fatal(err)
	}
	if got := string(get(t, s, "b", "k").Value); got != `"b"` {
		t.Errorf("b/k after deleting a/k = %s", got)
	}
	if _, err := s.Lookup(ctx, "b", "mac", "aa"); err != nil {
		t.Errorf("Lookup b after deleting a/k: %v", err)
	}
	if got := count(t, s, "b"); got != 1 {
		t.Errorf("Count(b) = %d, want 1", got)
	}
}

func testIndexes(t *testing.T, newStore func(*testing.T) store.Store, _ Options) {
	const kind = "machines"
	type lookup struct {
		index, value string
		want         string // key, or "" for ErrNotFound
	}
	type write struct {
		key     string
		delete  bool
		idx     map[string][]string
		wantErr error
		holder  string // for a *model.ConflictError: the key named in it
		index   string // for a *model.ConflictError: the index named in it
	}
	tests := []struct {
		name    string
		writes  []write
		lookups []lookup
	}{
		{
			name:   "lookup by every value",
			writes: []write{{key: "m1", idx: map[string][]string{"mac": {"01", "02"}, "name": {"one"}}}},
			lookups: []lookup{
				{"mac", "01", "m1"}, {"mac", "02", "m1"}, {"name", "one", "m1"},
				{"mac", "03", ""}, {"name", "01", ""}, {"noindex", "01", ""},
			},
		},
		{
			name: "value held by another key",
			writes: []write{
				{key: "m1", idx: map[string][]string{"mac": {"01"}}},
				{key: "m2", idx: map[string][]string{"mac": {"02", "01"}}, wantErr: errConflictError, holder: "m1", index: "mac"},
			},
			lookups: []lookup{{"mac", "01", "m1"}, {"mac", "02", ""}},
		},
		{
			name: "same value in two indexes",
			writes: []write{
				{key: "m1", idx: map[string][]string{"mac": {"x"}}},
				{key: "m2", idx: map[string][]string{"name": {"x"}}},
			},
			lookups: []lookup{{"mac", "x", "m1"}, {"name", "x", "m2"}},
		},
		{
			name: "rewrite keeps own values",
			writes: []write{
				{key: "m1", idx: map[string][]string{"mac": {"01"}}},
				{key: "m1", idx: map[string][]string{"mac": {"01"}}},
			},
			lookups: []lookup{{"mac", "01", "m1"}},
		},
		{
			name: "rewrite releases old values",
			writes: []write{
				{key: "m1", idx: map[string][]string{"mac": {"01", "02"}, "name": {"one"}}},
				{key: "m1", idx: map[string][]string{"mac": {"02", "03"}}},
				{key: "m2", idx: map[string][]string{"mac": {"01"}, "name": {"one"}}},
			},
			lookups: []lookup{{"mac", "01", "m2"}, {"mac", "02", "m1"}, {"mac", "03", "m1"}, {"name", "one", "m2"}},
		},
		{
			name: "rewrite without indexes releases all",
			writes: []write{
				{key: "m1", idx: map[string][]string{"mac": {"01"}}},
				{key: "m1"},
			},
			lookups: []lookup{{"mac", "01", ""}},
		},
		{
			name: "delete frees values",
			writes: []write{
				{key: "m1", idx: map[string][]string{"mac": {"01"}}},
				{key: "m1", delete: true},
				{key: "m2", idx: map[string][]string{"mac": {"01"}}},
			},
			lookups: []lookup{{"mac", "01", "m2"}},
		},
		{
			name: "failed write keeps the old values",
			writes: []write{
				{key: "m1", idx: map[string][]string{"mac": {"01"}}},
				{key: "m2", idx: map[string][]string{"mac": {"02"}}},
				{key: "m2", idx: map[string][]string{"mac": {"03", "01"}}, wantErr: errConflictError, holder: "m1", index: "mac"},
			},
			lookups: []lookup{{"mac", "01", "m1"}, {"mac", "02", "m2"}, {"mac", "03", ""}},
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := newStore(t)
			ctx := context.Background()
			for i, w := range tt.writes {
				var err error
				if w.delete {
					err = s.Delete(ctx, kind, w.key, store.AnyRevision)
				} else {
					_, err = s.Put(ctx, kind, w.key, []byte(fmt.Sprintf(`{"write":%d}`, i)), store.AnyRevision, w.idx)
				}
				checkErr(t, fmt.Sprintf("write %d (%s)", i, w.key), err, w.wantErr)
				if w.wantErr == nil {
					continue
				}
				if !errors.Is(err, model.ErrConflict) {
					t.Errorf("write %d: %v is not an ErrConflict", i, err)
				}
				var ce *model.ConflictError
				if errors.As(err, &ce) {
					if ce.Field != w.index {
						t.Errorf("write %d: ConflictError.Field = %q, want %q", i, ce.Field, w.index)
					}
					if !strings.Contains(ce.Message, w.holder) {
						t.Errorf("write %d: ConflictError.Message %q does not name %q", i, ce.Message, w.holder)
					}
				}
			}
			for _, l := range tt.lookups {
				e, err := s.Lookup(ctx, kind, l.index, l.value)
				if l.want == "" {
					if !errors.Is(err, model.ErrNotFound) {
						t.Errorf("Lookup(%s=%s) = %q, %v; want ErrNotFound", l.index, l.value, e.Key, err)
					}
					continue
				}
				if err != nil {
					t.Errorf("Lookup(%s=%s): %v", l.index, l.value, err)
					continue
				}
				stored := get(t, s, kind, l.want)
				if diff := cmp.Diff(e, stored); diff != "" {
					t.Errorf("Lookup(%s=%s) (-got +want):\n%s", l.index, l.value, diff)
				}
			}
		})
	}
}

// recv returns the next event, failing if the channel closes or nothing
// comes within wait.
func recv(t *testing.T, ch <-chan store.Event) store.Event {
	t.Helper()
	select {
	case ev, ok := <-ch:
		if !ok {
			t.Fatal("watch channel closed")
		}
		return ev
	case <-time.After(wait):
		t.Fatal("no event")
	}
	return store.Event{}
}

// writeScript performs a mix of writes over two kinds and returns the
// events they must produce, in order.
func writeScript(t *testing.T, s store.Store) []store.Event {
	t.Helper()
	ctx := context.Background()
	var evs []store.Event
	p := func(kind, key, val string, want int64, typ store.EventType) {
		rev := put(t, s, kind, key, val, want, nil)
		evs = append(evs, store.Event{Type: typ, Kind: kind, Key: key, Value: []byte(val), Revision: rev})
	}
	p("a", "k1", `1`, store.MustNotExist, store.Created)
	p("b", "k1", `10`, store.MustNotExist, store.Created)
	p("a", "k1", `2`, store.AnyRevision, store.Updated)
	p("a", "k2", `5`, store.AnyRevision, store.Created)
	if _, err := s.Put(ctx, "a", "k1", []byte(`x`), store.MustNotExist, nil); !errors.Is(err, model.ErrExists) {
		t.Fatalf("failed create: %v", err) // and no event for it
	}
	if err := s.Delete(ctx, "a", "k1", store.AnyRevision); err != nil {
		t.Fatal(err)
	}
	evs = append(evs, store.Event{Type: store.Deleted, Kind: "a", Key: "k1", Value: []byte(`2`)})
	p("b", "k1", `11`, store.AnyRevision, store.Updated)
	p("a", "k1", `3`, store.MustNotExist, store.Created)
	return evs
}

func checkEvents(t *testing.T, ch <-chan store.Event, want []store.Event) {
	t.Helper()
	var got []store.Event
	for range want {
		got = append(got, recv(t, ch))
	}
	for i := range got {
		if i > 0 && got[i].Revision <= got[i-1].Revision {
			t.Errorf("event %d: revision %d after %d", i, got[i].Revision, got[i-1].Revision)
		}
		if want[i].Type == store.Deleted {
			want[i].Revision = got[i].Revision // not returned by Delete; order is checked above
		}
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("events (-got +want):\n%s", diff)
	}
}

func testWatchKind(t *testing.T, newStore func(*testing.T) store.Store, _ Options) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	put(t, s, "a", "before", `0`, store.MustNotExist, nil) // not delivered: before Watch
	ch, err := s.Watch(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	var want []store.Event
	for _, ev := range writeScript(t, s) {
		if ev.Kind == "a" {
			want = append(want, ev)
		}
	}
	checkEvents(t, ch, want)
	// Nothing for kind b is queued: the next event is the next write to a.
	rev := put(t, s, "a", "last", `9`, store.MustNotExist, nil)
	if ev := recv(t, ch); ev.Key != "last" || ev.Revision != rev {
		t.Errorf("next event %+v, want a/last at %d", ev, rev)
	}
}

func testWatchAll(t *testing.T, newStore func(*testing.T) store.Store, _ Options) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	ch, err := s.Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	checkEvents(t, ch, writeScript(t, s))
}

func testWatchCancel(t *testing.T, newStore func(*testing.T) store.Store, _ Options) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	ch, err := s.Watch(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	other, err := s.Watch(context.Background(), "a")
	if err != nil {
		t.Fatal(err)
	}
	cancel()
	deadline := time.After(wait)
	for open := true; open; {
		select {
		case _, open = <-ch:
		case <-deadline:
			t.Fatal("channel not closed after ctx ended")
		}
	}
	// Other watchers go on.
	rev := put(t, s, "a", "k", `1`, store.MustNotExist, nil)
	if ev := recv(t, other); ev.Revision != rev {
		t.Errorf("other watcher got %+v, want revision %d", ev, rev)
	}
}

func testConcurrentCAS(t *testing.T, newStore func(*testing.T) store.Store, _ Options) {
	const (
		writers    = 8
		increments = 50
		maxTries   = 100_000 // per writer: bounds the loop if CAS never succeeds
	)
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	put(t, s, "counters", "c", `{"n":0}`, store.MustNotExist, nil)
	ch, err := s.Watch(ctx, "counters")
	if err != nil {
		t.Fatal(err)
	}
	// Collect the watch events concurrently so that the buffer never fills.
	var events []store.Event
	collected := make(chan struct{})
	go func() {
		defer close(collected)
		for len(events) < writers*increments {
			select {
			case ev, ok := <-ch:
				if !ok {
					return
				}
				events = append(events, ev)
			case <-time.After(wait):
				return
			}
		}
	}()
	type counter struct{ N int }
	var g errgroup.Group
	var mu sync.Mutex
	revs := map[int64]bool{}
	for w := range writers {
		g.Go(func() error {
			tries := 0
			for range increments {
				for {
					if tries++; tries > maxTries {
						return fmt.Errorf("writer %d: gave up after %d tries", w, maxTries)
					}
					e, err := s.Get(ctx, "counters", "c")
					if err != nil {
						return err
					}
					var c counter
					if err := json.Unmarshal(e.Value, &c); err != nil {
						return err
					}
					c.N++
					b, _ := json.Marshal(c)
					rev, err := s.Put(ctx, "counters", "c", b, e.Revision, nil)
					if errors.Is(err, model.ErrConflict) {
						continue
					}
					if err != nil {
						return err
					}
					mu.Lock()
					if revs[rev] {
						err = fmt.Errorf("revision %d returned twice", rev)
					}
					revs[rev] = true
					mu.Unlock()
					if err != nil {
						return err
					}
					break
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		t.Fatal(err)
	}
	var c counter
	if err := json.Unmarshal(get(t, s, "counters", "c").Value, &c); err != nil {
		t.Fatal(err)
	}
	if c.N != writers*increments {
		t.Errorf("counter = %d, want %d (lost updates)", c.N, writers*increments)
	}
	<-collected
	if len(events) != writers*increments {
		t.Fatalf("got %d events, want %d", len(events), writers*increments)
	}
	for i, ev := range events {
		var c counter
		if err := json.Unmarshal(ev.Value, &c); err != nil {
			t.Fatal(err)
		}
		if c.N != i+1 || !revs[ev.Revision] {
			t.Fatalf("event %d: counter %d at revision %d; want counter %d at an acknowledged revision", i, c.N, ev.Revision, i+1)
		}
	}
}

func testConcurrentCreate(t *testing.T, newStore func(*testing.T) store.Store, _ Options) {
	const n = 16
	s := newStore(t)
	ctx := context.Background()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			_, errs[i] = s.Put(ctx, "things", "k", []byte(fmt.Sprintf(`%d`, i)), store.MustNotExist, nil)
		})
	}
	wg.Wait()
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Errorf("creates %d and %d both succeeded", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, model.ErrExists):
			t.Errorf("create %d: %v, want ErrExists", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no create succeeded")
	}
	if got, want := string(get(t, s, "things", "k").Value), fmt.Sprint(winner); got != want {
		t.Errorf("stored %s, want the winner's %s", got, want)
	}
	if got := count(t, s, "things"); got != 1 {
		t.Errorf("Count = %d, want 1", got)
	}
}

func testConcurrentIndex(t *testing.T, newStore func(*testing.T) store.Store, _ Options) {
	const n = 16
	s := newStore(t)
	ctx := context.Background()
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			key := fmt.Sprintf("m%02d", i)
			idx := map[string][]string{"mac": {"52:54:00:00:00:01", key}}
			_, errs[i] = s.Put(ctx, "machines", key, []byte(`{}`), store.MustNotExist, idx)
		})
	}
	wg.Wait()
	winner := ""
	for i, err := range errs {
		var ce *model.ConflictError
		switch {
		case err == nil && winner != "":
			t.Errorf("m%02d and %s both claimed the MAC", i, winner)
		case err == nil:
			winner = fmt.Sprintf("m%02d", i)
		case !errors.As(err, &ce):
			t.Errorf("create m%02d: %v, want a *model.ConflictError", i, err)
		}
	}
	if winner == "" {
		t.Fatal("no create succeeded")
	}
	e, err := s.Lookup(ctx, "machines", "mac", "52:54:00:00:00:01")
	if err != nil || e.Key != winner {
		t.Errorf("Lookup = %q, %v; want %s", e.Key, err, winner)
	}
	if diff := cmp.Diff(keys(t, s, "machines"), []string{winner}); diff != "" {
		t.Errorf("keys (-got +want):\n%s", diff)
	}
}

func testBackup(t *testing.T, newStore func(*testing.T) store.Store, opts Options) {
	s := newStore(t)
	ctx := context.Background()
	want := map[string]store.Entry{}
	var last int64
	for i := range 20 {
		k := fmt.Sprintf("m%02d", i)
		last = put(t, s, "machines", k, fmt.Sprintf(`{"i":%d}`, i), store.MustNotExist, map[string][]string{"mac": {"mac-" + k}})
		want[k] = get(t, s, "machines", k)
	}
	if err := s.Delete(ctx, "machines", "m00", store.AnyRevision); err != nil {
		t.Fatal(err)
	}
	delete(want, "m00")
	var buf bytes.Buffer
	n, err := s.Backup(ctx, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || n == 0 {
		t.Fatalf("Backup reported %d bytes, wrote %d", n, buf.Len())
	}
	// Writes after the backup are not in it.
	put(t, s, "machines", "after", `{}`, store.MustNotExist, nil)
	if opts.Reopen == nil {
		t.Skip("no Reopen hook: restored contents not checked")
	}
	r := opts.Reopen(t, buf.Bytes())
	got := map[string]store.Entry{}
	if err := r.List(ctx, "machines", func(e store.Entry) error {
		got[e.Key] = e
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("restored entries (-got +want):\n%s", diff)
	}
	if n, err := r.Count(ctx, "machines"); err != nil || n != len(want) {
		t.Errorf("restored Count = %d, %v; want %d", n, err, len(want))
	}
	if e, err := r.Lookup(ctx, "machines", "mac", "mac-m05"); err != nil || e.Key != "m05" {
		t.Errorf("restored Lookup = %q, %v; want m05", e.Key, err)
	}
	if _, err := r.Lookup(ctx, "machines", "mac", "mac-m00"); !errors.Is(err, model.ErrNotFound) {
		t.Errorf("restored Lookup of a deleted key's value: %v, want ErrNotFound", err)
	}
	// The revision counter came along: new writes continue above it.
	rev, err := r.Put(ctx, "machines", "new", []byte(`{}`), store.MustNotExist, nil)
	if err != nil || rev <= last {
		t.Errorf("Put on the restored store = %d, %v; want a revision above %d", rev, err, last)
	}
}

// calls lists one call of each method, for the cancelled and closed tests.
func calls(s store.Store) []struct {
	name string
	call func(ctx context.Context) error
} {
	return []struct {
		name string
		call func(ctx context.Context) error
	}{
		{"Get", func(ctx context.Context) error { _, err := s.Get(ctx, "things", "k"); return err }},
		{"List", func(ctx context.Context) error {
			return s.List(ctx, "things", func(store.Entry) error { return nil })
		}},
		{"Count", func(ctx context.Context) error { _, err := s.Count(ctx, "things"); return err }},
		{"Lookup", func(ctx context.Context) error { _, err := s.Lookup(ctx, "things", "mac", "01"); return err }},
		{"Put", func(ctx context.Context) error {
			_, err := s.Put(ctx, "things", "new", []byte(`1`), store.MustNotExist, nil)
			return err
		}},
		{"Update", func(ctx context.Context) error {
			_, err := s.Put(ctx, "things", "k", []byte(`2`), store.AnyRevision, nil)
			return err
		}},
		{"Delete", func(ctx context.Context) error { return s.Delete(ctx, "things", "k", store.AnyRevision) }},
		{"Watch", func(ctx context.Context) error { _, err := s.Watch(ctx, "things"); return err }},
		{"Backup", func(ctx context.Context) error { _, err := s.Backup(ctx, &bytes.Buffer{}); return err }},
	}
}

func testCancelled(t *testing.T, newStore func(*testing.T) store.Store, _ Options) {
	s := newStore(t)
	put(t, s, "things", "k", `1`, store.MustNotExist, map[string][]string{"mac": {"01"}})
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	for _, tt := range calls(s) {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(ctx); !errors.Is(err, context.Canceled) {
				t.Errorf("%s with a cancelled ctx: %v, want context.Canceled", tt.name, err)
			}
		})
	}
	// Nothing was written.
	e := get(t, s, "things", "k")
	if string(e.Value) != `1` {
		t.Errorf("k = %s after cancelled writes", e.Value)
	}
	if got := count(t, s, "things"); got != 1 {
		t.Errorf("Count = %d after cancelled writes, want 1", got)
	}
}

func testClose(t *testing.T, newStore func(*testing.T) store.Store, _ Options) {
	s := newStore(t)
	put(t, s, "things", "k", `1`, store.MustNotExist, nil)
	ch, err := s.Watch(context.Background(), "")
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	select {
	case _, ok := <-ch:
		if ok {
			t.Error("watch delivered an event after Close")
		}
	case <-time.After(wait):
		t.Error("watch channel not closed by Close")
	}
	for _, tt := range calls(s) {
		t.Run(tt.name, func(t *testing.T) {
			if err := tt.call(context.Background()); err == nil {
				t.Errorf("%s after Close succeeded", tt.name)
			}
		})
	}
}

// testPutBatch: each op of a batch is checked on its own (the failed ones
// are skipped, the others written), ops apply in order (a later op sees
// an earlier one's write and index values), and every write is one event
// in op order.
func testPutBatch(t *testing.T, newStore func(*testing.T) store.Store, _ Options) {
	s := newStore(t)
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	const kind = "things"
	rev := put(t, s, kind, "old", `0`, store.MustNotExist, nil)
	ch, err := s.Watch(ctx, kind)
	if err != nil {
		t.Fatal(err)
	}
	mac := map[string][]string{"mac": {"m1"}}
	ops := []store.PutOp{
		{Kind: kind, Key: "a", Value: []byte(`1`), Want: store.MustNotExist, Indexes: mac},
		{Kind: kind, Key: "old", Value: []byte(`x`), Want: store.MustNotExist},            // exists
		{Kind: kind, Key: "old", Value: []byte(`x`), Want: rev + 100},                     // wrong revision
		{Kind: kind, Key: "", Value: []byte(`x`), Want: store.AnyRevision},                // invalid key
		{Kind: kind, Key: "b", Value: []byte(`2`), Want: store.AnyRevision, Indexes: mac}, // m1 is a's now
		{Kind: kind, Key: "a", Value: []byte(`3`), Want: store.AnyRevision, Indexes: mac}, // a's second write
		{Kind: kind, Key: "old", Value: []byte(`4`), Want: rev},
	}
	errs := s.PutBatch(ctx, ops)
	if len(errs) != len(ops) {
		t.Fatalf("PutBatch returned %d errors for %d ops", len(errs), len(ops))
	}
	for i, want := range []error{nil, model.ErrExists, model.ErrConflict, nil, errConflictError, nil, nil} {
		if i == 3 {
			if model.ValidationErrors(errs[i]) == nil {
				t.Errorf("op 3 (empty key): %v, want a *model.ValidationError", errs[i])
			}
			continue
		}
		checkErr(t, fmt.Sprintf("op %d (%s)", i, ops[i].Key), errs[i], want)
	}
	if e := get(t, s, kind, "a"); string(e.Value) != `3` {
		t.Errorf("a = %s, want the batch's last write 3", e.Value)
	}
	if e := get(t, s, kind, "old"); string(e.Value) != `4` || e.Revision <= rev {
		t.Errorf("old = %s at %d, want 4 after revision %d", e.Value, e.Revision, rev)
	}
	if _, err := s.Get(ctx, kind, "b"); !errors.Is(err, model.ErrNotFound) {
		t.Errorf("b, whose index value was taken: %v, want not found", err)
	}
	if e, err := s.Lookup(ctx, kind, "mac", "m1"); err != nil || e.Key != "a" {
		t.Errorf("Lookup(mac m1) = %q, %v; want a", e.Key, err)
	}
	if n := count(t, s, kind); n != 2 {
		t.Errorf("count %d, want 2 (old, a)", n)
	}
	var got []string
	for range 3 {
		ev := recv(t, ch)
		got = append(got, fmt.Sprintf("%s %s=%s", ev.Type, ev.Key, ev.Value))
	}
	if diff := cmp.Diff(got, []string{"created a=1", "updated a=3", "updated old=4"}); diff != "" {
		t.Errorf("events (-got +want):\n%s", diff)
	}
	// A batch of only failing ops writes nothing and raises no event.
	if errs := s.PutBatch(ctx, ops[1:2]); !errors.Is(errs[0], model.ErrExists) {
		t.Errorf("lone failing op: %v, want ErrExists", errs[0])
	}
	if errs := s.PutBatch(ctx, nil); len(errs) != 0 {
		t.Errorf("empty batch: %d errors", len(errs))
	}
}
