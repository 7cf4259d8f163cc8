package server_test

import (
	"bytes"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"google.golang.org/grpc/codes"
	"google.golang.org/protobuf/proto"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/server/servertest"
)

// callers holds one access token per kind of caller.
type callers struct{ user, service, orchestrator string }

func newCallers(t *testing.T, e *env, tr transport) callers {
	t.Helper()
	user, code := tr.token(t, passwordRequest(servertest.UserName, servertest.UserPassword))
	wantCode(t, "user token", code, codes.OK)
	service, code := tr.token(t, clientRequest(servertest.ServiceName, e.ServiceSecret))
	wantCode(t, "service token", code, codes.OK)
	orchestrator, code := tr.token(t, clientRequest(servertest.OrchestratorName, e.OrchestratorSecret))
	wantCode(t, "orchestrator token", code, codes.OK)
	return callers{user.GetAccessToken(), service.GetAccessToken(), orchestrator.GetAccessToken()}
}

func register(t *testing.T, tr transport, bearer string, ids ...string) []string {
	t.Helper()
	req := &authv1.AuthProvidersRegisterRequest{}
	for _, id := range ids {
		req.Items = append(req.Items, &authv1.AuthProvidersRegisterRequestItem{Id: id})
	}
	resp := &authv1.AuthProvidersRegisterResponse{}
	wantCode(t, "register", tr.invoke(t, authv1.AuthProviders_Register_FullMethodName, bearer, req, resp), codes.OK)
	var claimTokens []string
	for _, item := range resp.GetResponses() {
		claimTokens = append(claimTokens, item.GetClaimToken())
	}
	if len(claimTokens) != len(ids) {
		t.Fatalf("register answered %d items for %d", len(claimTokens), len(ids))
	}
	return claimTokens
}

func claim(t *testing.T, tr transport, bearer string, claimTokens ...string) ([]*authv1.PublicKeyAndRefreshToken, codes.Code) {
	t.Helper()
	req := &authv1.AuthProvidersClaimRequest{}
	for _, token := range claimTokens {
		req.Items = append(req.Items, &authv1.AuthProvidersRegisterResponseItem{ClaimToken: token})
	}
	resp := &authv1.AuthProvidersClaimResponse{}
	code := tr.invoke(t, authv1.AuthProviders_Claim_FullMethodName, bearer, req, resp)
	return resp.GetResponses(), code
}

func providerRefresh(t *testing.T, tr transport, refreshTokens ...string) ([]string, codes.Code) {
	t.Helper()
	req := &authv1.AuthProvidersRefreshRequest{}
	for _, token := range refreshTokens {
		req.Items = append(req.Items, &authv1.RefreshToken{RefreshToken: token})
	}
	resp := &authv1.AuthProvidersRefreshResponse{}
	code := tr.invoke(t, authv1.AuthProviders_Refresh_FullMethodName, "", req, resp)
	var tokens []string
	for _, item := range resp.GetResponses() {
		tokens = append(tokens, item.GetAccessToken())
	}
	return tokens, code
}

func retrievePublicKey(t *testing.T, tr transport, bearer, id string) string {
	t.Helper()
	resp := &authv1.AuthProvidersRetrievePublicKeyResponse{}
	wantCode(t, "retrievePublicKey", tr.invoke(t, authv1.AuthProviders_RetrievePublicKey_FullMethodName, bearer, &authv1.FindByStringId{Id: id}, resp), codes.OK)
	return resp.GetPublicKey()
}

// verifyWithPublicKey checks a token the way a provider or service would:
// with nothing but the base64 SPKI DER from retrievePublicKey.
func verifyWithPublicKey(t *testing.T, token, publicKeyBase64 string) jwt.Token {
	t.Helper()
	der, err := base64.StdEncoding.DecodeString(publicKeyBase64)
	if err != nil {
		t.Fatalf("public key is not base64: %v", err)
	}
	parsed, err := x509.ParsePKIXPublicKey(der)
	if err != nil {
		t.Fatalf("public key is not SPKI DER: %v", err)
	}
	rsaKey, ok := parsed.(*rsa.PublicKey)
	if !ok || rsaKey.N.BitLen() != 2048 {
		t.Fatalf("public key is %T, want RSA 2048", parsed)
	}
	msg, err := jws.Parse([]byte(token))
	if err != nil {
		t.Fatal(err)
	}
	if alg := msg.Signatures()[0].ProtectedHeaders().Algorithm(); alg != jwa.RS256 {
		t.Fatalf("alg %s, want RS256", alg)
	}
	verified, err := jwt.ParseString(token, jwt.WithKey(jwa.RS256, rsaKey), jwt.WithValidate(true), jwt.WithIssuer(servertest.Issuer))
	if err != nil {
		t.Fatalf("token does not verify with the public key: %v", err)
	}
	return verified
}

