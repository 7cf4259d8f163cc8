package server_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/server/servertest"
)

func TestMetricsAndReadiness(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	for _, tr := range servertest.Transports(e) {
		_, code := tr.Token(t, servertest.PasswordRequest("alice", "wonderland"))
		servertest.WantCode(t, "Token", code, codes.OK)
		_, code = tr.Token(t, servertest.ClientRequest("billing", e.ServiceSecret))
		servertest.WantCode(t, "client credentials", code, codes.OK)
		who := servertest.NewCallers(t, e, tr)
		id := "metered-" + servertest.TransportName(tr)
		credentials, code := servertest.Claim(t, tr, who.Service, servertest.Register(t, tr, who.Service, id)...)
		servertest.WantCode(t, "claim", code, codes.OK)
		_, code = servertest.ProviderRefresh(t, tr, credentials[0].GetRefreshToken())
		servertest.WantCode(t, "provider refresh", code, codes.OK)
		orchestrated := &authv1.AuthProvidersRefreshAsOrchestratorResponse{}
		servertest.WantCode(t, "refreshAsOrchestrator", tr.Invoke(t, authv1.AuthProviders_RefreshAsOrchestrator_FullMethodName, who.Orchestrator,
			&authv1.AuthProvidersRefreshAsOrchestratorRequest{Items: []*authv1.AuthProvidersRefreshAsProviderRequestItem{{ProviderId: id}}}, orchestrated), codes.OK)
	}
	status, body := servertest.Get(t, e.HTTPBase()+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d", status)
	}
	for _, want := range []string{
		`chit_rpc_requests_total{code="OK",method="/chit.auth.v1.AuthService/Token",transport="grpc"} 5`,
		`chit_rpc_requests_total{code="OK",method="/chit.auth.v1.AuthService/Token",transport="rest"} 5`,
		`chit_tokens_issued_total{kind="password"} 4`,
		`chit_tokens_issued_total{kind="client_credentials"} 6`,
		`chit_tokens_issued_total{kind="provider"} 2`,
		`chit_tokens_issued_total{kind="provider_orchestrator"} 2`,
		`chit_rpc_duration_seconds_bucket`,
		`chit_signing_key_age_seconds`,
		`process_resident_memory_bytes`,
		`chit_store_duration_seconds_count{operation="GetUser"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if status, body := servertest.Get(t, e.HTTPBase()+"/readyz"); status != http.StatusOK || !strings.Contains(body, "ready") {
		t.Fatalf("/readyz: %d %s", status, body)
	}
}

// Readiness over HTTP and the gRPC health service agree: both report the
// Chit services not serving once the store stops answering, while the
// process itself (the empty service name, /healthz) stays live.
func TestReadinessMatchesGRPCHealth(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	health := grpc_health_v1.NewHealthClient(e.Conn)
	serviceStatus := func(name string) grpc_health_v1.HealthCheckResponse_ServingStatus {
		t.Helper()
		resp, err := health.Check(context.Background(), &grpc_health_v1.HealthCheckRequest{Service: name})
		if err != nil {
			t.Fatalf("health check of %q: %v", name, err)
		}
		return resp.GetStatus()
	}
	for _, name := range []string{"chit.auth.v1.AuthService", "chit.auth.v1.AuthProviders", ""} {
		if got := serviceStatus(name); got != grpc_health_v1.HealthCheckResponse_SERVING {
			t.Fatalf("%q is %v before the outage", name, got)
		}
	}
	if err := e.Store.Close(); err != nil {
		t.Fatal(err)
	}
	if status, body := servertest.Get(t, e.HTTPBase()+"/readyz"); status != http.StatusServiceUnavailable {
		t.Fatalf("/readyz with the store closed: %d %s", status, body)
	}
	for _, name := range []string{"chit.auth.v1.AuthService", "chit.auth.v1.AuthProviders"} {
		if got := serviceStatus(name); got != grpc_health_v1.HealthCheckResponse_NOT_SERVING {
			t.Fatalf("%q is %v with the store closed", name, got)
		}
	}
	if got := serviceStatus(""); got != grpc_health_v1.HealthCheckResponse_SERVING {
		t.Fatalf("liveness is %v with the store closed", got)
	}
	if status, _ := servertest.Get(t, e.HTTPBase()+"/healthz"); status != http.StatusOK {
		t.Fatalf("/healthz with the store closed: %d", status)
	}
}
