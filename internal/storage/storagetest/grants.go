package storagetest

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/storage"
)

var sampleGrants = storage.Grants{
	AllowedScopes:    []string{"inventory:read", "inventory:write"},
	DefaultScopes:    []string{"inventory:read"},
	AllowedAudiences: []string{"inventory"},
}

func sameGrants(a, b storage.Grants) bool {
	return slices.Equal(a.AllowedScopes, b.AllowedScopes) && slices.Equal(a.DefaultScopes, b.DefaultScopes) &&
		slices.Equal(a.AllowedAudiences, b.AllowedAudiences)
}

func testGrantsRoundTrip(t *testing.T, s storage.Store) {
	ctx := context.Background()
	userGrants := storage.Grants{AllowedScopes: sampleGrants.AllowedScopes, DefaultScopes: sampleGrants.DefaultScopes}
	if err := s.CreateUser(ctx, storage.User{Name: "alice", PasswordHash: "h", Role: "USER", Grants: userGrants, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: "billing", SecretHash: randomHash(t), Grants: sampleGrants, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	secret := randomHash(t)
	if err := s.CreateClient(ctx, storage.Client{ID: "dashboard", RedirectURIs: []string{"https://d.example/cb"}, SecretHash: secret, Grants: sampleGrants, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, storage.Client{ID: "spa", RedirectURIs: []string{"https://spa.example/cb"}, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	user, err := s.GetUser(ctx, "alice")
	if err != nil || !sameGrants(user.Grants, userGrants) {
		t.Fatalf("GetUser = %+v, %v; want grants %+v", user, err, userGrants)
	}
	users, err := s.ListUsers(ctx, storage.Page{})
	if err != nil || len(users) != 1 || !sameGrants(users[0].Grants, userGrants) {
		t.Fatalf("ListUsers = %+v, %v", users, err)
	}
	account, err := s.GetServiceAccount(ctx, "billing")
	if err != nil || !sameGrants(account.Grants, sampleGrants) {
		t.Fatalf("GetServiceAccount = %+v, %v", account, err)
	}
	accounts, err := s.ListServiceAccounts(ctx, storage.Page{})
	if err != nil || len(accounts) != 1 || !sameGrants(accounts[0].Grants, sampleGrants) {
		t.Fatalf("ListServiceAccounts = %+v, %v", accounts, err)
	}
	client, err := s.GetClient(ctx, "dashboard")
	if err != nil || !sameGrants(client.Grants, sampleGrants) || !slices.Equal(client.SecretHash, secret) {
		t.Fatalf("GetClient = %+v, %v", client, err)
	}
	public, err := s.GetClient(ctx, "spa")
	if err != nil || len(public.SecretHash) != 0 || len(public.AllowedScopes) != 0 {
		t.Fatalf("a public client without grants = %+v, %v", public, err)
	}
	clients, err := s.ListClients(ctx, storage.Page{})
	if err != nil || len(clients) != 2 || !sameGrants(clients[0].Grants, sampleGrants) {
		t.Fatalf("ListClients = %+v, %v", clients, err)
	}
}

func testUpdatePrincipals(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if err := s.CreateUser(ctx, storage.User{Name: "alice", PasswordHash: "h", Role: "USER", CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	token := newRefreshToken(t, "alice")
	if err := s.CreateRefreshToken(ctx, token); err != nil {
		t.Fatal(err)
	}
	narrowed := base.Add(time.Minute)
	err := s.UpdateUser(ctx, "alice", func(user *storage.User) (*storage.SubjectRevocation, error) {
		user.Role, user.Name, user.PasswordHash = "ADMIN", "mallory", "other"
		user.AllowedScopes = []string{"reports:read"}
		return &storage.SubjectRevocation{Subject: "alice", At: narrowed}, nil
	})
	if err != nil {
		t.Fatalf("UpdateUser: %v", err)
	}
	user, err := s.GetUser(ctx, "alice")
	if err != nil || user.Role != "ADMIN" || user.PasswordHash != "h" || !slices.Equal(user.AllowedScopes, []string{"reports:read"}) {
		t.Fatalf("after UpdateUser = %+v, %v; want the role and scopes changed, the name and hash kept", user, err)
	}
	if revocation, err := s.GetRevocation(ctx, token.FamilyID, "alice", ""); err != nil || !sameInstant(revocation.SubjectRevokedAt, narrowed) {
		t.Fatalf("the update's revocation = %+v, %v", revocation, err)
	}
	if _, err := s.GetRefreshToken(ctx, loginOf(token), token.Hash); err != nil {
		t.Fatalf("an update must keep refresh tokens (a refresh re-reads the grants): %v", err)
	}
	refused := errors.New("refused")
	err = s.UpdateUser(ctx, "alice", func(user *storage.User) (*storage.SubjectRevocation, error) {
		user.Role = "USER"
		return &storage.SubjectRevocation{Subject: "alice", At: narrowed.Add(time.Hour)}, refused
	})
	if !errors.Is(err, refused) {
		t.Fatalf("an update that fails: %v", err)
	}
	if user, _ := s.GetUser(ctx, "alice"); user.Role != "ADMIN" {
		t.Fatal("a failed update was applied")
	}
	if revocation, _ := s.GetRevocation(ctx, "", "alice", ""); !sameInstant(revocation.SubjectRevokedAt, narrowed) {
		t.Fatal("a failed update's revocation was recorded")
	}
	if err := s.UpdateUser(ctx, "nobody", func(*storage.User) (*storage.SubjectRevocation, error) { return nil, nil }); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("UpdateUser of a missing user: %v", err)
	}

	if err := s.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: "billing", SecretHash: randomHash(t), CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	err = s.UpdateServiceAccount(ctx, "billing", func(account *storage.ServiceAccount) (*storage.SubjectRevocation, error) {
		account.Grants = sampleGrants
		return nil, nil
	})
	if account, _ := s.GetServiceAccount(ctx, "billing"); err != nil || !sameGrants(account.Grants, sampleGrants) {
		t.Fatalf("UpdateServiceAccount = %v; account %+v", err, account)
	}
	if revocation, _ := s.GetRevocation(ctx, "", "service:billing", ""); !revocation.SubjectRevokedAt.IsZero() {
		t.Fatal("an update without a revocation recorded one")
	}
	if err := s.UpdateServiceAccount(ctx, "nobody", func(*storage.ServiceAccount) (*storage.SubjectRevocation, error) { return nil, nil }); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("UpdateServiceAccount of a missing account: %v", err)
	}

	if err := s.CreateClient(ctx, storage.Client{ID: "dashboard", RedirectURIs: []string{"https://d.example/cb"}, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	err = s.UpdateClient(ctx, "dashboard", func(client *storage.Client) (*storage.SubjectRevocation, error) {
		client.Grants = sampleGrants
		client.RedirectURIs = []string{"https://d.example/other"}
		return &storage.SubjectRevocation{Subject: "client:dashboard", At: narrowed}, nil
	})
	client, _ := s.GetClient(ctx, "dashboard")
	if err != nil || !sameGrants(client.Grants, sampleGrants) || !slices.Equal(client.RedirectURIs, []string{"https://d.example/other"}) {
		t.Fatalf("UpdateClient = %v; client %+v", err, client)
	}
	// A client's revocation concerns every token issued through it.
	if revocation, _ := s.GetRevocation(ctx, "", "bob", "client:dashboard"); !sameInstant(revocation.SubjectRevokedAt, narrowed) {
		t.Fatalf("the client's revocation = %+v", revocation)
	}
	if err := s.UpdateClient(ctx, "nobody", func(*storage.Client) (*storage.SubjectRevocation, error) { return nil, nil }); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("UpdateClient of a missing client: %v", err)
	}
}

func testDeletePrincipalsEndAccess(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if err := s.CreateUser(ctx, storage.User{Name: "alice", PasswordHash: "h", Role: "USER", CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, storage.Client{ID: "dashboard", RedirectURIs: []string{"https://d.example/cb"}, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	alicesCode, dashboardCode, otherCode := newCode(t), newCode(t), newCode(t)
	dashboardCode.Subject, dashboardCode.ClientID = "bob", "dashboard"
	otherCode.Subject = "bob"
	for _, code := range []storage.AuthorizationCode{alicesCode, dashboardCode, otherCode} {
		if err := s.CreateAuthorizationCode(ctx, code); err != nil {
			t.Fatal(err)
		}
	}
	dashboardToken, otherToken := newRefreshToken(t, "bob"), newRefreshToken(t, "bob")
	dashboardToken.ClientID = "dashboard"
	for _, token := range []storage.RefreshToken{dashboardToken, otherToken} {
		if err := s.CreateRefreshToken(ctx, token); err != nil {
			t.Fatal(err)
		}
	}

	deletedAt := base.Add(time.Minute)
	if err := s.DeleteUser(ctx, "alice", storage.SubjectRevocation{Subject: "alice", At: deletedAt}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.RedeemAuthorizationCode(ctx, alicesCode.Hash, deletedAt, "f", passes); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a deleted user's pending code: %v, want ErrNotFound", err)
	}
	if revocation, _ := s.GetRevocation(ctx, "", "alice", ""); !sameInstant(revocation.SubjectRevokedAt, deletedAt) {
		t.Fatalf("a deleted user's access tokens are not refused: %+v", revocation)
	}

	if err := s.DeleteClient(ctx, "dashboard", storage.SubjectRevocation{Subject: "client:dashboard", At: deletedAt}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.GetRefreshToken(ctx, loginOf(dashboardToken), dashboardToken.Hash); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a deleted client's refresh token: %v, want ErrNotFound", err)
	}
	if _, err := s.RedeemAuthorizationCode(ctx, dashboardCode.Hash, deletedAt, "f", passes); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("a deleted client's pending code: %v, want ErrNotFound", err)
	}
	if _, err := s.GetRefreshToken(ctx, loginOf(otherToken), otherToken.Hash); err != nil {
		t.Fatalf("the same person's login through another client must survive: %v", err)
	}
	if _, err := s.RedeemAuthorizationCode(ctx, otherCode.Hash, deletedAt, "f", passes); err != nil {
		t.Fatalf("another client's code must survive: %v", err)
	}
	if revocation, _ := s.GetRevocation(ctx, "", "bob", "client:dashboard"); !sameInstant(revocation.SubjectRevokedAt, deletedAt) {
		t.Fatalf("a deleted client's access tokens are not refused: %+v", revocation)
	}

	if err := s.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: "billing", SecretHash: randomHash(t), CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	if err := s.DeleteServiceAccount(ctx, "billing", storage.SubjectRevocation{Subject: "service:billing", At: deletedAt}); err != nil {
		t.Fatal(err)
	}
	if revocation, _ := s.GetRevocation(ctx, "", "service:billing", ""); !sameInstant(revocation.SubjectRevokedAt, deletedAt) {
		t.Fatalf("a deleted service account's access tokens are not refused: %+v", revocation)
	}
}

func testSharedClientIDSpace(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if err := s.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: "billing", SecretHash: randomHash(t), CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, storage.Client{ID: "billing", RedirectURIs: []string{"https://b.example/cb"}, CreatedAt: base}); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("a client named like a service account: %v, want ErrAlreadyExists", err)
	}
	if err := s.CreateClient(ctx, storage.Client{ID: "dashboard", RedirectURIs: []string{"https://d.example/cb"}, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: "dashboard", SecretHash: randomHash(t), CreatedAt: base}); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("a service account named like a client: %v, want ErrAlreadyExists", err)
	}
	if _, err := s.GetServiceAccount(ctx, "dashboard"); !errors.Is(err, storage.ErrNotFound) {
		t.Fatalf("the refused service account was stored: %v", err)
	}
	// Ids differing only in case are one id.
	if err := s.CreateClient(ctx, storage.Client{ID: "Billing", RedirectURIs: []string{"https://b.example/cb"}, CreatedAt: base}); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("a client named like a service account in another case: %v, want ErrAlreadyExists", err)
	}
	if err := s.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: "DASHBOARD", SecretHash: randomHash(t), CreatedAt: base}); !errors.Is(err, storage.ErrAlreadyExists) {
		t.Fatalf("a service account named like a client in another case: %v, want ErrAlreadyExists", err)
	}
}

func testConcurrentClientIDCreation(t *testing.T, s storage.Store) {
	ctx := context.Background()
	const callers = 8
	errs := make([]error, callers)
	var wg sync.WaitGroup
	for i := range callers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if i%2 == 0 {
				errs[i] = s.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: "contested", SecretHash: randomHash(t), CreatedAt: base})
			} else {
				errs[i] = s.CreateClient(ctx, storage.Client{ID: "contested", RedirectURIs: []string{"https://c.example/cb"}, CreatedAt: base})
			}
		}()
	}
	wg.Wait()
	wins := 0
	for _, err := range errs {
		switch {
		case err == nil:
			wins++
		case !errors.Is(err, storage.ErrAlreadyExists):
			t.Fatalf("unexpected error %v", err)
		}
	}
	if wins != 1 {
		t.Fatalf("%d creations of one client id succeeded, want 1", wins)
	}
}

