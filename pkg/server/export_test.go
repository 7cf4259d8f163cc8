package server

import "context"

// DeleteExpired runs one pass of the periodic clean-up, for tests.
func (s *Server) DeleteExpired(ctx context.Context) { s.deleteExpired(ctx) }
