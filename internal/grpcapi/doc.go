// Package grpcapi is the gRPC transport: thin handlers that decode requests,
// call the token core and encode its answers; the access-rule table and the
// interceptor that enforces it; and the one place where core errors become
// gRPC status codes. Because the REST gateway calls through this server, every
// rule here holds for REST too. It makes no decision about tokens itself.
package grpcapi
