package logout

import (
	"context"
	"slices"
	"strings"

	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/keys"
)

// idTokenHint is what an id_token_hint says.
type idTokenHint struct {
	subject, clientID string
	// sessionID is its sid: "" for an ID token issued before sign-in
	// sessions, or outside one.
	sessionID string
}

// SessionIDClaim is the ID token's and logout token's session id (OpenID
// Connect Front-Channel Logout 1.0 §3, Back-Channel Logout 1.0 §2.4).
const SessionIDClaim = "sid"

var errBadHint = chiterr.New(chiterr.InvalidArgument, "id_token_hint is not an ID token issued by this server")

// verifyHint checks an id_token_hint: an ID token Chit signed with one of
// its published keys, of Chit's issuer, with a subject and a client. It
// may have expired (RP-Initiated Logout 1.0 §2: the OP should accept one
// it issued, since the person may have signed in long ago); its signature
// and issuer may not be wrong. An access token or a logout token, signed
// with the same keys, is no ID token.
func (s *Service) verifyHint(ctx context.Context, hint string) (idTokenHint, error) {
	if len(hint) > maxHintLength {
		return idTokenHint{}, errBadHint
	}
	var typ string
	// An ID token may be signed by any family: the RS256 one too, for a
	// client registered for it.
	keyProvider := keys.KeyProvider(s.Keys.LookupIDTokenKey)
	typed := jws.KeyProviderFunc(func(ctx context.Context, sink jws.KeySink, sig *jws.Signature, message *jws.Message) error {
		typ = sig.ProtectedHeaders().Type()
		return keyProvider.FetchKeys(ctx, sink, sig, message)
	})
	// The signature is verified; the times are not validated, so that an
	// expired hint passes. The rest is checked here.
	token, err := jwt.ParseString(hint, jwt.WithContext(ctx), jwt.WithKeyProvider(typed), jwt.WithValidate(false))
	if err != nil {
		return idTokenHint{}, chiterr.Wrap(chiterr.InvalidArgument, err, errBadHint.Message)
	}
	if token.Issuer() != s.cfg.Issuer || token.Subject() == "" {
		return idTokenHint{}, errBadHint
	}
	if t := strings.ToLower(typ); t != "" && t != "jwt" {
		return idTokenHint{}, errBadHint // at+jwt, logout+jwt
	}
	if _, isAccessToken := token.Get("role"); isAccessToken {
		return idTokenHint{}, errBadHint
	}
	if _, isLogoutToken := token.Get(eventsClaim); isLogoutToken {
		return idTokenHint{}, errBadHint
	}
	// The client: azp when present (OIDC Core §2), else the only audience.
	clientID, _ := stringClaim(token, "azp")
	audience := token.Audience()
	if clientID == "" && len(audience) == 1 {
		clientID = audience[0]
	}
	if clientID == "" || !slices.Contains(audience, clientID) {
		return idTokenHint{}, errBadHint
	}
	sessionID, _ := stringClaim(token, SessionIDClaim)
	return idTokenHint{subject: token.Subject(), clientID: clientID, sessionID: sessionID}, nil
}

// maxHintLength bounds what is parsed: Chit's ID tokens are far shorter.
const maxHintLength = 16 << 10

func stringClaim(token jwt.Token, name string) (string, bool) {
	value, ok := token.Get(name)
	if !ok {
		return "", false
	}
	text, ok := value.(string)
	return text, ok
}
