package ssfhttp

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"net/http"
	"strings"

	"google.golang.org/grpc/metadata"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/possession"
	"github.com/chit-auth/chit/internal/ssf"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/tokens"
)

// Paths served.
const (
	PollPath          = "/ssf/poll/"
	ConfigurationPath = "/.well-known/ssf-configuration"
)

// maxBodyBytes bounds a poll's body: MaxAcks jtis of about a hundred bytes.
const maxBodyBytes = 256 << 10

// Dependencies are what the handlers call.
type Dependencies struct {
	SecurityEvents *ssf.Service
	// Authenticate is grpcapi.Gatekeeper.AuthenticateRequest.
	Authenticate func(ctx context.Context) (tokens.Claims, error)
	// Issuer and JWKSURI are the metadata's.
	Issuer, JWKSURI string
	Logger          *slog.Logger
}

// Register adds the endpoints to mux.
func Register(mux *http.ServeMux, deps Dependencies) {
	if deps.Logger == nil {
		deps.Logger = slog.New(slog.DiscardHandler)
	}
	mux.Handle("POST "+PollPath+"{stream_id}", poll(deps))
	mux.Handle("GET "+ConfigurationPath, configuration(deps))
}

// pollBody is RFC 8936 §2.4's request.
type pollBody struct {
	MaxEvents         *int                    `json:"maxEvents"`
	ReturnImmediately bool                    `json:"returnImmediately"`
	Ack               []string                `json:"ack"`
	SetErrs           map[string]setErrorBody `json:"setErrs"`
}

type setErrorBody struct {
	Err         string `json:"err"`
	Description string `json:"description"`
}

type pollAnswer struct {
	Sets          map[string]string `json:"sets"`
	MoreAvailable bool              `json:"moreAvailable,omitempty"`
}

func poll(deps Dependencies) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		// The token's check, as every call's: the Authorization and DPoP
		// headers, and this request's method and path for the proof.
		ctx := metadata.NewIncomingContext(r.Context(), metadata.MD{
			"authorization":          r.Header.Values("Authorization"),
			possession.ProofMetadata: r.Header.Values(possession.ProofHeader),
		})
		ctx = possession.WithRequestTarget(ctx, r.Method, r.URL.Path)
		_, dpopScheme := possession.AccessToken(r.Header.Get("Authorization"))
		claims, err := deps.Authenticate(ctx)
		if err != nil {
			writeError(w, deps.Logger, r, err, dpopScheme)
			return
		}
		var body pollBody
		decoder := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxBodyBytes))
		if err := decoder.Decode(&body); err != nil {
			var tooLarge *http.MaxBytesError
			if errors.As(err, &tooLarge) {
				writeError(w, deps.Logger, r, chiterr.New(chiterr.InvalidArgument, "the body is larger than %d bytes", maxBodyBytes), dpopScheme)
				return
			}
			writeError(w, deps.Logger, r, chiterr.New(chiterr.InvalidArgument, "the body is not a poll request (a JSON object of maxEvents, returnImmediately, ack and setErrs)"), dpopScheme)
			return
		}
		if decoder.More() {
			writeError(w, deps.Logger, r, chiterr.New(chiterr.InvalidArgument, "the body holds more than one JSON value"), dpopScheme)
			return
		}
		request := ssf.PollRequest{MaxEvents: body.MaxEvents, ReturnImmediately: body.ReturnImmediately, Acks: body.Ack}
		if len(body.SetErrs) > 0 {
			request.SetErrs = make(map[string]ssf.SetError, len(body.SetErrs))
			for jti, setErr := range body.SetErrs {
				request.SetErrs[jti] = ssf.SetError{Err: setErr.Err, Description: setErr.Description}
			}
		}
		caller := ssf.Caller{Service: claims.Role == accounts.RoleService, ClientID: claims.ClientID, Subject: claims.Subject, Scopes: claims.Scopes}
		if caller.ClientID == "" {
			// Tokens issued before client ids were recorded named the
			// account in sub alone.
			caller.ClientID = strings.TrimPrefix(claims.Subject, accounts.ServiceSubjectPrefix)
		}
		response, err := deps.SecurityEvents.Poll(r.Context(), caller, r.PathValue("stream_id"), request)
		if err != nil {
			writeError(w, deps.Logger, r, err, dpopScheme)
			return
		}
		writeJSON(w, http.StatusOK, pollAnswer{Sets: response.SETs, MoreAvailable: response.MoreAvailable})
	})
}

// writeError answers as RFC 8935 §2.3 and RFC 8936 §2.4 do: {"err",
// "description"}, invalid_request (400) for a bad request,
// authentication_failed (401, with a WWW-Authenticate challenge) for a
// missing or bad token, access_denied (403) for a caller that is not the
// stream's receiver. A failure of the server is a 5xx whose details stay in
// the log.
func writeError(w http.ResponseWriter, logger *slog.Logger, r *http.Request, err error, dpopScheme bool) {
	status, code := http.StatusInternalServerError, "internal_error"
	switch chiterr.KindOf(err) {
	case chiterr.InvalidArgument, chiterr.FailedPrecondition:
		status, code = http.StatusBadRequest, "invalid_request"
	case chiterr.Unauthenticated:
		status, code = http.StatusUnauthorized, "authentication_failed"
		challenge := "invalid_token"
		if r.Header.Get("Authorization") == "" {
			challenge = ""
		}
		if nonce := chiterr.DPoPNonceOf(err); nonce != "" {
			w.Header().Set(possession.NonceHeader, nonce)
		}
		w.Header().Set("WWW-Authenticate", possession.Challenge(dpopScheme, err, challenge))
	case chiterr.PermissionDenied:
		status, code = http.StatusForbidden, "access_denied"
	case chiterr.NotFound:
		status, code = http.StatusNotFound, "not_found"
	case chiterr.Unavailable:
		status, code = http.StatusServiceUnavailable, "temporarily_unavailable"
	case chiterr.ResourceExhausted:
		status, code = http.StatusTooManyRequests, "temporarily_unavailable"
	}
	if status >= 500 {
		logger.ErrorContext(r.Context(), "Shared Signals poll failed", "path", r.URL.Path, "error", err)
	}
	writeJSON(w, status, map[string]string{"err": code, "description": chiterr.PublicMessage(err)})
}

func writeJSON(w http.ResponseWriter, status int, body any) {
	w.Header().Set("Content-Type", "application/json")
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(body)
}

// configuration is the transmitter's metadata (SSF 1.0 §7.1). Streams are
// an admin's to manage (the Admin API), so there is no
// configuration_endpoint, status_endpoint or verification_endpoint for
// receivers to call.
func configuration(deps Dependencies) http.Handler {
	body, _ := json.Marshal(map[string]any{
		"spec_version":               "1_0",
		"issuer":                     deps.Issuer,
		"jwks_uri":                   deps.JWKSURI,
		"delivery_methods_supported": []string{storage.DeliveryPush, storage.DeliveryPoll},
		"authorization_schemes":      []map[string]string{{"spec_urn": "urn:ietf:rfc:6749"}},
	})
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "public, max-age=3600")
		_, _ = w.Write(body)
	})
}
