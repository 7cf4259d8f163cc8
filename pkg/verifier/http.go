package verifier

import (
	"errors"
	"net/http"

	"github.com/chit-auth/chit/pkg/dpop"
)

// Middleware returns net/http middleware that demands req of every
// request's access token, `Authorization: Bearer` or, for a DPoP-bound
// token, `Authorization: DPoP` with its proof (VerifyRequest checks the
// binding), and puts the claims in the request context. A refusal is a 401
// with a WWW-Authenticate challenge (and DPoP-Nonce when the proof needs a
// nonce), or a 403 for a token without a required scope or role.
func (v *Verifier) Middleware(req Requirement) func(http.Handler) http.Handler {
	return func(next http.Handler) http.Handler {
		return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			if req.Public {
				next.ServeHTTP(w, r)
				return
			}
			claims, err := v.VerifyRequest(r.Context(), r)
			if err == nil {
				err = meets(claims, req)
			}
			var refused *RequestError
			switch {
			case errors.Is(err, ErrForbidden):
				w.Header().Set("WWW-Authenticate", `Bearer error="insufficient_scope"`)
				http.Error(w, "forbidden: "+err.Error(), http.StatusForbidden)
				return
			case errors.As(err, &refused):
				w.Header().Add("WWW-Authenticate", refused.Challenge())
				if refused.Nonce != "" {
					w.Header().Set(dpop.NonceHeader, refused.Nonce)
				}
				http.Error(w, "unauthorized: "+refused.Reason, http.StatusUnauthorized)
			case errors.Is(err, ErrRevocationFeedStale):
				// Failing closed: the token may be fine; the caller retries.
				http.Error(w, "unavailable: cannot check revocations right now", http.StatusServiceUnavailable)
				return
			case err != nil:
				w.Header().Set("WWW-Authenticate", `Bearer error="invalid_token"`)
				http.Error(w, "unauthorized: missing or invalid access token", http.StatusUnauthorized)
				return
			}
			next.ServeHTTP(w, r.WithContext(WithClaims(r.Context(), claims)))
		})
	}
}
