package tokens

import (
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

// Binding is the key a token's holder must prove it holds when it uses the
// token (a sender-constrained token): the confirmation (cnf) claim of RFC
// 7800. The zero value is a bearer token, which anyone holding it may use.
type Binding struct {
	// KeyThumbprint is the RFC 7638 SHA-256 thumbprint of a DPoP key
	// (RFC 9449 §6.1, cnf.jkt), set when the token request carried a valid
	// DPoP proof.
	KeyThumbprint string
	// CertificateThumbprint is the base64url SHA-256 of the client's TLS
	// certificate (RFC 8705 §3.1, cnf["x5t#S256"]), set when the token
	// request came over mutual TLS or through a trusted proxy's
	// Client-Cert header.
	CertificateThumbprint string
}

// Bound reports whether the token needs a proof of possession.
func (b Binding) Bound() bool { return b.KeyThumbprint != "" || b.CertificateThumbprint != "" }

// TokenType is the token_type an access token with this binding is issued
// as: DPoP for a DPoP-bound token (RFC 9449 §5), Bearer for the others. A
// certificate-bound token stays Bearer (RFC 8705 §3).
func (b Binding) TokenType() string {
	if b.KeyThumbprint != "" {
		return DPoPTokenType
	}
	return TokenType
}

// DPoPTokenType is the token_type of DPoP-bound access tokens (RFC 9449 §5).
const DPoPTokenType = "DPoP"

// The confirmation claim and its members (RFC 7800 §3.1, RFC 9449 §6.1,
// RFC 8705 §3.1).
const (
	ConfirmationClaim           = "cnf"
	KeyThumbprintMember         = "jkt"
	CertificateThumbprintMember = "x5t#S256"
)

// claim is the cnf claim's value; nil for a bearer token.
func (b Binding) claim() map[string]string {
	if !b.Bound() {
		return nil
	}
	cnf := map[string]string{}
	if b.KeyThumbprint != "" {
		cnf[KeyThumbprintMember] = b.KeyThumbprint
	}
	if b.CertificateThumbprint != "" {
		cnf[CertificateThumbprintMember] = b.CertificateThumbprint
	}
	return cnf
}

// maxThumbprintLength bounds a cnf member Check reads: a SHA-256 in
// base64url is 43 characters.
const maxThumbprintLength = 64

// parseBinding reads the cnf claim of a verified token: an object whose
// jkt and x5t#S256 are strings; other members (RFC 7800's jwk, kid) are
// not Chit's and make the token invalid rather than silently unbound.
func parseBinding(token jwt.Token) (Binding, error) {
	raw, ok := token.Get(ConfirmationClaim)
	if !ok {
		return Binding{}, nil
	}
	object, ok := raw.(map[string]any)
	if !ok || len(object) == 0 {
		return Binding{}, chiterr.New(chiterr.Unauthenticated, "%s: cnf is not an object", errInvalidToken.Message)
	}
	var binding Binding
	for member, value := range object {
		text, ok := value.(string)
		if !ok || text == "" || len(text) > maxThumbprintLength {
			return Binding{}, chiterr.New(chiterr.Unauthenticated, "%s: cnf.%s is not a thumbprint", errInvalidToken.Message, member)
		}
		switch member {
		case KeyThumbprintMember:
			binding.KeyThumbprint = text
		case CertificateThumbprintMember:
			binding.CertificateThumbprint = text
		default:
			return Binding{}, chiterr.New(chiterr.Unauthenticated, "%s: cnf.%s is not a confirmation Chit issues", errInvalidToken.Message, member)
		}
	}
	return binding, nil
}

// refreshKeyBinding is the DPoP key a new login's refresh token is bound
// to: a public client's (RFC 9449 §5), since nothing else proves that the
// one refreshing is the one it was issued to. A confidential client
// authenticates at every refresh and may change keys.
func refreshKeyBinding(client accounts.Client, binding Binding) string {
	if client.Confidential {
		return ""
	}
	return binding.KeyThumbprint
}

// errRefreshKeyMismatch refuses a refresh with a proof of another key, or
// none: the OAuth endpoint answers it invalid_dpop_proof (RFC 9449 §5).
var errRefreshKeyMismatch = chiterr.New(chiterr.InvalidArgument,
	"this refresh token is bound to a DPoP key: send a DPoP proof signed with the key the login started with").
	WithReason(chiterr.ReasonInvalidDPoPProof)

// checkRefreshKey refuses the refresh of a login bound to a DPoP key
// without a proof of that key.
func checkRefreshKey(current storage.RefreshToken, binding Binding) error {
	if current.DPoPKeyThumbprint != "" && binding.KeyThumbprint != current.DPoPKeyThumbprint {
		return errRefreshKeyMismatch
	}
	return nil
}

// ErrDPoPRequired refuses a token request without a DPoP proof from a
// client or service account that must send one (RFC 9449 §5.2.1's
// dpop_bound_access_tokens).
var ErrDPoPRequired = chiterr.New(chiterr.InvalidArgument,
	"this client must send a DPoP proof with its token requests (the DPoP header, gRPC metadata dpop): its tokens are DPoP-bound").
	WithReason(chiterr.ReasonInvalidDPoPProof)

var (
	errDPoPBoundAsBearer = chiterr.New(chiterr.Unauthenticated,
		"the access token is bound to a DPoP key: send it as Authorization: DPoP, with a DPoP proof of that key").WithReason(chiterr.ReasonInvalidDPoPProof)
	errDPoPProofMissing = chiterr.New(chiterr.Unauthenticated,
		"a DPoP proof is required with Authorization: DPoP (the DPoP header, gRPC metadata dpop)").WithReason(chiterr.ReasonInvalidDPoPProof)
	errDPoPKeyMismatch = chiterr.New(chiterr.Unauthenticated,
		"the DPoP proof is signed with another key than the one the access token is bound to (cnf.jkt)").WithReason(chiterr.ReasonInvalidDPoPProof)
	errCertificateMismatch = chiterr.New(chiterr.Unauthenticated,
		"the access token is bound to a client certificate (cnf x5t#S256): present that certificate (mutual TLS)")
	errDPoPUnbound = chiterr.New(chiterr.Unauthenticated,
		"the access token is a bearer token: send it as Authorization: Bearer, not DPoP").WithReason(chiterr.ReasonInvalidDPoPProof)
)

// CheckBinding refuses a token used without proof of the key it is bound
// to (RFC 9449 §7, RFC 8705 §3): proven is what this request proved (the
// key of its valid DPoP proof, its client certificate), and dpopScheme
// whether the token came as Authorization: DPoP. A bearer token
// sent with the DPoP scheme is refused too: the client believes it holds a
// bound token, and answering as if it did would hide its mistake.
func (c Claims) CheckBinding(proven Binding, dpopScheme bool) error {
	if c.Binding.KeyThumbprint != "" {
		switch {
		case !dpopScheme:
			return errDPoPBoundAsBearer
		case proven.KeyThumbprint == "":
			return errDPoPProofMissing
		case proven.KeyThumbprint != c.Binding.KeyThumbprint:
			return errDPoPKeyMismatch
		}
	} else if dpopScheme {
		return errDPoPUnbound
	}
	if c.Binding.CertificateThumbprint != "" && proven.CertificateThumbprint != c.Binding.CertificateThumbprint {
		return errCertificateMismatch
	}
	return nil
}
