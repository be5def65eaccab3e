// Package cli is the ironcast command line: `ironcast serve`, which runs
// the daemon, and drpcli-style verbs over the REST API for every kind of
// object (`ironcast machines list`, `ironcast users token NAME`, ...).
//
// Execute is what cmd/ironcast calls; Run is the same with explicit
// arguments and streams, for tests. Neither calls os.Exit: they return the
// process exit code (0 success, 1 error, 2 usage), and every error is
// printed as one line on stderr, prefixed "ironcast: ".
package cli
