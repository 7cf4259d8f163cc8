package interop_test

import (
	"net"
	"strconv"
	"testing"

	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
)

// startIssuer starts a test server whose issuer is its own HTTP address, as
// relying parties that discover the issuer need: their discovery fetches
// the issuer's metadata and checks it names the same issuer.
func startIssuer(t *testing.T, options ...func(*server.Config)) (*servertest.Env, string) {
	t.Helper()
	port := freePort(t)
	issuer := "http://127.0.0.1:" + strconv.Itoa(port)
	options = append([]func(*server.Config){func(cfg *server.Config) {
		cfg.HTTPAddr = "127.0.0.1:" + strconv.Itoa(port)
		cfg.Tokens.Issuer, cfg.Providers.Issuer, cfg.SignIn.BaseURL = issuer, issuer, issuer
	}}, options...)
	return servertest.Start(t, options...), issuer
}

// freePort is a TCP port free a moment ago on 127.0.0.1.
func freePort(t *testing.T) int {
	t.Helper()
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer listener.Close()
	return listener.Addr().(*net.TCPAddr).Port
}