func testRefuseAccessTokens(t *testing.T, s storage.Store) {
	ctx := context.Background()
	token := newRefreshToken(t, "alice")
	if err := s.CreateRefreshToken(ctx, token); err != nil {
		t.Fatal(err)
	}
	later := base.Add(time.Hour)
	for _, at := range []time.Time{later, base} {
		if err := s.RefuseAccessTokens(ctx, storage.SubjectRevocation{Subject: "alice", At: at}); err != nil {
			t.Fatal(err)
		}
	}
	if revocation, _ := s.GetRevocation(ctx, token.FamilyID, "alice", ""); !sameInstant(revocation.SubjectRevokedAt, later) || revocation.FamilyRevoked {
		t.Fatalf("GetRevocation = %+v; want the later time, the family not revoked", revocation)
	}
	if _, err := s.GetRefreshToken(ctx, loginOf(token), token.Hash); err != nil {
		t.Fatalf("RefuseAccessTokens deleted a refresh token: %v", err)
	}
	// The later of the subject's and the client's revocations wins.
	if err := s.RefuseAccessTokens(ctx, storage.SubjectRevocation{Subject: "client:spa", At: later.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	if revocation, _ := s.GetRevocation(ctx, "", "alice", "client:spa"); !sameInstant(revocation.SubjectRevokedAt, later.Add(time.Hour)) {
		t.Fatalf("GetRevocation with a client = %+v", revocation)
	}
	if revocation, _ := s.GetRevocation(ctx, "", "bob", ""); !revocation.SubjectRevokedAt.IsZero() {
		t.Fatalf("another subject reads as revoked: %+v", revocation)
	}
}

// Ids and audiences in the client_id space never stand for each other,
// whatever their case, and the store checks it with the write; only an
// existing service account may be an audience (token exchange).
func testIDsAndAudiencesStayApart(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if err := s.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: "billing", SecretHash: randomHash(t),
		Grants: storage.Grants{AllowedAudiences: []string{"inventory"}}, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	if err := s.CreateClient(ctx, storage.Client{ID: "spa", RedirectURIs: []string{"https://s.example/cb"}, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		err  error
		want error
	}{
		{"a client named like an audience", s.CreateClient(ctx, storage.Client{ID: "Inventory", RedirectURIs: []string{"https://i.example/cb"}, CreatedAt: base}), storage.ErrAlreadyExists},
		{"a service named like an audience", s.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: "INVENTORY", SecretHash: randomHash(t), CreatedAt: base}), storage.ErrAlreadyExists},
		{"a client whose audience is a client's id", s.CreateClient(ctx, storage.Client{ID: "dashboard", RedirectURIs: []string{"https://d.example/cb"},
			Grants: storage.Grants{AllowedAudiences: []string{"Spa"}}, CreatedAt: base}), storage.ErrConflict},
		{"a service whose audience is its own id", s.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: "self", SecretHash: randomHash(t),
			Grants: storage.Grants{AllowedAudiences: []string{"self"}}, CreatedAt: base}), storage.ErrConflict},
		{"an update giving an audience that is its own id", s.UpdateServiceAccount(ctx, "billing", func(account *storage.ServiceAccount) (*storage.SubjectRevocation, error) {
			account.AllowedAudiences = []string{"inventory", "billing"}
			return nil, nil
		}), storage.ErrConflict},
		{"an update giving an audience that is a client's id", s.UpdateServiceAccount(ctx, "billing", func(account *storage.ServiceAccount) (*storage.SubjectRevocation, error) {
			account.AllowedAudiences = []string{"inventory", "SPA"}
			return nil, nil
		}), storage.ErrConflict},
		// Token exchange: a token addressed to a service account.
		{"a client whose audience is a service's id", s.CreateClient(ctx, storage.Client{ID: "portal", RedirectURIs: []string{"https://p.example/cb"},
			Grants: storage.Grants{AllowedAudiences: []string{"Billing"}}, CreatedAt: base}), nil},
		{"a service named like an audience that names a service", s.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: "BILLING", SecretHash: randomHash(t), CreatedAt: base}), storage.ErrAlreadyExists},
		{"a client named like an audience that names a service", s.CreateClient(ctx, storage.Client{ID: "billing", RedirectURIs: []string{"https://b.example/cb"}, CreatedAt: base}), storage.ErrAlreadyExists},
	} {
		if !errors.Is(tc.err, tc.want) {
			t.Errorf("%s: got %v, want %v", tc.name, tc.err, tc.want)
		}
	}
	for _, id := range []string{"dashboard", "self"} {
		if _, err := s.GetClient(ctx, id); !errors.Is(err, storage.ErrNotFound) {
			t.Errorf("a refused %s was stored: %v", id, err)
		}
	}
	if account, _ := s.GetServiceAccount(ctx, "billing"); len(account.AllowedAudiences) != 1 {
		t.Errorf("a refused update was applied: %v", account.AllowedAudiences)
	}
}

