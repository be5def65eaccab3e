// Package harness boots real machines against a real ironcast server in
// isolation: it makes a network namespace with a bridge on a private range
// (10.77.0.0/24, the server at 10.77.0.1), runs the `ironcast serve` binary
// inside it with DHCP on that bridge only, starts QEMU machines whose taps
// are ports of the bridge, and watches what happens from both ends: the
// server's event stream and JSON log, and each machine's serial console.
//
// It is used by the end-to-end tests in test/e2e and by `ironcast
// selftest`, so it reports through errors and a log function, never through
// testing.TB. Nothing it creates touches the host's interfaces; everything
// is torn down by Env.Close, which is safe to call more than once and from a
// signal handler. Processes are killed by PID and also carry a parent-death
// signal, so an interrupted run leaves no QEMU or server behind.
//
// Waits are on events (a serial console line, a server event, an API
// state) and every wait is bounded by a deadline. A failed wait returns a
// *ChainError that names the machine, what was awaited, what broke, and the
// tails of the machine's serial console and of the server's log.
package harness
