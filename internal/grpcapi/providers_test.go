package grpcapi_test

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

func retrievePublicKey(t *testing.T, tr servertest.Transport, bearer, id string) string {
	t.Helper()
	resp := &authv1.AuthProvidersRetrievePublicKeyResponse{}
	servertest.WantCode(t, "retrievePublicKey", tr.Invoke(t, authv1.AuthProviders_RetrievePublicKey_FullMethodName, bearer, &authv1.FindByStringId{Id: id}, resp), codes.OK)
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
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		who := servertest.NewCallers(t, e, tr)
		id := "hippo-" + servertest.TransportName(tr)
		claimToken := servertest.Register(t, tr, who.Service, id)[0]
		if raw, err := base64.RawURLEncoding.DecodeString(claimToken); err != nil || len(raw) != 64 {
			t.Fatalf("claim token %q is not 64 random bytes", claimToken)
		}

		first, code := servertest.Claim(t, tr, who.Service, claimToken)
		servertest.WantCode(t, "claim", code, codes.OK)
		again, code := servertest.Claim(t, tr, who.Service, claimToken)
		servertest.WantCode(t, "claim retry", code, codes.OK)
		if !proto.Equal(first[0], again[0]) {
			t.Fatalf("claim retry answered %v, first answer was %v", again[0], first[0])
		}
		if first[0].GetProviderId() != id || first[0].GetPublicKey() == "" || first[0].GetRefreshToken() == "" {
			t.Fatalf("claim = %v", first[0])
		}

		accessTokens, code := servertest.ProviderRefresh(t, tr, first[0].GetRefreshToken())
		servertest.WantCode(t, "refresh", code, codes.OK)
		publicKey := retrievePublicKey(t, tr, who.Service, id)
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
		servertest.WantCode(t, "CheckToken of a provider token", tr.Invoke(t, authv1.AuthService_CheckToken_FullMethodName, accessTokens[0], &authv1.CheckTokenRequest{}, check), codes.OK)
		if check.GetSubject() != "#P_"+id || check.GetRole() != "PROVIDER" {
			t.Fatalf("CheckToken = %v", check)
		}

		renewed := &authv1.AuthProvidersRenewResponse{}
		servertest.WantCode(t, "renew", tr.Invoke(t, authv1.AuthProviders_Renew_FullMethodName, who.Service,
			&authv1.AuthProvidersRenewRequest{Items: []*authv1.FindByStringId{{Id: id}}}, renewed), codes.OK)
		newCredentials := renewed.GetResponses()[0]
		if newCredentials.GetPublicKey() == publicKey || newCredentials.GetRefreshToken() == first[0].GetRefreshToken() {
			t.Fatal("renew did not replace the key pair and refresh token")
		}
		_, code = servertest.ProviderRefresh(t, tr, first[0].GetRefreshToken())
		servertest.WantCode(t, "refresh with the old refresh token", code, codes.Unauthenticated)
		accessTokens, code = servertest.ProviderRefresh(t, tr, newCredentials.GetRefreshToken())
		servertest.WantCode(t, "refresh with the new refresh token", code, codes.OK)
		newPublicKey := retrievePublicKey(t, tr, who.Service, id)
		verifyWithPublicKey(t, accessTokens[0], newPublicKey)
		_, code = servertest.Claim(t, tr, who.Service, claimToken)
		servertest.WantCode(t, "claim after renew", code, codes.NotFound)

		orchestrated := &authv1.AuthProvidersRefreshAsOrchestratorResponse{}
		servertest.WantCode(t, "refreshAsOrchestrator", tr.Invoke(t, authv1.AuthProviders_RefreshAsOrchestrator_FullMethodName, who.Orchestrator,
			&authv1.AuthProvidersRefreshAsOrchestratorRequest{Items: []*authv1.AuthProvidersRefreshAsProviderRequestItem{{ProviderId: id}}}, orchestrated), codes.OK)
		token = verifyWithPublicKey(t, orchestrated.GetResponses()[0].GetAccessToken(), newPublicKey)
		if token.Subject() != "service:"+servertest.OrchestratorName || claimString(t, token, "role") != "SERVICE" || claimString(t, token, "principalType") != "service" {
			t.Fatalf("orchestrator token: sub=%q role=%q", token.Subject(), claimString(t, token, "role"))
		}

		generated := &authv1.AuthProvidersGenerateKeyPairResponse{}
		servertest.WantCode(t, "generateKeyPair", tr.Invoke(t, authv1.AuthProviders_GenerateKeyPair_FullMethodName, who.Service,
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
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		who := servertest.NewCallers(t, e, tr)
		id := "lender-" + servertest.TransportName(tr)
		creds, code := servertest.Claim(t, tr, who.Service, servertest.Register(t, tr, who.Service, id)[0])
		servertest.WantCode(t, "claim", code, codes.OK)
		orchestrated := &authv1.AuthProvidersRefreshAsOrchestratorResponse{}
		servertest.WantCode(t, "refreshAsOrchestrator", tr.Invoke(t, authv1.AuthProviders_RefreshAsOrchestrator_FullMethodName, who.Orchestrator,
			&authv1.AuthProvidersRefreshAsOrchestratorRequest{Items: []*authv1.AuthProvidersRefreshAsProviderRequestItem{{ProviderId: id}}}, orchestrated), codes.OK)
		providerTokens, _ := servertest.ProviderRefresh(t, tr, creds[0].GetRefreshToken())
		for name, token := range map[string]string{"provider token": providerTokens[0], "orchestrator token": orchestrated.GetResponses()[0].GetAccessToken()} {
			t.Run(name, func(t *testing.T) {
				code := tr.Invoke(t, authv1.AuthProviders_Register_FullMethodName, token,
					&authv1.AuthProvidersRegisterRequest{Items: []*authv1.AuthProvidersRegisterRequestItem{{Id: "sneaky"}}}, &authv1.AuthProvidersRegisterResponse{})
				servertest.WantCode(t, "register with a "+name, code, codes.Unauthenticated)
			})
		}
	})
}

