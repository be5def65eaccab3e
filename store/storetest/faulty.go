package storetest

import (
	"context"
	"errors"
	"sync/atomic"

	"github.com/ironcast/ironcast/store"
)

// ErrDiskFull is the error a Faulty store's failing writes return.
var ErrDiskFull = errors.New("storetest: disk full (injected)")

// Faulty wraps a store and fails writes of one kind while Fail is set,
// as a full disk would: Put returns ErrDiskFull, and so does every op of
// a PutBatch that holds a write of that kind (a failed commit fails the
// whole batch). Other calls go to the wrapped store.
type Faulty struct {
	store.Store
	Kind string
	Fail atomic.Bool
}

// Put implements store.Store.
func (f *Faulty) Put(ctx context.Context, kind, key string, value []byte, want int64, idx map[string][]string) (int64, error) {
	if kind == f.Kind && f.Fail.Load() {
		return 0, ErrDiskFull
	}
	return f.Store.Put(ctx, kind, key, value, want, idx)
}

// PutBatch implements store.Store.
func (f *Faulty) PutBatch(ctx context.Context, ops []store.PutOp) []error {
	if f.Fail.Load() {
		for _, op := range ops {
			if op.Kind != f.Kind {
				continue
			}
			errs := make([]error, len(ops))
			for i := range errs {
				errs[i] = ErrDiskFull
			}
			return errs
		}
	}
	return f.Store.PutBatch(ctx, ops)
}
