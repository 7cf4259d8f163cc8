package server_test

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwa"
	"github.com/lestrrat-go/jwx/v2/jwk"
	"github.com/lestrrat-go/jwx/v2/jws"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/health/grpc_health_v1"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/clientaddr"

	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/server"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

func b64(s string) string { return base64.RawURLEncoding.EncodeToString([]byte(s)) }

// serverKey is the server's own signing key, read from its store the way the
// server does, so the suite can sign tokens the server would never issue.
func serverKey(t *testing.T, store storage.Store) jwk.Key {
	t.Helper()
	stored, err := store.ListSigningKeys(context.Background())
	if err != nil || len(stored) == 0 {
		t.Fatalf("signing keys: %v", err)
	}
	sealer, _ := keys.NewSealer(servertest.KeyEncryptionKey)
	for _, record := range stored {
		if record.State != storage.KeyActive {
			continue
		}
		private, err := sealer.Open(record.PrivateKey)
		if err != nil {
			t.Fatal(err)
		}
		key, err := jwk.ParseKey(private)
		if err != nil {
			t.Fatal(err)
		}
		return key
	}
	t.Fatal("no active signing key")
	return nil
}

// signPayload signs raw payload bytes with key and extra protected headers.
func signPayload(t *testing.T, key jwk.Key, payload string, headers map[string]any) string {
	t.Helper()
	protected := jws.NewHeaders()
	for name, value := range headers {
		if err := protected.Set(name, value); err != nil {
			t.Fatal(err)
		}
	}
	alg, _ := key.Algorithm().(jwa.SignatureAlgorithm)
	signed, err := jws.Sign([]byte(payload), jws.WithKey(alg, key, jws.WithProtectedHeaders(protected)))
	if err != nil {
		t.Fatal(err)
	}
	return string(signed)
}

