package verifier

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"math/big"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"golang.org/x/oauth2"
	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/health"
	healthpb "google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/peer"
	"google.golang.org/grpc/status"

	"github.com/chit-auth/chit/pkg/client"
	"github.com/chit-auth/chit/pkg/dpop"
)

const (
	testIssuer = "https://chit.example.com"
	publicURL  = "https://api.example.com"
)

// issuer is a fake Chit: a key set to fetch and a key to sign tokens with.
type issuer struct {
	key  *ecdsa.PrivateKey
	jwks *httptest.Server
}

func newIssuer(t *testing.T) *issuer {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	public, _ := jwk.FromRaw(key.Public())
	_ = public.Set(jwk.KeyIDKey, "k1")
	_ = public.Set(jwk.AlgorithmKey, jwa.ES256)
	set := jwk.NewSet()
	_ = set.AddKey(public)
	raw, _ := json.Marshal(set)
	server := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(raw) }))
	t.Cleanup(server.Close)
	return &issuer{key: key, jwks: server}
}

// token is an access token with cnf (nil: a bearer token).
func (i *issuer) token(t *testing.T, cnf any) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{"iss": testIssuer, "aud": "chit", "sub": "service:billing", "role": "SERVICE",
		"scope": "orders:read", "iat": now.Unix(), "exp": now.Add(time.Hour).Unix(), "jti": "t1"}
	if cnf != nil {
		claims["cnf"] = cnf
	}
	payload, _ := json.Marshal(claims)
	headers := jws.NewHeaders()
	_ = headers.Set(jws.KeyIDKey, "k1")
	_ = headers.Set(jws.TypeKey, "at+jwt")
	signed, err := jws.Sign(payload, jws.WithKey(jwa.ES256, i.key, jws.WithProtectedHeaders(headers)))
	if err != nil {
		t.Fatal(err)
	}
	return lowS(t, string(signed))
}

// lowS rewrites an ES256 signature to its low-s form, the one encoding
// Verify accepts (Chit signs so).
func lowS(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	signature, _ := base64.RawURLEncoding.DecodeString(parts[2])
	s := new(big.Int).SetBytes(signature[32:])
	if s.Cmp(p256HalfOrder) > 0 {
		s.Sub(p256Order, s)
		s.FillBytes(signature[32:])
	}
	return parts[0] + "." + parts[1] + "." + base64.RawURLEncoding.EncodeToString(signature)
}

func (i *issuer) verifier(t *testing.T, proofs *dpop.Config) *Verifier {
	t.Helper()
	v, err := New(t.Context(), Config{Issuer: testIssuer, Audience: "chit", JWKSURL: i.jwks.URL, DPoP: proofs, PublicURL: publicURL})
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func newSigner(t *testing.T) *dpop.Signer {
	t.Helper()
	signer, err := dpop.GenerateSigner()
	if err != nil {
		t.Fatal(err)
	}
	return signer
}

func mustProof(t *testing.T, signer *dpop.Signer, method, url, token, nonce string) string {
	t.Helper()
	proof, err := signer.Proof(method, url, token, nonce)
	if err != nil {
		t.Fatal(err)
	}
	return proof
}

func selfSigned(t *testing.T) *x509.Certificate {
	t.Helper()
	key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	template := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "billing"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, template, template, key.Public(), key)
	if err != nil {
		t.Fatal(err)
	}
	certificate, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return certificate
}

func certificateThumbprint(certificate *x509.Certificate) string {
	sum := sha256.Sum256(certificate.Raw)
	return base64.RawURLEncoding.EncodeToString(sum[:])
}

func TestParseConfirmation(t *testing.T) {
	i := newIssuer(t)
	v := i.verifier(t, nil)
	claims, err := v.Verify(t.Context(), i.token(t, map[string]any{"jkt": "abc", "x5t#S256": "def"}))
	if err != nil || claims.Confirmation != (Confirmation{JKT: "abc", X5TS256: "def"}) || !claims.Confirmation.Bound() {
		t.Fatalf("%+v, %v", claims.Confirmation, err)
	}
	if claims, err := v.Verify(t.Context(), i.token(t, nil)); err != nil || claims.Confirmation.Bound() {
		t.Fatalf("a bearer token: %+v, %v", claims.Confirmation, err)
	}
	for name, cnf := range map[string]any{"not an object": "abc", "jkt a number": map[string]any{"jkt": 7},
		"jkt empty": map[string]any{"jkt": ""}, "only unknown members": map[string]any{"kid": "k"}} {
		if _, err := v.Verify(t.Context(), i.token(t, cnf)); !errors.Is(err, ErrInvalidToken) {
			t.Errorf("cnf %s: %v", name, err)
		}
	}
}

