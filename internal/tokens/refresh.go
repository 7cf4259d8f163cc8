package tokens

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/secrets"
	"github.com/chit-auth/chit/internal/storage"
)

var (
	errRefreshInvalid = chiterr.New(chiterr.Unauthenticated, "refresh token is invalid")
	errRefreshReused  = chiterr.New(chiterr.Unauthenticated, "refresh token has already been used; the session is revoked")
	errRefreshExpired = chiterr.New(chiterr.Unauthenticated, "refresh token has expired")
)

// rotationSealPurpose separates the sealing of successors from other uses.
const rotationSealPurpose = "refresh rotation"

// RefreshRequest is the exchange of a refresh token.
type RefreshRequest struct {
	// Client is the client presenting the token, already authenticated: a
	// token refreshes only through the client it was issued to.
	Client       accounts.Client
	RefreshToken string
	// Scope, when not empty, narrows the new access token.
	Scope string
	// Binding is the key the new access token is bound to. A login a
	// public client started with a DPoP key refreshes only with a proof of
	// the same key.
	Binding Binding
}

// Refresh exchanges a refresh token, presented by the client it was issued
// to, for a new access token and a successor refresh token; the presented
// one stops working. Presenting it again within the grace period answers
// the same successor (a lost answer, two tabs); after that it is reuse, and
// the whole family is revoked. req.Scope, when not empty, narrows the new
// access token (RFC 6749 §6); the refresh token keeps the login's scopes.
func (s *Service) Refresh(ctx context.Context, req RefreshRequest) (Grant, error) {
	client, refreshToken := req.Client, req.RefreshToken
	if refreshToken == "" {
		return Grant{}, chiterr.New(chiterr.InvalidArgument, "refresh_token is required")
	}
	requested, err := accounts.ParseScope(req.Scope)
	if err != nil {
		return Grant{}, err
	}
	if len(refreshToken) > MaxTokenLength {
		return Grant{}, chiterr.New(chiterr.InvalidArgument, "refresh_token is longer than %d bytes", MaxTokenLength)
	}
	if !strings.HasPrefix(refreshToken, RefreshTokenPrefix) {
		return Grant{}, errRefreshInvalid
	}
	// A lost race for the rotation is retried once: the second pass finds the
	// token rotated and answers the winner's successor.
	for attempt := 0; ; attempt++ {
		grant, err := s.refreshOnce(ctx, client, refreshToken, requested, req.Binding)
		if errors.Is(err, storage.ErrConflict) && attempt == 0 {
			continue
		}
		return grant, err
	}
}

// userRead is a login's user as read for a refresh: the principal, or
// storage.ErrNotFound (the user was deleted), or the read's error.
type userRead struct {
	principal accounts.Principal
	err       error
}

// lookUpUser reads subject's user alone.
func (s *Service) lookUpUser(ctx context.Context, subject string) userRead {
	principal, err := s.Directory.LookupUser(ctx, subject)
	return userRead{principal, err}
}

var (
	errRefreshOtherClient = chiterr.New(chiterr.Unauthenticated, "refresh token was issued to another client")
	errPrincipalGone      = chiterr.New(chiterr.Unauthenticated, "refresh token is invalid: its user no longer exists")
)

