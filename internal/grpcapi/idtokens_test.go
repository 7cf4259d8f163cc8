package grpcapi_test

import (
	"context"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"google.golang.org/grpc/codes"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/server/servertest"
)

// idTokenClaims are the claims go-oidc's IDToken does not decode itself.
type idTokenClaims struct {
	AuthorizedParty string  `json:"azp"`
	AuthTime        *int64  `json:"auth_time"`
	Nonce           *string `json:"nonce"`
	AccessTokenHash string  `json:"at_hash"`
}

// verifyIDToken verifies raw as go-oidc does for clientID, and that its
// at_hash is accessToken's.
func verifyIDToken(t *testing.T, e *servertest.Env, raw, clientID, accessToken string) (*oidc.IDToken, idTokenClaims) {
	t.Helper()
	ctx := context.Background()
	verifier := oidc.NewVerifier(servertest.Issuer, oidc.NewRemoteKeySet(ctx, e.HTTPBase()+"/.well-known/jwks.json"),
		&oidc.Config{ClientID: clientID, Now: e.Clock.Now, SupportedSigningAlgs: []string{oidc.ES256}})
	idToken, err := verifier.Verify(ctx, raw)
	if err != nil {
		t.Fatalf("go-oidc refuses the ID token: %v", err)
	}
	var claims idTokenClaims
	if err := idToken.Claims(&claims); err != nil {
		t.Fatal(err)
	}
	if err := idToken.VerifyAccessToken(accessToken); err != nil {
		t.Fatalf("at_hash %q does not match the access token: %v", claims.AccessTokenHash, err)
	}
	if idToken.Subject != servertest.UserName || claims.AuthorizedParty != clientID {
		t.Fatalf("ID token sub %q azp %q, want %s and %s", idToken.Subject, claims.AuthorizedParty, servertest.UserName, clientID)
	}
	return idToken, claims
}

// A password sign-in granted openid answers an ID token for chit-api, and
// so does every refresh of it (OIDC Core §12.2): the same subject, iat
// the refresh's, no nonce, the new access token's at_hash. A login
// without openid, or a refresh that narrows openid away, gets none.
func TestIDTokensOnPasswordAndRefresh(t *testing.T) {
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		signedInAt := e.Clock.Now()
		grant, c := tr.Token(t, servertest.WithScope(servertest.PasswordRequest(servertest.UserName, servertest.UserPassword), "openid read"))
		servertest.WantCode(t, "Token with openid", c, codes.OK)
		if grant.GetIdToken() == "" {
			t.Fatalf("a password sign-in granted %q answered no ID token", grant.GetScope())
		}
		_, claims := verifyIDToken(t, e, grant.GetIdToken(), accounts.APIClientID, grant.GetAccessToken())
		if claims.AuthTime == nil || *claims.AuthTime != signedInAt.Unix() || claims.Nonce != nil {
			t.Fatalf("sign-in ID token auth_time %v nonce %v, want %d and none", claims.AuthTime, claims.Nonce, signedInAt.Unix())
		}

		e.Clock.Advance(time.Minute)
		refreshed, c := tr.Refresh(t, grant.GetRefreshToken())
		servertest.WantCode(t, "RefreshToken", c, codes.OK)
		if refreshed.GetIdToken() == "" {
			t.Fatal("the refresh of a login granted openid answered no ID token")
		}
		idToken, claims := verifyIDToken(t, e, refreshed.GetIdToken(), accounts.APIClientID, refreshed.GetAccessToken())
		if !idToken.IssuedAt.Equal(e.Clock.Now().Truncate(time.Second)) || claims.Nonce != nil || claims.AuthTime != nil {
			t.Fatalf("refresh ID token iat %v nonce %v auth_time %v, want iat %v, no nonce, no auth_time", idToken.IssuedAt, claims.Nonce, claims.AuthTime, e.Clock.Now())
		}
		// go-oidc notices an at_hash that is not the access token's.
		if err := idToken.VerifyAccessToken(grant.GetAccessToken()); err == nil {
			t.Fatal("the refresh ID token's at_hash matches the earlier access token")
		}

		// Narrowed to read, the new access token has no openid: no ID token.
		narrowed := &authv1.TokenResponse{}
		c = tr.Invoke(t, authv1.AuthService_RefreshToken_FullMethodName, "", &authv1.RefreshTokenRequest{RefreshToken: refreshed.GetRefreshToken(), Scope: "read"}, narrowed)
		servertest.WantCode(t, "RefreshToken narrowed to read", c, codes.OK)
		if narrowed.GetScope() != "read" || narrowed.GetIdToken() != "" {
			t.Fatalf("a refresh narrowed to read: scope %q, ID token %q, want none", narrowed.GetScope(), narrowed.GetIdToken())
		}

		// Without openid: no ID token, on the sign-in or its refresh.
		plain, c := tr.Token(t, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
		servertest.WantCode(t, "Token without openid", c, codes.OK)
		if plain.GetIdToken() != "" {
			t.Fatalf("a sign-in granted %q answered an ID token", plain.GetScope())
		}
		plainRefreshed, c := tr.Refresh(t, plain.GetRefreshToken())
		servertest.WantCode(t, "RefreshToken without openid", c, codes.OK)
		if plainRefreshed.GetIdToken() != "" {
			t.Fatal("the refresh of a login without openid answered an ID token")
		}

		// A service's client credentials never carry one.
		service, c := tr.Token(t, servertest.ClientRequest(servertest.ServiceName, e.ServiceSecret))
		servertest.WantCode(t, "Token with client credentials", c, codes.OK)
		if service.GetIdToken() != "" {
			t.Fatal("client credentials answered an ID token")
		}
	})
}

