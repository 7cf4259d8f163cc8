package verifier

import (
	"errors"
	"net/http"
	"strings"
)

// Middleware returns net/http middleware that demands req of every request's
// `Authorization: Bearer` token and puts the claims in the request context.
func (v *Verifier) Middleware(req Requirement) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if req.Public {
				next.ServeHTTP(w, r)
				return
			}
			var token string
			if scheme, rest, ok := strings.Cut(r.Header.Get("Authorization"), " "); ok && strings.EqualFold(scheme, "bearer") {
				token = strings.TrimSpace(rest)
			}
			claims, err := v.Authorize(r.Context(), token, req)
			switch {
			case errors.Is(err, ErrForbidden):
				w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope"`)
				http.Error(w, "forbidden: "+err.Error(), http.StatusForbidden)
				return
			case errors.Is(err, ErrRevocationFeedStale):
				// Failing closed: the token may be fine; the caller retries.
				http.Error(w, "unavailable: cannot check revocations right now", http.StatusServiceUnavailable)
				return
			case err != nil:
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
				http.Error(w, "unauthorized: missing or invalid bearer token", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), claims)))
		})
	}
}
