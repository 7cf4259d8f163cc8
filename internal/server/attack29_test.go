package server_test

// Attacks on what issue #29 added (DPoP, certificate-bound tokens, the
// revocation feed), from the outside: each test names the finding it pins.

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/revocationfeed"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/pkg/dpop"
)

// A verifier whose service account must use DPoP (or whose tokens are
// bound to a proxy-verified certificate) can watch the revocation feed
// over Server-Sent Events with its bound token, as it can over gRPC: the
// events endpoint reads the DPoP header and the Client-Cert of a trusted
// proxy as every other REST endpoint does. Before, it forwarded only
// Authorization to the access rule, so every sender-constrained watcher
// was refused ("a DPoP proof is required", "bound to a client
// certificate") whatever it sent; and a proof for another URL, another
// key, or none, must still be refused.
func TestAttack29RevocationEventsTakeSenderConstrainedTokens(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t, func(cfg *server.Config) { cfg.ClientCertificateProxies = []string{"127.0.0.1", "::1"} })
	secret, err := e.Directory().AddServiceAccount(t.Context(), accounts.NewServiceAccount{Name: "bound-verifier", RequireDPoP: true,
		Grants: storage.Grants{AllowedScopes: []string{revocationfeed.Scope}, DefaultScopes: []string{revocationfeed.Scope}}})
	if err != nil {
		t.Fatal(err)
	}
	signer, other := newSigner(t), newSigner(t)
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"bound-verifier"}, "client_secret": {secret}}
	answer := oauthToken(t, e, form, proof(t, signer, http.MethodPost, "/oauth2/token", "", ""))
	access, _ := answer.body["access_token"].(string)
	if answer.status != http.StatusOK || jkt(t, access) != signer.Thumbprint() {
		t.Fatalf("the bound verifier's token: %d %v", answer.status, answer.body)
	}

	events := func(header map[string]string) int {
		t.Helper()
		s, err := watchSSE(t, e, "", "", header)
		if err != nil {
			return err.(*sseError).status
		}
		if first := s.next(t); !first.heartbeat {
			t.Fatalf("first message %+v, want the heartbeat at the head", first)
		}
		return http.StatusOK
	}
	for _, c := range []struct {
		name   string
		header map[string]string
		want   int
	}{
		{"DPoP with its proof", map[string]string{"Authorization": "DPoP " + access,
			"DPoP": proof(t, signer, http.MethodGet, "/v1/revocations/events", access, "")}, http.StatusOK},
		{"DPoP without a proof", map[string]string{"Authorization": "DPoP " + access}, http.StatusUnauthorized},
		{"as Bearer with its proof", map[string]string{"Authorization": "Bearer " + access,
			"DPoP": proof(t, signer, http.MethodGet, "/v1/revocations/events", access, "")}, http.StatusUnauthorized},
		{"a proof of another key", map[string]string{"Authorization": "DPoP " + access,
			"DPoP": proof(t, other, http.MethodGet, "/v1/revocations/events", access, "")}, http.StatusUnauthorized},
		{"a proof for POST", map[string]string{"Authorization": "DPoP " + access,
			"DPoP": proof(t, signer, http.MethodPost, "/v1/revocations/events", access, "")}, http.StatusUnauthorized},
		{"a proof for the gRPC method's URL", map[string]string{"Authorization": "DPoP " + access,
			"DPoP": proof(t, signer, http.MethodPost, "/chit.auth.v1.RevocationFeedService/WatchRevocations", access, "")}, http.StatusUnauthorized},
		{"a proof without ath", map[string]string{"Authorization": "DPoP " + access,
			"DPoP": proof(t, signer, http.MethodGet, "/v1/revocations/events", "", "")}, http.StatusUnauthorized},
	} {
		if got := events(c.header); got != c.want {
			t.Errorf("%s: %d, want %d", c.name, got, c.want)
		}
	}
	replayed := proof(t, signer, http.MethodGet, "/v1/revocations/events", access, "")
	header := map[string]string{"Authorization": "DPoP " + access, "DPoP": replayed}
	if first, second := events(header), events(header); first != http.StatusOK || second != http.StatusUnauthorized {
		t.Errorf("a proof used twice: %d then %d, want 200 then 401", first, second)
	}

	// A token bound to the certificate a trusted proxy names.
	plain, err := e.Directory().CreateServiceAccount(t.Context(), "cert-verifier",
		storage.Grants{AllowedScopes: []string{revocationfeed.Scope}, DefaultScopes: []string{revocationfeed.Scope}})
	if err != nil {
		t.Fatal(err)
	}
	first, second := servertest.NewPKI(t).Client, servertest.NewPKI(t).Client
	clientCert := func(certificate tls.Certificate) string {
		return ":" + base64.StdEncoding.EncodeToString(certificate.Certificate[0]) + ":"
	}
	answer = send(t, e, http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded",
		url.Values{"grant_type": {"client_credentials"}, "client_id": {"cert-verifier"}, "client_secret": {plain}}.Encode(),
		map[string]string{"Client-Cert": clientCert(first)})
	bound, _ := answer.body["access_token"].(string)
	if answer.status != http.StatusOK || boundCertificate(t, bound) != x5t(first) {
		t.Fatalf("the certificate-bound verifier's token: %d %v", answer.status, answer.body)
	}
	for name, c := range map[string]struct {
		certificate string
		want        int
	}{"its certificate": {clientCert(first), http.StatusOK}, "another certificate": {clientCert(second), http.StatusUnauthorized},
		"no certificate": {"", http.StatusUnauthorized}} {
		header := map[string]string{"Authorization": "Bearer " + bound}
		if c.certificate != "" {
			header["Client-Cert"] = c.certificate
		}
		if got := events(header); got != c.want {
			t.Errorf("a certificate-bound token with %s: %d, want %d", name, got, c.want)
		}
	}
}

