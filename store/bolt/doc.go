// Package bolt is the embedded store.Store backend on go.etcd.io/bbolt: one
// file, one process.
//
// # Layout
//
// The file holds these top-level buckets:
//
//	meta               "format" → "ironcast-bolt/1", "revision" → uint64 (big-endian),
//	                   "count:<kind>" → uint64, the number of values of kind
//	d:<kind>           key → 8-byte big-endian revision ‖ value (the caller's JSON)
//	r:<kind>           key → JSON map[index][]value, the key's current index values
//	i:<kind>:<index>   value → key, the unique index
//
// Kinds may not contain ':' so that bucket names cannot collide. The
// revision counter is global to the file, as in etcd: every Put and Delete
// of any kind takes the next revision, so committed revisions are exactly
// 1, 2, 3, … with no gaps.
//
// # Durability
//
// Writes go through bbolt's DB.Batch: concurrent Puts and Deletes arriving
// within Options.MaxBatchDelay (2ms) of each other are grouped into one
// transaction and share one fsync (group commit). A Put or
// Delete returns only after the transaction holding it has been written and
// fsync'ed, so an acknowledged write survives a process crash or power loss
// (given a disk that honours fsync). Options.NoSync gives that up and is for
// benchmarks only. Batch may run a write function more than once; the
// functions here recompute everything from the transaction each time, and a
// failed precondition (ErrExists, ErrConflict) is reported without aborting
// the other writes of the batch. PutBatch is one transaction of its own,
// committed at once (no batch delay): a caller that gathers its writes
// (the DHCP lease writer) pays one commit per gathering, and each op
// keeps its own precondition as in Batch.
//
// # Reads
//
// Get, Lookup, Count and List run in bbolt read transactions and never wait
// for writers. List holds its transaction while it calls fn: bbolt writers
// that must grow the file's memory mapping wait until it ends, so fn should
// not be slow (decode, don't do I/O).
//
// # Watch
//
// Watchers are fed in process, after commit, in revision order. Each watcher
// has a buffered channel (Options.WatchBuffer events); a watcher whose
// buffer is full when an event is delivered is closed and dropped rather
// than slowing writers down. A closed channel therefore means "ctx ended,
// store closed, or you fell behind": a caller that needs every change
// re-lists and watches again.
//
// # Backup and restore
//
// Backup streams a consistent snapshot of the whole file (bbolt's
// Tx.WriteTo) while reads and writes go on. Restore checks that a snapshot
// is a sound bbolt file holding an ironcast store before it atomically
// renames it over the store's path; it must run while no Store has the
// path open.
package bolt
