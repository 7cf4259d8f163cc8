package oauth2http_test

import (
	"context"
	"fmt"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

const (
	tokenExchangeGrant = "urn:ietf:params:oauth:grant-type:token-exchange"
	accessTokenType    = "urn:ietf:params:oauth:token-type:access_token"
)

// exchangeSetup makes the service gateway, allowed to exchange for Chit's
// audience and ledger, and signs alice in through the portal client for a
// token addressed to gateway. It returns gateway's secret and that token.
func exchangeSetup(t *testing.T, e *servertest.Env) (string, string) {
	t.Helper()
	secret, err := e.Directory().AddServiceAccount(context.Background(), accounts.NewServiceAccount{Name: "gateway",
		TokenExchange: storage.TokenExchange{Audiences: []string{servertest.Audience, "ledger"}}})
	if err != nil {
		t.Fatal(err)
	}
	portal := e.CreateClient(t, "portal", []string{"https://portal.example/cb"}, true,
		storage.Grants{AllowedScopes: []string{"read", "write"}, AllowedAudiences: []string{"gateway"}})
	resp, body := postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"password"}, "username": {servertest.UserName},
		"password": {servertest.UserPassword}, "scope": {"read write"}, "resource": {"gateway"}}, "portal", portal)
	if resp.StatusCode != 200 {
		t.Fatalf("sign-in for gateway: %d %v", resp.StatusCode, body)
	}
	return secret, body["access_token"].(string)
}

// A service exchanges a token addressed to it over /oauth2/token (RFC
// 8693); the exchanged token's act names it in CheckToken and in
// introspection.
func TestTokenExchangeOverTheTokenEndpoint(t *testing.T) {
	onEachBackend(t, func(t *testing.T, e *servertest.Env) {
		secret, subject := exchangeSetup(t, e)
		for name, basic := range map[string]bool{"client_secret_basic": true, "client_secret_post": false} {
			t.Run(name, func(t *testing.T) {
				form := url.Values{"grant_type": {tokenExchangeGrant}, "subject_token": {subject}, "subject_token_type": {accessTokenType},
					"requested_token_type": {accessTokenType}, "audience": {servertest.Audience}, "scope": {"read"}}
				user, password := "gateway", secret
				if !basic {
					form.Set("client_id", "gateway")
					form.Set("client_secret", secret)
					user, password = "", ""
				}
				resp, body := postForm(t, e, "/oauth2/token", form, user, password)
				if resp.StatusCode != 200 || body["issued_token_type"] != accessTokenType || body["token_type"] != "Bearer" || body["scope"] != "read" ||
					body["refresh_token"] != nil || body["id_token"] != nil {
					t.Fatalf("exchange: %d %v", resp.StatusCode, body)
				}
				exchanged := body["access_token"].(string)
				ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+exchanged)
				checked, err := authv1.NewAuthServiceClient(e.Conn).CheckToken(ctx, &authv1.CheckTokenRequest{})
				if err != nil || checked.GetSubject() != servertest.UserName || checked.GetRole() != "USER" || checked.GetActor().GetSubject() != "service:gateway" ||
					checked.GetActor().GetActor() != nil {
					t.Fatalf("CheckToken = %v, %v", checked, err)
				}
				resp, introspected := postForm(t, e, "/oauth2/introspect", url.Values{"token": {exchanged}}, servertest.ServiceName, e.ServiceSecret)
				act, _ := introspected["act"].(map[string]any)
				if resp.StatusCode != 200 || introspected["active"] != true || act["sub"] != "service:gateway" || act["act"] != nil || introspected["client_id"] != "gateway" {
					t.Fatalf("introspection: %d %v", resp.StatusCode, introspected)
				}
				// resource names the audience too, alone or alike.
				form.Del("audience")
				form.Set("resource", "ledger")
				if resp, body := postForm(t, e, "/oauth2/token", form, user, password); resp.StatusCode != 200 {
					t.Fatalf("exchange for a resource: %d %v", resp.StatusCode, body)
				}
			})
		}
		// An ordinary token has no act.
		_, plain := postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, servertest.ServiceName, e.ServiceSecret)
		_, introspected := postForm(t, e, "/oauth2/introspect", url.Values{"token": {plain["access_token"].(string)}}, servertest.ServiceName, e.ServiceSecret)
		if _, ok := introspected["act"]; ok || introspected["active"] != true {
			t.Fatalf("a client-credentials token introspected as %v", introspected)
		}
	})
}

