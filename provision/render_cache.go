package provision

import (
	"container/list"
	"net/netip"
	"sync"
	"sync/atomic"
	"time"

	"github.com/ironcast/ironcast/model"
)

// Render cache defaults. A cached file may embed a token (.GenerateToken):
// machine tokens live 24 h and registration tokens 1 h (daemon), so a
// cached file is served for at most MaxRenderCacheTTL, well inside the
// shortest token lifetime, and a machine never receives a token that is
// about to expire.
const (
	DefaultRenderCacheEntries = 16384
	DefaultRenderCacheBytes   = 64 << 20
	DefaultRenderCacheTTL     = 10 * time.Minute
	MaxRenderCacheTTL         = 10 * time.Minute
)

// RenderCacheConfig bounds the cache of rendered files. The zero value
// means the defaults.
type RenderCacheConfig struct {
	// MaxEntries is the most files kept (0: DefaultRenderCacheEntries;
	// negative: no cache, every request renders).
	MaxEntries int
	// MaxBytes is the most bytes of rendered output kept, keys and
	// bookkeeping included (0: DefaultRenderCacheBytes). A file larger
	// than a quarter of it is never cached.
	MaxBytes int64
	// TTL is the longest a rendered file is served from the cache
	// (0: DefaultRenderCacheTTL; capped at MaxRenderCacheTTL). Staleness
	// never depends on it: any write that can change a rendering
	// invalidates at once. It bounds how long a cached token is handed out.
	TTL time.Duration
}

// RenderCacheStats counts the render cache's work since the service
// started.
type RenderCacheStats struct {
	Hits, Misses uint64
	// Entries and Bytes are what the cache holds now.
	Entries int
	Bytes   int64
}

// cacheKey is everything a rendering depends on besides the objects
// covered by the generation (param definitions, profiles, bootenvs,
// templates) and the machine record: the path, the address the client
// reached, the booting MAC, and the firmware DHCP reported for the MAC.
// For paths resolved by address or UUID it also holds the machine record
// found (UUID and store revision; "" and 0 when unknown); paths naming a
// MAC leave them zero and rely on machine writes dropping their entries.
type cacheKey struct {
	path  string
	local netip.Addr
	mac   string
	uuid  string
	rev   int64
	fw    model.Firmware
}

// entryOverhead approximates the bookkeeping of one entry (map slot, list
// element, key) beyond the strings' bytes.
const entryOverhead = 160

func (k cacheKey) size() int64 {
	return int64(len(k.path) + len(k.mac) + len(k.uuid) + len(k.fw) + entryOverhead)
}

type cacheEntry struct {
	key     cacheKey
	uuid    string // the machine rendered for, "" when unknown
	out     []byte
	expires time.Time
}

func (e *cacheEntry) size() int64 { return e.key.size() + int64(len(e.uuid)+len(e.out)) }

// renderCache is a bounded LRU of rendered outputs for one generation of
// the shared objects. It is safe for concurrent use.
type renderCache struct {
	maxEntries int
	maxBytes   int64
	ttl        time.Duration

	mu    sync.Mutex
	gen   uint64
	mgen  uint64 // machine writes applied (dropMachine)
	m     map[cacheKey]*list.Element
	lru   list.List // of *cacheEntry, most recently used first
	bytes int64
	// byUUID and byMAC index the entries rendered for a machine UUID and
	// for a booting MAC, for dropMachine.
	byUUID map[string]map[*list.Element]struct{}
	byMAC  map[string]map[*list.Element]struct{}

	hits, misses atomic.Uint64
}

func newRenderCache(cfg RenderCacheConfig) *renderCache {
	if cfg.MaxEntries == 0 {
		cfg.MaxEntries = DefaultRenderCacheEntries
	}
	if cfg.MaxBytes <= 0 {
		cfg.MaxBytes = DefaultRenderCacheBytes
	}
	if cfg.TTL <= 0 {
		cfg.TTL = DefaultRenderCacheTTL
	}
	cfg.TTL = min(cfg.TTL, MaxRenderCacheTTL)
	return &renderCache{maxEntries: cfg.MaxEntries, maxBytes: cfg.MaxBytes, ttl: cfg.TTL, m: map[cacheKey]*list.Element{},
		byUUID: map[string]map[*list.Element]struct{}{}, byMAC: map[string]map[*list.Element]struct{}{}}
}

func (c *renderCache) enabled() bool { return c.maxEntries > 0 }

