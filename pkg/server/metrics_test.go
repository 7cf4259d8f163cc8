package server_test

import (
	"io"
	"net/http"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
)

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

func TestMetricsAndReadiness(t *testing.T) {
	e := startServer(t)
	for _, tr := range transports(e) {
		_, code := tr.token(t, passwordRequest("alice", "wonderland"))
		wantCode(t, "Token", code, codes.OK)
		_, code = tr.token(t, clientRequest("billing", e.ServiceSecret))
		wantCode(t, "client credentials", code, codes.OK)
	}
	status, body := get(t, e.HTTPBase()+"/metrics")
	if status != http.StatusOK {
		t.Fatalf("/metrics: %d", status)
	}
	for _, want := range []string{
		`chit_rpc_requests_total{code="OK",method="/chit.auth.v1.AuthService/Token",transport="grpc"} 2`,
		`chit_rpc_requests_total{code="OK",method="/chit.auth.v1.AuthService/Token",transport="rest"} 2`,
		`chit_tokens_issued_total{kind="password"} 2`,
		`chit_tokens_issued_total{kind="client_credentials"} 2`,
		`chit_rpc_duration_seconds_bucket`,
		`chit_signing_key_age_seconds`,
		`process_resident_memory_bytes`,
		`chit_store_duration_seconds_count{operation="GetUser"}`,
	} {
		if !strings.Contains(body, want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
	if status, body := get(t, e.HTTPBase()+"/readyz"); status != http.StatusOK || !strings.Contains(body, "ready") {
		t.Fatalf("/readyz: %d %s", status, body)
	}
}
