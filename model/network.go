package model

import (
	"errors"
	"fmt"
	"net/netip"
	"time"
)

// DHCPOption is a DHCP option by code. Value is a template over the
// client's request, rendered to text and encoded by the option's type
// (addresses, lists, numbers, strings) by the DHCP server.
type DHCPOption struct {
	Code  uint8
	Value string
}

// Subnet is a DHCP scope: a network, the range it hands out and the
// options it gives.
type Subnet struct {
	ObjectMeta
	Name        string
	Description string `json:",omitempty"`
	// Subnet is the network in CIDR form, e.g. "10.20.0.0/24".
	Subnet string
	// ActiveStart and ActiveEnd bound the dynamic range (inclusive).
	ActiveStart string `json:",omitempty"`
	ActiveEnd   string `json:",omitempty"`
	// ActiveLeaseTime and ReservedLeaseTime are lease lengths in seconds
	// (defaults 3600 and 7200).
	ActiveLeaseTime   int      `json:",omitempty"`
	ReservedLeaseTime int      `json:",omitempty"`
	Router            string   `json:",omitempty"`
	DNS               []string `json:",omitempty"`
	Domain            string   `json:",omitempty"`
	NTP               []string `json:",omitempty"`
	// NextServer is the TFTP server given to clients (siaddr and option 66);
	// empty means the address the request arrived on.
	NextServer string       `json:",omitempty"`
	Options    []DHCPOption `json:",omitempty"`
	// Enabled subnets are served; a disabled subnet is ignored.
	Enabled bool
	// Proxy subnets answer PXE clients with boot information only
	// (proxyDHCP); another server hands out addresses.
	Proxy bool `json:",omitempty"`
	// OnlyReservations serves only clients with a Reservation.
	OnlyReservations bool `json:",omitempty"`
	// Unmanaged subnets hand out addresses but no boot information.
	Unmanaged bool `json:",omitempty"`
	// PingCheck probes an address with ICMP echo before offering it.
	PingCheck bool `json:",omitempty"`
}

// Default lease lengths in seconds.
const (
	DefaultActiveLeaseTime   = 3600
	DefaultReservedLeaseTime = 7200
)

func (*Subnet) Kind() string                   { return KindSubnets }
func (s *Subnet) Key() string                  { return s.Name }
func (s *Subnet) Indexes() map[string][]string { return nil }

// Normalize fills lease times and, for a managed subnet, a default range
// covering the network less its first and last addresses.
func (s *Subnet) Normalize() {
	if s.ActiveLeaseTime == 0 {
		s.ActiveLeaseTime = DefaultActiveLeaseTime
	}
	if s.ReservedLeaseTime == 0 {
		s.ReservedLeaseTime = DefaultReservedLeaseTime
	}
	p, err := netip.ParsePrefix(s.Subnet)
	if err != nil || !p.Addr().Is4() {
		return
	}
	p = p.Masked()
	s.Subnet = p.String()
	if s.ActiveStart == "" && s.ActiveEnd == "" && !s.Proxy && p.Bits() <= 30 {
		first := p.Addr().Next()
		last := lastAddr(p).Prev()
		// Leave the first address for a router, as most racks do.
		s.ActiveStart, s.ActiveEnd = first.Next().String(), last.String()
	}
}

// Prefix returns the parsed network; it is valid only after Validate passed.
func (s *Subnet) Prefix() netip.Prefix {
	p, _ := netip.ParsePrefix(s.Subnet)
	return p.Masked()
}

// Range returns the parsed active range; it is valid only after Validate passed.
func (s *Subnet) Range() (start, end netip.Addr) {
	start, _ = netip.ParseAddr(s.ActiveStart)
	end, _ = netip.ParseAddr(s.ActiveEnd)
	return start, end
}

// Validate checks the network, range, addresses and lease times.
func (s *Subnet) Validate() error {
	var errs []error
	if err := validName("Name", s.Name); err != nil {
		errs = append(errs, err)
	}
	p, err := netip.ParsePrefix(s.Subnet)
	if err != nil || !p.Addr().Is4() {
		errs = append(errs, Invalid("Subnet", "%q is not an IPv4 CIDR", s.Subnet))
		return errors.Join(errs...)
	}
	p = p.Masked()
	inNet := func(field, v string) (netip.Addr, bool) {
		a, err := netip.ParseAddr(v)
		if err != nil || !a.Is4() {
			errs = append(errs, Invalid(field, "%q is not an IPv4 address", v))
			return a, false
		}
		if !p.Contains(a) {
			errs = append(errs, Invalid(field, "%s is outside %s", a, p))
			return a, false
		}
		return a, true
	}
	if !s.Proxy || s.ActiveStart != "" || s.ActiveEnd != "" {
		st, ok1 := inNet("ActiveStart", s.ActiveStart)
		en, ok2 := inNet("ActiveEnd", s.ActiveEnd)
		if ok1 && ok2 && en.Less(st) {
			errs = append(errs, Invalid("ActiveEnd", "%s is before ActiveStart %s", en, st))
		}
	}
	if s.Router != "" {
		inNet("Router", s.Router)
	}
	for i, d := range s.DNS {
		if a, err := netip.ParseAddr(d); err != nil || !a.Is4() {
			errs = append(errs, Invalid(fmt.Sprintf("DNS[%d]", i), "%q is not an IPv4 address", d))
		}
	}
	for i, d := range s.NTP {
		if a, err := netip.ParseAddr(d); err != nil || !a.Is4() {
			errs = append(errs, Invalid(fmt.Sprintf("NTP[%d]", i), "%q is not an IPv4 address", d))
		}
	}
	if s.NextServer != "" {
		if a, err := netip.ParseAddr(s.NextServer); err != nil || !a.Is4() {
			errs = append(errs, Invalid("NextServer", "%q is not an IPv4 address", s.NextServer))
		}
	}
	if s.ActiveLeaseTime < 60 {
		errs = append(errs, Invalid("ActiveLeaseTime", "must be at least 60 seconds"))
	}
	if s.ReservedLeaseTime < 60 {
		errs = append(errs, Invalid("ReservedLeaseTime", "must be at least 60 seconds"))
	}
	for i, o := range s.Options {
		if o.Code == 0 || o.Code == 255 {
			errs = append(errs, Invalid(fmt.Sprintf("Options[%d].Code", i), "%d is not a settable option", o.Code))
		}
	}
	return errors.Join(errs...)
}

