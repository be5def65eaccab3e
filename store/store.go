// Package store defines the contract between ironcast and its storage
// backends: kinds of keyed JSON values with revisions, compare-and-swap
// writes, unique secondary indexes, watches and consistent backups.
//
// The embedded backend is store/bolt (go.etcd.io/bbolt); the contract is
// shaped after etcd's (global revision, txn-based CAS, watch from a
// revision) so that an etcd backend can be added without touching callers.
// Every backend must pass storetest.Run.
package store

import (
	"context"
	"io"
)

// PutOp is one write of a PutBatch, with the arguments of Put.
type PutOp struct {
	Kind, Key string
	Value     []byte
	Want      int64
	Indexes   map[string][]string
}

// Revision preconditions for Put and Delete.
const (
	// MustNotExist makes Put fail with model.ErrExists if the key exists.
	MustNotExist int64 = 0
	// AnyRevision makes Put and Delete unconditional.
	AnyRevision int64 = -1
)

// Entry is one stored value. The caller owns Value.
type Entry struct {
	Key      string
	Value    []byte
	Revision int64
}

// EventType says what happened to a key.
type EventType string

// Event types delivered by Watch.
const (
	Created EventType = "created"
	Updated EventType = "updated"
	Deleted EventType = "deleted"
)

// Event is one committed change. For Deleted, Value holds the last value.
type Event struct {
	Type     EventType
	Kind     string
	Key      string
	Value    []byte
	Revision int64
}

// Store is implemented by every backend. All methods are safe for
// concurrent use. Errors are model.ErrNotFound, model.ErrExists or
// model.ErrConflict (possibly wrapped in a *model.ConflictError naming the
// index) where those apply, and wrapped backend errors otherwise.
type Store interface {
	// Get returns the value under (kind, key), or model.ErrNotFound.
	Get(ctx context.Context, kind, key string) (Entry, error)
	// List calls fn for every value of kind in key order, from one
	// consistent snapshot. fn must not call back into the store for writes.
	// An error from fn stops the walk and is returned.
	List(ctx context.Context, kind string, fn func(Entry) error) error
	// Count returns the number of values of kind.
	Count(ctx context.Context, kind string) (int, error)
	// Lookup returns the value whose unique index named index holds value,
	// or model.ErrNotFound. It is an indexed lookup, not a scan.
	Lookup(ctx context.Context, kind, index, value string) (Entry, error)
	// Put writes value under (kind, key) if the key's current revision is
	// want (MustNotExist: absent; AnyRevision: unconditional), replacing the
	// key's index values with indexes. A mismatch returns model.ErrExists
	// (for MustNotExist) or model.ErrConflict; an index value held by
	// another key returns a *model.ConflictError. It returns the new
	// revision once the write is durable.
	Put(ctx context.Context, kind, key string, value []byte, want int64, indexes map[string][]string) (int64, error)
	// PutBatch applies each op as Put would, all in one commit: an op
	// whose precondition fails or whose arguments are invalid is skipped
	// with its error and the others are written; ops on the same key apply
	// in order. It returns one error per op (nil: written) once every
	// written op is durable. A failed commit fails every op. It is how a
	// caller with many independent writes (the DHCP lease writer) pays for
	// one durable commit instead of one per write.
	PutBatch(ctx context.Context, ops []PutOp) []error
	// Delete removes (kind, key) if its revision is want (AnyRevision:
	// unconditional), with its index values. A missing key returns
	// model.ErrNotFound.
	Delete(ctx context.Context, kind, key string, want int64) error
	// Watch delivers events for kind ("" for all kinds) committed after the
	// call, in revision order, until ctx ends or the watcher falls too far
	// behind; either way the channel is closed.
	Watch(ctx context.Context, kind string) (<-chan Event, error)
	// Backup writes a consistent snapshot that the backend's restore
	// accepts, and returns the number of bytes written.
	Backup(ctx context.Context, w io.Writer) (int64, error)
	// Close releases the backend. Calls after Close fail.
	Close() error
}
