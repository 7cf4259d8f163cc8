// Package storagetest is the conformance suite every storage backend runs:
// one test per Store method, the sentinel errors, and the concurrency
// guarantees the core relies on (exactly one winner when many goroutines
// rotate one refresh token). A backend's own test calls Run with a factory.
package storagetest

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

// Factory returns a fresh, empty store for one test or benchmark. It
// registers its own clean-up with tb.Cleanup.
type Factory func(tb testing.TB) storage.Store

// Run runs the whole suite against the backend made by newStore.
func Run(t *testing.T, newStore Factory) {
	t.Helper()
	tests := []struct {
		name string
		run  func(t *testing.T, s storage.Store)
	}{
		{"Users", testUsers},
		{"DeleteUserRemovesRefreshTokens", testDeleteUserRemovesRefreshTokens},
		{"ServiceAccounts", testServiceAccounts},
		{"ServiceAccountTokenExchange", testServiceAccountTokenExchange},
		{"SigningKeys", testSigningKeys},
		{"RotateSigningKeys", testRotateSigningKeys},
		{"ConcurrentKeyRotationHasOneWinner", testConcurrentKeyRotation},
		{"SigningKeyFamilies", testSigningKeyFamilies},
		{"ClientIDTokenAlgorithm", testClientIDTokenAlgorithm},
		{"OneActiveAndNextKeyPerAlgorithm", testOneActiveAndNextPerAlgorithm},
		{"ReplacePrivateKeys", testReplacePrivateKeys},
		{"RefreshTokenRoundTrip", testRefreshTokenRoundTrip},
		{"RotateRefreshToken", testRotateRefreshToken},
		{"RecordAnswersForItsOwnTokens", testRecordAnswersForItsOwnTokens},
		{"RefreshTokenWithUser", testRefreshTokenWithUser},
		{"RotateOntoTakenSuccessor", testRotateOntoTakenSuccessor},
		{"OneRecordPerLogin", testOneRecordPerLogin},
		{"RecordOfOneTokenBecomesTheLogins", testRecordOfOneTokenBecomesTheLogins},
		{"RefreshTokenKeys", testRefreshTokenKeys},
		{"ConcurrentRotationHasOneWinner", testConcurrentRotation},
		{"DeleteExpiredRefreshTokens", testDeleteExpiredRefreshTokens},
		{"CreateProvidersIsAllOrNothing", testCreateProviders},
		{"ClaimAndRenewProviders", testClaimAndRenewProviders},
		{"ConcurrentClaimHasOneWinner", testConcurrentClaim},
		{"ListAndDeleteProviders", testListAndDeleteProviders},
		{"Clients", testClients},
		{"ClientOrigins", testClientOrigins},
		{"ClientLogout", testClientLogout},
		{"AuthorizationCodeIsSingleUse", testAuthorizationCodes},
		{"ConcurrentRedemptionHasOneWinner", testConcurrentRedemption},
		{"DeviceCodes", testDeviceCodes},
		{"ConcurrentDevicePollsHaveOneWinner", testConcurrentDevicePolls},
		{"ClientDeviceAuthorization", testClientDeviceAuthorization},
		{"ClientRequireDPoP", testClientRequireDPoP},
		{"ServiceAccountRequireDPoP", testServiceAccountRequireDPoP},
		{"RefreshTokenKeyBinding", testRefreshTokenKeyBinding},
		{"Sessions", testSessions},
		{"EndSessions", testEndSessions},
		{"SessionsAreBoundedPerSubject", testSessionsAreBoundedPerSubject},
		{"ConcurrentSessionStartsStayBounded", testConcurrentSessionStartsStayBounded},
		{"DeleteUserEndsSessions", testDeleteUserEndsSessions},
		{"RevokeRefreshFamily", testRevokeRefreshFamily},
		{"RevokeSubject", testRevokeSubject},
		{"RevocationEvents", testRevocationEvents},
		{"ParseRevocationCursor", testParseRevocationCursor},
		{"ListLogins", testListLogins},
		{"APIKeys", testAPIKeys},
		{"TokenStoredAfterItsFamilyWasRevoked", testTokenStoredAfterItsFamilyWasRevoked},
		{"LoginFailures", testLoginFailures},
		{"GrantsRoundTrip", testGrantsRoundTrip},
		{"ProfileRoundTrip", testProfileRoundTrip},
		{"UpdatePrincipals", testUpdatePrincipals},
		{"DeletePrincipalsEndAccess", testDeletePrincipalsEndAccess},
		{"SharedClientIDSpace", testSharedClientIDSpace},
		{"ConcurrentClientIDCreationHasOneWinner", testConcurrentClientIDCreation},
		{"RefuseAccessTokensKeepsRefreshTokens", testRefuseAccessTokens},
		{"IDsAndAudiencesStayApart", testIDsAndAudiencesStayApart},
		{"ConcurrentIDAndAudienceHaveOneWinner", testConcurrentIDAndAudienceHaveOneWinner},
		{"CleanupLock", testCleanupLock},
		{"DeleteExpiredInBatches", testDeleteExpiredInBatches},
		{"ConcurrentLoginFailuresAllCount", testConcurrentLoginFailures},
		{"FederationRules", testFederationRules},
		{"AssertionReplays", testAssertionReplays},
		{"ConcurrentAssertionRecordHasOneWinner", testConcurrentAssertionRecordHasOneWinner},
		{"SecurityEventStreams", testSecurityEventStreams},
		{"ConcurrentStreamLeaseHasOneWinner", testConcurrentStreamLeaseHasOneWinner},
	}
	// Each test has a store of its own, so they run in parallel: most of
	// their time is the backend's (fsyncs, round trips), not the CPU's.
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			tc.run(t, newStore(t))
		})
	}
}

