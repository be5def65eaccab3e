package bolt

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"go.etcd.io/bbolt"
	berrors "go.etcd.io/bbolt/errors"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
)

var _ store.Store = (*Store)(nil)

// ErrClosed is returned by every call on a Store after Close.
var ErrClosed = errors.New("store closed")

// formatVersion marks a bbolt file as an ironcast store.
const formatVersion = "ironcast-bolt/1"

// Bucket and key names; see the package documentation.
var (
	bucketMeta  = []byte("meta")
	keyFormat   = []byte("format")
	keyRevision = []byte("revision")
)

const (
	prefixData     = "d:"
	prefixReverse  = "r:"
	prefixIndex    = "i:"
	prefixCount    = "count:"
	revisionLen    = 8
	defaultTimeout = 5 * time.Second
	defaultBuffer  = 1024
	defaultDelay   = 2 * time.Millisecond
)

// Options configures Open. The zero value (or nil) gives the defaults.
type Options struct {
	// Logger receives open, close and dropped-watcher messages. Nil
	// discards them.
	Logger *slog.Logger
	// Timeout is how long Open waits for the file lock held by another
	// process before it fails. Zero means 5s; negative means do not wait.
	Timeout time.Duration
	// NoSync skips fsync on commit. A crash may then lose acknowledged
	// writes or corrupt the file: for benchmarks only.
	NoSync bool
	// WatchBuffer is the number of events a watcher may lag behind before
	// it is closed. Zero means 1024.
	WatchBuffer int
	// MaxBatchDelay is how long a write waits for others to share its
	// commit. Zero means 2ms: a lone write then takes about 2ms plus one
	// fsync, while many concurrent writers still share commits. bbolt's
	// own default, 10ms, measured ~12ms for a lone write (vs 3-5ms) and
	// no better throughput with 128 writers (see BenchmarkCreate).
	MaxBatchDelay time.Duration
}

// Store is a store.Store in one bbolt file. It is safe for concurrent use.
type Store struct {
	db     *bbolt.DB
	path   string
	log    *slog.Logger
	hub    *hub
	closed atomic.Bool
	once   sync.Once
}

