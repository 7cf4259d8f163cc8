package accounts

import (
	"sync"
	"time"
)

// maxCachedReads bounds a readCache; when full it starts over.
const maxCachedReads = 10_000

// readCache keeps records read from the store for ttl, by key: the service
// account and client caches. Its generation counts forgets, so that a
// request that read the store before a write (and forget) cannot put the
// old record back afterwards: get returns the generation, put is refused
// when it has changed.
type readCache[V any] struct {
	ttl     time.Duration
	mu      sync.RWMutex
	entries map[string]cachedRead[V]
	forgets uint64
}

type cachedRead[V any] struct {
	value  V
	readAt time.Time
}

// get returns the record read at most ttl before now, if there is one,
// with when it was read, and the cache's generation, to be passed to put
// after reading the store.
func (c *readCache[V]) get(key string, now time.Time) (entry cachedRead[V], fresh bool, generation uint64) {
	c.mu.RLock()
	entry, ok := c.entries[key]
	generation = c.forgets
	c.mu.RUnlock()
	// An entry "read" after now means the clock went back; it is not trusted.
	if !ok || now.Sub(entry.readAt) >= c.ttl || now.Before(entry.readAt) {
		return cachedRead[V]{}, false, generation
	}
	return entry, true, generation
}

func (c *readCache[V]) put(key string, value V, readAt time.Time, generation uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.forgets != generation {
		return
	}
	if c.entries == nil || len(c.entries) >= maxCachedReads {
		c.entries = make(map[string]cachedRead[V])
	}
	c.entries[key] = cachedRead[V]{value: value, readAt: readAt}
}

func (c *readCache[V]) forget(key string) {
	c.mu.Lock()
	delete(c.entries, key)
	c.forgets++
	c.mu.Unlock()
}