// base is a fixed instant; backends must round-trip times at least to the
// microsecond, so the suite compares with Equal after truncation.
var base = time.Date(2026, 11, 23, 10, 0, 0, 123456000, time.UTC)

func sameInstant(a, b time.Time) bool {
	return a.Truncate(time.Microsecond).Equal(b.Truncate(time.Microsecond))
}

func randomHash(t testing.TB) []byte {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return b
}

func testUsers(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if _, err := s.GetUser(ctx, "alice"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetUser on empty store: got %v, want ErrNotFound", err)
	}
	alice := storage.User{Name: "alice", PasswordHash: "$argon2id$alice", Role: "USER", CreatedAt: base}
	if err := s.CreateUser(ctx, alice); err != nil {
		t.Fatalf("CreateUser: %v", err)
	}
	if err := s.CreateUser(ctx, storage.User{Name: "alice", PasswordHash: "other", Role: "ADMIN", CreatedAt: base}); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("CreateUser twice: got %v, want ErrAlreadyExists", err)
	}
	got, err := s.GetUser(ctx, "alice")
	if err != nil {
		t.Fatalf("GetUser: %v", err)
	}
	if got.Name != alice.Name || got.PasswordHash != alice.PasswordHash || got.Role != alice.Role || !sameInstant(got.CreatedAt, base) {
		t.Fatalf("GetUser = %+v, want %+v (the duplicate must not overwrite)", got, alice)
	}
	if err := s.CreateUser(ctx, storage.User{Name: "bob", PasswordHash: "h", Role: "ADMIN", CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	users, err := s.ListUsers(ctx, storage.Page{})
	if err != nil {
		t.Fatalf("ListUsers: %v", err)
	}
	if len(users) != 2 || users[0].Name != "alice" || users[1].Name != "bob" {
		t.Fatalf("ListUsers = %+v, want alice then bob", users)
	}
	for _, page := range []struct {
		page storage.Page
		want []string
	}{
		{storage.Page{Limit: 1}, []string{"alice"}},
		{storage.Page{After: "alice", Limit: 1}, []string{"bob"}},
		{storage.Page{After: "alice"}, []string{"bob"}},
		{storage.Page{After: "bob", Limit: 5}, nil},
	} {
		users, err := s.ListUsers(ctx, page.page)
		var names []string
		for _, user := range users {
			names = append(names, user.Name)
		}
		if err != nil || !slices.Equal(names, page.want) {
			t.Fatalf("ListUsers(%+v) = %v, %v; want %v", page.page, names, err, page.want)
		}
	}
	if err := s.UpdatePasswordHash(ctx, "alice", "stale", "$argon2id$new"); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("UpdatePasswordHash from a stale hash: got %v, want ErrConflict", err)
	}
	if err := s.UpdatePasswordHash(ctx, "alice", alice.PasswordHash, "$argon2id$new"); err != nil {
		t.Fatalf("UpdatePasswordHash: %v", err)
	}
	if got, _ := s.GetUser(ctx, "alice"); got.PasswordHash != "$argon2id$new" {
		t.Fatalf("hash after update = %q", got.PasswordHash)
	}
	if err := s.UpdatePasswordHash(ctx, "nobody", "a", "b"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("UpdatePasswordHash of a missing user: got %v, want ErrNotFound", err)
	}
	if err := s.DeleteUser(ctx, "alice", storage.SubjectRevocation{Subject: "alice", At: base}); err != nil {
		t.Fatalf("DeleteUser: %v", err)
	}
	if err := s.DeleteUser(ctx, "alice", storage.SubjectRevocation{Subject: "alice", At: base}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("DeleteUser twice: got %v, want ErrNotFound", err)
	}
	if _, err := s.GetUser(ctx, "alice"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetUser after delete: got %v, want ErrNotFound", err)
	}
}

