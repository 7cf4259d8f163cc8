package oauth2http

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/clientaddr"
	"github.com/chit-auth/chit/internal/device"
	"github.com/chit-auth/chit/internal/grants"
	"github.com/chit-auth/chit/internal/possession"
	"github.com/chit-auth/chit/internal/tokens"
)

// Paths of the endpoints.
const (
	TokenPath = "/oauth2/token"
	// DeviceAuthorizationPath is RFC 8628 §3.1's endpoint.
	DeviceAuthorizationPath = "/oauth2/device_authorization"
	RevokePath              = "/oauth2/revoke"
	IntrospectPath          = "/oauth2/introspect"
	UserinfoPath            = "/userinfo"
)

const maxFormBytes = 64 << 10

// Handler serves the endpoints.
type Handler struct {
	tokens    *tokens.Service
	grants    *grants.Service
	directory *accounts.Directory
	device    *device.Service
	logger    *slog.Logger
	// possession checks DPoP proofs and finds client certificates.
	possession *possession.Verifier
}

// Dependencies are the core services the endpoints call and the logger of
// their failures.
type Dependencies struct {
	Tokens    *tokens.Service
	Directory *accounts.Directory
	// Grants is the grant table /oauth2/token dispatches to, the one the
	// AuthService's token RPCs dispatch to as well.
	Grants *grants.Service
	// Device answers /oauth2/device_authorization; nil leaves it out.
	Device *device.Service
	Logger *slog.Logger
	// Possession checks what requests prove they hold (DPoP proofs, client
	// certificates), for sender-constrained tokens.
	Possession *possession.Verifier
}

// New returns the handler. The endpoints have no settings of their own: what
// they answer is the core's configuration.
func New(deps Dependencies) *Handler {
	return &Handler{tokens: deps.Tokens, directory: deps.Directory, logger: deps.Logger, grants: deps.Grants, device: deps.Device,
		possession: deps.Possession}
}

// Register adds the routes to mux.
func (h *Handler) Register(mux *http.ServeMux) {
	mux.HandleFunc("POST "+TokenPath, h.token)
	if h.device != nil {
		mux.HandleFunc("POST "+DeviceAuthorizationPath, h.deviceAuthorization)
	}
	mux.HandleFunc("POST "+RevokePath, h.revoke)
	mux.HandleFunc("POST "+IntrospectPath, h.introspect)
	mux.HandleFunc("GET "+UserinfoPath, h.userinfo)
	mux.HandleFunc("POST "+UserinfoPath, h.userinfo)
}

// oauthError is the RFC 6749 §5.2 error answer.
type oauthError struct {
	status     int
	code       string
	message    string
	retryAfter time.Duration
}

func (e *oauthError) Error() string { return e.code + ": " + e.message }

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

func (h *Handler) fail(w http.ResponseWriter, r *http.Request, err error, basicUsed bool) {
	var oe *oauthError
	if !errors.As(err, &oe) {
		oe = translate(err)
	}
	if oe.status == http.StatusInternalServerError || oe.status == http.StatusServiceUnavailable {
		h.logger.ErrorContext(r.Context(), "oauth2 endpoint failed", "path", r.URL.Path, "error", err)
	}
	if oe.status == http.StatusUnauthorized && basicUsed {
		w.Header().Set("WWW-Authenticate", `Basic realm="chit"`)
	}
	if oe.retryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(math.Ceil(oe.retryAfter.Seconds()))))
	}
	if nonce := chiterr.DPoPNonceOf(err); nonce != "" {
		w.Header().Set(possession.NonceHeader, nonce)
	}
	writeJSON(w, oe.status, map[string]string{"error": oe.code, "error_description": oe.message})
}