// loginNow is what a refresh of current may issue now: the login's
// principal and client as they are in the store (a deleted one ends the
// login, a new role applies, a narrowed grant narrows), and the scopes of
// the new access token.
func (s *Service) loginNow(ctx context.Context, client accounts.Client, current storage.RefreshToken, requested []string, user userRead) (Login, error) {
	switch {
	case client.Service:
		return Login{}, errServiceNotPasswordClient
	case current.ClientID == "" && !client.FirstParty:
		// Issued before clients were recorded: only Chit's own clients
		// issued such tokens.
		return Login{}, errRefreshOtherClient
	case current.ClientID != "" && current.ClientID != client.ID:
		return Login{}, errRefreshOtherClient
	}
	principal, err := user.principal, user.err
	switch {
	// A user created after the token was issued is another person who took
	// the name of a deleted one: the login is not theirs.
	case errors.Is(err, storage.ErrNotFound) || (err == nil && principal.CreatedAt.After(current.IssuedAt)):
		return Login{}, errPrincipalGone
	case err != nil:
		return Login{}, fmt.Errorf("read the login's user: %w", err)
	}
	if !client.FirstParty {
		// The client's grants as they are now, not as its authentication
		// found them a moment ago: both come from the store.
		if client, err = s.Directory.LookupClient(ctx, client.ID); err != nil {
			if errors.Is(err, storage.ErrUnavailable) {
				return Login{}, err
			}
			return Login{}, chiterr.Wrap(chiterr.Unauthenticated, err, errRefreshInvalid.Message)
		}
		if client.CreatedAt.After(current.IssuedAt) {
			return Login{}, errRefreshOtherClient
		}
	}
	grantee := accounts.Grantee{Principal: principal, Client: client}
	loginScopes := strings.Fields(current.Scope)
	for _, scope := range requested {
		if !slices.Contains(loginScopes, scope) {
			return Login{}, chiterr.New(chiterr.InvalidArgument, "scope %q was not granted to this login; a refresh can only narrow", scope).WithReason(chiterr.ReasonInvalidScope)
		}
	}
	if len(requested) == 0 {
		requested = loginScopes
	}
	// A login lives on through refreshes only while offline_access is
	// still allowed to it: taking it from the person or the client ends
	// the login at its next refresh.
	if slices.Contains(loginScopes, accounts.ScopeOfflineAccess) && len(grantee.StillAllowed([]string{accounts.ScopeOfflineAccess})) == 0 {
		return Login{}, chiterr.New(chiterr.Unauthenticated, "refresh token is invalid: offline_access is no longer allowed")
	}
	audience, err := grantee.GrantAudience(current.Audience)
	if err != nil {
		return Login{}, chiterr.New(chiterr.Unauthenticated, "refresh token is invalid: its audience is no longer allowed")
	}
	return Login{Grantee: grantee, Scopes: grantee.StillAllowed(requested), Audience: audience, FamilyID: current.FamilyID}, nil
}

func (s *Service) refreshOnce(ctx context.Context, client accounts.Client, refreshToken string, requested []string, binding Binding) (Grant, error) {
	// The login's record and its user are read together: one round trip
	// where a round trip costs (PostgreSQL). The user counts as read from
	// before the read began.
	readAt := s.Now()
	current, user, err := s.Store.GetRefreshTokenWithUser(ctx, familyOf(refreshToken), secrets.Digest(refreshToken))
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return s.unknownRefreshToken(ctx, client, refreshToken)
	case err != nil:
		return Grant{}, fmt.Errorf("read refresh token: %w", err)
	}
	read := userRead{err: storage.ErrNotFound}
	if user != nil {
		read = userRead{principal: s.Directory.UserPrincipal(*user, readAt)}
	}
	now := s.Now()
	login, err := s.loginNow(ctx, client, current, requested, read)
	if err != nil {
		return Grant{}, err
	}
	// Checked before anything else answers: a bound token without its key
	// gets nothing, not even the successor of a lost answer.
	if err := checkRefreshKey(current, binding); err != nil {
		return Grant{}, err
	}
	login.Binding = binding
	if !current.RotatedAt.IsZero() {
		return s.replay(ctx, refreshToken, current, login, now)
	}
	if !now.Before(current.ExpiresAt) {
		return Grant{}, errRefreshExpired
	}
	// The successor and its access token count from when the user was read
	// (issuedAt), so a change committed meanwhile refuses them.
	issuedAt := s.issuedAt(login.Grantee)
	successor := current
	successor.IssuedAt, successor.RotatedAt, successor.ReplacedBy, successor.SealedSuccessor = issuedAt, time.Time{}, nil, nil
	successor.ExpiresAt = earliest(now.Add(s.cfg.RefreshIdleTimeout), current.FamilyExpiresAt)
	successor.ClientID, successor.Role = login.Client.ID, string(login.Role())
	successor.Generation = current.Generation + 1
	refresh, successor, err := s.newRefreshToken(successor)
	if err != nil {
		return Grant{}, err
	}
	var sealed []byte
	if s.cfg.RefreshGracePeriod > 0 {
		if sealed, err = secrets.Seal(rotationSealPurpose, refreshToken, refresh, s.Random); err != nil {
			return Grant{}, err
		}
	}
	access, err := s.signAccess(accessToken{grantee: login.Grantee, scopes: login.Scopes, audience: login.Audience, familyID: current.FamilyID,
		issuedAt: issuedAt, binding: binding})
	if err != nil {
		return Grant{}, err
	}
	idToken, err := s.refreshIDToken(login, access, issuedAt)
	if err != nil {
		return Grant{}, err
	}
	switch err := s.Store.RotateRefreshToken(ctx, current.Hash, successor, sealed); {
	case errors.Is(err, storage.ErrConflict):
		return Grant{}, err
	case errors.Is(err, storage.ErrNotFound):
		return Grant{}, errRefreshInvalid
	case err != nil:
		return Grant{}, fmt.Errorf("rotate refresh token: %w", err)
	}
	s.Events.TokenIssued("refresh")
	grant := s.grant(access, refresh, login.Scopes, binding)
	grant.IDToken = idToken
	return grant, nil
}

