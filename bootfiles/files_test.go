package bootfiles

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/test/testenv"
)

func TestPutFileListDelete(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root)
	ctx := context.Background()
	files := map[string]string{
		"linuxkit/demo-kernel":     payload(1, 5000),
		"linuxkit/demo-initrd.img": payload(2, 3000),
		"discovery/amd64/vmlinuz":  "kernel",
	}
	for p, c := range files {
		res, err := s.PutFile(ctx, "/"+p, strings.NewReader(c))
		if err != nil {
			t.Fatalf("put %s: %v", p, err)
		}
		if want := (Result{Path: p, Size: int64(len(c)), Sha256: sumOf([]byte(c))}); !cmp.Equal(*res, want) {
			t.Errorf("put %s: %+v, want %+v", p, *res, want)
		}
	}
	// Replacing keeps one whole file.
	if _, err := s.PutFile(ctx, "discovery/amd64/vmlinuz", strings.NewReader("kernel 2")); err != nil {
		t.Fatal(err)
	}
	files["discovery/amd64/vmlinuz"] = "kernel 2"
	if diff := cmp.Diff(tree(t, root), files); diff != "" {
		t.Errorf("root (-got +want):\n%s", diff)
	}
	// A leftover temporary file is never listed.
	if err := os.WriteFile(filepath.Join(root, "linuxkit", tempPrefix+"upload-x"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}

	list, err := s.List(ctx, "linuxkit", true)
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Path: "linuxkit/demo-initrd.img", Size: 3000, Sha256: sumOf([]byte(files["linuxkit/demo-initrd.img"]))},
		{Path: "linuxkit/demo-kernel", Size: 5000, Sha256: sumOf([]byte(files["linuxkit/demo-kernel"]))},
	}
	if diff := cmp.Diff(list, want, cmpopts.IgnoreFields(Entry{}, "ModTime")); diff != "" {
		t.Errorf("list linuxkit (-got +want):\n%s", diff)
	}
	all, err := s.List(ctx, "", false)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != 3 || all[0].Path != "discovery/amd64/vmlinuz" || all[0].Sha256 != "" {
		t.Errorf("list all: %+v", all)
	}
	if one, err := s.List(ctx, "discovery/amd64/vmlinuz", false); err != nil || len(one) != 1 {
		t.Errorf("list of one file: %+v, %v", one, err)
	}
	if none, err := s.List(ctx, "nothing/here", false); err != nil || len(none) != 0 {
		t.Errorf("list of a missing prefix: %+v, %v", none, err)
	}

	if err := s.Delete(ctx, "linuxkit/demo-kernel"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "discovery"); err != nil {
		t.Fatal(err)
	}
	if err := s.Delete(ctx, "discovery"); !errors.Is(err, model.ErrNotFound) {
		t.Errorf("second delete: %v, want not found", err)
	}
	if err := s.Delete(ctx, "linuxkit/demo-kernel/x"); !errors.Is(err, model.ErrNotFound) {
		t.Errorf("delete below a file: %v, want not found", err)
	}
	got := tree(t, root)
	delete(got, "linuxkit/"+tempPrefix+"upload-x")
	if diff := cmp.Diff(got, map[string]string{"linuxkit/demo-initrd.img": files["linuxkit/demo-initrd.img"]}); diff != "" {
		t.Errorf("after deletes (-got +want):\n%s", diff)
	}
}

func TestPutFileConflicts(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root)
	ctx := context.Background()
	if _, err := s.PutFile(ctx, "a/file", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"a", "a/file/below"} {
		if _, err := s.PutFile(ctx, p, strings.NewReader("y")); !errors.Is(err, model.ErrConflict) {
			t.Errorf("put %s: %v, want a conflict", p, err)
		}
	}
	if l := leftovers(t, root); len(l) != 0 {
		t.Errorf("temporary entries left: %q", l)
	}
}

