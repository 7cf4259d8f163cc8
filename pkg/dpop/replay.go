package dpop

import (
	"container/heap"
	"crypto/sha256"
	"fmt"
	"sync"
	"time"
)

// replayMemory holds the ids of accepted proofs until their window ends.
// A record's key is a hash of the proof key's thumbprint and the jti: ids
// are scoped by key (two clients may pick the same jti, RFC 9449 §11.1),
// and a hash bounds each record whatever the jti's length.
type replayMemory struct {
	limit int

	mu      sync.Mutex
	records map[[sha256.Size]byte]struct{}
	byEnd   recordHeap // the same records, the soonest to end first
}

type record struct {
	key [sha256.Size]byte
	end time.Time
}

func newReplayMemory(limit int) *replayMemory {
	return &replayMemory{limit: limit, records: map[[sha256.Size]byte]struct{}{}}
}

// remember records (jkt, jti) until end (the last instant its proof is
// accepted), or refuses it when it is recorded
// already or the memory is full of records that have not ended.
func (m *replayMemory) remember(jkt, jti string, end, now time.Time) error {
	key := sha256.Sum256([]byte(fmt.Sprintf("%d:%s%s", len(jkt), jkt, jti)))
	m.mu.Lock()
	defer m.mu.Unlock()
	for len(m.byEnd) > 0 && m.byEnd[0].end.Before(now) {
		delete(m.records, heap.Pop(&m.byEnd).(record).key)
	}
	if _, seen := m.records[key]; seen {
		return invalid("jti was used before")
	}
	if len(m.records) >= m.limit {
		return invalid("too many proofs within the proof lifetime; try again later")
	}
	m.records[key] = struct{}{}
	heap.Push(&m.byEnd, record{key: key, end: end})
	return nil
}

func (m *replayMemory) size() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return len(m.records)
}

type recordHeap []record

func (h recordHeap) Len() int           { return len(h) }
func (h recordHeap) Less(i, j int) bool { return h[i].end.Before(h[j].end) }
func (h recordHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *recordHeap) Push(x any)        { *h = append(*h, x.(record)) }
func (h *recordHeap) Pop() any {
	old := *h
	last := old[len(old)-1]
	*h = old[:len(old)-1]
	return last
}