// translate maps a core error to the OAuth vocabulary: a refused credential
// or token is invalid_grant (RFC 6749 §5.2).
func translate(err error) *oauthError {
	message := chiterr.PublicMessage(err)
	switch reason := chiterr.ReasonOf(err); reason {
	case chiterr.ReasonInvalidClient:
		return &oauthError{http.StatusUnauthorized, reason, message, 0}
	case chiterr.ReasonInvalidScope, chiterr.ReasonUnauthorizedClient, chiterr.ReasonInvalidTarget, chiterr.ReasonUnsupportedTokenType,
		chiterr.ReasonInvalidDPoPProof, chiterr.ReasonUseDPoPNonce:
		return &oauthError{http.StatusBadRequest, reason, message, 0}
	case device.ReasonAuthorizationPending, device.ReasonSlowDown, device.ReasonAccessDenied, device.ReasonExpiredToken:
		// RFC 8628 §3.5: the device's poll answers, all 400 without
		// Retry-After (the interval is the device's clock).
		return &oauthError{http.StatusBadRequest, reason, message, 0}
	}
	switch chiterr.KindOf(err) {
	case chiterr.InvalidArgument:
		return &oauthError{http.StatusBadRequest, "invalid_request", message, 0}
	case chiterr.Unauthenticated, chiterr.NotFound:
		return &oauthError{http.StatusBadRequest, "invalid_grant", message, 0}
	case chiterr.PermissionDenied:
		return &oauthError{http.StatusBadRequest, "unauthorized_client", message, 0}
	case chiterr.ResourceExhausted:
		return &oauthError{http.StatusTooManyRequests, "temporarily_unavailable", message, chiterr.RetryAfter(err)}
	case chiterr.Unavailable:
		// The store cannot be reached: the client (and a load balancer)
		// should try again, not give up as on a 500. temporarily_unavailable
		// is RFC 6749 §4.1.2.1's word for it.
		return &oauthError{http.StatusServiceUnavailable, "temporarily_unavailable", message, chiterr.RetryAfter(err)}
	}
	return &oauthError{http.StatusInternalServerError, "server_error", "internal error", 0}
}

// refused reports whether err refuses a caller's credentials or token, as
// opposed to the server failing to decide (the store could not be reached):
// the caller is told the truth, not that its valid token is invalid.
func refused(err error) bool {
	switch chiterr.KindOf(err) {
	case chiterr.Internal, chiterr.Unavailable:
		return false
	}
	return true
}

// clientCredentials reads client authentication from HTTP Basic (RFC 6749
// §2.3.1, form-urlencoded parts) or from the form.
func clientCredentials(r *http.Request) (id, secret string, basic bool) {
	if user, password, ok := r.BasicAuth(); ok {
		id, _ = urlUnescape(user)
		secret, _ = urlUnescape(password)
		return id, secret, true
	}
	return r.PostForm.Get("client_id"), r.PostForm.Get("client_secret"), false
}

func (h *Handler) parseForm(w http.ResponseWriter, r *http.Request) error {
	r.Body = http.MaxBytesReader(w, r.Body, maxFormBytes)
	if !strings.HasPrefix(r.Header.Get("Content-Type"), "application/x-www-form-urlencoded") {
		return &oauthError{http.StatusBadRequest, "invalid_request", "the body must be application/x-www-form-urlencoded", 0}
	}
	if err := r.ParseForm(); err != nil {
		if _, tooLarge := errors.AsType[*http.MaxBytesError](err); tooLarge {
			return &oauthError{http.StatusRequestEntityTooLarge, "invalid_request", fmt.Sprintf("the form is larger than %d KiB", maxFormBytes>>10), 0}
		}
		return &oauthError{http.StatusBadRequest, "invalid_request", "the form could not be read", 0}
	}
	// RFC 6749 §3.2: a parameter appears once, or the request is refused;
	// two parsers reading different copies is how grants get confused.
	// resource may repeat (RFC 8707), and resource() refuses more than one.
	for name, values := range r.PostForm {
		if len(values) > 1 && name != "resource" {
			return &oauthError{http.StatusBadRequest, "invalid_request", fmt.Sprintf("parameter %s appears more than once", chiterr.Quote(name)), 0}
		}
	}
	// One Authorization header: with two, which one a layer reads must never
	// decide who the caller is.
	if n := len(r.Header.Values("Authorization")); n > 1 {
		return &oauthError{http.StatusBadRequest, "invalid_request", fmt.Sprintf("send one Authorization header, not %d", n), 0}
	}
	// RFC 6749 §2.3: one authentication method per request.
	if user, _, ok := r.BasicAuth(); ok {
		id, _ := urlUnescape(user)
		if r.PostForm.Has("client_secret") || (r.PostForm.Has("client_id") && r.PostForm.Get("client_id") != id) {
			return &oauthError{http.StatusBadRequest, "invalid_request", "the client authenticates one way: HTTP Basic or the form, not both", 0}
		}
	}
	return nil
}

