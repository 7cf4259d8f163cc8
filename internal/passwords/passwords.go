package passwords

import (
	"context"
	"crypto/subtle"
	_ "embed"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync/atomic"
	"time"
	"unicode/utf8"

	"golang.org/x/crypto/argon2"
	"golang.org/x/sync/semaphore"

	"github.com/chit-auth/chit/internal/chiterr"
)

// Params are argon2id's cost parameters.
type Params struct {
	MemoryKiB   uint32
	Iterations  uint32
	Parallelism uint8
	SaltLength  uint32
	KeyLength   uint32
}

// DefaultParams follow OWASP's argon2id recommendation (19 MiB, 2 passes, 1
// lane): about 20-40 ms per hash on one core.
var DefaultParams = Params{MemoryKiB: 19 * 1024, Iterations: 2, Parallelism: 1, SaltLength: 16, KeyLength: 32}

// GCPercent is the garbage-collection target (GOGC) for a process that
// hashes passwords. Every hash allocates its memory afresh (19 MiB at the
// default parameters), so at Go's default of 100 the collector ran about once
// per sign-in. Measured on two cores: 200 raised sign-ins from 66-68/s to
// 72/s for ~30 MiB more RSS; 400 gave no more throughput and twice the
// memory.
const GCPercent = 200

// MinLength is the fewest characters (runes) a new account's password has.
const MinLength = 8

// Upper bounds on stored parameters (1 GiB, 64 passes).
const (
	maxMemoryKiB  = 1 << 20
	maxIterations = 64
)

// ErrMalformedHash is returned for a stored hash that is not argon2id PHC.
var ErrMalformedHash = errors.New("passwords: malformed argon2id hash")

// Hasher hashes and verifies passwords, at most a fixed number at a time.
type Hasher struct {
	params       Params
	slots        *semaphore.Weighted
	queueTimeout time.Duration
	random       io.Reader
	// decoy is verified against when a user does not exist, so that "no such
	// user" costs the same time as "wrong password".
	decoy string
	// hashNanos is how long a hash takes here, a moving average of those
	// timed (the decoy's at start, then every one), which deadlines are
	// weighed against.
	hashNanos atomic.Int64
	// now reads the time that contexts' deadlines are in: the wall clock,
	// never the server's own clock (which tests move); tests replace it.
	now func() time.Time
}

// NewHasher returns a Hasher running at most maxConcurrent hashes at once;
// a caller waits at most queueTimeout for a slot. random supplies salts.
func NewHasher(params Params, maxConcurrent int, queueTimeout time.Duration, random io.Reader) (*Hasher, error) {
	if maxConcurrent < 1 {
		return nil, fmt.Errorf("passwords: maxConcurrent must be at least 1, got %d", maxConcurrent)
	}
	if params.MemoryKiB < 8*uint32(params.Parallelism) || params.Iterations < 1 || params.Parallelism < 1 || params.SaltLength < 8 || params.KeyLength < 16 {
		return nil, fmt.Errorf("passwords: argon2id parameters too weak: %+v", params)
	}
	h := &Hasher{
		params:       params,
		slots:        semaphore.NewWeighted(int64(maxConcurrent)),
		queueTimeout: queueTimeout,
		random:       random,
		now:          time.Now,
	}
	start := h.now()
	decoy, err := h.encode("decoy password that no account has")
	if err != nil {
		return nil, err
	}
	h.decoy = decoy
	h.hashNanos.Store(int64(h.now().Sub(start)))
	return h, nil
}

//go:embed common.txt
var commonList string

// common holds the embedded list of widely breached passwords, lower-cased.
var common = func() map[string]bool {
	set := map[string]bool{}
	for _, line := range strings.Split(commonList, "\n") {
		line = strings.TrimSpace(line)
		if line != "" && !strings.HasPrefix(line, "#") {
			set[strings.ToLower(line)] = true
		}
	}
	return set
}()

// MaxLength bounds passwords, in bytes: hashing is costly and nothing needs
// more.
const MaxLength = 1024

