package tokens

import (
	"context"
	"errors"
	"slices"
	"sync"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

// revocationCache keeps recent answers of Store.GetRevocation for a few
// seconds, so checking a busy token costs no store read each time. A
// revocation made on this server is seen at once (forget); one made on
// another replica within ttl.
type revocationCache struct {
	ttl     time.Duration
	store   Store
	now     func() time.Time
	mu      sync.Mutex
	entries map[revocationKey]cachedRevocation
}

type cachedRevocation struct {
	revocation storage.Revocation
	fetchedAt  time.Time
}

// maxCachedRevocations bounds the cache's memory; past it the cache restarts.
const maxCachedRevocations = 100_000

func newRevocationCache(ttl time.Duration, store Store, now func() time.Time) *revocationCache {
	return &revocationCache{ttl: ttl, store: store, now: now, entries: map[revocationKey]cachedRevocation{}}
}

// revocationKey names what Store.GetRevocation answered for.
type revocationKey struct{ familyID, subject, client string }

// get answers from what was read within ttl, or reads the store; with
// fromStore it always reads the store (and remembers the answer).
func (c *revocationCache) get(ctx context.Context, familyID, subject, client string, fromStore bool) (storage.Revocation, error) {
	key := revocationKey{familyID, subject, client}
	now := c.now()
	if c.ttl > 0 && !fromStore {
		c.mu.Lock()
		entry, ok := c.entries[key]
		c.mu.Unlock()
		if ok && now.Sub(entry.fetchedAt) < c.ttl && !now.Before(entry.fetchedAt) {
			return entry.revocation, nil
		}
	}
	revocation, err := c.store.GetRevocation(ctx, familyID, subject, client)
	if err != nil {
		return storage.Revocation{}, err
	}
	if c.ttl > 0 {
		c.mu.Lock()
		if len(c.entries) >= maxCachedRevocations {
			c.entries = map[revocationKey]cachedRevocation{}
		}
		c.entries[key] = cachedRevocation{revocation: revocation, fetchedAt: now}
		c.mu.Unlock()
	}
	return revocation, nil
}

// ForgetRefusals drops what this server remembers of principal's
// revocations (a subject, or a client's principal key): the directory calls
// it once a change that refuses principal's tokens has committed, so this
// replica refuses them at once rather than within RevocationCacheTTL.
func (s *Service) ForgetRefusals(principal string) {
	s.revocations.forgetPrincipal(principal)
}

// forgetFamily drops what this server remembers of familyID, whatever its
// subject and client.
func (c *revocationCache) forgetFamily(familyID string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key := range c.entries {
		if key.familyID == familyID {
			delete(c.entries, key)
		}
	}
}

func (c *revocationCache) forgetPrincipal(principal string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for key := range c.entries {
		if key.subject == principal || key.client == principal {
			delete(c.entries, key)
		}
	}
}

// forget drops what this server knows of a family or subject it just revoked.
func (c *revocationCache) forget(family Family) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if family.ID == "" {
		for key := range c.entries {
			if key.subject == family.Subject {
				delete(c.entries, key)
			}
		}
		return
	}
	// A family's access tokens name its client, or none when they were
	// issued before clients were recorded; those a service obtained from
	// them by token exchange name that service: every client goes.
	for key := range c.entries {
		if key.familyID == family.ID {
			delete(c.entries, key)
		}
	}
}

// Family names one login: its refresh family, subject and client.
type Family struct {
	ID, Subject, ClientID string
}

// Revoke revokes, on behalf of client, the login a token belongs to (RFC
// 7009): a refresh token by value, or an access token by its family.
// Unknown, invalid and already revoked tokens succeed, so the answer tells
// an attacker nothing. A token issued to another client is refused (§2.1):
// Chit's own clients may revoke each other's tokens, a registered client
// only its own. A token over MaxTokenLength is a bad request, not one more
// unknown token: the documented limit holds at every entry point.
func (s *Service) Revoke(ctx context.Context, client accounts.Client, token string) error {
	if err := checkPresentedToken(token); err != nil {
		return err
	}
	var familyID, subject, owner string
	if len(token) > len(RefreshTokenPrefix) && token[:len(RefreshTokenPrefix)] == RefreshTokenPrefix {
		record, err := s.storedRefreshToken(ctx, token)
		if errors.Is(err, storage.ErrNotFound) {
			// An earlier token of a live login, no longer stored, still
			// ends its login, as it did when every token was stored.
			var earlier bool
			if record, earlier, err = s.earlierGeneration(ctx, token); err == nil && !earlier {
				return nil
			}
		}
		if err != nil {
			return err
		}
		familyID, subject, owner = record.FamilyID, record.Subject, record.ClientID
	} else {
		claims, err := s.Check(ctx, token)
		switch {
		case err != nil && chiterr.KindOf(err) != chiterr.Unauthenticated:
			// The store failed (it cannot be reached, say): whether the
			// token is valid is unknown, and answering "revoked" would
			// leave its login alive while its client thinks it ended.
			return err
		case err != nil:
			return nil
		}
		if claims.FamilyID == "" || claims.signedBy.provider {
			// A valid token with no login behind it (client credentials, a
			// provider's): nothing to end, and saying "revoked" would be a
			// lie (RFC 7009 §2.2.1).
			return errNoLoginToRevoke
		}
		familyID, subject, owner = claims.FamilyID, claims.Subject, claims.ClientID
		if client.Service && owner == client.ID {
			// A service holds no login: a token of its with a login is one
			// it exchanged (token exchange), whose login is its subject's,
			// through another client. Ending it is not the service's to do.
			return errExchangedTokenLogin
		}
	}
	if keyID, ok := apiKeyOfFamily(familyID); ok {
		// An API key's token stands for the key, not a login through a
		// client: its holder may end it, whatever client asks, and revoking
		// it revokes the key, which would otherwise keep minting refused
		// tokens.
		err := s.deleteAPIKey(ctx, storage.APIKey{ID: keyID, Subject: subject}, "revoked with one of its tokens")
		if chiterr.KindOf(err) == chiterr.NotFound {
			return nil
		}
		return err
	}
	if !mayRevoke(client, owner) {
		return chiterr.New(chiterr.PermissionDenied, "the token was issued to another client").WithReason(chiterr.ReasonUnauthorizedClient)
	}
	return s.RevokeFamily(ctx, Family{ID: familyID, Subject: subject, ClientID: owner}, "revoked by its holder")
}

