package server_test

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/federation/federationtest"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

const federatedAudience = "https://chit.example"

func federatedRequest(assertion string) *authv1.TokenRequest {
	return &authv1.TokenRequest{Credential: &authv1.TokenRequest_FederatedCredential{FederatedCredential: &authv1.FederatedCredential{Assertion: assertion}}}
}

func withIssuer(issuer *federationtest.Issuer) func(*server.Config) {
	return func(cfg *server.Config) { cfg.FederationHTTPClient = issuer.Client() }
}

// An admin trusts a GitHub Actions repository (keys over discovery) and a
// Kubernetes service account (keys inline) for the test service, through
// the Admin API; their tokens are exchanged over gRPC and REST for the
// service's access token with its grants, and refused ones say why.
func TestFederatedCredentialOverEachTransport(t *testing.T) {
	t.Parallel()
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) {
			for _, name := range servertest.TransportNames {
				t.Run(name, func(t *testing.T) {
					gha := federationtest.NewIssuer(t, federationtest.GitHubIssuer)
					k8s := federationtest.NewIssuer(t, federationtest.KubernetesIssuer)
					e := servertest.StartOn(t, backend, withIssuer(gha))
					tr := servertest.Transports(e)[name]
					admin := servertest.NewAdminCallers(t, e, tr).Admin
					for _, rule := range []*adminv1.FederationRule{
						{Name: "gha", Issuer: federationtest.GitHubIssuer, Audience: federatedAudience, ServiceAccount: servertest.ServiceName,
							Claims: map[string]string{"repository_id": "123456", "ref": "refs/heads/*"}},
						{Name: "k8s", Issuer: federationtest.KubernetesIssuer, Audience: federatedAudience, ServiceAccount: servertest.ServiceName,
							Claims: map[string]string{"sub": "system:serviceaccount:prod:billing"}, Jwks: k8s.PublicJWKS(t)},
					} {
						code := tr.Invoke(t, adminv1.AdminService_CreateFederationRule_FullMethodName, admin,
							&adminv1.CreateFederationRuleRequest{Rule: rule}, &adminv1.CreateFederationRuleResponse{})
						servertest.WantCode(t, "create rule "+rule.GetName(), code, codes.OK)
					}
					// A rule any repository would match is refused, saying why.
					code := tr.Invoke(t, adminv1.AdminService_CreateFederationRule_FullMethodName, admin,
						&adminv1.CreateFederationRuleRequest{Rule: &adminv1.FederationRule{Name: "any", Issuer: federationtest.GitHubIssuer,
							Audience: federatedAudience, ServiceAccount: servertest.ServiceName, Claims: map[string]string{"ref": "refs/heads/main"}}},
						&adminv1.CreateFederationRuleResponse{})
					servertest.WantCode(t, "an unpinned rule", code, codes.InvalidArgument)
					listed := &adminv1.ListFederationRulesResponse{}
					code = tr.Invoke(t, adminv1.AdminService_ListFederationRules_FullMethodName, admin, &adminv1.ListFederationRulesRequest{}, listed)
					if servertest.WantCode(t, "list", code, codes.OK); len(listed.GetRules()) != 2 || listed.GetRules()[0].GetMaxAssertionLifetime().AsDuration() != time.Hour {
						t.Fatalf("rules %v", listed.GetRules())
					}

					now := e.Clock.Now()
					for what, assertion := range map[string]string{
						"GitHub Actions": gha.Sign(t, "", federationtest.GitHub("acme", "shop", "123456", "987", "refs/heads/main", federatedAudience, now)),
						"Kubernetes":     k8s.Sign(t, "", federationtest.Kubernetes(federationtest.KubernetesIssuer, "prod", "billing", federatedAudience, now)),
					} {
						issued, code := tr.Token(t, servertest.WithScope(federatedRequest(assertion), "inventory:write"))
						servertest.WantCode(t, what, code, codes.OK)
						if issued.GetRefreshToken() != "" || issued.GetScope() != "inventory:write" || issued.GetExpiresIn() > 300 && what == "GitHub Actions" {
							t.Fatalf("%s: %+v", what, issued)
						}
						checked, code := tr.Check(t, issued.GetAccessToken())
						servertest.WantCode(t, what+" check", code, codes.OK)
						if checked.GetSubject() != "service:"+servertest.ServiceName {
							t.Fatalf("%s: subject %q", what, checked.GetSubject())
						}
					}
					// The service's audience policy holds.
					_, code = tr.Token(t, servertest.WithAudience(federatedRequest(
						k8s.Sign(t, "", federationtest.Kubernetes(federationtest.KubernetesIssuer, "prod", "billing", federatedAudience, now))), "payroll"))
					if code == codes.OK {
						t.Fatal("an audience the service may not ask for was granted")
					}
					// Another branch, another namespace: refused.
					for what, assertion := range map[string]string{
						"a tag":             gha.Sign(t, "", federationtest.GitHub("acme", "shop", "123456", "987", "refs/tags/v1", federatedAudience, now)),
						"another namespace": k8s.Sign(t, "", federationtest.Kubernetes(federationtest.KubernetesIssuer, "dev", "billing", federatedAudience, now)),
					} {
						_, code := tr.Token(t, federatedRequest(assertion))
						servertest.WantCode(t, what, code, codes.Unauthenticated)
					}
					_, code = tr.Token(t, federatedRequest("not-a-jwt"))
					servertest.WantCode(t, "a malformed assertion", code, codes.InvalidArgument)
					// Deleted, the rule stops at once on this replica.
					code = tr.Invoke(t, adminv1.AdminService_DeleteFederationRule_FullMethodName, admin, &adminv1.DeleteFederationRuleRequest{Name: "k8s"}, &adminv1.DeleteFederationRuleResponse{})
					servertest.WantCode(t, "delete", code, codes.OK)
					_, code = tr.Token(t, federatedRequest(k8s.Sign(t, "", federationtest.Kubernetes(federationtest.KubernetesIssuer, "prod", "billing", federatedAudience, now))))
					servertest.WantCode(t, "after deletion", code, codes.Unauthenticated)
					if logs := e.Logs.String(); strings.Contains(logs, "eyJ") {
						t.Fatal("a log line holds a JWT")
					}
				})
			}
		})
	}
}

