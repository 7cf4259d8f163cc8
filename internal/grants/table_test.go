package grants

import (
	"context"
	"errors"
	"slices"
	"testing"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/tokens"
)

// The table is the only place a grant's rules live: adding a grant, or
// changing which client authentications one accepts, what it reads or what
// it issues, changes this list.
func TestTheGrantTable(t *testing.T) {
	oauthClient := []ClientAuthentication{NoClient, PublicClientID, ClientSecretBasic, ClientSecretPost, FirstParty}
	want := []struct {
		grant           Type
		subjectType     string
		client          Clients
		authentications []ClientAuthentication
		reads           []Parameter
		issues          Issues
	}{
		{Password, "", OAuthClients, oauthClient, []Parameter{ParamUsername, ParamPassword, ParamScope, ParamResource}, Issues{Always, WithOpenID}},
		{RefreshToken, "", OAuthClients, oauthClient, []Parameter{ParamRefreshToken, ParamScope, ParamResource}, Issues{Always, WithOpenID}},
		{ClientCredentials, "", ServiceAccounts, []ClientAuthentication{ClientSecretBasic, ClientSecretPost}, []Parameter{ParamScope, ParamResource}, Issues{Never, Never}},
		{AuthorizationCode, "", OAuthClients, oauthClient, []Parameter{ParamCode, ParamRedirectURI, ParamCodeVerifier, ParamResource}, Issues{Always, WithOpenID}},
		{APIKey, "", NoClients, []ClientAuthentication{NoClient}, []Parameter{ParamAPIKey, ParamScope, ParamResource}, Issues{Never, Never}},
		{DeviceCode, "", OAuthClients, oauthClient, []Parameter{ParamDeviceCode, ParamResource}, Issues{Always, WithOpenID}},
		{JWTBearer, "", NoClients, []ClientAuthentication{NoClient}, []Parameter{ParamAssertion, ParamScope, ParamResource}, Issues{Never, Never}},
		{TokenExchange, "", ServiceAccounts, []ClientAuthentication{ClientSecretBasic, ClientSecretPost}, []Parameter{ParamSubjectToken, ParamSubjectTokenType,
			ParamActorToken, ParamActorTokenType, ParamRequestedTokenType, ParamAudience, ParamResource, ParamScope}, Issues{Never, Never}},
		{TokenExchange, "urn:ietf:params:oauth:token-type:jwt", NoClients, []ClientAuthentication{NoClient}, []Parameter{ParamSubjectToken, ParamSubjectTokenType,
			ParamActorToken, ParamActorTokenType, ParamRequestedTokenType, ParamAudience, ParamResource, ParamScope}, Issues{Never, Never}},
	}
	got := table
	if len(got) != len(want) {
		t.Fatalf("%d grants, want %d: %v", len(got), len(want), Types())
	}
	for i, w := range want {
		g := got[i]
		if g.Type != w.grant || g.SubjectTokenType != w.subjectType || g.Client != w.client || !slices.Equal(g.Authentications, w.authentications) || !slices.Equal(g.Reads, w.reads) || g.Issues != w.issues {
			t.Errorf("grant %d is %s %s %v reads %v issues %+v,\nwant %s %s %v reads %v issues %+v", i,
				g.Type, g.Client, g.Authentications, g.Reads, g.Issues, w.grant, w.client, w.authentications, w.reads, w.issues)
		}
		if g.issue == nil {
			t.Errorf("%s issues nothing", g.Type)
		}
		if len(g.Authentications) < len(oauthClient) && g.refusedClient == nil {
			t.Errorf("%s refuses some client authentications without saying how", g.Type)
		}
	}
	// A type with entries per subject_token_type is advertised once.
	if want := []string{"password", "refresh_token", "client_credentials", "authorization_code", "urn:chit:params:oauth:grant-type:api-key",
		"urn:ietf:params:oauth:grant-type:device_code", "urn:ietf:params:oauth:grant-type:jwt-bearer", "urn:ietf:params:oauth:grant-type:token-exchange"}; !slices.Equal(Types(), want) {
		t.Errorf("Types() = %v, want %v", Types(), want)
	}
	if want := []string{"client_secret_basic", "client_secret_post", "none"}; !slices.Equal(TokenEndpointAuthMethods(), want) {
		t.Errorf("TokenEndpointAuthMethods() = %v, want %v", TokenEndpointAuthMethods(), want)
	}
}

