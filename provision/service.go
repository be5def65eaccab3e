package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"slices"
	"sort"

	"golang.org/x/crypto/bcrypt"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/secrets"
	"github.com/ironcast/ironcast/store"
	"github.com/ironcast/ironcast/templates"
)

// Catalog is the built-in, read-only content (package bootenvs). A stored
// object of the same kind and name overrides a built-in one.
type Catalog interface {
	BootEnvs() []*model.BootEnv
	Templates() []*model.Template
}

// Notifier receives what the service does (renders, transitions), for the
// event stream and machine timelines. *events.Bus implements it.
type Notifier interface {
	Publish(model.Event)
}

// Config wires a Service.
type Config struct {
	Store  store.Store
	Sealer *secrets.Sealer
	// Catalog may be nil (no built-in content).
	Catalog Catalog
	// Tokens may be nil: templates then cannot embed tokens.
	Tokens Tokens
	// Notifier may be nil.
	Notifier Notifier
	// HTTPPort and APIPort are used in the URLs rendered for machines
	// (defaults 8091 and 8092).
	HTTPPort, APIPort int
	// UnknownBootEnv is booted by machines ironcast does not know
	// (default "discovery").
	UnknownBootEnv string
	// BootRoot is the directory boot files are served from; bootenvs
	// report which of their files it lacks. Empty: not checked.
	BootRoot string
	// Clock times state changes, allocations and the reclaim loop
	// (nil: the system clock).
	Clock Clock
	// RenderCache bounds the cache of rendered files (zero value:
	// defaults). Renders are cached only while Run runs.
	RenderCache RenderCacheConfig
	Logger      *slog.Logger
}

// Service implements the provisioning use cases.
type Service struct {
	st             store.Store
	sealer         *secrets.Sealer
	catalog        Catalog
	tokens         Tokens
	notify         Notifier
	engine         *templates.Engine
	log            *slog.Logger
	schemas        *schemaCache
	firmware       *firmwareCache
	httpPort       int
	apiPort        int
	unknownBootEnv string
	bootRoot       string
	sums           fileSums
	timelines      *Timelines
	clock          Clock
	// builtinEnvs and builtinTemplates are read-only copies of the
	// catalog, shared by renders.
	builtinEnvs      map[string]*model.BootEnv
	builtinTemplates map[string]*model.Template
	state            renderState
	cache            *renderCache
}

// New returns a Service. Store and Sealer are required.
func New(cfg Config) (*Service, error) {
	if cfg.Store == nil || cfg.Sealer == nil {
		return nil, errors.New("provision: Store and Sealer are required")
	}
	if cfg.Logger == nil {
		cfg.Logger = slog.New(slog.DiscardHandler)
	}
	if cfg.HTTPPort == 0 {
		cfg.HTTPPort = 8091
	}
	if cfg.APIPort == 0 {
		cfg.APIPort = 8092
	}
	if cfg.UnknownBootEnv == "" {
		cfg.UnknownBootEnv = model.BootEnvDiscovery
	}
	if cfg.Clock == nil {
		cfg.Clock = systemClock{}
	}
	s := &Service{
		st: cfg.Store, sealer: cfg.Sealer, catalog: cfg.Catalog, tokens: cfg.Tokens,
		notify: cfg.Notifier, engine: templates.NewEngine(), log: cfg.Logger,
		schemas: newSchemaCache(), firmware: newFirmwareCache(4096),
		httpPort: cfg.HTTPPort, apiPort: cfg.APIPort, unknownBootEnv: cfg.UnknownBootEnv,
		bootRoot: cfg.BootRoot, clock: cfg.Clock, cache: newRenderCache(cfg.RenderCache),
		builtinEnvs: map[string]*model.BootEnv{}, builtinTemplates: map[string]*model.Template{},
	}
	s.timelines = newTimelines(s, TimelineEntries, TimelineMachines)
	if s.catalog != nil {
		for _, t := range s.catalog.Templates() {
			if err := s.engine.Set(t.ID, t.Contents); err != nil {
				return nil, fmt.Errorf("built-in template %s: %w", t.ID, err)
			}
			s.builtinTemplates[t.ID] = s.builtin(model.KindTemplates, t.ID).(*model.Template)
		}
		for _, b := range s.catalog.BootEnvs() {
			s.builtinEnvs[b.Name] = s.builtin(model.KindBootEnvs, b.Name).(*model.BootEnv)
		}
	}
	return s, nil
}