// token is RFC 6749 §3.2: every grant of the grant table, for the client
// authenticated by Basic or the form. What a grant accepts is the grant
// table's (internal/grants); here the form is decoded and the answer encoded.
func (h *Handler) token(w http.ResponseWriter, r *http.Request) {
	if err := h.parseForm(w, r); err != nil {
		h.fail(w, r, err, false)
		return
	}
	// The client's address for throttling is in the context
	// (clientaddr.Middleware).
	ctx := r.Context()
	form := r.PostForm
	clientID, clientSecret, basic := clientCredentials(r)
	audience, err := resource(form)
	if err != nil {
		h.fail(w, r, err, basic)
		return
	}
	var grant tokens.Grant
	var binding tokens.Binding
	if form.Get("grant_type") == "" {
		err = &oauthError{http.StatusBadRequest, "invalid_request", "grant_type is required", 0}
	} else if binding, err = h.possession.Request(r, "", possession.TokenRequest); err == nil {
		grant, err = h.grants.Issue(ctx, grants.Request{
			Binding:      binding,
			Type:         grants.Type(form.Get("grant_type")),
			Client:       grants.PresentedClient(clientID, clientSecret, basic),
			Address:      clientaddr.From(ctx),
			Scope:        form.Get("scope"),
			Audience:     audience,
			Username:     form.Get("username"),
			Password:     form.Get("password"),
			RefreshToken: form.Get("refresh_token"),
			Code:         form.Get("code"),
			RedirectURI:  form.Get("redirect_uri"),
			CodeVerifier: form.Get("code_verifier"),
			APIKey:       form.Get("api_key"),
			DeviceCode:   form.Get("device_code"),
			Assertion:    form.Get("assertion"),

			SubjectToken:       form.Get("subject_token"),
			SubjectTokenType:   form.Get("subject_token_type"),
			ActorToken:         form.Get("actor_token"),
			ActorTokenType:     form.Get("actor_token_type"),
			RequestedTokenType: form.Get("requested_token_type"),
			ExchangeAudience:   form.Get("audience"),
		})
	}
	if _, failedSignIn := errors.AsType[*grants.ClientRefusedError](err); failedSignIn {
		err = &oauthError{http.StatusUnauthorized, "invalid_client", "client authentication failed", 0}
	}
	if errors.Is(err, grants.ErrUnsupportedGrantType) {
		err = &oauthError{http.StatusBadRequest, "unsupported_grant_type", "grant_type must be one of " + strings.Join(grants.Types(), ", "), 0}
	}
	if err != nil {
		h.fail(w, r, err, basic)
		return
	}
	body := map[string]any{
		"access_token": grant.AccessToken,
		"token_type":   grant.TokenType,
		"expires_in":   int64(grant.ExpiresIn.Seconds()),
	}
	if grant.RefreshToken != "" {
		body["refresh_token"] = grant.RefreshToken
	}
	if grant.Scope != "" {
		body["scope"] = grant.Scope
	}
	if grant.IDToken != "" {
		body["id_token"] = grant.IDToken
	}
	if grant.IssuedTokenType != "" {
		body["issued_token_type"] = grant.IssuedTokenType
	}
	writeJSON(w, http.StatusOK, body)
}

// resource reads the RFC 8707 resource parameter: one audience at most.
func resource(form url.Values) (string, error) {
	values := form["resource"]
	switch {
	case len(values) > 1:
		return "", chiterr.New(chiterr.InvalidArgument, "one resource at a time: a token carries one audience").WithReason(chiterr.ReasonInvalidTarget)
	case len(values) == 1 && values[0] == "":
		return "", chiterr.New(chiterr.InvalidArgument, "resource is empty").WithReason(chiterr.ReasonInvalidTarget)
	case len(values) == 1:
		return values[0], nil
	}
	return "", nil
}

