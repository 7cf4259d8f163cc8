// Package federationtest is a fake workload-token issuer for tests: its
// own keys, discovery document and JWKS over an httptest TLS server, and
// tokens shaped like a Kubernetes projected service-account token and a
// GitHub Actions OIDC token. Other packages' tests (interop, bench) import
// it; it is never linked into the server.
package federationtest

import (
	"context"
	"crypto/ecdsa"
	"crypto/ed25519"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
)

// Well-known issuers the fake can stand for.
const (
	KubernetesIssuer = "https://kubernetes.default.svc.cluster.local"
	GitHubIssuer     = "https://token.actions.githubusercontent.com"
	GitLabIssuer     = "https://gitlab.com"
)

// Issuer is a fake issuer. Its Client reaches it under any host name, so
// it can stand for https://token.actions.githubusercontent.com itself.
type Issuer struct {
	// URL is its issuer (iss), without a trailing slash.
	URL    string
	Server *httptest.Server

	mu sync.Mutex
	// keys are the signing keys by kid; published are the kids in the JWKS.
	keys      map[string]jwk.Key
	published []string
	// Discovery, when set, answers /.well-known/openid-configuration
	// instead of the real document; JWKS answers the key set's path.
	Discovery http.HandlerFunc
	JWKS      http.HandlerFunc

	// DiscoveryFetches and JWKSFetches count requests.
	DiscoveryFetches, JWKSFetches atomic.Int32
}

// KeyID is the kid of the key a new Issuer signs with (RS256); ECKeyID is
// its ES256 key's.
const (
	KeyID   = "rsa-1"
	ECKeyID = "ec-1"
)

// NewIssuer starts a fake issuer whose iss is issuer ("" for its own
// https://127.0.0.1:PORT URL), closed with t.
func NewIssuer(t testing.TB, issuer string) *Issuer {
	t.Helper()
	i := &Issuer{keys: map[string]jwk.Key{}}
	i.AddKey(t, KeyID, jwa.RS256)
	i.AddKey(t, ECKeyID, jwa.ES256)
	mux := http.NewServeMux()
	mux.HandleFunc("/.well-known/openid-configuration", func(w http.ResponseWriter, r *http.Request) {
		i.DiscoveryFetches.Add(1)
		i.mu.Lock()
		override := i.Discovery
		i.mu.Unlock()
		if override != nil {
			override(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(map[string]any{"issuer": i.URL, "jwks_uri": i.URL + "/keys"})
	})
	mux.HandleFunc("/keys", func(w http.ResponseWriter, r *http.Request) {
		i.JWKSFetches.Add(1)
		i.mu.Lock()
		override := i.JWKS
		i.mu.Unlock()
		if override != nil {
			override(w, r)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(i.PublicJWKS(t)))
	})
	i.Server = httptest.NewTLSServer(mux)
	t.Cleanup(i.Server.Close)
	i.URL = strings.TrimSuffix(issuer, "/")
	if i.URL == "" {
		i.URL = i.Server.URL
	}
	return i
}

// SetHandlers replaces the discovery and JWKS answers (nil for the real
// ones) while the server runs.
func (i *Issuer) SetHandlers(discovery, jwks http.HandlerFunc) {
	i.mu.Lock()
	defer i.mu.Unlock()
	i.Discovery, i.JWKS = discovery, jwks
}

// AddKey makes a signing key kid for alg (RS256, ES256, EdDSA) and
// publishes it.
func (i *Issuer) AddKey(t testing.TB, kid string, alg jwa.SignatureAlgorithm) {
	t.Helper()
	var raw any
	var err error
	switch alg {
	case jwa.ES256:
		raw, err = ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	case jwa.EdDSA:
		_, raw, err = ed25519.GenerateKey(rand.Reader)
	default:
		raw, err = rsa.GenerateKey(rand.Reader, 2048)
	}
	if err != nil {
		t.Fatal(err)
	}
	key, err := jwk.FromRaw(raw)
	if err != nil {
		t.Fatal(err)
	}
	_ = key.Set(jwk.KeyIDKey, kid)
	_ = key.Set(jwk.AlgorithmKey, alg)
	i.mu.Lock()
	defer i.mu.Unlock()
	i.keys[kid] = key
	i.published = append(i.published, kid)
}

// PublicJWKS is the issuer's published keys as a JWKS document.
func (i *Issuer) PublicJWKS(t testing.TB) string {
	t.Helper()
	i.mu.Lock()
	defer i.mu.Unlock()
	set := jwk.NewSet()
	for _, kid := range i.published {
		public, err := i.keys[kid].PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		_ = set.AddKey(public)
	}
	encoded, err := json.Marshal(set)
	if err != nil {
		t.Fatal(err)
	}
	return string(encoded)
}

// Client reaches the issuer's server whatever host a URL names, trusting
// its certificate: what the server under test fetches keys with.
func (i *Issuer) Client() *http.Client {
	address := i.Server.Listener.Addr().String()
	transport := i.Server.Client().Transport.(*http.Transport).Clone()
	transport.DialContext = func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, address)
	}
	// httptest's certificate names example.com.
	transport.TLSClientConfig = transport.TLSClientConfig.Clone()
	transport.TLSClientConfig.ServerName = "example.com"
	return &http.Client{Transport: transport}
}

