package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"reflect"
	"slices"
	"strconv"

	"github.com/ironcast/ironcast/model"
)

// RawLister lists stored objects as their stored JSON, without decoding
// them, for lists that need no filtering or sorting: a 100,000-machine
// list then costs a copy, not 100,000 JSON decodes and encodes. fn gets
// each object's JSON (owned by fn) and revision, from offset on, at most
// limit of them (limit < 0: all); total is the number of objects of kind.
// provision.Service implements it.
type RawLister interface {
	ListRaw(ctx context.Context, kind string, offset, limit int, fn func(raw []byte, rev int64) error) (total int, err error)
}

// IndexLookup finds one object through a unique index (model.Object
// Indexes), so that a filter on an indexed field is a lookup, not a scan.
// provision.Service implements it.
type IndexLookup interface {
	LookupBy(ctx context.Context, kind, index, value string) (model.Object, error)
}

// rawKinds are the kinds whose stored JSON is exactly what the API shows
// (no built-ins merged in, nothing computed, nothing to hide).
var rawKinds = map[string]bool{
	model.KindMachines: true, model.KindLeases: true, model.KindReservations: true,
	model.KindSubnets: true, model.KindParams: true, model.KindProfiles: true, model.KindPools: true,
}

// indexedFields maps a kind's filterable fields to the unique index that
// holds them.
var indexedFields = map[string]map[string]string{
	model.KindMachines:     {"HardwareAddrs": "mac", "Address": "ip", "Name": "name"},
	model.KindReservations: {"Token": "mac"},
}

// listRaw serves a plain list (no filter, no sort, no decode) from the
// stored JSON. It reports whether it served the request.
func (s *Server) listRaw(w http.ResponseWriter, r *http.Request, kind string, lq *listQuery, decode bool) (bool, error) {
	rl, ok := s.backend.(RawLister)
	if !ok || !rawKinds[kind] || decode || len(lq.filters) > 0 || lq.sort != nil || lq.reverse {
		return false, nil
	}
	// Collect the page rather than writing inside the store's read
	// transaction: a slow client must not hold the store open. The
	// values are kept as the store handed them over (no second copy into
	// one growing buffer), then written in order.
	var (
		parts [][]byte
		revs  []int64
	)
	total, err := rl.ListRaw(r.Context(), kind, lq.offset, lq.limit, func(raw []byte, rev int64) error {
		raw = bytes.TrimSpace(raw)
		parts = append(parts, raw)
		revs = append(revs, rev)
		return nil
	})
	if err != nil {
		return true, err
	}
	return true, writeRaw(w, parts, revs, total)
}

// listRawQuery serves a filtered, sorted or reversed list from the stored
// JSON: each object is decoded on its own, tested, and dropped unless it
// matches; a match keeps its stored JSON (and its sort key, detached from
// the decoded object), never the decoded object. Without sort or reverse
// only the page is kept. Memory then holds the matches as stored, not
// every object of the kind decoded (100,000 machines decoded at once took
// the server past 500 MB). It reports whether it served the request.
func (s *Server) listRawQuery(w http.ResponseWriter, r *http.Request, kind string, lq *listQuery, decode bool) (bool, error) {
	rl, ok := s.backend.(RawLister)
	if !ok || !rawKinds[kind] || decode || s.indexedQuery(kind, lq) {
		return false, nil
	}
	ordered := lq.sort != nil || lq.reverse
	var (
		hits  []rawHit
		total int
	)
	_, err := rl.ListRaw(r.Context(), kind, 0, -1, func(raw []byte, rev int64) error {
		obj := model.New(kind)
		if err := json.Unmarshal(raw, obj); err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		obj.GetMeta().Revision = rev
		if len(lq.filters) > 0 && !lq.match(obj) {
			return nil
		}
		total++
		if !ordered && (total <= lq.offset || (lq.limit >= 0 && len(hits) >= lq.limit)) {
			return nil // outside the page: nothing to keep
		}
		h := rawHit{raw: bytes.TrimSpace(raw), rev: rev}
		if lq.sort != nil {
			if vs := leaves(reflect.ValueOf(obj), lq.sort); len(vs) > 0 {
				if k := deref(vs[0]); k.IsValid() {
					h.key = reflect.ValueOf(k.Interface()) // a copy: obj can go
				}
			}
		}
		hits = append(hits, h)
		return nil
	})
	if err != nil {
		return true, err
	}
	if ordered {
		if lq.sort != nil {
			slices.SortStableFunc(hits, func(a, b rawHit) int { return compare(a.key, b.key) })
		}
		if lq.reverse {
			slices.Reverse(hits)
		}
		start := min(lq.offset, len(hits))
		end := len(hits)
		if lq.limit >= 0 {
			end = min(start+lq.limit, end)
		}
		hits = hits[start:end]
	}
	parts := make([][]byte, len(hits))
	revs := make([]int64, len(hits))
	for i, h := range hits {
		parts[i], revs[i] = h.raw, h.rev
	}
	return true, writeRaw(w, parts, revs, total)
}

// rawHit is a stored object that matched a list query.
type rawHit struct {
	raw []byte
	rev int64
	key reflect.Value // sort key; invalid when missing
}

// writeRaw writes stored objects as a JSON array, each with its revision,
// and total in X-Total-Count.
func writeRaw(w http.ResponseWriter, parts [][]byte, revs []int64, total int) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Total-Count", strconv.Itoa(total))
	bw := bufio.NewWriterSize(w, 256<<10)
	bw.WriteByte('[')
	var num []byte
	for i, raw := range parts {
		if i > 0 {
			bw.WriteByte(',')
		}
		num = writeWithRevision(bw, raw, revs[i], num)
		parts[i] = nil // let the collector take what is already sent
	}
	bw.WriteString("]\n")
	return bw.Flush()
}

// writeWithRevision writes a stored object (a JSON object written without
// its revision) with "Revision" as its first field. num is scratch space,
// returned for reuse.
func writeWithRevision(w *bufio.Writer, raw []byte, rev int64, num []byte) []byte {
	if len(raw) < 2 || raw[0] != '{' {
		w.Write(raw)
		return num
	}
	w.WriteString(`{"Revision":`)
	num = strconv.AppendInt(num[:0], rev, 10)
	w.Write(num)
	if rest := bytes.TrimSpace(raw[1:]); len(rest) > 0 && rest[0] != '}' {
		w.WriteByte(',')
	}
	w.Write(raw[1:])
	return num
}

// candidates returns the objects a list query can match: through a unique
// index when the query is one value of an indexed field, else all.
func (s *Server) candidates(ctx context.Context, kind string, lq *listQuery) ([]model.Object, error) {
	if il, ok := s.backend.(IndexLookup); ok && s.indexedQuery(kind, lq) {
		f := lq.filters[0]
		if idx, ok := indexedFields[kind][f.path[0]]; ok {
			obj, err := il.LookupBy(ctx, kind, idx, f.values[0])
			if errors.Is(err, model.ErrNotFound) {
				return nil, nil
			}
			if err != nil {
				return nil, err
			}
			return []model.Object{obj}, nil
		}
	}
	return s.backend.List(ctx, kind)
}

// indexedQuery reports whether lq is one value of one indexed field, which
// candidates answers with an index lookup.
func (s *Server) indexedQuery(kind string, lq *listQuery) bool {
	if _, ok := s.backend.(IndexLookup); !ok || len(lq.filters) != 1 {
		return false
	}
	f := lq.filters[0]
	_, ok := indexedFields[kind][f.path[0]]
	return ok && len(f.path) == 1 && len(f.values) == 1
}
