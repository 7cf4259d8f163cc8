package grants

import (
	"fmt"
	"slices"
	"strings"

	"github.com/chit-auth/chit/internal/tokens"
)

// ClientAuthentication is how a token request's client proves who it is.
type ClientAuthentication string

const (
	// NoClient: the request names no client.
	NoClient ClientAuthentication = "absent"
	// PublicClientID: a public client names itself by its client_id, with
	// no secret (RFC 6749 §2.3; RFC 7591's "none").
	PublicClientID ClientAuthentication = "client_id"
	// ClientSecretBasic: id and secret in HTTP Basic (RFC 6749 §2.3.1).
	ClientSecretBasic ClientAuthentication = "client_secret_basic"
	// ClientSecretPost: id and secret in the request's body (the form, or
	// gRPC's client_credential).
	ClientSecretPost ClientAuthentication = "client_secret_post"
	// FirstParty: the transport names one of Chit's own clients, which
	// have no secret: gRPC and REST act as chit-api, LoginCli and RefreshCli
	// as chit-cli.
	FirstParty ClientAuthentication = "first_party"
)

// Client is what a request presents for its client.
type Client struct {
	Authentication ClientAuthentication
	ID             string
	Secret         string
}

// FirstPartyClient is one of Chit's own clients (accounts.APIClientID,
// accounts.CLIClientID), named by the transport that acts as it.
func FirstPartyClient(id string) Client {
	return Client{Authentication: FirstParty, ID: id}
}

// PresentedClient classifies the client id and secret a request carries:
// none, an id alone (a public client), or both in HTTP Basic (basic) or in
// the body. An empty Basic header names no client, as an absent one.
func PresentedClient(id, secret string, basic bool) Client {
	credentials := Client{ID: id, Secret: secret}
	switch {
	case id == "" && secret == "":
		credentials.Authentication = NoClient
	case basic:
		credentials.Authentication = ClientSecretBasic
	case secret != "":
		credentials.Authentication = ClientSecretPost
	default:
		credentials.Authentication = PublicClientID
	}
	return credentials
}

// Parameter names what a grant reads from a request, by its OAuth name.
type Parameter string

// The parameters of the grants (RFC 6749 §4, RFC 7636, RFC 8707).
const (
	ParamUsername     Parameter = "username"
	ParamPassword     Parameter = "password"
	ParamScope        Parameter = "scope"
	ParamResource     Parameter = "resource"
	ParamRefreshToken Parameter = "refresh_token"
	ParamCode         Parameter = "code"
	ParamRedirectURI  Parameter = "redirect_uri"
	ParamCodeVerifier Parameter = "code_verifier"
	ParamAPIKey       Parameter = "api_key"
	// ParamAssertion is RFC 7523 §2.1's JWT.
	ParamAssertion Parameter = "assertion"
	// Token exchange's (RFC 8693 §2.1). audience is the logical name of
	// the target, beside resource; both name one audience.
	ParamSubjectToken       Parameter = "subject_token"
	ParamSubjectTokenType   Parameter = "subject_token_type"
	ParamActorToken         Parameter = "actor_token"
	ParamActorTokenType     Parameter = "actor_token_type"
	ParamRequestedTokenType Parameter = "requested_token_type"
	ParamAudience           Parameter = "audience"
	ParamDeviceCode         Parameter = "device_code" // RFC 8628 §3.4
)

// Request is a token request as every transport decodes it.
type Request struct {
	Type   Type
	Client Client
	// Address is the caller's network address: the sign-in throttle counts
	// failures by it.
	Address string
	Scope   string
	// Audience is the RFC 8707 resource (gRPC's audience): "" for the
	// server's own.
	Audience     string
	Username     string
	Password     string
	RefreshToken string
	Code         string
	RedirectURI  string
	CodeVerifier string
	APIKey       string
	Assertion    string
	// Token exchange's parameters. ExchangeAudience is RFC 8693's audience
	// (gRPC's audience is Audience, as resource is).
	SubjectToken       string
	SubjectTokenType   string
	ActorToken         string
	ActorTokenType     string
	RequestedTokenType string
	ExchangeAudience   string
	DeviceCode         string
	// Binding is what the transport verified the caller holds: a DPoP
	// proof's key (RFC 9449), a client certificate (RFC 8705). Every grant
	// binds the tokens it issues to it; zero issues bearer tokens.
	Binding tokens.Binding
}

// only keeps the parameters of reads, the client and the address.
func (r Request) only(reads []Parameter) Request {
	kept := Request{Type: r.Type, Client: r.Client, Address: r.Address, Binding: r.Binding}
	for _, parameter := range reads {
		switch parameter {
		case ParamUsername:
			kept.Username = r.Username
		case ParamPassword:
			kept.Password = r.Password
		case ParamScope:
			kept.Scope = r.Scope
		case ParamResource:
			kept.Audience = r.Audience
		case ParamRefreshToken:
			kept.RefreshToken = r.RefreshToken
		case ParamCode:
			kept.Code = r.Code
		case ParamRedirectURI:
			kept.RedirectURI = r.RedirectURI
		case ParamCodeVerifier:
			kept.CodeVerifier = r.CodeVerifier
		case ParamAPIKey:
			kept.APIKey = r.APIKey
		case ParamAssertion:
			kept.Assertion = r.Assertion
		case ParamSubjectToken:
			kept.SubjectToken = r.SubjectToken
		case ParamSubjectTokenType:
			kept.SubjectTokenType = r.SubjectTokenType
		case ParamActorToken:
			kept.ActorToken = r.ActorToken
		case ParamActorTokenType:
			kept.ActorTokenType = r.ActorTokenType
		case ParamRequestedTokenType:
			kept.RequestedTokenType = r.RequestedTokenType
		case ParamAudience:
			kept.ExchangeAudience = r.ExchangeAudience
		case ParamDeviceCode:
			kept.DeviceCode = r.DeviceCode
		default:
			panic(fmt.Sprintf("grants: no request field for parameter %q", parameter))
		}
	}
	return kept
}

// Issuance says when a grant issues a token besides the access token.
type Issuance string

const (
	Never             Issuance = "never"
	Always            Issuance = "always"
	WithOfflineAccess Issuance = "with scope offline_access"
	WithOpenID        Issuance = "with scope openid"
)

// Issues is what a grant issues besides the access token.
type Issues struct {
	RefreshToken Issuance
	IDToken      Issuance
}

// check tells whether issued is what the grant says it issues, the scoped
// cases against the scope it granted. It is an assertion on the table,
// run after the grant has committed (a rotation, a redeemed code): if it
// ever fails, the caller gets an internal error and the login is lost,
// which is the right answer to a grant that broke its declared shape.
func (i Issues) check(issued tokens.Grant) error {
	granted := strings.Fields(issued.Scope)
	for _, token := range []struct {
		name   string
		when   Issuance
		issued bool
	}{{"refresh token", i.RefreshToken, issued.RefreshToken != ""}, {"ID token", i.IDToken, issued.IDToken != ""}} {
		var want bool
		switch token.when {
		case Never:
		case Always:
			want = true
		case WithOfflineAccess:
			want = slices.Contains(granted, "offline_access")
		case WithOpenID:
			want = slices.Contains(granted, "openid")
		default:
			return fmt.Errorf("unknown issuance %q of a %s", token.when, token.name)
		}
		if token.issued != want {
			return fmt.Errorf("issued a %s %s: issued=%t with scope %q", token.name, token.when, token.issued, issued.Scope)
		}
	}
	if issued.AccessToken == "" {
		return fmt.Errorf("issued no access token")
	}
	return nil
}
