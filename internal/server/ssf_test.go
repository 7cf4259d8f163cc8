package server_test

import (
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	jose "github.com/go-jose/go-jose/v4"
	"google.golang.org/grpc/codes"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/grpcapi"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/ssf"
	"github.com/chit-auth/chit/internal/storage"
)

// verifySET checks a SET against the server's JWKS with a JOSE library
// other than the server's (go-jose), and returns its claims.
func verifySET(t *testing.T, e *servertest.Env, set string) map[string]any {
	t.Helper()
	status, body := servertest.Get(t, e.HTTPBase()+grpcapi.JWKSPath)
	if status != http.StatusOK {
		t.Fatalf("JWKS: %d", status)
	}
	var jwks jose.JSONWebKeySet
	if err := json.Unmarshal([]byte(body), &jwks); err != nil {
		t.Fatal(err)
	}
	signed, err := jose.ParseSigned(set, []jose.SignatureAlgorithm{jose.ES256, jose.EdDSA, jose.RS256})
	if err != nil {
		t.Fatalf("the SET does not parse: %v", err)
	}
	header := signed.Signatures[0].Header
	if typ := header.ExtraHeaders["typ"]; typ != ssf.SETType {
		t.Fatalf("typ %v, want %s", typ, ssf.SETType)
	}
	keys := jwks.Key(header.KeyID)
	if len(keys) != 1 {
		t.Fatalf("kid %q is not in the JWKS", header.KeyID)
	}
	payload, err := signed.Verify(keys[0])
	if err != nil {
		t.Fatalf("the SET does not verify: %v", err)
	}
	var claims map[string]any
	if err := json.Unmarshal(payload, &claims); err != nil {
		t.Fatal(err)
	}
	if claims["iss"] != servertest.Issuer {
		t.Fatalf("iss %v", claims["iss"])
	}
	return claims
}

func audienceOf(claims map[string]any) string {
	switch aud := claims["aud"].(type) {
	case string:
		return aud
	case []any:
		if len(aud) == 1 {
			s, _ := aud[0].(string)
			return s
		}
	}
	return ""
}

// pushReceiver is an RFC 8935 receiver whose answers the test scripts.
type pushReceiver struct {
	mu       sync.Mutex
	answers  []func(w http.ResponseWriter)
	received []receivedSET
	arrived  chan struct{}
	// during runs before each answer, in the handler.
	during func()
}

type receivedSET struct {
	set, contentType, accept, authorization string
}

func newPushReceiver(t *testing.T) (*pushReceiver, *httptest.Server) {
	r := &pushReceiver{arrived: make(chan struct{}, 100)}
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, req *http.Request) {
		body, _ := io.ReadAll(req.Body)
		r.mu.Lock()
		r.received = append(r.received, receivedSET{set: string(body), contentType: req.Header.Get("Content-Type"), accept: req.Header.Get("Accept"),
			authorization: req.Header.Get("Authorization")})
		answer := func(w http.ResponseWriter) { w.WriteHeader(http.StatusAccepted) }
		if len(r.answers) > 0 {
			answer, r.answers = r.answers[0], r.answers[1:]
		}
		during := r.during
		r.mu.Unlock()
		if during != nil {
			during()
		}
		answer(w)
		r.arrived <- struct{}{}
	}))
	t.Cleanup(server.Close)
	return r, server
}

func (r *pushReceiver) wait(t *testing.T, n int) []receivedSET {
	t.Helper()
	timeout := time.After(15 * time.Second)
	for {
		r.mu.Lock()
		got := append([]receivedSET(nil), r.received...)
		r.mu.Unlock()
		if len(got) >= n {
			return got
		}
		select {
		case <-r.arrived:
		case <-timeout:
			t.Fatalf("the receiver got %d SETs, want %d", len(got), n)
		}
	}
}

