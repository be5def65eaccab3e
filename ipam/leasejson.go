package ipam

import (
	"strconv"
	"time"

	"github.com/ironcast/ironcast/model"
)

// appendLeaseJSON appends the bytes json.Marshal gives for ml, without
// reflection (the writer encodes every lease it stores, and
// encoding/json showed in the commit path's profile). It reports false,
// leaving the caller to use json.Marshal, when a string needs escaping or
// a time is outside JSON's years; TestAppendLeaseJSON holds it to
// json.Marshal's output.
func appendLeaseJSON(b []byte, ml *model.Lease) ([]byte, bool) {
	b = append(b, '{')
	sep := false
	field := func(name string) {
		if sep {
			b = append(b, ',')
		}
		sep = true
		b = append(b, '"')
		b = append(b, name...)
		b = append(b, '"', ':')
	}
	ok := true
	str := func(name, v string) {
		if !plain(v) {
			ok = false
			return
		}
		field(name)
		b = append(b, '"')
		b = append(b, v...)
		b = append(b, '"')
	}
	tm := func(name string, t time.Time) {
		if y := t.Year(); y < 0 || y > 9999 {
			ok = false
			return
		}
		field(name)
		b = append(b, '"')
		b = t.AppendFormat(b, time.RFC3339Nano)
		b = append(b, '"')
	}
	if ml.Revision != 0 {
		field("Revision")
		b = strconv.AppendInt(b, ml.Revision, 10)
	}
	if !ml.CreatedAt.IsZero() {
		tm("CreatedAt", ml.CreatedAt)
	}
	if !ml.UpdatedAt.IsZero() {
		tm("UpdatedAt", ml.UpdatedAt)
	}
	str("Addr", ml.Addr)
	str("Token", ml.Token)
	str("Subnet", ml.Subnet)
	str("State", string(ml.State))
	if ml.Hostname != "" {
		str("Hostname", ml.Hostname)
	}
	tm("ExpireTime", ml.ExpireTime)
	b = append(b, '}')
	return b, ok
}

// plain reports whether encoding/json writes s between quotes unchanged:
// printable ASCII other than the quote, the backslash and the characters
// it escapes for HTML.
func plain(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c < 0x20 || c > 0x7e || c == '"' || c == '\\' || c == '<' || c == '>' || c == '&' {
			return false
		}
	}
	return true
}
