package server_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"google.golang.org/grpc/codes"

	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/sqlite"
)

func jwksKids(t *testing.T, e *env) map[string]bool {
	t.Helper()
	resp, err := http.Get(e.HTTPBase() + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var doc struct {
		Keys []struct {
			Kid string `json:"kid"`
		} `json:"keys"`
	}
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	kids := map[string]bool{}
	for _, key := range doc.Keys {
		kids[key.Kid] = true
	}
	return kids
}

func headerKid(t *testing.T, token string) string {
	t.Helper()
	header := decodeSegment(t, token, 0)
	kid, _ := header["kid"].(string)
	return kid
}

func decodeSegment(t *testing.T, token string, index int) map[string]any {
	t.Helper()
	parts := bytes.Split([]byte(token), []byte("."))
	raw, err := b64decode(string(parts[index]))
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		t.Fatal(err)
	}
	return m
}

// TestSigningKeyRotation walks a key through its life: published as next,
// signing once active, published while retired, deleted once its tokens
// have expired; tokens keep verifying throughout.
func TestSigningKeyRotation(t *testing.T) {
	e := startServer(t)
	tr := transports(e)["gRPC"]
	before, code := tr.token(t, passwordRequest("alice", "wonderland"))
	wantCode(t, "Token", code, codes.OK)
	firstKid := headerKid(t, before.GetAccessToken())
	published := jwksKids(t, e)
	if len(published) != 2 || !published[firstKid] {
		t.Fatalf("JWKS %v: want the active key and a next key", published)
	}
	var nextKid string
	for kid := range published {
		if kid != firstKid {
			nextKid = kid
		}
	}

	// Not due yet: nothing changes.
	e.Server.MaintainKeys(context.Background())
	if after, _ := tr.token(t, passwordRequest("alice", "wonderland")); headerKid(t, after.GetAccessToken()) != firstKid {
		t.Fatal("the key rotated before it was due")
	}

	e.Clock.Advance(servertest.KeyRotationPeriod)
	e.Server.MaintainKeys(context.Background())
	after, code := tr.token(t, passwordRequest("alice", "wonderland"))
	wantCode(t, "Token after rotation", code, codes.OK)
	if headerKid(t, after.GetAccessToken()) != nextKid {
		t.Fatalf("after rotation the signer is %s, want the former next key %s", headerKid(t, after.GetAccessToken()), nextKid)
	}
	published = jwksKids(t, e)
	if len(published) != 3 || !published[firstKid] || !published[nextKid] {
		t.Fatalf("JWKS after rotation %v: want retired, active and a new next key", published)
	}

	// Once every token of the retired key has expired, it is deleted.
	e.Clock.Advance(2 * servertest.KeyRotationPeriod / 24)
	e.Server.MaintainKeys(context.Background())
	if published := jwksKids(t, e); published[firstKid] || len(published) != 2 {
		t.Fatalf("JWKS %v still holds the expired retired key", published)
	}

	// Every private key at rest is encrypted.
	stored, err := e.Store.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range stored {
		if !keys.IsSealed(key.PrivateKey) {
			t.Errorf("signing key %s (%s) is stored unencrypted", key.ID, key.State)
		}
	}
	who := newCallers(t, e, tr)
	if _, code := claim(t, tr, who.service, register(t, tr, who.service, "sealed-site")[0]); code != codes.OK {
		t.Fatalf("claim: %v", code)
	}
	provider, err := e.Store.GetProvider(context.Background(), "sealed-site")
	if err != nil || !keys.IsSealed(provider.Credentials.PrivateKey) {
		t.Fatalf("the provider's private key is stored unencrypted (%v)", err)
	}
}

func b64decode(s string) ([]byte, error) { return base64.RawURLEncoding.DecodeString(s) }

// TestStartEncryptsKeysLeftInTheClear: a store whose keys were written
// before a key encryption key was configured holds no clear private key once
// a server with one has started, and the same keys keep signing.
func TestStartEncryptsKeysLeftInTheClear(t *testing.T) {
	ctx := context.Background()
	store, err := sqlite.Open(ctx, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Load(ctx, store, jwa.ES256, &keys.Sealer{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := store.CreateProviders(ctx, []storage.Provider{{ID: "p", ClaimTokenHash: []byte("claim"), ClaimExpiresAt: time.Now().Add(time.Hour), CreatedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	clearProviderKey := []byte("provider private key")
	if err := store.ClaimProviders(ctx, []storage.ProviderCredentials{{ProviderID: "p", KeyID: "kid-p", PublicKey: []byte("public"), PrivateKey: clearProviderKey, RefreshTokenHash: []byte("refresh")}}, time.Now()); err != nil {
		t.Fatal(err)
	}
	clearKids := map[string]bool{}
	before, _ := store.ListSigningKeys(ctx)
	for _, key := range before {
		clearKids[key.ID] = !keys.IsSealed(key.PrivateKey)
	}

	e := servertest.StartOnStore(t, store)
	after, _ := store.ListSigningKeys(ctx)
	for _, key := range after {
		if clearKids[key.ID] && !keys.IsSealed(key.PrivateKey) {
			t.Fatalf("signing key %s is still in the clear", key.ID)
		}
	}
	provider, _ := store.GetProvider(ctx, "p")
	if !keys.IsSealed(provider.Credentials.PrivateKey) || bytes.Contains(provider.Credentials.PrivateKey, clearProviderKey) {
		t.Fatal("the provider's key is still in the clear")
	}
	if !strings.Contains(e.Logs.String(), `"keys":3`) {
		t.Fatalf("no log line says how many keys were encrypted:\n%s", e.Logs.String())
	}
	response, code := transports(e)["gRPC"].token(t, passwordRequest("alice", "wonderland"))
	wantCode(t, "Token", code, codes.OK)
	if kid := headerKid(t, response.GetAccessToken()); !clearKids[kid] {
		t.Fatalf("tokens are signed by %s, not by the key that signed before", kid)
	}
}
