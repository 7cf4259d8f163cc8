package dpop

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/hmac"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/lestrrat-go/jwx/v2/jwa"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwk"
)

const target = "https://chit.example.com/v1/auth/check"

var epoch = time.Unix(1_800_000_000, 0)

// clock is a settable clock for a test.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time          { c.mu.Lock(); defer c.mu.Unlock(); return c.now }
func (c *clock) Advance(d time.Duration) { c.mu.Lock(); c.now = c.now.Add(d); c.mu.Unlock() }

func newECKey(t *testing.T, curve elliptic.Curve) *ecdsa.PrivateKey {
	t.Helper()
	key, err := ecdsa.GenerateKey(curve, rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	return key
}

func publicJWK(t *testing.T, key any) map[string]any {
	t.Helper()
	k, err := jwk.FromRaw(key)
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(k)
	var members map[string]any
	if err := json.Unmarshal(raw, &members); err != nil {
		t.Fatal(err)
	}
	return members
}

func b64(raw []byte) string { return base64.RawURLEncoding.EncodeToString(raw) }

// signES256 makes a compact JWS of exactly headerJSON and payloadJSON, so
// that tests can send what no JOSE library would produce.
func signES256(t *testing.T, key *ecdsa.PrivateKey, headerJSON, payloadJSON string) string {
	t.Helper()
	input := b64([]byte(headerJSON)) + "." + b64([]byte(payloadJSON))
	sum := sha256.Sum256([]byte(input))
	r, s, err := ecdsa.Sign(rand.Reader, key, sum[:])
	if err != nil {
		t.Fatal(err)
	}
	signature := make([]byte, 64)
	r.FillBytes(signature[:32])
	s.FillBytes(signature[32:])
	return input + "." + b64(signature)
}

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// proofParts are a proof's header and claims, to alter before signing.
type proofParts struct {
	header map[string]any
	claims map[string]any
}

func goodParts(t *testing.T, key *ecdsa.PrivateKey, id string) proofParts {
	return proofParts{
		header: map[string]any{"typ": "dpop+jwt", "alg": "ES256", "jwk": publicJWK(t, key.Public())},
		claims: map[string]any{"jti": id, "htm": "GET", "htu": target, "iat": epoch.Unix()},
	}
}

func (p proofParts) sign(t *testing.T, key *ecdsa.PrivateKey) string {
	t.Helper()
	return signES256(t, key, mustJSON(t, p.header), mustJSON(t, p.claims))
}

func newTestVerifier(c *clock, nonces *NonceSource) *Verifier {
	return NewVerifier(Config{Now: c.Now, Nonces: nonces})
}

// refused asserts that err is a refusal with code and a description that
// contains want.
func refused(t *testing.T, err error, code, want string) *Error {
	t.Helper()
	var e *Error
	if !errors.As(err, &e) {
		t.Fatalf("got %v, want a refusal %s (%s)", err, code, want)
	}
	if e.Code != code || !strings.Contains(e.Description, want) {
		t.Fatalf("got %s (%s), want %s (%s)", e.Code, e.Description, code, want)
	}
	return e
}

func TestVerifyAcceptsAProof(t *testing.T) {
	c := &clock{now: epoch}
	key := newECKey(t, elliptic.P256())
	v := newTestVerifier(c, nil)
	parts := goodParts(t, key, "id-1")
	parts.claims["ath"] = AccessTokenHash("token") // accepted without an access token to match
	proof, err := v.Verify(parts.sign(t, key), Request{Method: "GET", URL: target})
	if err != nil {
		t.Fatal(err)
	}
	k, _ := jwk.FromRaw(key.Public())
	jkt, _ := Thumbprint(k)
	if proof.JKT != jkt || proof.ID != "id-1" || !proof.IssuedAt.Equal(epoch) || proof.Nonce != "" {
		t.Fatalf("proof %+v, want jkt %s", proof, jkt)
	}
}

// TestVerifyRefuses walks every check with a proof that fails only it.
func TestVerifyRefuses(t *testing.T) {
	key := newECKey(t, elliptic.P256())
	other := newECKey(t, elliptic.P256())
	p384 := newECKey(t, elliptic.P384())
	rsaSmall, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	good := func() proofParts { return goodParts(t, key, "id") }
	withHeader := func(name string, value any) string {
		p := good()
		if value == nil {
			delete(p.header, name)
		} else {
			p.header[name] = value
		}
		return p.sign(t, key)
	}
	withClaim := func(name string, value any) string {
		p := good()
		if value == nil {
			delete(p.claims, name)
		} else {
			p.claims[name] = value
		}
		return p.sign(t, key)
	}
	privateJWK := publicJWK(t, key.Public())
	rawPrivate, err := key.Bytes()
	if err != nil {
		t.Fatal(err)
	}
	privateJWK["d"] = b64(rawPrivate)
	goodProof := good().sign(t, key)
	parts := strings.Split(goodProof, ".")
	headerJSON, payloadJSON := mustJSON(t, good().header), mustJSON(t, good().claims)
	hmacProof := func() string {
		input := b64([]byte(`{"typ":"dpop+jwt","alg":"HS256","jwk":{"kty":"oct","k":"c2VjcmV0"}}`)) + "." + b64([]byte(payloadJSON))
		mac := hmac.New(sha256.New, []byte("secret"))
		mac.Write([]byte(input))
		return input + "." + b64(mac.Sum(nil))
	}()
	noneProof := b64([]byte(`{"typ":"dpop+jwt","alg":"none","jwk":`+mustJSON(t, publicJWK(t, key.Public()))+`}`)) + "." + parts[1] + ".AAAA"

	tests := []struct {
		name, proof, want string
		req               *Request
	}{
		{name: "empty", proof: "", want: "no proof"},
		{name: "oversized", proof: strings.Repeat("a", MaxProofSize+1), want: "larger than"},
		{name: "two parts", proof: parts[0] + "." + parts[1], want: "one compact JWS"},
		{name: "four parts", proof: goodProof + "." + parts[2], want: "one compact JWS"},
		{name: "JSON serialization", proof: `{"payload":"` + parts[1] + `","signatures":[]}`, want: "one compact JWS"},
		{name: "padded header", proof: parts[0] + "=." + parts[1] + "." + parts[2], want: "base64url"},
		{name: "header not JSON", proof: b64([]byte("typ")) + "." + parts[1] + "." + parts[2], want: "header"},
		{name: "typ missing", proof: withHeader("typ", nil), want: "typ"},
		{name: "typ JWT", proof: withHeader("typ", "JWT"), want: "typ"},
		{name: "typ in capitals", proof: withHeader("typ", "DPOP+JWT"), want: "typ"},
		{name: "alg none", proof: noneProof, want: `alg "none"`},
		{name: "alg HS256", proof: hmacProof, want: `alg "HS256"`},
		{name: "alg missing", proof: withHeader("alg", nil), want: `alg ""`},
		{name: "crit", proof: withHeader("crit", []string{"exp"}), want: "crit"},
		{name: "jwk missing", proof: withHeader("jwk", nil), want: "jwk is missing"},
		{name: "jwk null", proof: signES256(t, key, `{"typ":"dpop+jwt","alg":"ES256","jwk":null}`, payloadJSON), want: "jwk is missing"},
		{name: "jwk not a key", proof: withHeader("jwk", map[string]any{"kty": "XX"}), want: "jwk is not a key"},
		{name: "jwk private", proof: withHeader("jwk", privateJWK), want: "private key"},
		{name: "jwk symmetric", proof: withHeader("jwk", map[string]any{"kty": "oct", "k": "c2VjcmV0"}), want: "symmetric"},
		{name: "ES384 with a P-256 key", proof: withHeader("alg", "ES384"), want: "does not fit an EC key"},
		{name: "ES256 with a P-384 key", proof: withHeader("jwk", publicJWK(t, p384.Public())), want: "does not fit an EC key"},
		{name: "RS256 with an EC key", proof: withHeader("alg", "RS256"), want: "does not fit an EC key"},
		{name: "EdDSA with an EC key", proof: withHeader("alg", "EdDSA"), want: "does not fit an EC key"},
		{name: "short RSA key", proof: signES256(t, key, mustJSON(t, map[string]any{"typ": "dpop+jwt", "alg": "RS256", "jwk": publicJWK(t, rsaSmall.Public())}), payloadJSON), want: "shorter than 2048"},
		{name: "signed by another key", proof: good().sign(t, other), want: "signature"},
		{name: "signature altered", proof: parts[0] + "." + parts[1] + "." + b64(make([]byte, 64)), want: "signature"},
		{name: "payload altered", proof: parts[0] + "." + b64([]byte(strings.Replace(payloadJSON, `"GET"`, `"PUT"`, 1))) + "." + parts[2], want: "signature"},
		{name: "duplicate header member", proof: signES256(t, key, strings.Replace(headerJSON, `{`, `{"typ":"JWT",`, 1), payloadJSON), want: `"typ" appears twice`},
		{name: "duplicate jwk member", proof: signES256(t, key, strings.Replace(headerJSON, `"kty":"EC"`, `"kty":"EC","kty":"EC"`, 1), payloadJSON), want: `"kty" appears twice`},
		{name: "duplicate claim", proof: signES256(t, key, headerJSON, strings.Replace(payloadJSON, `{`, `{"htm":"POST",`, 1)), want: `"htm" appears twice`},
		{name: "claims not an object", proof: signES256(t, key, headerJSON, `["jti"]`), want: "claims"},
		{name: "trailing claims", proof: signES256(t, key, headerJSON, payloadJSON+`{}`), want: "claims"},
		{name: "jti missing", proof: withClaim("jti", nil), want: "jti is missing"},
		{name: "jti empty", proof: withClaim("jti", ""), want: "jti is missing"},
		{name: "jti too long", proof: withClaim("jti", strings.Repeat("x", MaxIDLength+1)), want: "jti is longer"},
		{name: "jti a number", proof: withClaim("jti", 7), want: "claims"},
		{name: "htm missing", proof: withClaim("htm", nil), want: "htm is missing"},
		{name: "htm another method", proof: withClaim("htm", "POST"), want: "htm does not match"},
		{name: "htm in lower case", proof: withClaim("htm", "get"), want: "htm does not match"},
		{name: "htu missing", proof: withClaim("htu", nil), want: "htu is missing"},
		{name: "htu another host", proof: withClaim("htu", "https://evil.example.com/v1/auth/check"), want: "htu does not match"},
		{name: "htu another path", proof: withClaim("htu", "https://chit.example.com/v1/auth/token"), want: "htu does not match"},
		{name: "htu another scheme", proof: withClaim("htu", "http://chit.example.com/v1/auth/check"), want: "htu does not match"},
		{name: "htu another port", proof: withClaim("htu", "https://chit.example.com:8443/v1/auth/check"), want: "htu does not match"},
		{name: "htu with user", proof: withClaim("htu", "https://me@chit.example.com/v1/auth/check"), want: "htu does not match"},
		{name: "htu relative", proof: withClaim("htu", "/v1/auth/check"), want: "htu does not match"},
		{name: "request URL relative", proof: goodProof, req: &Request{Method: "GET", URL: "/v1/auth/check"}, want: "not absolute"},
		{name: "iat missing", proof: withClaim("iat", nil), want: "iat is missing"},
		{name: "iat too old", proof: withClaim("iat", epoch.Add(-DefaultMaxAge-time.Second).Unix()), want: "iat is too old"},
		{name: "iat in the future", proof: withClaim("iat", epoch.Add(DefaultMaxFuture+time.Second).Unix()), want: "iat is in the future"},
		{name: "iat with a fraction", proof: withClaim("iat", float64(epoch.Unix())+0.5), want: "whole number"},
		{name: "iat a string", proof: withClaim("iat", fmt.Sprint(epoch.Unix())), want: "whole number"},
		{name: "iat huge", proof: withClaim("iat", 1e300), want: "whole number"},
		{name: "ath missing", proof: goodProof, req: &Request{Method: "GET", URL: target, AccessToken: "token"}, want: "ath is missing"},
		{name: "jwk not the bound key", proof: goodProof, req: &Request{Method: "GET", URL: target, JKT: "another"}, want: "not the key"},
		{name: "ath of another token", proof: withClaim("ath", AccessTokenHash("other")), req: &Request{Method: "GET", URL: target, AccessToken: "token"}, want: "ath does not match"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			v := newTestVerifier(&clock{now: epoch}, nil)
			req := Request{Method: "GET", URL: target}
			if tt.req != nil {
				req = *tt.req
			}
			_, err := v.Verify(tt.proof, req)
			refused(t, err, CodeInvalidProof, tt.want)
			if v.replays.size() != 0 {
				t.Fatal("a refused proof left a replay record")
			}
		})
	}
}