// LoadTemplates puts every stored template into the engine (stored ones
// override built-ins of the same ID). Call it once at start; Run keeps the
// engine current afterwards.
func (s *Service) LoadTemplates(ctx context.Context) error {
	ts, err := store.List[model.Template](ctx, s.st)
	if err != nil {
		return err
	}
	for _, t := range ts {
		if err := s.engine.Set(t.ID, t.Contents); err != nil {
			s.log.Warn("stored template does not parse; keeping the previous one", "template", t.ID, "err", err)
		}
	}
	return nil
}

// publish sends an event when a Notifier is configured.
func (s *Service) publish(ev model.Event) {
	if s.notify != nil {
		s.notify.Publish(ev)
	}
}

// checkTemplate parses contents in a scratch engine, so a broken template
// never reaches the live one.
func checkTemplate(id, contents string) error {
	return templates.NewEngine().Set(id, contents)
}

// Store returns the underlying store.
func (s *Service) Store() store.Store { return s.st }

// EnsureDefaults creates the global profile and the default pool when they
// do not exist. It is idempotent.
func (s *Service) EnsureDefaults(ctx context.Context) error {
	for _, obj := range []model.Object{
		&model.Profile{Name: model.GlobalProfile, Description: "Params for every machine."},
		&model.Pool{Name: model.DefaultPool, Description: "Machines not in another pool."},
	} {
		if err := store.Create(ctx, s.st, obj); err != nil && !errors.Is(err, model.ErrExists) {
			return fmt.Errorf("create %s %s: %w", obj.Kind(), obj.Key(), err)
		}
	}
	return nil
}

// builtin returns the built-in object of kind and key, or nil.
func (s *Service) builtin(kind, key string) model.Object {
	if s.catalog == nil {
		return nil
	}
	switch kind {
	case model.KindBootEnvs:
		for _, b := range s.catalog.BootEnvs() {
			if b.Name == key {
				c := cloneObject(b).(*model.BootEnv)
				c.ReadOnly = true
				return c
			}
		}
	case model.KindTemplates:
		for _, t := range s.catalog.Templates() {
			if t.ID == key {
				c := cloneObject(t).(*model.Template)
				c.ReadOnly = true
				return c
			}
		}
	}
	return nil
}

func (s *Service) builtins(kind string) []model.Object {
	if s.catalog == nil {
		return nil
	}
	var out []model.Object
	switch kind {
	case model.KindBootEnvs:
		for _, b := range s.catalog.BootEnvs() {
			out = append(out, s.builtin(kind, b.Name))
		}
	case model.KindTemplates:
		for _, t := range s.catalog.Templates() {
			out = append(out, s.builtin(kind, t.ID))
		}
	}
	return out
}

