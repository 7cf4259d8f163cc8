package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/pkg/dpop"
)

// payload decodes a JWT's claims without verifying it: the tests read
// what the server put in its own tokens.
func payload(t *testing.T, token string) map[string]any {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		t.Fatalf("not a JWT: %q", token)
	}
	raw, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims map[string]any
	if err := json.Unmarshal(raw, &claims); err != nil {
		t.Fatal(err)
	}
	return claims
}

func jkt(t *testing.T, token string) string {
	t.Helper()
	cnf, _ := payload(t, token)["cnf"].(map[string]any)
	value, _ := cnf["jkt"].(string)
	return value
}

func newSigner(t *testing.T) *dpop.Signer {
	t.Helper()
	signer, err := dpop.GenerateSigner()
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

func proof(t *testing.T, signer *dpop.Signer, method, path, accessToken, nonce string) string {
	t.Helper()
	value, err := signer.Proof(method, servertest.Issuer+path, accessToken, nonce)
	if err != nil {
		t.Fatal(err)
	}
	return value
}

// withCall is a context whose outgoing metadata carries authorization (as
// is) and a DPoP proof, each when not empty.
func withCall(authorization, proof string) context.Context {
	ctx := context.Background()
	if authorization != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", authorization)
	}
	if proof != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "dpop", proof)
	}
	return ctx
}

// errorReason is the ErrorInfo reason and metadata of a gRPC error.
func errorReason(err error) (string, map[string]string) {
	st, _ := status.FromError(err)
	for _, detail := range st.Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok {
			return info.GetReason(), info.GetMetadata()
		}
	}
	return "", nil
}

type dpopAnswer struct {
	status int
	header http.Header
	body   map[string]any
}