func postToken(t *testing.T, e *servertest.Env, form url.Values) (int, map[string]any) {
	t.Helper()
	resp, err := http.PostForm(e.HTTPBase()+"/oauth2/token", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body map[string]any
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body
}

// RFC 7523 on /oauth2/token: an accepted assertion answers an access
// token without a refresh token; a refused one invalid_grant, a malformed
// one invalid_request, an issuer whose keys cannot be fetched invalid_grant
// (never a 5xx); a client authentication beside it is refused.
func TestJWTBearerOnTheTokenEndpoint(t *testing.T) {
	t.Parallel()
	gha := federationtest.NewIssuer(t, federationtest.GitHubIssuer)
	e := servertest.Start(t, withIssuer(gha))
	bearer := servertest.NewAdminCallers(t, e, servertest.Transports(e)["gRPC"]).Admin
	admin := adminv1.NewAdminServiceClient(e.Conn)
	if _, err := admin.CreateFederationRule(servertest.WithBearer(bearer), &adminv1.CreateFederationRuleRequest{Rule: &adminv1.FederationRule{Name: "gha",
		Issuer: federationtest.GitHubIssuer, Audience: federatedAudience, ServiceAccount: servertest.ServiceName,
		Claims: map[string]string{"repository_owner_id": "987"}, SingleUse: true}}); err != nil {
		t.Fatal(err)
	}
	now := e.Clock.Now()
	assertion := gha.Sign(t, "", federationtest.GitHub("acme", "shop", "123456", "987", "refs/heads/main", federatedAudience, now))
	grant := url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:jwt-bearer"}, "assertion": {assertion}}
	status, body := postToken(t, e, grant)
	if status != http.StatusOK || body["access_token"] == nil || body["refresh_token"] != nil || body["expires_in"].(float64) > 300 {
		t.Fatalf("%d %v", status, body)
	}
	// Single use: the replay is refused.
	if status, body := postToken(t, e, grant); status != http.StatusBadRequest || body["error"] != "invalid_grant" ||
		!strings.Contains(body["error_description"].(string), "exchanged already") {
		t.Fatalf("a replay: %d %v", status, body)
	}
	// The clean-up keeps its record while it could be presented.
	e.Server.DeleteExpired(t.Context())
	if err := e.Store.RecordAssertion(t.Context(), federationtest.GitHubIssuer, jtiOf(t, assertion), now.Add(time.Hour)); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("the record of an unexpired assertion went: %v", err)
	}
	for what, tc := range map[string]struct {
		form        url.Values
		status      int
		error, text string
	}{
		"malformed": {url.Values{"grant_type": grant["grant_type"], "assertion": {"x.y"}}, http.StatusBadRequest, "invalid_request", "malformed"},
		"missing":   {url.Values{"grant_type": grant["grant_type"]}, http.StatusBadRequest, "invalid_request", "assertion is required"},
		"with a client": {url.Values{"grant_type": grant["grant_type"], "assertion": {assertion}, "client_id": {servertest.ServiceName}, "client_secret": {e.ServiceSecret}},
			http.StatusBadRequest, "invalid_request", "whole credential"},
		"wrong owner": {url.Values{"grant_type": grant["grant_type"], "assertion": {gha.Sign(t, "",
			federationtest.GitHub("evil", "shop", "123456", "666", "refs/heads/main", federatedAudience, now))}}, http.StatusBadRequest, "invalid_grant", "repository_owner_id"},
	} {
		status, body := postToken(t, e, tc.form)
		if status != tc.status || body["error"] != tc.error || !strings.Contains(body["error_description"].(string), tc.text) {
			t.Errorf("%s: %d %v; want %d %s saying %q", what, status, body, tc.status, tc.error, tc.text)
		}
	}
	// The issuer's keys become unreachable for a new issuer's rule: its
	// assertions get invalid_grant, not a server error.
	down := federationtest.NewIssuer(t, "")
	down.SetHandlers(func(w http.ResponseWriter, _ *http.Request) { http.Error(w, "down", http.StatusBadGateway) }, nil)
	if _, err := admin.CreateFederationRule(servertest.WithBearer(bearer), &adminv1.CreateFederationRuleRequest{Rule: &adminv1.FederationRule{Name: "down",
		Issuer: down.URL, Audience: federatedAudience, ServiceAccount: servertest.ServiceName, Claims: map[string]string{"sub": "w"}}}); err != nil {
		t.Fatal(err)
	}
	e.Clock.Advance(11 * time.Second) // the server rereads the rules made elsewhere
	status, body = postToken(t, e, url.Values{"grant_type": grant["grant_type"], "assertion": {down.Sign(t, "",
		map[string]any{"iss": down.URL, "sub": "w", "aud": federatedAudience, "iat": now.Unix(), "exp": now.Add(time.Minute).Unix()})}})
	if status != http.StatusBadRequest || body["error"] != "invalid_grant" || !strings.Contains(body["error_description"].(string), "keys are unavailable") {
		t.Fatalf("keys unavailable: %d %v", status, body)
	}
	// Discovery advertises the grant.
	resp, err := http.Get(e.HTTPBase() + "/.well-known/openid-configuration")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var discovery struct {
		GrantTypes []string `json:"grant_types_supported"`
	}
	_ = json.NewDecoder(resp.Body).Decode(&discovery)
	if !strings.Contains(strings.Join(discovery.GrantTypes, " "), "urn:ietf:params:oauth:grant-type:jwt-bearer") {
		t.Fatalf("grant_types_supported = %v", discovery.GrantTypes)
	}
	var exchanged, refused int
	for _, text := range strings.Split(e.Logs.String(), "\n") {
		var line map[string]any
		if json.Unmarshal([]byte(text), &line) != nil || line["audit"] != true {
			continue
		}
		switch line["event"] {
		case "federation_exchange":
			exchanged++
		case "federation_refused":
			refused++
		}
	}
	if exchanged != 1 || refused < 5 {
		t.Fatalf("%d exchange and %d refusal audit lines", exchanged, refused)
	}
	if strings.Contains(e.Logs.String(), assertion[strings.LastIndex(assertion, ".")+1:]) {
		t.Fatal("the assertion is in the logs")
	}
	// Once it has expired, the clean-up forgets it.
	e.Clock.Advance(10 * time.Minute)
	e.Server.DeleteExpired(t.Context())
	if err := e.Store.RecordAssertion(t.Context(), federationtest.GitHubIssuer, jtiOf(t, assertion), now.Add(time.Hour)); err != nil {
		t.Fatalf("the record of an expired assertion was kept: %v", err)
	}
}