// Open opens (creating if needed) the store at path. nil opts means
// defaults. The file is locked against other processes for as long as the
// Store is open. A file that is not a bbolt database, is corrupted or holds
// another application's buckets is refused with an error saying so.
func Open(path string, opts *Options) (*Store, error) {
	if opts == nil {
		opts = &Options{}
	}
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	timeout := opts.Timeout
	switch {
	case timeout == 0:
		timeout = defaultTimeout
	case timeout < 0:
		timeout = time.Nanosecond // bbolt: 0 would wait forever
	}
	if err := checkFile(path); err != nil {
		return nil, fmt.Errorf("open bolt store %s: %w", path, err)
	}
	var db *bbolt.DB
	err := guard(func() (err error) {
		db, err = bbolt.Open(path, 0o600, &bbolt.Options{Timeout: timeout, NoSync: opts.NoSync})
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("open bolt store %s: %w", path, openError(err))
	}
	db.MaxBatchDelay = defaultDelay
	if opts.MaxBatchDelay > 0 {
		db.MaxBatchDelay = opts.MaxBatchDelay
	}
	var rev int64
	if err := guard(func() error {
		return db.Update(func(tx *bbolt.Tx) error {
			var err error
			rev, err = initMeta(tx)
			return err
		})
	}); err != nil {
		_ = db.Close()
		return nil, fmt.Errorf("open bolt store %s: %w", path, err)
	}
	buf := opts.WatchBuffer
	if buf <= 0 {
		buf = defaultBuffer
	}
	s := &Store{db: db, path: path, log: log.With("store", path)}
	s.hub = newHub(rev, buf, s.log)
	s.log.Debug("store opened", "revision", rev)
	return s, nil
}

// guard turns a bbolt panic on a damaged page into an error. A panic in
// bbolt.Open leaks that open's file descriptor (and its lock): the caller
// is expected to report the damage and stop, not retry in a loop.
func guard(fn func() error) (err error) {
	defer func() {
		if p := recover(); p != nil {
			err = fmt.Errorf("not a bolt database or corrupted: %v", p)
		}
	}()
	return fn()
}

// openError explains the bbolt errors a bad file gives.
func openError(err error) error {
	switch {
	case errors.Is(err, berrors.ErrInvalid), errors.Is(err, berrors.ErrChecksum),
		errors.Is(err, berrors.ErrVersionMismatch), errors.Is(err, berrors.ErrInvalidMapping):
		return fmt.Errorf("not a bolt database or corrupted: %w", err)
	case errors.Is(err, berrors.ErrTimeout):
		return fmt.Errorf("file is locked by another process: %w", err)
	}
	return err
}

// initMeta creates the meta bucket in a new file, or checks it in an
// existing one, and returns the current revision.
func initMeta(tx *bbolt.Tx) (int64, error) {
	if err := checkMeta(tx); err == nil {
		return readRevision(tx.Bucket(bucketMeta)), nil
	} else if !errors.Is(err, errNoMeta) {
		return 0, err
	}
	// No meta: only an empty file may become a store.
	c := tx.Cursor()
	if k, _ := c.First(); k != nil {
		return 0, fmt.Errorf("not an ironcast store: has bucket %q but no %q", k, bucketMeta)
	}
	m, err := tx.CreateBucket(bucketMeta)
	if err != nil {
		return 0, fmt.Errorf("create meta bucket: %w", err)
	}
	if err := m.Put(keyFormat, []byte(formatVersion)); err != nil {
		return 0, fmt.Errorf("write format: %w", err)
	}
	if err := m.Put(keyRevision, make([]byte, 8)); err != nil {
		return 0, fmt.Errorf("write revision: %w", err)
	}
	return 0, nil
}

var errNoMeta = errors.New("no meta bucket")

// checkMeta verifies that tx holds an ironcast store of this format.
func checkMeta(tx *bbolt.Tx) error {
	m := tx.Bucket(bucketMeta)
	if m == nil {
		return errNoMeta
	}
	if f := m.Get(keyFormat); string(f) != formatVersion {
		return fmt.Errorf("not an ironcast store: format %q, want %q", f, formatVersion)
	}
	if r := m.Get(keyRevision); len(r) != 8 {
		return fmt.Errorf("not an ironcast store: revision record has %d bytes", len(r))
	}
	return nil
}

// Path returns the file the store was opened from.
func (s *Store) Path() string { return s.path }

// Revision returns the revision of the last committed write (0 for a new
// store).
func (s *Store) Revision(ctx context.Context) (int64, error) {
	var rev int64
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		rev = readRevision(tx.Bucket(bucketMeta))
		return nil
	})
	return rev, err
}

// Close closes every watcher and the file. Writes in flight finish first.
// Calls after Close return ErrClosed; a second Close returns nil.
func (s *Store) Close() error {
	var err error
	s.once.Do(func() {
		s.closed.Store(true)
		s.hub.closeAll()
		if cerr := s.db.Close(); cerr != nil {
			err = fmt.Errorf("close bolt store %s: %w", s.path, cerr)
		}
		s.log.Debug("store closed")
	})
	return err
}

// check fails fast when ctx has ended or the store is closed.
func (s *Store) check(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return ErrClosed
	}
	return nil
}

// view runs fn in a read transaction after check.
func (s *Store) view(ctx context.Context, fn func(*bbolt.Tx) error) error {
	if err := s.check(ctx); err != nil {
		return err
	}
	return translate(s.db.View(fn))
}

// translate maps bbolt's errors to ErrClosed; others pass unchanged.
func translate(err error) error {
	if errors.Is(err, berrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// Get implements store.Store.
func (s *Store) Get(ctx context.Context, kind, key string) (store.Entry, error) {
	if err := checkKind(kind); err != nil {
		return store.Entry{}, err
	}
	var e store.Entry
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		e, err = get(tx, kind, key)
		return err
	})
	return e, err
}

func get(tx *bbolt.Tx, kind, key string) (store.Entry, error) {
	b := tx.Bucket(dataBucket(kind))
	if b == nil {
		return store.Entry{}, model.ErrNotFound
	}
	v := b.Get([]byte(key))
	if v == nil {
		return store.Entry{}, model.ErrNotFound
	}
	return decodeEntry(key, v)
}

