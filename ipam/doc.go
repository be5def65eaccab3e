// Package ipam allocates DHCP leases: it implements dhcp.Leases over the
// Subnet, Reservation and Lease objects of a store.Store.
//
// # State
//
// The allocation state lives in memory: per subnet, a bitmap of the
// addresses of the active range that have a lease record or a
// reservation, a scan cursor, and a MAC → lease index; all leases by
// address. A lease in memory holds no pointers (its address, MAC, state
// and times are numbers; hostnames sit in a map beside the leases), so
// the garbage collector does not scan tens of thousands of them on every
// cycle and CPU per DORA stays flat as leases accumulate. The store is
// the durable record. New loads subnets,
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
// Every lease change is written to the store as a model.Lease keyed by
// address: offers, ACKs (new bindings and renewals), RELEASE, DECLINE,
// ping conflicts and expiry. They differ in when the reply leaves:
//
//   - ACK: fsync before the ACK leaves. Request updates memory, queues the
//     write and returns a Decision whose Commit calls back once the write
//     is durable (with store/bolt, fsync'ed); the server sends the ACK
//     from that callback. No acked lease can be lost by a crash, so after
//     a restart no address is bound to two clients.
//   - OFFER: write-behind. Discover updates memory, queues the write and
//     the OFFER leaves at once, without waiting for the disk. The offer is
//     normally on disk within one or two writer rounds (~15 ms); a crash
//     within that window loses it, and the address is then free
//     after the restart (the client's REQUEST is acked if it still is).
//     An offer that reached the store is loaded by New: until its hold
//     (OfferHold) ends the address stays held for that MAC and is offered
//     to no one else; once the hold has ended it is free (and the sweep
//     stores it as expired).
//   - RELEASE, DECLINE and the expiry sweep wait for their writes before
//     they return; a ping conflict (Conflict) and a client that took
//     another server's offer are written behind.
//
// A group-commit writer (one goroutine, alive while there is work) takes
// every write queued so far, writes each lease once in its latest state
// (an OFFER followed by its REQUEST costs one write when both are queued
// before the round starts), in one store transaction (Store.PutBatch;
// store/bolt: one commit, two fsyncs), then calls back
// and starts over with what queued meanwhile. A commit costs about the
// same CPU for one lease as for dozens, so rounds start at most once per
// Config.CommitInterval (10 ms by default), or earlier once 32 writes that
// a reply waits for are queued (which bounds the burst of ACKs that leave
// together at the end of a round); writes that no reply waits for
// (offers) do not count toward those 32, and alone they wait until
// the oldest is CommitInterval old, so that the REQUEST that follows an
// OFFER shares its commit. A round itself lasts one commit (a few ms on
// an SSD). An ACK therefore leaves about 1-15 ms after its REQUEST (near
// saturation, 40,000 DORA/s or more on one core in test/bench/dhcp,
// queueing adds tens of ms), and a crash loses at most the offers of the
// last ~15 ms. Workers never wait for a disk.
//
// If a write fails, the lease in memory is put back to the state the
// store holds (a lease never stored becomes free again), so memory never
// claims more than the store; the failure is logged, and an ACK waiting
// for the write is not sent (the server counts the request as dropped,
// reason "lease_error"). An OFFER already sent stays valid for the client:
// its REQUEST is acked if the address is still free.
//
// # Concurrency
//
// An Allocator is safe for concurrent use. One mutex guards the memory
// state; store writes happen outside it, and the writer's rounds keep
// the writes of one address in order.
package ipam