func TestVerifyAcceptsEveryKeyType(t *testing.T) {
	rsaKey := rsa2048(t)
	_, edKey, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	keys := map[string]crypto.Signer{
		"P-256": newECKey(t, elliptic.P256()), "P-384": newECKey(t, elliptic.P384()), "P-521": newECKey(t, elliptic.P521()),
		"Ed25519": edKey, "RSA": rsaKey,
	}
	for name, key := range keys {
		t.Run(name, func(t *testing.T) {
			signer, err := NewSigner(key)
			if err != nil {
				t.Fatal(err)
			}
			signer.now = func() time.Time { return epoch }
			proof, err := signer.Proof("POST", "https://chit.example.com/oauth2/token?x=1#f", "token", "")
			if err != nil {
				t.Fatal(err)
			}
			got, err := newTestVerifier(&clock{now: epoch}, nil).Verify(proof, Request{Method: "POST", URL: "https://chit.example.com/oauth2/token", AccessToken: "token"})
			if err != nil {
				t.Fatal(err)
			}
			if got.JKT != signer.Thumbprint() {
				t.Fatalf("jkt %s, want %s", got.JKT, signer.Thumbprint())
			}
		})
	}
}

// TestVerifyRSAAlgorithms: an RSA key may sign with RS* and PS*, whichever
// its proof names.
func TestVerifyRSAAlgorithms(t *testing.T) {
	key := rsa2048(t)
	for _, alg := range []string{"RS256", "RS384", "RS512", "PS256", "PS384", "PS512"} {
		signer, err := NewSigner(key)
		if err != nil {
			t.Fatal(err)
		}
		signer.alg = mustAlgorithm(t, alg)
		signer.now = func() time.Time { return epoch }
		proof, err := signer.Proof("GET", target, "", "")
		if err != nil {
			t.Fatal(err)
		}
		if _, err := newTestVerifier(&clock{now: epoch}, nil).Verify(proof, Request{Method: "GET", URL: target}); err != nil {
			t.Errorf("%s: %v", alg, err)
		}
	}
}

