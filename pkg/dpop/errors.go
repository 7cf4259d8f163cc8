package dpop

// The error codes of a refused proof (RFC 9449 §5, §7.1, §8, §9).
const (
	// CodeInvalidProof: the proof is missing a part, malformed, or does
	// not match the request.
	CodeInvalidProof = "invalid_dpop_proof"
	// CodeUseNonce: the proof lacks a current server nonce; Error.Nonce is
	// the one to use.
	CodeUseNonce = "use_dpop_nonce"
)

// Error is what Verify returns for a refused proof. Code is CodeInvalidProof
// or CodeUseNonce; Description names what failed ("htm does not match",
// "jti was used before", ...), for people, never a secret. Nonce is set with
// CodeUseNonce: the nonce the client must use, to send as the DPoP-Nonce
// header (or the transport's equivalent).
type Error struct{ Code, Description, Nonce string }

func (e *Error) Error() string { return "dpop: " + e.Code + ": " + e.Description }

func invalid(description string) *Error {
	return &Error{Code: CodeInvalidProof, Description: description}
}
