package server_test

import (
	"bytes"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"google.golang.org/grpc/codes"

	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/sqlite"
	"github.com/chit-auth/chit/internal/storage/sqlite/sqlitetest"
)

func jwksKids(t *testing.T, e *servertest.Env) map[string]bool {
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

// storedKid is the kid of the one key of algorithm in state.
func storedKid(t *testing.T, e *servertest.Env, algorithm, state string) string {
	t.Helper()
	stored, err := e.Store.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	var kids []string
	for _, key := range stored {
		if key.Algorithm == algorithm && key.State == state {
			kids = append(kids, key.ID)
		}
	}
	if len(kids) != 1 {
		t.Fatalf("%s %s keys: %v, want one", algorithm, state, kids)
	}
	return kids[0]
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
	t.Parallel()
	e := servertest.Start(t)
	tr := servertest.Transports(e)["gRPC"]
	before, code := tr.Token(t, servertest.PasswordRequest("alice", "wonderland"))
	servertest.WantCode(t, "Token", code, codes.OK)
	firstKid := headerKid(t, before.GetAccessToken())
	published := jwksKids(t, e)
	if len(published) != 4 || !published[firstKid] {
		t.Fatalf("JWKS %v: want the active key and a next key of ES256 and of RS256", published)
	}
	nextKid, rsActive, rsNext := storedKid(t, e, "ES256", storage.KeyNext), storedKid(t, e, "RS256", storage.KeyActive), storedKid(t, e, "RS256", storage.KeyNext)
	if !published[nextKid] || !published[rsActive] || !published[rsNext] {
		t.Fatalf("JWKS %v lacks a stored key", published)
	}

	// Not due yet: nothing changes.
	e.Server.MaintainKeys(context.Background())
	if after, _ := tr.Token(t, servertest.PasswordRequest("alice", "wonderland")); headerKid(t, after.GetAccessToken()) != firstKid {
		t.Fatal("the key rotated before it was due")
	}

	e.Clock.Advance(servertest.KeyRotationPeriod)
	e.Server.MaintainKeys(context.Background())
	after, code := tr.Token(t, servertest.PasswordRequest("alice", "wonderland"))
	servertest.WantCode(t, "Token after rotation", code, codes.OK)
	if headerKid(t, after.GetAccessToken()) != nextKid {
		t.Fatalf("after rotation the signer is %s, want the former next key %s", headerKid(t, after.GetAccessToken()), nextKid)
	}
	published = jwksKids(t, e)
	if len(published) != 6 || !published[firstKid] || !published[nextKid] || !published[rsActive] || !published[rsNext] {
		t.Fatalf("JWKS after rotation %v: want retired, active and a new next key of each family", published)
	}
	// The RS256 family rotated with it: its next key signs ID tokens now.
	if got := storedKid(t, e, "RS256", storage.KeyActive); got != rsNext {
		t.Fatalf("the RS256 active key is %s, want the former next %s", got, rsNext)
	}

	// Once every token of the retired keys has expired, they are deleted.
	e.Clock.Advance(2 * servertest.KeyRotationPeriod / 24)
	e.Server.MaintainKeys(context.Background())
	if published := jwksKids(t, e); published[firstKid] || published[rsActive] || len(published) != 4 {
		t.Fatalf("JWKS %v still holds the expired retired keys", published)
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
	who := servertest.NewCallers(t, e, tr)
	if _, code := servertest.Claim(t, tr, who.Service, servertest.Register(t, tr, who.Service, "sealed-site")[0]); code != codes.OK {
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
// a server with one has started, not even in the database's files (old pages,
// the WAL), and the same keys keep signing.
func TestStartEncryptsKeysLeftInTheClear(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	dataDir := t.TempDir()
	store, err := sqlite.Open(ctx, dataDir)
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
	// Rows stored after the provider's sit below its cell in the page, so
	// space its row frees is a hole there, not the page's free end.
	if err := store.CreateProviders(ctx, []storage.Provider{{ID: "q", ClaimTokenHash: []byte("claim-q"), ClaimExpiresAt: time.Now().Add(time.Hour), CreatedAt: time.Now()}}); err != nil {
		t.Fatal(err)
	}
	// The keys reach chit.db itself (closing the last connection checkpoints
	// the WAL into it). Updates there by a program that did not zero freed
	// space (an older chitd) moved the rows and left their old cells in its
	// pages; a rotation then rewrites them again, in the WAL.
	if err := store.Close(); err != nil {
		t.Fatal(err)
	}
	older, err := sql.Open("sqlite", "file:"+filepath.Join(dataDir, sqlite.FileName)+"?_pragma=secure_delete(0)&_pragma=busy_timeout(10000)")
	if err != nil {
		t.Fatal(err)
	}
	older.SetMaxOpenConns(1)
	for _, update := range []string{
		`UPDATE signing_keys SET algorithm = algorithm || ' ' WHERE rowid = (SELECT min(rowid) FROM signing_keys)`,
		`UPDATE providers SET key_id = key_id || ' ' WHERE id = 'p'`,
	} {
		if _, err := older.ExecContext(ctx, update); err != nil {
			t.Fatal(err)
		}
	}
	if err := older.Close(); err != nil {
		t.Fatal(err)
	}
	if store, err = sqlite.Open(ctx, dataDir); err != nil {
		t.Fatal(err)
	}
	if err := keys.Rotate(ctx, store, jwa.ES256, &keys.Sealer{}, time.Now(), 0, true); err != nil {
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
	clearKeys := map[string][]byte{"the provider's key": clearProviderKey}
	for _, key := range before {
		var private struct {
			D string `json:"d"`
		}
		if err := json.Unmarshal(key.PrivateKey, &private); err != nil || private.D == "" {
			t.Fatalf("signing key %s as stored in the clear is not a private JWK: %v", key.ID, err)
		}
		clearKeys["signing key "+key.ID] = key.PrivateKey
		clearKeys["signing key "+key.ID+"'s private scalar"] = []byte(private.D)
	}
	files, _ := filepath.Glob(filepath.Join(dataDir, sqlite.FileName+"*"))
	read := 0
	for _, file := range files {
		raw, err := os.ReadFile(file)
		if err != nil {
			t.Fatal(err)
		}
		read += len(raw)
		for name, clear := range clearKeys {
			if bytes.Contains(raw, clear) {
				t.Errorf("%s holds %s in the clear", filepath.Base(file), name)
			}
		}
	}
	if read == 0 {
		t.Fatalf("no database file in %s to read (%v)", dataDir, files)
	}
	if !strings.Contains(e.Logs.String(), `"keys":7`) {
		t.Fatalf("no log line says how many keys were encrypted:\n%s", e.Logs.String())
	}
	response, code := servertest.Transports(e)["gRPC"].Token(t, servertest.PasswordRequest("alice", "wonderland"))
	servertest.WantCode(t, "Token", code, codes.OK)
	if kid := headerKid(t, response.GetAccessToken()); !clearKids[kid] {
		t.Fatalf("tokens are signed by %s, not by the key that signed before", kid)
	}
}

// failingErasure is a store that cannot erase its files' clear copies (as
// when another process keeps reading the database).
type failingErasure struct{ *sqlite.Store }

func (failingErasure) EraseReplacedValues(context.Context) error {
	return errors.New("another connection kept reading")
}

// A start that encrypted the keys but could not erase their old copies
// serves (refusing would erase nothing, and the next start finds no key to
// encrypt) and tells the operator, at error level, how to finish.
func TestStartThatCannotEraseClearCopiesSaysHowToFinish(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	store, err := sqlite.Open(ctx, sqlitetest.Dir(t))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := keys.Load(ctx, store, jwa.ES256, &keys.Sealer{}, time.Now()); err != nil {
		t.Fatal(err)
	}
	e := servertest.StartOnStore(t, failingErasure{store})
	var logged bool
	for _, line := range strings.Split(e.Logs.String(), "\n") {
		logged = logged || (strings.Contains(line, `"level":"ERROR"`) && strings.Contains(line, "chitd keys encrypt"))
	}
	if !logged {
		t.Fatalf("no error-level line names `chitd keys encrypt`:\n%s", e.Logs.String())
	}
	_, code := servertest.Transports(e)["gRPC"].Token(t, servertest.PasswordRequest("alice", "wonderland"))
	servertest.WantCode(t, "Token after the start", code, codes.OK)
}

// Each family rotates when its own active key is due: an RS256 family
// rotated at another time (created by an upgrade, or rotated by hand) keeps
// its own rhythm, and the ES256 family's rotation leaves it alone.
func TestEachFamilyRotatesWhenItIsDue(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	ctx := context.Background()
	sealer, err := keys.NewSealer(servertest.KeyEncryptionKey)
	if err != nil {
		t.Fatal(err)
	}
	half := servertest.KeyRotationPeriod / 2
	e.Clock.Advance(half)
	if err := keys.RotateFamily(ctx, e.Store, jwa.RS256, sealer, e.Clock.Now(), 0, true); err != nil {
		t.Fatal(err)
	}
	rsActive, esActive, esNext := storedKid(t, e, "RS256", storage.KeyActive), storedKid(t, e, "ES256", storage.KeyActive), storedKid(t, e, "ES256", storage.KeyNext)
	e.Server.MaintainKeys(ctx) // picks up the hand rotation
	e.Clock.Advance(half)
	e.Server.MaintainKeys(ctx)
	if got := storedKid(t, e, "ES256", storage.KeyActive); got != esNext {
		t.Fatalf("the due ES256 family did not rotate: active %s, want %s (was %s)", got, esNext, esActive)
	}
	if got := storedKid(t, e, "RS256", storage.KeyActive); got != rsActive {
		t.Fatalf("the RS256 family, half a period old, rotated: active %s, want %s", got, rsActive)
	}
	rsNext := storedKid(t, e, "RS256", storage.KeyNext)
	e.Clock.Advance(half)
	e.Server.MaintainKeys(ctx)
	if got := storedKid(t, e, "RS256", storage.KeyActive); got != rsNext {
		t.Fatalf("the due RS256 family did not rotate: active %s, want %s", got, rsNext)
	}
}
