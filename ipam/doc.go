// Package ipam allocates DHCP leases: it implements dhcp.Leases over the
// Subnet, Reservation and Lease objects of a store.Store.
//
// # State
//
// The allocation state lives in memory: per subnet, a bitmap of the
// addresses of the active range that have a lease record or a
// reservation, a scan cursor, and a MAC → lease index; all leases by
// address. The store is the durable record. New loads subnets,
// reservations and leases; Run watches subnets and reservations and
// applies API edits without a restart, and marks bound leases whose time
// ran out as expired.
//
// # Address choice
//
// A reservation wins. Otherwise the client keeps the address it holds,
// else gets the address it asks for (option 50) or held before if that is
// free, else the next never-used address of the range, else the address
// whose lease ended longest ago. An offered address is held (OfferHold,
// default 30 s) and offered to no one else meanwhile. A declined address
// is set aside for DeclineHold (default 10 min).
//
// # Durability
//
// An ACK (and a RELEASE or DECLINE) is written to the store as a
// model.Lease keyed by address before Request returns, so the DHCPACK is
// sent only for a lease the store has made durable: with store/bolt that
// means fsync'ed, in a group commit shared with the other workers' writes.
// Offers are held in memory only and are not persisted: after a crash an
// offered-but-not-acked address is simply free again, and a client whose
// REQUEST arrives after a restart is acked if the address is still free.
// The expiry sweep's writes (bound → expired) are not on any reply's path.
//
// # Concurrency
//
// An Allocator is safe for concurrent use. One mutex guards the memory
// state; store writes happen outside it, ordered per address.
package ipam
