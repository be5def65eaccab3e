package ipam

import (
	"math"
	"net"
	"testing"
	"time"

	"github.com/ironcast/ironcast/model"
)

func TestHWAddr(t *testing.T) {
	for _, s := range []string{"00:00:00:00:00:00", "02:00:0a:ff:10:9c", "ff:ff:ff:ff:ff:ff"} {
		h, ok := parseMAC(s)
		if !ok || h == 0 || h.String() != s {
			t.Errorf("parseMAC(%q) = %#x, %v; String %q", s, uint64(h), ok, h.String())
		}
	}
	// Other spellings of a 6-byte MAC come back in the canonical one.
	for in, want := range map[string]string{"02:00:0A:FF:10:9C": "02:00:0a:ff:10:9c", "02-00-0a-ff-10-9c": "02:00:0a:ff:10:9c", "0200.0aff.109c": "02:00:0a:ff:10:9c"} {
		if h, ok := parseMAC(in); !ok || h.String() != want {
			t.Errorf("parseMAC(%q) = %q, %v; want %q", in, h.String(), ok, want)
		}
	}
	if h, ok := parseMAC(""); !ok || h != 0 || h.String() != "" {
		t.Errorf(`parseMAC("") = %#x, %v`, uint64(h), ok)
	}
	for _, s := range []string{"02:00:0a:ff:10", "02:00:0a:ff:10:9g", "02:00:0a:ff:10:9c:00:01", "02:00:0a:ff:10;9c", "hello"} {
		if h, ok := parseMAC(s); ok {
			t.Errorf("parseMAC(%q) = %#x, want not ok", s, uint64(h))
		}
	}
	// Every 6-byte address survives the round trip.
	for _, hw := range []net.HardwareAddr{{1, 2, 3, 4, 5, 6}, {0xde, 0xad, 0xbe, 0xef, 0, 1}} {
		if h, ok := parseMAC(hw.String()); !ok || h.String() != hw.String() {
			t.Errorf("%s: got %q", hw, h.String())
		}
	}
}

func TestLeaseState(t *testing.T) {
	for _, s := range []model.LeaseState{model.LeaseOffered, model.LeaseBound, model.LeaseReleased, model.LeaseExpired, model.LeaseDeclined} {
		ls, ok := stateOf(s)
		if !ok || ls.model() != s {
			t.Errorf("stateOf(%q) = %d, %v", s, ls, ok)
		}
	}
	if _, ok := stateOf("leased"); ok {
		t.Error(`stateOf("leased") ok`)
	}
	if _, ok := stateOf(""); ok {
		t.Error(`stateOf("") ok`)
	}
}

func TestStamp(t *testing.T) {
	now := time.Date(2026, 12, 7, 13, 4, 5, 123456789, time.UTC)
	if got := stampOf(now).time(); !got.Equal(now) || got.Location() != time.UTC {
		t.Errorf("round trip: %v", got)
	}
	if s := stampOf(time.Time{}); s != 0 || !s.time().IsZero() {
		t.Errorf("zero time: %d %v", s, s.time())
	}
	far := time.Date(9999, 1, 1, 0, 0, 0, 0, time.UTC)
	if s := stampOf(far); s != math.MaxInt64 {
		t.Errorf("year 9999: %d", s)
	}
	if s := after(stampOf(now), time.Duration(math.MaxInt64)); s != math.MaxInt64 || stampOf(now) >= s {
		t.Errorf("after overflow: %d", s)
	}
	if s := after(stampOf(now), time.Second); s.time() != now.Add(time.Second) {
		t.Errorf("after: %v", s.time())
	}
}

// FuzzParseMAC holds parseMAC to net.ParseMAC: it accepts exactly the
// 6-byte addresses that net.ParseMAC does, and String gives them back in
// net's canonical spelling.
func FuzzParseMAC(f *testing.F) {
	for _, s := range []string{"", "02:00:0a:ff:10:9c", "02-00-0A-FF-10-9C", "0200.0aff.109c", "02:00:0a:ff:10", "zz:00:00:00:00:00", "02:00:0a:ff:10:9c:00:01"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		h, ok := parseMAC(s)
		hw, err := net.ParseMAC(s)
		want := s == "" || (err == nil && len(hw) == 6)
		if ok != want {
			t.Fatalf("parseMAC(%q) ok=%v, net.ParseMAC: %v %v", s, ok, hw, err)
		}
		if ok && s != "" && h.String() != hw.String() {
			t.Fatalf("parseMAC(%q).String() = %q, want %q", s, h.String(), hw.String())
		}
	})
}