// With server nonces, a refused proof at the events endpoint names the
// nonce to use as the other REST endpoints do (DPoP-Nonce, RFC 9449 §8),
// and a proof carrying it is accepted.
func TestAttack29RevocationEventsAskForTheServerNonce(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t, func(cfg *server.Config) {
		source, err := dpop.NewNonceSource(5*time.Minute, cfg.Now)
		if err != nil {
			t.Fatal(err)
		}
		cfg.DPoP.Nonces = source
	})
	secret, err := e.Directory().AddServiceAccount(t.Context(), accounts.NewServiceAccount{Name: "bound-verifier", RequireDPoP: true,
		Grants: storage.Grants{AllowedScopes: []string{revocationfeed.Scope}, DefaultScopes: []string{revocationfeed.Scope}}})
	if err != nil {
		t.Fatal(err)
	}
	signer := newSigner(t)
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"bound-verifier"}, "client_secret": {secret}}
	nonce := oauthToken(t, e, form, proof(t, signer, http.MethodPost, "/oauth2/token", "", "")).header.Get("DPoP-Nonce")
	answer := oauthToken(t, e, form, proof(t, signer, http.MethodPost, "/oauth2/token", "", nonce))
	access, _ := answer.body["access_token"].(string)
	if answer.status != http.StatusOK || access == "" {
		t.Fatalf("the bound verifier's token: %d %v", answer.status, answer.body)
	}

	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, e.HTTPBase()+"/v1/revocations/events", nil)
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "DPoP "+access)
	req.Header.Set("DPoP", proof(t, signer, http.MethodGet, "/v1/revocations/events", access, ""))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	fresh := resp.Header.Get("DPoP-Nonce")
	if resp.StatusCode != http.StatusUnauthorized || fresh == "" {
		t.Fatalf("a proof without a nonce: %d, DPoP-Nonce %q; want 401 with a nonce", resp.StatusCode, fresh)
	}
	s, err := watchSSE(t, e, "", "", map[string]string{"Authorization": "DPoP " + access,
		"DPoP": proof(t, signer, http.MethodGet, "/v1/revocations/events", access, fresh)})
	if err != nil {
		t.Fatalf("a proof with the nonce: %v", err)
	}
	if first := s.next(t); !first.heartbeat {
		t.Fatalf("first message %+v, want the heartbeat at the head", first)
	}
}

