package bootfiles

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"os"
	"path"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ironcast/ironcast/model"
)

// ErrNoSpace means the boot root's filesystem (or the user's quota on it)
// is full. What the failed operation wrote has been removed.
var ErrNoSpace = errors.New("no space left in the boot root")

// Config configures a Store.
type Config struct {
	// Root is the boot root directory; it must exist.
	Root string
	// Logger receives a line per change and per removed leftover; nil
	// discards.
	Logger *slog.Logger
}

// Store changes the files of one boot root. It is safe for concurrent
// use: uploads stream in parallel, and the renames that publish them are
// serialised, so that the last upload of a path wins whole.
type Store struct {
	dir  string
	root *os.Root
	log  *slog.Logger
	mu   sync.Mutex // held while publishing (renames into place)

	// afterFile, when set (tests), is called after each extracted file.
	afterFile func(rel string)
}

// Entry is a regular file below the root.
type Entry struct {
	// Path is slash-separated and relative to the root.
	Path    string
	Size    int64
	ModTime time.Time
	// Sha256 is the hex checksum, when asked for.
	Sha256 string `json:",omitempty"`
}

// Result says what an upload stored.
type Result struct {
	// Path is where the upload is, relative to the root ("isos/x.iso").
	Path   string
	Size   int64
	Sha256 string
	// Extracted lists the trees an ISO was extracted into.
	Extracted []Tree `json:",omitempty"`
}

// Tree is one extraction of an ISO.
type Tree struct {
	// Dir is the tree's directory relative to the root ("ubuntu-24.04-install/amd64").
	Dir   string
	Files int
	Bytes int64
	// Skipped names entries that were not extracted (symlinks, names
	// that cannot be written), with why; at most maxSkipped of them.
	Skipped []string `json:",omitempty"`
}

// New opens the boot root and removes temporary entries that an
// interrupted process left there.
func New(cfg Config) (*Store, error) {
	if cfg.Root == "" {
		return nil, errors.New("bootfiles: Root is required")
	}
	r, err := os.OpenRoot(cfg.Root)
	if err != nil {
		return nil, fmt.Errorf("open boot root %s: %w", cfg.Root, err)
	}
	s := &Store{dir: cfg.Root, root: r, log: cfg.Logger}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if err := s.sweep(); err != nil {
		r.Close()
		return nil, err
	}
	return s, nil
}

// Close releases the root.
func (s *Store) Close() error { return s.root.Close() }

