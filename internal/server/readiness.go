package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"google.golang.org/grpc/health/grpc_health_v1"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
)

// readinessInterval is how often the gRPC health service's per-service
// statuses are refreshed between /readyz probes.
const readinessInterval = 5 * time.Second

// servedServices are the names whose gRPC health status is the server's
// readiness; the empty name stays SERVING while the process lives.
var servedServices = []string{authv1.AuthService_ServiceDesc.ServiceName, authv1.AuthProviders_ServiceDesc.ServiceName}

// checkReadiness reports whether calls can be served: the store answers and
// a signing key is loaded. It sets the gRPC health statuses to match, so
// /readyz and a gRPC health check of a Chit service agree.
func (s *Server) checkReadiness(ctx context.Context) error {
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	var err error
	if _, storeErr := s.store.GetLoginFailures(ctx, "readyz"); storeErr != nil {
		err = fmt.Errorf("store unreachable: %w", storeErr)
	} else if s.keys.ActiveSince().IsZero() {
		err = errors.New("no signing key loaded")
	}
	status := grpc_health_v1.HealthCheckResponse_SERVING
	if err != nil {
		status = grpc_health_v1.HealthCheckResponse_NOT_SERVING
	}
	for _, name := range servedServices {
		s.health.SetServingStatus(name, status)
	}
	if err != nil && s.wasReady.Swap(false) {
		s.cfg.Logger.Error("not ready", "error", err)
	} else if err == nil && !s.wasReady.Swap(true) {
		s.cfg.Logger.Info("ready")
	}
	return err
}

func (s *Server) watchReadiness(ctx context.Context) {
	every(ctx, readinessInterval, readinessInterval, func() { _ = s.checkReadiness(ctx) })
}

// ready answers /readyz: the store answers and the signing keys are loaded.
func (s *Server) ready(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	if err := s.checkReadiness(r.Context()); err != nil {
		w.WriteHeader(http.StatusServiceUnavailable)
		_, _ = w.Write([]byte(`{"status":"not ready"}`))
		return
	}
	_, _ = w.Write([]byte(`{"status":"ready"}`))
}
