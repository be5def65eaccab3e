package api

import (
	"context"
	"io"

	"github.com/ironcast/ironcast/model"
)

// Backend is what the API needs from the provisioning core.
// provision.Service implements it; all methods are safe for concurrent use.
type Backend interface {
	// List returns every object of kind (built-in bootenvs/templates/profiles merged with stored ones), secure param values sealed.
	List(ctx context.Context, kind string) ([]model.Object, error)
	// Get returns one object or model.ErrNotFound.
	Get(ctx context.Context, kind, key string) (model.Object, error)
	// Create normalises, validates (including param values against their JSON Schemas and template parsing), seals secure params, hashes user passwords, and stores obj, setting its Revision. model.ErrExists if the key is taken; *model.ValidationError(s) joined for bad fields; *model.ConflictError for a unique index (e.g. a MAC owned by another machine); model.ErrReadOnly for built-ins.
	Create(ctx context.Context, obj model.Object) error
	// Update replaces the stored object if its revision is want (store.AnyRevision = unconditional); model.ErrConflict on mismatch.
	Update(ctx context.Context, obj model.Object, want int64) error
	// Delete removes the object if its revision is want and returns what was deleted.
	Delete(ctx context.Context, kind, key string, want int64) (model.Object, error)
	// Reveal returns a copy of obj with secure param values decrypted (for callers allowed to see them).
	Reveal(obj model.Object) (model.Object, error)
	// AggregateParams resolves every param of a machine (machine → profiles in order → bootenv → global profile → default), with sources; secure values sealed.
	AggregateParams(ctx context.Context, uuid string) ([]model.ResolvedParam, error)
	// Backup streams a consistent snapshot of the store.
	Backup(ctx context.Context, w io.Writer) (int64, error)
}
