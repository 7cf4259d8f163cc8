// Package revocationsse serves the revocation feed as Server-Sent Events
// (GET /v1/revocations/events), for verifiers that speak HTTP rather than
// gRPC. It is a transport: the caller passes the gRPC access rule of
// RevocationFeedService.WatchRevocations (grpcapi's Gatekeeper), the feed decides
// what is sent, and the REST error format answers refusals.
package revocationsse
