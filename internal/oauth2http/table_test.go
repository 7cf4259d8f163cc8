package oauth2http_test

import (
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/chit-auth/chit/internal/grants"
	"github.com/chit-auth/chit/internal/oauth2http"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

// The answers of the grant table's refusals, byte for byte: which client
// authentication each grant accepts, and how a refusal is encoded (status,
// error, WWW-Authenticate when the client used Basic).
func TestTokenEndpointAnswersOfTheGrantTable(t *testing.T) {
	e := servertest.Start(t)
	e.CreateClient(t, "spa", []string{"https://spa.example/cb"}, false, storage.Grants{AllowedScopes: []string{"read"}})
	type basic struct{ user, password string }
	const failedClient = `{"error":"invalid_client","error_description":"client authentication failed"}`
	const realm = `Basic realm="chit"`
	for _, tc := range []struct {
		name   string
		form   url.Values
		basic  *basic
		status int
		www    string
		body   string
	}{
		{"no grant_type", url.Values{}, nil, 400, "", `{"error":"invalid_request","error_description":"grant_type is required"}`},
		{"an unknown grant_type", url.Values{"grant_type": {"implicit"}}, nil, 400, "",
			`{"error":"unsupported_grant_type","error_description":"grant_type must be one of password, refresh_token, client_credentials, authorization_code, urn:chit:params:oauth:grant-type:api-key, urn:ietf:params:oauth:grant-type:device_code, urn:ietf:params:oauth:grant-type:jwt-bearer, urn:ietf:params:oauth:grant-type:token-exchange"}`},
		{"an API key with a form client_id", url.Values{"grant_type": {string(grants.APIKey)}, "api_key": {"chit_ak_x"}, "client_id": {"spa"}}, nil, 400, "",
			`{"error":"invalid_request","error_description":"an API key is the whole credential: send no client authentication with it"}`},
		{"an API key with Basic", url.Values{"grant_type": {string(grants.APIKey)}, "api_key": {"chit_ak_x"}}, &basic{servertest.ServiceName, e.ServiceSecret}, 400, "",
			`{"error":"invalid_request","error_description":"an API key is the whole credential: send no client authentication with it"}`},
		{"an API key with an empty Basic", url.Values{"grant_type": {string(grants.APIKey)}, "api_key": {"chit_ak_x"}}, &basic{"", ""}, 400, "",
			`{"error":"invalid_grant","error_description":"invalid API key"}`},
		{"a made-up API key", url.Values{"grant_type": {string(grants.APIKey)}, "api_key": {"chit_ak_x"}}, nil, 400, "",
			`{"error":"invalid_grant","error_description":"invalid API key"}`},
		{"client credentials without a client", url.Values{"grant_type": {"client_credentials"}}, nil, 401, "", failedClient},
		{"client credentials with a client_id alone", url.Values{"grant_type": {"client_credentials"}, "client_id": {servertest.ServiceName}}, nil, 401, "", failedClient},
		{"client credentials with a wrong secret in the form", url.Values{"grant_type": {"client_credentials"}, "client_id": {servertest.ServiceName}, "client_secret": {"chit_cs_wrong"}}, nil, 401, "", failedClient},
		{"client credentials with a wrong secret in Basic", url.Values{"grant_type": {"client_credentials"}}, &basic{servertest.ServiceName, "chit_cs_wrong"}, 401, realm, failedClient},
		{"client credentials with an empty Basic", url.Values{"grant_type": {"client_credentials"}}, &basic{"", ""}, 401, realm, failedClient},
		{"client credentials of a registered client", url.Values{"grant_type": {"client_credentials"}, "client_id": {"spa"}}, nil, 401, "", failedClient},
		{"client credentials with a malformed scope and no client", url.Values{"grant_type": {"client_credentials"}, "scope": {`a"b`}}, nil, 400, "",
			`{"error":"invalid_request","error_description":"scope \"a\\\"b\" contains a character not allowed in a scope"}`},
		{"a refresh asking for a resource", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"chit_rt_x"}, "resource": {"inventory"}}, nil, 400, "",
			`{"error":"invalid_target","error_description":"a refresh keeps the login's audience; resource is not accepted"}`},
		{"a refresh by an unknown client", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {"chit_rt_x"}}, &basic{"nobody", "secret"}, 401, realm, failedClient},
		{"a refresh without its token", url.Values{"grant_type": {"refresh_token"}}, nil, 400, "",
			`{"error":"invalid_request","error_description":"refresh_token is required"}`},
		{"a public client sending a secret on the password grant", url.Values{"grant_type": {"password"}, "client_id": {"spa"}, "client_secret": {"chit_cs_x"}}, nil, 401, "", failedClient},
		{"a service account on the password grant", url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"wonderland"}}, &basic{servertest.ServiceName, e.ServiceSecret}, 400, "",
			`{"error":"unauthorized_client","error_description":"a service account signs in with client credentials only"}`},
		{"a code without its redirect_uri", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "client_id": {"chit-cli"}}, nil, 400, "",
			`{"error":"invalid_request","error_description":"code and redirect_uri are required"}`},
		{"Chit's own client sending a secret on a code", url.Values{"grant_type": {"authorization_code"}, "code": {"x"}, "redirect_uri": {"http://127.0.0.1/cb"}}, &basic{"chit-cli", "x"}, 401, realm, failedClient},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req, _ := http.NewRequest(http.MethodPost, e.HTTPBase()+oauth2http.TokenPath, strings.NewReader(tc.form.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if tc.basic != nil {
				req.SetBasicAuth(tc.basic.user, tc.basic.password)
			}
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			defer resp.Body.Close()
			body, _ := io.ReadAll(resp.Body)
			if got := strings.TrimSpace(string(body)); resp.StatusCode != tc.status || got != tc.body || resp.Header.Get("WWW-Authenticate") != tc.www {
				t.Errorf("%d %q %s\nwant %d %q %s", resp.StatusCode, resp.Header.Get("WWW-Authenticate"), got, tc.status, tc.www, tc.body)
			}
		})
	}
}
