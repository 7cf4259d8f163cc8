package storagetest

import (
	"context"
	"fmt"
	"maps"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

// KeysFromBeforeFamilies are signing-key rows as a store could hold them
// before one active and one next key per algorithm was enforced: replicas
// that started at once on an empty store each stored an active and a next
// ES256 key. A store's migration test writes them with Statements into a
// database migrated up to the version before, migrates it, and checks with
// Check that the newest of each state is kept and the others are retired.
type KeysFromBeforeFamilies struct{ keys []storage.SigningKey }

// SigningKeysFromBefore makes the rows.
func SigningKeysFromBefore() KeysFromBeforeFamilies {
	return KeysFromBeforeFamilies{keys: []storage.SigningKey{
		familyKey("old-active", "ES256", storage.KeyActive, base),
		familyKey("new-active", "ES256", storage.KeyActive, base.Add(time.Second)),
		familyKey("old-next", "ES256", storage.KeyNext, base),
		familyKey("new-next", "ES256", storage.KeyNext, base.Add(time.Second)),
		familyKey("retired", "ES256", storage.KeyRetired, base.Add(-time.Hour)),
	}}
}

// Statements inserts the rows; placeholder is "?" (SQLite) or "$"
// (PostgreSQL, numbered).
func (k KeysFromBeforeFamilies) Statements(placeholder string) []Statement {
	marks := "?, ?, ?, ?, ?, ?"
	if placeholder == "$" {
		marks = "$1, $2, $3, $4, $5, $6"
	}
	var statements []Statement
	for _, key := range k.keys {
		statements = append(statements, Statement{
			SQL:  fmt.Sprintf(`INSERT INTO signing_keys (id, algorithm, private_key, public_key, state, created_at) VALUES (%s)`, marks),
			Args: []any{key.ID, key.Algorithm, key.PrivateKey, key.PublicKey, key.State, key.CreatedAt.UnixNano()},
		})
	}
	return statements
}

// Check verifies the migrated keys: the newest active and next key of the
// family are kept, the older ones retired (so still published), and the
// store refuses another active key from then on.
func (k KeysFromBeforeFamilies) Check(t *testing.T, s storage.Store) {
	t.Helper()
	keys, err := s.ListSigningKeys(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, key := range keys {
		got[key.ID] = key.State
		if key.State == storage.KeyRetired && key.ID != "retired" && key.RetiredAt.IsZero() {
			t.Errorf("%s was retired without a time", key.ID)
		}
	}
	want := map[string]string{"old-active": storage.KeyRetired, "new-active": storage.KeyActive, "old-next": storage.KeyRetired,
		"new-next": storage.KeyNext, "retired": storage.KeyRetired}
	if !maps.Equal(got, want) {
		t.Fatalf("after the migration %v, want %v", got, want)
	}
	if err := s.CreateSigningKey(context.Background(), familyKey("third", "ES256", storage.KeyActive, base)); err == nil {
		t.Fatal("a second active ES256 key was stored after the migration")
	}
}

// RowsOfAnOlderSchema are rows as an earlier schema version held them: the
// statements that write them into a database migrated up to that version,
// and the check that the store reads them right once fully migrated.
type RowsOfAnOlderSchema interface {
	Statements(placeholder string) []Statement
	Check(t *testing.T, s storage.Store)
}
