package model

import (
	"crypto/rand"
	"fmt"
	"regexp"
	"time"
)

// Kinds name the collections of objects, as used in store keys and API paths.
const (
	KindMachines     = "machines"
	KindBootEnvs     = "bootenvs"
	KindTemplates    = "templates"
	KindParams       = "params"
	KindProfiles     = "profiles"
	KindSubnets      = "subnets"
	KindReservations = "reservations"
	KindLeases       = "leases"
	KindPools        = "pools"
	KindUsers        = "users"
)

// Kinds lists every kind of stored object, in a stable order.
var Kinds = []string{
	KindMachines, KindBootEnvs, KindTemplates, KindParams, KindProfiles,
	KindSubnets, KindReservations, KindLeases, KindPools, KindUsers,
}

// ObjectMeta is embedded in every stored object. Revision is assigned by the
// store on every write and is the value compared by compare-and-swap; it is
// also the API's ETag. Timestamps are set by the store helpers.
type ObjectMeta struct {
	// Revision of the object in the store; 0 for an object never stored.
	Revision  int64     `json:"Revision,omitempty"`
	CreatedAt time.Time `json:"CreatedAt,omitzero"`
	UpdatedAt time.Time `json:"UpdatedAt,omitzero"`
}

// GetMeta returns the object's metadata for the store helpers to update.
func (m *ObjectMeta) GetMeta() *ObjectMeta { return m }

// Object is what the store and the API handle generically. Pointer types of
// every model object implement it.
type Object interface {
	// Kind is the collection the object belongs to, for example "machines".
	Kind() string
	// Key is the object's primary key within its kind.
	Key() string
	// Normalize fills defaults and canonicalises values (lower-case MACs,
	// generated UUIDs) in place. It is called before Validate.
	Normalize()
	// Validate reports every invalid field, joined with errors.Join; each is
	// a *ValidationError.
	Validate() error
	// Indexes returns the object's unique secondary index values by index
	// name, for example {"mac": ["52:54:00:12:34:56"]}. The store keeps
	// them and refuses a write whose value another object holds.
	Indexes() map[string][]string
	GetMeta() *ObjectMeta
}

// New returns a new empty object of kind, or nil for an unknown kind.
func New(kind string) Object {
	switch kind {
	case KindMachines:
		return &Machine{}
	case KindBootEnvs:
		return &BootEnv{}
	case KindTemplates:
		return &Template{}
	case KindParams:
		return &Param{}
	case KindProfiles:
		return &Profile{}
	case KindSubnets:
		return &Subnet{}
	case KindReservations:
		return &Reservation{}
	case KindLeases:
		return &Lease{}
	case KindPools:
		return &Pool{}
	case KindUsers:
		return &User{}
	}
	return nil
}

var nameRE = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// validName checks a human-assigned key such as a bootenv or profile name.
func validName(field, v string) error {
	if v == "" {
		return Invalid(field, "is required")
	}
	if !nameRE.MatchString(v) {
		return Invalid(field, "%q must be 1-128 letters, digits, '.', '_' or '-', starting with a letter or digit", v)
	}
	return nil
}

var uuidRE = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// NewUUID returns a random RFC 9562 version 4 UUID in canonical lower-case form.
func NewUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // crypto/rand.Read never fails (Go 1.24+).
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// ValidUUID reports whether s is a canonical lower-case UUID.
func ValidUUID(s string) bool { return uuidRE.MatchString(s) }
