// Package dhcp is ironcast's DHCPv4 and proxyDHCP server, built on
// github.com/insomniacslk/dhcp's packet codec.
//
// A Server answers on the interfaces it is given (SO_BINDTODEVICE, ports
// 67 and 4011) and nowhere else. Each packet is read → parsed →
// classified (options 60, 77, 93, 97, 175) → decided → answered; a bad
// packet is counted and dropped, never fatal, and every handler
// recovers panics. Addresses come from a Leases (ipam.Allocator), boot
// information from a Booter (provision's, or StaticBooter), both
// declared here in model terms.
//
// # Durability of ACKs
//
// An ACK leaves only once the lease it grants is durable in the store.
// Leases.Request may return before its write completes, with a
// Decision.Commit; the server then moves on to the next packet and sends
// the ACK from Commit's callback, or drops it (counter reason
// "lease_error") if the write failed. Workers therefore never wait for a
// disk, and a crash can lose only ACKs that were never sent. OnBound
// (Machine.Address) runs after the reply, in order, on a goroutine of its
// own.
//
// # Packet path
//
// Each socket has a reader that takes up to 32 datagrams per recvmmsg(2)
// and queues them for the workers (Config.Workers), and a sender that
// sends the replies gathered meanwhile, each to its own destination, with
// one sendmmsg(2): the ACKs a lease commit releases together, or the
// OFFERs of a busy moment, cost one system call. A reply that the kernel
// refuses is counted (reason "send_error") without holding up the rest.
//
// # Ping check
//
// For a subnet with PingCheck (off by default), an OFFER of an address
// new to the client waits for one ICMP echo with a PingTimeout (300 ms)
// timeout, without holding a worker. An address that answers is reported
// to Leases.Conflict (set aside as declined) and the next address is
// tried, up to three; the OFFER then leaves with a free one. Pinging
// needs a raw ICMP socket (CAP_NET_RAW); without one the server logs a
// warning and offers without checking.
//
// # Metrics
//
// ironcast_dhcp_received_total{type}, ironcast_dhcp_sent_total{type},
// ironcast_dhcp_dropped_total{reason} and ironcast_dhcp_handler_seconds
// (from dequeue to reply sent, store write included).
//
// # Concurrency
//
// A Server is created with New, which binds every socket, and served
// once with Serve. Leases, Booter and Notifier implementations must be
// safe for concurrent use.
package dhcp