func TestVerifyIATWindowEdges(t *testing.T) {
	key := newECKey(t, elliptic.P256())
	for name, iat := range map[string]time.Time{"oldest": epoch.Add(-DefaultMaxAge), "furthest ahead": epoch.Add(DefaultMaxFuture)} {
		p := goodParts(t, key, name)
		p.claims["iat"] = iat.Unix()
		if _, err := newTestVerifier(&clock{now: epoch}, nil).Verify(p.sign(t, key), Request{Method: "GET", URL: target}); err != nil {
			t.Errorf("%s: %v", name, err)
		}
	}
}

func TestVerifyHTUNormalization(t *testing.T) {
	key := newECKey(t, elliptic.P256())
	for _, tt := range []struct{ htu, request string }{
		{"https://chit.example.com/v1/auth/check", "https://chit.example.com/v1/auth/check?token=1#x"},
		{"https://chit.example.com/v1/auth/check?a=b#frag", "https://chit.example.com/v1/auth/check"},
		{"HTTPS://Chit.Example.COM/v1/auth/check", "https://chit.example.com/v1/auth/check"},
		{"https://chit.example.com:443/v1/auth/check", "https://chit.example.com/v1/auth/check"},
		{"http://chit.example.com:80/x", "http://chit.example.com/x"},
		{"https://chit.example.com:/x", "https://chit.example.com/x"},
		{"https://chit.example.com", "https://chit.example.com/"},
		{"https://chit.example.com/%7euser/a%2fb", "https://chit.example.com/~user/a%2Fb"},
		{"https://chit.example.com/a/./b/../c", "https://chit.example.com/a/c"},
		{"https://[::1]:443/x", "https://[::1]/x"},
		{"https://[::1]:8443/x", "https://[::1]:8443/x"},
	} {
		p := goodParts(t, key, tt.htu)
		p.claims["htu"] = tt.htu
		if _, err := newTestVerifier(&clock{now: epoch}, nil).Verify(p.sign(t, key), Request{Method: "GET", URL: tt.request}); err != nil {
			t.Errorf("htu %s for %s: %v", tt.htu, tt.request, err)
		}
	}
	// Normalization does not merge what differs.
	for _, tt := range []struct{ htu, request string }{
		{"https://chit.example.com/a%2Fb", "https://chit.example.com/a/b"},
		{"https://chit.example.com/A", "https://chit.example.com/a"},
		{"https://chit.example.com/a/", "https://chit.example.com/a"},
		{"http://chit.example.com:443/x", "http://chit.example.com/x"},
	} {
		p := goodParts(t, key, tt.htu)
		p.claims["htu"] = tt.htu
		_, err := newTestVerifier(&clock{now: epoch}, nil).Verify(p.sign(t, key), Request{Method: "GET", URL: tt.request})
		refused(t, err, CodeInvalidProof, "htu does not match")
	}
}

