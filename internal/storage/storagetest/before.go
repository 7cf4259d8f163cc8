package storagetest

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

// BeforeLoginRecords are refresh-token rows as a store wrote them before a
// login's record was keyed by its family: records of one token (generation
// 0), current and rotated, and a login's record (generation 3, with the
// token before its current one) in the same table. A store's migration test
// writes them with Statements into a database migrated up to the version
// before, migrates it, and checks them with Check.
type BeforeLoginRecords struct {
	current, rotated, login storage.RefreshToken
	previous                []byte
}

// RowsFromBefore makes the rows.
func RowsFromBefore(t *testing.T) BeforeLoginRecords {
	current := newRefreshToken(t, "alice")
	current.Generation, current.LoginSalt = 0, nil
	rotated := current
	rotated.Hash, rotated.RotatedAt, rotated.ReplacedBy, rotated.SealedSuccessor = randomHash(t), base.Add(-time.Minute), current.Hash, []byte("sealed")
	login := newRefreshToken(t, "bob")
	login.Generation, login.SealedSuccessor = 3, []byte("sealed for the previous token")
	return BeforeLoginRecords{current: current, rotated: rotated, login: login, previous: randomHash(t)}
}

// Statement is one SQL statement with its arguments.
type Statement struct {
	SQL  string
	Args []any
}

// Statements inserts the rows; placeholder is "?" (SQLite) or "$" (PostgreSQL,
// numbered). Times are Unix nanoseconds, as both stores keep them.
func (b BeforeLoginRecords) Statements(placeholder string) []Statement {
	columns := []string{"hash", "family_id", "subject", "role", "scope", "client_id", "audience", "issued_at", "expires_at", "family_expires_at",
		"rotated_at", "replaced_by", "sealed_successor", "generation", "login_salt", "previous_hash", "previous_rotated_at"}
	marks := make([]string, len(columns))
	for i := range marks {
		marks[i] = placeholder
		if placeholder == "$" {
			marks[i] = fmt.Sprintf("$%d", i+1)
		}
	}
	insert := `INSERT INTO refresh_tokens (` + strings.Join(columns, ", ") + `) VALUES (` + strings.Join(marks, ", ") + `)`
	unix := func(t time.Time) any {
		if t.IsZero() {
			return nil
		}
		return t.UnixNano()
	}
	// A nil []byte goes in as NULL, as the stores wrote it.
	bytesOrNull := func(b []byte) any {
		if b == nil {
			return nil
		}
		return b
	}
	row := func(t storage.RefreshToken, previous []byte, previousRotatedAt time.Time) Statement {
		return Statement{SQL: insert, Args: []any{t.Hash, t.FamilyID, t.Subject, t.Role, t.Scope, t.ClientID, t.Audience, unix(t.IssuedAt),
			unix(t.ExpiresAt), unix(t.FamilyExpiresAt), unix(t.RotatedAt), bytesOrNull(t.ReplacedBy), bytesOrNull(t.SealedSuccessor),
			int64(t.Generation), bytesOrNull(t.LoginSalt), bytesOrNull(previous), unix(previousRotatedAt)}}
	}
	return []Statement{row(b.current, nil, time.Time{}), row(b.rotated, nil, time.Time{}), row(b.login, b.previous, b.login.IssuedAt)}
}

// Check reads every row back through s, migrated, and rotates the current
// tokens on.
func (b BeforeLoginRecords) Check(t *testing.T, s storage.Store) {
	t.Helper()
	ctx := context.Background()
	if got, err := s.GetRefreshToken(ctx, "", b.current.Hash); err != nil || !got.RotatedAt.IsZero() || got.FamilyID != b.current.FamilyID {
		t.Fatalf("a current token of one record = %+v, %v", got, err)
	}
	if got, err := s.GetRefreshToken(ctx, "", b.rotated.Hash); err != nil || !bytes.Equal(got.ReplacedBy, b.current.Hash) || string(got.SealedSuccessor) != "sealed" {
		t.Fatalf("a rotated token of one record = %+v, %v", got, err)
	}
	if got, err := s.GetRefreshToken(ctx, b.login.FamilyID, b.login.Hash); err != nil || got.Generation != 3 || !bytes.Equal(got.LoginSalt, b.login.LoginSalt) ||
		got.ClientID != b.login.ClientID || got.Audience != b.login.Audience || !sameInstant(got.FamilyExpiresAt, b.login.FamilyExpiresAt) {
		t.Fatalf("a login's current token = %+v, %v", got, err)
	}
	if got, err := s.GetRefreshToken(ctx, b.login.FamilyID, b.previous); err != nil || got.Generation != 2 || !bytes.Equal(got.ReplacedBy, b.login.Hash) ||
		string(got.SealedSuccessor) != "sealed for the previous token" {
		t.Fatalf("a login's previous token = %+v, %v", got, err)
	}
	if _, err := s.GetRefreshToken(ctx, "", b.login.Hash); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a login's token is found as a record of one token: %v", err)
	}
	next := successorOf(t, b.login, base.Add(time.Minute))
	if err := s.RotateRefreshToken(ctx, b.login.Hash, next, nil); err != nil {
		t.Fatalf("rotating the login: %v", err)
	}
	first := successorOf(t, b.current, base.Add(time.Minute))
	first.LoginSalt = []byte("salt")
	if err := s.RotateRefreshToken(ctx, b.current.Hash, first, nil); err != nil {
		t.Fatalf("rotating a token of one record: %v", err)
	}
	if got, err := s.GetRefreshLogin(ctx, b.current.FamilyID); err != nil || !bytes.Equal(got.Hash, first.Hash) {
		t.Fatalf("the login's record after its first rotation = %+v, %v", got, err)
	}
}