// TestConfinement: hostile paths are refused before anything is written,
// and a symlink planted in the root does not lead writes out of it.
func TestConfinement(t *testing.T) {
	root := t.TempDir()
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret"), []byte("s"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(outside, filepath.Join(root, "escape")); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink("/etc/passwd", filepath.Join(root, "passwd")); err != nil {
		t.Fatal(err)
	}
	s := newStore(t, root)
	ctx := context.Background()
	for _, p := range []string{
		"../x", "a/../../x", "a/./b", "a//b", "", "/", ".hidden", "a/.ironcast-upload-x",
		"a\\b", "a\x00b", "a b", "a\nb", "a/b/", strings.Repeat("a/", MaxDepth+1) + "x",
		strings.Repeat("x", MaxNameLen+1),
	} {
		_, err := s.PutFile(ctx, p, strings.NewReader("x"))
		if ves := model.ValidationErrors(err); len(ves) != 1 || ves[0].Field != "path" {
			t.Errorf("put %q: %v, want a path validation error", p, err)
		}
		if err := s.Delete(ctx, p); len(model.ValidationErrors(err)) != 1 {
			t.Errorf("delete %q: %v, want a validation error", p, err)
		}
	}
	for _, p := range []string{"escape/x", "escape/sub/x"} {
		_, err := s.PutFile(ctx, p, strings.NewReader("x"))
		if ves := model.ValidationErrors(err); len(ves) != 1 || !strings.Contains(ves[0].Message, "out of the boot root") {
			t.Errorf("put %q through a symlink out of the root: %v, want a validation error", p, err)
		}
	}
	// A file put where a symlink is replaces the link, never its target.
	before, err := os.ReadFile("/etc/passwd")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s.PutFile(ctx, "passwd", strings.NewReader("x")); err != nil {
		t.Fatal(err)
	}
	if after, _ := os.ReadFile("/etc/passwd"); string(after) != string(before) {
		t.Fatal("/etc/passwd changed")
	}
	if fi, err := os.Lstat(filepath.Join(root, "passwd")); err != nil || !fi.Mode().IsRegular() {
		t.Errorf("passwd in the root: %v, %v; want the link replaced by a file", fi, err)
	}
	if err := s.Delete(ctx, "escape/x"); len(model.ValidationErrors(err)) != 1 {
		t.Errorf("delete through a symlink out of the root: %v, want a validation error", err)
	}
	if list, err := s.List(ctx, "escape", true); len(list) != 0 {
		t.Errorf("list through a symlink out of the root: %+v, %v", list, err)
	}
	if got := tree(t, outside); len(got) != 1 {
		t.Errorf("files written outside the root: %v", keys(got))
	}
	if _, err := s.PutISO(ctx, "x.iso", strings.NewReader(""), Expect{Dirs: []string{"escape/amd64"}}); err == nil {
		t.Error("PutISO extracting through a symlink out of the root succeeded")
	}
	if got := tree(t, outside); len(got) != 1 {
		t.Errorf("files written outside the root: %v", keys(got))
	}
}

// TestConcurrentPuts: parallel uploads of one path leave one of them,
// whole; run with -race.
func TestConcurrentPuts(t *testing.T) {
	root := t.TempDir()
	s := newStore(t, root)
	const n = 8
	contents := map[string]bool{}
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		c := fmt.Sprintf("%d:%s", i, payload(uint64(i), 200_000))
		contents[c] = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, err := s.PutFile(context.Background(), "linuxkit/k", strings.NewReader(c))
			errs <- err
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		if err != nil {
			t.Fatal(err)
		}
	}
	b, err := os.ReadFile(filepath.Join(root, "linuxkit/k"))
	if err != nil {
		t.Fatal(err)
	}
	if !contents[string(b)] {
		t.Errorf("file holds %d bytes that are none of the uploads", len(b))
	}
	if l := leftovers(t, root); len(l) != 0 {
		t.Errorf("temporary entries left: %q", l)
	}
}

func TestNewSweepsLeftovers(t *testing.T) {
	root := t.TempDir()
	for _, p := range []string{
		"isos/" + tempPrefix + "upload-1",
		"ubuntu-24.04-install/" + tempPrefix + "new-amd64-2/casper/vmlinuz",
		"ubuntu-24.04-install/" + tempPrefix + "old-3/casper/vmlinuz",
		"ubuntu-24.04-install/amd64/casper/vmlinuz",
	} {
		full := filepath.Join(root, p)
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, []byte("x"), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	newStore(t, root)
	if diff := cmp.Diff(tree(t, root), map[string]string{"ubuntu-24.04-install/amd64/casper/vmlinuz": "x"}); diff != "" {
		t.Errorf("after New (-got +want):\n%s", diff)
	}
}

// TestDiskFull fills a small tmpfs: the upload fails with ErrNoSpace and
// leaves nothing behind.
func TestDiskFull(t *testing.T) {
	testenv.RequireRoot(t)
	root := t.TempDir()
	if err := syscall.Mount("tmpfs", root, "tmpfs", 0, "size=1m"); err != nil {
		t.Skipf("mount tmpfs: %v", err)
	}
	t.Cleanup(func() { _ = syscall.Unmount(root, syscall.MNT_DETACH) })
	s := newStore(t, root)
	ctx := context.Background()
	_, err := s.PutFile(ctx, "linuxkit/big", strings.NewReader(payload(5, 2<<20)))
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("put 2 MiB into 1 MiB: %v, want ErrNoSpace", err)
	}
	isoPath := buildISO(t, ubuntuLike(6)) // about 4.5 MiB
	_, err = s.PutISO(ctx, isoName, openISO(t, isoPath), Expect{})
	if !errors.Is(err, ErrNoSpace) {
		t.Fatalf("put a 4 MiB ISO into 1 MiB: %v, want ErrNoSpace", err)
	}
	if got := tree(t, root); len(got) != 0 {
		t.Errorf("files left after a full disk: %v", keys(got))
	}
	if _, err := s.PutFile(ctx, "linuxkit/small", strings.NewReader("fits")); err != nil {
		t.Errorf("small file after the failures: %v", err)
	}
}
