package server

import (
	"context"
	"log/slog"
	"net/http"
	"slices"
	"strings"

	"github.com/rs/cors"

	"github.com/chit-auth/chit/internal/grpcapi"
	"github.com/chit-auth/chit/internal/oauth2http"
)

// The CORS answers (Fetch standard) of the OAuth and OpenID Connect
// endpoints a browser app calls, made by rs/cors:
//   - the metadata and the JWKS are public documents: any origin may read
//     them, with no credentials;
//   - the token, revoke and userinfo endpoints answer the origins registered
//     on some client (Admin API SetClientOrigins, chitd client set-origins)
//     and those of --allowed-origin. A preflight carries no client id, so an
//     origin is matched against every client's: the endpoint still
//     authenticates the client (PKCE for a public one) as for any caller,
//     and an origin only lets that origin's pages read the answers.
//
// Cookies are never needed (the token goes in a header or the body), so no
// answer allows credentials. Introspection is for resource servers, not
// browsers, and the API's own REST routes keep the same-origin rule.

// publicDocumentPaths are the documents every origin may read (and the
// RFC 8414 metadata of an issuer with a path, under its prefix).
var publicDocumentPaths = []string{"/.well-known/openid-configuration", "/.well-known/oauth-authorization-server", grpcapi.JWKSPath}

// browserEndpointPaths are the endpoints the registered origins may call.
var browserEndpointPaths = []string{oauth2http.TokenPath, oauth2http.RevokePath, oauth2http.UserinfoPath}

// OriginPolicy answers whether a browser origin is registered.
type OriginPolicy func(ctx context.Context, origin string) (bool, error)

// withCORS answers preflights and adds the CORS headers on the paths above;
// every other path is served as it was.
func withCORS(next http.Handler, registered OriginPolicy, logger *slog.Logger) http.Handler {
	public := cors.New(cors.Options{
		AllowedOrigins: []string{"*"},
		AllowedMethods: []string{http.MethodGet, http.MethodHead},
		// Whatever headers a client library adds: the documents are the
		// same for everyone and no answer carries credentials.
		AllowedHeaders: []string{"*"},
		MaxAge:         24 * 60 * 60,
	}).Handler(next)
	browser := cors.New(cors.Options{
		AllowOriginVaryRequestFunc: func(r *http.Request, origin string) (bool, []string) {
			allowed, err := registered(r.Context(), origin)
			if err != nil {
				logger.ErrorContext(r.Context(), "cannot read the registered origins; the request is answered without CORS headers", "error", err)
			}
			return allowed, nil
		},
		AllowedMethods: []string{http.MethodGet, http.MethodPost},
		// What the endpoints read: a bearer token or Basic credentials, a
		// form or JSON body, and (RFC 9449) a DPoP proof.
		AllowedHeaders: []string{"Authorization", "Content-Type", "DPoP"},
		// What a browser app needs to read of an answer: why a bearer
		// token was refused, and a DPoP nonce.
		ExposedHeaders: []string{"WWW-Authenticate", "DPoP-Nonce"},
		MaxAge:         10 * 60,
	}).Handler(next)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch {
		case slices.Contains(publicDocumentPaths, r.URL.Path) || strings.HasPrefix(r.URL.Path, "/.well-known/oauth-authorization-server/"):
			public.ServeHTTP(w, r)
		case slices.Contains(browserEndpointPaths, r.URL.Path):
			browser.ServeHTTP(w, r)
		default:
			next.ServeHTTP(w, r)
		}
	})
}

// originPolicy is the origins of --allowed-origin and those registered on
// clients.
func originPolicy(configured []string, registered OriginPolicy) OriginPolicy {
	return func(ctx context.Context, origin string) (bool, error) {
		if slices.Contains(configured, origin) {
			return true, nil
		}
		return registered(ctx, origin)
	}
}
