// Package tokens is Chit's one token-issuing core: it exchanges credentials
// and refresh tokens for signed access tokens (JWT) and rotating refresh
// tokens, and checks access tokens. The grant table (internal/grants) calls
// it for every grant; it knows nothing of gRPC or HTTP and reports failures
// as chiterr kinds.
//
// Its files say what they own: tokens.go the Service and its Config,
// issue.go sign-ins and signing, refresh.go rotation, replay and reuse,
// check.go verifying access tokens, apikeys.go, introspect.go and
// revocation.go theirs.
package tokens
