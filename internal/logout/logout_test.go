package logout_test

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/logout"
	"github.com/chit-auth/chit/internal/logout/backchannel"
	"github.com/chit-auth/chit/internal/storage"
	"github.com/chit-auth/chit/internal/storage/sqlite/sqlitetest"
)

const issuer = "https://chit.test"

var start = time.Date(2026, 12, 7, 10, 0, 0, 0, time.UTC)

// fakeSessions holds sessions by cookie.
type fakeSessions struct {
	mu       sync.Mutex
	byCookie map[string]logout.Session
	ended    []string
}

func (f *fakeSessions) Resume(_ context.Context, cookie string) (logout.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	session, ok := f.byCookie[cookie]
	if !ok {
		return logout.Session{}, chiterr.New(chiterr.Unauthenticated, "no session")
	}
	return session, nil
}

func (f *fakeSessions) End(_ context.Context, id string) (logout.Session, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	for cookie, session := range f.byCookie {
		if session.ID == id {
			delete(f.byCookie, cookie)
			f.ended = append(f.ended, id)
			return session, nil
		}
	}
	return logout.Session{}, chiterr.New(chiterr.NotFound, "no session")
}

type fakeClients map[string]storage.ClientLogout

func (f fakeClients) LookupClient(_ context.Context, id string) (accounts.Client, error) {
	if _, ok := f[id]; !ok {
		return accounts.Client{}, chiterr.New(chiterr.InvalidArgument, "client %q is not registered", id)
	}
	return accounts.Client{ID: id}, nil
}

func (f fakeClients) ClientLogout(_ context.Context, id string) (storage.ClientLogout, error) {
	return f[id], nil
}

type fakeLogins struct {
	mu      sync.Mutex
	revoked []string
}

func (f *fakeLogins) RevokeClientLogins(_ context.Context, subject, clientID, _ string) (int, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.revoked = append(f.revoked, subject+"@"+clientID)
	return 1, nil
}

type fixture struct {
	service  *logout.Service
	keys     *keys.Set
	sessions *fakeSessions
	logins   *fakeLogins
	clients  fakeClients
	now      time.Time
}

func newFixture(t *testing.T, clients fakeClients) *fixture {
	t.Helper()
	store := sqlitetest.Open(t)
	signingKeys, err := keys.Load(context.Background(), store, jwa.ES256, &keys.Sealer{}, start)
	if err != nil {
		t.Fatal(err)
	}
	f := &fixture{keys: signingKeys, clients: clients, logins: &fakeLogins{}, now: start,
		sessions: &fakeSessions{byCookie: map[string]logout.Session{
			"alice-cookie": {ID: "s-alice", Subject: "alice", ClientIDs: []string{"web", "other"}},
			"bob-cookie":   {ID: "s-bob", Subject: "bob", ClientIDs: []string{"web"}},
		}}}
	f.service = logout.NewService(logout.Config{Issuer: issuer, DeliveryTimeout: 500 * time.Millisecond, DeliveryWait: 200 * time.Millisecond},
		logout.Dependencies{Keys: signingKeys, Sessions: f.sessions, Clients: clients, Logins: f.logins, Deliverer: backchannel.New(500*time.Millisecond, nil),
			Now: func() time.Time { return f.now }, Random: rand.Reader})
	return f
}

// idToken signs an ID token as Chit issues them, with changes.
func (f *fixture) idToken(t *testing.T, sub, client, sid string, change func(jwt.Token)) string {
	t.Helper()
	token, err := jwt.NewBuilder().Issuer(issuer).Subject(sub).Audience([]string{client}).Claim("azp", client).
		IssuedAt(f.now).Expiration(f.now.Add(15 * time.Minute)).Build()
	if err != nil {
		t.Fatal(err)
	}
	if sid != "" {
		_ = token.Set("sid", sid)
	}
	if change != nil {
		change(token)
	}
	signed, err := f.keys.Sign(token)
	if err != nil {
		t.Fatal(err)
	}
	return signed
}

