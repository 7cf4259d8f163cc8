package tokens

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

// Introspection is what RFC 7662 answers about a token. An inactive one
// says nothing else.
type Introspection struct {
	Active bool
	// TokenType is "access_token" or "refresh_token" (RFC 7009's hints).
	TokenType string
	Claims    Claims
}

// Introspect describes token to caller (RFC 7662). A service account (a
// resource server) may introspect any access token for the server's
// audience; a confidential client only tokens issued to it, access or
// refresh. Anything else, and any token that is not valid, is inactive; a
// missing or overlong token is a bad request (RFC 7662 §2.3).
func (s *Service) Introspect(ctx context.Context, caller accounts.Client, token string) (Introspection, error) {
	if err := checkPresentedToken(token); err != nil {
		return Introspection{}, err
	}
	if strings.HasPrefix(token, RefreshTokenPrefix) {
		return s.introspectRefreshToken(ctx, caller, token)
	}
	claims, err := s.Check(ctx, token)
	switch {
	case chiterr.KindOf(err) == chiterr.Unauthenticated:
		return Introspection{}, nil
	case err != nil:
		return Introspection{}, err
	case !caller.Service && claims.ClientID != caller.ID:
		return Introspection{}, nil
	}
	return Introspection{Active: true, TokenType: "access_token", Claims: claims}, nil
}

// introspectRefreshToken answers for a refresh token to the client it was
// issued to (RFC 7662 §2.2, RFC 7009 §2.1): a live, unrotated token of a
// user who still exists.
func (s *Service) introspectRefreshToken(ctx context.Context, caller accounts.Client, token string) (Introspection, error) {
	record, err := s.storedRefreshToken(ctx, token)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return Introspection{}, nil
	case err != nil:
		return Introspection{}, fmt.Errorf("read refresh token: %w", err)
	}
	now := s.Now()
	if record.ClientID == "" || record.ClientID != caller.ID || !record.RotatedAt.IsZero() || !now.Before(record.ExpiresAt) ||
		caller.CreatedAt.After(record.IssuedAt) { // issued to an earlier client of the same id
		return Introspection{}, nil
	}
	user, err := s.Directory.LookupUser(ctx, record.Subject)
	switch {
	case errors.Is(err, storage.ErrNotFound) || (err == nil && user.CreatedAt.After(record.IssuedAt)):
		return Introspection{}, nil
	case err != nil:
		return Introspection{}, fmt.Errorf("read the login's user: %w", err)
	}
	audience := record.Audience
	if audience == "" {
		audience = s.cfg.Audience
	}
	// What the login would get now: the role as the client may see it,
	// the scopes still allowed.
	grantee := accounts.Grantee{Principal: user, Client: caller}
	return Introspection{Active: true, TokenType: "refresh_token", Claims: Claims{
		Subject:   record.Subject,
		Role:      grantee.Role(),
		Scopes:    grantee.StillAllowed(strings.Fields(record.Scope)),
		ClientID:  record.ClientID,
		Issuer:    s.cfg.Issuer,
		Audience:  []string{audience},
		IssuedAt:  record.IssuedAt.Truncate(time.Second),
		ExpiresAt: record.ExpiresAt,
		FamilyID:  record.FamilyID,
	}}, nil
}
