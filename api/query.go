package api

import (
	"encoding/json"
	"fmt"
	"net/url"
	"reflect"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/ironcast/ironcast/model"
)

// listQuery is a parsed list request: filters (all must match; the values
// of one filter are alternatives), an optional sort field, and a page.
type listQuery struct {
	filters []filter
	sort    []string // field path; nil keeps key order
	reverse bool
	offset  int
	limit   int // -1: no limit
}

type filter struct {
	path   []string
	values []string
}

// parseListQuery parses a list request's query for kind:
//
//	Field=value          top-level field equals value (any element, for arrays)
//	A.B=value            nested field (struct fields, map keys)
//	param.NAME=value     the object's own Params[NAME]
//	sort=Field           sort by a field (dotted for nested); reverse=true
//	offset=N, limit=N    page (applied after filtering and sorting)
//
// Field names are those of the JSON objects and match case-insensitively.
// Repeating a filter matches any of its values. Errors name the parameter.
func parseListQuery(kind string, q url.Values) (*listQuery, error) {
	proto := model.New(kind)
	if proto == nil {
		return nil, badRequest("", "unknown kind %q", kind)
	}
	t := reflect.TypeOf(proto).Elem()
	lq := &listQuery{limit: -1}
	names := make([]string, 0, len(q))
	for k := range q {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, name := range names {
		vals := q[name]
		last := ""
		if len(vals) > 0 {
			last = vals[len(vals)-1]
		}
		var err error
		switch name {
		case "decode":
			continue
		case "sort":
			if lq.sort, err = fieldPath(t, last, "sort"); err != nil {
				return nil, err
			}
		case "reverse":
			if lq.reverse, err = strconv.ParseBool(last); err != nil {
				return nil, badRequest("reverse", "reverse: %q is not true or false", last)
			}
		case "offset", "limit":
			n, err := strconv.Atoi(last)
			if err != nil || n < 0 {
				return nil, badRequest(name, "%s: %q is not a non-negative integer", name, last)
			}
			if name == "offset" {
				lq.offset = n
			} else {
				lq.limit = n
			}
		default:
			path, err := fieldPath(t, name, name)
			if err != nil {
				return nil, err
			}
			f := filter{path: path, values: slices.Clone(vals)}
			if l := strings.ToLower(path[len(path)-1]); l == "hardwareaddrs" || l == "mac" {
				for i, v := range f.values {
					if hw, err := model.NormalizeMAC(v); err == nil {
						f.values[i] = hw
					}
				}
			}
			lq.filters = append(lq.filters, f)
		}
	}
	return lq, nil
}

// fieldPath checks a dotted field name against type t and returns its
// segments with struct field names canonicalised. "param.X" is Params.X.
func fieldPath(t reflect.Type, name, param string) ([]string, error) {
	if name == "" {
		return nil, badRequest(param, "%s: a field name is required", param)
	}
	segs := strings.Split(name, ".")
	if strings.EqualFold(segs[0], "param") && len(segs) > 1 {
		segs[0] = "Params"
	}
	cur := t
	for i, seg := range segs {
		if seg == "" {
			return nil, badRequest(param, "%s: empty segment in field %q", param, name)
		}
		for cur.Kind() == reflect.Pointer || cur.Kind() == reflect.Slice || cur.Kind() == reflect.Array {
			cur = cur.Elem()
		}
		switch cur.Kind() {
		case reflect.Struct:
			if cur == reflect.TypeFor[time.Time]() {
				return nil, badRequest(param, "%s: field %q has no field %q", param, strings.Join(segs[:i], "."), seg)
			}
			f, ok := cur.FieldByNameFunc(func(n string) bool { return strings.EqualFold(n, seg) })
			if !ok || !f.IsExported() || f.Tag.Get("json") == "-" {
				if i == 0 {
					return nil, badRequest(param, "%s: %s have no field %q", param, t.Name()+"s", seg)
				}
				return nil, badRequest(param, "%s: field %q has no field %q", param, strings.Join(segs[:i], "."), seg)
			}
			if f.Name == "PasswordHash" || f.Name == "Password" {
				return nil, badRequest(param, "%s: field %q cannot be filtered or sorted on", param, f.Name)
			}
			segs[i] = f.Name
			cur = f.Type
		case reflect.Map, reflect.Interface:
			return segs, nil // keys are free-form
		default:
			return nil, badRequest(param, "%s: field %q has no field %q", param, strings.Join(segs[:i], "."), seg)
		}
	}
	return segs, nil
}

// apply filters, sorts and pages objs and returns the page and the number
// of matches before paging.
func (lq *listQuery) apply(objs []model.Object) ([]model.Object, int) {
	var hits []hit
	for _, o := range objs {
		if lq.match(o) {
			hits = append(hits, hit{obj: o, key: lq.sortKey(o)})
		}
	}
	total := len(hits)
	hits = lq.arrange(hits)
	page := make([]model.Object, len(hits))
	for i, h := range hits {
		page[i] = h.obj
	}
	return page, total
}

// hit is an object that matched a list query: decoded (obj) or as stored
// (raw, rev), with its sort key.
type hit struct {
	obj model.Object
	raw []byte
	rev int64
	key reflect.Value // invalid when unsorted or missing
}

// sortKey returns o's value at the sort field, copied out of o so that o
// itself need not be kept; the zero Value without a sort or a value.
func (lq *listQuery) sortKey(o model.Object) reflect.Value {
	if lq.sort == nil {
		return reflect.Value{}
	}
	if vs := leaves(reflect.ValueOf(o), lq.sort); len(vs) > 0 {
		if k := deref(vs[0]); k.IsValid() {
			return reflect.ValueOf(k.Interface())
		}
	}
	return reflect.Value{}
}

// arrange sorts hits by key (stably, so ties keep key order), reverses
// them if asked and returns the page.
func (lq *listQuery) arrange(hits []hit) []hit {
	if lq.sort != nil {
		slices.SortStableFunc(hits, func(a, b hit) int { return compare(a.key, b.key) })
	}
	if lq.reverse {
		slices.Reverse(hits)
	}
	start := min(lq.offset, len(hits))
	end := len(hits)
	if lq.limit >= 0 {
		end = min(start+lq.limit, end)
	}
	return hits[start:end]
}

func (lq *listQuery) match(o model.Object) bool {
	v := reflect.ValueOf(o)
	for _, f := range lq.filters {
		ok := false
		for _, leaf := range leaves(v, f.path) {
			s := format(leaf)
			if slices.Contains(f.values, s) {
				ok = true
				break
			}
		}
		if !ok {
			return false
		}
	}
	return true
}

// leaves walks path from v and returns every value it reaches (arrays fan
// out: a filter on an array field matches any element).
func leaves(v reflect.Value, path []string) []reflect.Value {
	v = deref(v)
	if !v.IsValid() {
		return nil
	}
	if v.Kind() == reflect.Slice || v.Kind() == reflect.Array {
		if v.Type().Elem().Kind() == reflect.Uint8 && len(path) == 0 {
			return []reflect.Value{v} // json.RawMessage and []byte are one value
		}
		var out []reflect.Value
		for i := 0; i < v.Len() && i < 10000; i++ {
			out = append(out, leaves(v.Index(i), path)...)
		}
		return out
	}
	if len(path) == 0 {
		return []reflect.Value{v}
	}
	switch v.Kind() {
	case reflect.Struct:
		if v.Type() == reflect.TypeFor[time.Time]() {
			return nil
		}
		return leaves(v.FieldByName(path[0]), path[1:])
	case reflect.Map:
		if v.Type().Key().Kind() != reflect.String {
			return nil
		}
		return leaves(v.MapIndex(reflect.ValueOf(path[0]).Convert(v.Type().Key())), path[1:])
	}
	return nil
}

func deref(v reflect.Value) reflect.Value {
	for v.IsValid() && (v.Kind() == reflect.Pointer || v.Kind() == reflect.Interface) {
		if v.IsNil() {
			return reflect.Value{}
		}
		v = v.Elem()
	}
	return v
}

// format renders a leaf the way it is written in a query.
func format(v reflect.Value) string {
	v = deref(v)
	if !v.IsValid() {
		return ""
	}
	switch v.Kind() {
	case reflect.String:
		return v.String()
	case reflect.Bool:
		return strconv.FormatBool(v.Bool())
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return strconv.FormatInt(v.Int(), 10)
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return strconv.FormatUint(v.Uint(), 10)
	case reflect.Float32, reflect.Float64:
		return strconv.FormatFloat(v.Float(), 'f', -1, 64)
	}
	if t, ok := v.Interface().(time.Time); ok {
		return t.UTC().Format(time.RFC3339Nano)
	}
	b, err := json.Marshal(v.Interface())
	if err != nil {
		return fmt.Sprint(v.Interface())
	}
	return string(b)
}

// compare orders two sort keys: missing first, then numbers numerically,
// times chronologically, booleans false first, and everything else by its
// formatted text.
func compare(a, b reflect.Value) int {
	a, b = deref(a), deref(b)
	switch {
	case !a.IsValid() && !b.IsValid():
		return 0
	case !a.IsValid():
		return -1
	case !b.IsValid():
		return 1
	}
	if x, ok := number(a); ok {
		if y, ok := number(b); ok {
			switch {
			case x < y:
				return -1
			case x > y:
				return 1
			}
			return 0
		}
	}
	if x, ok := a.Interface().(time.Time); ok {
		if y, ok := b.Interface().(time.Time); ok {
			return x.Compare(y)
		}
	}
	return strings.Compare(format(a), format(b))
}

func number(v reflect.Value) (float64, bool) {
	switch v.Kind() {
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64:
		return float64(v.Int()), true
	case reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return float64(v.Uint()), true
	case reflect.Float32, reflect.Float64:
		return v.Float(), true
	case reflect.Bool:
		if v.Bool() {
			return 1, true
		}
		return 0, true
	}
	return 0, false
}