func jtiOf(t *testing.T, assertion string) string {
	t.Helper()
	payload, err := base64.RawURLEncoding.DecodeString(strings.Split(assertion, ".")[1])
	if err != nil {
		t.Fatal(err)
	}
	var claims struct {
		JTI string `json:"jti"`
	}
	if err := json.Unmarshal(payload, &claims); err != nil || claims.JTI == "" {
		t.Fatalf("no jti: %v", err)
	}
	return claims.JTI
}

// A single-use assertion exchanged on one replica is refused on the other
// (PostgreSQL); a rule made through one replica is followed by the other.
func TestSingleUseAssertionAcrossReplicas(t *testing.T) {
	t.Parallel()
	gha := federationtest.NewIssuer(t, federationtest.GitHubIssuer)
	first := servertest.StartOn(t, servertest.Postgres, withIssuer(gha))
	second := first.StartReplica(t, withIssuer(gha))
	admin := servertest.NewAdminCallers(t, first, servertest.Transports(first)["gRPC"]).Admin
	code := servertest.Transports(first)["gRPC"].Invoke(t, adminv1.AdminService_CreateFederationRule_FullMethodName, admin,
		&adminv1.CreateFederationRuleRequest{Rule: &adminv1.FederationRule{Name: "gha", Issuer: federationtest.GitHubIssuer, Audience: federatedAudience,
			ServiceAccount: servertest.ServiceName, Claims: map[string]string{"repository_id": "123456"}, SingleUse: true}},
		&adminv1.CreateFederationRuleResponse{})
	servertest.WantCode(t, "create", code, codes.OK)
	assertion := gha.Sign(t, "", federationtest.GitHub("acme", "shop", "123456", "987", "refs/heads/main", federatedAudience, first.Clock.Now()))
	_, code = servertest.Transports(second)["REST"].Token(t, federatedRequest(assertion))
	servertest.WantCode(t, "the first exchange, on the second replica", code, codes.OK)
	_, code = servertest.Transports(first)["gRPC"].Token(t, federatedRequest(assertion))
	servertest.WantCode(t, "the replay on the first replica", code, codes.Unauthenticated)
}

