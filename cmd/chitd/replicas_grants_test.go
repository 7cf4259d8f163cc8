package main

import (
	"context"
	"encoding/json"
	"maps"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/storage/postgres/postgrestest"
)

// propagation is the revocation propagation time the README states, with
// slack for a loaded machine.
const propagation = 3*time.Second + 2*time.Second

// TestChangesEndAccessOnEveryReplica: a token that replica B has checked
// (and cached) is refused by B's CheckToken, introspection and userinfo
// within the propagation time of a delete, role change or scope removal
// made elsewhere (chitd's commands, on the shared database), and of a
// provider renew made on replica A.
func TestChangesEndAccessOnEveryReplica(t *testing.T) {
	dsn := postgrestest.FreshDSN(t)
	if testing.Short() {
		t.Skip("starts two processes")
	}
	binary := buildChitd(t)
	chitd := func(t *testing.T, stdin string, args ...string) string {
		t.Helper()
		cmd := exec.Command(binary, append(args, "--db", dsn)...)
		cmd.Env = append(os.Environ(), testKEK)
		cmd.Stdin = strings.NewReader(stdin)
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("chitd %v: %v %s", args, err, out)
		}
		return string(out)
	}
	chitd(t, "", "migrate")
	for _, name := range []string{"deleted", "demoted", "narrowed", "keyholder"} {
		chitd(t, "wonderland\n", "user", "create", name, "--password-stdin", "--role", "admin", "--scope", "read", "--scope", "write",
			"--argon2-memory", "8192", "--argon2-iterations", "1")
	}
	serviceSecret := secretFrom(t, chitd(t, "", "service", "create", "billing"))
	a, b := startReplica(t, binary, dsn), startReplica(t, binary, dsn)
	ctx := context.Background()

	// checks are the three ways replica B vouches for an access token.
	// The subtests run in parallel, each on a principal of its own: each
	// waits up to the propagation time.
	checks := map[string]func(token string) bool{
		"CheckToken": func(token string) bool {
			_, err := b.auth.CheckToken(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), &authv1.CheckTokenRequest{})
			return err == nil
		},
		"introspection": func(token string) bool {
			req, _ := http.NewRequest(http.MethodPost, "http://"+b.httpAddr+"/oauth2/introspect", strings.NewReader(url.Values{"token": {token}}.Encode()))
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
			req.SetBasicAuth("billing", serviceSecret)
			var body struct{ Active bool }
			if resp, err := http.DefaultClient.Do(req); err == nil {
				defer resp.Body.Close()
				_ = json.NewDecoder(resp.Body).Decode(&body)
			}
			return body.Active
		},
		"userinfo": func(token string) bool {
			req, _ := http.NewRequest(http.MethodGet, "http://"+b.httpAddr+"/userinfo", nil)
			req.Header.Set("Authorization", "Bearer "+token)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				return false
			}
			resp.Body.Close()
			return resp.StatusCode == http.StatusOK
		},
	}
	refusedWithinPropagation := func(t *testing.T, token string, without string, change func()) {
		t.Helper()
		checks := maps.Clone(checks)
		delete(checks, without)
		for name, vouches := range checks {
			if !vouches(token) {
				t.Fatalf("%s on replica B refuses the token before the change", name)
			}
		}
		change()
		changed := time.Now()
		for name, vouches := range checks {
			for vouches(token) {
				if time.Since(changed) > propagation {
					t.Fatalf("%s on replica B still vouches for the token %v after the change", name, time.Since(changed))
				}
				time.Sleep(100 * time.Millisecond)
			}
		}
		t.Logf("refused by replica B %v after the change", time.Since(changed).Round(time.Millisecond))
	}
	signIn := func(t *testing.T, name string) string {
		t.Helper()
		resp, err := a.auth.Token(ctx, &authv1.TokenRequest{Scope: "openid read write", Credential: &authv1.TokenRequest_PasswordCredential{
			PasswordCredential: &authv1.PasswordCredential{Username: name, Password: "wonderland"}}})
		if err != nil {
			t.Fatal(err)
		}
		return resp.GetAccessToken()
	}

	t.Run("delete", func(t *testing.T) {
		t.Parallel()
		refusedWithinPropagation(t, signIn(t, "deleted"), "", func() { chitd(t, "", "user", "delete", "deleted") })
	})
	t.Run("role change", func(t *testing.T) {
		t.Parallel()
		refusedWithinPropagation(t, signIn(t, "demoted"), "", func() { chitd(t, "", "user", "set-role", "demoted", "user") })
	})
	t.Run("scope removal", func(t *testing.T) {
		t.Parallel()
		refusedWithinPropagation(t, signIn(t, "narrowed"), "", func() { chitd(t, "", "user", "set-grants", "narrowed", "--scope", "read") })
	})
	t.Run("provider renew on replica A", func(t *testing.T) {
		t.Parallel()
		conn, err := grpc.NewClient(a.grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		service, err := a.auth.Token(ctx, &authv1.TokenRequest{Credential: &authv1.TokenRequest_ClientCredential{
			ClientCredential: &authv1.ClientCredential{ClientId: "billing", ClientSecret: serviceSecret}}})
		if err != nil {
			t.Fatal(err)
		}
		asService := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+service.GetAccessToken())
		providers := authv1.NewAuthProvidersClient(conn)
		registered, err := providers.Register(asService, &authv1.AuthProvidersRegisterRequest{Items: []*authv1.AuthProvidersRegisterRequestItem{{Id: "hippo"}}})
		if err != nil {
			t.Fatal(err)
		}
		claimed, err := providers.Claim(asService, &authv1.AuthProvidersClaimRequest{Items: []*authv1.AuthProvidersRegisterResponseItem{{ClaimToken: registered.GetResponses()[0].GetClaimToken()}}})
		if err != nil {
			t.Fatal(err)
		}
		refreshed, err := providers.Refresh(ctx, &authv1.AuthProvidersRefreshRequest{Items: []*authv1.RefreshToken{{RefreshToken: claimed.GetResponses()[0].GetRefreshToken()}}})
		if err != nil {
			t.Fatal(err)
		}
		token := refreshed.GetResponses()[0].GetAccessToken()
		// Provider tokens have no openid scope: CheckToken and introspection vouch for them.
		refusedWithinPropagation(t, token, "userinfo", func() {
			if _, err := providers.Renew(asService, &authv1.AuthProvidersRenewRequest{Items: []*authv1.FindByStringId{{Id: "hippo"}}}); err != nil {
				t.Fatal(err)
			}
		})
	})
	t.Run("API key revoked on replica A", func(t *testing.T) {
		t.Parallel()
		asKeyholder := metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+signIn(t, "keyholder"))
		created, err := a.auth.CreateApiKey(asKeyholder, &authv1.CreateApiKeyRequest{Name: "ci", Scopes: []string{"read"}})
		if err != nil {
			t.Fatal(err)
		}
		exchange := func() (*authv1.TokenResponse, error) {
			return b.auth.Token(ctx, &authv1.TokenRequest{Credential: &authv1.TokenRequest_ApiKeyCredential{
				ApiKeyCredential: &authv1.ApiKeyCredential{ApiKey: created.GetKey()}}})
		}
		exchanged, err := exchange()
		if err != nil {
			t.Fatalf("the key on replica B: %v", err)
		}
		// An API key's token has no openid scope: userinfo is not for it.
		refusedWithinPropagation(t, exchanged.GetAccessToken(), "userinfo", func() {
			if _, err := a.auth.RevokeApiKey(asKeyholder, &authv1.RevokeApiKeyRequest{Id: created.GetApiKey().GetId()}); err != nil {
				t.Fatal(err)
			}
		})
		if _, err := exchange(); err == nil {
			t.Fatal("replica B still exchanges a revoked key")
		}
	})
}

// secretFrom reads "client_secret: ..." from a create command's output.
func secretFrom(t *testing.T, out string) string {
	t.Helper()
	for _, line := range strings.Split(out, "\n") {
		if secret, ok := strings.CutPrefix(line, "client_secret: "); ok {
			return strings.TrimSpace(secret)
		}
	}
	t.Fatalf("no client_secret in %q", out)
	return ""
}
