// Package ssf delivers the revocation feed (storage.RevocationEvents) to
// the OpenID Shared Signals (SSF 1.0) receivers an admin registers, as
// Security Event Tokens (RFC 8417) carrying CAEP session-revoked and
// credential-change events: pushed (RFC 8935) by one replica at a time
// under a lease, or polled (RFC 8936). Each stream keeps its own position
// in the log and moves it only past what its receiver acknowledged.
//
// It is core: it must not import gRPC or net/http. The HTTP client that
// pushes is internal/ssf/ssfpush; the poll endpoint and the transmitter
// metadata are served by internal/ssfhttp.
package ssf
