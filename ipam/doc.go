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
// applies API edits without a restart, forgets leases deleted through the
// API (rereading the leases whenever its watch falls behind, so that no
// delete is missed), and marks bound leases whose time ran out as
// expired.
//
// # Ping check
//
// For a subnet with PingCheck, Discover asks the server (Decision.Probe)
// to ping an address new to the client before offering it; an address
// that answers is recorded by Conflict as declined, with no MAC, for
// DeclineHold, and the next address is chosen.
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
// Every ACK (and every RELEASE, DECLINE and expiry) is written to the
// store as a model.Lease keyed by address, and the DHCPACK leaves only
// once that write is durable: with store/bolt, fsync'ed. No acked lease
// can be lost by a crash, so after a restart no address is bound to two
// clients.
//
// The write is asynchronous for the DHCP server: Request updates memory,
// queues the write and returns at once with a Decision whose Commit calls
// back when the write has completed; the server sends the reply from
// that callback, so its workers never wait for a disk. A group-commit
// writer (one goroutine, alive while there is work) takes every write
// queued so far, writes each lease once in its latest state, all
// concurrently so that store/bolt's Batch puts them in one transaction
// with one fsync, then calls back and starts over with what queued
// meanwhile. A round lasts about one MaxBatchDelay (2 ms by default) plus
// the commit; a lease waits at most two rounds. Release, Decline and the
// expiry sweep wait for their writes.
//
// If a write fails, the ACK is not sent (the server counts the request as
// dropped, reason "lease_error"), the failure is logged, and the lease in
// memory is put back to the state the store holds (a lease never stored
// becomes free again), so memory never claims more than the store.
//
// Offers are held in memory only and are not persisted: after a crash an
// offered-but-not-acked address is simply free again, and a client whose
// REQUEST arrives after a restart is acked if the address is still free.
// A client whose offer was lost may thus be offered another address after
// a restart; no address is ever acked to two clients.
//
// # Concurrency
//
// An Allocator is safe for concurrent use. One mutex guards the memory
// state; store writes happen outside it, and the writer's rounds keep
// the writes of one address in order.
package ipam
