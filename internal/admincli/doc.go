// Package admincli is the one command tree of the Admin API: the nouns
// (user, service, client, provider, keys, login, session, api-key,
// federation, ssf) and their verbs as cobra commands over an
// adminv1.AdminServiceClient. `chit admin` mounts it over gRPC with an
// admin's token; chitd mounts it over the same handlers in its own process,
// as the local operator (server.NewLocalAdmin). A verb is
// therefore written once (proto, handler, command here), validated once by
// the handler and audited by the interceptors, whichever CLI runs it.
//
// It is neither core nor transport: it imports the generated API, cobra and
// gRPC's status, never the server, a store or the core.
package admincli
