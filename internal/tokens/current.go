package tokens

import (
	"context"
	"errors"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

var (
	errCallerGone        = chiterr.New(chiterr.Unauthenticated, "access token has been revoked: its subject no longer exists")
	errCallerRoleChanged = chiterr.New(chiterr.Unauthenticated, "access token has been revoked: its subject's role has changed; sign in again")
)

// AuthenticateCurrent is Authenticate for calls that change what Chit knows
// (principals, grants, keys, providers; every Admin API call): the caller's
// revocations and record are read from the store, never answered from what
// this replica read within RevocationCacheTTL. An admin demoted or deleted
// on another replica would otherwise keep the Admin API here for those
// seconds, time enough to create another admin or promote itself back.
// Such calls are rare; each costs two reads of the store more than a call
// checked by Authenticate.
func (s *Service) AuthenticateCurrent(ctx context.Context, accessToken string) (Claims, error) {
	claims, err := s.authenticate(ctx, accessToken, true)
	if err != nil {
		return Claims{}, err
	}
	if err := s.checkCurrentRecord(ctx, claims); err != nil {
		return Claims{}, err
	}
	return claims, nil
}

// checkCurrentRecord refuses claims whose subject is not, as stored now,
// what the token says: deleted (or deleted and created again since the
// token was issued), or no longer of the token's role. Each change records a
// revocation too; this holds even for a token issued between the change
// and its revocation's commit.
func (s *Service) checkCurrentRecord(ctx context.Context, claims Claims) error {
	if s.Directory == nil {
		return errors.New("no directory to read the caller's record from")
	}
	principal, err := s.Directory.ReadSubject(ctx, claims.Subject)
	if errors.Is(err, storage.ErrNotFound) {
		return errCallerGone
	}
	if err != nil {
		return err
	}
	// Whole seconds, as every token's iat has them: within the second of a
	// re-creation, the deletion's revocation refuses the older tokens.
	if principal.CreatedAt.Truncate(time.Second).After(claims.IssuedAt) {
		return errCallerGone
	}
	// A token never carries more than its subject's role, but may carry
	// less: an admin's tokens through a third-party client or an API key
	// are a USER's (accounts.Grantee.Role).
	var holds bool
	switch claims.Role {
	case accounts.RoleAdmin:
		holds = principal.Role == accounts.RoleAdmin
	case accounts.RoleUser:
		holds = principal.Person()
	case accounts.RoleService:
		holds = principal.Role == accounts.RoleService
	}
	if !holds {
		return errCallerRoleChanged
	}
	return nil
}