func send(t *testing.T, e *servertest.Env, method, path, contentType, body string, header map[string]string) dpopAnswer {
	t.Helper()
	req, err := http.NewRequest(method, e.HTTPBase()+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if contentType != "" {
		req.Header.Set("Content-Type", contentType)
	}
	for name, value := range header {
		req.Header.Set(name, value)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	answer := dpopAnswer{status: resp.StatusCode, header: resp.Header}
	_ = json.Unmarshal(raw, &answer.body)
	return answer
}

func oauthToken(t *testing.T, e *servertest.Env, form url.Values, dpopProof string) dpopAnswer {
	t.Helper()
	header := map[string]string{}
	if dpopProof != "" {
		header["DPoP"] = dpopProof
	}
	return send(t, e, http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded", form.Encode(), header)
}

// tokenGetter obtains a password sign-in's tokens over one way in, with a
// proof made by sign for the way's method and path ("" sends none).
type tokenGetter func(t *testing.T, e *servertest.Env, sign func(method, path string) string) (access, refresh, tokenType string)

var waysIn = map[string]tokenGetter{
	"gRPC": func(t *testing.T, e *servertest.Env, sign func(method, path string) string) (string, string, string) {
		resp, err := authv1.NewAuthServiceClient(e.Conn).Token(withCall("", sign(http.MethodPost, "/v1/auth/token")),
			servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
		if err != nil {
			t.Fatalf("Token: %v", err)
		}
		return resp.GetAccessToken(), resp.GetRefreshToken(), resp.GetTokenType()
	},
	"REST": func(t *testing.T, e *servertest.Env, sign func(method, path string) string) (string, string, string) {
		header := map[string]string{}
		if p := sign(http.MethodPost, "/v1/auth/token"); p != "" {
			header["DPoP"] = p
		}
		answer := send(t, e, http.MethodPost, "/v1/auth/token", "application/json",
			`{"passwordCredential":{"username":"`+servertest.UserName+`","password":"`+servertest.UserPassword+`"}}`, header)
		if answer.status != http.StatusOK {
			t.Fatalf("REST token: %d %v", answer.status, answer.body)
		}
		access, _ := answer.body["accessToken"].(string)
		refresh, _ := answer.body["refreshToken"].(string)
		tokenType, _ := answer.body["tokenType"].(string)
		return access, refresh, tokenType
	},
	"oauth2": func(t *testing.T, e *servertest.Env, sign func(method, path string) string) (string, string, string) {
		answer := oauthToken(t, e, url.Values{"grant_type": {"password"}, "username": {servertest.UserName}, "password": {servertest.UserPassword}},
			sign(http.MethodPost, "/oauth2/token"))
		if answer.status != http.StatusOK {
			t.Fatalf("/oauth2/token: %d %v", answer.status, answer.body)
		}
		access, _ := answer.body["access_token"].(string)
		refresh, _ := answer.body["refresh_token"].(string)
		tokenType, _ := answer.body["token_type"].(string)
		return access, refresh, tokenType
	},
}

// checkOverGRPC calls CheckToken with authorization and a proof.
func checkOverGRPC(e *servertest.Env, authorization, proof string) error {
	_, err := authv1.NewAuthServiceClient(e.Conn).CheckToken(withCall(authorization, proof), &authv1.CheckTokenRequest{})
	return err
}

func checkOverREST(t *testing.T, e *servertest.Env, authorization, proof string) dpopAnswer {
	header := map[string]string{"Authorization": authorization}
	if proof != "" {
		header["DPoP"] = proof
	}
	return send(t, e, http.MethodGet, "/v1/auth/check", "", "", header)
}

// A sign-in with a DPoP proof gets a DPoP token bound to the proof's key
// (cnf.jkt) on every way in; CheckToken then takes it only as
// Authorization: DPoP with a fresh proof of that key for CheckToken's URL
// and the token's ath, over gRPC and REST, on both stores. A sign-in
// without a proof gets a Bearer token as before.
func TestDPoPBindsTokensOnEveryWayIn(t *testing.T) {
	t.Parallel()
	for _, backend := range servertest.Backends {
		for way, get := range waysIn {
			t.Run(backend+"/"+way, func(t *testing.T) {
				t.Parallel()
				e := servertest.StartOn(t, backend)
				signer, other := newSigner(t), newSigner(t)
				access, _, tokenType := get(t, e, func(method, path string) string { return proof(t, signer, method, path, "", "") })
				if tokenType != "DPoP" || jkt(t, access) != signer.Thumbprint() {
					t.Fatalf("token_type %q, cnf.jkt %q; want DPoP and %q", tokenType, jkt(t, access), signer.Thumbprint())
				}
				check := func(method string) string { return proof(t, signer, method, "/v1/auth/check", access, "") }

				// gRPC CheckToken.
				if err := checkOverGRPC(e, "DPoP "+access, check(http.MethodGet)); err != nil {
					t.Fatalf("CheckToken with its proof: %v", err)
				}
				for name, call := range map[string][2]string{
					"as a bearer token":         {"Bearer " + access, ""},
					"without a proof":           {"DPoP " + access, ""},
					"with a proof of other key": {"DPoP " + access, proof(t, other, http.MethodGet, "/v1/auth/check", access, "")},
					"with a proof for POST":     {"DPoP " + access, check(http.MethodPost)},
					"with a proof for another URL": {"DPoP " + access,
						proof(t, signer, http.MethodGet, "/v1/auth/status", access, "")},
					"with a proof without ath": {"DPoP " + access, proof(t, signer, http.MethodGet, "/v1/auth/check", "", "")},
					"with a malformed proof":   {"DPoP " + access, "not.a.proof"},
				} {
					if err := checkOverGRPC(e, call[0], call[1]); status.Code(err) != codes.Unauthenticated {
						t.Errorf("gRPC CheckToken %s: %v, want Unauthenticated", name, err)
					}
				}
				replayed := check(http.MethodGet)
				if err := checkOverGRPC(e, "DPoP "+access, replayed); err != nil {
					t.Fatalf("CheckToken: %v", err)
				}
				if err := checkOverGRPC(e, "DPoP "+access, replayed); status.Code(err) != codes.Unauthenticated {
					t.Errorf("a replayed proof: %v, want Unauthenticated", err)
				} else if reason, _ := errorReason(err); reason != "INVALID_DPOP_PROOF" {
					t.Errorf("a replayed proof's reason is %q", reason)
				}

				// REST CheckToken: 401 with a DPoP challenge.
				if answer := checkOverREST(t, e, "DPoP "+access, check(http.MethodGet)); answer.status != http.StatusOK {
					t.Fatalf("REST CheckToken with its proof: %d %v", answer.status, answer.body)
				}
				answer := checkOverREST(t, e, "Bearer "+access, "")
				if answer.status != http.StatusUnauthorized || !strings.HasPrefix(answer.header.Get("WWW-Authenticate"), "DPoP ") {
					t.Errorf("REST CheckToken as a bearer token: %d, WWW-Authenticate %q", answer.status, answer.header.Get("WWW-Authenticate"))
				}
				answer = checkOverREST(t, e, "DPoP "+access, proof(t, other, http.MethodGet, "/v1/auth/check", access, ""))
				if answer.status != http.StatusUnauthorized || !strings.Contains(answer.header.Get("WWW-Authenticate"), `error="invalid_dpop_proof"`) {
					t.Errorf("REST CheckToken with another key's proof: %d, WWW-Authenticate %q", answer.status, answer.header.Get("WWW-Authenticate"))
				}

				// Without a proof: a bearer token, refused with the DPoP scheme.
				bearer, _, tokenType := get(t, e, func(string, string) string { return "" })
				if tokenType != "Bearer" || jkt(t, bearer) != "" {
					t.Fatalf("without a proof: token_type %q, cnf.jkt %q", tokenType, jkt(t, bearer))
				}
				if err := checkOverGRPC(e, "Bearer "+bearer, ""); err != nil {
					t.Fatalf("CheckToken of a bearer token: %v", err)
				}
				if err := checkOverGRPC(e, "DPoP "+bearer, proof(t, signer, http.MethodGet, "/v1/auth/check", bearer, "")); status.Code(err) != codes.Unauthenticated {
					t.Errorf("a bearer token with the DPoP scheme: %v, want Unauthenticated", err)
				}
			})
		}
	}
}

// A token request with a bad proof is refused with invalid_dpop_proof
// (400 on /oauth2/token, InvalidArgument over gRPC), and nothing is issued.
func TestDPoPRefusesBadProofsAtTheTokenEndpoints(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	signer := newSigner(t)
	form := url.Values{"grant_type": {"password"}, "username": {servertest.UserName}, "password": {servertest.UserPassword}}
	good := proof(t, signer, http.MethodPost, "/oauth2/token", "", "")
	if answer := oauthToken(t, e, form, good); answer.status != http.StatusOK {
		t.Fatalf("with a good proof: %d %v", answer.status, answer.body)
	}
	for name, p := range map[string]string{
		"replayed":          good,
		"for another URL":   proof(t, signer, http.MethodPost, "/oauth2/revoke", "", ""),
		"for another verb":  proof(t, signer, http.MethodGet, "/oauth2/token", "", ""),
		"malformed":         "eyJhbGciOiJub25lIn0.e30.",
		"not a JWS at all":  "hello",
		"of another server": mustProof(t, signer, http.MethodPost, "https://elsewhere.test/oauth2/token"),
	} {
		answer := oauthToken(t, e, form, p)
		if answer.status != http.StatusBadRequest || answer.body["error"] != "invalid_dpop_proof" {
			t.Errorf("a proof %s: %d %v, want 400 invalid_dpop_proof", name, answer.status, answer.body)
		}
	}
	// Two DPoP headers are one too many.
	req, _ := http.NewRequest(http.MethodPost, e.HTTPBase()+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.Header.Add("DPoP", proof(t, signer, http.MethodPost, "/oauth2/token", "", ""))
	req.Header.Add("DPoP", proof(t, signer, http.MethodPost, "/oauth2/token", "", ""))
	if code, body := servertest.Do(t, req); code != http.StatusBadRequest || !strings.Contains(body, "invalid_dpop_proof") {
		t.Errorf("two proofs: %d %s", code, body)
	}
	_, err := authv1.NewAuthServiceClient(e.Conn).Token(withCall("", proof(t, signer, http.MethodPost, "/v1/auth/token/refresh", "", "")),
		servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
	if reason, _ := errorReason(err); status.Code(err) != codes.InvalidArgument || reason != "INVALID_DPOP_PROOF" {
		t.Errorf("gRPC Token with RefreshToken's proof: %v (%s), want InvalidArgument INVALID_DPOP_PROOF", err, reason)
	}
}

func mustProof(t *testing.T, signer *dpop.Signer, method, fullURL string) string {
	t.Helper()
	value, err := signer.Proof(method, fullURL, "", "")
	if err != nil {
		t.Fatal(err)
	}
	return value
}

// A public client's login started with a DPoP proof refreshes only with a
// proof of the same key (RFC 9449 §5), over gRPC, REST and /oauth2/token:
// a thief holding the refresh token but not the key gets nothing.
func TestDPoPBindsAPublicClientsRefreshToken(t *testing.T) {
	t.Parallel()
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := servertest.StartOn(t, backend)
			signer, thief := newSigner(t), newSigner(t)
			_, refresh, _ := waysIn["gRPC"](t, e, func(method, path string) string { return proof(t, signer, method, path, "", "") })
			client := authv1.NewAuthServiceClient(e.Conn)
			for name, p := range map[string]string{
				"without a proof":          "",
				"with another key's proof": proof(t, thief, http.MethodPost, "/v1/auth/token/refresh", "", ""),
			} {
				_, err := client.RefreshToken(withCall("", p), &authv1.RefreshTokenRequest{RefreshToken: refresh})
				if reason, _ := errorReason(err); status.Code(err) != codes.InvalidArgument || reason != "INVALID_DPOP_PROOF" {
					t.Errorf("refresh %s: %v (%s), want InvalidArgument INVALID_DPOP_PROOF", name, err, reason)
				}
			}
			answer := send(t, e, http.MethodPost, "/v1/auth/token/refresh", "application/json", `{"refreshToken":"`+refresh+`"}`, nil)
			if answer.status != http.StatusBadRequest {
				t.Errorf("REST refresh without a proof: %d %v", answer.status, answer.body)
			}
			// The refusals ended nothing: the holder of the key refreshes.
			resp, err := client.RefreshToken(withCall("", proof(t, signer, http.MethodPost, "/v1/auth/token/refresh", "", "")),
				&authv1.RefreshTokenRequest{RefreshToken: refresh})
			if err != nil {
				t.Fatalf("refresh with the key: %v", err)
			}
			if resp.GetTokenType() != "DPoP" || jkt(t, resp.GetAccessToken()) != signer.Thumbprint() {
				t.Fatalf("refreshed token: %q, jkt %q", resp.GetTokenType(), jkt(t, resp.GetAccessToken()))
			}
			// The successor is bound as its predecessor was.
			refresh = resp.GetRefreshToken()
			oauthAnswer := oauthToken(t, e, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}, "client_id": {"chit-api"}}, "")
			if oauthAnswer.status != http.StatusBadRequest || oauthAnswer.body["error"] != "invalid_dpop_proof" {
				t.Errorf("/oauth2/token refresh without a proof: %d %v", oauthAnswer.status, oauthAnswer.body)
			}
		})
	}
}

// Introspection answers a bound token's cnf and token_type DPoP (RFC 9449
// §6.2), and userinfo takes it only with its proof.
func TestDPoPAtIntrospectionAndUserinfo(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	signer := newSigner(t)
	answer := oauthToken(t, e, url.Values{"grant_type": {"password"}, "username": {servertest.UserName}, "password": {servertest.UserPassword},
		"scope": {"openid"}}, proof(t, signer, http.MethodPost, "/oauth2/token", "", ""))
	access, _ := answer.body["access_token"].(string)
	if access == "" {
		t.Fatalf("token: %d %v", answer.status, answer.body)
	}
	introspected := send(t, e, http.MethodPost, "/oauth2/introspect", "application/x-www-form-urlencoded",
		url.Values{"token": {access}, "client_id": {servertest.ServiceName}, "client_secret": {e.ServiceSecret}}.Encode(), nil)
	cnf, _ := introspected.body["cnf"].(map[string]any)
	if introspected.body["active"] != true || introspected.body["token_type"] != "DPoP" || cnf["jkt"] != signer.Thumbprint() {
		t.Fatalf("introspection answered %v", introspected.body)
	}

	userinfo := func(authorization, p string) dpopAnswer {
		header := map[string]string{"Authorization": authorization}
		if p != "" {
			header["DPoP"] = p
		}
		return send(t, e, http.MethodGet, "/userinfo", "", "", header)
	}
	if got := userinfo("DPoP "+access, proof(t, signer, http.MethodGet, "/userinfo", access, "")); got.status != http.StatusOK {
		t.Fatalf("userinfo with its proof: %d %v", got.status, got.body)
	}
	for name, got := range map[string]dpopAnswer{
		"as a bearer token": userinfo("Bearer "+access, ""),
		"without a proof":   userinfo("DPoP "+access, ""),
		"with a POST proof": userinfo("DPoP "+access, proof(t, signer, http.MethodPost, "/userinfo", access, "")),
	} {
		if got.status != http.StatusUnauthorized || !strings.HasPrefix(got.header.Get("WWW-Authenticate"), "DPoP ") {
			t.Errorf("userinfo %s: %d, WWW-Authenticate %q", name, got.status, got.header.Get("WWW-Authenticate"))
		}
	}
}

// With --dpop-nonce, a proof without the server's nonce is refused with
// use_dpop_nonce and the nonce to use (the DPoP-Nonce header, the gRPC
// ErrorInfo), and one with it is accepted once. On two PostgreSQL replicas
// a proof carrying one replica's nonce is refused by the other: a proof is
// accepted once in the whole deployment, with replay records in memory.
func TestDPoPNoncesMakeProofsSingleUseAcrossReplicas(t *testing.T) {
	t.Parallel()
	withNonces := func(cfg *server.Config) {
		source, err := dpop.NewNonceSource(5*time.Minute, cfg.Now)
		if err != nil {
			t.Fatal(err)
		}
		cfg.DPoP.Nonces = source
	}
	a := servertest.StartOn(t, servertest.Postgres, withNonces)
	b := a.StartReplica(t, withNonces)
	signer := newSigner(t)
	form := url.Values{"grant_type": {"password"}, "username": {servertest.UserName}, "password": {servertest.UserPassword}}

	first := oauthToken(t, a, form, proof(t, signer, http.MethodPost, "/oauth2/token", "", ""))
	nonce := first.header.Get("DPoP-Nonce")
	if first.status != http.StatusBadRequest || first.body["error"] != "use_dpop_nonce" || nonce == "" {
		t.Fatalf("a proof without a nonce: %d %v, DPoP-Nonce %q", first.status, first.body, nonce)
	}
	withNonce := proof(t, signer, http.MethodPost, "/oauth2/token", "", nonce)
	if answer := oauthToken(t, a, form, withNonce); answer.status != http.StatusOK {
		t.Fatalf("a proof with the nonce: %d %v", answer.status, answer.body)
	}
	if answer := oauthToken(t, a, form, withNonce); answer.status != http.StatusBadRequest || answer.body["error"] != "invalid_dpop_proof" {
		t.Errorf("the proof replayed to its replica: %d %v", answer.status, answer.body)
	}
	answer := oauthToken(t, b, form, withNonce)
	if answer.status != http.StatusBadRequest || answer.body["error"] != "use_dpop_nonce" || answer.header.Get("DPoP-Nonce") == "" {
		t.Errorf("the proof replayed to the other replica: %d %v", answer.status, answer.body)
	}

	// gRPC: the nonce comes in the ErrorInfo.
	_, err := authv1.NewAuthServiceClient(b.Conn).Token(withCall("", proof(t, signer, http.MethodPost, "/v1/auth/token", "", "")),
		servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
	reason, details := errorReason(err)
	if status.Code(err) != codes.InvalidArgument || reason != "USE_DPOP_NONCE" || details["dpop_nonce"] == "" {
		t.Fatalf("gRPC Token without a nonce: %v (%s %v)", err, reason, details)
	}
	if _, err := authv1.NewAuthServiceClient(b.Conn).Token(withCall("", proof(t, signer, http.MethodPost, "/v1/auth/token", "", details["dpop_nonce"])),
		servertest.PasswordRequest(servertest.UserName, servertest.UserPassword)); err != nil {
		t.Fatalf("gRPC Token with the nonce: %v", err)
	}
}

// Discovery says which proof algorithms are accepted and that tokens are
// bound to client certificates.
func TestDiscoveryAdvertisesSenderConstrainedTokens(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	answer := send(t, e, http.MethodGet, "/.well-known/openid-configuration", "", "", nil)
	algorithms, _ := answer.body["dpop_signing_alg_values_supported"].([]any)
	if len(algorithms) == 0 || answer.body["tls_client_certificate_bound_access_tokens"] != true {
		t.Fatalf("discovery: %v", answer.body)
	}
	for _, alg := range algorithms {
		if s, _ := alg.(string); strings.HasPrefix(s, "HS") || s == "none" {
			t.Errorf("discovery offers %q for DPoP proofs", s)
		}
	}
}

// A client or service account that requires DPoP gets no token without a
// proof (invalid_dpop_proof, 400 / InvalidArgument), on every way in and
// both stores; with one it gets a DPoP token. Turning the flag off lets
// bearer tokens out again.
func TestRequiredDPoPRefusesRequestsWithoutAProof(t *testing.T) {
	t.Parallel()
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) {
			t.Parallel()
			e := servertest.StartOn(t, backend, func(cfg *server.Config) { cfg.ServiceAccountCacheTTL = 0 })
			secret, err := e.Directory().AddServiceAccount(t.Context(), accounts.NewServiceAccount{Name: "strict", RequireDPoP: true,
				Grants: storage.Grants{AllowedScopes: []string{"read"}}})
			if err != nil {
				t.Fatal(err)
			}
			e.RegisterClient(t, accounts.ClientRegistration{ID: "spa", RedirectURIs: []string{"https://spa.example/cb"}, RequireDPoP: true})
			signer := newSigner(t)
			form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"strict"}, "client_secret": {secret}}

			answer := oauthToken(t, e, form, "")
			if answer.status != http.StatusBadRequest || answer.body["error"] != "invalid_dpop_proof" {
				t.Errorf("/oauth2/token client credentials without a proof: %d %v", answer.status, answer.body)
			}
			answer = oauthToken(t, e, form, proof(t, signer, http.MethodPost, "/oauth2/token", "", ""))
			if answer.status != http.StatusOK || answer.body["token_type"] != "DPoP" {
				t.Errorf("/oauth2/token client credentials with a proof: %d %v", answer.status, answer.body)
			}
			client := authv1.NewAuthServiceClient(e.Conn)
			_, err = client.Token(context.Background(), servertest.ClientRequest("strict", secret))
			if reason, _ := errorReason(err); status.Code(err) != codes.InvalidArgument || reason != "INVALID_DPOP_PROOF" {
				t.Errorf("gRPC client credentials without a proof: %v (%s)", err, reason)
			}
			resp, err := client.Token(withCall("", proof(t, signer, http.MethodPost, "/v1/auth/token", "", "")), servertest.ClientRequest("strict", secret))
			if err != nil || resp.GetTokenType() != "DPoP" {
				t.Errorf("gRPC client credentials with a proof: %v %v", resp, err)
			}
			rest := send(t, e, http.MethodPost, "/v1/auth/token", "application/json",
				`{"clientCredential":{"clientId":"strict","clientSecret":"`+secret+`"}}`, nil)
			if rest.status != http.StatusBadRequest {
				t.Errorf("REST client credentials without a proof: %d %v", rest.status, rest.body)
			}

			// A public client that requires DPoP: a password sign-in through it.
			answer = oauthToken(t, e, url.Values{"grant_type": {"password"}, "client_id": {"spa"},
				"username": {servertest.UserName}, "password": {servertest.UserPassword}}, "")
			if answer.status != http.StatusBadRequest || answer.body["error"] != "invalid_dpop_proof" {
				t.Errorf("a sign-in through a client requiring DPoP, without a proof: %d %v", answer.status, answer.body)
			}

			if err := e.Directory().SetServiceAccountRequireDPoP(t.Context(), "strict", false); err != nil {
				t.Fatal(err)
			}
			if answer := oauthToken(t, e, form, ""); answer.status != http.StatusOK || answer.body["token_type"] != "Bearer" {
				t.Errorf("after the requirement was lifted: %d %v", answer.status, answer.body)
			}
		})
	}
}

