// Package providers is the core of UCloud's AuthProviders: resource providers
// are registered, claim their identity once, and trade a long-lived refresh
// token for short-lived access tokens signed with their own RSA key; the
// platform's orchestrator services get tokens signed with a provider's key
// too. Bulk calls are all-or-nothing. It must not import any transport.
package providers