func TestNewNeedsPublicURLForDPoP(t *testing.T) {
	i := newIssuer(t)
	if _, err := New(t.Context(), Config{Issuer: testIssuer, Audience: "chit", JWKSURL: i.jwks.URL, DPoP: &dpop.Config{}}); err == nil {
		t.Fatal("DPoP without PublicURL")
	}
}

// answer is what the Middleware said to one request.
type answer struct {
	status    int
	challenge string
	nonce     string
}

func serve(v *Verifier, r *http.Request) answer {
	handler := v.Middleware(Requirement{Scopes: []string{"orders:read"}})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if _, ok := ClaimsFrom(r.Context()); !ok {
			http.Error(w, "no claims", http.StatusInternalServerError)
		}
	}))
	rec := httptest.NewRecorder()
	handler.ServeHTTP(rec, r)
	return answer{status: rec.Code, challenge: strings.Join(rec.Header().Values("WWW-Authenticate"), "; "), nonce: rec.Header().Get(dpop.NonceHeader)}
}

func request(method, path, authorization, proof string) *http.Request {
	r := httptest.NewRequest(method, path, nil)
	if authorization != "" {
		r.Header.Set("Authorization", authorization)
	}
	if proof != "" {
		r.Header.Set(dpop.ProofHeader, proof)
	}
	return r
}

func TestMiddlewareDPoPBinding(t *testing.T) {
	i := newIssuer(t)
	v := i.verifier(t, &dpop.Config{})
	signer := newSigner(t)
	other := newSigner(t)
	bound := i.token(t, map[string]any{"jkt": signer.Thumbprint()})
	bearer := i.token(t, nil)
	url := publicURL + "/orders"
	replayed := mustProof(t, signer, "GET", url, bound, "")
	if got := serve(v, request("GET", "/orders?page=2", "DPoP "+bound, replayed)); got.status != http.StatusOK {
		t.Fatalf("a bound token with its proof: %+v", got)
	}
	if got := serve(v, request("GET", "/orders", "Bearer "+bearer, "")); got.status != http.StatusOK {
		t.Fatalf("a bearer token: %+v", got)
	}
	twoAuthorizations := request("GET", "/orders", "DPoP "+bound, mustProof(t, signer, "GET", url, bound, ""))
	twoAuthorizations.Header.Add("Authorization", "Bearer "+bearer)
	twoProofs := request("GET", "/orders", "DPoP "+bound, mustProof(t, signer, "GET", url, bound, ""))
	twoProofs.Header.Add(dpop.ProofHeader, mustProof(t, signer, "GET", url, bound, ""))

	for _, tt := range []struct {
		name      string
		r         *http.Request
		challenge string
	}{
		{"no token", request("GET", "/orders", "", ""), `Bearer error="invalid_token"`},
		{"a bound token as Bearer", request("GET", "/orders", "Bearer "+bound, ""), `DPoP error="invalid_token"`},
		{"a bound token as Bearer with a proof", request("GET", "/orders", "Bearer "+bound, mustProof(t, signer, "GET", url, bound, "")), `DPoP error="invalid_token"`},
		{"a bearer token with the DPoP scheme", request("GET", "/orders", "DPoP "+bearer, mustProof(t, signer, "GET", url, bearer, "")), `DPoP error="invalid_token"`},
		{"a bound token without its proof", request("GET", "/orders", "DPoP "+bound, ""), `DPoP error="invalid_dpop_proof"`},
		{"two proofs", twoProofs, `DPoP error="invalid_dpop_proof"`},
		{"two Authorization headers", twoAuthorizations, `error="invalid_token"`},
		{"a replayed proof", request("GET", "/orders", "DPoP "+bound, replayed), `DPoP error="invalid_dpop_proof"`},
		{"a proof by another key", request("GET", "/orders", "DPoP "+bound, mustProof(t, other, "GET", url, bound, "")), `DPoP error="invalid_dpop_proof"`},
		{"a proof for another path", request("GET", "/orders", "DPoP "+bound, mustProof(t, signer, "GET", publicURL+"/refunds", bound, "")), `DPoP error="invalid_dpop_proof"`},
		{"a proof for another host", request("GET", "/orders", "DPoP "+bound, mustProof(t, signer, "GET", "https://evil.example.com/orders", bound, "")), `DPoP error="invalid_dpop_proof"`},
		{"a proof for another method", request("GET", "/orders", "DPoP "+bound, mustProof(t, signer, "POST", url, bound, "")), `DPoP error="invalid_dpop_proof"`},
		{"a proof for another token", request("GET", "/orders", "DPoP "+bound, mustProof(t, signer, "GET", url, bearer, "")), `DPoP error="invalid_dpop_proof"`},
		{"a proof without ath", request("GET", "/orders", "DPoP "+bound, mustProof(t, signer, "GET", url, "", "")), `DPoP error="invalid_dpop_proof"`},
	} {
		got := serve(v, tt.r)
		if got.status != http.StatusUnauthorized || !strings.Contains(got.challenge, tt.challenge) {
			t.Errorf("%s: %d %q, want 401 %q", tt.name, got.status, got.challenge, tt.challenge)
		}
	}
	// Without a DPoP policy, a bound token is refused whatever it comes with.
	plain := i.verifier(t, nil)
	if got := serve(plain, request("GET", "/orders", "DPoP "+bound, mustProof(t, signer, "GET", url, bound, ""))); got.status != http.StatusUnauthorized {
		t.Errorf("a verifier without DPoP took a bound token: %+v", got)
	}
}

