package sdktest_test

import (
	"context"
	"crypto/elliptic"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jwt"
	"golang.org/x/oauth2"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/status"

	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/pkg/client"
	"github.com/chit-auth/chit/pkg/verifier"
)

// rewrite points requests for the test issuer at the test server.
func rewrite(e *servertest.Env, fetches *atomic.Int32) *http.Client {
	base, _ := url.Parse(e.HTTPBase())
	return &http.Client{Transport: roundTripper(func(r *http.Request) (*http.Response, error) {
		if fetches != nil && strings.HasSuffix(r.URL.Path, "/jwks.json") {
			fetches.Add(1)
		}
		r = r.Clone(r.Context())
		r.URL.Scheme, r.URL.Host = base.Scheme, base.Host
		return http.DefaultTransport.RoundTrip(r)
	})}
}

type roundTripper func(*http.Request) (*http.Response, error)

func (f roundTripper) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

func newVerifier(t *testing.T, e *servertest.Env, fetches *atomic.Int32) *verifier.Verifier {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)
	v, err := verifier.New(ctx, verifier.Config{Issuer: servertest.Issuer, Audience: servertest.Audience, HTTPClient: rewrite(e, fetches), Now: e.Clock.Now, MinRefetchInterval: time.Hour})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func serviceToken(t *testing.T, e *servertest.Env) string {
	t.Helper()
	source := client.ClientCredentials(context.WithValue(context.Background(), oauth2.HTTPClient, rewrite(e, nil)), servertest.Issuer, servertest.ServiceName, e.ServiceSecret)
	token, err := source.Token()
	if err != nil {
		t.Fatal(err)
	}
	return token.AccessToken
}

func foreignToken(t *testing.T, kid, issuer string) string {
	t.Helper()
	record, _ := keys.Generate(jwa.ES256, time.Now())
	key, _ := jwk.ParseKey(record.PrivateKey)
	if kid != "" {
		_ = key.Set(jwk.KeyIDKey, kid)
	}
	token, _ := jwt.NewBuilder().Issuer(issuer).Subject("mallory").Audience([]string{servertest.Audience}).
		Expiration(time.Now().Add(time.Hour)).Claim("role", "ADMIN").Build()
	signed, err := jwt.Sign(token, jwt.WithKey(jwa.ES256, key))
	if err != nil {
		t.Fatal(err)
	}
	// The form Chit signs: any other encoding is refused first.
	if signed, err = keys.NormalizeLowS(signed, jwa.ES256); err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

func TestVerifyAndRefuse(t *testing.T) {
	e := servertest.Start(t)
	var fetches atomic.Int32
	v := newVerifier(t, e, &fetches)
	claims, err := v.Verify(context.Background(), serviceToken(t, e))
	if err != nil || claims.Subject != "service:"+servertest.ServiceName || claims.Role != "SERVICE" {
		t.Fatalf("Verify = %+v, %v", claims, err)
	}
	for name, token := range map[string]string{
		"another issuer":            foreignToken(t, "", "https://evil.example"),
		"unknown kid":               foreignToken(t, "no-such-kid", servertest.Issuer),
		"alg none":                  "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0.",
		"garbage":                   "garbage",
		"oversized":                 strings.Repeat("a", 9000),
		"empty":                     "",
		"truncated valid":           serviceToken(t, e)[:40],
		"HS256 with the public key": hmacWithPublicKey(t, e),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := v.Verify(context.Background(), token); !errors.Is(err, verifier.ErrInvalidToken) {
				t.Fatalf("got %v, want ErrInvalidToken", err)
			}
		})
	}
	// The unknown kid caused one refetch, rate-limited: more unknown kids
	// within the interval fetch nothing more.
	before := fetches.Load()
	for range 5 {
		_, _ = v.Verify(context.Background(), foreignToken(t, "another-unknown", servertest.Issuer))
	}
	if fetches.Load() != before {
		t.Fatalf("%d refetches for unknown kids within the rate limit", fetches.Load()-before)
	}
}

