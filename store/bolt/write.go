package bolt

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"

	"go.etcd.io/bbolt"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
)

// Put implements store.Store. It returns once the write is fsync'ed (see
// the package documentation). A Put with want > 0 on a missing key returns
// model.ErrConflict: the object changed (was deleted) since it was read.
// Empty index values are not indexed.
func (s *Store) Put(ctx context.Context, kind, key string, value []byte, want int64, indexes map[string][]string) (int64, error) {
	if err := checkPut(kind, key, value, want); err != nil {
		return 0, err
	}
	idx, err := normIndexes(indexes)
	if err != nil {
		return 0, err
	}
	if err := s.check(ctx); err != nil {
		return 0, err
	}
	val := bytes.Clone(value) // the caller may reuse value once we return
	var (
		rev   int64
		opErr error
	)
	err = s.db.Batch(func(tx *bbolt.Tx) error {
		// Batch may call this again on a new transaction: start afresh.
		var ev store.Event
		var err error
		ev, opErr, err = put(tx, kind, key, val, want, idx)
		if err != nil || opErr != nil {
			return err // a failed precondition wrote nothing: commit the others
		}
		rev = ev.Revision
		tx.OnCommit(func() { s.hub.publish(ev) })
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("put %s %q: %w", kind, key, translate(err))
	}
	if opErr != nil {
		return 0, opErr
	}
	return rev, nil
}

// PutBatch implements store.Store: one bbolt transaction, committed (and
// fsync'ed) once, without Batch's wait for other writers. Invalid ops and
// failed preconditions are skipped with their error.
func (s *Store) PutBatch(ctx context.Context, ops []store.PutOp) []error {
	errs := make([]error, len(ops))
	idxs := make([][]indexValue, len(ops))
	valid := 0
	for i, op := range ops {
		if errs[i] = checkPut(op.Kind, op.Key, op.Value, op.Want); errs[i] == nil {
			idxs[i], errs[i] = normIndexes(op.Indexes)
		}
		if errs[i] == nil {
			valid++
		}
	}
	if valid == 0 {
		return errs
	}
	if err := s.check(ctx); err != nil {
		for i := range errs {
			if errs[i] == nil {
				errs[i] = err
			}
		}
		return errs
	}
	opErrs := make([]error, len(ops))
	err := s.db.Update(func(tx *bbolt.Tx) error {
		evs := make([]store.Event, 0, valid)
		for i, op := range ops {
			if errs[i] != nil {
				continue
			}
			ev, opErr, err := put(tx, op.Kind, op.Key, op.Value, op.Want, idxs[i])
			if err != nil {
				return fmt.Errorf("put %s %q: %w", op.Kind, op.Key, err)
			}
			if opErrs[i] = opErr; opErr == nil {
				ev.Value = bytes.Clone(ev.Value) // the caller may reuse value once we return
				evs = append(evs, ev)
			}
		}
		tx.OnCommit(func() {
			for _, ev := range evs {
				s.hub.publish(ev)
			}
		})
		return nil
	})
	for i := range errs {
		switch {
		case errs[i] != nil:
		case err != nil:
			errs[i] = fmt.Errorf("put batch of %d: %w", valid, translate(err))
		default:
			errs[i] = opErrs[i]
		}
	}
	return errs
}

// checkPut checks a Put's arguments other than its indexes.
func checkPut(kind, key string, value []byte, want int64) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	if err := checkKey(key); err != nil {
		return err
	}
	if want < store.AnyRevision {
		return model.Invalid("revision", "%d is not a revision", want)
	}
	if len(value) > bbolt.MaxValueSize-revisionLen {
		return model.Invalid("value", "is %d bytes, more than %d", len(value), bbolt.MaxValueSize-revisionLen)
	}
	return nil
}