func webClients() fakeClients {
	return fakeClients{
		"web":   {PostLogoutRedirectURIs: []string{"https://web.example/bye", "https://web.example/bye?lang=en"}, RevokesRefreshTokens: true},
		"other": {PostLogoutRedirectURIs: []string{"https://other.example/bye"}},
	}
}

func TestIDTokenHintVerification(t *testing.T) {
	f := newFixture(t, webClients())
	ctx := context.Background()
	elsewhere, err := keys.Load(ctx, sqlitetest.Open(t), jwa.ES256, &keys.Sealer{}, start)
	if err != nil {
		t.Fatal(err)
	}
	good := f.idToken(t, "alice", "web", "s-alice", nil)
	parts := strings.Split(good, ".")
	otherPayload, _ := jwt.NewBuilder().Issuer(issuer).Subject("bob").Audience([]string{"web"}).Claim("azp", "web").Build()
	otherJSON, _ := jwt.NewSerializer().Serialize(otherPayload)
	forgedPayload := parts[0] + "." + base64.RawURLEncoding.EncodeToString(otherJSON) + "." + parts[2]
	foreignToken, _ := jwt.NewBuilder().Issuer(issuer).Subject("alice").Audience([]string{"web"}).Claim("azp", "web").Expiration(start.Add(time.Hour)).Build()
	foreignKey, _ := elsewhere.Sign(foreignToken)
	accessHeaders := jws.NewHeaders()
	_ = accessHeaders.Set(jws.TypeKey, keys.AccessTokenType)

	tests := []struct {
		name string
		hint string
		ok   bool
	}{
		{"good", good, true},
		{"expired but signed by Chit", f.idToken(t, "alice", "web", "s-alice", func(token jwt.Token) {
			_ = token.Set(jwt.IssuedAtKey, start.Add(-48*time.Hour))
			_ = token.Set(jwt.ExpirationKey, start.Add(-47*time.Hour))
		}), true},
		{"without sid", f.idToken(t, "alice", "web", "", nil), true},
		{"forged payload", forgedPayload, false},
		{"signed by another server's key", foreignKey, false},
		{"another issuer", f.idToken(t, "alice", "web", "s-alice", func(token jwt.Token) { _ = token.Set(jwt.IssuerKey, "https://evil.example") }), false},
		{"an access token", f.idToken(t, "alice", "web", "s-alice", func(token jwt.Token) { _ = token.Set("role", "user") }), false},
		{"no client", f.idToken(t, "alice", "web", "s-alice", func(token jwt.Token) {
			_ = token.Remove("azp")
			_ = token.Set(jwt.AudienceKey, []string{"a", "b"})
		}), false},
		{"garbage", "not.a.token", false},
		{"empty parts", "..", false},
		{"huge", strings.Repeat("a", 20000), false},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			outcome, err := f.service.Logout(ctx, logout.Request{IDTokenHint: tc.hint, PostLogoutRedirectURI: "https://web.example/bye"})
			if tc.ok {
				if err != nil || outcome.RedirectURI != "https://web.example/bye" || outcome.ClientID != "web" {
					t.Fatalf("Logout = %+v, %v; want the redirect", outcome, err)
				}
				return
			}
			if chiterr.KindOf(err) != chiterr.InvalidArgument || outcome.RedirectURI != "" {
				t.Fatalf("Logout = %+v, %v; want InvalidArgument and no redirect", outcome, err)
			}
		})
	}
	// A typed access token is refused too.
	typedToken, _ := jwt.NewBuilder().Issuer(issuer).Subject("alice").Audience([]string{"web"}).Claim("azp", "web").Build()
	typed, err := f.keys.SignAs(typedToken, keys.AccessTokenType)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.service.Logout(ctx, logout.Request{IDTokenHint: typed}); chiterr.KindOf(err) != chiterr.InvalidArgument {
		t.Fatalf("an at+jwt hint: %v", err)
	}
	// So is a logout token Chit signed.
	logoutToken, err := f.service.LogoutToken("web", logout.Session{ID: "s-alice", Subject: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.service.Logout(ctx, logout.Request{IDTokenHint: logoutToken}); chiterr.KindOf(err) != chiterr.InvalidArgument {
		t.Fatalf("a logout token as hint: %v", err)
	}
}

func TestPostLogoutRedirect(t *testing.T) {
	f := newFixture(t, webClients())
	ctx := context.Background()
	hint := f.idToken(t, "alice", "web", "", nil)
	tests := []struct {
		name string
		req  logout.Request
		want string // "" with wantErr: refused
		err  bool
	}{
		{"registered, with state", logout.Request{IDTokenHint: hint, PostLogoutRedirectURI: "https://web.example/bye", State: "x y&z"}, "https://web.example/bye?state=x+y%26z", false},
		{"registered with a query, state added", logout.Request{IDTokenHint: hint, PostLogoutRedirectURI: "https://web.example/bye?lang=en", State: "s"}, "https://web.example/bye?lang=en&state=s", false},
		{"by client_id alone", logout.Request{ClientID: "other", PostLogoutRedirectURI: "https://other.example/bye"}, "https://other.example/bye", false},
		{"client_id agrees with the hint", logout.Request{IDTokenHint: hint, ClientID: "web", PostLogoutRedirectURI: "https://web.example/bye"}, "https://web.example/bye", false},
		{"no redirect asked: the page", logout.Request{IDTokenHint: hint, State: "ignored"}, "", false},
		{"unregistered", logout.Request{IDTokenHint: hint, PostLogoutRedirectURI: "https://evil.example/"}, "", true},
		{"not exactly the registered one", logout.Request{IDTokenHint: hint, PostLogoutRedirectURI: "https://web.example/bye/"}, "", true},
		{"another client's", logout.Request{IDTokenHint: hint, PostLogoutRedirectURI: "https://other.example/bye"}, "", true},
		{"client_id contradicts the hint", logout.Request{IDTokenHint: hint, ClientID: "other", PostLogoutRedirectURI: "https://other.example/bye"}, "", true},
		{"client_id contradicts the hint, no redirect", logout.Request{IDTokenHint: hint, ClientID: "other"}, "", true},
		{"no hint nor client_id", logout.Request{PostLogoutRedirectURI: "https://web.example/bye"}, "", true},
		{"unknown client", logout.Request{ClientID: "nobody", PostLogoutRedirectURI: "https://web.example/bye"}, "", true},
		{"Chit's own client registers nothing", logout.Request{ClientID: accounts.CLIClientID, PostLogoutRedirectURI: "http://127.0.0.1/"}, "", true},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			outcome, err := f.service.Logout(ctx, tc.req)
			if tc.err {
				if err == nil || outcome.RedirectURI != "" {
					t.Fatalf("Logout = %+v, %v; want refused with no redirect", outcome, err)
				}
				return
			}
			if err != nil || outcome.RedirectURI != tc.want {
				t.Fatalf("Logout = %+v, %v; want redirect %q", outcome, err, tc.want)
			}
		})
	}
	if len(f.sessions.ended) != 0 {
		t.Fatalf("requests without a session cookie ended %v", f.sessions.ended)
	}
}