func TestRotatedKeyIsAcceptedAfterRefetch(t *testing.T) {
	e := servertest.Start(t)
	var fetches atomic.Int32
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	v, err := verifier.New(ctx, verifier.Config{Issuer: servertest.Issuer, Audience: servertest.Audience, HTTPClient: rewrite(e, &fetches), Now: e.Clock.Now, MinRefetchInterval: time.Minute})
	if err != nil {
		t.Fatal(err)
	}
	// Two rotations: the key that signs afterwards was not in the set the
	// verifier fetched at start.
	for range 2 {
		e.Clock.Advance(servertest.KeyRotationPeriod)
		e.Server.MaintainKeys(context.Background())
	}
	before := fetches.Load()
	if _, err := v.Verify(context.Background(), serviceToken(t, e)); err != nil {
		t.Fatalf("a token of a rotated-in key: %v", err)
	}
	if fetches.Load() != before+1 {
		t.Fatalf("%d fetches, want exactly one refetch", fetches.Load()-before)
	}
	// An unknown kid right after: no refetch within the rate limit, refused.
	if _, err := v.Verify(context.Background(), foreignToken(t, "unknown", servertest.Issuer)); !errors.Is(err, verifier.ErrInvalidToken) || fetches.Load() != before+1 {
		t.Fatalf("unknown kid within the rate limit: %v, %d fetches", err, fetches.Load()-before)
	}
	// Later: one refetch, then refused.
	e.Clock.Advance(2 * time.Minute)
	if _, err := v.Verify(context.Background(), foreignToken(t, "unknown", servertest.Issuer)); !errors.Is(err, verifier.ErrInvalidToken) || fetches.Load() != before+2 {
		t.Fatalf("unknown kid after the rate limit: %v, %d fetches, want a refetch then a refusal", err, fetches.Load()-before)
	}
}

func TestGRPCInterceptorAndHTTPMiddleware(t *testing.T) {
	e := servertest.Start(t)
	v := newVerifier(t, e, nil)
	service := serviceToken(t, e)

	// A service protecting its own method (the health check) with the interceptor.
	listener, _ := net.Listen("tcp", "127.0.0.1:0")
	rules := verifier.Rules{grpc_health_v1.Health_Check_FullMethodName: {Roles: []string{"SERVICE"}}}
	server := grpc.NewServer(grpc.UnaryInterceptor(v.UnaryServerInterceptor(rules)), grpc.StreamInterceptor(v.StreamServerInterceptor(rules)))
	grpc_health_v1.RegisterHealthServer(server, health.NewServer())
	go func() { _ = server.Serve(listener) }()
	defer server.Stop()

	call := func(t *testing.T, opts ...grpc.DialOption) codes.Code {
		conn, err := grpc.NewClient(listener.Addr().String(), append(opts, grpc.WithTransportCredentials(insecure.NewCredentials()))...)
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		_, err = grpc_health_v1.NewHealthClient(conn).Check(context.Background(), &grpc_health_v1.HealthCheckRequest{})
		return status.Code(err)
	}
	ts := client.ClientCredentials(context.WithValue(context.Background(), oauth2.HTTPClient, rewrite(e, nil)), servertest.Issuer, servertest.ServiceName, e.ServiceSecret)
	if code := call(t, grpc.WithPerRPCCredentials(client.PerRPCCredentials(ts, true))); code != codes.OK {
		t.Fatalf("with a service token: %v", code)
	}
	if code := call(t); code != codes.Unauthenticated {
		t.Fatalf("without a token: %v", code)
	}
	userSource, err := client.Password(context.WithValue(context.Background(), oauth2.HTTPClient, rewrite(e, nil)), servertest.Issuer, servertest.UserName, servertest.UserPassword)
	if err != nil {
		t.Fatal(err)
	}
	if code := call(t, grpc.WithPerRPCCredentials(client.PerRPCCredentials(userSource, true))); code != codes.PermissionDenied {
		t.Fatalf("with a user token: %v, want PermissionDenied", code)
	}

	handler := v.Middleware(verifier.Requirement{Roles: []string{"SERVICE"}})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := verifier.ClaimsFrom(r.Context())
		_, _ = w.Write([]byte(claims.Subject))
	}))
	for _, tc := range []struct {
		name  string
		token string
		want  int
	}{
		{"a service token", service, http.StatusOK},
		{"no token", "", http.StatusUnauthorized},
		{"a token signed by another key", foreignToken(t, "", servertest.Issuer), http.StatusUnauthorized},
	} {
		t.Run("middleware with "+tc.name, func(t *testing.T) {
			rec := httptest.NewRecorder()
			req := httptest.NewRequest(http.MethodGet, "/", nil)
			if tc.token != "" {
				req.Header.Set("Authorization", "Bearer "+tc.token)
			}
			handler.ServeHTTP(rec, req)
			if rec.Code != tc.want {
				t.Fatalf("middleware: %d, want %d", rec.Code, tc.want)
			}
		})
	}
}

