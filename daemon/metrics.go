package daemon

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/provision"
	"github.com/ironcast/ironcast/store"
)

// meteredStore counts and times every store operation:
// ironcast_store_operations_total{op,kind,result} and
// ironcast_store_operation_duration_seconds{op}.
type meteredStore struct {
	store.Store
	ops *prometheus.CounterVec
	dur *prometheus.HistogramVec
}

var _ store.Store = (*meteredStore)(nil)

func newStoreMetrics(s store.Store, reg prometheus.Registerer) (*meteredStore, error) {
	m := &meteredStore{
		Store: s,
		ops: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "ironcast_store_operations_total", Help: "Store operations by operation, kind and result.",
		}, []string{"op", "kind", "result"}),
		dur: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name: "ironcast_store_operation_duration_seconds", Help: "Store operation latency.",
			Buckets: prometheus.ExponentialBuckets(0.00005, 4, 10),
		}, []string{"op"}),
	}
	for _, c := range []prometheus.Collector{m.ops, m.dur} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("register store metrics: %w", err)
		}
	}
	return m, nil
}

func (m *meteredStore) observe(op, kind string, start time.Time, err error) {
	result := "ok"
	switch {
	case err == nil:
	case errors.Is(err, model.ErrNotFound):
		result = "not_found"
	case errors.Is(err, model.ErrExists), errors.Is(err, model.ErrConflict):
		result = "conflict"
	default:
		result = "error"
	}
	m.ops.WithLabelValues(op, kind, result).Inc()
	m.dur.WithLabelValues(op).Observe(time.Since(start).Seconds())
}

func (m *meteredStore) Get(ctx context.Context, kind, key string) (store.Entry, error) {
	start := time.Now()
	e, err := m.Store.Get(ctx, kind, key)
	m.observe("get", kind, start, err)
	return e, err
}

func (m *meteredStore) List(ctx context.Context, kind string, fn func(store.Entry) error) error {
	start := time.Now()
	err := m.Store.List(ctx, kind, fn)
	m.observe("list", kind, start, err)
	return err
}

func (m *meteredStore) Lookup(ctx context.Context, kind, index, value string) (store.Entry, error) {
	start := time.Now()
	e, err := m.Store.Lookup(ctx, kind, index, value)
	m.observe("lookup", kind, start, err)
	return e, err
}

func (m *meteredStore) Put(ctx context.Context, kind, key string, value []byte, want int64, idx map[string][]string) (int64, error) {
	start := time.Now()
	rev, err := m.Store.Put(ctx, kind, key, value, want, idx)
	m.observe("put", kind, start, err)
	return rev, err
}

func (m *meteredStore) PutBatch(ctx context.Context, ops []store.PutOp) []error {
	start := time.Now()
	errs := m.Store.PutBatch(ctx, ops)
	m.observe("put_batch", batchKind(ops), start, errors.Join(errs...))
	return errs
}

// batchKind names a batch's kind for the metrics: its ops' kind, or
// "mixed".
func batchKind(ops []store.PutOp) string {
	if len(ops) == 0 {
		return ""
	}
	for _, op := range ops[1:] {
		if op.Kind != ops[0].Kind {
			return "mixed"
		}
	}
	return ops[0].Kind
}

func (m *meteredStore) Delete(ctx context.Context, kind, key string, want int64) error {
	start := time.Now()
	err := m.Store.Delete(ctx, kind, key, want)
	m.observe("delete", kind, start, err)
	return err
}

func (m *meteredStore) Backup(ctx context.Context, w io.Writer) (int64, error) {
	start := time.Now()
	n, err := m.Store.Backup(ctx, w)
	m.observe("backup", "", start, err)
	return n, err
}

// renderCacheCollector exports provision's render cache counters, read at
// scrape time (the cache keeps its own counters; nothing is duplicated):
// ironcast_render_cache_hits_total, _misses_total, ironcast_render_cache_entries
// and _bytes.
type renderCacheCollector struct {
	stats                        func() provision.RenderCacheStats
	hits, misses, entries, bytes *prometheus.Desc
}

var _ prometheus.Collector = (*renderCacheCollector)(nil)

func newRenderCacheCollector(stats func() provision.RenderCacheStats) *renderCacheCollector {
	return &renderCacheCollector{
		stats:   stats,
		hits:    prometheus.NewDesc("ironcast_render_cache_hits_total", "Rendered boot files served from the render cache.", nil, nil),
		misses:  prometheus.NewDesc("ironcast_render_cache_misses_total", "Render cache lookups that found nothing current and rendered.", nil, nil),
		entries: prometheus.NewDesc("ironcast_render_cache_entries", "Rendered files in the render cache now.", nil, nil),
		bytes:   prometheus.NewDesc("ironcast_render_cache_bytes", "Bytes held by the render cache now, keys and bookkeeping included.", nil, nil),
	}
}

func (c *renderCacheCollector) Describe(ch chan<- *prometheus.Desc) {
	ch <- c.hits
	ch <- c.misses
	ch <- c.entries
	ch <- c.bytes
}

func (c *renderCacheCollector) Collect(ch chan<- prometheus.Metric) {
	s := c.stats()
	ch <- prometheus.MustNewConstMetric(c.hits, prometheus.CounterValue, float64(s.Hits))
	ch <- prometheus.MustNewConstMetric(c.misses, prometheus.CounterValue, float64(s.Misses))
	ch <- prometheus.MustNewConstMetric(c.entries, prometheus.GaugeValue, float64(s.Entries))
	ch <- prometheus.MustNewConstMetric(c.bytes, prometheus.GaugeValue, float64(s.Bytes))
}