// waitStream waits until the stream satisfies done.
func waitStream(t *testing.T, e *servertest.Env, id string, done func(storage.SecurityEventStream) bool) storage.SecurityEventStream {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		stream, err := e.Store.GetSecurityEventStream(t.Context(), id)
		if err != nil {
			t.Fatal(err)
		}
		if done(stream) {
			return stream
		}
		if time.Now().After(deadline) {
			t.Fatalf("stream %s stayed %+v", id, stream)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func head(t *testing.T, e *servertest.Env) storage.RevocationCursor {
	t.Helper()
	bounds, err := e.Store.RevocationBounds(t.Context())
	if err != nil {
		t.Fatal(err)
	}
	return bounds.Head
}

// A revoked login reaches a push receiver as a SET it verifies with the
// server's JWKS, naming the login as its tokens' fid does; a receiver that fails is retried with the position kept,
// until it takes the SET; a refusal for good moves past the event. On
// PostgreSQL two replicas run the deliverer, and the lease makes one push.
func TestSharedSignalsPush(t *testing.T) {
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) {
			primary := servertest.StartOn(t, backend)
			replicas := []*servertest.Env{primary}
			if backend == servertest.Postgres {
				replicas = append(replicas, primary.StartReplica(t))
			}
			logsOf := func() string {
				var all strings.Builder
				for _, e := range replicas {
					all.WriteString(e.Logs.String())
				}
				return all.String()
			}
			receiver, endpoint := newPushReceiver(t)
			created, err := primary.Server.SecurityEvents().CreateStream(t.Context(), ssf.StreamSpec{ID: "siem", Delivery: "push",
				EndpointURL: endpoint.URL + "/events", Authorization: "Bearer receiver-secret", Audience: "https://siem.example"})
			if err != nil {
				t.Fatal(err)
			}
			// The first push fails; while it is retried, the position stays.
			var positionDuringRetry storage.SecurityEventStream
			receiver.answers = []func(http.ResponseWriter){func(w http.ResponseWriter) { w.WriteHeader(http.StatusInternalServerError) }}
			calls := 0
			receiver.during = func() {
				calls++
				if calls == 2 {
					positionDuringRetry, _ = primary.Store.GetSecurityEventStream(t.Context(), "siem")
				}
			}
			// A person signs in, then signs out (revokes the login).
			login, code := servertest.Transports(primary)["gRPC"].Token(t, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
			servertest.WantCode(t, "sign-in", code, codes.OK)
			familyID, _ := payload(t, login.GetAccessToken())["fid"].(string)
			if familyID == "" {
				t.Fatal("the access token has no fid")
			}
			if _, err := authv1.NewAuthServiceClient(primary.Conn).Revoke(t.Context(), &authv1.RevokeRequest{Token: login.GetRefreshToken()}); err != nil {
				t.Fatal(err)
			}
			got := receiver.wait(t, 2)
			if positionDuringRetry.Position != created.Position || !strings.Contains(positionDuringRetry.LastError, "500") {
				t.Fatalf("during the retry the stream was %+v, want its position %v kept and the 500 recorded", positionDuringRetry, created.Position)
			}
			for _, push := range got {
				if push.contentType != "application/secevent+jwt" || push.accept != "application/json" || push.authorization != "Bearer receiver-secret" {
					t.Fatalf("pushed with %+v", push)
				}
			}
			first, second := verifySET(t, primary, got[0].set), verifySET(t, primary, got[1].set)
			if first["jti"] != second["jti"] {
				t.Fatalf("the redelivery's jti %v is not the first's %v", second["jti"], first["jti"])
			}
			if audienceOf(first) != "https://siem.example" {
				t.Fatalf("aud %v", first["aud"])
			}
			events, _ := first["events"].(map[string]any)
			if _, ok := events[ssf.EventSessionRevoked].(map[string]any)["event_timestamp"]; !ok || len(events) != 1 {
				t.Fatalf("events %v", first["events"])
			}
			subject, _ := first["sub_id"].(map[string]any)
			if session, _ := subject["session"].(map[string]any); subject["format"] != "complex" || session["format"] != "opaque" || session["id"] != familyID {
				t.Fatalf("sub_id %v", first["sub_id"])
			}
			delivered := waitStream(t, primary, "siem", func(s storage.SecurityEventStream) bool { return s.Position == head(t, primary) && s.LastError == "" })
			if delivered.DeliveredAt.IsZero() {
				t.Fatalf("delivered %+v", delivered)
			}

			// A 400 with an RFC 8935 error: recorded, and passed.
			receiver.mu.Lock()
			receiver.answers = []func(http.ResponseWriter){func(w http.ResponseWriter) {
				w.Header().Set("Content-Type", "application/json")
				w.WriteHeader(http.StatusBadRequest)
				_, _ = io.WriteString(w, `{"err":"invalid_audience","description":"not ours"}`)
			}}
			receiver.during = nil
			receiver.mu.Unlock()
			if _, err := primary.Store.RevokeSubject(t.Context(), servertest.UserName, primary.Clock.Now()); err != nil {
				t.Fatal(err)
			}
			receiver.wait(t, 3)
			refused := waitStream(t, primary, "siem", func(s storage.SecurityEventStream) bool { return s.Position == head(t, primary) })
			if !strings.Contains(refused.LastError, "invalid_audience: not ours") || strings.Contains(refused.LastError, "receiver-secret") {
				t.Fatalf("LastError %q", refused.LastError)
			}
			// Nothing is pushed twice once taken: two replicas, one lease.
			if n := len(receiver.wait(t, 3)); n != 3 {
				t.Fatalf("the receiver got %d pushes, want 3", n)
			}
			// Counted, by outcome, over the replicas.
			counts := map[string]int{}
			for _, e := range replicas {
				status, metrics := servertest.Get(t, e.HTTPBase()+"/metrics")
				if status != http.StatusOK {
					t.Fatalf("metrics: %d", status)
				}
				for _, outcome := range []string{ssf.OutcomeDelivered, ssf.OutcomeFailed, ssf.OutcomeRefused} {
					if strings.Contains(metrics, `chit_ssf_pushes_total{outcome="`+outcome+`",stream="siem"} 1`+"\n") {
						counts[outcome]++
					}
				}
			}
			if counts[ssf.OutcomeDelivered] != 1 || counts[ssf.OutcomeFailed] != 1 || counts[ssf.OutcomeRefused] != 1 {
				t.Fatalf("pushes counted %v, want one of each outcome", counts)
			}
			// The failures were logged, never the credential.
			if logs := logsOf(); !strings.Contains(logs, "Shared Signals") || strings.Contains(logs, "receiver-secret") {
				t.Fatal("the logs lack the push failures or show the push credential")
			}
		})
	}
}