var errExchangedTokenLogin = chiterr.New(chiterr.InvalidArgument,
	"this token came from a token exchange: its login is its subject's, which the service cannot end; it expires with the subject token").
	WithReason(chiterr.ReasonUnsupportedTokenType)

var errNoLoginToRevoke = chiterr.New(chiterr.InvalidArgument,
	"this token has no login to end: client-credentials and provider tokens expire on their own; delete or narrow the service account or provider to stop them").
	WithReason(chiterr.ReasonUnsupportedTokenType)

// mayRevoke reports whether client may revoke a token issued to owner (""
// for tokens issued before clients were recorded, by Chit's own clients).
func mayRevoke(client accounts.Client, owner string) bool {
	ownedByFirstParty := owner == "" || slices.Contains(accounts.FirstPartyClientIDs, owner)
	return client.ID == owner || (client.FirstParty && ownedByFirstParty)
}

// RevokeFamily ends one login: its refresh tokens are deleted and its access
// tokens refused. reason goes to the audit log.
func (s *Service) RevokeFamily(ctx context.Context, family Family, reason string) error {
	n, err := s.Store.RevokeRefreshFamily(ctx, family.ID, s.Now())
	if err != nil {
		return err
	}
	s.revocations.forget(family)
	s.Logger.InfoContext(ctx, "session revoked", "audit", true, "event", "revoke_family", "reason", reason,
		"subject", family.Subject, "client", family.ClientID, "family", family.ID, "revoked_tokens", n)
	return nil
}

// RevokeSessions revokes every session of subject, on behalf of caller: a
// person may end their own sessions, an admin anyone's.
func (s *Service) RevokeSessions(ctx context.Context, caller Claims, subject string) error {
	if subject == "" {
		subject = caller.Subject
	}
	if err := accounts.ValidateLoginSubject(subject); err != nil {
		return err
	}
	if subject != caller.Subject && caller.Role != accounts.RoleAdmin {
		return chiterr.New(chiterr.PermissionDenied, "only an admin may revoke another subject's sessions")
	}
	// Ending every session, across every client, is for the person through
	// Chit's own clients: a third-party client ends its own logins (Revoke
	// with a token, or /oauth2/revoke).
	if caller.ClientID != "" && !slices.Contains(accounts.FirstPartyClientIDs, caller.ClientID) {
		return chiterr.New(chiterr.PermissionDenied, "a token issued to client %q may not end its subject's sessions at every client; revoke the client's own tokens instead", caller.ClientID)
	}
	n, err := s.Store.RevokeSubject(ctx, subject, s.Now())
	if err != nil {
		return err
	}
	s.revocations.forget(Family{Subject: subject})
	s.Logger.InfoContext(ctx, "all sessions revoked", "audit", true, "event", "revoke_subject", "subject", subject, "by", caller.Subject, "revoked_tokens", n)
	return nil
}

// ListLogins returns subject's live logins of page, by login id.
func (s *Service) ListLogins(ctx context.Context, subject string, page storage.Page) ([]storage.RefreshToken, error) {
	if err := accounts.ValidateLoginSubject(subject); err != nil {
		return nil, err
	}
	return s.Store.ListLogins(ctx, subject, s.Now(), page)
}

// RevokeLogin ends the login familyID of subject, for an admin (reason
// names who). A login of another subject, expired or unknown, is NotFound:
// the pair must match, so a mistyped id never ends someone else's login.
func (s *Service) RevokeLogin(ctx context.Context, subject, familyID, reason string) error {
	if err := accounts.ValidateLoginSubject(subject); err != nil {
		return err
	}
	// A subject holds few logins; they are read a page at a time until the
	// one named is found.
	page := storage.Page{Limit: 500}
	for {
		logins, err := s.Store.ListLogins(ctx, subject, s.Now(), page)
		if err != nil {
			return err
		}
		for _, login := range logins {
			if login.FamilyID == familyID {
				return s.RevokeFamily(ctx, Family{ID: login.FamilyID, Subject: subject, ClientID: login.ClientID}, reason)
			}
		}
		if len(logins) < page.Limit {
			return chiterr.New(chiterr.NotFound, "%s has no live login %s", chiterr.Quote(subject), chiterr.Quote(familyID))
		}
		page.After = logins[len(logins)-1].FamilyID
	}
}
