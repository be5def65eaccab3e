package bolt_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"go.etcd.io/bbolt"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
	"github.com/ironcast/ironcast/store/bolt"
	"github.com/ironcast/ironcast/store/storetest"
)

func open(t *testing.T, path string, opts *bolt.Options) *bolt.Store {
	t.Helper()
	s, err := bolt.Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
	})
	return s
}

func TestConformance(t *testing.T) {
	newStore := func(t *testing.T) store.Store {
		return open(t, filepath.Join(t.TempDir(), "ironcast.db"), nil)
	}
	storetest.RunWithOptions(t, newStore, storetest.Options{
		Reopen: func(t *testing.T, backup []byte) store.Store {
			path := filepath.Join(t.TempDir(), "restored.db")
			if err := bolt.Restore(bytes.NewReader(backup), path); err != nil {
				t.Fatal(err)
			}
			return open(t, path, nil)
		},
	})
}

func TestReopenKeepsDataAndRevision(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "ironcast.db")
	s, err := bolt.Open(path, nil)
	if err != nil {
		t.Fatal(err)
	}
	var last int64
	for i := range 5 {
		k := fmt.Sprintf("k%d", i)
		if last, err = s.Put(ctx, "machines", k, []byte(`{}`), store.MustNotExist, map[string][]string{"mac": {k}}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Delete(ctx, "machines", "k0", store.AnyRevision); err != nil {
		t.Fatal(err)
	}
	last++ // the delete's revision
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}

	r := open(t, path, nil)
	if rev, err := r.Revision(ctx); err != nil || rev != last {
		t.Errorf("Revision after reopen = %d, %v; want %d", rev, err, last)
	}
	if n, err := r.Count(ctx, "machines"); err != nil || n != 4 {
		t.Errorf("Count after reopen = %d, %v; want 4", n, err)
	}
	if e, err := r.Lookup(ctx, "machines", "mac", "k3"); err != nil || e.Key != "k3" {
		t.Errorf("Lookup after reopen = %q, %v", e.Key, err)
	}
	rev, err := r.Put(ctx, "other", "x", []byte(`1`), store.MustNotExist, nil)
	if err != nil || rev != last+1 {
		t.Errorf("Put after reopen = %d, %v; want revision %d", rev, err, last+1)
	}
	// Watchers of the reopened store see revisions continue from the file.
	ch, err := r.Watch(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	rev, err = r.Put(ctx, "other", "y", []byte(`1`), store.MustNotExist, nil)
	if err != nil {
		t.Fatal(err)
	}
	if ev := <-ch; ev.Revision != rev || ev.Key != "y" {
		t.Errorf("event %+v, want y at %d", ev, rev)
	}
}

// TestBadFiles checks that Open and Restore refuse files that are not an
// ironcast bbolt store, and say why.
func TestBadFiles(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "good.db")
	s, err := bolt.Open(good, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.Put(context.Background(), "machines", "k", []byte(`{}`), store.MustNotExist, nil); err != nil {
		t.Fatal(err)
	}
	var snap bytes.Buffer
	if _, err := s.Backup(context.Background(), &snap); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	foreign := filepath.Join(dir, "foreign.db")
	db, err := bbolt.Open(foreign, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.Update(func(tx *bbolt.Tx) error {
		_, err := tx.CreateBucket([]byte("someone-elses"))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	foreignBytes, err := os.ReadFile(foreign)
	if err != nil {
		t.Fatal(err)
	}
	// Flip bytes in the middle of both meta pages: the checksums fail.
	corrupt := bytes.Clone(snap.Bytes())
	pageSize := os.Getpagesize()
	for _, off := range []int{64, pageSize + 64} {
		for i := range 16 {
			corrupt[off+i] ^= 0xff
		}
	}
	// Keep both meta pages but overwrite every other page: the meta
	// checksums pass and the pages they point at are garbage.
	garbage := bytes.Clone(snap.Bytes())
	for i := 2 * pageSize; i < len(garbage); i++ {
		garbage[i] = 0xab
	}
	tests := []struct {
		name     string
		content  []byte
		wantOpen string // in Open's error; "" means Open makes a new store
		wantRest string // in Restore's error
	}{
		{name: "text file", content: bytes.Repeat([]byte("not a database\n"), 2000), wantOpen: "not a bolt database or corrupted", wantRest: "not a bolt database or corrupted"},
		{name: "short file", content: []byte("hello"), wantOpen: "not a bolt database or corrupted", wantRest: "not a bolt database or corrupted"},
		{name: "corrupted meta pages", content: corrupt, wantOpen: "not a bolt database or corrupted", wantRest: "not a bolt database or corrupted"},
		{name: "garbage data pages", content: garbage, wantOpen: "corrupted", wantRest: "corrupted"},
		{name: "truncated snapshot", content: snap.Bytes()[:len(snap.Bytes())/2], wantOpen: "truncated", wantRest: "truncated"},
		{name: "other application's bolt file", content: foreignBytes, wantOpen: "not an ironcast store", wantRest: "not an ironcast store"},
		{name: "empty file", content: nil, wantOpen: "", wantRest: "empty file"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, "bad.db")
			if err := os.WriteFile(path, tt.content, 0o600); err != nil {
				t.Fatal(err)
			}
			s, err := bolt.Open(path, nil)
			if tt.wantOpen != "" && (err == nil || !strings.Contains(err.Error(), tt.wantOpen)) {
				t.Errorf("Open: %v, want an error containing %q", err, tt.wantOpen)
			}
			if tt.wantOpen == "" && err != nil {
				t.Errorf("Open: %v", err)
			}
			if err == nil {
				_ = s.Close()
			}

			target := filepath.Join(dir, "target.db")
			if err := os.WriteFile(target, []byte("old"), 0o600); err != nil {
				t.Fatal(err)
			}
			err = bolt.Restore(bytes.NewReader(tt.content), target)
			if err == nil || !strings.Contains(err.Error(), tt.wantRest) {
				t.Errorf("Restore: %v, want an error containing %q", err, tt.wantRest)
			}
			if b, _ := os.ReadFile(target); string(b) != "old" {
				t.Errorf("failed Restore replaced the target")
			}
			entries, _ := os.ReadDir(dir)
			if len(entries) != 2 {
				t.Errorf("failed Restore left files behind: %v", entries)
			}
		})
	}
	t.Run("good snapshot", func(t *testing.T) {
		target := filepath.Join(t.TempDir(), "target.db")
		if err := bolt.Restore(bytes.NewReader(snap.Bytes()), target); err != nil {
			t.Fatal(err)
		}
		s := open(t, target, nil)
		if _, err := s.Get(context.Background(), "machines", "k"); err != nil {
			t.Error(err)
		}
	})
}

func TestOpenLocked(t *testing.T) {
	path := filepath.Join(t.TempDir(), "ironcast.db")
	open(t, path, nil)
	_, err := bolt.Open(path, &bolt.Options{Timeout: 50 * time.Millisecond})
	if err == nil || !strings.Contains(err.Error(), "locked by another process") {
		t.Errorf("second Open: %v, want a lock error", err)
	}
}

func TestInvalidArguments(t *testing.T) {
	s := open(t, filepath.Join(t.TempDir(), "ironcast.db"), nil)
	ctx := context.Background()
	tests := []struct {
		name string
		call func() error
	}{
		{"empty kind", func() error { _, err := s.Put(ctx, "", "k", nil, store.AnyRevision, nil); return err }},
		{"kind with colon", func() error { _, err := s.Get(ctx, "a:b", "k"); return err }},
		{"empty key", func() error { _, err := s.Put(ctx, "things", "", nil, store.AnyRevision, nil); return err }},
		{"huge key", func() error {
			_, err := s.Put(ctx, "things", strings.Repeat("k", bbolt.MaxKeySize+1), nil, store.AnyRevision, nil)
			return err
		}},
		{"bad revision", func() error { _, err := s.Put(ctx, "things", "k", nil, -2, nil); return err }},
		{"empty index name", func() error {
			_, err := s.Put(ctx, "things", "k", nil, store.AnyRevision, map[string][]string{"": {"v"}})
			return err
		}},
		{"delete with bad revision", func() error { return s.Delete(ctx, "things", "k", -5) }},
		{"lookup empty index", func() error { _, err := s.Lookup(ctx, "things", "", "v"); return err }},
		{"watch bad kind", func() error { _, err := s.Watch(ctx, "a:b"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var ve *model.ValidationError
			if err := tt.call(); !errors.As(err, &ve) {
				t.Errorf("got %v, want a *model.ValidationError", err)
			}
		})
	}
	if n, err := s.Count(ctx, "things"); err != nil || n != 0 {
		t.Errorf("Count = %d, %v after invalid writes", n, err)
	}
}

// TestSlowWatcherIsClosed checks the documented overflow rule: a watcher
// whose buffer is full is closed, and the others keep going.
func TestSlowWatcherIsClosed(t *testing.T) {
	const buffer = 4
	s := open(t, filepath.Join(t.TempDir(), "ironcast.db"), &bolt.Options{WatchBuffer: buffer, NoSync: true})
	ctx := context.Background()
	slow, err := s.Watch(ctx, "things")
	if err != nil {
		t.Fatal(err)
	}
	fast, err := s.Watch(ctx, "things")
	if err != nil {
		t.Fatal(err)
	}
	var got []int64
	var wg sync.WaitGroup
	wg.Go(func() {
		for ev := range fast {
			got = append(got, ev.Revision)
			if len(got) == 2*buffer {
				return
			}
		}
	})
	var want []int64
	for i := range 2 * buffer {
		rev, err := s.Put(ctx, "things", fmt.Sprint(i), []byte(`1`), store.MustNotExist, nil)
		if err != nil {
			t.Fatal(err)
		}
		want = append(want, rev)
	}
	wg.Wait()
	if diff := cmp.Diff(got, want); diff != "" {
		t.Errorf("fast watcher (-got +want):\n%s", diff)
	}
	var slowGot []int64
	for ev := range slow { // ends: the channel was closed
		slowGot = append(slowGot, ev.Revision)
	}
	if diff := cmp.Diff(slowGot, want[:buffer]); diff != "" {
		t.Errorf("slow watcher got before it was closed (-got +want):\n%s", diff)
	}
}

const crashEnv = "IRONCAST_BOLT_CRASH_CHILD"

// TestCrashChild is the child of TestCrashKeepsAcknowledgedWrites. It Puts
// from several goroutines and prints each key once its Put has returned.
// It stops by itself after a bounded number of writes or time.
func TestCrashChild(t *testing.T) {
	path := os.Getenv(crashEnv)
	if path == "" {
		t.Skip("only run as the crash test's child")
	}
	s, err := bolt.Open(path, nil)
	if err != nil {
		fmt.Println("open:", err)
		os.Exit(2)
	}
	ctx := context.Background()
	deadline := time.Now().Add(30 * time.Second)
	var mu sync.Mutex // one line per write(2)
	var wg sync.WaitGroup
	for w := range 8 {
		wg.Go(func() {
			for i := 0; i < 5000 && time.Now().Before(deadline); i++ {
				key := fmt.Sprintf("w%d-%05d", w, i)
				val := fmt.Sprintf(`{"w":%d,"i":%d,"pad":%q}`, w, i, strings.Repeat("x", 512))
				if _, err := s.Put(ctx, "machines", key, []byte(val), store.MustNotExist, map[string][]string{"mac": {"mac-" + key}}); err != nil {
					fmt.Println("put:", err)
					os.Exit(2)
				}
				mu.Lock()
				fmt.Fprintln(os.Stdout, "ack", key)
				mu.Unlock()
			}
		})
	}
	wg.Wait()
	os.Exit(0)
}

// TestCrashKeepsAcknowledgedWrites kills a writing child process with
// SIGKILL and checks that every write it had acknowledged survived and
// that the file passes bbolt's consistency check.
func TestCrashKeepsAcknowledgedWrites(t *testing.T) {
	if testing.Short() {
		t.Skip("re-executes the test binary")
	}
	const killAfter = 300 // acknowledged writes before SIGKILL
	path := filepath.Join(t.TempDir(), "crash.db")
	cmd := exec.Command(os.Args[0], "-test.run=^TestCrashChild$", "-test.v=false")
	cmd.Env = append(os.Environ(), crashEnv+"="+path)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	var acked []string
	killed := false
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		key, ok := strings.CutPrefix(line, "ack ")
		if !ok {
			continue // e.g. the test framework's own output
		}
		acked = append(acked, key)
		if len(acked) == killAfter && !killed {
			if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			killed = true
		}
	}
	err = cmd.Wait()
	if !killed {
		t.Fatalf("child ended after %d acks before it was killed: %v\n%s", len(acked), err, stderr.String())
	}
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("child was not killed by SIGKILL: %v", err)
	}
	t.Logf("child killed after %d acknowledged writes (%d read before the pipe closed)", killAfter, len(acked))

	// bbolt's own check on the file as the crash left it.
	db, err := bbolt.Open(path, 0o600, &bbolt.Options{ReadOnly: true, Timeout: time.Second})
	if err != nil {
		t.Fatalf("bbolt open after crash: %v", err)
	}
	if err := db.View(func(tx *bbolt.Tx) error {
		var errs []error
		for err := range tx.Check() {
			errs = append(errs, err)
		}
		return errors.Join(errs...)
	}); err != nil {
		t.Errorf("consistency check after crash: %v", err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}

	s := open(t, path, nil)
	ctx := context.Background()
	for _, key := range acked {
		e, err := s.Get(ctx, "machines", key)
		if err != nil {
			t.Errorf("acknowledged %s: %v", key, err)
			continue
		}
		if !bytes.Contains(e.Value, []byte(`"pad"`)) {
			t.Errorf("acknowledged %s: value %q", key, e.Value)
		}
		if l, err := s.Lookup(ctx, "machines", "mac", "mac-"+key); err != nil || l.Key != key {
			t.Errorf("acknowledged %s: lookup = %q, %v", key, l.Key, err)
		}
	}
	// The counters agree with the data and the revisions go on.
	n, err := s.Count(ctx, "machines")
	if err != nil {
		t.Fatal(err)
	}
	listed := 0
	var maxRev int64
	if err := s.List(ctx, "machines", func(e store.Entry) error {
		listed++
		maxRev = max(maxRev, e.Revision)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if n != listed || listed < len(acked) {
		t.Errorf("Count = %d, listed %d, acknowledged %d", n, listed, len(acked))
	}
	rev, err := s.Revision(ctx)
	if err != nil || rev != int64(listed) || rev != maxRev {
		t.Errorf("Revision = %d, %v; want %d (one per create) = highest stored %d", rev, err, listed, maxRev)
	}
	t.Logf("%d writes on disk after the crash, %s", listed, strconv.Itoa(len(acked))+" acknowledged")
}