// pollStream POSTs a poll and returns the status and JSON answer.
func pollStream(t *testing.T, e *servertest.Env, streamID, bearer, body string) (int, map[string]any, http.Header) {
	t.Helper()
	authorization := ""
	if bearer != "" {
		authorization = "Bearer " + bearer
	}
	return pollStreamWith(t, e, streamID, authorization, "", body)
}

// pollStreamWith POSTs a poll with authorization as it is and a DPoP
// proof, each when not empty.
func pollStreamWith(t *testing.T, e *servertest.Env, streamID, authorization, dpopProof, body string) (int, map[string]any, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodPost, e.HTTPBase()+"/ssf/poll/"+streamID, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	if authorization != "" {
		req.Header.Set("Authorization", authorization)
	}
	if dpopProof != "" {
		req.Header.Set("DPoP", dpopProof)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var answer map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&answer); err != nil {
		t.Fatalf("poll answered %d with a body that is not JSON: %v", resp.StatusCode, err)
	}
	return resp.StatusCode, answer, resp.Header
}

func serviceToken(t *testing.T, e *servertest.Env, id string, scopes ...string) string {
	t.Helper()
	secret, err := e.Directory().CreateServiceAccount(t.Context(), id, storage.Grants{AllowedScopes: scopes, DefaultScopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	resp, code := servertest.Transports(e)["gRPC"].Token(t, servertest.ClientRequest(id, secret))
	servertest.WantCode(t, id+"'s token", code, codes.OK)
	return resp.GetAccessToken()
}

// A poll receiver gets the revocations as SETs it verifies, the same jti
// until it acknowledges them; every other caller is refused.
func TestSharedSignalsPoll(t *testing.T) {
	e := servertest.Start(t)
	risk := serviceToken(t, e, "risk", ssf.Scope)
	other := serviceToken(t, e, "other", ssf.Scope)
	noScope := serviceToken(t, e, "plain")
	callers := servertest.NewCallers(t, e, servertest.Transports(e)["gRPC"])
	ctx := t.Context()
	if _, err := e.Server.SecurityEvents().CreateStream(ctx, ssf.StreamSpec{ID: "risk", Delivery: "poll", Receiver: "risk", Audience: "risk-engine"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Server.SecurityEvents().CreateStream(ctx, ssf.StreamSpec{ID: "siem", Delivery: "push", EndpointURL: "https://siem.example/events", Audience: "siem"}); err != nil {
		t.Fatal(err)
	}
	if status, answer, _ := pollStream(t, e, "risk", risk, `{"returnImmediately":true}`); status != http.StatusOK || len(answer["sets"].(map[string]any)) != 0 {
		t.Fatalf("an empty stream: %d %v", status, answer)
	}
	if _, err := e.Store.RevokeRefreshFamily(ctx, "family-1", e.Clock.Now()); err != nil {
		t.Fatal(err)
	}
	// A long poll returns with the event.
	status, answer, _ := pollStream(t, e, "risk", risk, `{}`)
	sets, _ := answer["sets"].(map[string]any)
	if status != http.StatusOK || len(sets) != 1 {
		t.Fatalf("poll: %d %v", status, answer)
	}
	var jti string
	for id, set := range sets {
		jti = id
		claims := verifySET(t, e, set.(string))
		if claims["jti"] != jti || audienceOf(claims) != "risk-engine" {
			t.Fatalf("SET claims %v", claims)
		}
		if _, ok := claims["events"].(map[string]any)[ssf.EventSessionRevoked]; !ok {
			t.Fatalf("events %v", claims["events"])
		}
	}
	// Not acknowledged: the same jti again.
	if _, again, _ := pollStream(t, e, "risk", risk, `{"returnImmediately":true}`); again["sets"].(map[string]any)[jti] == nil {
		t.Fatalf("redelivery %v lacks %s", again, jti)
	}
	// Acknowledged: gone.
	if status, answer, _ := pollStream(t, e, "risk", risk, `{"returnImmediately":true,"ack":["`+jti+`"]}`); status != http.StatusOK || len(answer["sets"].(map[string]any)) != 0 {
		t.Fatalf("after the ack: %d %v", status, answer)
	}

	refusals := []struct {
		name, stream, bearer, body string
		status                     int
		err, text                  string
	}{
		{"no token", "risk", "", `{}`, http.StatusUnauthorized, "authentication_failed", ""},
		{"a bad token", "risk", "not-a-token", `{}`, http.StatusUnauthorized, "authentication_failed", ""},
		{"a user's token", "risk", callers.User, `{}`, http.StatusForbidden, "access_denied", "service account"},
		{"a service without the scope", "risk", noScope, `{}`, http.StatusForbidden, "access_denied", ssf.Scope},
		// Another receiver's stream, or a push stream, reads as none: a
		// receiver cannot tell which stream ids are taken.
		{"another service", "risk", other, `{}`, http.StatusNotFound, "not_found", "risk"},
		{"an unknown stream", "nobody", risk, `{}`, http.StatusNotFound, "not_found", "nobody"},
		{"a push stream", "siem", risk, `{}`, http.StatusNotFound, "not_found", "siem"},
		{"malformed JSON", "risk", risk, `{"ack":`, http.StatusBadRequest, "invalid_request", "poll request"},
		{"a JSON array", "risk", risk, `[]`, http.StatusBadRequest, "invalid_request", "poll request"},
		{"maxEvents not a number", "risk", risk, `{"maxEvents":"ten"}`, http.StatusBadRequest, "invalid_request", "poll request"},
		{"a jti of another stream", "risk", risk, `{"ack":["siem:1-0-1"]}`, http.StatusBadRequest, "invalid_request", "ack"},
		{"a body too large", "risk", risk, `{"ack":["` + strings.Repeat("x", 300<<10) + `"]}`, http.StatusBadRequest, "invalid_request", "larger"},
	}
	for _, tc := range refusals {
		t.Run(tc.name, func(t *testing.T) {
			status, answer, header := pollStream(t, e, tc.stream, tc.bearer, tc.body)
			description, _ := answer["description"].(string)
			if status != tc.status || answer["err"] != tc.err || !strings.Contains(description, tc.text) {
				t.Fatalf("poll: %d %v, want %d %s naming %q", status, answer, tc.status, tc.err, tc.text)
			}
			if status == http.StatusUnauthorized && !strings.HasPrefix(header.Get("WWW-Authenticate"), "Bearer") {
				t.Fatalf("WWW-Authenticate %q", header.Get("WWW-Authenticate"))
			}
		})
	}
}

// The transmitter's metadata (SSF 1.0 §7.1).
func TestSharedSignalsConfiguration(t *testing.T) {
	e := servertest.Start(t)
	status, body := servertest.Get(t, e.HTTPBase()+"/.well-known/ssf-configuration")
	var doc map[string]any
	if err := json.Unmarshal([]byte(body), &doc); err != nil || status != http.StatusOK {
		t.Fatalf("%d %s: %v", status, body, err)
	}
	methods, _ := doc["delivery_methods_supported"].([]any)
	schemes, _ := doc["authorization_schemes"].([]any)
	if doc["spec_version"] != "1_0" || doc["issuer"] != servertest.Issuer || doc["jwks_uri"] != servertest.Issuer+grpcapi.JWKSPath ||
		len(methods) != 2 || methods[0] != storage.DeliveryPush || methods[1] != storage.DeliveryPoll || len(schemes) != 1 ||
		schemes[0].(map[string]any)["spec_urn"] != "urn:ietf:rfc:6749" {
		t.Fatalf("configuration %v", doc)
	}
	if _, ok := doc["configuration_endpoint"]; ok {
		t.Fatal("a configuration_endpoint is advertised: streams are an admin's")
	}
}

// A DPoP-bound receiver token polls with a proof for the poll's URL; the
// token without its proof, or with a proof for another URL, is refused as
// at every endpoint.
func TestSharedSignalsPollChecksDPoP(t *testing.T) {
	e := servertest.Start(t)
	secret, err := e.Directory().CreateServiceAccount(t.Context(), "risk", storage.Grants{AllowedScopes: []string{ssf.Scope}, DefaultScopes: []string{ssf.Scope}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := e.Server.SecurityEvents().CreateStream(t.Context(), ssf.StreamSpec{ID: "risk", Delivery: "poll", Receiver: "risk", Audience: "risk-engine"}); err != nil {
		t.Fatal(err)
	}
	signer := newSigner(t)
	answer := oauthToken(t, e, url.Values{"grant_type": {"client_credentials"}, "client_id": {"risk"}, "client_secret": {secret}},
		mustProof(t, signer, http.MethodPost, servertest.Issuer+"/oauth2/token"))
	access, _ := answer.body["access_token"].(string)
	if answer.status != http.StatusOK || answer.body["token_type"] != "DPoP" {
		t.Fatalf("a DPoP-bound token: %d %v", answer.status, answer.body)
	}
	const body = `{"returnImmediately":true}`
	if status, got, _ := pollStreamWith(t, e, "risk", "DPoP "+access, proof(t, signer, http.MethodPost, "/ssf/poll/risk", access, ""), body); status != http.StatusOK {
		t.Fatalf("with its proof: %d %v", status, got)
	}
	for name, dpopProof := range map[string]string{
		"without a proof":          "",
		"with a proof for a GET":   proof(t, signer, http.MethodGet, "/ssf/poll/risk", access, ""),
		"with a proof for another": proof(t, signer, http.MethodPost, "/ssf/poll/other", access, ""),
		"with another key's proof": proof(t, newSigner(t), http.MethodPost, "/ssf/poll/risk", access, ""),
	} {
		t.Run(name, func(t *testing.T) {
			status, got, header := pollStreamWith(t, e, "risk", "DPoP "+access, dpopProof, body)
			if status != http.StatusUnauthorized || got["err"] != "authentication_failed" || !strings.HasPrefix(header.Get("WWW-Authenticate"), "DPoP ") {
				t.Fatalf("poll: %d %v %q", status, got, header.Get("WWW-Authenticate"))
			}
		})
	}
}
