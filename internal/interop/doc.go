// Package interop holds the tests that drive Chit with the relying parties
// people deploy, with their defaults: a single-page app on another origin in
// Chromium, and (in later files) oauth2-proxy, openid-client and the
// x/oauth2 + go-oidc clients. It has no code of its own; make interop runs
// its tests alone.
package interop
