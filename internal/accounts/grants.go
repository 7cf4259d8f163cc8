package accounts

import (
	"slices"
	"strings"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

// The `sub` of each kind of principal has a format no other kind can
// produce: names never contain ':' and never start with '#'.
//
//	user             NAME            (alice)
//	service account  service:ID      (service:billing)
//	OAuth client     client:ID       (client:dashboard; the key under which
//	                                  a client's revocations are recorded,
//	                                  and the `sub` of nothing it signs in)
//	provider         #P_ID           (#P_hippo, UCloud's format)
const (
	ServiceSubjectPrefix  = "service:"
	ClientSubjectPrefix   = "client:"
	ProviderSubjectPrefix = "#P_"
)

// UserSubject is the `sub` of a person's tokens.
func UserSubject(name string) string { return name }

// ServiceSubject is the `sub` of a service account's tokens.
func ServiceSubject(clientID string) string { return ServiceSubjectPrefix + clientID }

// ClientSubject is the key under which an OAuth client's revocations are
// recorded: it refuses every token issued through the client.
func ClientSubject(clientID string) string { return ClientSubjectPrefix + clientID }

// ProviderSubject is the `sub` of a provider's own tokens.
func ProviderSubject(id string) string { return ProviderSubjectPrefix + id }

// Scopes with a meaning to OpenID Connect. People may always obtain them,
// through clients that allow them; existing principals kept them when
// grants were introduced. email and profile release the claims of OpenID
// Connect Core §5.4; groups is not a standard scope: it releases the
// person's `groups` claim, as Dex, Keycloak and Kubernetes read it.
const (
	ScopeOpenID        = "openid"
	ScopeProfile       = "profile"
	ScopeEmail         = "email"
	ScopeGroups        = "groups"
	ScopeOfflineAccess = "offline_access"
)

// PersonScopes are the scopes every person may obtain, without a grant.
var PersonScopes = []string{ScopeOpenID, ScopeProfile, ScopeEmail, ScopeGroups, ScopeOfflineAccess}

// ClientScopes are the scopes every registered client may ask for without
// a grant: the standard OpenID Connect identity scopes that relying parties
// ask for by default (oauth2-proxy's "openid email profile"), which say
// who the person is and nothing they may do. offline_access (a refresh
// token, a login that outlives the visit) and groups (which some
// applications read as permissions, as Kubernetes does) must be granted to
// the client like any other scope.
var ClientScopes = []string{ScopeOpenID, ScopeProfile, ScopeEmail}

// Bounds on what an operator may grant, so a record stays small.
const (
	MaxScopeLength    = 128
	MaxGrantedScopes  = 64
	MaxAudienceLength = 128
	maxRequestedScope = 1024
)

// ParseScope splits a space-separated scope (RFC 6749 §3.3), refusing
// characters outside scope-token and dropping duplicates.
func ParseScope(scope string) ([]string, error) {
	if len(scope) > maxRequestedScope {
		return nil, chiterr.New(chiterr.InvalidArgument, "scope is longer than %d characters", maxRequestedScope)
	}
	var scopes []string
	for _, item := range strings.Split(scope, " ") {
		if item == "" {
			continue
		}
		if err := checkScopeToken(item); err != nil {
			return nil, err
		}
		if !slices.Contains(scopes, item) {
			scopes = append(scopes, item)
		}
	}
	return scopes, nil
}

func checkScopeToken(scope string) error { return checkToken("scope", scope) }

// checkToken checks a scope-token (RFC 6749 §3.3: printable ASCII but
// space, '"' and '\') of at most MaxScopeLength characters; kind names
// what it is in the message.
func checkToken(kind, token string) error {
	if len(token) > MaxScopeLength {
		return chiterr.New(chiterr.InvalidArgument, "%s %q is longer than %d characters", kind, token[:32]+"...", MaxScopeLength)
	}
	for _, r := range token {
		if r < 0x21 || r == 0x22 || r == 0x5c || r > 0x7e {
			return chiterr.New(chiterr.InvalidArgument, "%s %s contains a character not allowed in a %s", kind, chiterr.Quote(token), kind)
		}
	}
	return nil
}

// GrantFields name the lists of a grant where the operator wrote them (a
// command's flags, an API's fields), for the messages that refuse one.
type GrantFields struct{ Allowed, Default, Audiences string }

// NewGrants checks what an operator grants: every default scope must be
// allowed, and audiences must be valid names that are not the server's own.
// fields name the lists in its errors.
func NewGrants(fields GrantFields, allowed, defaults, audiences []string) (storage.Grants, error) {
	grants := storage.Grants{}
	for _, list := range []struct {
		name  string
		items []string
		into  *[]string
	}{{fields.Allowed, allowed, &grants.AllowedScopes}, {fields.Default, defaults, &grants.DefaultScopes}} {
		// Counted before the duplicates are dropped, so a long list is
		// refused before any work that grows with its length squared.
		if len(list.items) > MaxGrantedScopes {
			return storage.Grants{}, chiterr.New(chiterr.InvalidArgument, "%s: at most %d scopes", list.name, MaxGrantedScopes)
		}
		for _, scope := range list.items {
			if scope == "" {
				return storage.Grants{}, chiterr.New(chiterr.InvalidArgument, "%s: a scope is empty", list.name)
			}
			if err := checkScopeToken(scope); err != nil {
				return storage.Grants{}, err
			}
			if !slices.Contains(*list.into, scope) {
				*list.into = append(*list.into, scope)
			}
		}
		if len(*list.into) > MaxGrantedScopes {
			return storage.Grants{}, chiterr.New(chiterr.InvalidArgument, "%s: at most %d scopes", list.name, MaxGrantedScopes)
		}
	}
	if len(audiences) > MaxGrantedScopes {
		return storage.Grants{}, chiterr.New(chiterr.InvalidArgument, "%s: at most %d audiences", fields.Audiences, MaxGrantedScopes)
	}
	for _, audience := range audiences {
		if err := ValidateName("audience", audience); err != nil {
			return storage.Grants{}, err
		}
		if !slices.Contains(grants.AllowedAudiences, audience) {
			grants.AllowedAudiences = append(grants.AllowedAudiences, audience)
		}
	}
	return grants, nil
}

// checkDefaults refuses default scopes a principal could not obtain:
// those neither allowed nor among implicit, the scopes it has without a
// grant (PersonScopes, ClientScopes, none for a service account).
func checkDefaults(grants storage.Grants, implicit []string) error {
	for _, scope := range grants.DefaultScopes {
		if !slices.Contains(grants.AllowedScopes, scope) && !slices.Contains(implicit, scope) {
			return chiterr.New(chiterr.InvalidArgument, "default scope %q is not among the allowed scopes", scope)
		}
	}
	return nil
}

// narrows reports whether the grants after a change allow less than before:
// then tokens issued under the old grants must stop working.
func narrows(before, after storage.Grants) bool {
	for _, scope := range before.AllowedScopes {
		if !slices.Contains(after.AllowedScopes, scope) {
			return true
		}
	}
	for _, audience := range before.AllowedAudiences {
		if !slices.Contains(after.AllowedAudiences, audience) {
			return true
		}
	}
	return false
}

// Grantee is who a token is for: a principal and, for people, the client
// they signed in through.
type Grantee struct {
	Principal Principal
	// Client is the OAuth client involved; a service account is its own.
	Client Client
}

// Role is the role the token carries. An admin acts as an admin only
// through Chit's own clients: through a registered client, which the admin
// merely signs in to, the token carries USER, so no third-party application
// gains an admin's power over Chit by having an admin sign in to it.
func (g Grantee) Role() Role {
	if g.Principal.Role == RoleAdmin && !g.Client.FirstParty && g.Client.ID != "" {
		return RoleUser
	}
	return g.Principal.Role
}

// allows reports whether scope is within the principal's allowed scopes
// and the client's. It allocates nothing: every token request asks it.
func (g Grantee) allows(scope string) bool {
	if !slices.Contains(g.Principal.Grants.AllowedScopes, scope) && !(g.Principal.Person() && slices.Contains(PersonScopes, scope)) {
		return false
	}
	return g.Client.ID == "" || g.Principal.Role == RoleService || g.Client.Allows(scope)
}

// GrantScopes decides the scopes of a token (RFC 6749 §3.3). With none
// requested, the principal's and the client's defaults that are allowed;
// otherwise exactly the requested ones, each of which must be allowed:
// anything else is invalid_scope, never a silently narrower grant.
func (g Grantee) GrantScopes(requested []string) ([]string, error) {
	if len(requested) == 0 {
		var granted []string
		for _, defaults := range [][]string{g.Principal.Grants.DefaultScopes, g.Client.Grants.DefaultScopes} {
			for _, scope := range defaults {
				if g.allows(scope) && !slices.Contains(granted, scope) {
					granted = append(granted, scope)
				}
			}
		}
		return granted, nil
	}
	for _, scope := range requested {
		if !g.allows(scope) {
			return nil, chiterr.New(chiterr.InvalidArgument, "scope %q is not allowed for %s", scope, g.describe()).WithReason(chiterr.ReasonInvalidScope)
		}
	}
	return requested, nil
}

// StillAllowed keeps the scopes of a login that its principal and client
// still allow: a refresh never widens, and follows a narrowing at once.
func (g Grantee) StillAllowed(scopes []string) []string {
	kept := make([]string, 0, len(scopes))
	for _, scope := range scopes {
		if g.allows(scope) {
			kept = append(kept, scope)
		}
	}
	return kept
}

// GrantAudience checks a requested audience (RFC 8707): "" is the server's
// own; another must be allowed to the service account, or to the client a
// person signs in through.
func (g Grantee) GrantAudience(requested string) (string, error) {
	if requested == "" {
		return "", nil
	}
	if len(requested) > MaxAudienceLength {
		return "", chiterr.New(chiterr.InvalidArgument, "audience is longer than %d characters", MaxAudienceLength).WithReason(chiterr.ReasonInvalidTarget)
	}
	allowed := g.Client.Grants.AllowedAudiences
	if g.Principal.Role == RoleService {
		allowed = g.Principal.Grants.AllowedAudiences
	}
	if !slices.Contains(allowed, requested) {
		return "", chiterr.New(chiterr.InvalidArgument, "audience %q is not allowed for %s", requested, g.describe()).WithReason(chiterr.ReasonInvalidTarget)
	}
	return requested, nil
}

func (g Grantee) describe() string {
	if g.Principal.Subject == "" {
		return "client " + g.Client.ID
	}
	if g.Principal.Role == RoleService || g.Client.FirstParty || g.Client.ID == "" {
		return g.Principal.Subject
	}
	return g.Principal.Subject + " through client " + g.Client.ID
}