// A device login's poll binds its tokens like every other way in: over
// gRPC its proof names the poll's REST form (POST /v1/auth/device/token),
// as the table in docs/sender-constrained-tokens.md says, and a proof
// naming the gRPC method instead is refused.
func TestDPoPBindsADeviceLogin(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	client := authv1.NewAuthServiceClient(e.Conn)
	signer := newSigner(t)
	started, err := client.StartDeviceLogin(context.Background(), &authv1.StartDeviceLoginRequest{Scope: "openid"})
	if err != nil {
		t.Fatal(err)
	}
	e.AnswerDevice(t, e.NewBrowser(t), started.GetUserCode(), servertest.UserPassword, true)
	e.Clock.Advance(11 * time.Second)
	poll := &authv1.PollDeviceLoginRequest{DeviceCode: started.GetDeviceCode()}
	_, err = client.PollDeviceLogin(withCall("", proof(t, signer, http.MethodPost, "/chit.auth.v1.AuthService/PollDeviceLogin", "", "")), poll)
	if reason, _ := errorReason(err); reason != "INVALID_DPOP_PROOF" {
		t.Fatalf("a proof naming the gRPC method: %v (%s), want INVALID_DPOP_PROOF", err, reason)
	}
	answer, err := client.PollDeviceLogin(withCall("", proof(t, signer, http.MethodPost, "/v1/auth/device/token", "", "")), poll)
	if err != nil {
		t.Fatalf("a proof naming the REST form: %v", err)
	}
	if access := answer.GetAccessToken(); access.GetTokenType() != "DPoP" || jkt(t, access.GetAccessToken()) != signer.Thumbprint() {
		t.Fatalf("token_type %q, cnf.jkt %q; want DPoP and %q", access.GetTokenType(), jkt(t, access.GetAccessToken()), signer.Thumbprint())
	}
}