func TestSessionEnding(t *testing.T) {
	ctx := context.Background()
	t.Run("a hint of the cookie's session ends it, revoking only for the clients that ask", func(t *testing.T) {
		f := newFixture(t, webClients())
		outcome, err := f.service.Logout(ctx, logout.Request{IDTokenHint: f.idToken(t, "alice", "web", "s-alice", nil), SessionCookie: "alice-cookie",
			PostLogoutRedirectURI: "https://web.example/bye", State: "st"})
		if err != nil || !outcome.Ended || !outcome.ClearCookie || outcome.NeedsConfirmation || outcome.RedirectURI != "https://web.example/bye?state=st" {
			t.Fatalf("Logout = %+v, %v", outcome, err)
		}
		if fmt.Sprint(f.sessions.ended) != "[s-alice]" || fmt.Sprint(f.logins.revoked) != "[alice@web]" {
			t.Fatalf("ended %v, revoked %v; want s-alice, and alice's logins through web only", f.sessions.ended, f.logins.revoked)
		}
	})
	t.Run("a hint without sid, of the same person", func(t *testing.T) {
		f := newFixture(t, webClients())
		outcome, err := f.service.Logout(ctx, logout.Request{IDTokenHint: f.idToken(t, "alice", "web", "", nil), SessionCookie: "alice-cookie"})
		if err != nil || !outcome.Ended {
			t.Fatalf("Logout = %+v, %v", outcome, err)
		}
	})
	for name, hint := range map[string][3]string{
		"a hint of another session":    {"alice", "web", "s-old"},
		"a hint of another person":     {"bob", "web", ""},
		"another person's session id":  {"bob", "web", "s-bob"},
		"the session id, another sub ": {"bob", "web", "s-alice"},
	} {
		t.Run(name+" ends nothing and asks", func(t *testing.T) {
			f := newFixture(t, webClients())
			outcome, err := f.service.Logout(ctx, logout.Request{IDTokenHint: f.idToken(t, hint[0], hint[1], hint[2], nil), SessionCookie: "alice-cookie",
				PostLogoutRedirectURI: "https://web.example/bye"})
			if err != nil || outcome.Ended || !outcome.NeedsConfirmation || outcome.Confirm.Get("post_logout_redirect_uri") != "https://web.example/bye" {
				t.Fatalf("Logout = %+v, %v; want a confirmation", outcome, err)
			}
			if len(f.sessions.ended) != 0 || len(f.logins.revoked) != 0 {
				t.Fatalf("ended %v, revoked %v", f.sessions.ended, f.logins.revoked)
			}
		})
	}
	t.Run("without a hint the person confirms first", func(t *testing.T) {
		f := newFixture(t, webClients())
		outcome, err := f.service.Logout(ctx, logout.Request{SessionCookie: "alice-cookie"})
		if err != nil || outcome.Ended || !outcome.NeedsConfirmation {
			t.Fatalf("Logout = %+v, %v; want a confirmation", outcome, err)
		}
		outcome, err = f.service.Logout(ctx, logout.Request{SessionCookie: "alice-cookie", Confirmed: true})
		if err != nil || !outcome.Ended || fmt.Sprint(f.sessions.ended) != "[s-alice]" {
			t.Fatalf("confirmed Logout = %+v, %v (ended %v)", outcome, err, f.sessions.ended)
		}
	})
	t.Run("no live session: nothing ended, the cookie cleared", func(t *testing.T) {
		f := newFixture(t, webClients())
		outcome, err := f.service.Logout(ctx, logout.Request{IDTokenHint: f.idToken(t, "alice", "web", "s-alice", nil), SessionCookie: "tampered"})
		if err != nil || outcome.Ended || !outcome.ClearCookie || outcome.NeedsConfirmation {
			t.Fatalf("Logout = %+v, %v", outcome, err)
		}
	})
}

