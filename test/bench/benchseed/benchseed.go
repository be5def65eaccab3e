// Package benchseed writes large inventories into an ironcast data
// directory for the benchmark scripts: straight into the store the way
// `ironcast serve` will read it (normalised, validated, indexed), without
// an fsync per write.
package benchseed

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"sync/atomic"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
	"github.com/ironcast/ironcast/store/bolt"
	"golang.org/x/sync/errgroup"
)

// Open creates dir if needed and opens its store (ironcast.db) with fsync
// off: a seeded directory is thrown away if seeding fails.
func Open(dir string) (*bolt.Store, error) {
	if dir == "" {
		return nil, fmt.Errorf("--data-dir is required")
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create data dir: %w", err)
	}
	st, err := bolt.Open(filepath.Join(dir, "ironcast.db"), &bolt.Options{NoSync: true})
	if err != nil {
		return nil, fmt.Errorf("open store: %w", err)
	}
	return st, nil
}

// Machines creates machines 0..n-1, machine(i) describing each, from
// workers goroutines (bbolt groups their writes into shared commits). It
// stops at the first error and returns the number of machines stored.
func Machines(ctx context.Context, st store.Store, n, workers int, machine func(i int) *model.Machine) (int, error) {
	var next atomic.Int64
	g, ctx := errgroup.WithContext(ctx)
	for range workers {
		g.Go(func() error {
			for ctx.Err() == nil {
				i := int(next.Add(1) - 1)
				if i >= n {
					return nil
				}
				if err := store.Create(ctx, st, machine(i)); err != nil {
					return fmt.Errorf("create machine %d: %w", i, err)
				}
			}
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return 0, err
	}
	c, err := st.Count(context.Background(), model.KindMachines)
	if err != nil {
		return 0, fmt.Errorf("count machines: %w", err)
	}
	return c, nil
}