// A client created at the same time as a service allowed the client's id as
// an audience: exactly one of them is stored.
func testConcurrentIDAndAudienceHaveOneWinner(t *testing.T, s storage.Store) {
	ctx := context.Background()
	for round := range 4 {
		id := fmt.Sprintf("contested-%d", round)
		var clientErr, serviceErr error
		var wg sync.WaitGroup
		wg.Add(2)
		go func() {
			defer wg.Done()
			clientErr = s.CreateClient(ctx, storage.Client{ID: id, RedirectURIs: []string{"https://c.example/cb"}, CreatedAt: base})
		}()
		go func() {
			defer wg.Done()
			serviceErr = s.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: fmt.Sprintf("svc-%d", round), SecretHash: randomHash(t),
				Grants: storage.Grants{AllowedAudiences: []string{id}}, CreatedAt: base})
		}()
		wg.Wait()
		if (clientErr == nil) == (serviceErr == nil) {
			t.Fatalf("round %d: client %v, service %v; want exactly one stored", round, clientErr, serviceErr)
		}
	}
}

// A service account's token exchange policy round-trips through create
// and update; none is the zero value.
func testServiceAccountTokenExchange(t *testing.T, s storage.Store) {
	ctx := context.Background()
	if err := s.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: "plain", SecretHash: randomHash(t), CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	if account, err := s.GetServiceAccount(ctx, "plain"); err != nil || len(account.TokenExchange.Audiences) != 0 || account.TokenExchange.Impersonation {
		t.Fatalf("an account created without a policy has %+v, %v", account.TokenExchange, err)
	}
	policy := storage.TokenExchange{Audiences: []string{"inventory", "ledger"}, Impersonation: true}
	if err := s.CreateServiceAccount(ctx, storage.ServiceAccount{ClientID: "gateway", SecretHash: randomHash(t), TokenExchange: policy, CreatedAt: base}); err != nil {
		t.Fatal(err)
	}
	account, err := s.GetServiceAccount(ctx, "gateway")
	if err != nil || !slices.Equal(account.TokenExchange.Audiences, policy.Audiences) || !account.TokenExchange.Impersonation {
		t.Fatalf("GetServiceAccount = %+v, %v; want the policy %+v", account.TokenExchange, err, policy)
	}
	listed, err := s.ListServiceAccounts(ctx, storage.Page{})
	if err != nil || len(listed) != 2 || !slices.Equal(listed[0].TokenExchange.Audiences, policy.Audiences) {
		t.Fatalf("ListServiceAccounts = %+v, %v", listed, err)
	}
	if err := s.UpdateServiceAccount(ctx, "gateway", func(account *storage.ServiceAccount) (*storage.SubjectRevocation, error) {
		account.TokenExchange = storage.TokenExchange{Audiences: []string{"ledger"}}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	account, err = s.GetServiceAccount(ctx, "gateway")
	if err != nil || !slices.Equal(account.TokenExchange.Audiences, []string{"ledger"}) || account.TokenExchange.Impersonation {
		t.Fatalf("after the update: %+v, %v", account.TokenExchange, err)
	}
	// Other updates keep the policy.
	if err := s.UpdateServiceAccount(ctx, "gateway", func(account *storage.ServiceAccount) (*storage.SubjectRevocation, error) {
		account.AllowedScopes = []string{"ledger:read"}
		return nil, nil
	}); err != nil {
		t.Fatal(err)
	}
	if account, _ := s.GetServiceAccount(ctx, "gateway"); !slices.Equal(account.TokenExchange.Audiences, []string{"ledger"}) {
		t.Fatalf("a grants update lost the policy: %+v", account.TokenExchange)
	}
}