// A grant sees only the parameters it declares: one it does not read is
// cleared, so a grant cannot come to depend on an undeclared parameter.
func TestAGrantReadsOnlyWhatItDeclares(t *testing.T) {
	full := Request{Type: Password, Client: FirstPartyClient("chit-api"), Address: "192.0.2.1", Scope: "s", Audience: "a",
		Username: "u", Password: "p", RefreshToken: "r", Code: "c", RedirectURI: "ru", CodeVerifier: "v", APIKey: "k", DeviceCode: "d", Assertion: "j",
		SubjectToken: "st", SubjectTokenType: "stt", ActorToken: "at", ActorTokenType: "att", RequestedTokenType: "rtt", ExchangeAudience: "ea"}
	every := []Parameter{ParamUsername, ParamPassword, ParamScope, ParamResource, ParamRefreshToken, ParamCode, ParamRedirectURI, ParamCodeVerifier, ParamAPIKey,
		ParamDeviceCode, ParamAssertion, ParamSubjectToken, ParamSubjectTokenType, ParamActorToken, ParamActorTokenType, ParamRequestedTokenType, ParamAudience}
	if got := full.only(every); got != full {
		t.Fatalf("every parameter kept: %+v, want %+v", got, full)
	}
	got := full.only([]Parameter{ParamAPIKey, ParamScope})
	if want := (Request{Type: Password, Client: full.Client, Address: full.Address, Scope: "s", APIKey: "k"}); got != want {
		t.Fatalf("kept %+v, want %+v", got, want)
	}
}

func TestPresentedClient(t *testing.T) {
	for _, tc := range []struct {
		name       string
		id, secret string
		basic      bool
		want       ClientAuthentication
	}{
		{"nothing", "", "", false, NoClient},
		{"an empty Basic header", "", "", true, NoClient},
		{"a client_id alone", "spa", "", false, PublicClientID},
		{"Basic with an id alone", "spa", "", true, ClientSecretBasic},
		{"Basic", "billing", "s", true, ClientSecretBasic},
		{"the form", "billing", "s", false, ClientSecretPost},
		{"a form secret alone", "", "s", false, ClientSecretPost},
	} {
		if got := PresentedClient(tc.id, tc.secret, tc.basic); got.Authentication != tc.want || got.ID != tc.id || got.Secret != tc.secret {
			t.Errorf("%s: %+v, want %s", tc.name, got, tc.want)
		}
	}
}