func claimsJSON(t *testing.T, overrides map[string]any) string {
	t.Helper()
	now := time.Now()
	claims := map[string]any{
		"iss": servertest.Issuer, "sub": "alice", "aud": []string{servertest.Audience}, "role": "ADMIN",
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(10 * time.Minute).Unix(), "jti": "attack",
	}
	for name, value := range overrides {
		if value == nil {
			delete(claims, name)
		} else {
			claims[name] = value
		}
	}
	raw, err := json.Marshal(claims)
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// TestJWTAttacks tries the classic attacks on token verification against
// CheckToken over both transports; every one is refused and the server keeps
// serving.
func TestJWTAttacks(t *testing.T) {
	servertest.ForEachTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		real := serverKey(t, e.Store)
		kid := real.KeyID()
		public, err := real.PublicKey()
		if err != nil {
			t.Fatal(err)
		}
		publicJSON, _ := json.Marshal(public)
		hmacKey, _ := jwk.FromRaw(publicJSON)
		_ = hmacKey.Set(jwk.AlgorithmKey, jwa.HS256)
		_ = hmacKey.Set(jwk.KeyIDKey, kid)
		foreignRecord, _ := keys.Generate(jwa.ES256, time.Now())
		foreign, _ := jwk.ParseKey(foreignRecord.PrivateKey)
		good, code := tr.Token(t, servertest.PasswordRequest("alice", "wonderland"))
		servertest.WantCode(t, "Token", code, codes.OK)
		parts := strings.Split(good.GetAccessToken(), ".")
		valid := claimsJSON(t, nil)

		attacks := map[string]string{
			"alg none":                    b64(`{"alg":"none","typ":"JWT"}`) + "." + b64(valid) + ".",
			"alg none with kid":           b64(`{"alg":"none","kid":"`+kid+`"}`) + "." + b64(valid) + ".",
			"HS256 keyed with public key": signPayload(t, hmacKey, valid, nil),
			"unknown kid":                 signPayload(t, foreign, valid, map[string]any{"kid": "no-such-key"}),
			"foreign key under our kid":   signPayload(t, foreign, valid, map[string]any{"kid": kid}),
			"kid path traversal":          signPayload(t, foreign, valid, map[string]any{"kid": "../../../../dev/null"}),
			"kid URL":                     signPayload(t, foreign, valid, map[string]any{"kid": "https://evil.example/key.json"}),
			"kid SQL":                     signPayload(t, foreign, valid, map[string]any{"kid": "' OR '1'='1"}),
			"jku to attacker JWKS":        signPayload(t, foreign, valid, map[string]any{"kid": foreign.KeyID(), "jku": "https://evil.example/jwks.json"}),
			"x5u to attacker certificate": signPayload(t, foreign, valid, map[string]any{"kid": foreign.KeyID(), "x5u": "https://evil.example/cert.pem"}),
			"embedded jwk":                signPayload(t, foreign, valid, map[string]any{"jwk": mustPublic(t, foreign)}),
			"expired":                     signPayload(t, real, claimsJSON(t, map[string]any{"exp": time.Now().Add(-time.Hour).Unix()}), nil),
			"not yet valid":               signPayload(t, real, claimsJSON(t, map[string]any{"nbf": time.Now().Add(time.Hour).Unix()}), nil),
			"wrong issuer":                signPayload(t, real, claimsJSON(t, map[string]any{"iss": "https://evil.example"}), nil),
			"wrong audience":              signPayload(t, real, claimsJSON(t, map[string]any{"aud": []string{"other-service"}}), nil),
			"no expiry":                   signPayload(t, real, claimsJSON(t, map[string]any{"exp": nil}), nil),
			"tampered payload":            parts[0] + "." + b64(claimsJSON(t, map[string]any{"role": "ADMIN"})) + "." + parts[2],
			"tampered header":             b64(`{"alg":"ES384","kid":"`+kid+`"}`) + "." + parts[1] + "." + parts[2],
			"truncated":                   parts[0] + "." + parts[1],
			"truncated signature":         parts[0] + "." + parts[1] + "." + parts[2][:10],
			"empty parts":                 "..",
			"non-JSON payload":            signPayload(t, real, "not json at all", nil),
			"JSON array payload":          signPayload(t, real, `["sub","alice"]`, nil),
			"non-JSON header":             b64("garbage") + "." + parts[1] + "." + parts[2],
			"duplicate claims":            signPayload(t, real, strings.Replace(valid, `"sub":"alice"`, `"sub":"alice","sub":"root"`, 1), nil),
			"oversized (32 KiB)":          parts[0] + "." + strings.Repeat("A", 32<<10) + "." + parts[2],
			"printable junk":              "!!!.@@@.###",
			"JWE-shaped (five parts)":     parts[0] + "." + parts[1] + "." + parts[2] + ".x.y",
			"valid signature, bad base64": parts[0] + "." + parts[1] + "!." + parts[2],
		}
		for name, token := range attacks {
			t.Run(name, func(t *testing.T) {
				_, code := tr.Check(t, token)
				servertest.WantCode(t, "CheckToken", code, codes.Unauthenticated)
			})
		}
		t.Run("oversized (1 MiB)", func(t *testing.T) {
			// Too large even for the transports' header limits: any refusal
			// will do, as long as the server lives on.
			huge := parts[0] + "." + strings.Repeat("A", 1<<20) + "." + parts[2]
			if _, ok := tr.(*servertest.RESTTransport); ok {
				req, _ := http.NewRequest(http.MethodGet, e.HTTPBase()+"/v1/auth/check", nil)
				req.Header.Set("Authorization", "Bearer "+huge)
				resp, err := http.DefaultClient.Do(req)
				if err == nil {
					resp.Body.Close()
					if resp.StatusCode == http.StatusOK {
						t.Fatal("a 1 MiB token was accepted")
					}
				}
				return
			}
			if _, code := tr.Check(t, huge); code == codes.OK {
				t.Fatal("a 1 MiB token was accepted")
			}
		})
		// None of it hurt the server.
		health, err := grpc_health_v1.NewHealthClient(e.Conn).Check(context.Background(), &grpc_health_v1.HealthCheckRequest{})
		if err != nil || health.GetStatus() != grpc_health_v1.HealthCheckResponse_SERVING {
			t.Fatalf("server after the attacks: %v, %v", health, err)
		}
		if _, code := tr.Check(t, good.GetAccessToken()); code != codes.OK {
			t.Fatalf("a valid token after the attacks: %v", code)
		}
	})
}

