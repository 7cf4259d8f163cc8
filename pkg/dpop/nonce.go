package dpop

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"time"
)

// NonceSource issues server nonces (RFC 9449 §8). Nonces are bound to the
// source that issued them: each replica makes its own (a random key in
// memory), so a proof carrying replica A's nonce is refused by replica B
// with use_dpop_nonce and a fresh B nonce. That is how proofs become single
// use across replicas while replay records stay in memory: a proof is
// accepted only by the replica whose memory holds its jti. Nonces are
// stateless, a MAC of a time step, and valid for the current and the
// previous step: between one and two lifetimes.
type NonceSource struct {
	key      [32]byte
	lifetime time.Duration
	now      func() time.Time
}

// nonceMACSize is how much of the HMAC a nonce carries: 128 bits, past
// guessing.
const nonceMACSize = 16

// NewNonceSource returns a source whose nonces change every lifetime, read
// from the clock now (nil: time.Now).
func NewNonceSource(lifetime time.Duration, now func() time.Time) (*NonceSource, error) {
	if lifetime < time.Second {
		return nil, errors.New("dpop: a nonce lifetime is at least a second")
	}
	if now == nil {
		now = time.Now
	}
	s := &NonceSource{lifetime: lifetime, now: now}
	if _, err := rand.Read(s.key[:]); err != nil {
		return nil, err
	}
	return s, nil
}

// Nonce is the current nonce, to send as DPoP-Nonce.
func (s *NonceSource) Nonce() string { return s.nonce(s.step()) }

// Valid reports whether nonce is this source's, of the current or the
// previous step.
func (s *NonceSource) Valid(nonce string) bool {
	raw, err := base64.RawURLEncoding.Strict().DecodeString(nonce)
	if err != nil || len(raw) != 8+nonceMACSize {
		return false
	}
	step := binary.BigEndian.Uint64(raw[:8])
	current := s.step()
	if step != current && step+1 != current {
		return false
	}
	return hmac.Equal(raw[8:], s.mac(step))
}

func (s *NonceSource) step() uint64 { return uint64(s.now().UnixNano() / int64(s.lifetime)) }

func (s *NonceSource) nonce(step uint64) string {
	raw := binary.BigEndian.AppendUint64(nil, step)
	return base64.RawURLEncoding.EncodeToString(append(raw, s.mac(step)...))
}

func (s *NonceSource) mac(step uint64) []byte {
	h := hmac.New(sha256.New, s.key[:])
	h.Write(binary.BigEndian.AppendUint64(nil, step))
	return h.Sum(nil)[:nonceMACSize]
}
