// Package ssfhttp serves the HTTP side of OpenID Shared Signals on the HTTP
// port: the poll endpoint of poll streams (RFC 8936, POST
// /ssf/poll/{stream_id}) and the transmitter's configuration metadata (SSF
// 1.0 §7.1, GET /.well-known/ssf-configuration). It is a transport: it
// decodes, has grpcapi's Gatekeeper verify the caller's token (and its
// DPoP or certificate binding), and lets internal/ssf decide.
package ssfhttp