// sweep removes every temporary entry below the root.
func (s *Store) sweep() error {
	var stale []string
	err := fs.WalkDir(s.root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == "." {
				return err
			}
			return nil // unreadable corner: not ours to fix
		}
		if strings.HasPrefix(d.Name(), tempPrefix) {
			stale = append(stale, p)
			if d.IsDir() {
				return fs.SkipDir
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("scan boot root %s: %w", s.dir, err)
	}
	for _, p := range stale {
		if err := s.root.RemoveAll(p); err != nil {
			return fmt.Errorf("remove leftover %s: %w", p, err)
		}
		s.log.Info("removed leftover of an interrupted upload", "path", p)
	}
	return nil
}

// PutFile stores the contents of r at path (see CleanPath), replacing a
// file that is there. The file appears whole or not at all. Errors: a
// *model.ValidationError for a bad path, an error wrapping
// model.ErrConflict when path or a parent is the wrong type (a directory
// where a file goes or the reverse), ErrNoSpace, ctx's error, or r's.
func (s *Store) PutFile(ctx context.Context, p string, r io.Reader) (*Result, error) {
	clean, err := CleanPath(p)
	if err != nil {
		return nil, err
	}
	if fi, err := s.root.Lstat(clean); err == nil && fi.IsDir() {
		return nil, fmt.Errorf("%s is a directory: %w", clean, model.ErrConflict)
	}
	dir := path.Dir(clean)
	if err := s.mkdirAll(dir); err != nil {
		return nil, err
	}
	tmp, size, sum, err := s.receive(ctx, dir, r)
	if err != nil {
		return nil, err
	}
	s.mu.Lock()
	err = s.root.Rename(tmp, clean)
	if err == nil {
		err = s.syncDir(dir)
	}
	s.mu.Unlock()
	if err != nil {
		_ = s.root.Remove(tmp)
		return nil, fmt.Errorf("store %s: %w", clean, mapErr(err))
	}
	s.log.Info("boot file stored", "path", clean, "bytes", size, "sha256", sum)
	return &Result{Path: clean, Size: size, Sha256: sum}, nil
}

// mkdirAll makes dir and its parents below the root.
func (s *Store) mkdirAll(dir string) error {
	if dir == "." {
		return nil
	}
	if err := s.root.MkdirAll(dir, 0o755); err != nil {
		if errors.Is(err, syscall.ENOTDIR) || errors.Is(err, fs.ErrExist) {
			return fmt.Errorf("make directory %s: a parent is a file: %w", dir, model.ErrConflict)
		}
		return fmt.Errorf("make directory %s: %w", dir, mapErr(err))
	}
	return nil
}

// receive streams r into a new temporary file in dir, hashing it, and
// syncs it. It returns the temporary file's path; on error nothing is
// left.
func (s *Store) receive(ctx context.Context, dir string, r io.Reader) (_ string, size int64, sum string, err error) {
	tmp := path.Join(dir, tempPrefix+"upload-"+rand.Text())
	f, err := s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return "", 0, "", fmt.Errorf("create %s: %w", tmp, mapErr(err))
	}
	defer func() {
		if err != nil {
			f.Close()
			_ = s.root.Remove(tmp)
		}
	}()
	h := sha256.New()
	size, err = copyCtx(ctx, io.MultiWriter(f, h), r)
	if err != nil {
		return "", 0, "", err
	}
	if err = f.Sync(); err != nil {
		return "", 0, "", fmt.Errorf("sync %s: %w", tmp, mapErr(err))
	}
	if err = f.Close(); err != nil {
		return "", 0, "", fmt.Errorf("close %s: %w", tmp, mapErr(err))
	}
	return tmp, size, hex.EncodeToString(h.Sum(nil)), nil
}

// ReadError wraps an error of the reader an upload came from (for the API:
// the client went away or sent a broken body), as opposed to an error of
// the boot root.
type ReadError struct{ Err error }

func (e *ReadError) Error() string { return "read upload: " + e.Err.Error() }
func (e *ReadError) Unwrap() error { return e.Err }

// copyCtx copies r to w in 1 MiB chunks, checking ctx between chunks.
// Errors of r come back as *ReadError, of w mapped by mapErr.
func copyCtx(ctx context.Context, w io.Writer, r io.Reader) (int64, error) {
	buf := make([]byte, 1<<20)
	var n int64
	for {
		if err := ctx.Err(); err != nil {
			return n, err
		}
		k, rerr := r.Read(buf)
		if k > 0 {
			if _, err := w.Write(buf[:k]); err != nil {
				return n, fmt.Errorf("write: %w", mapErr(err))
			}
			n += int64(k)
		}
		if rerr == io.EOF {
			return n, nil
		}
		if rerr != nil {
			return n, &ReadError{Err: rerr}
		}
	}
}

// mapErr makes a full disk or quota ErrNoSpace, and a path that os.Root
// refuses (a symlink leading out of the root) a *model.ValidationError.
func mapErr(err error) error {
	if errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) {
		return fmt.Errorf("%w: %w", ErrNoSpace, err)
	}
	var pe *fs.PathError
	var errno syscall.Errno
	if errors.As(err, &pe) && !errors.As(pe.Err, &errno) {
		// os.Root's confinement errors are the only ones without an errno.
		return model.Invalid("path", "%s: %v (symlinks may not lead out of the boot root)", pe.Path, pe.Err)
	}
	return err
}

