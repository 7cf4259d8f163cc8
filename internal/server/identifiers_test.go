package server_test

import (
	"context"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/tokens"
)

// Identifiers no principal can have (a NUL byte, bytes that are not UTF-8,
// more than the documented length) are bad requests naming the field at
// every entry point, on every store: PostgreSQL cannot even look such a
// value up, and used to answer 500. Nothing is written for them, no ERROR is
// logged, and no answer hands a long value back.
func TestOddIdentifiersAreBadRequestsOnEveryStore(t *testing.T) {
	t.Parallel()
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) {
			e := servertest.StartOn(t, backend)
			ctx := context.Background()
			if err := e.Directory().SetUserRole(ctx, servertest.UserName, accounts.RoleAdmin); err != nil {
				t.Fatal(err)
			}
			e.Clock.Advance(time.Millisecond) // tokens from before the change are refused
			grpcTr := servertest.Transports(e)["gRPC"]
			admin, code := grpcTr.Token(t, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
			servertest.WantCode(t, "admin token", code, codes.OK)
			service, code := grpcTr.Token(t, servertest.ClientRequest(servertest.ServiceName, e.ServiceSecret))
			servertest.WantCode(t, "service token", code, codes.OK)
			long := strings.Repeat("a", 100_000)
			// A URL carries less: its request line counts against the
			// header bound (64 KiB), past which the HTTP server answers 431
			// before any field is read (TestHTTPHeadersAreBounded).
			longInURL := strings.Repeat("a", 32_000)

			for name, tr := range servertest.Transports(e) {
				t.Run(name, func(t *testing.T) {
					for _, tc := range []struct{ name, id string }{
						{"client id with a NUL", "a\x00b"},
						{"client id over 64 characters", strings.Repeat("c", 65)},
					} {
						t.Run(tc.name, func(t *testing.T) {
							_, code := tr.Token(t, servertest.ClientRequest(tc.id, "secret"))
							servertest.WantCode(t, "client credentials with client id "+strings.ToValidUTF8(tc.id[:3], "?"), code, codes.InvalidArgument)
						})
					}
					_, code := tr.Token(t, servertest.PasswordRequest(servertest.UserName, strings.Repeat("p", 1025)))
					servertest.WantCode(t, "a password over 1,024 characters", code, codes.InvalidArgument)
					_, code = tr.Refresh(t, strings.Repeat("r", 8193))
					servertest.WantCode(t, "a refresh token over 8 KiB", code, codes.InvalidArgument)
					for _, tc := range []struct{ name, id string }{
						{"provider id with a NUL", "hip\x00po"},
						{"provider id of 32,000 characters", longInURL},
					} {
						t.Run(tc.name, func(t *testing.T) {
							servertest.WantCode(t, "retrieveKey of an odd id", tr.Invoke(t, authv1.AuthProviders_RetrievePublicKey_FullMethodName, service.GetAccessToken(),
								&authv1.FindByStringId{Id: tc.id}, &authv1.AuthProvidersRetrievePublicKeyResponse{}), codes.InvalidArgument)
							servertest.WantCode(t, "renew of an odd id", tr.Invoke(t, authv1.AuthProviders_Renew_FullMethodName, service.GetAccessToken(),
								&authv1.AuthProvidersRenewRequest{Items: []*authv1.FindByStringId{{Id: tc.id}}}, &authv1.AuthProvidersRenewResponse{}), codes.InvalidArgument)
						})
					}
					_, code = servertest.Claim(t, tr, service.GetAccessToken(), strings.Repeat("t", 8193))
					servertest.WantCode(t, "claim with a claim token over 8 KiB", code, codes.InvalidArgument)
					for _, tc := range []struct{ name, subject string }{
						{"revoking a subject of 100,000 characters", long},
						{"revoking a subject with a NUL", "gh\x00ost"},
						{"revoking a service subject over the length", "service:" + strings.Repeat("s", 300)},
						{"revoking a provider prefix alone", "#P_"},
					} {
						t.Run(tc.name, func(t *testing.T) {
							servertest.WantCode(t, "an admin revoking an odd subject", tr.Invoke(t, authv1.AuthService_Revoke_FullMethodName, admin.GetAccessToken(),
								&authv1.RevokeRequest{Subject: tc.subject}, &authv1.RevokeResponse{}), codes.InvalidArgument)
						})
					}
					_, code = servertest.GetAuthorizeURL(t, tr, &authv1.GetAuthorizeUrlRequest{ClientId: "pu\x00b", State: "s", RedirectUri: "http://127.0.0.1:9/cb"})
					servertest.WantCode(t, "authorize URL for an odd client id", code, codes.InvalidArgument)
					// State and nonce are counted in characters, not bytes.
					accepted := servertest.AuthorizeRequest(servertest.NewVerifier(t), "openid")
					accepted.State = strings.Repeat("é", 300)
					_, code = servertest.GetAuthorizeURL(t, tr, accepted)
					servertest.WantCode(t, "a state of 300 two-byte characters", code, codes.OK)
				})
			}

			// The OAuth endpoints and the sign-in page, with what forms and
			// URLs can carry and JSON cannot: bytes that are not UTF-8. A
			// client credentials grant answers as any failed client
			// authentication does (RFC 6749 §5.2).
			const badRequest, badClient = "400 invalid_request", "401 invalid_client"
			for _, tc := range []struct {
				name, path, form, basic, want string
			}{
				{"client credentials, NUL", "/oauth2/token", "grant_type=client_credentials&client_id=a%00b&client_secret=x", "", badClient},
				{"client credentials, not UTF-8", "/oauth2/token", "grant_type=client_credentials&client_id=%FF&client_secret=x", "", badClient},
				{"Basic, not UTF-8", "/oauth2/token", "grant_type=client_credentials", "%FF:%00", badClient},
				{"password grant, not UTF-8", "/oauth2/token", "grant_type=password&client_id=%FF&username=alice&password=x", "", badRequest},
				{"code grant, not UTF-8", "/oauth2/token", "grant_type=authorization_code&client_id=%FF&code=c&redirect_uri=x", "", badRequest},
				{"a code_verifier of 42 characters", "/oauth2/token", "grant_type=authorization_code&code=c&redirect_uri=http://127.0.0.1/cb&code_verifier=" + strings.Repeat("v", 42), "", badRequest},
				{"revoke, not UTF-8", "/oauth2/revoke", "token=x&client_id=%FF", "", badRequest},
			} {
				t.Run(tc.name, func(t *testing.T) {
					req, _ := http.NewRequest(http.MethodPost, e.HTTPBase()+tc.path, strings.NewReader(tc.form))
					req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					if tc.basic != "" {
						user, password, _ := strings.Cut(tc.basic, ":")
						u, _ := url.QueryUnescape(user)
						p, _ := url.QueryUnescape(password)
						req.SetBasicAuth(u, p)
					}
					status, body := servertest.Do(t, req)
					wantStatus, wantError, _ := strings.Cut(tc.want, " ")
					if strconv.Itoa(status) != wantStatus || !strings.Contains(body, `"`+wantError+`"`) {
						t.Errorf("%d %s, want %s", status, body, tc.want)
					}
				})
			}
			for _, tc := range []struct{ name, query string }{
				{"authorize, client id with a NUL", "response_type=code&client_id=a%00&state=s&redirect_uri=x"},
				{"authorize, client id not UTF-8", "response_type=code&client_id=%FF&state=s&redirect_uri=x"},
				{"authorize, a client id of 32,000 characters", "response_type=code&client_id=" + longInURL + "&state=s&redirect_uri=x"},
				{"authorize, a response_type of 32,000 characters", "response_type=" + longInURL + "&client_id=chit-cli&state=s&redirect_uri=x"},
			} {
				t.Run(tc.name, func(t *testing.T) {
					req, _ := http.NewRequest(http.MethodGet, e.HTTPBase()+"/oauth2/authorize?"+tc.query, nil)
					status, body := servertest.Do(t, req)
					if status != http.StatusBadRequest || len(body) > 8<<10 {
						t.Errorf("/oauth2/authorize?%.60s: %d with %d bytes, want a short 400", tc.query, status, len(body))
					}
				})
			}
			req, _ := http.NewRequest(http.MethodPost, e.HTTPBase()+"/oauth2/token", strings.NewReader("grant_type=password&username="+long))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			if status, body := servertest.Do(t, req); status != http.StatusRequestEntityTooLarge || !strings.Contains(body, "larger than 64 KiB") {
				t.Errorf("a 100 KB form: %d %s, want 413 naming the limit", status, body)
			}
			req, _ = http.NewRequest(http.MethodGet, e.HTTPBase()+"/v1/auth/authorize-url?client_id=chit-cli&state=s&redirect_uri=http://127.0.0.1:9/cb&code_challenge=x&code_challenge_method="+longInURL, nil)
			if status, body := servertest.Do(t, req); status != http.StatusBadRequest || len(body) > 1<<10 {
				t.Errorf("a 32 KB code_challenge_method: %d with %d bytes, want a short 400", status, len(body))
			}
			if strings.Contains(e.Logs.String(), `"level":"ERROR"`) {
				t.Fatalf("odd identifiers logged errors:\n%s", e.Logs.String())
			}
			// Nothing was recorded for them: the only revocations are none.
			if revocation, err := e.Store.GetRevocation(ctx, "", long, ""); err != nil || !revocation.SubjectRevokedAt.IsZero() {
				t.Fatalf("a refused subject was recorded: %+v, %v", revocation, err)
			}
		})
	}
}

