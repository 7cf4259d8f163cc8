package dpop

import (
	"crypto/sha256"
	"strconv"
	"sync"
	"time"
)

// replayKey identifies an accepted proof: the first 16 bytes of a hash of
// the proof key's thumbprint and the jti. Ids are scoped by key (two clients
// may pick the same jti, RFC 9449 §11.1), the hash bounds a record whatever
// the jti's length, and 128 bits leave a collision (which would refuse one
// honest proof, never accept a replay) out of reach.
type replayKey [16]byte

// replayMemory holds the ids of accepted proofs until their window ends,
// in one set per second of the window's end. A proof's window ends at its
// iat plus MaxAge, and its iat is signed: a replayed proof falls in the
// same second's set as the original, so only that set is looked up, and a
// second's set is dropped whole once it has ended. Records cost a map
// entry each (about 40 bytes), not a map entry and a heap node.
type replayMemory struct {
	limit int

	mu    sync.Mutex
	count int
	// bySecond maps the Unix second a window ends in to the proofs whose
	// window ends in it.
	bySecond map[int64]map[replayKey]struct{}
	// swept is the last second whose ended sets were dropped.
	swept int64
}

func newReplayMemory(limit int) *replayMemory {
	return &replayMemory{limit: limit, bySecond: map[int64]map[replayKey]struct{}{}}
}

// remember records (jkt, jti) until end (the last instant its proof is
// accepted), or refuses it when it is recorded already or the memory is
// full of records that have not ended.
func (m *replayMemory) remember(jkt, jti string, end, now time.Time) error {
	key := recordKey(jkt, jti)
	second := end.Unix()
	m.mu.Lock()
	defer m.mu.Unlock()
	m.sweep(now.Unix())
	set := m.bySecond[second]
	if _, seen := set[key]; seen {
		return invalid("jti was used before")
	}
	if m.count >= m.limit {
		return invalid("too many proofs within the proof lifetime; try again later")
	}
	if set == nil {
		set = map[replayKey]struct{}{}
		m.bySecond[second] = set
	}
	set[key] = struct{}{}
	m.count++
	return nil
}

// sweep drops the sets of seconds that ended before now's second, once per
// second: a record outlives its window by less than a second, which only
// refuses what would be refused anyway (its proof's iat is too old).
func (m *replayMemory) sweep(now int64) {
	if now <= m.swept {
		return
	}
	m.swept = now
	for second, set := range m.bySecond {
		if second < now {
			m.count -= len(set)
			delete(m.bySecond, second)
		}
	}
}

func recordKey(jkt, jti string) replayKey {
	h := sha256.New()
	h.Write([]byte(strconv.Itoa(len(jkt))))
	h.Write([]byte{':'})
	h.Write([]byte(jkt))
	h.Write([]byte(jti))
	var sum [sha256.Size]byte
	var key replayKey
	copy(key[:], h.Sum(sum[:0]))
	return key
}

func (m *replayMemory) size() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.count
}
