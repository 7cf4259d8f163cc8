// Package clilogin is the client side of `chit login`: it runs the browser
// sign-in (a loopback redirect listener, state and PKCE, RFC 8252), exchanges
// the code with LoginCli, keeps the tokens in the user's config directory and
// refreshes them with RefreshCli when they are about to expire.
package clilogin