// A token over the documented 8 KiB is refused naming the field wherever a
// token is revoked or introspected, on every store; one at the limit is
// an unknown token, which revocation accepts and introspection calls
// inactive (RFC 7009 §2.2, RFC 7662 §2.2).
func TestOverlongTokensToRevokeOrIntrospectAreBadRequests(t *testing.T) {
	t.Parallel()
	for _, backend := range servertest.Backends {
		t.Run(backend, func(t *testing.T) {
			e := servertest.StartOn(t, backend)
			atLimit, overLimit := strings.Repeat("r", tokens.MaxTokenLength), strings.Repeat("r", tokens.MaxTokenLength+1)
			const mention = "token is longer than 8192 bytes"

			auth := authv1.NewAuthServiceClient(e.Conn)
			if _, err := auth.Revoke(context.Background(), &authv1.RevokeRequest{Token: atLimit}); err != nil {
				t.Errorf("gRPC Revoke of a token at the limit: %v", err)
			}
			_, err := auth.Revoke(context.Background(), &authv1.RevokeRequest{Token: overLimit})
			if status.Code(err) != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), mention) {
				t.Errorf("gRPC Revoke of a token over the limit: %v", err)
			}

			lengths := []struct {
				name  string
				token string
				want  int
			}{
				{"at the limit", atLimit, http.StatusOK},
				{"over the limit", overLimit, http.StatusBadRequest},
			}
			for _, length := range lengths {
				t.Run("REST revoke, "+length.name, func(t *testing.T) {
					req, _ := http.NewRequest(http.MethodPost, e.HTTPBase()+"/v1/auth/revoke", strings.NewReader(`{"token":"`+length.token+`"}`))
					req.Header.Set("Content-Type", "application/json")
					if got, body := servertest.Do(t, req); got != length.want || (length.want != http.StatusOK && !strings.Contains(body, mention)) {
						t.Errorf("REST revoke of %d bytes: %d %.200s, want %d", len(length.token), got, body, length.want)
					}
				})
			}

			for _, tc := range []struct {
				name, path, basicUser, basicPassword, atLimitAnswer string
			}{
				{"OAuth revoke", "/oauth2/revoke", "", "", ""},
				{"OAuth introspect", "/oauth2/introspect", servertest.ServiceName, e.ServiceSecret, `{"active":false}`},
			} {
				for _, length := range lengths {
					t.Run(tc.name+", "+length.name, func(t *testing.T) {
						req, _ := http.NewRequest(http.MethodPost, e.HTTPBase()+tc.path, strings.NewReader(url.Values{"token": {length.token}}.Encode()))
						req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
						if tc.basicUser != "" {
							req.SetBasicAuth(tc.basicUser, tc.basicPassword)
						}
						got, body := servertest.Do(t, req)
						switch {
						case got != length.want:
						case length.want == http.StatusOK && strings.TrimSpace(body) == tc.atLimitAnswer:
							return
						case length.want != http.StatusOK && strings.Contains(body, `"invalid_request"`) && strings.Contains(body, mention):
							return
						}
						t.Errorf("%s of %d bytes: %d %.200s, want %d", tc.path, len(length.token), got, body, length.want)
					})
				}
			}
		})
	}
}