// With nonces on, every answer to a request with a proof names the current
// nonce (RFC 9449 §8.2), successes included, so a client moves to the next
// nonce without being refused first; a request without a proof gets none.
func TestDPoPNonceComesWithSuccessfulAnswers(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t, func(cfg *server.Config) {
		source, err := dpop.NewNonceSource(5*time.Minute, cfg.Now)
		if err != nil {
			t.Fatal(err)
		}
		cfg.DPoP.Nonces = source
	})
	signer := newSigner(t)
	form := url.Values{"grant_type": {"password"}, "username": {servertest.UserName}, "password": {servertest.UserPassword}}
	nonce := oauthToken(t, e, form, proof(t, signer, http.MethodPost, "/oauth2/token", "", "")).header.Get("DPoP-Nonce")
	if nonce == "" {
		t.Fatal("no nonce with use_dpop_nonce")
	}
	ok := oauthToken(t, e, form, proof(t, signer, http.MethodPost, "/oauth2/token", "", nonce))
	if ok.status != http.StatusOK || ok.header.Get("DPoP-Nonce") != nonce {
		t.Fatalf("a success: %d, DPoP-Nonce %q, want %q", ok.status, ok.header.Get("DPoP-Nonce"), nonce)
	}
	access, _ := ok.body["access_token"].(string)
	check := checkOverREST(t, e, "DPoP "+access, proof(t, signer, http.MethodGet, "/v1/auth/check", access, nonce))
	if check.status != http.StatusOK || check.header.Get("DPoP-Nonce") != nonce {
		t.Fatalf("a REST check: %d, DPoP-Nonce %q, want %q", check.status, check.header.Get("DPoP-Nonce"), nonce)
	}
	if bearer := oauthToken(t, e, form, ""); bearer.status != http.StatusOK || bearer.header.Get("DPoP-Nonce") != "" {
		t.Errorf("without a proof: %d, DPoP-Nonce %q", bearer.status, bearer.header.Get("DPoP-Nonce"))
	}
}
