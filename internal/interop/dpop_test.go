package interop_test

import (
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/pkg/dpop"
)

// openid-client, a DPoP client that is not Chit's, gets a DPoP-bound token
// by client credentials and calls a protected resource with it and a proof
// (RFC 9449), with Chit's server nonces on (it retries on use_dpop_nonce
// itself). The same token sent as a bearer token is refused with a DPoP
// challenge.
func TestOpenIDClientDPoP(t *testing.T) {
	t.Parallel()
	modules := openidClient(t)
	e, issuer := startIssuer(t, func(cfg *server.Config) {
		nonces, err := dpop.NewNonceSource(5*time.Minute, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		cfg.DPoP.Nonces = nonces
	})
	script, err := os.ReadFile(filepath.Join("testdata", "openid-client-dpop.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	// Node resolves an ES module's imports from the script's directory
	// upwards, so the script runs from a copy beside the installed modules.
	runnable := filepath.Join(modules, "dpop-client.mjs")
	if err := os.WriteFile(runnable, script, 0o600); err != nil {
		t.Fatal(err)
	}
	node := exec.CommandContext(t.Context(), "node", runnable)
	node.Env = append(os.Environ(), "ISSUER="+issuer, "CLIENT_ID="+servertest.ServiceName, "CLIENT_SECRET="+e.ServiceSecret)
	node.Stderr = os.Stderr
	out, err := node.Output()
	if err != nil {
		t.Fatalf("node: %v %s", err, out)
	}
	var result struct {
		Algorithms                          []string
		TokenType, Subject, BearerChallenge string
		CheckStatus, BearerStatus           int
		Error                               string
	}
	if err := json.Unmarshal(out, &result); err != nil {
		t.Fatalf("%v: %s", err, out)
	}
	if result.Error != "" || result.TokenType != "dpop" && result.TokenType != "DPoP" {
		t.Fatalf("openid-client: %s", out)
	}
	if result.CheckStatus != http.StatusOK || result.Subject != "service:"+servertest.ServiceName {
		t.Fatalf("openid-client's DPoP call of CheckToken: %s", out)
	}
	if result.BearerStatus != http.StatusUnauthorized || !strings.HasPrefix(result.BearerChallenge, "DPoP ") {
		t.Fatalf("the DPoP token as a bearer token: %s", out)
	}
}
