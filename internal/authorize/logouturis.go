package authorize

import (
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

// MaxPostLogoutRedirectURIs bounds a client's post-logout redirect URIs, as
// its redirect URIs are bounded.
const MaxPostLogoutRedirectURIs = 16

// ValidateClientLogout checks a client's logout settings, naming the field
// that is wrong. Post-logout redirect URIs follow the rules of redirect URIs
// (an absolute https URI, or http on a loopback host; no userinfo or
// fragment): the logout endpoint sends a browser there as the sign-in page
// sends it to a redirect URI. The back-channel logout URI is where Chit
// itself POSTs logout tokens: https, or http on a loopback host, and no
// fragment (OpenID Connect Back-Channel Logout 1.0 §2.2).
func ValidateClientLogout(settings storage.ClientLogout) error {
	if len(settings.PostLogoutRedirectURIs) > MaxPostLogoutRedirectURIs {
		return chiterr.New(chiterr.InvalidArgument, "post_logout_redirect_uris: a client has at most %d", MaxPostLogoutRedirectURIs)
	}
	for _, uri := range settings.PostLogoutRedirectURIs {
		if len(uri) > MaxRedirectURILength {
			return chiterr.New(chiterr.InvalidArgument, "post_logout_redirect_uris: a URI is longer than %d characters", MaxRedirectURILength)
		}
		if !validRegisteredRedirect(uri) {
			return chiterr.New(chiterr.InvalidArgument, "post_logout_redirect_uris: %s is not allowed: "+redirectRule, chiterr.Quote(uri))
		}
	}
	if uri := settings.BackchannelLogoutURI; uri != "" {
		if len(uri) > MaxRedirectURILength {
			return chiterr.New(chiterr.InvalidArgument, "backchannel_logout_uri: longer than %d characters", MaxRedirectURILength)
		}
		if !validRegisteredRedirect(uri) {
			return chiterr.New(chiterr.InvalidArgument, "backchannel_logout_uri: %s is not allowed: "+redirectRule, chiterr.Quote(uri))
		}
	}
	return nil
}

// ValidateReceiverURI checks a URI Chit itself POSTs to, as the
// back-channel logout URI is checked (https, or http on a loopback host;
// no userinfo or fragment; at most MaxRedirectURILength characters), naming
// field: the Shared Signals push endpoints (internal/ssf) follow the same
// rule.
func ValidateReceiverURI(field, uri string) error {
	if len(uri) > MaxRedirectURILength {
		return chiterr.New(chiterr.InvalidArgument, "%s: longer than %d characters", field, MaxRedirectURILength)
	}
	if !validRegisteredRedirect(uri) {
		return chiterr.New(chiterr.InvalidArgument, "%s: %s is not allowed: "+redirectRule, field, chiterr.Quote(uri))
	}
	return nil
}
