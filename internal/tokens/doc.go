// Package tokens is Chit's one token-issuing core: it exchanges credentials
// and refresh tokens for signed access tokens (JWT) and rotating refresh
// tokens, and checks access tokens. Every transport calls it; it knows
// nothing of gRPC or HTTP and reports failures as chiterr kinds.
package tokens