// Sign signs claims with the key kid (KeyID when ""), as its alg.
func (i *Issuer) Sign(t testing.TB, kid string, claims map[string]any) string {
	t.Helper()
	if kid == "" {
		kid = KeyID
	}
	i.mu.Lock()
	key := i.keys[kid]
	i.mu.Unlock()
	payload, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	headers := jws.NewHeaders()
	_ = headers.Set(jws.KeyIDKey, kid)
	_ = headers.Set(jws.TypeKey, "JWT")
	signed, err := jws.Sign(payload, jws.WithKey(key.Algorithm(), key, jws.WithProtectedHeaders(headers)))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// SignPayload signs payload, as written (duplicate names and all), with
// the key kid (KeyID when ""), its header holding kid, typ and extra.
func (i *Issuer) SignPayload(t testing.TB, kid string, extra map[string]any, payload []byte) string {
	t.Helper()
	if kid == "" {
		kid = KeyID
	}
	i.mu.Lock()
	key := i.keys[kid]
	i.mu.Unlock()
	headers := jws.NewHeaders()
	_ = headers.Set(jws.KeyIDKey, kid)
	_ = headers.Set(jws.TypeKey, "JWT")
	for name, value := range extra {
		if err := headers.Set(name, value); err != nil {
			t.Fatal(err)
		}
	}
	signed, err := jws.Sign(payload, jws.WithKey(key.Algorithm(), key, jws.WithProtectedHeaders(headers)))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

// Unsigned is claims as a JWS with the header given and the signature
// sig (alg none, HS256 with a guessed secret...).
func Unsigned(t testing.TB, header map[string]any, claims map[string]any, sig []byte) string {
	t.Helper()
	h, _ := json.Marshal(header)
	p, _ := json.Marshal(claims)
	enc := base64.RawURLEncoding
	return enc.EncodeToString(h) + "." + enc.EncodeToString(p) + "." + enc.EncodeToString(sig)
}

// Kubernetes is a projected service-account token's claims for pod NAME's
// service account in namespace, for audience, issued at now for an hour.
func Kubernetes(issuer, namespace, account, audience string, now time.Time) map[string]any {
	return map[string]any{
		"iss": issuer,
		"sub": "system:serviceaccount:" + namespace + ":" + account,
		"aud": []string{audience},
		"exp": now.Add(time.Hour).Unix(),
		"iat": now.Unix(),
		"nbf": now.Unix(),
		"kubernetes.io": map[string]any{
			"namespace":      namespace,
			"serviceaccount": map[string]any{"name": account, "uid": "7c3e8d7a-3a43-4e6e-9a85-0f6c3b1e2d11"},
			"pod":            map[string]any{"name": account + "-6d4cf56db6-x2x7z", "uid": "0b5a2f62-8f5e-4a5f-b5d4-9d6f0c2a7e31"},
		},
	}
}

// GitHub is a GitHub Actions OIDC token's claims for a workflow of
// owner/repo on ref, for audience, issued at now for 5 minutes.
func GitHub(owner, repo, repositoryID, ownerID, ref, audience string, now time.Time) map[string]any {
	return map[string]any{
		"iss":                 GitHubIssuer,
		"sub":                 "repo:" + owner + "/" + repo + ":ref:" + ref,
		"aud":                 audience,
		"exp":                 now.Add(5 * time.Minute).Unix(),
		"iat":                 now.Unix(),
		"nbf":                 now.Unix(),
		"jti":                 randomID(),
		"ref":                 ref,
		"repository":          owner + "/" + repo,
		"repository_id":       repositoryID,
		"repository_owner":    owner,
		"repository_owner_id": ownerID,
		"event_name":          "push",
		"workflow":            "deploy",
		"job_workflow_ref":    owner + "/" + repo + "/.github/workflows/deploy.yml@" + ref,
		"runner_environment":  "github-hosted",
	}
}

func randomID() string {
	b := make([]byte, 12)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}