// One caller cannot hold revocation streams without bound: each costs the
// replica a goroutine, buffers and a store read per event (3000 streams of
// one verifier's token took 125 MB here). Past
// RevocationMaxStreamsPerCaller streams, counted over both transports, the
// next is refused with RESOURCE_EXHAUSTED (HTTP 429) and nothing is
// streamed; another caller is not affected; a closed stream frees its
// place.
func TestAttack29RevocationStreamsPerCallerAreBounded(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t, func(cfg *server.Config) { cfg.RevocationMaxStreamsPerCaller = 2 })
	watcher := watcherToken(t, e)
	other, err := e.Directory().CreateServiceAccount(t.Context(), "other-verifier",
		storage.Grants{AllowedScopes: []string{revocationfeed.Scope}, DefaultScopes: []string{revocationfeed.Scope}})
	if err != nil {
		t.Fatal(err)
	}
	resp, code := servertest.Transports(e)["gRPC"].Token(t, servertest.ClientRequest("other-verifier", other))
	servertest.WantCode(t, "the other verifier's token", code, codes.OK)

	ctx, cancel := context.WithCancel(t.Context())
	stream, err := authv1.NewRevocationFeedServiceClient(e.Conn).WatchRevocations(
		metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+watcher), &authv1.WatchRevocationsRequest{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := stream.Recv(); err != nil {
		t.Fatalf("the first stream: %v", err)
	}
	if _, err := watchSSE(t, e, watcher, "", nil); err != nil {
		t.Fatalf("the second stream: %v", err)
	}
	if _, err := watchGRPC(t, e, watcher, ""); status.Code(err) != codes.ResourceExhausted {
		t.Errorf("a third stream over gRPC: %v, want ResourceExhausted", err)
	}
	if _, err := watchSSE(t, e, watcher, "", nil); err == nil || err.(*sseError).status != http.StatusTooManyRequests {
		t.Errorf("a third stream over SSE: %v, want 429", err)
	}
	if _, err := watchSSE(t, e, resp.GetAccessToken(), "", nil); err != nil {
		t.Errorf("another caller's stream: %v", err)
	}

	cancel()
	// The server notices the cancelled stream when its context ends; wait
	// for its place rather than for a fixed time.
	deadline := time.Now().Add(5 * time.Second)
	for {
		_, err := watchGRPC(t, e, watcher, "")
		if err == nil {
			break
		}
		if status.Code(err) != codes.ResourceExhausted || time.Now().After(deadline) {
			t.Fatalf("a stream after one closed: %v", err)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// A token request's proof is checked before its client authenticates, so
// anyone can send valid self-signed proofs (with made-up client
// credentials) until the replay memory is full; 110 000 of them took 33 s
// here, after which every DPoP proof on the replica was refused for a
// proof lifetime, including those of calls with tokens already issued.
// The records of resource requests (whose proofs are checked only after
// their access token verified) are kept apart, so such a flood cannot
// stop the use of a DPoP-bound token on either transport, nor at
// /userinfo.
func TestAttack29ATokenEndpointProofFloodLeavesResourceCallsAlone(t *testing.T) {
	t.Parallel()
	const records = 20
	e := servertest.Start(t, func(cfg *server.Config) { cfg.DPoP.MaxReplayRecords = records })
	signer := newSigner(t)
	form := url.Values{"grant_type": {"password"}, "username": {servertest.UserName}, "password": {servertest.UserPassword}, "scope": {"openid"}}
	answer := oauthToken(t, e, form, proof(t, signer, http.MethodPost, "/oauth2/token", "", ""))
	access, _ := answer.body["access_token"].(string)
	if answer.status != http.StatusOK || jkt(t, access) != signer.Thumbprint() {
		t.Fatalf("a DPoP-bound token: %d %v", answer.status, answer.body)
	}

	flooder := newSigner(t)
	nobody := url.Values{"grant_type": {"client_credentials"}, "client_id": {"nobody"}, "client_secret": {"wrong"}}
	for range records + 1 {
		if answer := oauthToken(t, e, nobody, proof(t, flooder, http.MethodPost, "/oauth2/token", "", "")); answer.status < 400 || answer.status >= 500 {
			t.Fatalf("a flood request: %d %v", answer.status, answer.body)
		}
	}

	if answer := checkOverREST(t, e, "DPoP "+access, proof(t, signer, http.MethodGet, "/v1/auth/check", access, "")); answer.status != http.StatusOK {
		t.Errorf("REST CheckToken after the flood: %d %v", answer.status, answer.body)
	}
	if err := checkOverGRPC(e, "DPoP "+access, proof(t, signer, http.MethodGet, "/v1/auth/check", access, "")); err != nil {
		t.Errorf("gRPC CheckToken after the flood: %v", err)
	}
	userinfo := send(t, e, http.MethodGet, "/userinfo", "", "", map[string]string{"Authorization": "DPoP " + access,
		"DPoP": proof(t, signer, http.MethodGet, "/userinfo", access, "")})
	if userinfo.status != http.StatusOK {
		t.Errorf("/userinfo after the flood: %d %v", userinfo.status, userinfo.body)
	}
}

// Over the gRPC port's mutual TLS, a token bound to one client certificate
// is refused on a connection with another certificate the server trusts
// as much (the same CA bundle), and over REST with none; a token bound
// to a certificate cannot be unbound by presenting it as a DPoP token.
// (Pins what held in the attack run.)
func TestAttack29MutualTLSRefusesAnotherTrustedCertificate(t *testing.T) {
	first, second := servertest.NewPKI(t), servertest.NewPKI(t)
	clientCAs := first.Pool.Clone()
	clientCAs.AppendCertsFromPEM(second.CAPEM)
	servertest.ClientTLS = &tls.Config{RootCAs: first.Pool, Certificates: []tls.Certificate{first.Client}, MinVersion: tls.VersionTLS12}
	t.Cleanup(func() { servertest.ClientTLS = nil })
	e := servertest.Start(t, func(cfg *server.Config) {
		cfg.TLS = &tls.Config{Certificates: []tls.Certificate{first.Server}, ClientCAs: clientCAs,
			ClientAuth: tls.RequireAndVerifyClientCert, MinVersion: tls.VersionTLS12}
	})
	dial := func(certificate tls.Certificate) authv1.AuthServiceClient {
		conn, err := grpc.NewClient(e.Server.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(
			&tls.Config{RootCAs: first.Pool, Certificates: []tls.Certificate{certificate}, MinVersion: tls.VersionTLS12})))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { conn.Close() })
		return authv1.NewAuthServiceClient(conn)
	}
	mine, theirs := dial(first.Client), dial(second.Client)
	resp, err := mine.Token(t.Context(), servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
	if err != nil {
		t.Fatal(err)
	}
	access := resp.GetAccessToken()
	if got := boundCertificate(t, access); got != x5t(first.Client) {
		t.Fatalf("cnf x5t#S256 %q, want %q", got, x5t(first.Client))
	}
	if _, err := mine.CheckToken(servertest.WithBearer(access), &authv1.CheckTokenRequest{}); err != nil {
		t.Errorf("CheckToken with its certificate: %v", err)
	}
	if _, err := theirs.CheckToken(servertest.WithBearer(access), &authv1.CheckTokenRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("CheckToken with another trusted certificate: %v, want Unauthenticated", err)
	}
	signer := newSigner(t)
	if _, err := theirs.CheckToken(withCall("DPoP "+access, proof(t, signer, http.MethodGet, "/v1/auth/check", access, "")),
		&authv1.CheckTokenRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("CheckToken with another certificate, as a DPoP token with a proof: %v, want Unauthenticated", err)
	}
	if _, err := theirs.ListApiKeys(servertest.WithBearer(access), &authv1.ListApiKeysRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("an authenticated RPC with another certificate: %v, want Unauthenticated", err)
	}
}

// The events path answers another method than GET 405, naming the method,
// as the other REST paths do; it was 404 Not Found.
func TestAttack29RevocationEventsRefuseOtherMethods(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete} {
		answer := send(t, e, method, "/v1/revocations/events", "", "", nil)
		if answer.status != http.StatusMethodNotAllowed || answer.header.Get("Allow") != "GET, HEAD" ||
			answer.body["code"] != float64(codes.Unimplemented) || !strings.Contains(fmt.Sprint(answer.body["message"]), method) {
			t.Errorf("%s: %d %v (Allow %q)", method, answer.status, answer.body, answer.header.Get("Allow"))
		}
	}
}

// A proof whose jwk jwx parses but no curve holds (an EC coordinate longer
// than the curve's size, an Ed25519 key of 33 bytes) is refused as a bad
// proof on every transport. It panicked in pkg/dpop: net/http dropped
// the connection (no answer at all), gRPC's recovery answered INTERNAL.
func TestAttack29MalformedProofKeysAreBadProofsNotPanics(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	long := base64.RawURLEncoding.EncodeToString(append([]byte{0xff}, make([]byte, 32)...))
	for name, c := range map[string]struct {
		alg string
		jwk map[string]any
	}{
		"EC x of 33 bytes": {"ES256", map[string]any{"kty": "EC", "crv": "P-256", "x": long, "y": long[:43]}},
		"Ed25519 of 33":    {"EdDSA", map[string]any{"kty": "OKP", "crv": "Ed25519", "x": long}},
	} {
		proofFor := func(path string) string {
			header, _ := json.Marshal(map[string]any{"typ": "dpop+jwt", "alg": c.alg, "jwk": c.jwk})
			claims, _ := json.Marshal(map[string]any{"jti": path, "htm": http.MethodPost, "htu": servertest.Issuer + path, "iat": time.Now().Unix()})
			return base64.RawURLEncoding.EncodeToString(header) + "." + base64.RawURLEncoding.EncodeToString(claims) + "." +
				base64.RawURLEncoding.EncodeToString(make([]byte, 64))
		}
		form := url.Values{"grant_type": {"password"}, "username": {servertest.UserName}, "password": {servertest.UserPassword}}
		req, err := http.NewRequest(http.MethodPost, e.HTTPBase()+"/oauth2/token", strings.NewReader(form.Encode()))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.Header.Set("DPoP", proofFor("/oauth2/token"))
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Errorf("%s at /oauth2/token: no answer: %v", name, err)
		} else {
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest {
				t.Errorf("%s at /oauth2/token: %d, want 400", name, resp.StatusCode)
			}
		}
		_, err = authv1.NewAuthServiceClient(e.Conn).Token(withCall("", proofFor("/v1/auth/token")),
			servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
		if reason, _ := errorReason(err); status.Code(err) != codes.InvalidArgument || reason != "INVALID_DPOP_PROOF" {
			t.Errorf("%s over gRPC: %v (%s), want InvalidArgument INVALID_DPOP_PROOF", name, err, reason)
		}
	}
}
