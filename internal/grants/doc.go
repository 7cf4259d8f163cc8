// Package grants is the one decision point of the token endpoints: a table
// with one entry per grant (password, refresh token, client credentials,
// authorization code, API key, JWT bearer), each saying which client authentications
// it accepts, what it reads and what it issues, and Issue, which
// authenticates the client once and runs the grant. gRPC, REST and
// /oauth2/token decode into a Request and encode what Issue answers; they
// decide nothing about a grant. It is core: it must not import net/http,
// gRPC or the generated API.
package grants
