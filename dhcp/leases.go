package dhcp

import (
	"context"
	"errors"
	"net/netip"
	"time"

	"github.com/ironcast/ironcast/model"
)

// Leases decides which address a client gets. ipam.Allocator implements it
// over the store; tests may use a function adapter. Implementations must be
// safe for concurrent use: the server calls them from every worker.
//
// Each method gets a request description and returns a Decision, or one
// of the errors below (possibly wrapped) for requests that are dropped
// without a reply. Any other error is an internal failure (a store write
// that did not complete); the server drops the packet and the client
// retries.
type Leases interface {
	// Discover chooses an address to offer and holds it for the client.
	// For a proxy subnet it returns ActionOffer with no address.
	Discover(ctx context.Context, req *LeaseRequest) (Decision, error)
	// Request binds (ActionAck) or refuses (ActionNak) the address the
	// client asks for, in any of the SELECTING, INIT-REBOOT, RENEWING and
	// REBINDING states of RFC 2131 section 4.3.2. An ACK is durable when
	// Request returns, or, if the Decision has a Commit, once Commit
	// reports success.
	Request(ctx context.Context, req *LeaseRequest) (Decision, error)
	// Release frees the client's address (ClientAddr).
	Release(ctx context.Context, req *LeaseRequest) error
	// Decline sets aside the address the client found in use (Requested).
	Decline(ctx context.Context, req *LeaseRequest) error
	// Inform returns the subnet (and reservation) serving a client that
	// already has an address (ClientAddr), for an ACK without a lease.
	Inform(ctx context.Context, req *LeaseRequest) (Decision, error)
	// Conflict records that addr, about to be offered to the client mac
	// (a Decision with Probe), answered a ping: a host the server does
	// not know uses it. The address is set aside and offered to no one
	// for a while.
	Conflict(ctx context.Context, addr netip.Addr, mac string) error
}

// Errors returned by Leases for requests that get no reply.
var (
	// ErrNoSubnet means no enabled subnet serves the request's link.
	ErrNoSubnet = errors.New("no subnet serves this link")
	// ErrNotReserved means the subnet serves only reserved clients.
	ErrNotReserved = errors.New("subnet serves only reservations")
	// ErrExhausted means the subnet has no address left to offer.
	ErrExhausted = errors.New("address range exhausted")
	// ErrNotOurs means the request is for another server or for a lease
	// this server has no record of (RFC 2131 says stay silent).
	ErrNotOurs = errors.New("not for this server")
)

// LeaseRequest describes a client message for Leases. The server fills it
// from the packet; Leases must not keep it after returning.
type LeaseRequest struct {
	// MAC is the client hardware address, lower-case and colon-separated.
	MAC string
	// Hostname is option 12, if sent.
	Hostname string
	// Requested is option 50 (requested IP address); zero if absent.
	Requested netip.Addr
	// ClientAddr is ciaddr; zero if unset.
	ClientAddr netip.Addr
	// ServerID is option 54 as sent by the client; zero if absent.
	ServerID netip.Addr
	// OtherServer is true when ServerID names a server other than this
	// one: the client took another server's offer (RFC 2131 4.3.2), so
	// Request should drop its offer and return ErrNotOurs.
	OtherServer bool
	// Relay is giaddr; zero for a client on a directly attached link.
	Relay netip.Addr
	// Links are the addresses that select the subnet, in order: the relay
	// address when relayed, else the addresses of the interface the
	// packet arrived on. Leases also try ClientAddr for renewals that
	// arrive by unicast from behind a relay.
	Links []netip.Addr
	// Interface is the name of the interface the packet arrived on.
	Interface string
}

// Action is what the server sends back.
type Action int

// Actions.
const (
	ActionNone  Action = iota // no reply
	ActionOffer               // DHCPOFFER
	ActionAck                 // DHCPACK
	ActionNak                 // DHCPNAK
)

func (a Action) String() string {
	switch a {
	case ActionOffer:
		return "offer"
	case ActionAck:
		return "ack"
	case ActionNak:
		return "nak"
	}
	return "none"
}

// Decision is the outcome of a Leases call.
type Decision struct {
	Action Action
	// Addr is the address offered or acked (yiaddr); zero for proxy
	// subnets, INFORM and NAK.
	Addr netip.Addr
	// Subnet serves the request. It is shared and read-only.
	Subnet *model.Subnet
	// Reservation is the client's reservation, or nil. Shared, read-only.
	Reservation *model.Reservation
	// LeaseTime is the lease length to give (option 51).
	LeaseTime time.Duration
	// NewBinding is true on an ACK that bound an address the client did
	// not hold before (not a renewal); the server then calls
	// Config.OnBound.
	NewBinding bool
	// Lease is the lease being stored, set with NewBinding. Its Revision
	// is zero when Commit is set.
	Lease model.Lease
	// Commit, when set on an ACK, is the lease write still on its way to
	// the store: the caller must not send the ACK before Commit has called
	// done with a nil error, and must drop it if done gets an error (the
	// Leases has then undone the binding in memory). Commit returns at
	// once; done runs exactly once, possibly before Commit returns, often
	// on the Leases' writer goroutine, so it must be quick and must not
	// block. A nil Commit means the write was durable when Request
	// returned.
	Commit func(done func(error))
	// Reason says why a NAK was sent (option 56 and the log).
	Reason string
	// Probe, on an OFFER, asks the server to ping Addr first (the
	// subnet's PingCheck, for an address new to the client). If the
	// address answers, the server calls Conflict and asks again.
	Probe bool
}

// Booter decides the boot information for a netbooting client.
// provision.Service implements it per machine; StaticBooter implements
// the firmware rules alone. A zero BootReply means "no boot options".
type Booter interface {
	BootReply(ctx context.Context, req model.BootRequest) (model.BootReply, error)
}

// BooterFunc adapts a function to Booter.
type BooterFunc func(ctx context.Context, req model.BootRequest) (model.BootReply, error)

// BootReply calls f.
func (f BooterFunc) BootReply(ctx context.Context, req model.BootRequest) (model.BootReply, error) {
	return f(ctx, req)
}

// Notifier receives the server's events ("dhcp.offer", "dhcp.ack",
// "dhcp.nak", "dhcp.release", "dhcp.decline"). *events.Bus implements it.
// Publish must not block.
type Notifier interface {
	Publish(ev model.Event)
}
