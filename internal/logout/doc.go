// Package logout ends sign-in sessions when a relying party asks (OpenID
// Connect RP-Initiated Logout 1.0): it checks the id_token_hint, the client
// and its registered post-logout redirect URI, ends the browser's session,
// revokes the person's logins through the clients that ask for it, and
// tells the clients that registered a back-channel logout URI with a
// signed logout token (OpenID Connect Back-Channel Logout 1.0). It knows
// nothing of the page that asks for confirmation, nor of gRPC or net/http:
// the sessions are behind the Sessions interface, which the sign-in
// sessions implement, and the tokens go out through a Deliverer
// (backchannel.Client, the HTTP side).
package logout