func testDeleteUserRemovesRefreshTokens(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if err := s.CreateUser(ctx, storage.User{Name: "carol", PasswordHash: "h", Role: "USER", CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	carols, others := newRefreshToken(t, "carol"), newRefreshToken(t, "dave")
	for _, token := range []storage.RefreshToken{carols, others} {
		if err := s.CreateRefreshToken(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteUser(ctx, "carol", storage.SubjectRevocation{Subject: "carol", At: base}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRefreshToken(ctx, loginOf(carols), carols.Hash); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("deleted user's refresh token: got %v, want ErrNotFound", err)
	}
	if _, err := s.GetRefreshToken(ctx, loginOf(others), others.Hash); err != nil {
		t.Fatalf("another subject's refresh token must survive: %v", err)
	}
}

func testServiceAccounts(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if _, err := s.GetServiceAccount(ctx, "billing"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetServiceAccount on empty store: got %v, want ErrNotFound", err)
	}
	account := storage.ServiceAccount{ClientID: "billing", SecretHash: randomHash(t), CreatedAt: base}
	if err := s.CreateServiceAccount(ctx, account); err != nil {
		t.Fatalf("CreateServiceAccount: %v", err)
	}
	if err := s.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: "billing", SecretHash: randomHash(t), CreatedAt: base}); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("CreateServiceAccount twice: got %v, want ErrAlreadyExists", err)
	}
	got, err := s.GetServiceAccount(ctx, "billing")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.SecretHash, account.SecretHash) || !sameInstant(got.CreatedAt, base) {
		t.Fatalf("GetServiceAccount = %+v, want %+v", got, account)
	}
	if err := s.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: "audit", SecretHash: randomHash(t), CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	accounts, err := s.ListServiceAccounts(ctx, storage.Page{})
	if err != nil {
		t.Fatal(err)
	}
	if len(accounts) != 2 || accounts[0].ClientID != "audit" || accounts[1].ClientID != "billing" {
		t.Fatalf("ListServiceAccounts = %+v, want audit then billing", accounts)
	}
	if accounts, err := s.ListServiceAccounts(ctx, storage.Page{After: "audit", Limit: 1}); err != nil || len(accounts) != 1 || accounts[0].ClientID != "billing" {
		t.Fatalf("ListServiceAccounts after audit = %+v, %v; want billing", accounts, err)
	}
	if accounts, err := s.ListServiceAccounts(ctx, storage.Page{Limit: 1}); err != nil || len(accounts) != 1 || accounts[0].ClientID != "audit" {
		t.Fatalf("ListServiceAccounts, one = %+v, %v; want audit", accounts, err)
	}

	// A rotation writes the new secret and keeps the previous one with its
	// end; a later update that clears it clears both.
	rotated, previousEnds := randomHash(t), base.Add(time.Hour)
	if err := s.UpdateServiceAccount(ctx, "billing", func(a *storage.ServiceAccount) (*storage.SubjectRevocation, error) {
		a.PreviousSecretHash, a.PreviousSecretExpiresAt, a.SecretHash = a.SecretHash, previousEnds, rotated
		return nil, nil
	}); err != nil {
		t.Fatalf("UpdateServiceAccount rotating the secret: %v", err)
	}
	got, err = s.GetServiceAccount(ctx, "billing")
	if err != nil || !bytes.Equal(got.SecretHash, rotated) || !bytes.Equal(got.PreviousSecretHash, account.SecretHash) ||
		!sameInstant(got.PreviousSecretExpiresAt, previousEnds) {
		t.Fatalf("after a rotation GetServiceAccount = %+v, %v", got, err)
	}
	if err := s.UpdateServiceAccount(ctx, "billing", func(a *storage.ServiceAccount) (*storage.SubjectRevocation, error) {
		a.PreviousSecretHash, a.PreviousSecretExpiresAt = nil, time.Time{}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, err = s.GetServiceAccount(ctx, "billing"); err != nil || got.PreviousSecretHash != nil || !got.PreviousSecretExpiresAt.IsZero() {
		t.Fatalf("after clearing the previous secret GetServiceAccount = %+v, %v", got, err)
	}
	if err := s.DeleteServiceAccount(ctx, "billing", storage.SubjectRevocation{Subject: "service:billing", At: base}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteServiceAccount(ctx, "billing", storage.SubjectRevocation{Subject: "service:billing", At: base}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("DeleteServiceAccount twice: got %v, want ErrNotFound", err)
	}
}

func testSigningKeys(t *testing.T, s storage.Store) {
	ctx := context.Background()
	keys, err := s.ListSigningKeys(ctx)
	if err != nil || len(keys) != 0 {
		t.Fatalf("ListSigningKeys on empty store = %v, %v; want none", keys, err)
	}
	older := storage.SigningKey{ID: "k2", Algorithm: "ES256", PrivateKey: []byte(`{"d":"x"}`), PublicKey: []byte(`{"x":"y"}`), State: storage.KeyActive, CreatedAt: base, ActivatedAt: base}
	newer := storage.SigningKey{ID: "k1", Algorithm: "ES256", PrivateKey: []byte(`{"d":"z"}`), PublicKey: []byte(`{"x":"w"}`), State: storage.KeyNext, CreatedAt: base.Add(time.Hour)}
	for _, key := range []storage.SigningKey{newer, older} {
		if err := s.CreateSigningKey(ctx, key); err != nil {
			t.Fatalf("CreateSigningKey: %v", err)
		}
	}
	if err := s.CreateSigningKey(ctx, older); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("CreateSigningKey twice: got %v, want ErrAlreadyExists", err)
	}
	keys, err = s.ListSigningKeys(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 2 || keys[0].ID != "k2" || keys[1].ID != "k1" {
		t.Fatalf("ListSigningKeys = %+v, want oldest (k2) first", keys)
	}
	if !bytes.Equal(keys[0].PrivateKey, older.PrivateKey) || !bytes.Equal(keys[0].PublicKey, older.PublicKey) || keys[0].Algorithm != "ES256" ||
		keys[0].State != storage.KeyActive || !sameInstant(keys[0].ActivatedAt, base) || keys[1].State != storage.KeyNext || !keys[1].ActivatedAt.IsZero() {
		t.Fatalf("key did not round-trip: %+v", keys[0])
	}
}

func newRefreshToken(t testing.TB, subject string) storage.RefreshToken {
	t.Helper()
	return storage.RefreshToken{
		Hash:            randomHash(t),
		FamilyID:        fmt.Sprintf("family-%x", randomHash(t)[:4]),
		Subject:         subject,
		Role:            "USER",
		Scope:           "read write",
		ClientID:        "chit-api",
		Audience:        "inventory",
		IssuedAt:        base,
		ExpiresAt:       base.Add(24 * time.Hour),
		FamilyExpiresAt: base.Add(48 * time.Hour),
		Generation:      1,
		LoginSalt:       randomHash(t)[:16],
	}
}

// loginOf is the login GetRefreshToken finds token's record by: the one its
// family names, but none for a record of one token (generation 0).
func loginOf(token storage.RefreshToken) string {
	if token.Generation == 0 {
		return ""
	}
	return token.FamilyID
}

func successorOf(t testing.TB, old storage.RefreshToken, at time.Time) storage.RefreshToken {
	t.Helper()
	next := old
	next.Hash = randomHash(t)
	next.IssuedAt = at
	next.RotatedAt, next.ReplacedBy = time.Time{}, nil
	next.Generation = old.Generation + 1
	return next
}

func testRefreshTokenRoundTrip(t *testing.T, s storage.Store) {
	ctx := context.Background()
	token := newRefreshToken(t, "alice")
	if _, err := s.GetRefreshToken(ctx, loginOf(token), token.Hash); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetRefreshToken unknown: got %v, want ErrNotFound", err)
	}
	if err := s.CreateRefreshToken(ctx, token); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRefreshToken(ctx, token); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("CreateRefreshToken twice: got %v, want ErrAlreadyExists", err)
	}
	got, err := s.GetRefreshToken(ctx, loginOf(token), token.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Hash, token.Hash) || got.FamilyID != token.FamilyID || got.Subject != "alice" ||
		got.Role != "USER" || got.Scope != "read write" || got.ClientID != "chit-api" || got.Audience != "inventory" ||
		!sameInstant(got.IssuedAt, token.IssuedAt) ||
		!sameInstant(got.ExpiresAt, token.ExpiresAt) || !sameInstant(got.FamilyExpiresAt, token.FamilyExpiresAt) ||
		!got.RotatedAt.IsZero() || len(got.ReplacedBy) != 0 || len(got.SealedSuccessor) != 0 ||
		got.Generation != 1 || !bytes.Equal(got.LoginSalt, token.LoginSalt) {
		t.Fatalf("GetRefreshToken = %+v, want %+v", got, token)
	}
}

func testRotateRefreshToken(t *testing.T, s storage.Store) {
	ctx := context.Background()
	first := newRefreshToken(t, "alice")
	if err := s.CreateRefreshToken(ctx, first); err != nil {
		t.Fatal(err)
	}
	rotatedAt := base.Add(time.Minute)
	second := successorOf(t, first, rotatedAt)
	if err := s.RotateRefreshToken(ctx, first.Hash, second, []byte("sealed successor")); err != nil {
		t.Fatalf("RotateRefreshToken: %v", err)
	}
	old, err := s.GetRefreshToken(ctx, loginOf(first), first.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if !sameInstant(old.RotatedAt, rotatedAt) || !bytes.Equal(old.ReplacedBy, second.Hash) || string(old.SealedSuccessor) != "sealed successor" {
		t.Fatalf("rotated token = %+v, want rotated at %v and replaced by the successor", old, rotatedAt)
	}
	stored, err := s.GetRefreshToken(ctx, loginOf(second), second.Hash)
	if err != nil {
		t.Fatalf("successor not stored: %v", err)
	}
	if stored.FamilyID != first.FamilyID || !sameInstant(stored.ExpiresAt, first.ExpiresAt) {
		t.Fatalf("successor = %+v, want the family and absolute expiry of its parent", stored)
	}
	third := successorOf(t, first, rotatedAt.Add(time.Minute))
	if err := s.RotateRefreshToken(ctx, first.Hash, third, nil); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("rotating an already rotated token: got %v, want ErrConflict", err)
	}
	if _, err := s.GetRefreshToken(ctx, loginOf(third), third.Hash); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a refused rotation must store nothing: got %v", err)
	}
	if err := s.RotateRefreshToken(ctx, randomHash(t), successorOf(t, first, rotatedAt), nil); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("rotating an unknown token: got %v, want ErrNotFound", err)
	}
}

