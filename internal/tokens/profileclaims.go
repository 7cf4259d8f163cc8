package tokens

import (
	"context"
	"errors"
	"slices"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/storage"
)

// The claims ProfileClaims may state (OpenID Connect Core §5.1), and the
// scope that releases each (§5.4). groups is not an OpenID Connect claim:
// it is the list of names Dex, Keycloak and Kubernetes (--oidc-groups-claim)
// read, released by the groups scope.
const (
	NameClaim              = "name"               // profile
	PreferredUsernameClaim = "preferred_username" // profile
	EmailClaim             = "email"              // email
	EmailVerifiedClaim     = "email_verified"     // email
	GroupsClaim            = "groups"             // groups
)

// ProfileClaimNames are the claims ProfileClaims may state, for discovery's
// claims_supported.
var ProfileClaimNames = []string{NameClaim, PreferredUsernameClaim, EmailClaim, EmailVerifiedClaim, GroupsClaim}

// ProfileClaims are the claims about principal that scopes release, the
// same in an ID token and in a userinfo answer: with profile, its
// `preferred_username` (the name it signs in with, its `sub`) and `name`
// (its display name); with email, `email` and `email_verified`; with
// groups, `groups`. A claim whose value is unknown is left out, never sent
// empty; a service account has no profile but its `preferred_username`.
func ProfileClaims(principal accounts.Principal, scopes []string) map[string]any {
	claims := map[string]any{}
	profile := principal.Profile
	if slices.Contains(scopes, accounts.ScopeProfile) {
		claims[PreferredUsernameClaim] = principal.Subject
		if profile.DisplayName != "" {
			claims[NameClaim] = profile.DisplayName
		}
	}
	if slices.Contains(scopes, accounts.ScopeEmail) && profile.Email != "" {
		claims[EmailClaim] = profile.Email
		claims[EmailVerifiedClaim] = profile.EmailVerified
	}
	if slices.Contains(scopes, accounts.ScopeGroups) && len(profile.Groups) > 0 {
		claims[GroupsClaim] = slices.Clone(profile.Groups)
	}
	return claims
}

// needsProfile reports whether scopes release a claim only the subject's
// record holds.
func needsProfile(scopes []string) bool {
	return slices.Contains(scopes, accounts.ScopeProfile) || slices.Contains(scopes, accounts.ScopeEmail) ||
		slices.Contains(scopes, accounts.ScopeGroups)
}

// Userinfo is the answer of OpenID Connect Core §5.3 for claims, an access
// token already verified (Authenticate) that carries the openid scope: its
// `sub`, its `role`, and ProfileClaims of its subject as stored now, so a
// changed email or group shows at once. A token whose scopes release no
// such claim costs no read of the store.
func (s *Service) Userinfo(ctx context.Context, claims Claims) (map[string]any, error) {
	answer := map[string]any{"sub": claims.Subject, "role": string(claims.Role)}
	principal := accounts.Principal{Subject: claims.Subject, Role: claims.Role}
	if needsProfile(claims.Scopes) {
		if s.Directory == nil {
			return nil, errors.New("no directory to read the subject's profile from")
		}
		var err error
		principal, err = s.Directory.LookupSubject(ctx, claims.Subject)
		if errors.Is(err, storage.ErrNotFound) {
			return nil, errCallerGone
		}
		if err != nil {
			return nil, err
		}
		// A subject deleted and created again since the token was issued
		// is someone else: the deletion's revocation refuses the token, and
		// until every replica has seen it, this does.
		if principal.CreatedAt.Truncate(time.Second).After(claims.IssuedAt) {
			return nil, errCallerGone
		}
	}
	for name, value := range ProfileClaims(principal, claims.Scopes) {
		answer[name] = value
	}
	return answer, nil
}