// RFC 8693 with a workload's platform token as the subject
// (subject_token_type ...:jwt): the jwt-bearer grant's rules and checks,
// answered as a token exchange (issued_token_type), with no client; a
// client beside it, a replay of a single-use assertion and another
// requested_token_type are refused. The same over gRPC and REST.
func TestTokenExchangeOfAWorkloadToken(t *testing.T) {
	t.Parallel()
	gha := federationtest.NewIssuer(t, federationtest.GitHubIssuer)
	e := servertest.Start(t, withIssuer(gha))
	bearer := servertest.NewAdminCallers(t, e, servertest.Transports(e)["gRPC"]).Admin
	admin := adminv1.NewAdminServiceClient(e.Conn)
	if _, err := admin.CreateFederationRule(servertest.WithBearer(bearer), &adminv1.CreateFederationRuleRequest{Rule: &adminv1.FederationRule{Name: "gha",
		Issuer: federationtest.GitHubIssuer, Audience: federatedAudience, ServiceAccount: servertest.ServiceName,
		Claims: map[string]string{"repository_owner_id": "987"}, SingleUse: true}}); err != nil {
		t.Fatal(err)
	}
	now := e.Clock.Now()
	sign := func(owner string) string {
		return gha.Sign(t, "", federationtest.GitHub("acme", "shop", "123456", owner, "refs/heads/main", federatedAudience, now))
	}
	exchange := func(subject string) url.Values {
		return url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {subject},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:jwt"}, "scope": {"inventory:write"}}
	}
	assertion := sign("987")
	status, body := postToken(t, e, exchange(assertion))
	if status != http.StatusOK || body["access_token"] == nil || body["refresh_token"] != nil ||
		body["issued_token_type"] != "urn:ietf:params:oauth:token-type:access_token" || body["scope"] != "inventory:write" {
		t.Fatalf("%d %v", status, body)
	}
	checked, code := servertest.Transports(e)["gRPC"].Check(t, body["access_token"].(string))
	if servertest.WantCode(t, "check", code, codes.OK); checked.GetSubject() != "service:"+servertest.ServiceName {
		t.Fatalf("subject %q", checked.GetSubject())
	}
	withClient := exchange(sign("987"))
	withClient.Set("client_id", servertest.ServiceName)
	withClient.Set("client_secret", e.ServiceSecret)
	withActor := exchange(sign("987"))
	withActor.Set("actor_token", sign("987"))
	withActor.Set("actor_token_type", "urn:ietf:params:oauth:token-type:jwt")
	otherType := exchange(sign("987"))
	otherType.Set("requested_token_type", "urn:ietf:params:oauth:token-type:refresh_token")
	for what, tc := range map[string]struct {
		form        url.Values
		error, text string
	}{
		"a replay":                  {exchange(assertion), "invalid_grant", "exchanged already"},
		"another owner":             {exchange(sign("666")), "invalid_grant", "repository_owner_id"},
		"a client beside it":        {withClient, "invalid_request", "whole credential"},
		"a refresh token asked for": {otherType, "invalid_request", "requested_token_type"},
		"an actor token":            {withActor, "invalid_request", "actor_token"},
		"not a JWT":                 {exchange("opaque"), "invalid_request", "malformed"},
		"an unknown subject token type": {url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:token-exchange"}, "subject_token": {sign("987")},
			"subject_token_type": {"urn:ietf:params:oauth:token-type:saml2"}, "client_id": {servertest.ServiceName}, "client_secret": {e.ServiceSecret}},
			"invalid_request", "subject_token_type"},
	} {
		status, body := postToken(t, e, tc.form)
		if status != http.StatusBadRequest || body["error"] != tc.error || !strings.Contains(body["error_description"].(string), tc.text) {
			t.Errorf("%s: %d %v; want 400 %s saying %q", what, status, body, tc.error, tc.text)
		}
	}
	// Over gRPC and REST: token_exchange_credential without a client.
	for name, tr := range servertest.Transports(e) {
		issued, code := tr.Token(t, &authv1.TokenRequest{Credential: &authv1.TokenRequest_TokenExchangeCredential{TokenExchangeCredential: &authv1.TokenExchangeCredential{
			SubjectToken: sign("987"), SubjectTokenType: "urn:ietf:params:oauth:token-type:jwt"}}})
		if servertest.WantCode(t, name, code, codes.OK); issued.GetIssuedTokenType() != "urn:ietf:params:oauth:token-type:access_token" || issued.GetRefreshToken() != "" {
			t.Fatalf("%s: %+v", name, issued)
		}
		_, code = tr.Token(t, &authv1.TokenRequest{Credential: &authv1.TokenRequest_TokenExchangeCredential{TokenExchangeCredential: &authv1.TokenExchangeCredential{
			SubjectToken: sign("666"), SubjectTokenType: "urn:ietf:params:oauth:token-type:jwt"}}})
		servertest.WantCode(t, name+", another owner", code, codes.Unauthenticated)
	}
}

