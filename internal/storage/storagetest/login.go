package storagetest

import (
	"bytes"
	"context"
	"errors"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

func testClients(t *testing.T, s storage.Store) {
	ctx := context.Background()
	client := storage.Client{ID: "dashboard", RedirectURIs: []string{"https://dash.example/cb", "https://dash.example/cb2"}, CreatedAt: base}
	if err := s.CreateClient(ctx, client); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, client); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("duplicate client: %v", err)
	}
	got, err := s.GetClient(ctx, "dashboard")
	if err != nil || !slices.Equal(got.RedirectURIs, client.RedirectURIs) || !sameInstant(got.CreatedAt, base) {
		t.Fatalf("GetClient = %+v, %v", got, err)
	}
	if _, err := s.GetClient(ctx, "nobody"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unknown client: %v", err)
	}
	list, err := s.ListClients(ctx, storage.Page{})
	if err != nil || len(list) != 1 {
		t.Fatalf("ListClients = %+v, %v", list, err)
	}
	if list, err := s.ListClients(ctx, storage.Page{After: "dashboard", Limit: 5}); err != nil || len(list) != 0 {
		t.Fatalf("ListClients after the last = %+v, %v", list, err)
	}
	if list, err := s.ListClients(ctx, storage.Page{After: "a", Limit: 1}); err != nil || len(list) != 1 {
		t.Fatalf("ListClients after a = %+v, %v", list, err)
	}
	// An update writes a new secret (a rotation).
	rotated := randomHash(t)
	if err := s.UpdateClient(ctx, "dashboard", func(c *storage.Client) (*storage.SubjectRevocation, error) {
		c.SecretHash = rotated
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetClient(ctx, "dashboard"); err != nil || !bytes.Equal(got.SecretHash, rotated) {
		t.Fatalf("after a secret rotation GetClient = %+v, %v", got, err)
	}
	testClientPKCE(t, s)
	if err := s.DeleteClient(ctx, "dashboard", storage.SubjectRevocation{Subject: "client:dashboard", At: base}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteClient(ctx, "dashboard", storage.SubjectRevocation{Subject: "client:dashboard", At: base}); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("second delete: %v", err)
	}
}

// A client's PKCE setting is stored as created, read by every read, and
// changed by an update alone; PKCE required (false) is the default.
func testClientPKCE(t *testing.T, s storage.Store) {
	t.Helper()
	ctx := context.Background()
	optional := storage.Client{ID: "proxy", RedirectURIs: []string{"https://proxy.example/oauth2/callback"}, SecretHash: randomHash(t),
		PKCEOptional: true, CreatedAt: base}
	if err := s.CreateClient(ctx, optional); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetClient(ctx, "proxy"); err != nil || !got.PKCEOptional {
		t.Fatalf("GetClient of a client created with PKCE optional = %+v, %v", got, err)
	}
	list, err := s.ListClients(ctx, storage.Page{})
	if err != nil || len(list) != 2 {
		t.Fatalf("ListClients = %+v, %v", list, err)
	}
	for _, client := range list {
		if client.PKCEOptional != (client.ID == "proxy") {
			t.Fatalf("ListClients: %s has PKCEOptional %v", client.ID, client.PKCEOptional)
		}
	}
	// An update that changes something else keeps the setting.
	if err := s.UpdateClient(ctx, "proxy", func(c *storage.Client) (*storage.SubjectRevocation, error) {
		c.AllowedScopes = []string{"openid"}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if got, err := s.GetClient(ctx, "proxy"); err != nil || !got.PKCEOptional || !slices.Equal(got.AllowedScopes, []string{"openid"}) {
		t.Fatalf("after a grants update GetClient = %+v, %v", got, err)
	}
	for _, want := range []bool{false, true} {
		if err := s.UpdateClient(ctx, "proxy", func(c *storage.Client) (*storage.SubjectRevocation, error) {
			c.PKCEOptional = want
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		if got, err := s.GetClient(ctx, "proxy"); err != nil || got.PKCEOptional != want {
			t.Fatalf("after setting PKCEOptional %v GetClient = %+v, %v", want, got, err)
		}
	}
	// An update that fails changes nothing.
	refused := errors.New("refused")
	if err := s.UpdateClient(ctx, "proxy", func(c *storage.Client) (*storage.SubjectRevocation, error) {
		c.PKCEOptional = false
		return nil, refused
	}); !errors.Is(err, refused) {
		t.Fatalf("refused update: %v", err)
	}
	if got, err := s.GetClient(ctx, "proxy"); err != nil || !got.PKCEOptional {
		t.Fatalf("after a refused update GetClient = %+v, %v", got, err)
	}
	if got, err := s.GetClient(ctx, "dashboard"); err != nil || got.PKCEOptional {
		t.Fatalf("a client created without the setting: %+v, %v", got, err)
	}
	if err := s.DeleteClient(ctx, "proxy", storage.SubjectRevocation{Subject: "client:proxy", At: base}); err != nil {
		t.Fatal(err)
	}
}

func newCode(t *testing.T) storage.AuthorizationCode {
	t.Helper()
	return storage.AuthorizationCode{
		Hash: randomHash(t), ClientID: "chit-cli", RedirectURI: "http://127.0.0.1:5000/cb", CodeChallenge: "challenge",
		Subject: "alice", Role: "USER", Scope: "openid offline_access", Nonce: "n-0S6", AuthTime: base, ExpiresAt: base.Add(time.Minute),
	}
}

// passes is a redemption check that accepts every code.
func passes(storage.AuthorizationCode) error { return nil }

func testAuthorizationCodes(t *testing.T, s storage.Store) {
	ctx := context.Background()
	code := newCode(t)
	if err := s.CreateAuthorizationCode(ctx, code); err != nil {
		t.Fatal(err)
	}
	// A redemption its check refuses leaves the code unused.
	refused := errors.New("wrong verifier")
	var checked storage.AuthorizationCode
	if _, err := s.RedeemAuthorizationCode(ctx, code.Hash, base, "f-refused", func(c storage.AuthorizationCode) error {
		checked = c
		return refused
	}); !errors.Is(err, refused) {
		t.Fatalf("a redemption its check refuses: %v", err)
	}
	if checked.ClientID != code.ClientID || checked.CodeChallenge != code.CodeChallenge {
		t.Fatalf("the check saw %+v", checked)
	}
	if _, err := s.RedeemAuthorizationCode(ctx, randomHash(t), base, "f", passes); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("unknown code: %v", err)
	}
	got, err := s.RedeemAuthorizationCode(ctx, code.Hash, base.Add(time.Second), "family-1", passes)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got.Hash, code.Hash) || got.ClientID != code.ClientID || got.RedirectURI != code.RedirectURI ||
		got.CodeChallenge != code.CodeChallenge || got.Subject != "alice" || got.Role != "USER" || got.Scope != code.Scope ||
		got.Nonce != code.Nonce || !sameInstant(got.AuthTime, base) || !sameInstant(got.ExpiresAt, code.ExpiresAt) || !got.UsedAt.IsZero() {
		t.Fatalf("redeemed code = %+v, want %+v as it was before redemption", got, code)
	}
	replay, err := s.RedeemAuthorizationCode(ctx, code.Hash, base.Add(2*time.Second), "family-2", passes)
	if !errors.Is(err, storage.ErrConflict) || replay.FamilyID != "family-1" || !sameInstant(replay.UsedAt, base.Add(time.Second)) {
		t.Fatalf("replay = %+v, %v; want ErrConflict naming the first redemption's family", replay, err)
	}
	expired := newCode(t)
	expired.ExpiresAt = base.Add(-time.Second)
	if err := s.CreateAuthorizationCode(ctx, expired); err != nil {
		t.Fatal(err)
	}
	if n, err := s.DeleteExpiredAuthorizationCodes(ctx, base); err != nil || n != 1 {
		t.Fatalf("DeleteExpiredAuthorizationCodes = %d, %v; want 1", n, err)
	}
}

func testConcurrentRedemption(t *testing.T, s storage.Store) {
	ctx := context.Background()
	code := newCode(t)
	if err := s.CreateAuthorizationCode(ctx, code); err != nil {
		t.Fatal(err)
	}
	const contenders = 10
	errs := make([]error, contenders)
	var wg sync.WaitGroup
	for i := range contenders {
		wg.Add(1)
		go func() {
			defer wg.Done()
			_, errs[i] = s.RedeemAuthorizationCode(ctx, code.Hash, base, "family", passes)
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		if err == nil {
			wins++
		} else if !errors.Is(err, storage.ErrConflict) {
			t.Fatalf("unexpected error %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d redemptions succeeded, want 1", wins)
	}
}

func testRevokeRefreshFamily(t *testing.T, s storage.Store) {
	ctx := context.Background()
	first := newRefreshToken(t, "alice")
	second := successorOf(t, first, base.Add(time.Minute))
	other := newRefreshToken(t, "alice")
	for _, token := range []storage.RefreshToken{first, other} {
		if err := s.CreateRefreshToken(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.RotateRefreshToken(ctx, first.Hash, second, nil); err != nil {
		t.Fatal(err)
	}
	if revocation, err := s.GetRevocation(ctx, first.FamilyID, "alice", ""); err != nil || revocation.FamilyRevoked {
		t.Fatalf("GetRevocation before revoking = %+v, %v", revocation, err)
	}
	// One record holds the login, however often it rotated.
	if n, err := s.RevokeRefreshFamily(ctx, first.FamilyID, base); err != nil || n != 1 {
		t.Fatalf("RevokeRefreshFamily = %d, %v; want 1", n, err)
	}
	if n, err := s.RevokeRefreshFamily(ctx, first.FamilyID, base.Add(time.Second)); err != nil || n != 0 {
		t.Fatalf("revoking again = %d, %v; want 0, nil", n, err)
	}
	if revocation, err := s.GetRevocation(ctx, first.FamilyID, "alice", ""); err != nil || !revocation.FamilyRevoked || !revocation.SubjectRevokedAt.IsZero() {
		t.Fatalf("GetRevocation = %+v, %v; want the family revoked, the subject not", revocation, err)
	}
	if revocation, _ := s.GetRevocation(ctx, other.FamilyID, "alice", ""); revocation.FamilyRevoked {
		t.Fatal("another family reads as revoked")
	}
	if revocation, _ := s.GetRevocation(ctx, "", "alice", ""); revocation.FamilyRevoked {
		t.Fatal("the empty family reads as revoked")
	}
	for _, token := range []storage.RefreshToken{first, second} {
		if _, err := s.GetRefreshToken(ctx, loginOf(token), token.Hash); !errors.Is(err, storage.ErrNotFound) {
			t.Fatalf("revoked family member survived: %v", err)
		}
	}
	if _, err := s.GetRefreshToken(ctx, loginOf(other), other.Hash); err != nil {
		t.Fatalf("another family was revoked: %v", err)
	}
}

// A refresh token stored after its family was revoked (an exchange that
// raced a replay) is gone at once, and cannot come back when the
// revocation is forgotten.
func testTokenStoredAfterItsFamilyWasRevoked(t *testing.T, s storage.Store) {
	ctx := context.Background()
	late := newRefreshToken(t, "alice")
	if _, err := s.RevokeRefreshFamily(ctx, late.FamilyID, base); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateRefreshToken(ctx, late); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRefreshToken(ctx, loginOf(late), late.Hash); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a token of a revoked family: %v, want ErrNotFound", err)
	}
	if _, err := s.DeleteExpiredRevocations(ctx, base.Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRefreshToken(ctx, loginOf(late), late.Hash); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the token came back when its family's revocation was forgotten: %v", err)
	}
}

func testRevokeSubject(t *testing.T, s storage.Store) {
	ctx := context.Background()
	alices, bobs := newRefreshToken(t, "alice"), newRefreshToken(t, "bob")
	for _, token := range []storage.RefreshToken{alices, bobs} {
		if err := s.CreateRefreshToken(ctx, token); err != nil {
			t.Fatal(err)
		}
	}
	if n, err := s.RevokeSubject(ctx, "alice", base.Add(time.Hour)); err != nil || n != 1 {
		t.Fatalf("RevokeSubject = %d, %v; want 1", n, err)
	}
	// An earlier revocation never moves the cut-off back.
	if _, err := s.RevokeSubject(ctx, "alice", base); err != nil {
		t.Fatal(err)
	}
	revocation, err := s.GetRevocation(ctx, "some-family", "alice", "")
	if err != nil || !sameInstant(revocation.SubjectRevokedAt, base.Add(time.Hour)) || revocation.FamilyRevoked {
		t.Fatalf("GetRevocation = %+v, %v", revocation, err)
	}
	if _, err := s.GetRefreshToken(ctx, loginOf(alices), alices.Hash); !errors.Is(err, storage.ErrNotFound) {
		t.Fatal("the revoked subject's refresh token survived")
	}
	if _, err := s.GetRefreshToken(ctx, loginOf(bobs), bobs.Hash); err != nil {
		t.Fatal("another subject's refresh token was deleted")
	}
	if n, err := s.DeleteExpiredRevocations(ctx, base.Add(2*time.Hour)); err != nil || n != 1 {
		t.Fatalf("DeleteExpiredRevocations = %d, %v; want 1", n, err)
	}
	if revocation, _ := s.GetRevocation(ctx, "", "alice", ""); !revocation.SubjectRevokedAt.IsZero() {
		t.Fatal("an expired revocation is still reported")
	}
}

// A client's ID token signing algorithm is stored as created, read by every
// read, kept by updates of other settings and changed by its own; empty (the
// server's algorithm) is the default.
func testClientIDTokenAlgorithm(t *testing.T, s storage.Store) {
	ctx := context.Background()
	for _, client := range []storage.Client{
		{ID: "kube", RedirectURIs: []string{"http://localhost:8000"}, IDTokenSignedResponseAlg: "RS256", CreatedAt: base},
		{ID: "plain", RedirectURIs: []string{"https://plain.example/cb"}, CreatedAt: base},
	} {
		if err := s.CreateClient(ctx, client); err != nil {
			t.Fatal(err)
		}
	}
	want := map[string]string{"kube": "RS256", "plain": ""}
	check := func(when string) {
		t.Helper()
		for id, alg := range want {
			if got, err := s.GetClient(ctx, id); err != nil || got.IDTokenSignedResponseAlg != alg {
				t.Fatalf("%s: GetClient(%s) = %q, %v; want %q", when, id, got.IDTokenSignedResponseAlg, err, alg)
			}
		}
		list, err := s.ListClients(ctx, storage.Page{})
		if err != nil || len(list) != len(want) {
			t.Fatalf("%s: ListClients = %+v, %v", when, list, err)
		}
		for _, client := range list {
			if client.IDTokenSignedResponseAlg != want[client.ID] {
				t.Fatalf("%s: ListClients has %s with %q, want %q", when, client.ID, client.IDTokenSignedResponseAlg, want[client.ID])
			}
		}
	}
	check("as created")
	if err := s.UpdateClient(ctx, "kube", func(c *storage.Client) (*storage.SubjectRevocation, error) {
		c.AllowedScopes = []string{"openid"}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	check("after a grants update")
	for _, alg := range []string{"ES256", ""} {
		if err := s.UpdateClient(ctx, "plain", func(c *storage.Client) (*storage.SubjectRevocation, error) {
			c.IDTokenSignedResponseAlg = alg
			return nil, nil
		}); err != nil {
			t.Fatal(err)
		}
		want["plain"] = alg
		check("after setting " + alg)
	}
}