func mustPublic(t *testing.T, key jwk.Key) jwk.Key {
	t.Helper()
	public, err := key.PublicKey()
	if err != nil {
		t.Fatal(err)
	}
	return public
}

// Password spraying (one guess each for many usernames) is throttled per
// address; a caller that forges X-Forwarded-For (REST) or x-forwarded-for
// metadata (gRPC) on every try is still counted at its real address.
func TestForgedForwardedForDoesNotEvadeThrottling(t *testing.T) {
	for _, name := range []string{"gRPC", "REST"} {
		t.Run(name, func(t *testing.T) {
			e := servertest.Start(t)
			try := func(i int, username, password string) codes.Code {
				return signInForwardedFor(t, e, name, username, password, fmt.Sprintf("198.51.100.%d", i))
			}
			for i := range accounts.DefaultThrottle.FreeFailures {
				servertest.WantCode(t, "a sprayed guess", try(i, fmt.Sprintf("nobody%d", i), "guess-guess"), codes.Unauthenticated)
			}
			servertest.WantCode(t, "a real user's sign-in from the spraying address", try(99, "alice", "wonderland"), codes.ResourceExhausted)
		})
	}
}

// Behind a trusted reverse proxy, each client is throttled at its own
// address (the one the proxy appends), not at the proxy's: one client's
// spraying does not lock the others out.
func TestTrustedProxyNamesTheClient(t *testing.T) {
	proxies, err := clientaddr.NewResolver([]string{"127.0.0.0/8", "::1"})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"gRPC", "REST"} {
		t.Run(name, func(t *testing.T) {
			e := servertest.Start(t, func(cfg *server.Config) { cfg.ClientAddresses = proxies })
			try := func(client, username, password string) codes.Code {
				// What a proxy sends: whatever the client claimed, then the
				// client's real address.
				return signInForwardedFor(t, e, name, username, password, "6.6.6.6, "+client)
			}
			for i := range accounts.DefaultThrottle.FreeFailures {
				servertest.WantCode(t, "a sprayed guess", try("203.0.113.1", fmt.Sprintf("nobody%d", i), "guess-guess"), codes.Unauthenticated)
			}
			servertest.WantCode(t, "another client behind the same proxy", try("203.0.113.2", servertest.UserName, servertest.UserPassword), codes.OK)
			servertest.WantCode(t, "the spraying client", try("203.0.113.1", servertest.UserName, servertest.UserPassword), codes.ResourceExhausted)
		})
	}
}

// signInForwardedFor makes a password sign-in over transport ("gRPC" or
// "REST") carrying forwardedFor as x-forwarded-for metadata, or as an
// X-Forwarded-For header (and the Grpc-Metadata- form of it, which the
// gateway must not forward), and returns the answer as a gRPC code.
func signInForwardedFor(t *testing.T, e *servertest.Env, transport, username, password, forwardedFor string) codes.Code {
	t.Helper()
	if transport == "gRPC" {
		ctx := metadata.AppendToOutgoingContext(context.Background(), "x-forwarded-for", forwardedFor)
		_, err := authv1.NewAuthServiceClient(e.Conn).Token(ctx, servertest.PasswordRequest(username, password))
		return status.Code(err)
	}
	req, _ := http.NewRequest(http.MethodPost, e.HTTPBase()+"/v1/auth/token",
		strings.NewReader(fmt.Sprintf(`{"passwordCredential":{"username":%q,"password":%q}}`, username, password)))
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("X-Forwarded-For", forwardedFor)
	req.Header.Set("Grpc-Metadata-X-Forwarded-For", forwardedFor)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusUnauthorized:
		return codes.Unauthenticated
	case http.StatusTooManyRequests:
		return codes.ResourceExhausted
	case http.StatusOK:
		return codes.OK
	}
	t.Fatalf("HTTP %d", resp.StatusCode)
	return codes.Unknown
}