// A rotation whose successor cannot be stored leaves the old token as it
// was: half a rotation would strand the family. (A token from before one
// record per login, whose login somehow has a record already.)
func testRotateOntoTakenSuccessor(t *testing.T, s storage.Store) {
	ctx := context.Background()
	first, taken := newRefreshToken(t, "alice"), newRefreshToken(t, "alice")
	first.Generation, first.LoginSalt = 0, nil
	taken.FamilyID = first.FamilyID
	for _, token := range []storage.RefreshToken{first, taken} {
		if err := s.CreateRefreshToken(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateRefreshToken(ctx, successorOf(t, taken, base)); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("a second record of one login: got %v, want ErrAlreadyExists", err)
	}
	if err := s.RotateRefreshToken(ctx, first.Hash, successorOf(t, first, base.Add(time.Minute)), nil); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("rotating into a login that has a record: got %v, want ErrAlreadyExists", err)
	}
	old, err := s.GetRefreshToken(ctx, "", first.Hash)
	if err != nil {
		t.Fatal(err)
	}
	if !old.RotatedAt.IsZero() || old.ReplacedBy != nil {
		t.Fatalf("a failed rotation changed the old token: %+v", old)
	}
	if login, err := s.GetRefreshLogin(ctx, first.FamilyID); err != nil || !bytes.Equal(login.Hash, taken.Hash) {
		t.Fatalf("a failed rotation changed the login's record: %+v, %v", login, err)
	}
}

