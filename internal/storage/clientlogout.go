package storage

import "context"

// ClientLogoutSettings are how an OAuth client takes part in logout (OpenID
// Connect RP-Initiated Logout 1.0 and Back-Channel Logout 1.0), kept beside
// the client and removed with it.
type ClientLogoutSettings interface {
	// SetClientLogout replaces the logout settings of client id;
	// ErrNotFound when there is no such client.
	SetClientLogout(ctx context.Context, clientID string, settings ClientLogout) error
	// GetClientLogout returns the logout settings of client id: the zero
	// value for a client that has none (or no such client).
	GetClientLogout(ctx context.Context, clientID string) (ClientLogout, error)
}

// ClientLogout is one client's logout settings.
type ClientLogout struct {
	// PostLogoutRedirectURIs are where the browser may be sent back after a
	// logout the client asked for, matched exactly; stored sorted.
	PostLogoutRedirectURIs []string
	// BackchannelLogoutURI receives a logout token when a session the
	// client took part in ends; "" for none.
	BackchannelLogoutURI string
	// RevokesRefreshTokens makes a logout also end the person's logins
	// (refresh tokens) through the client.
	RevokesRefreshTokens bool
}