func claimString(t *testing.T, token jwt.Token, name string) string {
	t.Helper()
	value, _ := token.Get(name)
	text, _ := value.(string)
	return text
}

func TestProviderLifecycle(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, tr transport) {
		who := newCallers(t, e, tr)
		id := "hippo-" + transportName(tr)
		claimToken := register(t, tr, who.service, id)[0]
		if raw, err := base64.RawURLEncoding.DecodeString(claimToken); err != nil || len(raw) != 64 {
			t.Fatalf("claim token %q is not 64 random bytes", claimToken)
		}

		first, code := claim(t, tr, who.service, claimToken)
		wantCode(t, "claim", code, codes.OK)
		again, code := claim(t, tr, who.service, claimToken)
		wantCode(t, "claim retry", code, codes.OK)
		if !proto.Equal(first[0], again[0]) {
			t.Fatalf("claim retry answered %v, first answer was %v", again[0], first[0])
		}
		if first[0].GetProviderId() != id || first[0].GetPublicKey() == "" || first[0].GetRefreshToken() == "" {
			t.Fatalf("claim = %v", first[0])
		}

		accessTokens, code := providerRefresh(t, tr, first[0].GetRefreshToken())
		wantCode(t, "refresh", code, codes.OK)
		publicKey := retrievePublicKey(t, tr, who.service, id)
		if publicKey != first[0].GetPublicKey() {
			t.Fatal("retrievePublicKey differs from the claimed public key")
		}
		token := verifyWithPublicKey(t, accessTokens[0], publicKey)
		if token.Subject() != "#P_"+id || claimString(t, token, "role") != "PROVIDER" || claimString(t, token, "principalType") != "provider" ||
			token.Expiration().Sub(token.IssuedAt()).Minutes() != 15 || len(token.Audience()) == 0 {
			t.Fatalf("provider token claims: sub=%q role=%q principalType=%q", token.Subject(), claimString(t, token, "role"), claimString(t, token, "principalType"))
		}
		// CheckToken accepts provider tokens too.
		check := &authv1.CheckTokenResponse{}
		wantCode(t, "CheckToken of a provider token", tr.invoke(t, authv1.AuthService_CheckToken_FullMethodName, accessTokens[0], &authv1.CheckTokenRequest{}, check), codes.OK)
		if check.GetSubject() != "#P_"+id || check.GetRole() != "PROVIDER" {
			t.Fatalf("CheckToken = %v", check)
		}

		renewed := &authv1.AuthProvidersRenewResponse{}
		wantCode(t, "renew", tr.invoke(t, authv1.AuthProviders_Renew_FullMethodName, who.service,
			&authv1.AuthProvidersRenewRequest{Items: []*authv1.FindByStringId{{Id: id}}}, renewed), codes.OK)
		newCredentials := renewed.GetResponses()[0]
		if newCredentials.GetPublicKey() == publicKey || newCredentials.GetRefreshToken() == first[0].GetRefreshToken() {
			t.Fatal("renew did not replace the key pair and refresh token")
		}
		_, code = providerRefresh(t, tr, first[0].GetRefreshToken())
		wantCode(t, "refresh with the old refresh token", code, codes.Unauthenticated)
		accessTokens, code = providerRefresh(t, tr, newCredentials.GetRefreshToken())
		wantCode(t, "refresh with the new refresh token", code, codes.OK)
		newPublicKey := retrievePublicKey(t, tr, who.service, id)
		verifyWithPublicKey(t, accessTokens[0], newPublicKey)
		_, code = claim(t, tr, who.service, claimToken)
		wantCode(t, "claim after renew", code, codes.NotFound)

		orchestrated := &authv1.AuthProvidersRefreshAsOrchestratorResponse{}
		wantCode(t, "refreshAsOrchestrator", tr.invoke(t, authv1.AuthProviders_RefreshAsOrchestrator_FullMethodName, who.orchestrator,
			&authv1.AuthProvidersRefreshAsOrchestratorRequest{Items: []*authv1.AuthProvidersRefreshAsProviderRequestItem{{ProviderId: id}}}, orchestrated), codes.OK)
		token = verifyWithPublicKey(t, orchestrated.GetResponses()[0].GetAccessToken(), newPublicKey)
		if token.Subject() != "service:"+servertest.OrchestratorName || claimString(t, token, "role") != "SERVICE" || claimString(t, token, "principalType") != "service" {
			t.Fatalf("orchestrator token: sub=%q role=%q", token.Subject(), claimString(t, token, "role"))
		}

		generated := &authv1.AuthProvidersGenerateKeyPairResponse{}
		wantCode(t, "generateKeyPair", tr.invoke(t, authv1.AuthProviders_GenerateKeyPair_FullMethodName, who.service,
			&authv1.AuthProvidersGenerateKeyPairRequest{}, generated), codes.OK)
		privateDER, err := base64.StdEncoding.DecodeString(generated.GetPrivateKey())
		if err != nil {
			t.Fatal(err)
		}
		private, err := x509.ParsePKCS8PrivateKey(privateDER)
		if err != nil {
			t.Fatalf("private key is not PKCS#8: %v", err)
		}
		publicDER, _ := base64.StdEncoding.DecodeString(generated.GetPublicKey())
		public, err := x509.ParsePKIXPublicKey(publicDER)
		if err != nil || !private.(*rsa.PrivateKey).PublicKey.Equal(public) {
			t.Fatalf("generated public key does not match the private key: %v", err)
		}
	})
}