func lastAddr(p netip.Prefix) netip.Addr {
	a := p.Masked().Addr().As4()
	host := uint32(1)<<(32-p.Bits()) - 1
	v := uint32(a[0])<<24 | uint32(a[1])<<16 | uint32(a[2])<<8 | uint32(a[3]) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// Reservation pins a MAC to an address, with options of its own that win
// over the subnet's.
type Reservation struct {
	ObjectMeta
	// Addr is the reserved IPv4 address and the key.
	Addr string
	// Token is the client's MAC address.
	Token       string
	Description string       `json:",omitempty"`
	NextServer  string       `json:",omitempty"`
	Options     []DHCPOption `json:",omitempty"`
}

func (*Reservation) Kind() string  { return KindReservations }
func (r *Reservation) Key() string { return r.Addr }

// Normalize canonicalises the address and MAC.
func (r *Reservation) Normalize() {
	if a, err := netip.ParseAddr(r.Addr); err == nil {
		r.Addr = a.String()
	}
	if hw, err := NormalizeMAC(r.Token); err == nil {
		r.Token = hw
	}
}

// Indexes makes each MAC reserve at most one address.
func (r *Reservation) Indexes() map[string][]string {
	return map[string][]string{"mac": {r.Token}}
}

// Validate checks the address and MAC.
func (r *Reservation) Validate() error {
	var errs []error
	if a, err := netip.ParseAddr(r.Addr); err != nil || !a.Is4() {
		errs = append(errs, Invalid("Addr", "%q is not an IPv4 address", r.Addr))
	}
	if _, err := NormalizeMAC(r.Token); err != nil {
		errs = append(errs, Invalid("Token", "%v", err))
	}
	if r.NextServer != "" {
		if a, err := netip.ParseAddr(r.NextServer); err != nil || !a.Is4() {
			errs = append(errs, Invalid("NextServer", "%q is not an IPv4 address", r.NextServer))
		}
	}
	return errors.Join(errs...)
}

// LeaseState is where a lease is in its life.
type LeaseState string

// Lease states.
const (
	LeaseOffered  LeaseState = "offered"
	LeaseBound    LeaseState = "bound"
	LeaseReleased LeaseState = "released"
	LeaseExpired  LeaseState = "expired"
	LeaseDeclined LeaseState = "declined"
)

// Lease records an address handed to (or refused by) a client.
type Lease struct {
	ObjectMeta
	// Addr is the leased IPv4 address and the key.
	Addr string
	// Token is the client's MAC address.
	Token    string
	Subnet   string
	State    LeaseState
	Hostname string `json:",omitempty"`
	// ExpireTime is when the lease (or an offer's hold, or a decline's
	// quarantine) ends.
	ExpireTime time.Time
}

func (*Lease) Kind() string  { return KindLeases }
func (l *Lease) Key() string { return l.Addr }

// Normalize canonicalises the address and MAC.
func (l *Lease) Normalize() {
	if a, err := netip.ParseAddr(l.Addr); err == nil {
		l.Addr = a.String()
	}
	if hw, err := NormalizeMAC(l.Token); err == nil {
		l.Token = hw
	}
}

// Indexes are empty: one MAC may hold leases in several subnets, and a
// declined address may have no MAC. The DHCP server keeps its own index.
func (l *Lease) Indexes() map[string][]string { return nil }

// Expired reports whether the lease has ended at now.
func (l *Lease) Expired(now time.Time) bool { return !now.Before(l.ExpireTime) }

// Validate checks the address, MAC and state.
func (l *Lease) Validate() error {
	var errs []error
	if a, err := netip.ParseAddr(l.Addr); err != nil || !a.Is4() {
		errs = append(errs, Invalid("Addr", "%q is not an IPv4 address", l.Addr))
	}
	if l.Token != "" {
		if _, err := NormalizeMAC(l.Token); err != nil {
			errs = append(errs, Invalid("Token", "%v", err))
		}
	}
	switch l.State {
	case LeaseOffered, LeaseBound, LeaseReleased, LeaseExpired, LeaseDeclined:
	default:
		errs = append(errs, Invalid("State", "%q is not a lease state", l.State))
	}
	return errors.Join(errs...)
}
