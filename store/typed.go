package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"

	"github.com/ironcast/ironcast/model"
)

// ptrObject constrains a pointer to a model struct that implements
// model.Object, so that generic helpers can allocate T and use *T.
type ptrObject[T any] interface {
	*T
	model.Object
}

// Decode unmarshals an entry into a new object and sets its revision.
func Decode[T any, P ptrObject[T]](e Entry) (P, error) {
	var v T
	p := P(&v)
	if err := json.Unmarshal(e.Value, p); err != nil {
		return nil, fmt.Errorf("decode %s %q: %w", p.Kind(), e.Key, err)
	}
	p.GetMeta().Revision = e.Revision
	return p, nil
}

// Get loads one object of type P by key.
func Get[T any, P ptrObject[T]](ctx context.Context, s Store, key string) (P, error) {
	kind := P(new(T)).Kind()
	e, err := s.Get(ctx, kind, key)
	if err != nil {
		return nil, fmt.Errorf("get %s %q: %w", kind, key, err)
	}
	return Decode[T, P](e)
}

// LookupBy loads one object of type P through a unique index.
func LookupBy[T any, P ptrObject[T]](ctx context.Context, s Store, index, value string) (P, error) {
	kind := P(new(T)).Kind()
	e, err := s.Lookup(ctx, kind, index, value)
	if err != nil {
		return nil, fmt.Errorf("lookup %s by %s %q: %w", kind, index, value, err)
	}
	return Decode[T, P](e)
}

// List loads every object of type P in key order.
func List[T any, P ptrObject[T]](ctx context.Context, s Store) ([]P, error) {
	kind := P(new(T)).Kind()
	var out []P
	err := s.List(ctx, kind, func(e Entry) error {
		p, err := Decode[T, P](e)
		if err != nil {
			return err
		}
		out = append(out, p)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	return out, nil
}

// Put normalises, validates and writes obj if its stored revision is want,
// setting CreatedAt (on create), UpdatedAt and the new Revision on obj.
func Put(ctx context.Context, s Store, obj model.Object, want int64) error {
	obj.Normalize()
	if err := obj.Validate(); err != nil {
		return err
	}
	m := obj.GetMeta()
	now := time.Now().UTC().Truncate(time.Millisecond)
	if want == MustNotExist || m.CreatedAt.IsZero() {
		m.CreatedAt = now
	}
	m.UpdatedAt = now
	rev := m.Revision
	m.Revision = 0 // the store holds the revision; keep it out of the value
	b, err := json.Marshal(obj)
	m.Revision = rev
	if err != nil {
		return fmt.Errorf("encode %s %q: %w", obj.Kind(), obj.Key(), err)
	}
	newRev, err := s.Put(ctx, obj.Kind(), obj.Key(), b, want, obj.Indexes())
	if err != nil {
		return fmt.Errorf("put %s %q: %w", obj.Kind(), obj.Key(), err)
	}
	m.Revision = newRev
	return nil
}

// Create stores a new object; model.ErrExists if the key is taken.
func Create(ctx context.Context, s Store, obj model.Object) error {
	return Put(ctx, s, obj, MustNotExist)
}

// Update stores obj if it has not changed since it was read (its Revision).
func Update(ctx context.Context, s Store, obj model.Object) error {
	want := obj.GetMeta().Revision
	if want == 0 {
		return fmt.Errorf("update %s %q: object has no revision: %w", obj.Kind(), obj.Key(), model.ErrConflict)
	}
	return Put(ctx, s, obj, want)
}

// Mutate reads the object of type P under key, applies fn and writes it
// back with compare-and-swap, retrying on conflicting concurrent writes
// after a short random backoff (up to mutateAttempts times, or until ctx
// ends). fn may be called several times and must not have side effects
// outside the object. It returns the stored object. A *model.ConflictError
// (a unique index held by another object) is not retried.
func Mutate[T any, P ptrObject[T]](ctx context.Context, s Store, key string, fn func(P) error) (P, error) {
	for attempt := 1; ; attempt++ {
		p, err := Get[T, P](ctx, s, key)
		if err != nil {
			return nil, err
		}
		if err := fn(p); err != nil {
			return nil, err
		}
		err = Update(ctx, s, p)
		if err == nil {
			return p, nil
		}
		var ce *model.ConflictError
		if !errors.Is(err, model.ErrConflict) || errors.As(err, &ce) || attempt >= mutateAttempts {
			return nil, err
		}
		if err := backoff(ctx, attempt); err != nil {
			return nil, err
		}
	}
}

// mutateAttempts bounds Mutate's retries. Losing a compare-and-swap is
// common when several writers update one object (a backend that groups
// commits lets one writer of each group win), so this is far above what
// contention of a few dozen writers needs; 20 was observed to fail 8 writers.
const mutateAttempts = 100

// backoff sleeps a random time below min(2^attempt ms, 50ms), so that
// writers that lost a compare-and-swap together do not retry in lockstep.
func backoff(ctx context.Context, attempt int) error {
	limit := min(time.Millisecond<<min(attempt, 6), 50*time.Millisecond)
	t := time.NewTimer(rand.N(limit))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}

// Delete removes the object of kind and key if its revision is want.
func Delete(ctx context.Context, s Store, kind, key string, want int64) error {
	if err := s.Delete(ctx, kind, key, want); err != nil {
		return fmt.Errorf("delete %s %q: %w", kind, key, err)
	}
	return nil
}