// syncGen drops everything when gen is newer than the cache's. It reports
// whether gen is current (false: gen is older, the caller's view is stale).
// Called with mu held.
func (c *renderCache) syncGen(gen uint64) bool {
	switch {
	case gen == c.gen:
		return true
	case gen > c.gen:
		c.resetLocked()
		c.gen = gen
		return true
	}
	return false
}

func (c *renderCache) resetLocked() {
	clear(c.m)
	clear(c.byUUID)
	clear(c.byMAC)
	c.lru.Init()
	c.bytes = 0
}

// dropMachine drops every entry rendered for machine uuid or for one of
// macs (a MAC rendered as unknown that now belongs to a machine), and
// records that a machine write was applied: outputs rendered before it
// (put with an older mgen) are not stored.
func (c *renderCache) dropMachine(uuid string, macs []string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.mgen++
	if uuid != "" {
		for el := range c.byUUID[uuid] {
			c.removeLocked(el)
		}
	}
	for _, mac := range macs {
		for el := range c.byMAC[mac] {
			c.removeLocked(el)
		}
	}
}

// reset drops every entry.
func (c *renderCache) reset() {
	c.mu.Lock()
	c.resetLocked()
	c.mu.Unlock()
}

// machineGen returns the count of machine writes applied.
func (c *renderCache) machineGen() uint64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.mgen
}

// get returns the output cached under k for generation gen, if it has not
// expired by now, and the UUID of the machine it was rendered for. The
// slice is shared: callers must not modify it. A miss is not counted here
// when the caller will look again under a fuller key.
func (c *renderCache) get(gen uint64, k cacheKey, now time.Time) ([]byte, string, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.syncGen(gen) {
		c.misses.Add(1)
		return nil, "", false
	}
	el, ok := c.m[k]
	if !ok {
		c.misses.Add(1)
		return nil, "", false
	}
	e := el.Value.(*cacheEntry)
	if !now.Before(e.expires) {
		c.removeLocked(el)
		c.misses.Add(1)
		return nil, "", false
	}
	c.lru.MoveToFront(el)
	c.hits.Add(1)
	return e.out, e.uuid, true
}

// put caches out, rendered for machine uuid ("" when unknown), under k. gen
// and mgen are the generations taken before anything was read for the
// rendering: if either has moved on since, what was read may be stale and
// out is dropped. Least recently used entries beyond the bounds are
// evicted.
func (c *renderCache) put(gen, mgen uint64, k cacheKey, uuid string, out []byte, now time.Time) {
	e := &cacheEntry{key: k, uuid: uuid, out: out, expires: now.Add(c.ttl)}
	size := e.size()
	if size > c.maxBytes/4 {
		return
	}
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.syncGen(gen) || mgen != c.mgen {
		return
	}
	if el, ok := c.m[k]; ok {
		c.removeLocked(el)
	}
	el := c.lru.PushFront(e)
	c.m[k] = el
	index(c.byMAC, k.mac, el)
	if uuid != "" {
		index(c.byUUID, uuid, el)
	}
	c.bytes += size
	for len(c.m) > c.maxEntries || c.bytes > c.maxBytes {
		c.removeLocked(c.lru.Back())
	}
}

func index(ix map[string]map[*list.Element]struct{}, k string, el *list.Element) {
	set := ix[k]
	if set == nil {
		set = map[*list.Element]struct{}{}
		ix[k] = set
	}
	set[el] = struct{}{}
}

func unindex(ix map[string]map[*list.Element]struct{}, k string, el *list.Element) {
	if set := ix[k]; set != nil {
		delete(set, el)
		if len(set) == 0 {
			delete(ix, k)
		}
	}
}

func (c *renderCache) removeLocked(el *list.Element) {
	e := c.lru.Remove(el).(*cacheEntry)
	delete(c.m, e.key)
	unindex(c.byMAC, e.key.mac, el)
	unindex(c.byUUID, e.uuid, el)
	c.bytes -= e.size()
}

func (c *renderCache) stats() RenderCacheStats {
	c.mu.Lock()
	defer c.mu.Unlock()
	return RenderCacheStats{Hits: c.hits.Load(), Misses: c.misses.Load(), Entries: len(c.m), Bytes: c.bytes}
}

// RenderCacheStats returns the render cache's counters.
func (s *Service) RenderCacheStats() RenderCacheStats { return s.cache.stats() }