func TestVerifyReplay(t *testing.T) {
	c := &clock{now: epoch}
	key := newECKey(t, elliptic.P256())
	v := newTestVerifier(c, nil)
	proof := goodParts(t, key, "once").sign(t, key)
	req := Request{Method: "GET", URL: target}
	if _, err := v.Verify(proof, req); err != nil {
		t.Fatal(err)
	}
	_, err := v.Verify(proof, req)
	refused(t, err, CodeInvalidProof, "jti was used before")
	// The same jti under another key is another proof (ids are scoped by key).
	other := newECKey(t, elliptic.P256())
	if _, err := v.Verify(goodParts(t, other, "once").sign(t, other), req); err != nil {
		t.Fatalf("same jti, other key: %v", err)
	}
	// Once the window has passed the record leaves, and the proof is too old.
	c.Advance(DefaultMaxAge + time.Second)
	_, err = v.Verify(proof, req)
	refused(t, err, CodeInvalidProof, "too old")
	fresh := goodParts(t, key, "later")
	fresh.claims["iat"] = c.Now().Unix()
	if _, err := v.Verify(fresh.sign(t, key), req); err != nil {
		t.Fatal(err)
	}
	if n := v.replays.size(); n != 1 {
		t.Fatalf("%d replay records, want 1: the expired ones are dropped", n)
	}
}

