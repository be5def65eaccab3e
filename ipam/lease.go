package ipam

import (
	"math"
	"net"
	"time"

	"github.com/ironcast/ironcast/model"
)

// lease is one lease in memory. Fields are guarded by Allocator.mu.
//
// It holds no pointers, so the garbage collector marks it without
// scanning it. With tens of thousands of leases live, a lease of strings,
// times and a subnet pointer (three heap objects, eleven pointers) cost
// every GC cycle about 140 ns per lease: 7 ms per cycle at 50,000 leases
// on the benchmark machine, paid by every DORA. Now a cycle takes 1.6 ms
// there, most of it the two maps that point at the leases
// (BenchmarkGCWithLeases). Hostnames, the one free-form field, live in
// Allocator.hostnames.
type lease struct {
	addr uint32
	// sub is the subnet's position in Allocator.subnets plus one; 0: in no
	// enabled subnet.
	sub   uint16
	state leaseState
	// stored is true when the store holds a record for addr.
	stored  bool
	mac     hwaddr
	expire  stamp
	created stamp
	// ver counts the changes queued for the store (Allocator.write).
	ver uint64
	// saved is the state the store holds, for reverting a failed write;
	// meaningful when stored is true.
	saved saved
	// savedAt is the writer round that stored saved (0: loaded by New).
	savedAt uint64
}

// saved is the state of a lease the store last acknowledged (its hostname
// is in Allocator.savedHostnames).
type saved struct {
	mac    hwaddr
	state  leaseState
	expire stamp
}

// hwaddr is a 6-byte MAC address in the low 48 bits, with bit 48 set when
// there is one (a declined address has none). The DHCP server only passes
// 6-byte hardware addresses, and model.Lease.Token holds only those.
type hwaddr uint64

const hwPresent hwaddr = 1 << 48

// parseMAC packs a MAC address in any spelling net.ParseMAC accepts; ok
// is false for anything but a 6-byte MAC. The empty string is no MAC,
// with ok true.
func parseMAC(s string) (h hwaddr, ok bool) {
	if s == "" {
		return 0, true
	}
	hw, err := net.ParseMAC(s)
	if err != nil || len(hw) != 6 {
		return 0, false
	}
	for _, b := range hw {
		h = h<<8 | hwaddr(b)
	}
	return h | hwPresent, true
}

// String is the MAC as the DHCP server and the store spell it: lower-case
// and colon-separated; "" for none.
func (h hwaddr) String() string {
	if h&hwPresent == 0 {
		return ""
	}
	var b [6]byte
	for i := range b {
		b[i] = byte(h >> (8 * (5 - i)))
	}
	return net.HardwareAddr(b[:]).String()
}

// leaseState is model.LeaseState as a small integer.
type leaseState uint8

const (
	stateOffered leaseState = iota + 1
	stateBound
	stateReleased
	stateExpired
	stateDeclined
)

var stateNames = [...]model.LeaseState{
	stateOffered:  model.LeaseOffered,
	stateBound:    model.LeaseBound,
	stateReleased: model.LeaseReleased,
	stateExpired:  model.LeaseExpired,
	stateDeclined: model.LeaseDeclined,
}

func (s leaseState) model() model.LeaseState {
	if int(s) < len(stateNames) {
		return stateNames[s]
	}
	return ""
}

// stateOf converts a stored state; ok is false for an unknown one.
func stateOf(s model.LeaseState) (leaseState, bool) {
	for i, n := range stateNames {
		if n == s && n != "" {
			return leaseState(i), true
		}
	}
	return 0, false
}

// stamp is a wall-clock time in Unix nanoseconds; 0 is the zero time.
// Times beyond what int64 nanoseconds hold (after 2262) are clamped.
type stamp int64

func stampOf(t time.Time) stamp {
	switch {
	case t.IsZero():
		return 0
	case t.After(maxTime):
		return math.MaxInt64
	case t.Before(minTime):
		return math.MinInt64 + 1
	}
	return stamp(t.UnixNano())
}

var (
	maxTime = time.Unix(0, math.MaxInt64)
	minTime = time.Unix(0, math.MinInt64+1)
)

// time is s in UTC, or the zero time.
func (s stamp) time() time.Time {
	if s == 0 {
		return time.Time{}
	}
	return time.Unix(0, int64(s)).UTC()
}

// after returns now plus d.
func after(now stamp, d time.Duration) stamp {
	if d > 0 && now > math.MaxInt64-stamp(d) {
		return math.MaxInt64
	}
	return now + stamp(d)
}