func TestProviderAccessRules(t *testing.T) {
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		who := servertest.NewCallers(t, e, tr)
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
				call := func(bearer string) codes.Code { return tr.Invoke(t, tc.fullMethod, bearer, tc.req, tc.resp) }
				if tc.public {
					// Public: any bearer, even a broken one, is ignored; the
					// refusal is about the unknown refresh token itself.
					for _, bearer := range []struct{ name, token string }{
						{"no token", ""},
						{"invalid token", "not.a.jwt"},
						{"user token", who.User},
					} {
						t.Run(bearer.name, func(t *testing.T) {
							servertest.WantCode(t, "public call", tr.Invoke(t, tc.fullMethod, bearer.token, tc.req, tc.resp), codes.Unauthenticated)
						})
					}
					return
				}
				servertest.WantCode(t, "no token", call(""), codes.Unauthenticated)
				servertest.WantCode(t, "invalid token", call("not.a.jwt"), codes.Unauthenticated)
				servertest.WantCode(t, "user token", call(who.User), codes.PermissionDenied)
				if tc.orchestral {
					servertest.WantCode(t, "non-orchestrator service", call(who.Service), codes.PermissionDenied)
					return
				}
				if code := call(who.Service); code == codes.PermissionDenied || code == codes.Unauthenticated {
					t.Fatalf("service refused with %v", code)
				}
			})
		}
	})
}

func TestProviderBulkRules(t *testing.T) {
	t.Parallel()
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		who := servertest.NewCallers(t, e, tr)
		registerItems := func(ids ...string) *authv1.AuthProvidersRegisterRequest {
			req := &authv1.AuthProvidersRegisterRequest{}
			for _, id := range ids {
				req.Items = append(req.Items, &authv1.AuthProvidersRegisterRequestItem{Id: id})
			}
			return req
		}
		call := func(req *authv1.AuthProvidersRegisterRequest) codes.Code {
			return tr.Invoke(t, authv1.AuthProviders_Register_FullMethodName, who.Service, req, &authv1.AuthProvidersRegisterResponse{})
		}
		servertest.WantCode(t, "0 items", call(registerItems()), codes.InvalidArgument)
		many := make([]string, 1001)
		for i := range many {
			many[i] = fmt.Sprintf("p%d", i)
		}
		servertest.WantCode(t, "1001 items", call(registerItems(many...)), codes.InvalidArgument)

		prefix := servertest.TransportName(tr)
		servertest.Register(t, tr, who.Service, prefix+"-taken")
		servertest.WantCode(t, "one taken id among new ones", call(registerItems(prefix+"-new1", prefix+"-taken", prefix+"-new2")), codes.AlreadyExists)
		// Nothing of the refused batch was applied: the new ids are still free.
		claimTokens := servertest.Register(t, tr, who.Service, prefix+"-new2", prefix+"-new1", prefix+"-new3")
		credentials, code := servertest.Claim(t, tr, who.Service, claimTokens[2], claimTokens[0], claimTokens[1])
		servertest.WantCode(t, "claim three", code, codes.OK)
		for i, want := range []string{prefix + "-new3", prefix + "-new2", prefix + "-new1"} {
			if credentials[i].GetProviderId() != want {
				t.Fatalf("response %d is for %s, want %s (responses follow the items' order)", i, credentials[i].GetProviderId(), want)
			}
		}
		_, code = servertest.Claim(t, tr, who.Service, claimTokens[0], "not-a-claim-token")
		servertest.WantCode(t, "claim with one unknown token", code, codes.NotFound)
	})
}

// The seed's curl example, over REST: the request body and answer field names
// exactly as UCloud documents them.
func TestSeedRefreshShapeOverREST(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	tr := servertest.Transports(e)["REST"]
	who := servertest.NewCallers(t, e, tr)
	creds, code := servertest.Claim(t, tr, who.Service, servertest.Register(t, tr, who.Service, "example")[0])
	servertest.WantCode(t, "claim", code, codes.OK)

	body := `{
    "items": [
        {
            "refreshToken": "` + creds[0].GetRefreshToken() + `"
        }
    ]
}`
	req, _ := http.NewRequest(http.MethodPost, e.HTTPBase()+"/auth/providers/refresh", strings.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+who.User) // the example sends a token; it is ignored
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