// The CLI's login and RefreshCli: the ID token of a refresh is for
// chit-cli, with the new access token's at_hash; a login without openid
// gets none on refresh.
func TestRefreshCliAnswersAnIDToken(t *testing.T) {
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		verifier := servertest.NewVerifier(t)
		login, c := servertest.LoginCli(t, tr, servertest.CodeFor(t, e, tr, verifier, "openid offline_access"), servertest.Loopback, verifier)
		servertest.WantCode(t, "LoginCli", c, codes.OK)
		_, claims := verifyIDToken(t, e, login.GetIdToken(), accounts.CLIClientID, login.GetAccessToken())
		if claims.Nonce == nil || *claims.Nonce != "nonce-456" || claims.AuthTime == nil {
			t.Fatalf("the code's ID token: nonce %v auth_time %v", claims.Nonce, claims.AuthTime)
		}

		e.Clock.Advance(time.Minute)
		refreshed, c := servertest.RefreshCli(t, tr, login.GetRefreshToken())
		servertest.WantCode(t, "RefreshCli", c, codes.OK)
		if refreshed.GetIdToken() == "" {
			t.Fatal("RefreshCli of a login granted openid answered no ID token")
		}
		idToken, claims := verifyIDToken(t, e, refreshed.GetIdToken(), accounts.CLIClientID, refreshed.GetAccessToken())
		if claims.Nonce != nil || claims.AuthTime != nil || !idToken.IssuedAt.Equal(e.Clock.Now().Truncate(time.Second)) {
			t.Fatalf("RefreshCli's ID token: nonce %v auth_time %v iat %v", claims.Nonce, claims.AuthTime, idToken.IssuedAt)
		}

		verifier = servertest.NewVerifier(t)
		plain, c := servertest.LoginCli(t, tr, servertest.CodeFor(t, e, tr, verifier, "offline_access"), servertest.Loopback, verifier)
		servertest.WantCode(t, "LoginCli without openid", c, codes.OK)
		if plain.IdToken != nil {
			t.Fatal("a login without openid answered an ID token")
		}
		plainRefreshed, c := servertest.RefreshCli(t, tr, plain.GetRefreshToken())
		servertest.WantCode(t, "RefreshCli without openid", c, codes.OK)
		if plainRefreshed.IdToken != nil {
			t.Fatal("RefreshCli of a login without openid answered an ID token")
		}
	})
}