// A workload's platform token lives minutes: the access token it is
// exchanged for cannot make the service account an API key (90 days by
// default), over gRPC and REST, whereas the service's own client
// credentials can.
func TestFederatedTokenCannotMakeAnAPIKey(t *testing.T) {
	t.Parallel()
	for _, name := range servertest.TransportNames {
		t.Run(name, func(t *testing.T) {
			k8s := federationtest.NewIssuer(t, federationtest.KubernetesIssuer)
			e := servertest.Start(t)
			tr := servertest.Transports(e)[name]
			admin := servertest.NewAdminCallers(t, e, tr).Admin
			code := tr.Invoke(t, adminv1.AdminService_CreateFederationRule_FullMethodName, admin,
				&adminv1.CreateFederationRuleRequest{Rule: &adminv1.FederationRule{Name: "k8s", Issuer: federationtest.KubernetesIssuer, Audience: federatedAudience,
					ServiceAccount: servertest.ServiceName, Claims: map[string]string{"sub": "system:serviceaccount:prod:billing"}, Jwks: k8s.PublicJWKS(t)}},
				&adminv1.CreateFederationRuleResponse{})
			servertest.WantCode(t, "create rule", code, codes.OK)
			issued, code := tr.Token(t, federatedRequest(k8s.Sign(t, "", federationtest.Kubernetes(federationtest.KubernetesIssuer, "prod", "billing", federatedAudience, e.Clock.Now()))))
			servertest.WantCode(t, "exchange", code, codes.OK)
			code = tr.Invoke(t, authv1.AuthService_CreateApiKey_FullMethodName, issued.GetAccessToken(), &authv1.CreateApiKeyRequest{Name: "persist"}, &authv1.CreateApiKeyResponse{})
			servertest.WantCode(t, "CreateApiKey with a federated token", code, codes.PermissionDenied)
		})
	}
}