// decodeEntry copies a stored record out of the mmap'ed page.
func decodeEntry(key string, rec []byte) (store.Entry, error) {
	if len(rec) < revisionLen {
		return store.Entry{}, fmt.Errorf("record %q: %d bytes, too short", key, len(rec))
	}
	return store.Entry{
		Key:      key,
		Value:    bytes.Clone(rec[revisionLen:]),
		Revision: int64(binary.BigEndian.Uint64(rec)),
	}, nil
}

// List implements store.Store. It checks ctx every 256 values.
func (s *Store) List(ctx context.Context, kind string, fn func(store.Entry) error) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	return s.view(ctx, func(tx *bbolt.Tx) error {
		b := tx.Bucket(dataBucket(kind))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		n := 0
		for k, v := c.First(); k != nil; k, v = c.Next() {
			if n++; n%256 == 0 {
				if err := ctx.Err(); err != nil {
					return err
				}
			}
			e, err := decodeEntry(string(k), v)
			if err != nil {
				return err
			}
			if err := fn(e); err != nil {
				return err
			}
		}
		return nil
	})
}

// Count implements store.Store from a counter kept with the data, so it
// does not walk the values.
func (s *Store) Count(ctx context.Context, kind string) (int, error) {
	if err := checkKind(kind); err != nil {
		return 0, err
	}
	var n int
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		n = int(readUint(tx.Bucket(bucketMeta).Get(countKey(kind))))
		return nil
	})
	return n, err
}

// Lookup implements store.Store with one index read and one data read.
func (s *Store) Lookup(ctx context.Context, kind, index, value string) (store.Entry, error) {
	if err := checkKind(kind); err != nil {
		return store.Entry{}, err
	}
	if err := checkIndex(index); err != nil {
		return store.Entry{}, err
	}
	var e store.Entry
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		ib := tx.Bucket(indexBucket(kind, index))
		if ib == nil || value == "" {
			return model.ErrNotFound
		}
		k := ib.Get([]byte(value))
		if k == nil {
			return model.ErrNotFound
		}
		var err error
		e, err = get(tx, kind, string(k))
		if errors.Is(err, model.ErrNotFound) {
			return fmt.Errorf("index %s %q points at missing key %q", index, value, k)
		}
		return err
	})
	return e, err
}

// Backup implements store.Store: it streams a consistent copy of the whole
// file, which Restore accepts, while other calls go on.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	var n int64
	err := s.view(ctx, func(tx *bbolt.Tx) error {
		var err error
		n, err = tx.WriteTo(ctxWriter{ctx, w})
		return err
	})
	if err != nil {
		return n, fmt.Errorf("backup %s: %w", s.path, err)
	}
	return n, nil
}

// ctxWriter stops a long copy when ctx ends.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

func dataBucket(kind string) []byte    { return []byte(prefixData + kind) }
func reverseBucket(kind string) []byte { return []byte(prefixReverse + kind) }
func indexBucket(kind, index string) []byte {
	return []byte(prefixIndex + kind + ":" + index)
}
func countKey(kind string) []byte { return []byte(prefixCount + kind) }

func readRevision(meta *bbolt.Bucket) int64 { return int64(readUint(meta.Get(keyRevision))) }

func readUint(b []byte) uint64 {
	if len(b) != 8 {
		return 0
	}
	return binary.BigEndian.Uint64(b)
}

func putUint(b *bbolt.Bucket, key []byte, v uint64) error {
	var buf [8]byte
	binary.BigEndian.PutUint64(buf[:], v)
	return b.Put(key, buf[:])
}

// checkKind refuses kinds that would make ambiguous bucket names.
func checkKind(kind string) error {
	if kind == "" || strings.Contains(kind, ":") || len(kind) > 200 {
		return model.Invalid("kind", "%q must be 1-200 bytes without ':'", kind)
	}
	return nil
}

func checkIndex(index string) error {
	if index == "" || len(index) > 200 {
		return model.Invalid("index", "%q must be 1-200 bytes", index)
	}
	return nil
}
