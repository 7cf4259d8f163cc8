package client

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
	"time"

	"golang.org/x/oauth2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	"github.com/chit-auth/chit/pkg/dpop"
)

// dpopTokenEndpoint is a fake /oauth2/token that demands a proof with one
// of its nonces on every request (answering use_dpop_nonce first, as Chit
// with --dpop-nonce) and answers tokenType. It records the thumbprints of
// the proofs it accepted, by grant type.
type dpopTokenEndpoint struct {
	*httptest.Server
	expiresIn int

	mu     sync.Mutex
	proven map[string][]string // grant_type → jkt of each accepted proof
}

func newDPoPTokenEndpoint(t *testing.T, tokenType string) *dpopTokenEndpoint {
	t.Helper()
	nonces, err := dpop.NewNonceSource(time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	verifier := dpop.NewVerifier(dpop.Config{Nonces: nonces})
	e := &dpopTokenEndpoint{proven: map[string][]string{}, expiresIn: 3600}
	e.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		proof, err := verifier.Verify(r.Header.Get(dpop.ProofHeader), dpop.Request{Method: r.Method, URL: "http://" + r.Host + r.URL.Path})
		if err != nil {
			refusal := err.(*dpop.Error)
			if refusal.Nonce != "" {
				w.Header().Set(dpop.NonceHeader, refusal.Nonce)
			}
			w.WriteHeader(http.StatusBadRequest)
			_ = json.NewEncoder(w).Encode(map[string]string{"error": refusal.Code, "error_description": refusal.Description})
			return
		}
		grant := r.PostFormValue("grant_type")
		e.mu.Lock()
		e.proven[grant] = append(e.proven[grant], proof.JKT)
		e.mu.Unlock()
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "token-" + grant, "token_type": tokenType, "expires_in": e.expiresIn,
			"refresh_token": "refresh"})
	}))
	t.Cleanup(e.Close)
	return e
}

func (e *dpopTokenEndpoint) provenBy(grant string) []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.proven[grant]
}

func newSigner(t *testing.T) *dpop.Signer {
	t.Helper()
	signer, err := dpop.GenerateSigner()
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

func TestDPoPTokenSources(t *testing.T) {
	endpoint := newDPoPTokenEndpoint(t, "DPoP")
	signer := newSigner(t)
	ctx := WithDPoP(context.Background(), signer)
	sources := map[string]func() (oauth2.TokenSource, error){
		"client_credentials": func() (oauth2.TokenSource, error) {
			return ClientCredentials(ctx, endpoint.URL, "svc", "secret"), nil
		},
		"password": func() (oauth2.TokenSource, error) { return Password(ctx, endpoint.URL, "ada", "pw") },
		JWTBearerGrant: func() (oauth2.TokenSource, error) {
			return FederatedToken(ctx, endpoint.URL, func() (string, error) { return "jwt", nil }), nil
		},
	}
	for grant, newSource := range sources {
		source, err := newSource()
		if err != nil {
			t.Fatalf("%s: %v", grant, err)
		}
		token, err := source.Token()
		if err != nil || token.TokenType != "DPoP" {
			t.Fatalf("%s: %+v, %v", grant, token, err)
		}
		if proven := endpoint.provenBy(grant); len(proven) != 1 || proven[0] != signer.Thumbprint() {
			t.Fatalf("%s: proofs by %v, want one by %s", grant, proven, signer.Thumbprint())
		}
	}
}

// TestDPoPPasswordRefreshCarriesAProof: the refresh of a bound refresh
// token is proven with the same key.
func TestDPoPPasswordRefreshCarriesAProof(t *testing.T) {
	endpoint := newDPoPTokenEndpoint(t, "DPoP")
	endpoint.expiresIn = 5 // within every early-refresh margin: the next Token refreshes
	signer := newSigner(t)
	source, err := Password(WithDPoP(context.Background(), signer), endpoint.URL, "ada", "pw")
	if err != nil {
		t.Fatal(err)
	}
	token, err := source.Token()
	if err != nil || token.AccessToken != "token-refresh_token" {
		t.Fatalf("refresh: %+v, %v", token, err)
	}
	if proven := endpoint.provenBy("refresh_token"); len(proven) != 1 || proven[0] != signer.Thumbprint() {
		t.Fatalf("refresh proofs by %v", proven)
	}
}

// TestDPoPDowngradeRefused: a bearer token answered to a proven request
// is refused by every token source.
func TestDPoPDowngradeRefused(t *testing.T) {
	endpoint := newDPoPTokenEndpoint(t, "Bearer")
	ctx := WithDPoP(context.Background(), newSigner(t))
	if _, err := ClientCredentials(ctx, endpoint.URL, "svc", "secret").Token(); !errors.Is(err, ErrDowngrade) {
		t.Errorf("client credentials: %v", err)
	}
	if _, err := Password(ctx, endpoint.URL, "ada", "pw"); !errors.Is(err, ErrDowngrade) {
		t.Errorf("password: %v", err)
	}
	if _, err := FederatedToken(ctx, endpoint.URL, func() (string, error) { return "jwt", nil }).Token(); !errors.Is(err, ErrDowngrade) {
		t.Errorf("federated: %v", err)
	}
	// Without WithDPoP no proof is sent, and a bearer token is what comes.
	plain := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(dpop.ProofHeader) != "" {
			t.Error("a proof without WithDPoP")
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{"access_token": "t", "token_type": "Bearer", "expires_in": 3600})
	}))
	t.Cleanup(plain.Close)
	if _, err := ClientCredentials(context.Background(), plain.URL, "svc", "secret").Token(); err != nil {
		t.Errorf("bearer without DPoP: %v", err)
	}
}

