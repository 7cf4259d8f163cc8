package server_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
)

func startTLS(t *testing.T, pki servertest.PKI, mutual bool) *servertest.Env {
	t.Helper()
	serverTLS := &tls.Config{Certificates: []tls.Certificate{pki.Server}, MinVersion: tls.VersionTLS12}
	clientTLS := &tls.Config{RootCAs: pki.Pool, MinVersion: tls.VersionTLS12}
	if mutual {
		serverTLS.ClientCAs, serverTLS.ClientAuth = pki.Pool, tls.RequireAndVerifyClientCert
		clientTLS.Certificates = []tls.Certificate{pki.Client}
	}
	servertest.ClientTLS = clientTLS
	t.Cleanup(func() { servertest.ClientTLS = nil })
	return servertest.Start(t, func(cfg *server.Config) { cfg.TLS = serverTLS })
}

func tokenOver(ctx context.Context, creds credentials.TransportCredentials, addr string) error {
	conn, err := grpc.NewClient(addr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return err
	}
	defer conn.Close()
	_, err = authv1.NewAuthServiceClient(conn).Token(ctx, servertest.PasswordRequest("alice", "wonderland"))
	return err
}

func httpsToken(t *testing.T, e *servertest.Env, pool *x509.CertPool) (*http.Response, error) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	return client.Post("https://"+e.Server.HTTPAddr()+"/v1/auth/token", "application/json",
		strings.NewReader(`{"passwordCredential":{"username":"alice","password":"wonderland"}}`))
}

func TestTLSOnBothPorts(t *testing.T) {
	pki := servertest.NewPKI(t)
	e := startTLS(t, pki, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tokenOver(ctx, credentials.NewTLS(&tls.Config{RootCAs: pki.Pool}), e.Server.GRPCAddr()); err != nil {
		t.Fatalf("gRPC over TLS: %v", err)
	}
	if err := tokenOver(ctx, insecure.NewCredentials(), e.Server.GRPCAddr()); err == nil {
		t.Fatal("a plaintext gRPC call reached a TLS port")
	}
	resp, err := httpsToken(t, e, pki.Pool)
	if err != nil {
		t.Fatalf("REST over TLS: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("REST over TLS: HTTP %d", resp.StatusCode)
	}
	if resp, err := http.Get("http://" + e.Server.HTTPAddr() + "/v1/auth/status"); err == nil {
		resp.Body.Close()
		if resp.StatusCode == http.StatusOK {
			t.Fatal("plain HTTP was served on the TLS port")
		}
	}
}

func TestMutualTLSOnTheGRPCPort(t *testing.T) {
	pki := servertest.NewPKI(t)
	e := startTLS(t, pki, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tokenOver(ctx, credentials.NewTLS(&tls.Config{RootCAs: pki.Pool}), e.Server.GRPCAddr()); err == nil {
		t.Fatal("a gRPC client without a certificate was served")
	}
	if err := tokenOver(ctx, credentials.NewTLS(&tls.Config{RootCAs: pki.Pool, Certificates: []tls.Certificate{pki.Client}}), e.Server.GRPCAddr()); err != nil {
		t.Fatalf("gRPC with a client certificate: %v", err)
	}
	// The REST port asks browsers for no certificate; its calls reach the
	// handlers in memory.
	resp, err := httpsToken(t, e, pki.Pool)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("REST beside mTLS gRPC: HTTP %d", resp.StatusCode)
	}
}