// receiver records the logout tokens POSTed to it.
type receiver struct {
	mu     sync.Mutex
	tokens []string
}

func (r *receiver) handler(w http.ResponseWriter, req *http.Request) {
	if err := req.ParseForm(); err != nil || req.Method != http.MethodPost || req.Header.Get("Content-Type") != "application/x-www-form-urlencoded" {
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	r.tokens = append(r.tokens, req.PostForm.Get("logout_token"))
	r.mu.Unlock()
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(http.StatusOK)
}

func TestBackchannelLogout(t *testing.T) {
	ctx := context.Background()
	good := &receiver{}
	goodServer := httptest.NewServer(http.HandlerFunc(good.handler))
	t.Cleanup(goodServer.Close)
	hang := make(chan struct{})
	hangServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { <-hang }))
	t.Cleanup(func() { close(hang); hangServer.Close() })
	redirected := &receiver{}
	redirectTarget := httptest.NewServer(http.HandlerFunc(redirected.handler))
	t.Cleanup(redirectTarget.Close)
	redirectServer := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		http.Redirect(w, r, redirectTarget.URL, http.StatusTemporaryRedirect)
	}))
	t.Cleanup(redirectServer.Close)

	f := newFixture(t, fakeClients{
		"web":    {BackchannelLogoutURI: goodServer.URL + "/bc"},
		"other":  {BackchannelLogoutURI: hangServer.URL},
		"third":  {BackchannelLogoutURI: redirectServer.URL},
		"silent": {},
	})
	f.sessions.byCookie["carol-cookie"] = logout.Session{ID: "s-carol", Subject: "carol", ClientIDs: []string{"web", "other", "third", "silent"}}
	began := time.Now()
	outcome, err := f.service.Logout(ctx, logout.Request{IDTokenHint: f.idToken(t, "carol", "web", "s-carol", nil), SessionCookie: "carol-cookie"})
	if err != nil || !outcome.Ended {
		t.Fatalf("Logout = %+v, %v", outcome, err)
	}
	// The hanging receiver did not hold the person's logout for longer than
	// DeliveryWait (and some slack).
	if waited := time.Since(began); waited > 2*time.Second {
		t.Fatalf("the logout waited %v for a hanging receiver", waited)
	}
	f.service.WaitForDeliveries()
	if len(redirected.tokens) != 0 {
		t.Fatalf("a redirect was followed: %d tokens reached its target", len(redirected.tokens))
	}
	if len(good.tokens) != 1 {
		t.Fatalf("the receiver got %d logout tokens, want 1", len(good.tokens))
	}
	// The token verifies against Chit's published keys, as a receiver checks it.
	set, err := jwk.Parse(f.keys.JWKS())
	if err != nil {
		t.Fatal(err)
	}
	raw := good.tokens[0]
	message, err := jws.Parse([]byte(raw))
	if err != nil {
		t.Fatal(err)
	}
	if typ := message.Signatures()[0].ProtectedHeaders().Type(); typ != logout.LogoutTokenType {
		t.Fatalf("typ = %q, want %q", typ, logout.LogoutTokenType)
	}
	token, err := jwt.ParseString(raw, jwt.WithKeySet(set), jwt.WithIssuer(issuer), jwt.WithAudience("web"),
		jwt.WithClock(jwt.ClockFunc(func() time.Time { return f.now })), jwt.WithRequiredClaim("jti"), jwt.WithRequiredClaim("iat"))
	if err != nil {
		t.Fatalf("the logout token does not verify: %v", err)
	}
	if token.Subject() != "carol" || token.Expiration().Sub(token.IssuedAt()) > 5*time.Minute || token.JwtID() == "" {
		t.Fatalf("claims: sub %q, iat %v, exp %v, jti %q", token.Subject(), token.IssuedAt(), token.Expiration(), token.JwtID())
	}
	if sid, _ := token.Get("sid"); sid != "s-carol" {
		t.Fatalf("sid = %v", sid)
	}
	if _, hasNonce := token.Get("nonce"); hasNonce {
		t.Fatal("a logout token carries a nonce")
	}
	events, _ := token.Get("events")
	if member, ok := events.(map[string]any)[logout.BackchannelLogoutEvent]; !ok || fmt.Sprint(member) != "map[]" {
		t.Fatalf("events = %v", events)
	}
	// Forged: the receiver's check refuses a token whose payload changed.
	parts := strings.Split(raw, ".")
	payload, _ := base64.RawURLEncoding.DecodeString(parts[1])
	forged := parts[0] + "." + base64.RawURLEncoding.EncodeToString([]byte(strings.Replace(string(payload), "carol", "alice", 1))) + "." + parts[2]
	if _, err := jwt.ParseString(forged, jwt.WithKeySet(set)); err == nil {
		t.Fatal("a forged logout token verified")
	}
}