// TestMiddlewareNonce: a verifier that demands nonces answers
// use_dpop_nonce with DPoP-Nonce, and dpop.Transport gets through.
func TestMiddlewareNonce(t *testing.T) {
	i := newIssuer(t)
	nonces, err := dpop.NewNonceSource(time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	signer := newSigner(t)
	bound := i.token(t, map[string]any{"jkt": signer.Thumbprint()})
	v := i.verifier(t, &dpop.Config{Nonces: nonces})
	got := serve(v, request("GET", "/orders", "DPoP "+bound, mustProof(t, signer, "GET", publicURL+"/orders", bound, "")))
	if got.status != http.StatusUnauthorized || !strings.Contains(got.challenge, `DPoP error="use_dpop_nonce"`) || !nonces.Valid(got.nonce) {
		t.Fatalf("%+v", got)
	}

	// End to end: the service's public URL is the test server's own.
	server := httptest.NewUnstartedServer(nil)
	server.Start()
	t.Cleanup(server.Close)
	v, err = New(t.Context(), Config{Issuer: testIssuer, Audience: "chit", JWKSURL: i.jwks.URL, DPoP: &dpop.Config{Nonces: nonces}, PublicURL: server.URL})
	if err != nil {
		t.Fatal(err)
	}
	server.Config.Handler = v.Middleware(Requirement{})(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	client := &http.Client{Transport: &dpop.Transport{Signer: signer, Tokens: oauth2.StaticTokenSource(&oauth2.Token{AccessToken: bound})}}
	resp, err := client.Get(server.URL + "/orders")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("through dpop.Transport: %s", resp.Status)
	}
}

func TestMiddlewareCertificateBinding(t *testing.T) {
	i := newIssuer(t)
	v := i.verifier(t, nil)
	certificate, another := selfSigned(t), selfSigned(t)
	bound := i.token(t, map[string]any{"x5t#S256": certificateThumbprint(certificate)})
	over := func(c *x509.Certificate) *http.Request {
		r := request("GET", "/orders", "Bearer "+bound, "")
		r.TLS = &tls.ConnectionState{}
		if c != nil {
			r.TLS.PeerCertificates = []*x509.Certificate{c}
		}
		return r
	}
	if got := serve(v, over(certificate)); got.status != http.StatusOK {
		t.Fatalf("with its certificate: %+v", got)
	}
	for name, r := range map[string]*http.Request{"another certificate": over(another), "no certificate": over(nil),
		"no TLS": request("GET", "/orders", "Bearer "+bound, "")} {
		if got := serve(v, r); got.status != http.StatusUnauthorized || got.challenge != `Bearer error="invalid_token"` {
			t.Errorf("%s: %+v", name, got)
		}
	}
}

// Behind a TLS-terminating proxy, the certificate comes in Client-Cert
// (RFC 9440): taken only from a peer of ClientCertProxies, one certificate,
// well formed; from any other peer it is ignored, so a client cannot name
// someone else's (public) certificate.
func TestMiddlewareClientCertFromTrustedProxies(t *testing.T) {
	i := newIssuer(t)
	v, err := New(t.Context(), Config{Issuer: testIssuer, Audience: "chit", JWKSURL: i.jwks.URL, ClientCertProxies: []string{"10.0.0.0/8", "192.0.2.7"}})
	if err != nil {
		t.Fatal(err)
	}
	certificate, another := selfSigned(t), selfSigned(t)
	bound := i.token(t, map[string]any{"x5t#S256": certificateThumbprint(certificate)})
	header := func(c *x509.Certificate) string { return ":" + base64.StdEncoding.EncodeToString(c.Raw) + ":" }
	from := func(peer string, values ...string) *http.Request {
		r := request("GET", "/orders", "Bearer "+bound, "")
		r.RemoteAddr = peer
		for _, value := range values {
			r.Header.Add(ClientCertHeader, value)
		}
		return r
	}
	for name, r := range map[string]*http.Request{
		"a trusted prefix":  from("10.1.2.3:4431", header(certificate)),
		"a trusted address": from("192.0.2.7:4431", header(certificate)),
	} {
		if got := serve(v, r); got.status != http.StatusOK {
			t.Errorf("from %s: %+v", name, got)
		}
	}
	for name, r := range map[string]*http.Request{
		"an untrusted peer":        from("192.0.2.8:4431", header(certificate)),
		"another certificate":      from("10.1.2.3:4431", header(another)),
		"two certificates":         from("10.1.2.3:4431", header(certificate), header(certificate)),
		"not a byte sequence":      from("10.1.2.3:4431", base64.StdEncoding.EncodeToString(certificate.Raw)),
		"not base64":               from("10.1.2.3:4431", ":not base64:"),
		"not a certificate":        from("10.1.2.3:4431", ":"+base64.StdEncoding.EncodeToString([]byte("junk"))+":"),
		"too large":                from("10.1.2.3:4431", ":"+strings.Repeat("A", 20<<10)+":"),
		"no header from the proxy": from("10.1.2.3:4431"),
	} {
		if got := serve(v, r); got.status != http.StatusUnauthorized || got.challenge != `Bearer error="invalid_token"` {
			t.Errorf("%s: %+v", name, got)
		}
	}
	if _, err := New(t.Context(), Config{Issuer: testIssuer, Audience: "chit", JWKSURL: i.jwks.URL, ClientCertProxies: []string{"proxy.example"}}); err == nil ||
		!strings.Contains(err.Error(), "ClientCertProxies") {
		t.Errorf("a host name among the proxies: %v", err)
	}
}

// call runs the unary interceptor's check for a call with md and, when
// certificate is set, a TLS peer presenting it.
func call(v *Verifier, fullMethod string, md metadata.MD, certificate *x509.Certificate) error {
	ctx := metadata.NewIncomingContext(context.Background(), md)
	if certificate != nil {
		ctx = peer.NewContext(ctx, &peer.Peer{AuthInfo: credentials.TLSInfo{State: tls.ConnectionState{PeerCertificates: []*x509.Certificate{certificate}}}})
	}
	_, err := v.check(ctx, Rules{fullMethod: {Scopes: []string{"orders:read"}}}, fullMethod)
	return err
}

func reason(err error) (string, map[string]string) {
	st, _ := status.FromError(err)
	for _, detail := range st.Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok {
			return info.GetReason(), info.GetMetadata()
		}
	}
	return "", nil
}

