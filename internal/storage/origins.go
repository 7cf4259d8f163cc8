package storage

import "context"

// ClientOrigins are the browser origins registered on OAuth clients: the
// origins (scheme://host[:port]) whose pages may call the token, revoke and
// userinfo endpoints from a browser (CORS). They are kept beside the
// client, removed with it.
type ClientOrigins interface {
	// SetClientOrigins replaces the origins of client id; ErrNotFound when
	// there is no such client.
	SetClientOrigins(ctx context.Context, clientID string, origins []string) error
	// GetClientOrigins returns the origins of client id, sorted; none for a
	// client without any (or no such client).
	GetClientOrigins(ctx context.Context, clientID string) ([]string, error)
	// ListClientOrigins returns every origin registered on some client,
	// each once, sorted.
	ListClientOrigins(ctx context.Context) ([]string, error)
}
