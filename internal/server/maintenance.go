package server

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/storage"
)

func (s *Server) cleanExpired(ctx context.Context) {
	every(ctx, s.cfg.CleanupInterval, time.Hour, func() {
		if _, err := s.store.WithCleanupLock(ctx, func() error { s.deleteExpired(ctx); return nil }); err != nil {
			s.cfg.Logger.Warn("clean-up skipped", "error", err)
		}
	})
}

// JWKSCacheTime is how long verifiers may cache the key set (the JWKS
// answer's max-age): a next key is published at least this long before it signs.
const JWKSCacheTime = 5 * time.Minute

// maintainKeys rotates the signing key when it is due, deletes retired keys
// once no token they signed can be valid, and re-reads the keys so rotations
// made elsewhere (chitd keys rotate, another replica) are picked up within
// KeyCheckInterval.
func (s *Server) maintainKeys(ctx context.Context) {
	every(ctx, s.cfg.KeyCheckInterval, 30*time.Second, func() { s.MaintainKeys(ctx) })
}

// MaintainKeys runs one round of key maintenance.
func (s *Server) MaintainKeys(ctx context.Context) {
	now := s.cfg.now()()
	// Each family (the configured algorithm's, RS256's beside it) rotates
	// when its own active key is due: a family created later, by an upgrade,
	// keeps its own rhythm instead of being refused as too young.
	for _, alg := range keys.Families(s.cfg.SigningAlgorithm) {
		if period := s.cfg.KeyRotationPeriod; period <= 0 || now.Sub(s.keys.FamilyActiveSince(alg)) < period {
			continue
		}
		err := keys.RotateFamily(ctx, s.store, alg, s.cfg.KeySealer, now, JWKSCacheTime, false)
		switch {
		case err == nil:
			s.cfg.Logger.Info("rotated the signing key", "audit", true, "event", "key_rotation", "algorithm", alg.String())
		case errors.Is(err, storage.ErrConflict), errors.Is(err, keys.ErrNextTooYoung):
			// Another replica rotated first, or the next key needs more time.
		default:
			s.cfg.Logger.Warn("signing key rotation failed", "algorithm", alg.String(), "error", err)
		}
	}
	// A retired key stays published while tokens it signed may be valid.
	cutoff := now.Add(-s.cfg.Tokens.AccessTokenTTL - s.cfg.Tokens.ClockSkew - JWKSCacheTime)
	if n, err := s.store.DeleteRetiredSigningKeys(ctx, cutoff, now); err != nil {
		s.cfg.Logger.Warn("deleting retired signing keys failed", "error", err)
	} else if n > 0 {
		s.cfg.Logger.Info("deleted retired signing keys", "count", n)
	}
	if err := s.keys.Reload(ctx); err != nil {
		s.cfg.Logger.Warn("reloading signing keys failed", "error", err)
	}
	if err := s.refreshKeys.Reload(ctx); err != nil {
		s.cfg.Logger.Warn("reloading refresh token keys failed", "error", err)
	}
	// The refresh token MAC key follows the signing key's rotations.
	if err := s.refreshKeys.RotateAfter(ctx, s.keys.ActiveSince(), now); err != nil {
		s.cfg.Logger.Warn("adding a refresh token key failed", "error", err)
	}
}