// CheckPolicy reports why password is not acceptable for a new account.
func CheckPolicy(password string) error {
	switch {
	// gRPC requests reach the handlers with bad UTF-8 replaced by U+FFFD
	// (grpcapi.LenientStrings): a password so mangled is not the one its
	// sender meant, and must not be stored.
	case !utf8.ValidString(password) || strings.ContainsRune(password, utf8.RuneError):
		return chiterr.New(chiterr.InvalidArgument, "password must be valid UTF-8 text")
	case utf8.RuneCountInString(password) < MinLength:
		return chiterr.New(chiterr.InvalidArgument, "password must be at least %d characters", MinLength)
	case len(password) > MaxLength:
		return chiterr.New(chiterr.InvalidArgument, "password must be at most %d bytes of UTF-8", MaxLength)
	case common[strings.ToLower(password)]:
		return chiterr.New(chiterr.InvalidArgument, "password is one of the most common passwords; choose another")
	}
	return nil
}

// Hash returns the PHC encoding of password's argon2id hash.
func (h *Hasher) Hash(ctx context.Context, password string) (string, error) {
	release, err := h.acquire(ctx)
	if err != nil {
		return "", err
	}
	defer release()
	start := h.now()
	encoded, err := h.encode(password)
	if err != nil {
		return "", err
	}
	if err := h.finished(ctx, start); err != nil {
		return "", err
	}
	return encoded, nil
}

func (h *Hasher) encode(password string) (string, error) {
	salt := make([]byte, h.params.SaltLength)
	if _, err := io.ReadFull(h.random, salt); err != nil {
		return "", fmt.Errorf("passwords: read salt: %w", err)
	}
	p := h.params
	key := argon2.IDKey([]byte(password), salt, p.Iterations, p.MemoryKiB, p.Parallelism, p.KeyLength)
	return fmt.Sprintf("$argon2id$v=%d$m=%d,t=%d,p=%d$%s$%s", argon2.Version, p.MemoryKiB, p.Iterations, p.Parallelism,
		base64.RawStdEncoding.EncodeToString(salt), base64.RawStdEncoding.EncodeToString(key)), nil
}

// Verify reports whether password matches the encoded hash. An encoded hash of
// "" stands for an account that does not exist: Verify then spends the same
// work on a decoy and reports false.
func (h *Hasher) Verify(ctx context.Context, encoded, password string) (bool, error) {
	release, err := h.acquire(ctx)
	if err != nil {
		return false, err
	}
	defer release()
	start := h.now()
	against := encoded
	if encoded == "" {
		against = h.decoy
	}
	ok, err := verify(against, password)
	if err != nil {
		return false, err
	}
	if err := h.finished(ctx, start); err != nil {
		return false, err
	}
	// The decoy's own password matches no account.
	return ok && encoded != "", nil
}

// NeedsRehash reports whether encoded was made with other parameters than
// the Hasher's current ones.
func (h *Hasher) NeedsRehash(encoded string) bool {
	p, _, _, err := decode(encoded)
	return err != nil || p.MemoryKiB != h.params.MemoryKiB || p.Iterations != h.params.Iterations ||
		p.Parallelism != h.params.Parallelism || p.KeyLength != h.params.KeyLength
}

// acquire waits for a hashing slot. A call with a deadline waits only while
// its hash could still run after it, and is refused a slot that comes too
// late for one: a hash its deadline cuts is work lost beside a queue of
// sign-ins that need it, and its caller would get a deadline error (a 504)
// where "too busy, retry after" (429 with Retry-After) is the truth. Twice an
// average hash's time must be left when the slot is taken: the hash, and as
// much again for the rest of the call (the store, signing the tokens) and for
// a hash slower than the average under load. A slot free on arrival is taken
// whatever the estimate says: only the queue is judged by it, so an estimate
// made too high (a slow first hash) is corrected by the next hashes instead
// of refusing every sign-in.
func (h *Hasher) acquire(ctx context.Context) (func(), error) {
	release := func() { h.slots.Release(1) }
	if h.slots.TryAcquire(1) {
		return release, nil
	}
	wait := h.queueTimeout
	deadline, bounded := ctx.Deadline()
	needed := 2 * h.expectedHashTime()
	if bounded {
		left := deadline.Sub(h.now())
		if left <= needed {
			return nil, tooBusy(fmt.Errorf("every hashing slot taken, %v left before the deadline, a hash needs %v", left, needed))
		}
		if wait <= 0 || left-needed < wait {
			wait = left - needed
		}
	}
	waitCtx := ctx
	if wait > 0 {
		var cancel context.CancelFunc
		waitCtx, cancel = context.WithTimeout(ctx, wait)
		defer cancel()
	}
	if err := h.slots.Acquire(waitCtx, 1); err != nil {
		return nil, tooBusy(fmt.Errorf("no hashing slot within %v", wait))
	}
	if left := deadline.Sub(h.now()); bounded && left < needed {
		release()
		return nil, tooBusy(fmt.Errorf("a hashing slot with %v left before the deadline, a hash needs %v", left, needed))
	}
	return release, nil
}

