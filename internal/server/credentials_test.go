package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/server/servertest"
)

// A request with two Authorization values is refused, whichever they are:
// the regression of the first Bearer winning (REST and gRPC metadata), so
// that which credential a layer reads could decide who the caller is.
func TestTwoCredentialsAreRefused(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	user, code := servertest.Transports(e)["gRPC"].Token(t, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
	servertest.WantCode(t, "user token", code, codes.OK)
	service, code := servertest.Transports(e)["gRPC"].Token(t, servertest.ClientRequest(servertest.ServiceName, e.ServiceSecret))
	servertest.WantCode(t, "service token", code, codes.OK)
	pairs := []struct {
		name string
		pair [2]string
	}{
		{"a user's and a service's", [2]string{"Bearer " + user.GetAccessToken(), "Bearer " + service.GetAccessToken()}},
		{"one token twice", [2]string{"Bearer " + user.GetAccessToken(), "Bearer " + user.GetAccessToken()}},
		{"a token and garbage", [2]string{"Bearer " + user.GetAccessToken(), "Bearer not-a-token"}},
	}

	t.Run("gRPC", func(t *testing.T) {
		auth := authv1.NewAuthServiceClient(e.Conn)
		for _, tc := range pairs {
			t.Run(tc.name, func(t *testing.T) {
				ctx := metadata.AppendToOutgoingContext(context.Background(), "authorization", tc.pair[0], "authorization", tc.pair[1])
				_, err := auth.CheckToken(ctx, &authv1.CheckTokenRequest{})
				if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), "authorization") {
					t.Errorf("CheckToken with two credentials: %v, want InvalidArgument naming authorization", err)
				}
				_, err = auth.ListApiKeys(ctx, &authv1.ListApiKeysRequest{})
				servertest.WantCode(t, "ListApiKeys with two credentials", status.Code(err), codes.InvalidArgument)
			})
		}
		// One is still fine.
		_, err := auth.CheckToken(servertest.WithBearer(user.GetAccessToken()), &authv1.CheckTokenRequest{})
		servertest.WantCode(t, "CheckToken with one credential", status.Code(err), codes.OK)
	})

	send := func(t *testing.T, method, path string, form url.Values, authorization []string) (int, map[string]any) {
		t.Helper()
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequest(method, e.HTTPBase()+path, body)
		if err != nil {
			t.Fatal(err)
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		for _, value := range authorization {
			req.Header.Add("Authorization", value)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		answer := map[string]any{}
		_ = json.NewDecoder(resp.Body).Decode(&answer)
		return resp.StatusCode, answer
	}

	t.Run("REST", func(t *testing.T) {
		for _, tc := range pairs {
			t.Run(tc.name, func(t *testing.T) {
				for _, path := range []string{"/v1/auth/check", "/v1/auth/api-keys"} {
					if status, answer := send(t, http.MethodGet, path, nil, tc.pair[:]); status != http.StatusBadRequest {
						t.Errorf("GET %s with two credentials: %d %v, want 400", path, status, answer)
					}
				}
			})
		}
		if status, answer := send(t, http.MethodGet, "/v1/auth/check", nil, []string{"Bearer " + user.GetAccessToken()}); status != http.StatusOK {
			t.Errorf("GET /v1/auth/check with one credential: %d %v", status, answer)
		}
	})

	t.Run("OAuth", func(t *testing.T) {
		basic := "Basic " + basicCredentials(servertest.ServiceName, e.ServiceSecret)
		for _, tc := range []struct {
			name          string
			method, path  string
			form          url.Values
			authorization []string
		}{
			{"token, Basic twice", http.MethodPost, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, []string{basic, basic}},
			{"token, Basic and Bearer", http.MethodPost, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, []string{basic, "Bearer " + user.GetAccessToken()}},
			{"introspect, Bearer and Basic", http.MethodPost, "/oauth2/introspect", url.Values{"token": {user.GetAccessToken()}}, []string{"Bearer " + service.GetAccessToken(), basic}},
			{"revoke, Basic twice", http.MethodPost, "/oauth2/revoke", url.Values{"token": {"x"}}, []string{basic, basic}},
			{"userinfo, Bearer twice", http.MethodGet, "/userinfo", nil, []string{"Bearer " + user.GetAccessToken(), "Bearer " + user.GetAccessToken()}},
		} {
			t.Run(tc.name, func(t *testing.T) {
				status, answer := send(t, tc.method, tc.path, tc.form, tc.authorization)
				if status != http.StatusBadRequest || answer["error"] != "invalid_request" {
					t.Errorf("%s %s with two Authorization headers: %d %v, want 400 invalid_request", tc.method, tc.path, status, answer)
				}
			})
		}
		if status, answer := send(t, http.MethodPost, "/oauth2/token", url.Values{"grant_type": {"client_credentials"}}, []string{basic}); status != http.StatusOK {
			t.Errorf("client credentials with one Authorization header: %d %v", status, answer)
		}
	})
}