func TestInterceptorBinding(t *testing.T) {
	const method = "/shop.v1.Orders/Get"
	i := newIssuer(t)
	nonces, err := dpop.NewNonceSource(time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := i.verifier(t, &dpop.Config{Nonces: nonces})
	signer := newSigner(t)
	bound := i.token(t, map[string]any{"jkt": signer.Thumbprint()})
	url := publicURL + method
	proof := func(nonce string) string { return mustProof(t, signer, "POST", url, bound, nonce) }

	err = call(v, method, metadata.Pairs("authorization", "DPoP "+bound, "dpop", proof("")), nil)
	if why, details := reason(err); status.Code(err) != codes.Unauthenticated || why != "USE_DPOP_NONCE" || !nonces.Valid(details["dpop_nonce"]) {
		t.Fatalf("without a nonce: %v %s %v", err, why, details)
	}
	if err := call(v, method, metadata.Pairs("authorization", "DPoP "+bound, "dpop", proof(nonces.Nonce())), nil); err != nil {
		t.Fatalf("with its proof: %v", err)
	}
	for name, md := range map[string]metadata.MD{
		"as Bearer":     metadata.Pairs("authorization", "Bearer "+bound),
		"without proof": metadata.Pairs("authorization", "DPoP "+bound),
		"proof for another method": metadata.Pairs("authorization", "DPoP "+bound, "dpop",
			mustProof(t, signer, "POST", publicURL+"/shop.v1.Orders/Delete", bound, nonces.Nonce())),
	} {
		if err := call(v, method, md, nil); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: %v", name, err)
		}
	}

	certificate := selfSigned(t)
	certBound := i.token(t, map[string]any{"x5t#S256": certificateThumbprint(certificate)})
	if err := call(v, method, metadata.Pairs("authorization", "Bearer "+certBound), certificate); err != nil {
		t.Fatalf("with its certificate: %v", err)
	}
	for name, c := range map[string]*x509.Certificate{"another certificate": selfSigned(t), "none": nil} {
		if err := call(v, method, metadata.Pairs("authorization", "Bearer "+certBound), c); status.Code(err) != codes.Unauthenticated {
			t.Errorf("%s: %v", name, err)
		}
	}
}

