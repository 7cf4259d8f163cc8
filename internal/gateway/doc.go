// Package gateway is the HTTP transport: the grpc-gateway v2 REST mapping of
// Chit's gRPC API, the JSON Web Key Set, the OpenAPI document and a health
// endpoint. REST calls reach the gRPC handlers through an in-process channel
// with the gRPC server's interceptors, so access rules, throttling and error
// translation are written once for both transports.
package gateway
