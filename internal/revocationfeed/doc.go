// Package revocationfeed serves the revocation event log (storage.
// RevocationEvents) to verifiers that hold tokens offline: one poller per
// replica watches the log's head and wakes the subscribers, which page the
// events after their own cursor from the store. It knows nothing of gRPC or
// HTTP: the transports (grpcapi, the SSE handler) call Watch with a
// function that sends one message.
package revocationfeed
