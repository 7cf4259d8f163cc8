package tokens

import (
	"crypto/sha256"
	"crypto/sha512"
	"encoding/base64"
	"fmt"
	"hash"
	"slices"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/internal/accounts"
)

// AccessTokenHashClaim is the ID token's hash of the access token issued
// beside it (OIDC Core §3.1.3.6, §3.2.2.9).
const AccessTokenHashClaim = "at_hash"

// AccessTokenHash is the at_hash of accessToken in an ID token signed with
// alg: the left half of the hash the algorithm's signature uses, in
// base64url. ES256 and RS256 hash with SHA-256; EdDSA with SHA-512, the
// hash Ed25519 signs with (RFC 8032 §5.1), as go-oidc expects.
func AccessTokenHash(alg jwa.SignatureAlgorithm, accessToken string) (string, error) {
	var h hash.Hash
	switch alg {
	case jwa.ES256, jwa.RS256:
		h = sha256.New()
	case jwa.EdDSA:
		h = sha512.New()
	default:
		return "", fmt.Errorf("no at_hash for signing algorithm %q", alg)
	}
	h.Write([]byte(accessToken))
	sum := h.Sum(nil)
	return base64.RawURLEncoding.EncodeToString(sum[:len(sum)/2]), nil
}

// signWithAccessTokenHash signs an ID token with the key family of alg (the
// client's id_token_signed_response_alg; empty is the server's algorithm),
// with the at_hash of accessToken (when there is one) for the algorithm of
// the key that signs it.
func (s *Service) signWithAccessTokenHash(token jwt.Token, alg jwa.SignatureAlgorithm, accessToken string) (string, error) {
	return s.Keys.SignBuilt(alg, func(alg jwa.SignatureAlgorithm) (jwt.Token, error) {
		if accessToken == "" {
			return token, nil
		}
		atHash, err := AccessTokenHash(alg, accessToken)
		if err != nil {
			return nil, err
		}
		if err := token.Set(AccessTokenHashClaim, atHash); err != nil {
			return nil, fmt.Errorf("build ID token: %w", err)
		}
		return token, nil
	})
}

// refreshIDToken is the ID token a refresh answers (OIDC Core §12.2) when
// the new access token keeps openid, "" otherwise: the login's subject and
// client, iat now, the new access token's at_hash, and no nonce (§12.2).
// It has no auth_time either: a login does not record when its sign-in
// happened, and the time of the refresh would be a false one (auth_time is
// optional unless max_age was asked, OIDC Core §2).
func (s *Service) refreshIDToken(login Login, accessToken string, now time.Time) (string, error) {
	if !slices.Contains(login.Scopes, accounts.ScopeOpenID) {
		return "", nil
	}
	return s.signIDToken(login.Principal, IDTokenRequest{ClientID: login.Client.ID, AccessToken: accessToken, Scopes: login.Scopes,
		SigningAlgorithm: login.Client.IDTokenSigningAlgorithm}, now)
}
