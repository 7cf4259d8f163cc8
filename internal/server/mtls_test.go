package server_test

import (
	"context"
	"crypto/sha256"
	"crypto/tls"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
)

func x5t(certificate tls.Certificate) string {
	sum := sha256.Sum256(certificate.Certificate[0])
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func boundCertificate(t *testing.T, token string) string {
	t.Helper()
	cnf, _ := payload(t, token)["cnf"].(map[string]any)
	value, _ := cnf["x5t#S256"].(string)
	return value
}

// A token issued over the gRPC port's mutual TLS is bound to the client's
// certificate (RFC 8705 §3): CheckToken takes it over a connection with
// that certificate, and refuses it without one.
func TestMutualTLSBindsTokensToTheClientCertificate(t *testing.T) {
	pki := servertest.NewPKI(t)
	e := startTLS(t, pki, true)
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	conn, err := grpc.NewClient(e.Server.GRPCAddr(), grpc.WithTransportCredentials(credentials.NewTLS(
		&tls.Config{RootCAs: pki.Pool, Certificates: []tls.Certificate{pki.Client}, MinVersion: tls.VersionTLS12})))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	client := authv1.NewAuthServiceClient(conn)
	resp, err := client.Token(ctx, servertest.PasswordRequest(servertest.UserName, servertest.UserPassword))
	if err != nil {
		t.Fatal(err)
	}
	if got := boundCertificate(t, resp.GetAccessToken()); got != x5t(pki.Client) {
		t.Fatalf("cnf x5t#S256 is %q, want the client certificate's %q", got, x5t(pki.Client))
	}
	if resp.GetTokenType() != "Bearer" {
		t.Errorf("a certificate-bound token's type is %q, want Bearer (RFC 8705 §3)", resp.GetTokenType())
	}
	if _, err := client.CheckToken(servertest.WithBearer(resp.GetAccessToken()), &authv1.CheckTokenRequest{}); err != nil {
		t.Fatalf("CheckToken over the certificate's connection: %v", err)
	}
}

// Behind a TLS-terminating proxy named by --client-cert-proxies, the
// proxy's Client-Cert header (RFC 9440) binds the token; a token bound to
// one certificate is refused with another's, and with none. A server that
// trusts no proxy ignores the header: a certificate is public, so the
// header alone proves nothing.
func TestClientCertHeaderOfATrustedProxyBindsTokens(t *testing.T) {
	t.Parallel()
	first, second := servertest.NewPKI(t).Client, servertest.NewPKI(t).Client
	header := func(certificate tls.Certificate) string {
		return ":" + base64.StdEncoding.EncodeToString(certificate.Certificate[0]) + ":"
	}
	form := url.Values{"grant_type": {"password"}, "username": {servertest.UserName}, "password": {servertest.UserPassword}}.Encode()
	tokenWith := func(e *servertest.Env, certificate string) string {
		answer := send(t, e, http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded", form, map[string]string{"Client-Cert": certificate})
		access, _ := answer.body["access_token"].(string)
		if access == "" {
			t.Fatalf("token: %d %v", answer.status, answer.body)
		}
		return access
	}

	trusting := servertest.Start(t, func(cfg *server.Config) { cfg.ClientCertificateProxies = []string{"127.0.0.1", "::1"} })
	access := tokenWith(trusting, header(first))
	if got := boundCertificate(t, access); got != x5t(first) {
		t.Fatalf("cnf x5t#S256 is %q, want %q", got, x5t(first))
	}
	for name, certificate := range map[string]string{"its certificate": header(first), "another certificate": header(second), "no certificate": ""} {
		h := map[string]string{"Authorization": "Bearer " + access}
		if certificate != "" {
			h["Client-Cert"] = certificate
		}
		answer := send(t, trusting, http.MethodGet, "/v1/auth/check", "", "", h)
		if want := name == "its certificate"; (answer.status == http.StatusOK) != want {
			t.Errorf("REST CheckToken with %s: %d %v", name, answer.status, answer.body)
		}
	}
	if _, err := authv1.NewAuthServiceClient(trusting.Conn).CheckToken(servertest.WithBearer(access), &authv1.CheckTokenRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Errorf("gRPC CheckToken without the certificate: %v, want Unauthenticated", err)
	}
	// A malformed Client-Cert of a trusted proxy refuses what binds or
	// checks a certificate, each in its endpoint's error format, and
	// nothing else: a health check or the key set is still served.
	malformed := map[string]string{"Client-Cert": ":bm90IGEgY2VydGlmaWNhdGU=:"}
	if answer := send(t, trusting, http.MethodPost, "/oauth2/token", "application/x-www-form-urlencoded", form, malformed); answer.status != http.StatusBadRequest ||
		answer.body["error"] != "invalid_request" || !strings.Contains(fmt.Sprint(answer.body["error_description"]), "Client-Cert") {
		t.Errorf("/oauth2/token with a malformed Client-Cert of a trusted proxy: %d %v", answer.status, answer.body)
	}
	malformed["Authorization"] = "Bearer " + access
	if answer := send(t, trusting, http.MethodGet, "/v1/auth/check", "", "", malformed); answer.status != http.StatusBadRequest ||
		!strings.Contains(fmt.Sprint(answer.body["message"]), "Client-Cert") {
		t.Errorf("REST CheckToken with a malformed Client-Cert of a trusted proxy: %d %v", answer.status, answer.body)
	}
	for _, path := range []string{"/healthz", "/.well-known/jwks.json"} {
		if answer := send(t, trusting, http.MethodGet, path, "", "", malformed); answer.status != http.StatusOK {
			t.Errorf("%s with a malformed Client-Cert of a trusted proxy: %d %v", path, answer.status, answer.body)
		}
	}

	ignoring := servertest.Start(t)
	if got := boundCertificate(t, tokenWith(ignoring, header(first))); got != "" {
		t.Errorf("a server trusting no proxy bound a token to a Client-Cert header: %q", got)
	}
}
