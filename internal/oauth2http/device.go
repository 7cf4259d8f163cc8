package oauth2http

import (
	"net/http"

	"github.com/chit-auth/chit/internal/clientaddr"
	"github.com/chit-auth/chit/internal/device"
)

// deviceAuthorization is RFC 8628 §3.1: a device asks for a device code
// and a user code. The client authenticates as on /oauth2/token (a public
// client by its client_id, a confidential one with its secret); whether it
// may use the grant, and which scopes, is the core's.
func (h *Handler) deviceAuthorization(w http.ResponseWriter, r *http.Request) {
	if err := h.parseForm(w, r); err != nil {
		h.fail(w, r, err, false)
		return
	}
	ctx := r.Context()
	clientID, clientSecret, basic := clientCredentials(r)
	if clientID == "" {
		h.fail(w, r, &oauthError{http.StatusBadRequest, "invalid_request", "client_id is required", 0}, basic)
		return
	}
	client, err := h.directory.AuthenticateClient(ctx, clientID, clientSecret)
	if err != nil {
		if refused(err) {
			err = &oauthError{http.StatusUnauthorized, "invalid_client", "client authentication failed", 0}
		}
		h.fail(w, r, err, basic)
		return
	}
	started, err := h.device.Start(ctx, device.StartRequest{Client: client, Scope: r.PostForm.Get("scope"), Address: clientaddr.From(ctx)})
	if err != nil {
		h.fail(w, r, err, basic)
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{
		"device_code":               started.DeviceCode,
		"user_code":                 started.UserCode,
		"verification_uri":          started.VerificationURI,
		"verification_uri_complete": started.VerificationURIComplete,
		"expires_in":                int64(started.ExpiresIn.Seconds()),
		"interval":                  int64(started.Interval.Seconds()),
	})
}
