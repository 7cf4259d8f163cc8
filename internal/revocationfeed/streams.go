package revocationfeed

import (
	"sync"

	"github.com/chit-auth/chit/internal/chiterr"
)

// DefaultMaxStreamsPerCaller is how many streams one caller may hold open
// on one replica when Config.MaxStreamsPerCaller is zero: a verifier needs
// one per process, and a service's processes usually share its service
// account, so the bound is wide; it only stops one credential from
// holding streams (a goroutine, buffers and a store read per event each,
// about 40 KiB) until the replica runs out of memory.
const DefaultMaxStreamsPerCaller = 1000

// streamCounts counts the open streams of each caller.
type streamCounts struct {
	mu   sync.Mutex
	open map[string]int
}

// Admit counts a stream of caller (the subject of its token) until
// release is called, or refuses it with ResourceExhausted when caller
// holds MaxStreamsPerCaller already. The transports call it once the
// caller is authorized, before Start.
func (f *Feed) Admit(caller string) (release func(), err error) {
	c := &f.streams
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.open[caller] >= f.cfg.MaxStreamsPerCaller {
		return nil, chiterr.New(chiterr.ResourceExhausted,
			"%q holds %d revocation streams on this replica already, the most one caller may; close one first", caller, f.cfg.MaxStreamsPerCaller)
	}
	if c.open == nil {
		c.open = map[string]int{}
	}
	c.open[caller]++
	var once sync.Once
	return func() {
		once.Do(func() {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.open[caller]--; c.open[caller] <= 0 {
				delete(c.open, caller)
			}
		})
	}, nil
}
