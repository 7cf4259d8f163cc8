package tokens_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/tokens"
)

// exchangeFixture is a chain of services hop1 ... hop6, each allowed to
// exchange for the next (and hop1 for Chit's own audience too), a service
// allowed to impersonate, one allowed nothing, and alice's token addressed
// to hop1 through the portal client.
type exchangeFixture struct {
	*fixture
	secrets map[string]string
	portal  accounts.Client
}

func newExchangeFixture(t *testing.T) *exchangeFixture {
	t.Helper()
	ctx := context.Background()
	f := &exchangeFixture{fixture: newFixture(t), secrets: map[string]string{}}
	add := func(name string, exchange storage.TokenExchange) {
		t.Helper()
		secret, err := f.operator.AddServiceAccount(ctx, accounts.NewServiceAccount{Name: name, Grants: storage.Grants{AllowedScopes: []string{"read"}}, TokenExchange: exchange})
		if err != nil {
			t.Fatal(err)
		}
		f.secrets[name] = secret
	}
	for i := 1; i <= 6; i++ {
		audiences := []string{fmt.Sprintf("hop%d", i+1)}
		if i == 1 {
			audiences = append(audiences, "chit", "ledger")
		}
		add(fmt.Sprintf("hop%d", i), storage.TokenExchange{Audiences: audiences})
	}
	add("mask", storage.TokenExchange{Audiences: []string{"ledger"}, Impersonation: true})
	add("plain", storage.TokenExchange{})
	secret, err := f.operator.CreateClient(ctx, "portal", []string{"https://portal.example/cb"}, true,
		storage.Grants{AllowedScopes: []string{"read", "write"}, AllowedAudiences: []string{"hop1", "mask", "plain"}})
	if err != nil {
		t.Fatal(err)
	}
	if f.portal, err = f.operator.AuthenticateClient(ctx, "portal", secret); err != nil {
		t.Fatal(err)
	}
	return f
}

// aliceFor signs alice in through the portal for audience.
func (f *exchangeFixture) aliceFor(t *testing.T, audience, scope string) tokens.Grant {
	t.Helper()
	grant, err := f.service.IssueForPassword(context.Background(), tokens.PasswordRequest{Client: f.portal, Username: "alice", Password: "wonderland",
		Scope: scope, Audience: audience})
	if err != nil {
		t.Fatal(err)
	}
	return grant
}

func (f *exchangeFixture) principal(t *testing.T, name string) accounts.Principal {
	t.Helper()
	principal, err := f.operator.AuthenticateService(context.Background(), name, f.secrets[name])
	if err != nil {
		t.Fatal(err)
	}
	return principal
}

func (f *exchangeFixture) exchange(t *testing.T, service, subjectToken, audience, scope string) (tokens.Grant, error) {
	t.Helper()
	return f.service.IssueForExchange(context.Background(), tokens.ExchangeRequest{Service: f.principal(t, service), SubjectToken: subjectToken,
		SubjectTokenType: tokens.AccessTokenType, Audience: audience, Scope: scope})
}

// claimsFor verifies an exchanged token as its audience would, through the
// next exchange's check, or as Chit when it is addressed to Chit.
func (f *exchangeFixture) checkFor(t *testing.T, token string) tokens.Claims {
	t.Helper()
	claims, err := f.service.Check(context.Background(), token)
	if err != nil {
		t.Fatal(err)
	}
	return claims
}

