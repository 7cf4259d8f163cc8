// Package verifier is what other Go services import to accept Chit tokens:
// it validates them offline against Chit's JSON Web Key Set (cached,
// refreshed in the background, refetched once on an unknown kid with a rate
// limit), checks issuer, audience, expiry, and the scopes or roles a method
// requires, and puts the claims in the request context. It offers a gRPC
// unary and stream interceptor and a net/http middleware, which also enforce
// what a sender-constrained token is bound to (a DPoP key, checked with
// pkg/dpop, or a TLS client certificate). It depends on jwx, gRPC, x/oauth2,
// the Prometheus client and pkg/dpop only, not on the rest of Chit.
//
// # Revocations
//
// Offline verification alone accepts a revoked token until it expires. With
// Config.Revocations the verifier subscribes to Chit's revocation feed
// (GET /v1/revocations/events, Server-Sent Events, with a SERVICE token
// granted chit:revocations) and keeps in memory what was revoked and still
// matters: logins (fid), subjects, clients and services (tokens issued at or
// before the cut-off, to the microsecond with iat_us, whose sub, client_id,
// subject_client_id or act chain names them), and removed signing keys.
// Verify then refuses such tokens with ErrRevoked, with a few map lookups
// and no call per request. Entries are forgotten once every token they
// refuse has expired, and the set is bounded (MaxEntries).
//
// The subscription reconnects with backoff and jitter and resumes from its
// last cursor (Last-Event-ID); when the server no longer has the events
// since (HTTP 410) or does not know the cursor (400), it takes a new
// snapshot and replaces the set once the snapshot's first heartbeat says it
// is complete. A connection on which nothing arrives within ReadTimeout is
// dropped and made again.
//
// The set is stale before its first snapshot, during a resync, and after
// MaxStaleness without a heartbeat or event. What a stale set means is the
// choice of FailClosed:
//
//   - Fail open (the default): tokens are accepted on signature and claims,
//     as without a subscription; what the set holds is still refused. A
//     token revoked while the feed is unreachable passes until it expires
//     (Chit's access tokens live minutes), as it does today.
//   - Fail closed: every token is refused with ErrRevocationFeedStale (the
//     middleware answers 503, the interceptors Unavailable). No revoked token
//     passes, but Chit's availability, and its database's, becomes every
//     such service's: an outage of the feed stops them all.
//
// New waits up to RevocationConfig.InitialWait (5 seconds) for the first
// snapshot and then returns anyway; it never fails because the feed is
// unreachable. RevocationStatus, RevocationLag and Collector (Prometheus)
// tell how current the set is; Close stops the subscription.
package verifier
