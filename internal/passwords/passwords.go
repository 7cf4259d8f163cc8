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
	}
	decoy, err := h.encode("decoy password that no account has")
	if err != nil {
		return nil, err
	}
	h.decoy = decoy
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
	return h.encode(password)
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
	if encoded == "" {
		_, _ = verify(h.decoy, password)
		return false, nil
	}
	return verify(encoded, password)
}

// NeedsRehash reports whether encoded was made with other parameters than
// the Hasher's current ones.
func (h *Hasher) NeedsRehash(encoded string) bool {
	p, _, _, err := decode(encoded)
	return err != nil || p.MemoryKiB != h.params.MemoryKiB || p.Iterations != h.params.Iterations ||
		p.Parallelism != h.params.Parallelism || p.KeyLength != h.params.KeyLength
}

func (h *Hasher) acquire(ctx context.Context) (func(), error) {
	if h.queueTimeout > 0 {
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, h.queueTimeout)
		defer cancel()
	}
	if err := h.slots.Acquire(ctx, 1); err != nil {
		return nil, &chiterr.Error{
			Kind:       chiterr.ResourceExhausted,
			Message:    "too many sign-ins in progress; retry shortly",
			Cause:      err,
			RetryAfter: time.Second,
		}
	}
	return func() { h.slots.Release(1) }, nil
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