// revoke is RFC 7009: it answers 200 for any token, known or not, that the
// authenticated client may revoke (its own).
func (h *Handler) revoke(w http.ResponseWriter, r *http.Request) {
	if err := h.parseForm(w, r); err != nil {
		h.fail(w, r, err, false)
		return
	}
	clientID, clientSecret, basic := clientCredentials(r)
	client, err := h.directory.AuthenticateClient(r.Context(), clientID, clientSecret)
	if err != nil {
		h.fail(w, r, err, basic)
		return
	}
	token := r.PostForm.Get("token")
	if token == "" {
		h.fail(w, r, &oauthError{http.StatusBadRequest, "invalid_request", "token is required", 0}, false)
		return
	}
	if err := h.tokens.Revoke(r.Context(), client, token); err != nil {
		h.fail(w, r, err, basic)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	w.Header().Set("Pragma", "no-cache")
	w.WriteHeader(http.StatusOK)
}

// introspect is RFC 7662, for services: the caller authenticates with its
// client credentials (Basic or form) or a SERVICE bearer token.
func (h *Handler) introspect(w http.ResponseWriter, r *http.Request) {
	if err := h.parseForm(w, r); err != nil {
		h.fail(w, r, err, false)
		return
	}
	caller, err := h.introspectionCaller(r)
	if err != nil && !refused(err) {
		h.fail(w, r, err, false)
		return
	}
	if err != nil {
		w.Header().Set("WWW-Authenticate", `Basic realm="chit"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_client", "error_description": "introspection is for services and confidential clients: authenticate with client credentials"})
		return
	}
	answer, err := h.tokens.Introspect(r.Context(), caller, r.PostForm.Get("token"))
	if err != nil {
		h.fail(w, r, err, false)
		return
	}
	if !answer.Active {
		writeJSON(w, http.StatusOK, map[string]any{"active": false})
		return
	}
	writeJSON(w, http.StatusOK, activeIntrospection(answer))
}

// introspectionBody is RFC 7662 §2.2's answer for an active token. Its
// fields are in the order of their names, the order in which a map of
// them was encoded before: the bytes are the same. A struct rather than a
// map because building and encoding the map (a hash of eleven entries,
// then sorting their keys) was a sixth of the server's CPU under
// introspection load.
type introspectionBody struct {
	Active bool `json:"active"`
	// Actor is the act claim of an exchanged token (RFC 8693 §4.1).
	Actor    *actorBody `json:"act,omitempty"`
	Audience []string   `json:"aud"`
	ClientID string     `json:"client_id,omitempty"`
	// Confirmation is the key the token is bound to (RFC 9449 §6.2, RFC
	// 8705 §3.2), for the resource server to check.
	Confirmation *confirmationBody `json:"cnf,omitempty"`
	ExpiresAt    int64             `json:"exp"`
	IssuedAt     int64             `json:"iat"`
	Issuer       string            `json:"iss"`
	ID           string            `json:"jti,omitempty"`
	Role         string            `json:"role"`
	Scope        string            `json:"scope,omitempty"`
	Subject      string            `json:"sub"`
	TokenType    string            `json:"token_type"`
}

func activeIntrospection(answer tokens.Introspection) introspectionBody {
	claims := answer.Claims
	body := introspectionBody{
		Active:    true,
		Audience:  claims.Audience,
		ClientID:  claims.ClientID,
		ExpiresAt: claims.ExpiresAt.Unix(),
		IssuedAt:  claims.IssuedAt.Unix(),
		Issuer:    claims.Issuer,
		ID:        claims.ID,
		Role:      string(claims.Role),
		Scope:     strings.Join(claims.Scopes, " "),
		Subject:   claims.Subject,
		TokenType: claims.Binding.TokenType(),
	}
	if claims.Binding.Bound() {
		body.Confirmation = &confirmationBody{KeyThumbprint: claims.Binding.KeyThumbprint, CertificateThumbprint: claims.Binding.CertificateThumbprint}
	}
	if answer.TokenType == "refresh_token" {
		body.TokenType = "refresh_token"
	}
	body.Actor = actorJSON(claims.Actor)
	return body
}

// confirmationBody is a cnf claim (RFC 7800 §3.1).
type confirmationBody struct {
	KeyThumbprint         string `json:"jkt,omitempty"`
	CertificateThumbprint string `json:"x5t#S256,omitempty"`
}

// actorBody is an act claim as RFC 8693 §4.1 writes it.
type actorBody struct {
	Subject string     `json:"sub"`
	Actor   *actorBody `json:"act,omitempty"`
}

func actorJSON(actor *tokens.Actor) *actorBody {
	if actor == nil {
		return nil
	}
	return &actorBody{Subject: actor.Subject, Actor: actorJSON(actor.Actor)}
}

// introspectionCaller authenticates the caller of introspection: a service
// account or confidential client by its credentials (Basic or form), or a
// SERVICE or ADMIN bearer token.
func (h *Handler) introspectionCaller(r *http.Request) (accounts.Client, error) {
	if token, dpopScheme := possession.AccessToken(r.Header.Get("Authorization")); token != "" {
		claims, err := h.tokens.Authenticate(r.Context(), token)
		if err != nil {
			return accounts.Client{}, err
		}
		proven, err := h.possession.Request(r, token, possession.ResourceRequest)
		if err != nil {
			return accounts.Client{}, err
		}
		if err := claims.CheckBinding(proven, dpopScheme); err != nil {
			return accounts.Client{}, err
		}
		if !claims.Role.ServesServices() {
			return accounts.Client{}, chiterr.New(chiterr.PermissionDenied, "introspection is for services and admins; the caller is %s %q", claims.Role, claims.Subject)
		}
		if claims.Role == accounts.RoleAdmin {
			// An admin introspects access tokens as a service does, and owns
			// no refresh token.
			return accounts.Client{Service: true}, nil
		}
		return accounts.Client{ID: claims.ClientID, Service: true}, nil
	}
	id, secret, _ := clientCredentials(r)
	client, err := h.directory.AuthenticateClient(r.Context(), id, secret)
	if err != nil {
		return accounts.Client{}, err
	}
	if !client.Confidential {
		return accounts.Client{}, chiterr.New(chiterr.Unauthenticated, "a public client cannot authenticate")
	}
	return client, nil
}

// userinfo is OIDC Core §5.3 for access tokens with the openid scope.
func (h *Handler) userinfo(w http.ResponseWriter, r *http.Request) {
	if n := len(r.Header.Values("Authorization")); n > 1 {
		// RFC 6750 §3.1: a malformed request is invalid_request, 400.
		writeJSON(w, http.StatusBadRequest, map[string]string{"error": "invalid_request", "error_description": fmt.Sprintf("send one Authorization header, not %d", n)})
		return
	}
	token, dpopScheme := possession.AccessToken(r.Header.Get("Authorization"))
	if token == "" {
		w.Header().Set("WWW-Authenticate", `Bearer realm="chit"`)
		writeJSON(w, http.StatusUnauthorized, map[string]string{"error": "invalid_token", "error_description": "missing bearer token"})
		return
	}
	claims, err := h.tokens.Authenticate(r.Context(), token)
	if err == nil {
		// A DPoP-bound token comes with a proof of its key for this
		// request (RFC 9449 §7); a certificate-bound one over its
		// certificate.
		var proven tokens.Binding
		if proven, err = h.possession.Request(r, token, possession.ResourceRequest); err == nil {
			err = claims.CheckBinding(proven, dpopScheme)
		}
	}
	if err != nil {
		h.failUserinfo(w, r, err, dpopScheme)
		return
	}
	hasOpenID := false
	for _, scope := range claims.Scopes {
		hasOpenID = hasOpenID || scope == authorize.ScopeOpenID
	}
	if !hasOpenID {
		w.Header().Set("WWW-Authenticate", possession.Challenge(dpopScheme, nil, "insufficient_scope")+`, scope="openid"`)
		writeJSON(w, http.StatusForbidden, map[string]string{"error": "insufficient_scope", "error_description": "the token lacks the openid scope"})
		return
	}
	body, err := h.tokens.Userinfo(r.Context(), claims)
	if err != nil {
		h.failUserinfo(w, r, err, dpopScheme)
		return
	}
	writeJSON(w, http.StatusOK, body)
}

// failUserinfo answers a refused token as RFC 6750 §3.1's invalid_token,
// and a failure of the server as fail does.
func (h *Handler) failUserinfo(w http.ResponseWriter, r *http.Request, err error, dpopScheme bool) {
	if !refused(err) {
		h.fail(w, r, err, false)
		return
	}
	code := "invalid_token"
	switch reason := chiterr.ReasonOf(err); reason {
	case chiterr.ReasonInvalidDPoPProof, chiterr.ReasonUseDPoPNonce:
		code = reason
	}
	if nonce := chiterr.DPoPNonceOf(err); nonce != "" {
		w.Header().Set(possession.NonceHeader, nonce)
	}
	w.Header().Set("WWW-Authenticate", possession.Challenge(dpopScheme, err, code))
	writeJSON(w, http.StatusUnauthorized, map[string]string{"error": code, "error_description": chiterr.PublicMessage(err)})
}