// The refusals of RFC 8693 §2.2.2, in the OAuth vocabulary.
func TestTokenExchangeRefusals(t *testing.T) {
	onEachBackend(t, func(t *testing.T, e *servertest.Env) {
		secret, subject := exchangeSetup(t, e)
		base := func(changes map[string]string) url.Values {
			form := url.Values{"grant_type": {tokenExchangeGrant}, "subject_token": {subject}, "subject_token_type": {accessTokenType}, "audience": {"ledger"}}
			for name, value := range changes {
				if value == "" {
					form.Del(name)
				} else {
					form.Set(name, value)
				}
			}
			return form
		}
		for _, tc := range []struct {
			name             string
			form             url.Values
			user, password   string
			status           int
			error, mentioned string
		}{
			// A JWT of another issuer is a workload's (federation), which
			// has no client to authenticate.
			{"a JWT from another issuer, with a client", base(map[string]string{"subject_token_type": "urn:ietf:params:oauth:token-type:jwt"}), "gateway", secret,
				400, "invalid_request", "a workload's subject token is the whole credential"},
			{"another subject token type", base(map[string]string{"subject_token_type": "urn:ietf:params:oauth:token-type:saml2"}), "gateway", secret, 400, "invalid_request", "subject_token_type"},
			{"no subject token type", base(map[string]string{"subject_token_type": ""}), "gateway", secret, 400, "invalid_request", "subject_token_type"},
			{"no subject token", base(map[string]string{"subject_token": ""}), "gateway", secret, 400, "invalid_request", "subject_token"},
			{"a refresh token requested", base(map[string]string{"requested_token_type": "urn:ietf:params:oauth:token-type:refresh_token"}), "gateway", secret, 400, "invalid_request", "requested_token_type"},
			{"an audience not allowed", base(map[string]string{"audience": "vault"}), "gateway", secret, 400, "invalid_target", "vault"},
			{"audience and resource apart", base(map[string]string{"resource": "chit"}), "gateway", secret, 400, "invalid_target", "resource"},
			{"a service not allowed to exchange", base(nil), servertest.ServiceName, e.ServiceSecret, 400, "unauthorized_client", "may not exchange"},
			{"a subject token for another service", base(map[string]string{"subject_token": plainToken(t, e)}), "gateway", secret, 400, "invalid_grant", "gateway"},
			{"a wider scope", base(map[string]string{"scope": "read write admin"}), "gateway", secret, 400, "invalid_scope", "admin"},
			{"a wrong secret", base(nil), "gateway", "chit_cs_madeup", 401, "invalid_client", ""},
			{"no client", base(nil), "", "", 401, "invalid_client", ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				resp, body := postForm(t, e, "/oauth2/token", tc.form, tc.user, tc.password)
				description, _ := body["error_description"].(string)
				if resp.StatusCode != tc.status || body["error"] != tc.error || !strings.Contains(description, tc.mentioned) {
					t.Fatalf("%d %v, want %d %s mentioning %q", resp.StatusCode, body, tc.status, tc.error, tc.mentioned)
				}
			})
		}
	})
}

func plainToken(t *testing.T, e *servertest.Env) string {
	t.Helper()
	_, body := postForm(t, e, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}, "resource": {servertest.ServiceAudience}}, servertest.ServiceName, e.ServiceSecret)
	return body["access_token"].(string)
}

// A parameter sent twice is a bad request (RFC 6749 §3.2), never one of the
// two chosen: not the subject token, its type (which picks the grant's
// entry), the audience, the actor token or the scope, with a client or, for
// a workload's JWT, without.
func TestTokenExchangeRepeatedParameters(t *testing.T) {
	e := servertest.Start(t)
	secret, subject := exchangeSetup(t, e)
	for _, jwt := range []bool{false, true} {
		base := url.Values{"grant_type": {tokenExchangeGrant}, "subject_token": {subject}, "subject_token_type": {accessTokenType},
			"actor_token": {subject}, "actor_token_type": {accessTokenType}, "requested_token_type": {accessTokenType},
			"audience": {"ledger"}, "scope": {"read"}}
		user, password := "gateway", secret
		if jwt {
			base.Set("subject_token", "a.b.c")
			base.Set("subject_token_type", "urn:ietf:params:oauth:token-type:jwt")
			base.Del("actor_token")
			base.Del("actor_token_type")
			user, password = "", ""
		}
		for name := range base {
			t.Run(fmt.Sprintf("jwt=%v/%s", jwt, name), func(t *testing.T) {
				form := url.Values{}
				for key, values := range base {
					form[key] = append([]string(nil), values...)
				}
				second := "urn:ietf:params:oauth:token-type:jwt"
				if name == "subject_token_type" && jwt {
					second = accessTokenType
				}
				form.Add(name, second)
				resp, body := postForm(t, e, "/oauth2/token", form, user, password)
				description, _ := body["error_description"].(string)
				if resp.StatusCode != 400 || body["error"] != "invalid_request" || !strings.Contains(description, "more than once") {
					t.Fatalf("%d %v, want 400 invalid_request: appears more than once", resp.StatusCode, body)
				}
			})
		}
	}
}

// Deleting the client a person signed in through refuses the tokens a
// service exchanged from theirs, in introspection and CheckToken, as it
// refuses the person's own.
func TestDeletingTheSubjectsClientEndsTheExchangedToken(t *testing.T) {
	onEachBackend(t, func(t *testing.T, e *servertest.Env) {
		secret, subject := exchangeSetup(t, e)
		resp, body := postForm(t, e, "/oauth2/token", url.Values{"grant_type": {tokenExchangeGrant}, "subject_token": {subject},
			"subject_token_type": {accessTokenType}, "audience": {servertest.Audience}}, "gateway", secret)
		if resp.StatusCode != 200 {
			t.Fatalf("exchange: %d %v", resp.StatusCode, body)
		}
		exchanged := body["access_token"].(string)
		e.Clock.Advance(time.Second)
		if err := e.Directory().DeleteClient(context.Background(), "portal"); err != nil {
			t.Fatal(err)
		}
		_, introspected := postForm(t, e, "/oauth2/introspect", url.Values{"token": {exchanged}}, servertest.ServiceName, e.ServiceSecret)
		if introspected["active"] != false {
			t.Fatalf("a token exchanged through a deleted client introspected as %v", introspected)
		}
		ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+exchanged)
		if _, err := authv1.NewAuthServiceClient(e.Conn).CheckToken(ctx, &authv1.CheckTokenRequest{}); status.Code(err) != codes.Unauthenticated {
			t.Fatalf("CheckToken of a token exchanged through a deleted client: %v", err)
		}
	})
}