// A client authentication a grant does not accept is refused before any
// credential is checked (no directory is needed to answer it).
func TestRefusedClientAuthentications(t *testing.T) {
	s := &Service{}
	ctx := context.Background()
	for _, tc := range []struct {
		name   string
		req    Request
		kind   chiterr.Kind
		signIn bool
	}{
		{"an API key with a client", Request{Type: APIKey, Client: PresentedClient("spa", "", false), APIKey: "k"}, chiterr.InvalidArgument, false},
		{"an API key through Chit's own client", Request{Type: APIKey, Client: FirstPartyClient("chit-api"), APIKey: "k"}, chiterr.InvalidArgument, false},
		{"client credentials without a client", Request{Type: ClientCredentials}, chiterr.InvalidArgument, true},
		{"client credentials with a client_id alone", Request{Type: ClientCredentials, Client: PresentedClient("billing", "", false)}, chiterr.InvalidArgument, true},
		{"client credentials as Chit's own client", Request{Type: ClientCredentials, Client: FirstPartyClient("chit-api")}, chiterr.InvalidArgument, true},
	} {
		_, err := s.Issue(ctx, tc.req)
		_, signIn := errors.AsType[*ClientRefusedError](err)
		if chiterr.KindOf(err) != tc.kind || signIn != tc.signIn {
			t.Errorf("%s: %v (failed sign-in %t), want %s (failed sign-in %t)", tc.name, err, signIn, tc.kind, tc.signIn)
		}
	}
	// A malformed scope is the request's fault, before the client is looked at.
	_, err := s.Issue(ctx, Request{Type: ClientCredentials, Scope: `a"b`})
	if _, signIn := errors.AsType[*ClientRefusedError](err); signIn || chiterr.KindOf(err) != chiterr.InvalidArgument {
		t.Errorf("a malformed scope: %v, want InvalidArgument, not a failed sign-in", err)
	}
	if _, err := s.Issue(ctx, Request{Type: "implicit"}); !errors.Is(err, ErrUnsupportedGrantType) {
		t.Errorf("an unknown grant: %v, want ErrUnsupportedGrantType", err)
	}
	// Chit's own clients are named by the transport, and only they are.
	if _, err := s.Issue(ctx, Request{Type: Password, Client: FirstPartyClient("billing")}); err == nil || chiterr.KindOf(err) != chiterr.Internal {
		t.Errorf("a first-party client that is not one: %v, want an internal error", err)
	}
}

func TestIssuesIsChecked(t *testing.T) {
	for _, tc := range []struct {
		issues Issues
		grant  tokens.Grant
		ok     bool
	}{
		{Issues{Always, Never}, tokens.Grant{AccessToken: "a", RefreshToken: "r"}, true},
		{Issues{Always, Never}, tokens.Grant{AccessToken: "a"}, false},
		{Issues{Never, Never}, tokens.Grant{AccessToken: "a", RefreshToken: "r"}, false},
		{Issues{WithOfflineAccess, WithOpenID}, tokens.Grant{AccessToken: "a", Scope: "read"}, true},
		{Issues{WithOfflineAccess, WithOpenID}, tokens.Grant{AccessToken: "a", RefreshToken: "r", IDToken: "i", Scope: "openid offline_access"}, true},
		{Issues{WithOfflineAccess, WithOpenID}, tokens.Grant{AccessToken: "a", RefreshToken: "r", IDToken: "i", Scope: "read"}, false},
		{Issues{WithOfflineAccess, WithOpenID}, tokens.Grant{AccessToken: "a", RefreshToken: "r", Scope: "openid offline_access"}, false},
		{Issues{WithOfflineAccess, WithOpenID}, tokens.Grant{AccessToken: "a", IDToken: "i", Scope: "openid offline_access"}, false},
		{Issues{WithOfflineAccess, WithOpenID}, tokens.Grant{AccessToken: "a", IDToken: "i", Scope: "openid"}, true},
		{Issues{Never, Never}, tokens.Grant{AccessToken: "a", IDToken: "i"}, false},
		// The password and refresh grants: an ID token exactly when openid was granted.
		{Issues{Always, WithOpenID}, tokens.Grant{AccessToken: "a", RefreshToken: "r", IDToken: "i", Scope: "openid read"}, true},
		{Issues{Always, WithOpenID}, tokens.Grant{AccessToken: "a", RefreshToken: "r", Scope: "openid read"}, false},
		{Issues{Always, WithOpenID}, tokens.Grant{AccessToken: "a", RefreshToken: "r", IDToken: "i", Scope: "read"}, false},
		{Issues{Always, WithOpenID}, tokens.Grant{AccessToken: "a", RefreshToken: "r", Scope: "read"}, true},
		{Issues{Never, Never}, tokens.Grant{}, false},
	} {
		if err := tc.issues.check(tc.grant); (err == nil) != tc.ok {
			t.Errorf("%+v issuing %+v: %v, want ok %t", tc.issues, tc.grant, err, tc.ok)
		}
	}
}