// TestInterceptorWithDPoPCredentials: a real call with pkg/client's
// DPoPCredentials, whose interceptor retries with the nonce asked for.
func TestInterceptorWithDPoPCredentials(t *testing.T) {
	i := newIssuer(t)
	nonces, err := dpop.NewNonceSource(time.Minute, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := i.verifier(t, &dpop.Config{Nonces: nonces})
	signer := newSigner(t)
	bound := i.token(t, map[string]any{"jkt": signer.Thumbprint()})
	var calls atomic.Int32
	count := func(ctx context.Context, req any, info *grpc.UnaryServerInfo, handler grpc.UnaryHandler) (any, error) {
		calls.Add(1)
		return handler(ctx, req)
	}
	server := grpc.NewServer(grpc.ChainUnaryInterceptor(count, v.UnaryServerInterceptor(Rules{healthpb.Health_Check_FullMethodName: {}})))
	healthpb.RegisterHealthServer(server, health.NewServer())
	listener, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = server.Serve(listener) }()
	t.Cleanup(server.Stop)
	creds := client.DPoPPerRPCCredentials(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: bound}), signer, publicURL, true)
	conn, err := grpc.NewClient(listener.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(creds), grpc.WithUnaryInterceptor(creds.UnaryClientInterceptor()))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	for _, want := range []int32{2, 3} { // the nonce demand and the retry; then the nonce is known
		if _, err := healthpb.NewHealthClient(conn).Check(context.Background(), &healthpb.HealthCheckRequest{}); err != nil {
			t.Fatal(err)
		}
		if calls.Load() != want {
			t.Fatalf("%d calls, want %d", calls.Load(), want)
		}
	}
	// A bearer-style call of the same bound token is refused.
	plain, err := grpc.NewClient(listener.Addr().String(), grpc.WithTransportCredentials(insecure.NewCredentials()),
		grpc.WithPerRPCCredentials(client.PerRPCCredentials(oauth2.StaticTokenSource(&oauth2.Token{AccessToken: bound}), true)))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { plain.Close() })
	if _, err := healthpb.NewHealthClient(plain).Check(context.Background(), &healthpb.HealthCheckRequest{}); status.Code(err) != codes.Unauthenticated {
		t.Fatalf("as Bearer: %v", err)
	}
}