// hmacWithPublicKey is the alg-confusion attack: HS256 keyed with the bytes
// of a published public key, under its kid.
func hmacWithPublicKey(t *testing.T, e *servertest.Env) string {
	t.Helper()
	resp, err := http.Get(e.HTTPBase() + "/.well-known/jwks.json")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	set, err := jwk.ParseReader(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	public, _ := set.Key(0)
	raw, _ := json.Marshal(public)
	key, _ := jwk.FromRaw(raw)
	_ = key.Set(jwk.KeyIDKey, public.KeyID())
	token, _ := jwt.NewBuilder().Issuer(servertest.Issuer).Subject("mallory").Audience([]string{servertest.Audience}).
		Expiration(time.Now().Add(time.Hour)).Build()
	signed, err := jwt.Sign(token, jwt.WithKey(jwa.HS256, key))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// A genuine Chit token is refused by a verifier expecting another audience.
func TestWrongAudienceIsRefused(t *testing.T) {
	e := servertest.Start(t)
	v, err := verifier.New(context.Background(), verifier.Config{Issuer: servertest.Issuer, Audience: "someone-else", HTTPClient: rewrite(e, nil), Now: e.Clock.Now})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := v.Verify(context.Background(), serviceToken(t, e)); !errors.Is(err, verifier.ErrInvalidToken) {
		t.Fatalf("a token for audience %q verified for another audience: %v", servertest.Audience, err)
	}
}

// Only access tokens pass: typed at+jwt, or, from before access tokens
// were typed, JWT with Chit's role claim. An ID token signed with the same
// key, or a JWT of another type, is refused.
func TestVerifyAcceptsAccessTokensOnly(t *testing.T) {
	e := servertest.Start(t)
	v := newVerifier(t, e, &atomic.Int32{})
	ctx := context.Background()
	sealer, err := keys.NewSealer(servertest.KeyEncryptionKey)
	if err != nil {
		t.Fatal(err)
	}
	serverKeys, err := keys.Load(ctx, e.Store, jwa.ES256, sealer, e.Clock.Now())
	if err != nil {
		t.Fatal(err)
	}
	sign := func(typ string, withRole bool) string {
		t.Helper()
		now := e.Clock.Now()
		builder := jwt.NewBuilder().Issuer(servertest.Issuer).Subject("alice").Audience([]string{servertest.Audience}).
			IssuedAt(now).Expiration(now.Add(time.Minute))
		if withRole {
			builder = builder.Claim("role", "USER")
		}
		token, err := builder.Build()
		if err != nil {
			t.Fatal(err)
		}
		signed, err := serverKeys.SignAs(token, typ)
		if err != nil {
			t.Fatal(err)
		}
		return signed
	}
	for _, tc := range []struct {
		name     string
		token    string
		accepted bool
	}{
		{"a token Chit issued", serviceToken(t, e), true},
		{"at+jwt", sign("at+jwt", true), true},
		{"application/at+jwt", sign("application/at+jwt", true), true},
		{"an access token from before typing (JWT with a role)", sign("JWT", true), true},
		{"an ID token (JWT without a role)", sign("JWT", false), false},
		{"a logout token", sign("logout+jwt", true), false},
		// The RS256 family beside ES256 signs ID tokens only: an access
		// token under one of its keys is refused however well formed.
		{"an access token signed by the RS256 ID token key", servertest.SignWithServerKey(t, e, jwa.RS256, servertest.ServerAccessToken(t, e), "at+jwt"), false},
		{"an access token signed by the ES256 key the same way", servertest.SignWithServerKey(t, e, jwa.ES256, servertest.ServerAccessToken(t, e), "at+jwt"), true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := v.Verify(ctx, tc.token); (err == nil) != tc.accepted {
				t.Errorf("%v, accepted wanted %v", err, tc.accepted)
			}
		})
	}
	// The token Chit issues says what it is.
	if typ := headerType(t, serviceToken(t, e)); typ != "at+jwt" {
		t.Fatalf("an access token's typ is %q, want at+jwt", typ)
	}
}

func headerType(t *testing.T, token string) string {
	t.Helper()
	header, err := base64.RawURLEncoding.DecodeString(strings.Split(token, ".")[0])
	if err != nil {
		t.Fatal(err)
	}
	var fields struct{ Typ string }
	if err := json.Unmarshal(header, &fields); err != nil {
		t.Fatal(err)
	}
	return fields.Typ
}

// The verifier accepts a token in the one form Chit signs it, as CheckToken
// does: the same signature with s replaced by n−s, or padding, is refused.
func TestVerifyAcceptsOneEncodingOnly(t *testing.T) {
	e := servertest.Start(t)
	v := newVerifier(t, e, &atomic.Int32{})
	token := serviceToken(t, e)
	if _, err := v.Verify(context.Background(), token); err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(token, ".")
	signature, _ := base64.RawURLEncoding.DecodeString(parts[2])
	high := append([]byte(nil), signature...)
	n := elliptic.P256().Params().N
	new(big.Int).Sub(n, new(big.Int).SetBytes(signature[32:])).FillBytes(high[32:])
	for name, variant := range map[string]string{
		"high s":           parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(high),
		"padded signature": parts[0] + "." + parts[1] + "." + base64.URLEncoding.EncodeToString(signature),
	} {
		t.Run(name, func(t *testing.T) {
			if _, err := v.Verify(context.Background(), variant); !errors.Is(err, verifier.ErrInvalidToken) {
				t.Errorf("%v, want refused", err)
			}
		})
	}
}
