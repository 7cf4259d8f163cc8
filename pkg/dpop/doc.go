// Package dpop is Chit's one implementation of DPoP (RFC 9449), shared by
// the server, the SDK client and the SDK verifier: it checks proofs
// (Verifier, with its replay memory and an optional NonceSource), signs them
// (Signer), sends them (Transport), and holds the table that maps Chit's gRPC
// methods to the HTTP method and URL their proofs name (ChitMethod,
// MethodURL). It depends on jwx, x/oauth2 and the standard library only,
// never on the server.
package dpop
