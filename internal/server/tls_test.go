package server_test

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"math/big"
	"net"
	"net/http"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"

	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
	authv1 "github.com/chit-auth/chit/sdk/gen/chit/auth/v1"
)

// testPKI is a CA with a server certificate for 127.0.0.1 and a client
// certificate, made fresh for each test.
type testPKI struct {
	pool   *x509.CertPool
	server tls.Certificate
	client tls.Certificate
}

func newTestPKI(t *testing.T) testPKI {
	t.Helper()
	caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	caTemplate := &x509.Certificate{
		SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "chit test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IsCA: true, BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign,
	}
	caDER, err := x509.CreateCertificate(rand.Reader, caTemplate, caTemplate, &caKey.PublicKey, caKey)
	if err != nil {
		t.Fatal(err)
	}
	ca, _ := x509.ParseCertificate(caDER)
	issue := func(serial int64, name string, usage x509.ExtKeyUsage, ips []net.IP) tls.Certificate {
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		template := &x509.Certificate{
			SerialNumber: big.NewInt(serial), Subject: pkix.Name{CommonName: name},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
			ExtKeyUsage: []x509.ExtKeyUsage{usage}, IPAddresses: ips, KeyUsage: x509.KeyUsageDigitalSignature,
		}
		der, err := x509.CreateCertificate(rand.Reader, template, ca, &key.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key}
	}
	pool := x509.NewCertPool()
	pool.AddCert(ca)
	return testPKI{
		pool:   pool,
		server: issue(2, "chitd", x509.ExtKeyUsageServerAuth, []net.IP{net.ParseIP("127.0.0.1")}),
		client: issue(3, "ucloud", x509.ExtKeyUsageClientAuth, nil),
	}
}

func startTLS(t *testing.T, pki testPKI, mutual bool) *env {
	t.Helper()
	serverTLS := &tls.Config{Certificates: []tls.Certificate{pki.server}, MinVersion: tls.VersionTLS12}
	clientTLS := &tls.Config{RootCAs: pki.pool, MinVersion: tls.VersionTLS12}
	if mutual {
		serverTLS.ClientCAs, serverTLS.ClientAuth = pki.pool, tls.RequireAndVerifyClientCert
		clientTLS.Certificates = []tls.Certificate{pki.client}
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
	_, err = authv1.NewAuthServiceClient(conn).Token(ctx, passwordRequest("alice", "wonderland"))
	return err
}

func httpsToken(t *testing.T, e *env, pool *x509.CertPool) (*http.Response, error) {
	t.Helper()
	client := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}, Timeout: 10 * time.Second}
	return client.Post("https://"+e.Server.HTTPAddr()+"/v1/auth/token", "application/json",
		strings.NewReader(`{"passwordCredential":{"username":"alice","password":"wonderland"}}`))
}

func TestTLSOnBothPorts(t *testing.T) {
	pki := newTestPKI(t)
	e := startTLS(t, pki, false)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tokenOver(ctx, credentials.NewTLS(&tls.Config{RootCAs: pki.pool}), e.Server.GRPCAddr()); err != nil {
		t.Fatalf("gRPC over TLS: %v", err)
	}
	if err := tokenOver(ctx, insecure.NewCredentials(), e.Server.GRPCAddr()); err == nil {
		t.Fatal("a plaintext gRPC call reached a TLS port")
	}
	resp, err := httpsToken(t, e, pki.pool)
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
	pki := newTestPKI(t)
	e := startTLS(t, pki, true)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := tokenOver(ctx, credentials.NewTLS(&tls.Config{RootCAs: pki.pool}), e.Server.GRPCAddr()); err == nil {
		t.Fatal("a gRPC client without a certificate was served")
	}
	if err := tokenOver(ctx, credentials.NewTLS(&tls.Config{RootCAs: pki.pool, Certificates: []tls.Certificate{pki.client}}), e.Server.GRPCAddr()); err != nil {
		t.Fatalf("gRPC with a client certificate: %v", err)
	}
	// The REST port asks browsers for no certificate; its calls reach the
	// handlers in memory.
	resp, err := httpsToken(t, e, pki.pool)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("REST beside mTLS gRPC: HTTP %d", resp.StatusCode)
	}
}
