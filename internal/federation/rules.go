package federation

import (
	"maps"
	"net/url"
	"path"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

// DefaultMaxAssertionLifetime bounds an assertion's exp - iat unless its
// rule says otherwise: platform tokens live minutes to an hour (GitHub
// Actions' about 5 minutes, Kubernetes' projected tokens 1 hour by
// default); a longer-lived one is a long-lived secret by another name.
const DefaultMaxAssertionLifetime = time.Hour

// MaxAssertionLifetimeLimit is the longest lifetime a rule may allow.
const MaxAssertionLifetimeLimit = 24 * time.Hour

// MaxRuleClaims bounds the claims one rule compares.
const MaxRuleClaims = 16

// sharedIssuers are issuers whose tokens any of their users can obtain (any
// GitHub repository's workflow, any GitLab.com project's job): a rule of
// theirs must pin an owner by an immutable numeric id, since `sub` names
// repositories and projects by their names, which can be renamed, deleted
// and registered again by someone else.
var sharedIssuers = map[string][]string{
	"https://token.actions.githubusercontent.com": {"repository_id", "repository_owner_id"},
	"https://gitlab.com":                          {"project_id", "namespace_id"},
}

// pinningClaims are the claims of which a rule of issuer must set one,
// without a glob, so that it names who the workload is and not only where
// it runs; shared says whether the issuer is one of the sharedIssuers.
func pinningClaims(issuer string) (claims []string, shared bool) {
	if owners, ok := sharedIssuers[issuer]; ok {
		return owners, true
	}
	// GitHub Enterprise Cloud's per-enterprise issuers are as shared.
	if strings.HasPrefix(issuer, "https://token.actions.githubusercontent.com/") {
		return sharedIssuers["https://token.actions.githubusercontent.com"], true
	}
	return []string{"sub"}, false
}

// checkedClaims are the claims a rule's own fields check; a rule may not
// compare them in its claims.
var checkedClaims = []string{"iss", "aud", "exp", "nbf", "iat", "jti"}

// isGlob reports whether a claim value of a rule is a pattern.
func isGlob(value string) bool { return strings.ContainsAny(value, `*?[\`) }

// claimMatches compares an assertion's claim with a rule's value: equal
// strings, or, for a value with a glob character, path.Match: `*` matches
// any run of characters but '/', `?` one of them, `[...]` a class. So
// `refs/heads/*` matches refs/heads/main but not refs/heads/team/x.
func claimMatches(want, got string) bool {
	if !isGlob(want) {
		return want == got
	}
	matched, err := path.Match(want, got)
	return err == nil && matched
}

// validateRule checks a rule as an admin writes it (its service account's
// existence is checked by the caller) and fills its defaults.
func validateRule(rule storage.FederationRule) (storage.FederationRule, error) {
	if err := accounts.ValidateName("federation rule", rule.Name); err != nil {
		return rule, err
	}
	if err := validateHTTPSURL("issuer", rule.Issuer); err != nil {
		return rule, err
	}
	if rule.Audience == "" {
		return rule, chiterr.New(chiterr.InvalidArgument, "audience is required: the value the workload's platform puts in the token's aud for Chit")
	}
	if rule.ServiceAccount == "" {
		return rule, chiterr.New(chiterr.InvalidArgument, "service_account is required")
	}
	if len(rule.Claims) > MaxRuleClaims {
		return rule, chiterr.New(chiterr.InvalidArgument, "a rule compares at most %d claims", MaxRuleClaims)
	}
	for _, name := range slices.Sorted(maps.Keys(rule.Claims)) {
		value := rule.Claims[name]
		switch {
		case name == "":
			return rule, chiterr.New(chiterr.InvalidArgument, "claims: a claim name is empty")
		case slices.Contains(checkedClaims, name):
			return rule, chiterr.New(chiterr.InvalidArgument, "claims: %s is checked by the rule itself (issuer, audience, lifetime, single use), not compared as a claim", chiterr.Quote(name))
		case value == "":
			return rule, chiterr.New(chiterr.InvalidArgument, "claims: %s has no value", chiterr.Quote(name))
		}
		if isGlob(value) {
			if _, err := path.Match(value, ""); err != nil {
				return rule, chiterr.New(chiterr.InvalidArgument, "claims: %s=%s is not a valid pattern", chiterr.Quote(name), chiterr.Quote(value))
			}
		}
	}
	if err := checkPinned(rule); err != nil {
		return rule, err
	}
	switch {
	case rule.JWKS != "" && rule.JWKSURI != "":
		return rule, chiterr.New(chiterr.InvalidArgument, "give the issuer's keys inline (jwks) or where to fetch them (jwks_uri), not both")
	case rule.JWKS != "":
		if _, err := parseInlineKeys(rule.JWKS); err != nil {
			return rule, err
		}
	case rule.JWKSURI != "":
		if err := validateHTTPSURL("jwks_uri", rule.JWKSURI); err != nil {
			return rule, err
		}
	}
	switch {
	case rule.MaxAssertionLifetime == 0:
		rule.MaxAssertionLifetime = DefaultMaxAssertionLifetime
	case rule.MaxAssertionLifetime < 0 || rule.MaxAssertionLifetime > MaxAssertionLifetimeLimit:
		return rule, chiterr.New(chiterr.InvalidArgument, "max_assertion_lifetime must be positive and at most %s", MaxAssertionLifetimeLimit)
	}
	return rule, nil
}

// checkPinned refuses a rule that any workload of its issuer could match:
// one of the issuer's pinning claims must be set, to a value without a glob.
func checkPinned(rule storage.FederationRule) error {
	pins, shared := pinningClaims(rule.Issuer)
	for _, pin := range pins {
		if value, ok := rule.Claims[pin]; ok && isGlob(value) {
			return chiterr.New(chiterr.InvalidArgument, "claims: %s pins who the workload is and takes no glob", pin)
		}
	}
	for _, pin := range pins {
		value, ok := rule.Claims[pin]
		if !ok {
			continue
		}
		if shared && strings.Trim(value, "0123456789") != "" {
			return chiterr.New(chiterr.InvalidArgument, "claims: %s is the platform's numeric id (for example 123456789), not a name", pin)
		}
		return nil
	}
	if shared {
		return chiterr.New(chiterr.InvalidArgument,
			"%s issues tokens to every repository or project it hosts: the rule must pin an owner by its immutable numeric id (claim %s); "+
				"names in sub can be renamed and registered again by someone else", rule.Issuer, strings.Join(pins, " or "))
	}
	return chiterr.New(chiterr.InvalidArgument,
		"the rule must pin who the workload is with claim sub (for example --claim sub=system:serviceaccount:NAMESPACE:NAME): "+
			"without it, every workload the issuer has a token for would be this service account")
}

func validateHTTPSURL(field, value string) error {
	u, err := url.Parse(value)
	if err != nil || u.Scheme != "https" || u.Host == "" || u.Hostname() == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" || len(value) > 255 {
		return chiterr.New(chiterr.InvalidArgument, "%s must be an https URL without query, fragment or userinfo, at most 255 characters", field)
	}
	return nil
}

// parseInlineKeys reads a rule's inline JWKS: public keys only.
func parseInlineKeys(text string) (jwk.Set, error) {
	set, err := jwk.Parse([]byte(text))
	if err != nil {
		return nil, chiterr.New(chiterr.InvalidArgument, "jwks is not a JSON Web Key Set")
	}
	if err := checkKeySet(set); err != nil {
		return nil, chiterr.New(chiterr.InvalidArgument, "jwks: %s", err.Error())
	}
	return set, nil
}
