package provision

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"time"

	"github.com/ironcast/ironcast/model"
	"github.com/ironcast/ironcast/store"
)

// sharedKinds are the kinds every rendering may read besides the machine
// and its lease: param definitions, profiles (the global one included),
// bootenvs and templates. Renders do not read them from the store per
// request: they are decoded once per generation (a snapshot), and a
// generation ends with any committed write to one of them.
//
// Machines are watched too, but a machine write (frequent under DHCP) only
// drops the entries rendered for that machine or its MACs. Leases matter
// only to paths resolved by client address, which look the machine up on
// every request.
var sharedKinds = []string{model.KindTemplates, model.KindParams, model.KindProfiles, model.KindBootEnvs}

// watchedKinds are the kinds Run watches.
var watchedKinds = append(slices.Clone(sharedKinds), model.KindMachines)

// watchPoll is how often Run drains the watches when no render does it, so
// that a burst of writes does not overflow them.
const watchPoll = 50 * time.Millisecond

// renderState tracks the generation of the shared objects through store
// watches, and keeps the template engine in step with stored templates.
//
// Exactness: the store delivers a write's event to its watchers before the
// write returns (bbolt runs the commit handler inside Commit), and every
// render first drains the watches (sync). So a render that starts after a
// write has returned sees the new generation, and an output rendered from
// objects read before a write is cached under a generation that write has
// ended. Nothing depends on timing or TTLs. Without watches (Run not
// running, or a watch that fell behind and is not re-opened yet) there is
// no generation: renders read the store and nothing is cached.
type renderState struct {
	mu      sync.Mutex
	watches []kindWatch // nil: not watching
	cancel  context.CancelFunc
	broken  bool // a watch closed: events may be lost
	gen     uint64
	snap    *snapshot
}

type kindWatch struct {
	kind string
	ch   <-chan store.Event
}

// sync drains the watches and returns the snapshot of the current
// generation and the count of machine writes applied to the cache, or nil
// when there is no generation (then nothing may be cached).
func (s *Service) sync() (*snapshot, uint64) {
	st := &s.state
	st.mu.Lock()
	defer st.mu.Unlock()
	if st.watches == nil || st.broken {
		return nil, 0
	}
	s.drainLocked()
	if st.broken {
		return nil, 0
	}
	if st.snap == nil || st.snap.gen != st.gen {
		st.snap = &snapshot{gen: st.gen}
	}
	return st.snap, s.cache.machineGen()
}

// drainLocked applies every pending event. Called with state.mu held.
func (s *Service) drainLocked() {
	st := &s.state
	changed := false
	for _, w := range st.watches {
	drain:
		for {
			select {
			case ev, ok := <-w.ch:
				if !ok {
					s.log.Warn("store watch ended; rendering without the cache until it is re-opened", "kind", w.kind)
					st.broken = true
					changed = true
					break drain
				}
				switch w.kind {
				case model.KindMachines:
					s.applyMachineEvent(ev)
					continue
				case model.KindTemplates:
					s.applyTemplateEvent(ev)
				}
				changed = true
			default:
				break drain
			}
		}
	}
	if changed {
		st.gen++
	}
}

// bump ends the current generation. The service calls it after its own
// writes to shared kinds, so that they invalidate even before their watch
// event is delivered (the store may hold an event back until an earlier
// concurrent write's is delivered).
func (s *Service) bump(kind string) {
	switch kind {
	case model.KindTemplates, model.KindParams, model.KindProfiles, model.KindBootEnvs:
	default:
		return
	}
	st := &s.state
	st.mu.Lock()
	st.gen++
	st.mu.Unlock()
}

// applyMachineEvent drops the cached files of one written machine: those
// rendered for it, and those of its MACs (rendered while the MAC was
// unknown). Old MACs it no longer has are covered by its UUID.
func (s *Service) applyMachineEvent(ev store.Event) {
	var m struct {
		UUID          string
		HardwareAddrs []string
	}
	if err := json.Unmarshal(ev.Value, &m); err != nil {
		s.log.Warn("stored machine does not decode; dropping every cached file", "machine", ev.Key, "err", err)
		s.cache.reset()
	}
	s.cache.dropMachine(ev.Key, m.HardwareAddrs)
}

// applyTemplateEvent keeps the engine in step with one template write.
func (s *Service) applyTemplateEvent(ev store.Event) {
	if ev.Type == store.Deleted {
		s.engine.Delete(ev.Key)
		if b := s.builtinTemplates[ev.Key]; b != nil {
			_ = s.engine.Set(ev.Key, b.Contents)
		}
		return
	}
	var t model.Template
	if err := json.Unmarshal(ev.Value, &t); err != nil {
		s.log.Warn("stored template does not decode", "template", ev.Key, "err", err)
		return
	}
	if err := s.engine.Set(t.ID, t.Contents); err != nil {
		s.log.Warn("stored template does not parse", "template", t.ID, "err", err)
	}
}

// openWatches watches the shared kinds, reloads every template (so that
// nothing written before the watches opened is missed), and starts a new
// generation.
func (s *Service) openWatches(ctx context.Context) error {
	wctx, cancel := context.WithCancel(ctx)
	ws := make([]kindWatch, 0, len(watchedKinds))
	for _, kind := range watchedKinds {
		ch, err := s.st.Watch(wctx, kind)
		if err != nil {
			cancel()
			return fmt.Errorf("watch %s: %w", kind, err)
		}
		ws = append(ws, kindWatch{kind: kind, ch: ch})
	}
	st := &s.state
	st.mu.Lock()
	defer st.mu.Unlock()
	if err := s.reloadTemplates(ctx); err != nil {
		cancel()
		return err
	}
	if st.cancel != nil {
		st.cancel()
	}
	st.watches, st.cancel, st.broken = ws, cancel, false
	st.gen++
	return nil
}