// TestDPoPKeepsTheContextsHTTPClient: WithDPoP sends through the client
// the context names, as x/oauth2 does.
func TestDPoPKeepsTheContextsHTTPClient(t *testing.T) {
	endpoint := newDPoPTokenEndpoint(t, "DPoP")
	var used sync.WaitGroup
	used.Add(1)
	var once sync.Once
	counting := &http.Client{Transport: roundTripFunc(func(r *http.Request) (*http.Response, error) {
		once.Do(used.Done)
		return http.DefaultTransport.RoundTrip(r)
	})}
	ctx := WithDPoP(context.WithValue(context.Background(), oauth2.HTTPClient, counting), newSigner(t))
	if _, err := ClientCredentials(ctx, endpoint.URL, "svc", "secret").Token(); err != nil {
		t.Fatal(err)
	}
	used.Wait()
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// TestDPoPPerRPCCredentials calls a gRPC health service whose interceptor
// checks the proof as a Chit-style server would, demanding a nonce first.
func TestDPoPPerRPCCredentials(t *testing.T) {
	const base = "https://api.example.com"
	nonces, err := dpop.NewNonceSource(time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	verifier := dpop.NewVerifier(dpop.Config{Nonces: nonces})
	signer := newSigner(t)
	var calls, accepted int
	var mu sync.Mutex
	check := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		mu.Lock()
		calls++
		mu.Unlock()
		md, _ := metadata.FromIncomingContext(ctx)
		if got := md.Get("authorization"); len(got) != 1 || got[0] != "DPoP access" {
			return nil, status.Error(codes.Unauthenticated, "no DPoP token")
		}
		proofs := md.Get("dpop")
		if len(proofs) != 1 {
			return nil, status.Error(codes.Unauthenticated, "no proof")
		}
		method, url, _ := dpop.MethodURL(base, info.FullMethod)
		proof, err := verifier.Verify(proofs[0], dpop.Request{Method: method, URL: url, AccessToken: "access"})
		if refusal, ok := err.(*dpop.Error); ok {
			st, _ := status.New(codes.Unauthenticated, refusal.Description).WithDetails(&errdetails.ErrorInfo{
				Reason: "USE_DPOP_NONCE", Domain: "chit.auth", Metadata: map[string]string{"dpop_nonce": refusal.Nonce}})
			if refusal.Code != dpop.CodeUseNonce {
				st = status.New(codes.Unauthenticated, refusal.Description)
			}
			return nil, st.Err()
		}
		if proof.JKT != signer.Thumbprint() {
			return nil, status.Error(codes.Unauthenticated, "another key")
		}
		mu.Lock()
		accepted++
		mu.Unlock()
		return handler(ctx, req)
	}
	server := grpc.NewServer(grpc.UnaryInterceptor(check))
	healthpb.RegisterHealthServer(server, health.NewServer())
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(server.Stop)

	creds := DPoPPerRPCCredentials(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: "access"}), signer, base, true)
	if !DPoPPerRPCCredentials(nil, signer, base, false).RequireTransportSecurity() {
		t.Fatal("tokens must not be sent without TLS by default")
	}
	conn, err := grpc.NewClient(listener.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(creds), grpc.WithUnaryInterceptor(creds.UnaryClientInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	client := healthpb.NewHealthClient(conn)
	for i, wantCalls := range []int{2, 3} { // a nonce demand and the retry, then one call with the nonce known
		if _, err := client.Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatalf("call %d: %v", i, err)
		}
		mu.Lock()
		got, ok := calls, accepted
		mu.Unlock()
		if got != wantCalls || ok != i+1 {
			t.Fatalf("call %d: %d calls reached the server, %d accepted; want %d and %d", i, got, ok, wantCalls, i+1)
		}
	}
}