// sign signs a token Chit never issues (an ADMIN token for a service, one
// with may_act), with the server's key, to show the exchange refuses it for
// what it says, not for its signature.
func (f *exchangeFixture) sign(t *testing.T, role, audience string, extra map[string]any) string {
	t.Helper()
	now := f.clock.Now()
	builder := jwt.NewBuilder().Issuer(f.cfg.Issuer).Subject("alice").Audience([]string{audience}).IssuedAt(now).NotBefore(now).
		Expiration(now.Add(10*time.Minute)).JwtID("crafted-"+role).Claim("role", role).Claim("scope", "read")
	for name, value := range extra {
		builder = builder.Claim(name, value)
	}
	token, err := builder.Build()
	if err != nil {
		t.Fatal(err)
	}
	signed, err := f.keys.SignAs(token, keys.AccessTokenType)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func wantReason(t *testing.T, err error, kind chiterr.Kind, reason, containing string) {
	t.Helper()
	if err == nil || chiterr.KindOf(err) != kind || chiterr.ReasonOf(err) != reason || !strings.Contains(err.Error(), containing) {
		t.Fatalf("got %v (kind %v, reason %q), want kind %v, reason %q, containing %q", err, chiterr.KindOf(err), chiterr.ReasonOf(err), kind, reason, containing)
	}
}

func actorChain(actor *tokens.Actor) string {
	var subjects []string
	for ; actor != nil; actor = actor.Actor {
		subjects = append(subjects, actor.Subject)
	}
	return strings.Join(subjects, " <- ")
}

func TestExchangeDelegatesWithActNamingTheService(t *testing.T) {
	f := newExchangeFixture(t)
	subject := f.aliceFor(t, "hop1", "read write")
	grant, err := f.exchange(t, "hop1", subject.AccessToken, "chit", "")
	if err != nil {
		t.Fatal(err)
	}
	if grant.IssuedTokenType != tokens.AccessTokenType || grant.RefreshToken != "" || grant.IDToken != "" || grant.Scope != "read write" {
		t.Fatalf("grant = %+v", grant)
	}
	claims := f.checkFor(t, grant.AccessToken)
	if claims.Subject != "alice" || claims.Role != accounts.RoleUser || claims.ClientID != "hop1" || actorChain(claims.Actor) != "service:hop1" ||
		claims.Audience[0] != "chit" || claims.FamilyID == "" || !claims.AuthTime.IsZero() {
		t.Fatalf("claims = %+v, act %s", claims, actorChain(claims.Actor))
	}
}

func TestExchangeChainNestsActUpToTheBound(t *testing.T) {
	f := newExchangeFixture(t)
	token := f.aliceFor(t, "hop1", "read").AccessToken
	want := []string{}
	for hop := 1; hop <= tokens.MaxActorDepth; hop++ {
		grant, err := f.exchange(t, fmt.Sprintf("hop%d", hop), token, fmt.Sprintf("hop%d", hop+1), "")
		if err != nil {
			t.Fatalf("hop %d: %v", hop, err)
		}
		token = grant.AccessToken
		want = append([]string{fmt.Sprintf("service:hop%d", hop)}, want...)
		// The next hop's exchange verifies it: use it as a subject through
		// a service whose exchange is checked below.
	}
	// hop5 holds a token with four actors; a fifth is past the bound.
	_, err := f.exchange(t, "hop5", token, "hop6", "")
	wantReason(t, err, chiterr.Unauthenticated, "", "at most 4")
	// The chain hop5 got is the four services, newest first.
	parsed, err := jwt.ParseInsecure([]byte(token))
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := parsed.Get("act")
	if got := fmt.Sprint(raw); !strings.Contains(got, "service:hop4") || !strings.Contains(got, "service:hop1") {
		t.Fatalf("act = %v, want %v", got, want)
	}
}

func TestExchangeActChainIsReadBack(t *testing.T) {
	f := newExchangeFixture(t)
	first, err := f.exchange(t, "hop1", f.aliceFor(t, "hop1", "read").AccessToken, "hop2", "")
	if err != nil {
		t.Fatal(err)
	}
	// hop2 cannot exchange for chit, so the chain is read through a third
	// service that may: hop1's policy names chit, and only hop1 gets tokens
	// for hop1. The nested chain of two is checked as Chit reads it by
	// signing the same shape (verified below through Check).
	second, err := f.exchange(t, "hop2", first.AccessToken, "hop3", "")
	if err != nil {
		t.Fatal(err)
	}
	crafted := f.sign(t, "USER", "chit", map[string]any{"act": map[string]any{"sub": "service:hop2", "act": map[string]any{"sub": "service:hop1"}}})
	if claims := f.checkFor(t, crafted); actorChain(claims.Actor) != "service:hop2 <- service:hop1" {
		t.Fatalf("act read as %q", actorChain(claims.Actor))
	}
	third, err := f.exchange(t, "hop3", second.AccessToken, "hop4", "")
	if err != nil || third.AccessToken == "" {
		t.Fatalf("a chain of three: %v", err)
	}
	// A token carrying a chain deeper than the bound is not even valid.
	deep := map[string]any{"sub": "service:x"}
	for range tokens.MaxActorDepth {
		deep = map[string]any{"sub": "service:x", "act": deep}
	}
	if _, err := f.service.Check(context.Background(), f.sign(t, "USER", "chit", map[string]any{"act": deep})); err == nil {
		t.Fatal("a token with an act chain past the bound was accepted")
	}
}

func TestExchangeImpersonationOnlyWhenAllowed(t *testing.T) {
	f := newExchangeFixture(t)
	// mask impersonates: its token carries no act. The ledger audience is
	// checked by reading the token's claims as ledger would (no act).
	masked, err := f.exchange(t, "mask", f.aliceFor(t, "mask", "read").AccessToken, "ledger", "")
	if err != nil {
		t.Fatal(err)
	}
	parsed, err := jwt.ParseInsecure([]byte(masked.AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := parsed.Get("act"); ok || parsed.Subject() != "alice" {
		t.Fatalf("an impersonation's token: sub %q, act present %v", parsed.Subject(), ok)
	}
	// hop1 is not allowed impersonation: the same exchange names it.
	delegated, err := f.exchange(t, "hop1", f.aliceFor(t, "hop1", "read").AccessToken, "ledger", "")
	if err != nil {
		t.Fatal(err)
	}
	if parsed, _ := jwt.ParseInsecure([]byte(delegated.AccessToken)); parsed == nil {
		t.Fatal("unparsable")
	} else if _, ok := parsed.Get("act"); !ok {
		t.Fatal("a service not allowed impersonation got a token without act")
	}
}

func TestExchangeRefusals(t *testing.T) {
	f := newExchangeFixture(t)
	ctx := context.Background()
	forHop1 := f.aliceFor(t, "hop1", "read")
	forChit, err := f.service.IssueForPassword(ctx, tokens.PasswordRequest{Client: apiClient, Username: "alice", Password: "wonderland", Scope: "read"})
	if err != nil {
		t.Fatal(err)
	}
	apiKey, _, err := f.service.CreateAPIKey(ctx, f.checkFor(t, forChit.AccessToken), tokens.NewAPIKey{Name: "k", Scopes: []string{"read"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name             string
		service          string
		request          tokens.ExchangeRequest
		kind             chiterr.Kind
		reason, contains string
	}{
		{"not addressed to the service", "hop2", tokens.ExchangeRequest{SubjectToken: forHop1.AccessToken, Audience: "hop3"}, chiterr.Unauthenticated, "", "addressed to \"hop2\""},
		{"addressed to Chit", "hop1", tokens.ExchangeRequest{SubjectToken: forChit.AccessToken, Audience: "hop2"}, chiterr.Unauthenticated, "", "aud"},
		{"an ADMIN token", "hop1", tokens.ExchangeRequest{SubjectToken: f.sign(t, "ADMIN", "hop1", nil), Audience: "hop2"}, chiterr.Unauthenticated, "", "ADMIN"},
		{"a refresh token", "hop1", tokens.ExchangeRequest{SubjectToken: forHop1.RefreshToken, Audience: "hop2"}, chiterr.Unauthenticated, "", "refresh token"},
		{"an API key", "hop1", tokens.ExchangeRequest{SubjectToken: apiKey, Audience: "hop2"}, chiterr.Unauthenticated, "", "API key"},
		{"a token of an API key", "hop1", tokens.ExchangeRequest{SubjectToken: f.sign(t, "USER", "hop1", map[string]any{"api_key_id": "k1"}), Audience: "hop2"}, chiterr.Unauthenticated, "", "API key"},
		{"a provider's role", "hop1", tokens.ExchangeRequest{SubjectToken: f.sign(t, "PROVIDER", "hop1", nil), Audience: "hop2"}, chiterr.Unauthenticated, "", "provider"},
		{"a forged signature", "hop1", tokens.ExchangeRequest{SubjectToken: forHop1.AccessToken[:len(forHop1.AccessToken)-4] + "AAAA", Audience: "hop2"}, chiterr.Unauthenticated, "", "not a valid access token"},
		{"widening the scopes", "hop1", tokens.ExchangeRequest{SubjectToken: forHop1.AccessToken, Audience: "hop2", Scope: "read write"}, chiterr.InvalidArgument, chiterr.ReasonInvalidScope, "write"},
		{"an audience not allowed", "hop1", tokens.ExchangeRequest{SubjectToken: forHop1.AccessToken, Audience: "hop9"}, chiterr.InvalidArgument, chiterr.ReasonInvalidTarget, "hop9"},
		{"Chit's audience when not allowed", "hop2", tokens.ExchangeRequest{SubjectToken: forHop1.AccessToken}, chiterr.InvalidArgument, chiterr.ReasonInvalidTarget, "chit"},
		{"a service not allowed to exchange", "plain", tokens.ExchangeRequest{SubjectToken: f.aliceFor(t, "plain", "read").AccessToken, Audience: "hop2"}, chiterr.PermissionDenied, chiterr.ReasonUnauthorizedClient, "may not exchange"},
		{"may_act naming another service", "hop1", tokens.ExchangeRequest{SubjectToken: f.sign(t, "USER", "hop1", map[string]any{"may_act": map[string]any{"sub": "service:hop2"}}), Audience: "hop2"}, chiterr.Unauthenticated, "", "may_act"},
		{"a refresh token requested", "hop1", tokens.ExchangeRequest{SubjectToken: forHop1.AccessToken, Audience: "hop2", RequestedTokenType: "urn:ietf:params:oauth:token-type:refresh_token"}, chiterr.InvalidArgument, "", "requested_token_type"},
		{"an ID token requested", "hop1", tokens.ExchangeRequest{SubjectToken: forHop1.AccessToken, Audience: "hop2", RequestedTokenType: "urn:ietf:params:oauth:token-type:id_token"}, chiterr.InvalidArgument, "", "requested_token_type"},
		{"no subject token", "hop1", tokens.ExchangeRequest{Audience: "hop2"}, chiterr.InvalidArgument, "", "subject_token is required"},
		{"a SAML subject", "hop1", tokens.ExchangeRequest{SubjectToken: forHop1.AccessToken, SubjectTokenType: "urn:ietf:params:oauth:token-type:saml2", Audience: "hop2"}, chiterr.InvalidArgument, "", "subject_token_type"},
		{"another service's actor token", "hop1", tokens.ExchangeRequest{SubjectToken: forHop1.AccessToken, Audience: "hop2",
			ActorToken: mustClientToken(t, f, "hop2"), ActorTokenType: tokens.AccessTokenType}, chiterr.Unauthenticated, "", "actor_token must be"},
		{"an actor token without its type", "hop1", tokens.ExchangeRequest{SubjectToken: forHop1.AccessToken, Audience: "hop2", ActorToken: mustClientToken(t, f, "hop1")}, chiterr.InvalidArgument, "", "actor_token_type"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			req := tc.request
			req.Service = f.principal(t, tc.service)
			if req.SubjectTokenType == "" && req.SubjectToken != "" {
				req.SubjectTokenType = tokens.AccessTokenType
			}
			if req.SubjectToken == "" {
				req.SubjectTokenType = tokens.AccessTokenType
			}
			grant, err := f.service.IssueForExchange(ctx, req)
			if err == nil {
				t.Fatalf("exchanged: %+v", grant)
			}
			wantReason(t, err, tc.kind, tc.reason, tc.contains)
		})
	}
}

func mustClientToken(t *testing.T, f *exchangeFixture, name string) string {
	t.Helper()
	grant, err := issueForClient(context.Background(), f.service, name, f.secrets[name], "")
	if err != nil {
		t.Fatal(err)
	}
	return grant.AccessToken
}

func TestExchangeAcceptsTheServicesOwnActorToken(t *testing.T) {
	f := newExchangeFixture(t)
	_, err := f.service.IssueForExchange(context.Background(), tokens.ExchangeRequest{Service: f.principal(t, "hop1"),
		SubjectToken: f.aliceFor(t, "hop1", "read").AccessToken, SubjectTokenType: tokens.AccessTokenType, Audience: "hop2",
		ActorToken: mustClientToken(t, f, "hop1"), ActorTokenType: tokens.AccessTokenType})
	if err != nil {
		t.Fatal(err)
	}
}

func TestExchangeHonoursMayAct(t *testing.T) {
	f := newExchangeFixture(t)
	allowed := f.sign(t, "USER", "hop1", map[string]any{"may_act": map[string]any{"sub": "service:hop1"}})
	grant, err := f.exchange(t, "hop1", allowed, "chit", "")
	if err != nil {
		t.Fatal(err)
	}
	if claims := f.checkFor(t, grant.AccessToken); actorChain(claims.Actor) != "service:hop1" {
		t.Fatalf("act %q", actorChain(claims.Actor))
	}
}

func TestExchangeNarrowsScopesAndCapsExpiry(t *testing.T) {
	f := newExchangeFixture(t)
	subject := f.aliceFor(t, "hop1", "read write")
	subjectClaims, _ := jwt.ParseInsecure([]byte(subject.AccessToken))
	f.clock.Advance(10 * time.Minute)
	grant, err := f.exchange(t, "hop1", subject.AccessToken, "chit", "write")
	if err != nil {
		t.Fatal(err)
	}
	claims := f.checkFor(t, grant.AccessToken)
	if strings.Join(claims.Scopes, " ") != "write" || grant.Scope != "write" {
		t.Fatalf("scopes %v, grant scope %q", claims.Scopes, grant.Scope)
	}
	if !claims.ExpiresAt.Equal(subjectClaims.Expiration()) || grant.ExpiresIn != 5*time.Minute {
		t.Fatalf("exp %v (expires in %v), want the subject token's %v", claims.ExpiresAt, grant.ExpiresIn, subjectClaims.Expiration())
	}
	// Past the subject token's expiry, there is nothing to exchange.
	f.clock.Advance(6 * time.Minute)
	_, err = f.exchange(t, "hop1", subject.AccessToken, "chit", "")
	wantReason(t, err, chiterr.Unauthenticated, "", "expired")
}

func TestRevokingTheSubjectsLoginEndsTheExchangedToken(t *testing.T) {
	f := newExchangeFixture(t)
	ctx := context.Background()
	subject := f.aliceFor(t, "hop1", "read")
	exchanged, err := f.exchange(t, "hop1", subject.AccessToken, "chit", "")
	if err != nil {
		t.Fatal(err)
	}
	onward, err := f.exchange(t, "hop1", subject.AccessToken, "hop2", "")
	if err != nil {
		t.Fatal(err)
	}
	f.checkFor(t, exchanged.AccessToken)
	if err := f.service.Revoke(ctx, f.portal, subject.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if _, err := f.service.Check(ctx, exchanged.AccessToken); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("Check of a token exchanged from a revoked login: %v", err)
	}
	if _, err := f.exchange(t, "hop1", subject.AccessToken, "chit", ""); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("exchange of a revoked login's token: %v", err)
	}
	if _, err := f.exchange(t, "hop2", onward.AccessToken, "hop3", ""); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("a chain from a revoked login went on: %v", err)
	}
}

func TestEndingTheActingServiceEndsItsExchangedTokens(t *testing.T) {
	f := newExchangeFixture(t)
	ctx := context.Background()
	delegated, err := f.exchange(t, "hop1", f.aliceFor(t, "hop1", "read").AccessToken, "chit", "")
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	// Narrowing hop1's exchange policy refuses what it exchanged before.
	if err := f.operator.SetServiceTokenExchange(ctx, "hop1", storage.TokenExchange{Audiences: []string{"hop2"}}); err != nil {
		t.Fatal(err)
	}
	f.service.ForgetRefusals("client:hop1")
	if _, err := f.service.Check(ctx, delegated.AccessToken); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("Check after the policy narrowed: %v", err)
	}
	// Deleting an actor earlier in a chain refuses the later hops' tokens.
	onward, err := f.exchange(t, "hop1", f.aliceFor(t, "hop1", "read").AccessToken, "hop2", "")
	if err != nil {
		t.Fatal(err)
	}
	f.clock.Advance(time.Second)
	if err := f.operator.DeleteServiceAccount(ctx, "hop1"); err != nil {
		t.Fatal(err)
	}
	f.service.ForgetRefusals("service:hop1")
	if _, err := f.exchange(t, "hop2", onward.AccessToken, "hop3", ""); chiterr.KindOf(err) != chiterr.Unauthenticated {
		t.Fatalf("a token whose earlier actor was deleted was exchanged again: %v", err)
	}
}

// The exchanging service cannot end its subject's login by revoking the
// token it got: the login is the subject's, through another client.
func TestTheExchangingServiceCannotRevokeTheSubjectsLogin(t *testing.T) {
	f := newExchangeFixture(t)
	ctx := context.Background()
	subject := f.aliceFor(t, "hop1", "read")
	exchanged, err := f.exchange(t, "hop1", subject.AccessToken, "chit", "")
	if err != nil {
		t.Fatal(err)
	}
	asClient, err := f.operator.AuthenticateClient(ctx, "hop1", f.secrets["hop1"])
	if err != nil {
		t.Fatal(err)
	}
	wantReason(t, f.service.Revoke(ctx, asClient, exchanged.AccessToken), chiterr.InvalidArgument, chiterr.ReasonUnsupportedTokenType, "token exchange")
	if _, err := f.service.Refresh(ctx, tokens.RefreshRequest{Client: f.portal, RefreshToken: subject.RefreshToken}); err != nil {
		t.Fatalf("the subject's login ended: %v", err)
	}
	f.checkFor(t, exchanged.AccessToken)
}

// Ending or narrowing the client the subject signed in through refuses the
// tokens exchanged from its tokens, down a chain, as it refuses the subject token itself: an exchanged
// token's client is the exchanging service, so it must say whose login it
// came through.
func TestEndingTheSubjectsClientEndsTheExchangedTokens(t *testing.T) {
	for name, end := range map[string]func(ctx context.Context, f *exchangeFixture) error{
		"grants narrowed": func(ctx context.Context, f *exchangeFixture) error {
			return f.operator.SetClientGrants(ctx, "portal", storage.Grants{AllowedScopes: []string{"write"}, AllowedAudiences: []string{"hop1", "mask"}})
		},
		"deleted": func(ctx context.Context, f *exchangeFixture) error { return f.operator.DeleteClient(ctx, "portal") },
	} {
		t.Run(name, func(t *testing.T) {
			f := newExchangeFixture(t)
			ctx := context.Background()
			subject := f.aliceFor(t, "hop1", "read")
			forChit, err := f.exchange(t, "hop1", subject.AccessToken, "chit", "")
			if err != nil {
				t.Fatal(err)
			}
			onward, err := f.exchange(t, "hop1", subject.AccessToken, "hop2", "")
			if err != nil {
				t.Fatal(err)
			}
			chained, err := f.exchange(t, "hop2", onward.AccessToken, "hop3", "")
			if err != nil {
				t.Fatal(err)
			}
			f.checkFor(t, forChit.AccessToken)
			f.clock.Advance(time.Second)
			if err := end(ctx, f); err != nil {
				t.Fatal(err)
			}
			f.service.ForgetRefusals("client:portal")
			if _, err := f.service.Check(ctx, forChit.AccessToken); chiterr.KindOf(err) != chiterr.Unauthenticated {
				t.Fatalf("Check of a token exchanged through a client since ended: %v", err)
			}
			if _, err := f.exchange(t, "hop3", chained.AccessToken, "hop4", ""); chiterr.KindOf(err) != chiterr.Unauthenticated {
				t.Fatalf("a chain from a client since ended went on: %v", err)
			}
		})
	}
}