// A token is read with its user, who may be gone; what the token read
// alone answers, it answers too.
func testRefreshTokenWithUser(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if err := s.CreateUser(ctx, storage.User{Name: "carol", PasswordHash: "x", Role: "ADMIN", Grants: storage.Grants{AllowedScopes: []string{"read", "write"}}, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	carols, ghosts, old := newRefreshToken(t, "carol"), newRefreshToken(t, "ghost"), newRefreshToken(t, "carol")
	old.Generation, old.LoginSalt = 0, nil
	for _, token := range []storage.RefreshToken{carols, ghosts, old} {
		if err := s.CreateRefreshToken(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	next := successorOf(t, carols, base.Add(time.Minute))
	if err := s.RotateRefreshToken(ctx, carols.Hash, next, []byte("sealed")); err != nil {
		t.Fatal(err)
	}
	for name, token := range map[string]storage.RefreshToken{"current": next, "previous": carols, "from before": old} {
		got, user, err := s.GetRefreshTokenWithUser(ctx, loginOf(token), token.Hash)
		if err != nil || !bytes.Equal(got.Hash, token.Hash) || user == nil || user.Name != "carol" || user.Role != "ADMIN" ||
			strings.Join(user.AllowedScopes, " ") != "read write" || !sameInstant(user.CreatedAt, base) {
			t.Fatalf("%s token: %+v, %+v, %v", name, got, user, err)
		}
		if name == "previous" && (got.RotatedAt.IsZero() || string(got.SealedSuccessor) != "sealed") {
			t.Fatalf("the previous token reads as rotated: %+v", got)
		}
	}
	if got, user, err := s.GetRefreshTokenWithUser(ctx, ghosts.FamilyID, ghosts.Hash); err != nil || user != nil || !bytes.Equal(got.Hash, ghosts.Hash) {
		t.Fatalf("a token whose user is gone: %+v, %+v, %v", got, user, err)
	}
	if _, _, err := s.GetRefreshTokenWithUser(ctx, carols.FamilyID, randomHash(t)); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("an unknown token: %v", err)
	}
	if _, err := s.RevokeRefreshFamily(ctx, carols.FamilyID, base); err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.GetRefreshTokenWithUser(ctx, next.FamilyID, next.Hash); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a revoked login's token: %v", err)
	}
}

// A login's record answers for its own tokens only: a token of another
// login, or one it never had, is unknown.
func testRecordAnswersForItsOwnTokens(t *testing.T, s storage.Store) {
	ctx := context.Background()
	alices, bobs := newRefreshToken(t, "alice"), newRefreshToken(t, "bob")
	for _, token := range []storage.RefreshToken{alices, bobs} {
		if err := s.CreateRefreshToken(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	for name, lookup := range map[string]struct {
		family string
		hash   []byte
	}{
		"another login's token":         {alices.FamilyID, bobs.Hash},
		"a token the login never had":   {alices.FamilyID, randomHash(t)},
		"a login's token without login": {"", alices.Hash},
		"an unknown login":              {"no-such-family", alices.Hash},
	} {
		if _, err := s.GetRefreshToken(ctx, lookup.family, lookup.hash); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("%s: got %v, want ErrNotFound", name, err)
		}
	}
	// Bob's token presented as Alice's does not rotate her login.
	next := successorOf(t, alices, base.Add(time.Minute))
	if err := s.RotateRefreshToken(ctx, bobs.Hash, next, nil); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("rotating a login with another's token: got %v, want ErrNotFound", err)
	}
	if _, err := s.GetRefreshToken(ctx, alices.FamilyID, alices.Hash); err != nil {
		t.Fatalf("the login changed: %v", err)
	}
}

func testConcurrentRotation(t *testing.T, s storage.Store) {
	ctx := context.Background()
	parent := newRefreshToken(t, "alice")
	if err := s.CreateRefreshToken(ctx, parent); err != nil {
		t.Fatal(err)
	}
	const contenders = 20
	successors := make([]storage.RefreshToken, contenders)
	errs := make([]error, contenders)
	for i := range successors {
		successors[i] = successorOf(t, parent, base.Add(time.Duration(i+1)*time.Second))
	}
	var start, done sync.WaitGroup
	start.Add(1)
	for i := range contenders {
		done.Add(1)
		go func() {
			defer done.Done()
			start.Wait()
			errs[i] = s.RotateRefreshToken(ctx, parent.Hash, successors[i], nil)
		}()
	}
	start.Done()
	done.Wait()
	winners := 0
	for i, err := range errs {
		switch {
		case err == nil:
			winners++
			if _, err := s.GetRefreshToken(ctx, loginOf(successors[i]), successors[i].Hash); err != nil {
				t.Errorf("winner's successor not stored: %v", err)
			}
		case errors.Is(err, storage.ErrConflict):
			if _, err := s.GetRefreshToken(ctx, loginOf(successors[i]), successors[i].Hash); !errors.Is(err, storage.ErrNotFound) {
				t.Errorf("loser's successor was stored (err %v)", err)
			}
		default:
			t.Errorf("contender %d: unexpected error %v", i, err)
		}
	}
	if winners != 1 {
		t.Fatalf("%d rotations succeeded, want exactly 1", winners)
	}
}

func testDeleteExpiredRefreshTokens(t *testing.T, s storage.Store) {
	ctx := context.Background()
	expired, live := newRefreshToken(t, "alice"), newRefreshToken(t, "alice")
	expired.ExpiresAt = base.Add(-time.Second)
	live.ExpiresAt = base.Add(time.Hour)
	for _, token := range []storage.RefreshToken{expired, live} {
		if err := s.CreateRefreshToken(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	n, err := s.DeleteExpiredRefreshTokens(ctx, base)
	if err != nil || n != 1 {
		t.Fatalf("DeleteExpiredRefreshTokens = %d, %v; want 1, nil", n, err)
	}
	if _, err := s.GetRefreshToken(ctx, loginOf(expired), expired.Hash); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("expired token survived: %v", err)
	}
	if _, err := s.GetRefreshToken(ctx, loginOf(live), live.Hash); err != nil {
		t.Fatalf("live token was deleted: %v", err)
	}
}

func testCleanupLock(t *testing.T, s storage.Store) {
	ran, err := s.WithCleanupLock(context.Background(), func() error { return nil })
	if err != nil || !ran {
		t.Fatalf("WithCleanupLock with no other cleaner = %v, %v; want it to run", ran, err)
	}
	boom := errors.New("boom")
	if _, err := s.WithCleanupLock(context.Background(), func() error { return boom }); !errors.Is(err, boom) {
		t.Fatalf("WithCleanupLock must return fn's error, got %v", err)
	}
}

// More expired rows than one batch are all deleted.
func testDeleteExpiredInBatches(t *testing.T, s storage.Store) {
	ctx := context.Background()
	const expired = 2500
	for range expired {
		token := newRefreshToken(t, "bulk")
		token.ExpiresAt = base.Add(-time.Minute)
		if err := s.CreateRefreshToken(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	live := newRefreshToken(t, "bulk")
	if err := s.CreateRefreshToken(ctx, live); err != nil {
		t.Fatal(err)
	}
	n, err := s.DeleteExpiredRefreshTokens(ctx, base)
	if err != nil || n != expired {
		t.Fatalf("DeleteExpiredRefreshTokens = %d, %v; want %d", n, err, expired)
	}
	if _, err := s.GetRefreshToken(ctx, loginOf(live), live.Hash); err != nil {
		t.Fatal("the live token was deleted")
	}
}

// A login keeps one record however often it rotates: the current token, and
// the one before it as rotated; earlier tokens are no longer in the store.
func testOneRecordPerLogin(t *testing.T, s storage.Store) {
	ctx := context.Background()
	tokens := []storage.RefreshToken{newRefreshToken(t, "alice")}
	if err := s.CreateRefreshToken(ctx, tokens[0]); err != nil {
		t.Fatal(err)
	}
	for i := 1; i <= 5; i++ {
		next := successorOf(t, tokens[i-1], base.Add(time.Duration(i)*time.Minute))
		next.Role, next.Scope = "ADMIN", "read"
		next.ExpiresAt = base.Add(time.Duration(24+i) * time.Hour)
		if err := s.RotateRefreshToken(ctx, tokens[i-1].Hash, next, []byte(fmt.Sprintf("sealed %d", i))); err != nil {
			t.Fatalf("rotation %d: %v", i, err)
		}
		tokens = append(tokens, next)
	}
	current, err := s.GetRefreshToken(ctx, loginOf(tokens[5]), tokens[5].Hash)
	if err != nil || current.Generation != 6 || !current.RotatedAt.IsZero() || current.SealedSuccessor != nil ||
		current.Role != "ADMIN" || current.Scope != "read" || current.ClientID != tokens[0].ClientID ||
		!sameInstant(current.IssuedAt, base.Add(5*time.Minute)) || !sameInstant(current.ExpiresAt, base.Add(29*time.Hour)) ||
		!sameInstant(current.FamilyExpiresAt, tokens[0].FamilyExpiresAt) || current.FamilyID != tokens[0].FamilyID {
		t.Fatalf("current token = %+v, %v", current, err)
	}
	previous, err := s.GetRefreshToken(ctx, loginOf(tokens[4]), tokens[4].Hash)
	if err != nil || previous.Generation != 5 || !sameInstant(previous.RotatedAt, base.Add(5*time.Minute)) ||
		!bytes.Equal(previous.ReplacedBy, tokens[5].Hash) || string(previous.SealedSuccessor) != "sealed 5" {
		t.Fatalf("previous token = %+v, %v", previous, err)
	}
	for i := range 4 {
		if _, err := s.GetRefreshToken(ctx, loginOf(tokens[i]), tokens[i].Hash); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("token of generation %d is still stored: %v", i+1, err)
		}
	}
	login, err := s.GetRefreshLogin(ctx, tokens[0].FamilyID)
	if err != nil || !bytes.Equal(login.Hash, tokens[5].Hash) || login.Generation != 6 || !bytes.Equal(login.LoginSalt, tokens[0].LoginSalt) {
		t.Fatalf("GetRefreshLogin = %+v, %v", login, err)
	}
	// Only the current token rotates; the previous one and earlier ones
	// conflict, and a successor that skips a generation finds nothing.
	if err := s.RotateRefreshToken(ctx, tokens[4].Hash, successorOf(t, tokens[4], base.Add(time.Hour)), nil); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("rotating the previous token: %v, want ErrConflict", err)
	}
	skipping := successorOf(t, tokens[5], base.Add(time.Hour))
	skipping.Generation++
	if err := s.RotateRefreshToken(ctx, tokens[5].Hash, skipping, nil); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("a successor skipping a generation: %v, want ErrConflict", err)
	}
	if _, err := s.RevokeRefreshFamily(ctx, tokens[0].FamilyID, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRefreshLogin(ctx, tokens[0].FamilyID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetRefreshLogin of a revoked login: %v", err)
	}
	if _, err := s.GetRefreshLogin(ctx, "no-such-family"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetRefreshLogin of an unknown family: %v", err)
	}
}

// Tokens stored one record each, before logins kept one record, keep
// working: the current one rotates into a login record, and rotated ones
// are still read back as rotated until they expire.
func testRecordOfOneTokenBecomesTheLogins(t *testing.T, s storage.Store) {
	ctx := context.Background()
	rotatedBefore := newRefreshToken(t, "alice")
	rotatedBefore.Generation, rotatedBefore.LoginSalt = 0, nil
	current := rotatedBefore
	current.Hash = randomHash(t)
	rotatedBefore.RotatedAt, rotatedBefore.ReplacedBy, rotatedBefore.SealedSuccessor = base, current.Hash, []byte("sealed old")
	for _, token := range []storage.RefreshToken{rotatedBefore, current} {
		if err := s.CreateRefreshToken(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.GetRefreshLogin(ctx, current.FamilyID); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetRefreshLogin before any rotation into a login record: %v", err)
	}
	next := successorOf(t, current, base.Add(time.Minute))
	next.LoginSalt = []byte("salt")
	if next.Generation != 1 {
		t.Fatalf("successor generation %d", next.Generation)
	}
	if err := s.RotateRefreshToken(ctx, current.Hash, next, []byte("sealed")); err != nil {
		t.Fatal(err)
	}
	old, err := s.GetRefreshToken(ctx, loginOf(current), current.Hash)
	if err != nil || !sameInstant(old.RotatedAt, base.Add(time.Minute)) || !bytes.Equal(old.ReplacedBy, next.Hash) || string(old.SealedSuccessor) != "sealed" {
		t.Fatalf("the rotated token of one record = %+v, %v", old, err)
	}
	if got, err := s.GetRefreshToken(ctx, loginOf(rotatedBefore), rotatedBefore.Hash); err != nil || !bytes.Equal(got.ReplacedBy, current.Hash) || string(got.SealedSuccessor) != "sealed old" {
		t.Fatalf("a token rotated before the change = %+v, %v", got, err)
	}
	if login, err := s.GetRefreshLogin(ctx, current.FamilyID); err != nil || !bytes.Equal(login.Hash, next.Hash) || string(login.LoginSalt) != "salt" {
		t.Fatalf("GetRefreshLogin after the first rotation = %+v, %v", login, err)
	}
	// It carries no MAC: its record stays, so it is known as rotated after
	// the login rotates on, until it expires.
	if err := s.RotateRefreshToken(ctx, next.Hash, successorOf(t, next, base.Add(2*time.Minute)), nil); err != nil {
		t.Fatal(err)
	}
	if old, err := s.GetRefreshToken(ctx, loginOf(current), current.Hash); err != nil || old.RotatedAt.IsZero() || !bytes.Equal(old.ReplacedBy, next.Hash) {
		t.Fatalf("the token from before, two rotations on = %+v, %v", old, err)
	}
	if err := s.RotateRefreshToken(ctx, current.Hash, successorOf(t, current, base.Add(3*time.Minute)), nil); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("rotating it again: %v, want ErrConflict", err)
	}
}

func testRefreshTokenKeys(t *testing.T, s storage.Store) {
	ctx := context.Background()
	first := storage.RefreshTokenKey{ID: 7, Secret: []byte("first"), CreatedAt: base}
	second := storage.RefreshTokenKey{ID: 4294967295, Secret: []byte("second"), CreatedAt: base.Add(time.Hour)}
	for _, key := range []storage.RefreshTokenKey{second, first} {
		if err := s.CreateRefreshTokenKey(ctx, key); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.CreateRefreshTokenKey(ctx, storage.RefreshTokenKey{ID: 7, Secret: []byte("x"), CreatedAt: base}); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("a taken id: %v, want ErrAlreadyExists", err)
	}
	if err := s.ReplaceRefreshTokenKeySecret(ctx, 7, []byte("first"), []byte("sealed first")); err != nil {
		t.Fatal(err)
	}
	if err := s.ReplaceRefreshTokenKeySecret(ctx, 7, []byte("first"), []byte("other")); !errors.Is(err, storage.ErrConflict) {
		t.Fatalf("a stale replacement: %v, want ErrConflict", err)
	}
	keys, err := s.ListRefreshTokenKeys(ctx)
	if err != nil || len(keys) != 2 || keys[0].ID != 7 || string(keys[0].Secret) != "sealed first" || !sameInstant(keys[0].CreatedAt, base) ||
		keys[1].ID != 4294967295 || string(keys[1].Secret) != "second" {
		t.Fatalf("ListRefreshTokenKeys = %+v, %v", keys, err)
	}
}

// A subject's live logins are listed once each, from either table, by
// family id, without expired or revoked ones or another subject's.
func testListLogins(t *testing.T, s storage.Store) {
	ctx := context.Background()
	var families []string
	for i, generation := range []uint64{1, 3, 0} {
		token := newRefreshToken(t, "alice")
		token.FamilyID = fmt.Sprintf("family-%d", i)
		token.Generation = generation
		if err := s.CreateRefreshToken(ctx, token); err != nil {
			t.Fatal(err)
		}
		families = append(families, token.FamilyID)
	}
	expired := newRefreshToken(t, "alice")
	expired.FamilyID, expired.ExpiresAt = "family-expired", base.Add(-time.Second)
	revoked := newRefreshToken(t, "alice")
	revoked.FamilyID = "family-revoked"
	other := newRefreshToken(t, "bob")
	for _, token := range []storage.RefreshToken{expired, revoked, other} {
		if err := s.CreateRefreshToken(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.RevokeRefreshFamily(ctx, "family-revoked", base); err != nil {
		t.Fatal(err)
	}

	logins, err := s.ListLogins(ctx, "alice", base, storage.Page{})
	var got []string
	for _, login := range logins {
		got = append(got, login.FamilyID)
		if login.Subject != "alice" || login.ClientID != "chit-api" || login.Scope != "read write" || login.Audience != "inventory" ||
			!sameInstant(login.ExpiresAt, base.Add(24*time.Hour)) || !sameInstant(login.FamilyExpiresAt, base.Add(48*time.Hour)) ||
			!sameInstant(login.IssuedAt, base) || login.Hash != nil {
			t.Errorf("login %+v", login)
		}
	}
	if err != nil || !slices.Equal(got, families) {
		t.Fatalf("ListLogins = %v, %v; want %v", got, err, families)
	}
	if logins[1].Generation != 3 {
		t.Errorf("generation %d, want 3", logins[1].Generation)
	}
	page, err := s.ListLogins(ctx, "alice", base, storage.Page{After: "family-0", Limit: 1})
	if err != nil || len(page) != 1 || page[0].FamilyID != "family-1" {
		t.Fatalf("ListLogins after family-0, one = %+v, %v", page, err)
	}
	if logins, err := s.ListLogins(ctx, "carol", base, storage.Page{}); err != nil || len(logins) != 0 {
		t.Fatalf("ListLogins of nobody = %+v, %v", logins, err)
	}
}

// API keys: one name per owner, found by id, listed by owner, deleted with
// their access tokens refused, with their owner, and when expired.
func testAPIKeys(t *testing.T, s storage.Store) {
	ctx := context.Background()
	key := func(id, subject, name string) storage.APIKey {
		return storage.APIKey{ID: id, Subject: subject, Name: name, Scopes: []string{"read", "write"}, Hash: randomHash(t),
			CreatedAt: base, ExpiresAt: base.Add(90 * 24 * time.Hour)}
	}
	if err := s.CreateUser(ctx, storage.User{Name: "alice", PasswordHash: "h", Role: "USER", CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	first := key("k1", "alice", "ci")
	for _, k := range []storage.APIKey{first, key("k2", "alice", "laptop"), key("k3", "bob", "ci")} {
		if err := s.CreateAPIKey(ctx, k); err != nil {
			t.Fatalf("CreateAPIKey(%s): %v", k.ID, err)
		}
	}
	for _, dup := range []storage.APIKey{key("k4", "alice", "ci"), key("k1", "carol", "other")} {
		if err := s.CreateAPIKey(ctx, dup); !errors.Is(err, storage.ErrAlreadyExists) {
			t.Fatalf("CreateAPIKey(%+v): got %v, want ErrAlreadyExists", dup, err)
		}
	}
	got, err := s.GetAPIKey(ctx, "k1")
	if err != nil || got.Subject != "alice" || got.Name != "ci" || !slices.Equal(got.Scopes, first.Scopes) || !bytes.Equal(got.Hash, first.Hash) ||
		!sameInstant(got.CreatedAt, base) || !sameInstant(got.ExpiresAt, first.ExpiresAt) {
		t.Fatalf("GetAPIKey = %+v, %v", got, err)
	}
	if _, err := s.GetAPIKey(ctx, "nope"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("GetAPIKey of nothing: %v", err)
	}
	if list, err := s.ListAPIKeys(ctx, "alice", storage.Page{}); err != nil || len(list) != 2 || list[0].ID != "k1" || list[1].ID != "k2" {
		t.Fatalf("ListAPIKeys(alice) = %+v, %v", list, err)
	}
	if list, err := s.ListAPIKeys(ctx, "alice", storage.Page{After: "k1", Limit: 1}); err != nil || len(list) != 1 || list[0].ID != "k2" {
		t.Fatalf("ListAPIKeys(alice) after k1 = %+v, %v", list, err)
	}

	if err := s.DeleteAPIKey(ctx, "k1", base); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteAPIKey(ctx, "k1", base); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("DeleteAPIKey twice: %v", err)
	}
	revocation, err := s.GetRevocation(ctx, storage.APIKeyFamily("k1"), "alice", "")
	if err != nil || !revocation.FamilyRevoked {
		t.Fatalf("a deleted key's tokens are not refused: %+v, %v", revocation, err)
	}

	// Deleting the owner deletes its keys; expired keys are cleaned up.
	if err := s.DeleteUser(ctx, "alice", storage.SubjectRevocation{Subject: "alice", At: base}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetAPIKey(ctx, "k2"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a deleted owner's key survived: %v", err)
	}
	if n, err := s.DeleteExpiredAPIKeys(ctx, base.Add(91*24*time.Hour)); err != nil || n != 1 {
		t.Fatalf("DeleteExpiredAPIKeys = %d, %v; want bob's one key", n, err)
	}
}
