package grpcapi_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

const accessTokenType = "urn:ietf:params:oauth:token-type:access_token"

func exchangeRequest(id, secret, subject, audience string) *authv1.TokenRequest {
	return &authv1.TokenRequest{Audience: audience, Credential: &authv1.TokenRequest_TokenExchangeCredential{TokenExchangeCredential: &authv1.TokenExchangeCredential{
		ClientId: id, ClientSecret: secret, SubjectToken: subject, SubjectTokenType: accessTokenType}}}
}

// An admin allows a service to exchange (SetServiceAccountTokenExchange);
// the service then exchanges over Token's token_exchange_credential, on
// gRPC and REST, and CheckToken shows the chain of actors. Narrowing the
// policy refuses what it exchanged and the exchanges it no longer allows.
func TestTokenExchangeOverGRPCAndREST(t *testing.T) {
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		ctx := context.Background()
		c := servertest.NewAdminCallers(t, e, tr)
		created := &adminv1.CreateServiceAccountResponse{}
		servertest.WantCode(t, "CreateServiceAccount", tr.Invoke(t, adminv1.AdminService_CreateServiceAccount_FullMethodName, c.Admin,
			&adminv1.CreateServiceAccountRequest{ClientId: "gateway", TokenExchangeAudiences: []string{"orders"}}, created), codes.OK)
		if got := created.GetServiceAccount().GetTokenExchangeAudiences(); len(got) != 1 || got[0] != "orders" {
			t.Fatalf("created %v", created.GetServiceAccount())
		}
		secret := created.GetClientSecret()
		// orders may exchange in turn, for Chit's own audience.
		ordersSecret, err := e.Directory().CreateServiceAccount(ctx, "orders", storage.Grants{})
		if err != nil {
			t.Fatal(err)
		}
		policy := &adminv1.SetServiceAccountTokenExchangeResponse{}
		servertest.WantCode(t, "SetServiceAccountTokenExchange", tr.Invoke(t, adminv1.AdminService_SetServiceAccountTokenExchange_FullMethodName, c.Admin,
			&adminv1.SetServiceAccountTokenExchangeRequest{ClientId: "orders", TokenExchangeAudiences: []string{servertest.Audience}}, policy), codes.OK)
		if got := policy.GetServiceAccount(); len(got.GetTokenExchangeAudiences()) != 1 || got.GetTokenExchangeImpersonation() {
			t.Fatalf("policy %v", got)
		}
		servertest.WantCode(t, "impersonation without audiences", tr.Invoke(t, adminv1.AdminService_SetServiceAccountTokenExchange_FullMethodName, c.Admin,
			&adminv1.SetServiceAccountTokenExchangeRequest{ClientId: "orders", TokenExchangeImpersonation: true}, &adminv1.SetServiceAccountTokenExchangeResponse{}), codes.InvalidArgument)
		servertest.WantCode(t, "a USER setting a policy", tr.Invoke(t, adminv1.AdminService_SetServiceAccountTokenExchange_FullMethodName, c.User,
			&adminv1.SetServiceAccountTokenExchangeRequest{ClientId: "orders"}, &adminv1.SetServiceAccountTokenExchangeResponse{}), codes.PermissionDenied)

		portal := e.CreateClient(t, "portal", []string{"https://portal.example/cb"}, true,
			storage.Grants{AllowedScopes: []string{"read"}, AllowedAudiences: []string{"gateway"}})
		subject := passwordTokenFor(t, e, "portal", portal, "gateway")

		first, code := tr.Token(t, exchangeRequest("gateway", secret, subject, "orders"))
		if code != codes.OK || first.GetIssuedTokenType() != accessTokenType || first.GetRefreshToken() != "" {
			t.Fatalf("exchange: %v %v", code, first)
		}
		second, code := tr.Token(t, exchangeRequest("orders", ordersSecret, first.GetAccessToken(), ""))
		if code != codes.OK {
			t.Fatalf("second exchange: %v", code)
		}
		checked, code := tr.Check(t, second.GetAccessToken())
		if code != codes.OK || checked.GetSubject() != servertest.UserName || checked.GetActor().GetSubject() != "service:orders" ||
			checked.GetActor().GetActor().GetSubject() != "service:gateway" || checked.GetActor().GetActor().GetActor() != nil {
			t.Fatalf("CheckToken = %v, %v", checked, code)
		}
		for _, refused := range []struct {
			name string
			req  *authv1.TokenRequest
			want codes.Code
		}{
			{"not allowed the audience", exchangeRequest("gateway", secret, subject, "vault"), codes.InvalidArgument},
			{"a wrong secret", exchangeRequest("gateway", "chit_cs_madeup", subject, "orders"), codes.Unauthenticated},
			{"a service not allowed to exchange", exchangeRequest(servertest.ServiceName, e.ServiceSecret, subject, "orders"), codes.PermissionDenied},
			{"a token for another service", exchangeRequest("orders", ordersSecret, subject, ""), codes.Unauthenticated},
		} {
			if _, code := tr.Token(t, refused.req); code != refused.want {
				t.Errorf("%s: %v, want %v", refused.name, code, refused.want)
			}
		}
		// Narrowing orders' policy refuses what it exchanged.
		e.Clock.Advance(1e9)
		servertest.WantCode(t, "narrow", tr.Invoke(t, adminv1.AdminService_SetServiceAccountTokenExchange_FullMethodName, c.Admin,
			&adminv1.SetServiceAccountTokenExchangeRequest{ClientId: "orders"}, &adminv1.SetServiceAccountTokenExchangeResponse{}), codes.OK)
		if _, code := tr.Check(t, second.GetAccessToken()); code != codes.Unauthenticated {
			t.Fatalf("CheckToken after the policy narrowed: %v", code)
		}
	})
}

// passwordTokenFor signs alice in through a registered client for audience,
// on /oauth2/token: the AuthService signs people in through Chit's own
// client, which no audience is allowed.
func passwordTokenFor(t *testing.T, e *servertest.Env, clientID, secret, audience string) string {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {servertest.UserName}, "password": {servertest.UserPassword}, "resource": {audience}}
	req, _ := http.NewRequest(http.MethodPost, e.HTTPBase()+"/oauth2/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(clientID, secret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var body struct {
		AccessToken string `json:"access_token"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&body); err != nil || body.AccessToken == "" {
		t.Fatalf("sign-in for %s: %d %v", audience, resp.StatusCode, err)
	}
	return body.AccessToken
}