// closeWatches stops watching: renders read the store and nothing is
// cached.
func (s *Service) closeWatches() {
	st := &s.state
	st.mu.Lock()
	if st.cancel != nil {
		st.cancel()
	}
	st.watches, st.cancel, st.snap = nil, nil, nil
	st.gen++
	st.mu.Unlock()
	s.cache.reset()
}

// reloadTemplates makes the engine hold exactly the stored templates plus
// the built-ins they do not override.
func (s *Service) reloadTemplates(ctx context.Context) error {
	ts, err := store.List[model.Template](ctx, s.st)
	if err != nil {
		return fmt.Errorf("load templates: %w", err)
	}
	stored := make(map[string]bool, len(ts))
	for _, t := range ts {
		stored[t.ID] = true
		if err := s.engine.Set(t.ID, t.Contents); err != nil {
			s.log.Warn("stored template does not parse; keeping the previous one", "template", t.ID, "err", err)
		}
	}
	for _, id := range s.engine.IDs() {
		if stored[id] {
			continue
		}
		if b := s.builtinTemplates[id]; b != nil {
			_ = s.engine.Set(id, b.Contents)
		} else {
			s.engine.Delete(id)
		}
	}
	return nil
}

// Run keeps the template engine in step with stored templates and the
// render cache valid until ctx ends; renders are cached only while it
// runs. A watch that falls behind is re-opened (templates reloaded, cache
// flushed). It returns nil when ctx ends, or the error of a watch that
// cannot be re-opened. Call it once.
func (s *Service) Run(ctx context.Context) error {
	if err := s.openWatches(ctx); err != nil {
		return err
	}
	defer s.closeWatches()
	t := time.NewTicker(watchPoll)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		st := &s.state
		st.mu.Lock()
		s.drainLocked()
		broken := st.broken
		st.mu.Unlock()
		if broken {
			if err := s.openWatches(ctx); err != nil {
				if ctx.Err() != nil {
					return nil
				}
				return err
			}
			s.log.Info("store watches re-opened; templates reloaded")
		}
	}
}

// snapshot holds the shared objects of one generation, decoded once and
// shared read-only by every render of that generation. Objects are loaded
// on first use: a write between the generation's start and the load ends
// the generation, so a mixed view is never cached.
type snapshot struct {
	gen uint64

	mu       sync.Mutex
	defs     map[string]*model.Param // nil until loaded
	profiles map[string]*model.Profile
	bootenvs map[string]*model.BootEnv
}

func (sn *snapshot) paramDefs(ctx context.Context, s *Service) (map[string]*model.Param, error) {
	sn.mu.Lock()
	defs := sn.defs
	sn.mu.Unlock()
	if defs != nil {
		return defs, nil
	}
	defs, err := s.paramDefs(ctx)
	if err != nil {
		return nil, err
	}
	sn.mu.Lock()
	sn.defs = defs
	sn.mu.Unlock()
	return defs, nil
}

// profile returns the profile called name, or nil when there is none.
func (sn *snapshot) profile(ctx context.Context, s *Service, name string) (*model.Profile, error) {
	sn.mu.Lock()
	p, ok := sn.profiles[name]
	sn.mu.Unlock()
	if ok {
		return p, nil
	}
	p, err := store.Get[model.Profile](ctx, s.st, name)
	if errors.Is(err, model.ErrNotFound) {
		p, err = nil, nil
	}
	if err != nil {
		return nil, err
	}
	sn.mu.Lock()
	if sn.profiles == nil {
		sn.profiles = map[string]*model.Profile{}
	}
	sn.profiles[name] = p
	sn.mu.Unlock()
	return p, nil
}

func (sn *snapshot) bootEnv(ctx context.Context, s *Service, name string) (*model.BootEnv, error) {
	sn.mu.Lock()
	be, ok := sn.bootenvs[name]
	sn.mu.Unlock()
	if ok {
		return be, nil
	}
	be, err := s.loadBootEnv(ctx, name)
	if err != nil {
		return nil, err
	}
	sn.mu.Lock()
	if sn.bootenvs == nil {
		sn.bootenvs = map[string]*model.BootEnv{}
	}
	sn.bootenvs[name] = be
	sn.mu.Unlock()
	return be, nil
}

// loadBootEnv returns the stored bootenv called name, else the built-in
// one (shared, read-only: no JSON clone), else an error wrapping
// model.ErrNotFound. Available and Errors are not filled in.
func (s *Service) loadBootEnv(ctx context.Context, name string) (*model.BootEnv, error) {
	e, err := s.st.Get(ctx, model.KindBootEnvs, name)
	if errors.Is(err, model.ErrNotFound) {
		if b := s.builtinEnvs[name]; b != nil {
			return b, nil
		}
	}
	if err != nil {
		return nil, fmt.Errorf("bootenv %s: %w", name, err)
	}
	obj, err := decode(model.KindBootEnvs, e)
	if err != nil {
		return nil, err
	}
	return obj.(*model.BootEnv), nil
}