// deleteExpired removes rows no answer depends on any more.
func (s *Server) deleteExpired(ctx context.Context) {
	now := s.cfg.now()()
	for what, clean := range map[string]func(context.Context, time.Time) (int, error){
		"refresh tokens":      s.store.DeleteExpiredRefreshTokens,
		"API keys":            s.store.DeleteExpiredAPIKeys,
		"authorization codes": s.store.DeleteExpiredAuthorizationCodes,
		"device codes":        s.store.DeleteExpiredDeviceCodes,
		"sign-in sessions":    s.store.DeleteExpiredSessions,
		// A single-use assertion's record is kept until it expires, with
		// the skew (federation's Exchange records it so).
		"federated assertions": s.store.DeleteExpiredAssertions,
		"sign-in failures": func(ctx context.Context, now time.Time) (int, error) {
			return s.store.DeleteStaleLoginFailures(ctx, now.Add(-accounts.DefaultThrottle.Forget))
		},
		// A revocation matters while a token it concerns may live
		// (revocationRetention).
		"revocations": func(ctx context.Context, now time.Time) (int, error) {
			return s.store.DeleteExpiredRevocations(ctx, now.Add(-s.cfg.revocationRetention()))
		},
	} {
		n, err := clean(ctx, now)
		if err != nil {
			s.cfg.Logger.Warn("deleting expired "+what+" failed", "error", err)
		} else if n > 0 {
			s.cfg.Logger.Info("deleted expired "+what, "count", n)
		}
	}
}

// revocationRetention is how long a revocation matters after it is made:
// while a token it concerns may live, an access token or a token a
// provider's key signed for a service (refreshAsOrchestrator), which may
// live longer, with the clock skew. The revocation feed's events expire
// with it.
func (cfg Config) revocationRetention() time.Duration {
	return max(cfg.Tokens.AccessTokenTTL, cfg.Providers.AccessTokenTTL) + cfg.Tokens.ClockSkew
}

// every runs fn each interval (fallback when interval is not positive)
// until ctx is done.
func every(ctx context.Context, interval, fallback time.Duration, fn func()) {
	if interval <= 0 {
		interval = fallback
	}
	ticker := time.NewTicker(interval)
	defer ticker.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-ticker.C:
			fn()
		}
	}
}

// signingKeyAdmin is the Admin API's view of the signing keys: the same
// rotation as chitd keys rotate (keys.Rotate), with this server's settings,
// after which this replica signs with the new key at once and the others
// within their KeyCheckInterval.
type signingKeyAdmin struct{ s *Server }

func (a signingKeyAdmin) List(ctx context.Context) ([]storage.SigningKey, error) {
	return a.s.store.ListSigningKeys(ctx)
}

func (a signingKeyAdmin) Rotate(ctx context.Context, force bool) error {
	now := a.s.cfg.now()()
	if err := rotateSigningKeys(ctx, a.s.store, a.s.cfg, now, force); err != nil {
		return err
	}
	if err := a.s.keys.Reload(ctx); err != nil {
		return fmt.Errorf("the keys rotated, but this replica could not reload them (it will within %s): %w", a.s.cfg.KeyCheckInterval, err)
	}
	// The refresh token MAC key follows the signing key's rotations.
	return a.s.refreshKeys.RotateAfter(ctx, a.s.keys.ActiveSince(), now)
}

// rotateSigningKeys is the one rotation of the Admin API, on a replica and
// in chitd's own process: keys.Rotate with the configured algorithm and
// sealer, its refusals translated into the error vocabulary, because the
// interceptors would otherwise hide them as internal errors.
func rotateSigningKeys(ctx context.Context, store storage.Store, cfg Config, now time.Time, force bool) error {
	err := keys.Rotate(ctx, store, cfg.SigningAlgorithm, cfg.KeySealer, now, JWKSCacheTime, force)
	switch {
	case errors.Is(err, keys.ErrNextTooYoung):
		return chiterr.New(chiterr.FailedPrecondition, "%v; wait until it has been published for %s, or pass force (--force)", err, JWKSCacheTime)
	case errors.Is(err, storage.ErrConflict):
		return chiterr.New(chiterr.FailedPrecondition, "another rotation happened at the same moment; list the keys and try again if needed")
	case errors.Is(err, keys.ErrNoEncryptionKey), errors.Is(err, keys.ErrNoNextKey):
		// The operator's own configuration or store.
		return chiterr.New(chiterr.FailedPrecondition, "%v", err)
	case err != nil:
		return fmt.Errorf("rotate the signing keys: %w", err)
	}
	return nil
}