// put checks every precondition before it writes anything, so that a
// returned opErr leaves tx untouched. err is a bbolt failure.
func put(tx *bbolt.Tx, kind, key string, value []byte, want int64, idx []indexValue) (ev store.Event, opErr, err error) {
	k := []byte(key)
	var cur []byte
	if b := tx.Bucket(dataBucket(kind)); b != nil {
		cur = b.Get(k)
	}
	var curRev int64
	if cur != nil {
		curRev = int64(binary.BigEndian.Uint64(cur))
	}
	switch {
	case want == store.MustNotExist && cur != nil:
		return ev, fmt.Errorf("%s %q: %w", kind, key, model.ErrExists), nil
	case want > 0 && cur == nil:
		return ev, fmt.Errorf("%s %q is gone, want revision %d: %w", kind, key, want, model.ErrConflict), nil
	case want > 0 && curRev != want:
		return ev, fmt.Errorf("%s %q has revision %d, want %d: %w", kind, key, curRev, want, model.ErrConflict), nil
	}
	for _, iv := range idx {
		b := tx.Bucket(indexBucket(kind, iv.index))
		if b == nil {
			continue
		}
		if holder := b.Get([]byte(iv.value)); holder != nil && string(holder) != key {
			return ev, &model.ConflictError{
				Field:   iv.index,
				Message: fmt.Sprintf("%q is held by %s %q", iv.value, kind, holder),
			}, nil
		}
	}

	// Preconditions hold: write.
	rev, err := nextRevision(tx)
	if err != nil {
		return ev, nil, err
	}
	old, err := readReverse(tx, kind, k)
	if err != nil {
		return ev, nil, err
	}
	for _, iv := range old {
		if slices.Contains(idx, iv) {
			continue
		}
		if err := unindex(tx, kind, k, iv); err != nil {
			return ev, nil, err
		}
	}
	for _, iv := range idx {
		b, err := tx.CreateBucketIfNotExists(indexBucket(kind, iv.index))
		if err != nil {
			return ev, nil, fmt.Errorf("create index bucket: %w", err)
		}
		if err := b.Put([]byte(iv.value), k); err != nil {
			return ev, nil, fmt.Errorf("index %s %q: %w", iv.index, iv.value, err)
		}
	}
	if err := writeReverse(tx, kind, k, idx); err != nil {
		return ev, nil, err
	}
	data, err := tx.CreateBucketIfNotExists(dataBucket(kind))
	if err != nil {
		return ev, nil, fmt.Errorf("create bucket: %w", err)
	}
	rec := make([]byte, revisionLen+len(value))
	binary.BigEndian.PutUint64(rec, uint64(rev))
	copy(rec[revisionLen:], value)
	if err := data.Put(k, rec); err != nil {
		return ev, nil, fmt.Errorf("write value: %w", err)
	}
	ev = store.Event{Type: store.Updated, Kind: kind, Key: key, Value: value, Revision: rev}
	if cur == nil {
		ev.Type = store.Created
		if err := addCount(tx, kind, 1); err != nil {
			return ev, nil, err
		}
	}
	return ev, nil, nil
}