// A provider token does not authorize calls to Chit itself, even one signed
// for an orchestrator with role SERVICE.
func TestProviderSignedTokensDoNotAuthorizeChitCalls(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, tr transport) {
		who := newCallers(t, e, tr)
		id := "lender-" + transportName(tr)
		creds, code := claim(t, tr, who.service, register(t, tr, who.service, id)[0])
		wantCode(t, "claim", code, codes.OK)
		orchestrated := &authv1.AuthProvidersRefreshAsOrchestratorResponse{}
		wantCode(t, "refreshAsOrchestrator", tr.invoke(t, authv1.AuthProviders_RefreshAsOrchestrator_FullMethodName, who.orchestrator,
			&authv1.AuthProvidersRefreshAsOrchestratorRequest{Items: []*authv1.AuthProvidersRefreshAsProviderRequestItem{{ProviderId: id}}}, orchestrated), codes.OK)
		providerTokens, _ := providerRefresh(t, tr, creds[0].GetRefreshToken())
		for name, token := range map[string]string{"provider token": providerTokens[0], "orchestrator token": orchestrated.GetResponses()[0].GetAccessToken()} {
			t.Run(name, func(t *testing.T) {
				code := tr.invoke(t, authv1.AuthProviders_Register_FullMethodName, token,
					&authv1.AuthProvidersRegisterRequest{Items: []*authv1.AuthProvidersRegisterRequestItem{{Id: "sneaky"}}}, &authv1.AuthProvidersRegisterResponse{})
				wantCode(t, "register with a "+name, code, codes.Unauthenticated)
			})
		}
	})
}

func TestProviderAccessRules(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, tr transport) {
		who := newCallers(t, e, tr)
		for _, tc := range []struct {
			name       string
			fullMethod string
			req, resp  proto.Message
			public     bool
			orchestral bool
		}{
			{"register", authv1.AuthProviders_Register_FullMethodName, &authv1.AuthProvidersRegisterRequest{Items: []*authv1.AuthProvidersRegisterRequestItem{{Id: "x"}}}, &authv1.AuthProvidersRegisterResponse{}, false, false},
			{"claim", authv1.AuthProviders_Claim_FullMethodName, &authv1.AuthProvidersClaimRequest{Items: []*authv1.AuthProvidersRegisterResponseItem{{ClaimToken: "x"}}}, &authv1.AuthProvidersClaimResponse{}, false, false},
			{"renew", authv1.AuthProviders_Renew_FullMethodName, &authv1.AuthProvidersRenewRequest{Items: []*authv1.FindByStringId{{Id: "x"}}}, &authv1.AuthProvidersRenewResponse{}, false, false},
			{"retrievePublicKey", authv1.AuthProviders_RetrievePublicKey_FullMethodName, &authv1.FindByStringId{Id: "x"}, &authv1.AuthProvidersRetrievePublicKeyResponse{}, false, false},
			{"generateKeyPair", authv1.AuthProviders_GenerateKeyPair_FullMethodName, &authv1.AuthProvidersGenerateKeyPairRequest{}, &authv1.AuthProvidersGenerateKeyPairResponse{}, false, false},
			{"refreshAsOrchestrator", authv1.AuthProviders_RefreshAsOrchestrator_FullMethodName, &authv1.AuthProvidersRefreshAsOrchestratorRequest{Items: []*authv1.AuthProvidersRefreshAsProviderRequestItem{{ProviderId: "x"}}}, &authv1.AuthProvidersRefreshAsOrchestratorResponse{}, false, true},
			{"refresh", authv1.AuthProviders_Refresh_FullMethodName, &authv1.AuthProvidersRefreshRequest{Items: []*authv1.RefreshToken{{RefreshToken: "x"}}}, &authv1.AuthProvidersRefreshResponse{}, true, false},
		} {
			t.Run(tc.name, func(t *testing.T) {
				call := func(bearer string) codes.Code { return tr.invoke(t, tc.fullMethod, bearer, tc.req, tc.resp) }
				if tc.public {
					// Public: any bearer, even a broken one, is ignored; the
					// refusal is about the unknown refresh token itself.
					for _, bearer := range []struct{ name, token string }{
						{"no token", ""},
						{"invalid token", "not.a.jwt"},
						{"user token", who.user},
					} {
						t.Run(bearer.name, func(t *testing.T) {
							wantCode(t, "public call", tr.invoke(t, tc.fullMethod, bearer.token, tc.req, tc.resp), codes.Unauthenticated)
						})
					}
					return
				}
				wantCode(t, "no token", call(""), codes.Unauthenticated)
				wantCode(t, "invalid token", call("not.a.jwt"), codes.Unauthenticated)
				wantCode(t, "user token", call(who.user), codes.PermissionDenied)
				if tc.orchestral {
					wantCode(t, "non-orchestrator service", call(who.service), codes.PermissionDenied)
					return
				}
				if code := call(who.service); code == codes.PermissionDenied || code == codes.Unauthenticated {
					t.Fatalf("service refused with %v", code)
				}
			})
		}
	})
}

