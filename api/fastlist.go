package api

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
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

// listStored serves a list from the stored JSON when the kind allows it
// (rawKinds, no ?decode) and no index lookup answers the query. A plain
// list reads just its page and decodes nothing. A filtered, sorted or
// reversed one decodes each object on its own to test it and keeps, for
// each match, its stored JSON and sort key, never the decoded object
// (without sort or reverse, only the page's): memory then holds the
// matches as stored, not every object of the kind decoded (100,000
// machines decoded at once took the server past 500 MB). It reports
// whether it served the request.
func (s *Server) listStored(w http.ResponseWriter, r *http.Request, kind string, lq *listQuery, decode bool) (bool, error) {
	rl, ok := s.backend.(RawLister)
	if !ok || !rawKinds[kind] || decode || s.lookupIndex(kind, lq) != "" {
		return false, nil
	}
	// Collect the page rather than writing inside the store's read
	// transaction: a slow client must not hold the store open. The
	// values are kept as the store handed them over (no second copy into
	// one growing buffer), then written in order.
	var hits []hit
	if len(lq.filters) == 0 && lq.sort == nil && !lq.reverse {
		total, err := rl.ListRaw(r.Context(), kind, lq.offset, lq.limit, func(raw []byte, rev int64) error {
			hits = append(hits, hit{raw: bytes.TrimSpace(raw), rev: rev})
			return nil
		})
		if err != nil {
			return true, err
		}
		return true, writeRaw(w, hits, total)
	}
	ordered := lq.sort != nil || lq.reverse
	total := 0
	_, err := rl.ListRaw(r.Context(), kind, 0, -1, func(raw []byte, rev int64) error {
		obj := model.New(kind)
		if err := json.Unmarshal(raw, obj); err != nil {
			return fmt.Errorf("decode %s: %w", kind, err)
		}
		obj.GetMeta().Revision = rev
		if !lq.match(obj) {
			return nil
		}
		total++
		if !ordered && (total <= lq.offset || (lq.limit >= 0 && len(hits) >= lq.limit)) {
			return nil // outside the page: nothing to keep
		}
		hits = append(hits, hit{raw: bytes.TrimSpace(raw), rev: rev, key: lq.sortKey(obj)})
		return nil
	})
	if err != nil {
		return true, err
	}
	if ordered {
		hits = lq.arrange(hits)
	}
	return true, writeRaw(w, hits, total)
}

// writeRaw writes stored objects as a JSON array, each with its revision,
// and total in X-Total-Count.
func writeRaw(w http.ResponseWriter, hits []hit, total int) error {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.Header().Set("X-Total-Count", strconv.Itoa(total))
	bw := bufio.NewWriterSize(w, 256<<10)
	bw.WriteByte('[')
	var num []byte
	for i := range hits {
		if i > 0 {
			bw.WriteByte(',')
		}
		num = writeWithRevision(bw, hits[i].raw, hits[i].rev, num)
		hits[i].raw = nil // let the collector take what is already sent
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
	if idx := s.lookupIndex(kind, lq); idx != "" {
		obj, err := s.backend.(IndexLookup).LookupBy(ctx, kind, idx, lq.filters[0].values[0])
		if errors.Is(err, model.ErrNotFound) {
			return nil, nil
		}
		if err != nil {
			return nil, err
		}
		return []model.Object{obj}, nil
	}
	return s.backend.List(ctx, kind)
}

// lookupIndex names the unique index that answers lq, one value of one
// indexed field, when the backend can look it up; else "".
func (s *Server) lookupIndex(kind string, lq *listQuery) string {
	if _, ok := s.backend.(IndexLookup); !ok || len(lq.filters) != 1 {
		return ""
	}
	f := lq.filters[0]
	if len(f.path) != 1 || len(f.values) != 1 {
		return ""
	}
	return indexedFields[kind][f.path[0]]
}