// TestVerifyRecordsOnlyAcceptedProofs: a proof refused for any reason
// leaves no record, so a forger who knows a jti cannot use it up.
func TestVerifyRecordsOnlyAcceptedProofs(t *testing.T) {
	c := &clock{now: epoch}
	key := newECKey(t, elliptic.P256())
	nonces, err := NewNonceSource(time.Minute, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	v := newTestVerifier(c, nonces)
	req := Request{Method: "GET", URL: target}
	// A forgery: the victim's jwk and jti, signed by another key.
	forgery := goodParts(t, key, "victim")
	forgery.claims["nonce"] = nonces.Nonce()
	_, err = v.Verify(forgery.sign(t, newECKey(t, elliptic.P256())), req)
	refused(t, err, CodeInvalidProof, "signature")
	// The victim's own proof, first without the nonce, then for another
	// method: refused, not recorded.
	genuine := goodParts(t, key, "victim")
	_, err = v.Verify(genuine.sign(t, key), req)
	refused(t, err, CodeUseNonce, "nonce")
	genuine.claims["nonce"] = nonces.Nonce()
	genuine.claims["htm"] = "POST"
	_, err = v.Verify(genuine.sign(t, key), req)
	refused(t, err, CodeInvalidProof, "htm")
	genuine.claims["htm"] = "GET"
	if _, err := v.Verify(genuine.sign(t, key), req); err != nil {
		t.Fatalf("the genuine proof after the refusals: %v", err)
	}
}

func TestVerifyReplayMemoryIsBounded(t *testing.T) {
	c := &clock{now: epoch}
	key := newECKey(t, elliptic.P256())
	v := NewVerifier(Config{Now: c.Now, MaxReplayRecords: 2})
	req := Request{Method: "GET", URL: target}
	for _, id := range []string{"a", "b"} {
		if _, err := v.Verify(goodParts(t, key, id).sign(t, key), req); err != nil {
			t.Fatal(err)
		}
	}
	third := goodParts(t, key, "c").sign(t, key)
	_, err := v.Verify(third, req)
	refused(t, err, CodeInvalidProof, "too many proofs")
	// Full memory refuses rather than forgets: the first proof is still a replay.
	_, err = v.Verify(goodParts(t, key, "a").sign(t, key), req)
	refused(t, err, CodeInvalidProof, "used before")
	// When the records' window ends there is room again.
	c.Advance(DefaultMaxAge + time.Second)
	later := goodParts(t, key, "c")
	later.claims["iat"] = c.Now().Unix()
	if _, err := v.Verify(later.sign(t, key), req); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyConcurrentReplays(t *testing.T) {
	key := newECKey(t, elliptic.P256())
	v := newTestVerifier(&clock{now: epoch}, nil)
	proof := goodParts(t, key, "race").sign(t, key)
	var accepted, replays atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for range 50 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			_, err := v.Verify(proof, Request{Method: "GET", URL: target})
			var e *Error
			switch {
			case err == nil:
				accepted.Add(1)
			case errors.As(err, &e) && e.Description == "jti was used before":
				replays.Add(1)
			default:
				t.Error(err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if accepted.Load() != 1 || replays.Load() != 49 {
		t.Fatalf("%d accepted, %d replays; want 1 and 49", accepted.Load(), replays.Load())
	}
}

func TestVerifyNonces(t *testing.T) {
	c := &clock{now: epoch}
	key := newECKey(t, elliptic.P256())
	nonces, err := NewNonceSource(time.Minute, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	otherReplica, err := NewNonceSource(time.Minute, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	v := newTestVerifier(c, nonces)
	req := Request{Method: "GET", URL: target}
	withNonce := func(id, nonce string) string {
		p := goodParts(t, key, id)
		p.claims["iat"] = c.Now().Unix()
		if nonce != "" {
			p.claims["nonce"] = nonce
		}
		return p.sign(t, key)
	}
	useNonce := func(proof, want string) {
		t.Helper()
		_, err := v.Verify(proof, req)
		e := refused(t, err, CodeUseNonce, want)
		if !nonces.Valid(e.Nonce) {
			t.Fatalf("the refusal's nonce %q is not one to use", e.Nonce)
		}
	}
	useNonce(withNonce("missing", ""), "nonce")
	useNonce(withNonce("other replica", otherReplica.Nonce()), "nonce")
	useNonce(withNonce("made up", "bm9uY2U"), "nonce")
	current := nonces.Nonce()
	proof, err := v.Verify(withNonce("current", current), req)
	if err != nil || proof.Nonce != current {
		t.Fatalf("current nonce: %+v %v", proof, err)
	}
	// A nonce of the previous step is still good, one older is not.
	c.Advance(time.Minute)
	if _, err := v.Verify(withNonce("previous", current), req); err != nil {
		t.Fatalf("previous step: %v", err)
	}
	c.Advance(time.Minute)
	useNonce(withNonce("expired", current), "nonce")
}

func TestNonceSource(t *testing.T) {
	c := &clock{now: epoch}
	if _, err := NewNonceSource(time.Millisecond, c.Now); err == nil {
		t.Fatal("a sub-second lifetime was accepted")
	}
	s, err := NewNonceSource(time.Minute, c.Now)
	if err != nil {
		t.Fatal(err)
	}
	nonce := s.Nonce()
	raw, _ := base64.RawURLEncoding.DecodeString(nonce)
	raw[len(raw)-1] ^= 1
	// A nonce for the next step with a copied MAC is not valid either.
	next, _ := base64.RawURLEncoding.DecodeString(nonce)
	next[7]++
	for name, candidate := range map[string]string{"empty": "", "tampered": b64(raw), "next step": b64(next), "padded": nonce + "="} {
		if s.Valid(candidate) {
			t.Errorf("%s nonce %q is valid", name, candidate)
		}
	}
	if !s.Valid(nonce) {
		t.Fatal("its own nonce is not valid")
	}
}

func TestThumbprintAndAccessTokenHash(t *testing.T) {
	// RFC 7638 §3.1.
	key, err := jwk.ParseKey([]byte(`{"kty":"RSA","n":"0vx7agoebGcQSuuPiLJXZptN9nndrQmbXEps2aiAFbWhM78LhWx4cbbfAAtVT86zwu1RK7aPFFxuhDR1L6tSoc_BJECPebWKRXjBZCiFV4n3oknjhMstn64tZ_2W-5JsGY4Hc5n9yBXArwl93lqt7_RN5w6Cf0h4QyQ5v-65YGjQR0_FDW2QvzqY368QQMicAtaSqzs8KJZgnYb9c7d0zgdAZHzu6qMQvRL5hajrn1n91CbOpbISD08qNLyrdkt-bFTWhAI4vMQFh6WeZu0fM4lFd2NcRwr3XPksINHaQ-G_xBniIqbw0Ls1jF44-csFCur-kEgU8awapJzKnqDKgw","e":"AQAB","alg":"RS256","kid":"2011-04-29"}`))
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := Thumbprint(key); got != "NzbLsXh8uDCcd-6MNwXF4W_7noWXFZAfHkxZsRGC9Xs" {
		t.Errorf("thumbprint %s", got)
	}
	if _, err := Thumbprint(nil); err == nil {
		t.Error("a nil key has a thumbprint")
	}
	// RFC 9449 §7.1.
	if got := AccessTokenHash("Kz~8mXK1EalYznwH-LC-1fBAo.4Ljp~zsPE_NeO.gxU"); got != "fUHyO2r2Z3DZ53EsNrWBb0xWXoaNy59IiKCAqksmQEo" {
		t.Errorf("ath %s", got)
	}
}

var (
	rsaOnce sync.Once
	rsaKey  *rsa.PrivateKey
)

// rsa2048 is one RSA key for the package's tests: generating one is slow.
func rsa2048(t *testing.T) *rsa.PrivateKey {
	t.Helper()
	rsaOnce.Do(func() {
		var err error
		if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
			panic(err)
		}
	})
	return rsaKey
}

func mustAlgorithm(t *testing.T, name string) jwa.SignatureAlgorithm {
	t.Helper()
	alg, ok := algorithm(name)
	if !ok {
		t.Fatalf("no algorithm %s", name)
	}
	return alg
}

// The default replay memory holds every proof of a replica verifying 5,000
// proofs a second, window after window, and still refuses a replay once
// the seconds around its record were swept. (A memory of 100,000 records
// refused every proof after 20 seconds of such traffic.)
func TestReplayMemoryHoldsASustainedRate(t *testing.T) {
	const perSecond = 5_000
	m := newReplayMemory(DefaultMaxReplayRecords)
	now := epoch
	var first string
	for second := range 130 {
		for i := range perSecond {
			jti := fmt.Sprint(second, "-", i)
			if second == 100 && i == 0 {
				first = jti
			}
			if err := m.remember("jkt", jti, now.Add(DefaultMaxAge), now); err != nil {
				t.Fatalf("second %d, proof %d: %v", second, i, err)
			}
		}
		now = now.Add(time.Second)
	}
	if got, most := m.size(), perSecond*(int(DefaultMaxAge/time.Second)+1); got > most {
		t.Errorf("%d records held, want at most a window's %d", got, most)
	}
	// Recorded at second 100, its window ends at 160: still refused at 130.
	if err := m.remember("jkt", first, epoch.Add(100*time.Second+DefaultMaxAge), now); err == nil || !strings.Contains(err.Error(), "used before") {
		t.Fatalf("a replay of a proof recorded 30 s ago: %v", err)
	}
}
