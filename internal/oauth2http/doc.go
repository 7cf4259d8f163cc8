// Package oauth2http serves the standard OAuth 2.0 and OpenID Connect
// endpoints (RFC 6749 token, RFC 7009 revocation, RFC 7662 introspection,
// OIDC userinfo) on the HTTP port, so clients nobody here wrote (x/oauth2,
// go-oidc, curl) get tokens from the same grant table (internal/grants) as
// gRPC and REST. It is a thin transport: form decoding, reading the client's
// credentials, and error shapes.
package oauth2http