// List returns every object of kind in key order, built-ins merged with
// stored objects (stored ones win). Secure values stay sealed.
func (s *Service) List(ctx context.Context, kind string) ([]model.Object, error) {
	if model.New(kind) == nil {
		return nil, fmt.Errorf("kind %q: %w", kind, model.ErrNotFound)
	}
	var out []model.Object
	seen := map[string]bool{}
	err := s.st.List(ctx, kind, func(e store.Entry) error {
		obj, err := decode(kind, e)
		if err != nil {
			return err
		}
		seen[obj.Key()] = true
		out = append(out, obj)
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list %s: %w", kind, err)
	}
	added := false
	for _, b := range s.builtins(kind) {
		if !seen[b.Key()] {
			out = append(out, b)
			added = true
		}
	}
	if added {
		sort.Slice(out, func(i, j int) bool { return out[i].Key() < out[j].Key() })
	}
	for _, o := range out {
		if be, ok := o.(*model.BootEnv); ok {
			s.checkAvailable(be)
		}
	}
	return out, nil
}

// Get returns one object (stored, else built-in) or model.ErrNotFound.
func (s *Service) Get(ctx context.Context, kind, key string) (model.Object, error) {
	if model.New(kind) == nil {
		return nil, fmt.Errorf("kind %q: %w", kind, model.ErrNotFound)
	}
	e, err := s.st.Get(ctx, kind, key)
	if errors.Is(err, model.ErrNotFound) {
		if b := s.builtin(kind, key); b != nil {
			if be, ok := b.(*model.BootEnv); ok {
				s.checkAvailable(be)
			}
			return b, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("get %s %q: %w", kind, key, err)
	}
	obj, err := decode(kind, e)
	if be, ok := obj.(*model.BootEnv); ok {
		s.checkAvailable(be)
	}
	return obj, err
}

func decode(kind string, e store.Entry) (model.Object, error) {
	obj := model.New(kind)
	if err := json.Unmarshal(e.Value, obj); err != nil {
		return nil, fmt.Errorf("decode %s %q: %w", kind, e.Key, err)
	}
	obj.GetMeta().Revision = e.Revision
	return obj, nil
}

// Create checks and stores a new object.
func (s *Service) Create(ctx context.Context, obj model.Object) error {
	if err := s.prepare(ctx, obj, nil); err != nil {
		return err
	}
	if err := store.Create(ctx, s.st, obj); err != nil {
		return err
	}
	s.afterWrite(obj)
	return nil
}

// Update replaces the stored object if its revision is want
// (store.AnyRevision: unconditional). Writing a built-in's name stores an
// override.
func (s *Service) Update(ctx context.Context, obj model.Object, want int64) error {
	prev, err := s.st.Get(ctx, obj.Kind(), obj.Key())
	var old model.Object
	switch {
	case errors.Is(err, model.ErrNotFound):
		if s.builtin(obj.Kind(), obj.Key()) == nil {
			return fmt.Errorf("update %s %q: %w", obj.Kind(), obj.Key(), model.ErrNotFound)
		}
		want = store.MustNotExist // first write of a built-in stores an override
	case err != nil:
		return fmt.Errorf("update %s %q: %w", obj.Kind(), obj.Key(), err)
	default:
		if old, err = decode(obj.Kind(), prev); err != nil {
			return err
		}
		if want != store.AnyRevision && want != prev.Revision {
			return fmt.Errorf("update %s %q: revision %d, want %d: %w", obj.Kind(), obj.Key(), prev.Revision, want, model.ErrConflict)
		}
		if want == store.AnyRevision {
			want = prev.Revision
		}
		obj.GetMeta().CreatedAt = old.GetMeta().CreatedAt
	}
	if err := s.prepare(ctx, obj, old); err != nil {
		return err
	}
	if err := store.Put(ctx, s.st, obj, want); err != nil {
		return err
	}
	s.afterWrite(obj)
	return nil
}

// Delete removes an object if its revision is want and returns it.
func (s *Service) Delete(ctx context.Context, kind, key string, want int64) (model.Object, error) {
	e, err := s.st.Get(ctx, kind, key)
	if errors.Is(err, model.ErrNotFound) && s.builtin(kind, key) != nil {
		return nil, fmt.Errorf("delete %s %q: built-in: %w", kind, key, model.ErrReadOnly)
	}
	if err != nil {
		return nil, fmt.Errorf("delete %s %q: %w", kind, key, err)
	}
	obj, err := decode(kind, e)
	if err != nil {
		return nil, err
	}
	if err := s.checkDelete(ctx, obj); err != nil {
		return nil, err
	}
	if want == store.AnyRevision {
		want = e.Revision
	}
	if err := store.Delete(ctx, s.st, kind, key, want); err != nil {
		return nil, err
	}
	s.afterWrite(obj)
	return obj, nil
}

// Backup streams a consistent snapshot of the store.
func (s *Service) Backup(ctx context.Context, w io.Writer) (int64, error) {
	return s.st.Backup(ctx, w)
}

// prepare normalises and validates obj against the model and the rest of
// the store, seals secure params and hashes passwords. old is the stored
// object being replaced, or nil.
func (s *Service) prepare(ctx context.Context, obj model.Object, old model.Object) error {
	obj.Normalize()
	var errs []error
	if err := obj.Validate(); err != nil {
		errs = append(errs, err)
	}
	switch o := obj.(type) {
	case *model.Machine:
		if om, ok := old.(*model.Machine); ok && om.Locked && o.Locked {
			return fmt.Errorf("machine %s is locked; unlock it first (Locked: false): %w", o.UUID, model.ErrReadOnly)
		}
		if o.BootEnv == "" {
			o.BootEnv = s.unknownBootEnv
		}
		stampStateChange(o, old, s.clock.Now())
		errs = append(errs, s.checkRefs(ctx, o.BootEnv, o.Profiles, o.Pool)...)
		p, err := s.checkParams(ctx, "Params", o.Params)
		errs = append(errs, err)
		o.Params = p
	case *model.Profile:
		p, err := s.checkParams(ctx, "Params", o.Params)
		errs = append(errs, err)
		o.Params = p
	case *model.BootEnv:
		o.ReadOnly, o.Available, o.Errors = false, false, nil
		p, err := s.checkParams(ctx, "Params", o.Params)
		errs = append(errs, err)
		o.Params = p
		for i, t := range o.Templates {
			if t.Contents != "" {
				if err := checkTemplate(o.Name+"/"+t.Name, t.Contents); err != nil {
					errs = append(errs, model.Invalid(fmt.Sprintf("Templates[%d].Contents", i), "%v", err))
				}
			}
		}
	case *model.Template:
		o.ReadOnly = false
		if err := checkTemplate(o.ID, o.Contents); err != nil {
			errs = append(errs, model.Invalid("Contents", "%v", err))
		}
	case *model.Param:
		if len(o.Schema) > 0 {
			if _, err := s.schemas.compile(o); err != nil {
				errs = append(errs, model.Invalid("Schema", "%v", err))
			} else if o.Default != nil {
				if err := s.schemas.validate(o, o.Default); err != nil {
					errs = append(errs, model.Invalid("Default", "%v", err))
				}
			}
		}
	case *model.Pool:
		errs = append(errs, s.checkRefs(ctx, o.BootEnv, o.Profiles, "")...)
	case *model.User:
		if o.Password != "" {
			h, err := bcrypt.GenerateFromPassword([]byte(o.Password), bcrypt.DefaultCost)
			if err != nil {
				return fmt.Errorf("hash password: %w", err)
			}
			o.PasswordHash = string(h)
		} else if ou, ok := old.(*model.User); ok {
			o.PasswordHash = ou.PasswordHash
		} else {
			o.PasswordHash = ""
		}
		o.Password = ""
	}
	return errors.Join(errs...)
}

// checkRefs verifies that a bootenv, profiles and pool exist.
func (s *Service) checkRefs(ctx context.Context, bootenv string, profiles []string, pool string) []error {
	var errs []error
	if bootenv != "" {
		if _, err := s.Get(ctx, model.KindBootEnvs, bootenv); errors.Is(err, model.ErrNotFound) {
			errs = append(errs, model.Invalid("BootEnv", "bootenv %q does not exist", bootenv))
		}
	}
	for i, p := range profiles {
		if _, err := s.st.Get(ctx, model.KindProfiles, p); errors.Is(err, model.ErrNotFound) {
			errs = append(errs, model.Invalid(fmt.Sprintf("Profiles[%d]", i), "profile %q does not exist", p))
		}
	}
	if pool != "" && pool != model.DefaultPool {
		if _, err := s.st.Get(ctx, model.KindPools, pool); errors.Is(err, model.ErrNotFound) {
			errs = append(errs, model.Invalid("Pool", "pool %q does not exist", pool))
		}
	}
	return errs
}

// checkDelete refuses to delete profiles, bootenvs and pools in use, and
// the global profile.
func (s *Service) checkDelete(ctx context.Context, obj model.Object) error {
	var inUse func(m *model.Machine) bool
	switch o := obj.(type) {
	case *model.Profile:
		if o.Name == model.GlobalProfile {
			return fmt.Errorf("the global profile cannot be deleted: %w", model.ErrReadOnly)
		}
		inUse = func(m *model.Machine) bool { return slices.Contains(m.Profiles, o.Name) }
	case *model.BootEnv:
		if s.builtin(o.Kind(), o.Name) != nil {
			return nil // deleting an override falls back to the built-in
		}
		inUse = func(m *model.Machine) bool { return m.BootEnv == o.Name }
	case *model.Pool:
		if o.Name == model.DefaultPool {
			return fmt.Errorf("the default pool cannot be deleted: %w", model.ErrReadOnly)
		}
		inUse = func(m *model.Machine) bool { return m.Pool == o.Name }
	case *model.Machine:
		if o.Locked {
			return fmt.Errorf("machine %s is locked: %w", o.UUID, model.ErrReadOnly)
		}
		return nil
	default:
		return nil
	}
	errUsed := errors.New("in use")
	var user string
	err := s.st.List(ctx, model.KindMachines, func(e store.Entry) error {
		var m model.Machine
		if err := json.Unmarshal(e.Value, &m); err != nil {
			return err
		}
		if inUse(&m) {
			user = m.Name
			return errUsed
		}
		return nil
	})
	if errors.Is(err, errUsed) {
		return &model.ConflictError{Field: "Name", Message: fmt.Sprintf("%s %q is used by machine %s", obj.Kind(), obj.Key(), user)}
	}
	return err
}

// Reveal returns a copy of obj with secure param values decrypted.
func (s *Service) Reveal(obj model.Object) (model.Object, error) {
	c := cloneObject(obj)
	var err error
	switch o := c.(type) {
	case *model.Machine:
		o.Params, err = s.openAll(o.Params)
	case *model.Profile:
		o.Params, err = s.openAll(o.Params)
	case *model.BootEnv:
		o.Params, err = s.openAll(o.Params)
	}
	return c, err
}

func (s *Service) openAll(p map[string]any) (map[string]any, error) {
	for k, v := range p {
		if secrets.IsSealed(v) {
			plain, err := s.sealer.Open(v)
			if err != nil {
				return nil, fmt.Errorf("param %s: %w", k, err)
			}
			p[k] = plain
		}
	}
	return p, nil
}

// afterWrite ends the render generation after a write to a kind renders
// share, or drops a written machine's cached files (the store watch does
// too, but may deliver the event later when writes race). Stored templates reach the engine through the watch
// (render_state.go).
func (s *Service) afterWrite(obj model.Object) {
	if m, ok := obj.(*model.Machine); ok {
		s.cache.dropMachine(m.UUID, m.HardwareAddrs)
		return
	}
	s.bump(obj.Kind())
}

// cloneObject deep-copies an object through JSON (keeping the revision).
// Model types always round-trip; a failure returns the original's kind empty
// rather than sharing maps with the original.
func cloneObject(obj model.Object) model.Object {
	c := model.New(obj.Kind())
	b, err := json.Marshal(obj)
	if err == nil {
		err = json.Unmarshal(b, c)
	}
	if err != nil {
		return model.New(obj.Kind())
	}
	return c
}

// errStop ends a store walk early.
var errStop = errors.New("stop")

// ListRaw calls fn with the stored JSON and revision of every object of
// kind from offset on, at most limit (< 0: all), and returns how many
// objects of kind there are. Built-ins are not included: callers use it
// only for kinds without them.
func (s *Service) ListRaw(ctx context.Context, kind string, offset, limit int, fn func(raw []byte, rev int64) error) (int, error) {
	total, err := s.st.Count(ctx, kind)
	if err != nil {
		return 0, fmt.Errorf("count %s: %w", kind, err)
	}
	i, n := 0, 0
	err = s.st.List(ctx, kind, func(e store.Entry) error {
		if i++; i <= offset {
			return nil
		}
		if limit >= 0 && n >= limit {
			return errStop
		}
		n++
		return fn(e.Value, e.Revision)
	})
	if err != nil && !errors.Is(err, errStop) {
		return 0, fmt.Errorf("list %s: %w", kind, err)
	}
	return total, nil
}

// LookupBy returns the object of kind whose unique index holds value.
func (s *Service) LookupBy(ctx context.Context, kind, index, value string) (model.Object, error) {
	e, err := s.st.Lookup(ctx, kind, index, value)
	if err != nil {
		return nil, fmt.Errorf("lookup %s by %s %q: %w", kind, index, value, err)
	}
	return decode(kind, e)
}
