// Package gateway is the HTTP transport: the grpc-gateway v2 REST mapping of
// Chit's gRPC API, the JSON Web Key Set, the OpenAPI document and a health
// endpoint. REST calls go through the gRPC server, so its access rules and
// error translation apply once, to both transports.
package gateway