// Delete implements store.Store. It returns once the delete is fsync'ed.
func (s *Store) Delete(ctx context.Context, kind, key string, want int64) error {
	if err := checkKind(kind); err != nil {
		return err
	}
	if err := checkKey(key); err != nil {
		return err
	}
	if want < store.AnyRevision {
		return model.Invalid("revision", "%d is not a revision", want)
	}
	if err := s.check(ctx); err != nil {
		return err
	}
	var opErr error
	err := s.db.Batch(func(tx *bbolt.Tx) error {
		var ev store.Event
		var err error
		ev, opErr, err = del(tx, kind, key, want)
		if err != nil || opErr != nil {
			return err
		}
		tx.OnCommit(func() { s.hub.publish(ev) })
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete %s %q: %w", kind, key, translate(err))
	}
	return opErr
}

func del(tx *bbolt.Tx, kind, key string, want int64) (ev store.Event, opErr, err error) {
	k := []byte(key)
	data := tx.Bucket(dataBucket(kind))
	var cur []byte
	if data != nil {
		cur = data.Get(k)
	}
	if cur == nil {
		return ev, fmt.Errorf("%s %q: %w", kind, key, model.ErrNotFound), nil
	}
	if curRev := int64(binary.BigEndian.Uint64(cur)); want != store.AnyRevision && curRev != want {
		return ev, fmt.Errorf("%s %q has revision %d, want %d: %w", kind, key, curRev, want, model.ErrConflict), nil
	}
	last := bytes.Clone(cur[revisionLen:]) // cur is invalid once the page changes
	rev, err := nextRevision(tx)
	if err != nil {
		return ev, nil, err
	}
	old, err := readReverse(tx, kind, k)
	if err != nil {
		return ev, nil, err
	}
	for _, iv := range old {
		if err := unindex(tx, kind, k, iv); err != nil {
			return ev, nil, err
		}
	}
	if err := writeReverse(tx, kind, k, nil); err != nil {
		return ev, nil, err
	}
	if err := data.Delete(k); err != nil {
		return ev, nil, fmt.Errorf("delete value: %w", err)
	}
	if err := addCount(tx, kind, -1); err != nil {
		return ev, nil, err
	}
	return store.Event{Type: store.Deleted, Kind: kind, Key: key, Value: last, Revision: rev}, nil, nil
}

// indexValue is one (index, value) pair of a key.
type indexValue struct {
	index, value string
}

// normIndexes flattens, de-duplicates and checks a Put's index values.
func normIndexes(m map[string][]string) ([]indexValue, error) {
	var out []indexValue
	for index, vals := range m {
		if err := checkIndex(index); err != nil {
			return nil, err
		}
		for _, v := range vals {
			if v == "" {
				continue
			}
			if len(v) > bbolt.MaxKeySize {
				return nil, model.Invalid("index", "%s value is %d bytes, more than %d", index, len(v), bbolt.MaxKeySize)
			}
			iv := indexValue{index, v}
			if !slices.Contains(out, iv) {
				out = append(out, iv)
			}
		}
	}
	slices.SortFunc(out, func(a, b indexValue) int {
		return cmp.Or(cmp.Compare(a.index, b.index), cmp.Compare(a.value, b.value))
	})
	return out, nil
}

func checkKey(key string) error {
	if key == "" || len(key) > bbolt.MaxKeySize {
		return model.Invalid("key", "must be 1-%d bytes, is %d", bbolt.MaxKeySize, len(key))
	}
	return nil
}

// nextRevision increments and returns the global revision.
func nextRevision(tx *bbolt.Tx) (int64, error) {
	m := tx.Bucket(bucketMeta)
	rev := readRevision(m) + 1
	if err := putUint(m, keyRevision, uint64(rev)); err != nil {
		return 0, fmt.Errorf("write revision: %w", err)
	}
	return rev, nil
}

func addCount(tx *bbolt.Tx, kind string, d int64) error {
	m := tx.Bucket(bucketMeta)
	n := int64(readUint(m.Get(countKey(kind)))) + d
	if n < 0 {
		n = 0
	}
	if err := putUint(m, countKey(kind), uint64(n)); err != nil {
		return fmt.Errorf("write count: %w", err)
	}
	return nil
}

// readReverse returns the index values key holds.
func readReverse(tx *bbolt.Tx, kind string, key []byte) ([]indexValue, error) {
	b := tx.Bucket(reverseBucket(kind))
	if b == nil {
		return nil, nil
	}
	v := b.Get(key)
	if v == nil {
		return nil, nil
	}
	var m map[string][]string
	if err := json.Unmarshal(v, &m); err != nil {
		return nil, fmt.Errorf("decode index values of %q: %w", key, err)
	}
	return normIndexes(m)
}

// writeReverse records the index values key holds (none: removes the record).
func writeReverse(tx *bbolt.Tx, kind string, key []byte, idx []indexValue) error {
	if len(idx) == 0 {
		b := tx.Bucket(reverseBucket(kind))
		if b == nil {
			return nil
		}
		if err := b.Delete(key); err != nil {
			return fmt.Errorf("delete index values: %w", err)
		}
		return nil
	}
	m := map[string][]string{}
	for _, iv := range idx {
		m[iv.index] = append(m[iv.index], iv.value)
	}
	v, err := json.Marshal(m)
	if err != nil {
		return fmt.Errorf("encode index values: %w", err)
	}
	b, err := tx.CreateBucketIfNotExists(reverseBucket(kind))
	if err != nil {
		return fmt.Errorf("create bucket: %w", err)
	}
	if err := b.Put(key, v); err != nil {
		return fmt.Errorf("write index values: %w", err)
	}
	return nil
}

// unindex releases iv if key still holds it.
func unindex(tx *bbolt.Tx, kind string, key []byte, iv indexValue) error {
	b := tx.Bucket(indexBucket(kind, iv.index))
	if b == nil {
		return nil
	}
	if holder := b.Get([]byte(iv.value)); !bytes.Equal(holder, key) {
		return nil
	}
	if err := b.Delete([]byte(iv.value)); err != nil {
		return fmt.Errorf("unindex %s %q: %w", iv.index, iv.value, err)
	}
	return nil
}
