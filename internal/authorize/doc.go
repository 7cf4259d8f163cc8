// Package authorize is the core of browser sign-in for command-line and
// registered clients (OAuth 2.0 authorization code with PKCE, RFC 6749,
// 7636, 8252, 9207): it validates authorization requests and redirect URIs,
// decides which errors go back to the client and which stay on the page,
// signs people in, issues single-use codes and exchanges them for tokens.
// The sign-in page and the gRPC handlers are thin transports over it; it
// must not import them, net/http or gRPC.
package authorize
