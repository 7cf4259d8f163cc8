// Package verifier is what other Go services import to accept Chit tokens:
// it validates them offline against Chit's JSON Web Key Set (cached,
// refreshed in the background, refetched once on an unknown kid with a rate
// limit), checks issuer, audience, expiry, and the scopes or roles a method
// requires, and puts the claims in the request context. It offers a gRPC
// unary and stream interceptor and a net/http middleware, which also enforce
// what a sender-constrained token is bound to (a DPoP key, checked with
// pkg/dpop, or a TLS client certificate). It depends on jwx, gRPC and
// pkg/dpop only, not on the rest of Chit.
package verifier