func TestProviderBulkRules(t *testing.T) {
	forEachTransport(t, func(t *testing.T, e *env, tr transport) {
		who := newCallers(t, e, tr)
		registerItems := func(ids ...string) *authv1.AuthProvidersRegisterRequest {
			req := &authv1.AuthProvidersRegisterRequest{}
			for _, id := range ids {
				req.Items = append(req.Items, &authv1.AuthProvidersRegisterRequestItem{Id: id})
			}
			return req
		}
		call := func(req *authv1.AuthProvidersRegisterRequest) codes.Code {
			return tr.invoke(t, authv1.AuthProviders_Register_FullMethodName, who.service, req, &authv1.AuthProvidersRegisterResponse{})
		}
		wantCode(t, "0 items", call(registerItems()), codes.InvalidArgument)
		many := make([]string, 1001)
		for i := range many {
			many[i] = fmt.Sprintf("p%d", i)
		}
		wantCode(t, "1001 items", call(registerItems(many...)), codes.InvalidArgument)

		prefix := transportName(tr)
		register(t, tr, who.service, prefix+"-taken")
		wantCode(t, "one taken id among new ones", call(registerItems(prefix+"-new1", prefix+"-taken", prefix+"-new2")), codes.AlreadyExists)
		// Nothing of the refused batch was applied: the new ids are still free.
		claimTokens := register(t, tr, who.service, prefix+"-new2", prefix+"-new1", prefix+"-new3")
		credentials, code := claim(t, tr, who.service, claimTokens[2], claimTokens[0], claimTokens[1])
		wantCode(t, "claim three", code, codes.OK)
		for i, want := range []string{prefix + "-new3", prefix + "-new2", prefix + "-new1"} {
			if credentials[i].GetProviderId() != want {
				t.Fatalf("response %d is for %s, want %s (responses follow the items' order)", i, credentials[i].GetProviderId(), want)
			}
		}
		_, code = claim(t, tr, who.service, claimTokens[0], "not-a-claim-token")
		wantCode(t, "claim with one unknown token", code, codes.NotFound)
	})
}

// The seed's curl example, over REST: the request body and answer field names
// exactly as UCloud documents them.
func TestSeedRefreshShapeOverREST(t *testing.T) {
	e := startServer(t)
	tr := transports(e)["REST"]
	who := newCallers(t, e, tr)
	creds, code := claim(t, tr, who.service, register(t, tr, who.service, "example")[0])
	wantCode(t, "claim", code, codes.OK)

	body := `{
    "items": [
        {
            "refreshToken": "` + creds[0].GetRefreshToken() + `"
        }
    ]
}`
	req, _ := http.NewRequest(http.MethodPost, e.HTTPBase()+"/auth/providers/refresh", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+who.user) // the example sends a token; it is ignored
	req.Header.Set("Content-Type", "content-type: application/json; charset=utf-8")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("HTTP %d: %s", resp.StatusCode, raw)
	}
	var answer map[string][]map[string]any
	if err := json.Unmarshal(raw, &answer); err != nil {
		t.Fatalf("answer %s: %v", raw, err)
	}
	if len(answer) != 1 || len(answer["responses"]) != 1 || len(answer["responses"][0]) != 1 {
		t.Fatalf("answer %s, want exactly {\"responses\":[{\"accessToken\":...}]}", raw)
	}
	token, ok := answer["responses"][0]["accessToken"].(string)
	if !ok || !bytes.HasPrefix([]byte(token), []byte("eyJ")) {
		t.Fatalf("accessToken %v is not a JWT", answer["responses"][0]["accessToken"])
	}
}

// transportName keeps ids of the two transports' runs apart on one server.
func transportName(tr transport) string {
	if _, ok := tr.(*grpcTransport); ok {
		return "grpc"
	}
	return "rest"
}
