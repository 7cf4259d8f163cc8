package server

import (
	"context"
	"net/http"

	"github.com/chit-auth/chit/internal/ssf"
)

// DeleteExpired runs one pass of the periodic clean-up, for tests.
func (s *Server) DeleteExpired(ctx context.Context) { s.deleteExpired(ctx) }

// HTTPHandler is the handler the HTTP port serves (the REST gateway, the
// OAuth endpoints, the sign-in page and the probes, behind the client-address
// middleware), for tests that serve requests in process.
func (s *Server) HTTPHandler() http.Handler { return s.httpServer.Handler }

// SecurityEvents is the server's Shared Signals transmitter, for tests that
// register streams as the Admin API does.
func (s *Server) SecurityEvents() *ssf.Service { return s.securityEvents }
