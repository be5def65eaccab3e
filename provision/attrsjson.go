package provision

import (
	"encoding/json"
	"math"
	"slices"
	"strconv"
)

// encodeAttrs returns the JSON object json.Marshal gives for attrs (keys
// sorted), or nil for an empty map. Timelines keep events in this form: a
// byte slice holds no pointers, so the garbage collector does not scan
// the hundreds of thousands of entries a busy rack's timelines hold, and
// it takes about a third of the memory of the map. The common values
// (plain ASCII strings, booleans, integers, ordinary floats) are encoded
// without reflection; anything else goes through json.Marshal.
// TestEncodeAttrs holds it to json.Marshal's output.
func encodeAttrs(attrs map[string]any) []byte {
	if len(attrs) == 0 {
		return nil
	}
	var keysBuf [16]string
	keys := keysBuf[:0]
	for k := range attrs {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	b := make([]byte, 0, 32*len(keys))
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		if !plainJSON(k) {
			return marshalAttrs(attrs)
		}
		b = append(b, '"')
		b = append(b, k...)
		b = append(b, '"', ':')
		switch v := attrs[k].(type) {
		case string:
			if !plainJSON(v) {
				return marshalAttrs(attrs)
			}
			b = append(b, '"')
			b = append(b, v...)
			b = append(b, '"')
		case bool:
			b = strconv.AppendBool(b, v)
		case int:
			b = strconv.AppendInt(b, int64(v), 10)
		case int64:
			b = strconv.AppendInt(b, v, 10)
		case uint64:
			b = strconv.AppendUint(b, v, 10)
		case float64:
			// encoding/json writes these with 'f'; others with 'e'.
			if a := math.Abs(v); a != 0 && (a < 1e-6 || a >= 1e21) || math.IsNaN(v) {
				return marshalAttrs(attrs)
			}
			b = strconv.AppendFloat(b, v, 'f', -1, 64)
		default:
			return marshalAttrs(attrs)
		}
	}
	return append(b, '}')
}

// marshalAttrs is encodeAttrs' fallback. A map json.Marshal refuses (an
// infinite float, a channel) is kept as its error.
func marshalAttrs(attrs map[string]any) []byte {
	b, err := json.Marshal(attrs)
	if err != nil {
		b, _ = json.Marshal(map[string]string{"attrs_error": err.Error()})
	}
	return b
}

// decodeAttrs turns encodeAttrs' output back into a map (numbers become
// float64, as for any JSON decoded into an interface).
func decodeAttrs(b []byte) map[string]any {
	if b == nil {
		return nil
	}
	var m map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		return map[string]any{"attrs_error": err.Error()}
	}
	return m
}

// plainJSON reports whether s is JSON-encoded as itself between quotes:
// printable ASCII without the characters encoding/json escapes.
func plainJSON(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