// unknownRefreshToken answers a refresh token the store does not hold: a
// genuine earlier token of a live login is reuse, which ends the login;
// anything else (forged, altered, of an ended login) is refused and ends
// nothing.
func (s *Service) unknownRefreshToken(ctx context.Context, client accounts.Client, refreshToken string) (Grant, error) {
	login, earlier, err := s.earlierGeneration(ctx, refreshToken)
	if err != nil || !earlier {
		if err == nil {
			err = errRefreshInvalid
		}
		return Grant{}, err
	}
	// As for a token the store holds: presented by another client, it is
	// refused and revokes nothing.
	if _, err := s.loginNow(ctx, client, login, nil, s.lookUpUser(ctx, login.Subject)); err != nil {
		return Grant{}, err
	}
	return s.reuse(ctx, login)
}

// replay handles a refresh token that was already rotated.
func (s *Service) replay(ctx context.Context, refreshToken string, current storage.RefreshToken, login Login, now time.Time) (Grant, error) {
	if s.cfg.RefreshGracePeriod > 0 && now.Sub(current.RotatedAt) <= s.cfg.RefreshGracePeriod && len(current.SealedSuccessor) > 0 {
		successor, err := secrets.Open(rotationSealPurpose, refreshToken, current.SealedSuccessor)
		if err != nil {
			return Grant{}, fmt.Errorf("open sealed successor: %w", err)
		}
		// The successor must still be alive: a revoked family stays revoked.
		if _, err := s.storedRefreshToken(ctx, successor); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return Grant{}, errRefreshInvalid
			}
			return Grant{}, fmt.Errorf("read successor: %w", err)
		}
		issuedAt := s.issuedAt(login.Grantee)
		access, err := s.signAccess(accessToken{grantee: login.Grantee, scopes: login.Scopes, audience: login.Audience,
			familyID: current.FamilyID, issuedAt: issuedAt, binding: login.Binding})
		if err != nil {
			return Grant{}, err
		}
		grant := s.grant(access, successor, login.Scopes, login.Binding)
		if grant.IDToken, err = s.refreshIDToken(login, access, issuedAt); err != nil {
			return Grant{}, err
		}
		return grant, nil
	}
	return s.reuse(ctx, current)
}

// reuse ends the login of a rotated token presented again outside the grace
// period: either the client or a thief holds a stale copy, and we cannot
// tell which; end the whole login (RFC 9700 §4.14.2).
func (s *Service) reuse(ctx context.Context, current storage.RefreshToken) (Grant, error) {
	s.Logger.WarnContext(ctx, "refresh token reuse detected; revoking its family",
		"audit", true, "event", "refresh_reuse", "subject", current.Subject, "family", current.FamilyID, "rotated_at", current.RotatedAt)
	s.Events.RefreshReuseDetected()
	if err := s.RevokeFamily(ctx, Family{ID: current.FamilyID, Subject: current.Subject, ClientID: current.ClientID}, "refresh token reuse"); err != nil {
		return Grant{}, fmt.Errorf("revoke family after reuse: %w", err)
	}
	return Grant{}, errRefreshReused
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