// finished times the hash that began at start, and refuses its result as
// too busy when the call's deadline passed meanwhile (a hash slowed by load):
// the call is lost either way, and the caller should come back rather than
// see its deadline's error.
func (h *Hasher) finished(ctx context.Context, start time.Time) error {
	took := h.now().Sub(start)
	// An exponentially weighted moving average (1/8 weight per hash, as TCP
	// smooths round-trip times) follows the machine's load within a few
	// hashes.
	for {
		average := h.hashNanos.Load()
		if h.hashNanos.CompareAndSwap(average, average+(int64(took)-average)/8) {
			break
		}
	}
	if deadline, bounded := ctx.Deadline(); bounded && !h.now().Before(deadline) {
		return tooBusy(fmt.Errorf("the hash took %v and ended past the deadline", took))
	}
	return nil
}

// expectedHashTime is how long a hash takes here, on average.
func (h *Hasher) expectedHashTime() time.Duration { return time.Duration(h.hashNanos.Load()) }

func tooBusy(cause error) error {
	return &chiterr.Error{
		Kind:       chiterr.ResourceExhausted,
		Message:    "too many sign-ins in progress; retry shortly",
		Cause:      cause,
		RetryAfter: time.Second,
	}
}

func verify(encoded, password string) (bool, error) {
	p, salt, want, err := decode(encoded)
	if err != nil {
		return false, err
	}
	got := argon2.IDKey([]byte(password), salt, p.Iterations, p.MemoryKiB, p.Parallelism, uint32(len(want)))
	return subtle.ConstantTimeCompare(got, want) == 1, nil
}

func decode(encoded string) (Params, []byte, []byte, error) {
	// $argon2id$v=19$m=...,t=...,p=...$salt$key
	fields := strings.Split(encoded, "$")
	if len(fields) != 6 || fields[0] != "" || fields[1] != "argon2id" {
		return Params{}, nil, nil, ErrMalformedHash
	}
	var version int
	if _, err := fmt.Sscanf(fields[2], "v=%d", &version); err != nil || version != argon2.Version {
		return Params{}, nil, nil, ErrMalformedHash
	}
	var p Params
	if _, err := fmt.Sscanf(fields[3], "m=%d,t=%d,p=%d", &p.MemoryKiB, &p.Iterations, &p.Parallelism); err != nil {
		return Params{}, nil, nil, ErrMalformedHash
	}
	salt, err := base64.RawStdEncoding.DecodeString(fields[4])
	if err != nil {
		return Params{}, nil, nil, ErrMalformedHash
	}
	key, err := base64.RawStdEncoding.DecodeString(fields[5])
	if err != nil || len(key) < 16 {
		return Params{}, nil, nil, ErrMalformedHash
	}
	// Stored parameters come from our own hasher; bounds keep a corrupted or
	// planted row from costing gigabytes or minutes.
	if p.Iterations < 1 || p.Iterations > maxIterations || p.Parallelism < 1 || p.MemoryKiB < 8*uint32(p.Parallelism) ||
		p.MemoryKiB > maxMemoryKiB || len(salt) < 8 || len(key) > 128 {
		return Params{}, nil, nil, ErrMalformedHash
	}
	p.SaltLength, p.KeyLength = uint32(len(salt)), uint32(len(key))
	return p, salt, key, nil
}