// syncDir fsyncs a directory below the root, making renames in it durable.
func (s *Store) syncDir(dir string) error {
	d, err := s.root.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}

// List returns the regular files at or below prefix ("" for the whole
// root), sorted by path, with their sha256 when sums is set. A prefix
// that does not exist gives an empty list. Temporary entries are hidden.
func (s *Store) List(ctx context.Context, prefix string, sums bool) ([]Entry, error) {
	start := "."
	if strings.Trim(prefix, "/") != "" {
		clean, err := cleanListPrefix(prefix)
		if err != nil {
			return nil, err
		}
		start = clean
	}
	out := []Entry{}
	err := fs.WalkDir(s.root.FS(), start, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			if p == start && errors.Is(err, fs.ErrNotExist) {
				return fs.SkipAll
			}
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
		if strings.HasPrefix(d.Name(), tempPrefix) {
			if d.IsDir() {
				return fs.SkipDir
			}
			return nil
		}
		if !d.Type().IsRegular() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil // removed while listing
		}
		e := Entry{Path: p, Size: fi.Size(), ModTime: fi.ModTime().UTC()}
		if sums {
			if e.Sha256, err = s.sum(ctx, p); err != nil {
				return err
			}
		}
		out = append(out, e)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", start, err)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Path < out[j].Path })
	return out, nil
}

// cleanListPrefix accepts what CleanPath accepts and, since listings
// reach into extracted trees, any component that imageName accepts.
func cleanListPrefix(p string) (string, error) {
	clean := strings.Trim(p, "/")
	parts := strings.Split(clean, "/")
	if len(clean) > MaxPathLen || len(parts) > MaxDepth {
		return "", model.Invalid("prefix", "prefix is too long")
	}
	for _, c := range parts {
		if !imageName(c) {
			return "", model.Invalid("prefix", "prefix %q: component %q is not allowed", p, c)
		}
	}
	return clean, nil
}

func (s *Store) sum(ctx context.Context, p string) (string, error) {
	f, err := s.root.Open(p)
	if err != nil {
		return "", err
	}
	defer f.Close()
	h := sha256.New()
	if _, err := copyCtx(ctx, h, f); err != nil {
		return "", fmt.Errorf("sha256 of %s: %w", p, err)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// Delete removes the file or the whole directory tree at p (see
// CleanPath). A tree disappears at once: it is renamed away first and
// removed after. It returns an error wrapping model.ErrNotFound when
// nothing is there, and refuses the root itself and the isos directory.
func (s *Store) Delete(ctx context.Context, p string) error {
	clean, err := CleanPath(p)
	if err != nil {
		return err
	}
	if clean == isoDir {
		return model.Invalid("path", "the isos directory itself cannot be deleted")
	}
	s.mu.Lock()
	fi, err := s.root.Lstat(clean)
	if err != nil {
		s.mu.Unlock()
		if errors.Is(err, fs.ErrNotExist) || errors.Is(err, syscall.ENOTDIR) {
			return fmt.Errorf("%s: %w", clean, model.ErrNotFound)
		}
		return fmt.Errorf("delete %s: %w", clean, mapErr(err))
	}
	dir := path.Dir(clean)
	if !fi.IsDir() {
		err = s.root.Remove(clean)
		if err == nil {
			err = s.syncDir(dir)
		}
		s.mu.Unlock()
		if err != nil {
			return fmt.Errorf("delete %s: %w", clean, err)
		}
		s.log.Info("boot file deleted", "path", clean)
		return nil
	}
	old := path.Join(dir, tempPrefix+"old-"+rand.Text())
	err = s.root.Rename(clean, old)
	if err == nil {
		err = s.syncDir(dir)
	}
	s.mu.Unlock()
	if err != nil {
		return fmt.Errorf("delete %s: %w", clean, err)
	}
	if err := s.root.RemoveAll(old); err != nil {
		return fmt.Errorf("delete %s: %w", clean, err)
	}
	s.log.Info("boot tree deleted", "path", clean)
	return nil
}
