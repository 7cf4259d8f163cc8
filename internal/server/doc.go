// Package server assembles a running Chit: it builds the token core on a
// store, listens on the gRPC and HTTP ports, serves the gRPC API (with
// reflection and the standard health service) and the REST gateway, and shuts
// both down gracefully. cmd/chitd and the end-to-end tests use it; it holds
// wiring only, no token rules.
package server
