package oauth2http

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/tokens"
)

// mapIntrospection is how the answer was built before introspectionBody:
// the oracle of its bytes.
func mapIntrospection(answer tokens.Introspection) map[string]any {
	claims := answer.Claims
	body := map[string]any{
		"active":     true,
		"sub":        claims.Subject,
		"iss":        claims.Issuer,
		"aud":        claims.Audience,
		"exp":        claims.ExpiresAt.Unix(),
		"iat":        claims.IssuedAt.Unix(),
		"token_type": tokens.TokenType,
		"role":       string(claims.Role),
	}
	if answer.TokenType == "refresh_token" {
		body["token_type"] = "refresh_token"
	}
	for name, value := range map[string]string{"jti": claims.ID, "client_id": claims.ClientID, "scope": strings.Join(claims.Scopes, " ")} {
		if value != "" {
			body[name] = value
		}
	}
	return body
}

// The active answer is byte for byte what the map of its fields encoded to:
// the same keys, in the same order, the optional ones left out alike.
func TestActiveIntrospectionIsTheMapsBytes(t *testing.T) {
	issued := time.Date(2026, 12, 7, 9, 0, 0, 0, time.UTC)
	full := tokens.Claims{Subject: "service:billing", Role: accounts.RoleService, Scopes: []string{"read", "write"}, ClientID: "billing",
		Issuer: "https://chit.example", Audience: []string{"https://api.example"}, ID: "abc", IssuedAt: issued, ExpiresAt: issued.Add(time.Hour)}
	for _, tc := range []struct {
		name   string
		answer tokens.Introspection
	}{
		{"every claim", tokens.Introspection{Active: true, TokenType: "access_token", Claims: full}},
		{"no optional claims", tokens.Introspection{Active: true, TokenType: "access_token", Claims: tokens.Claims{
			Subject: "alice", Role: accounts.RoleUser, Issuer: "https://chit.example", Audience: []string{"chit"}, IssuedAt: issued, ExpiresAt: issued}}},
		{"a refresh token", tokens.Introspection{Active: true, TokenType: "refresh_token", Claims: full}},
		{"no audience, no role", tokens.Introspection{Active: true, TokenType: "access_token", Claims: tokens.Claims{Subject: "x"}}},
		{"characters JSON escapes", tokens.Introspection{Active: true, TokenType: "access_token", Claims: tokens.Claims{
			Subject: `a"<b>&`, Scopes: []string{"\u2028"}, Audience: []string{"a", "b"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := json.Marshal(activeIntrospection(tc.answer))
			if err != nil {
				t.Fatal(err)
			}
			want, err := json.Marshal(mapIntrospection(tc.answer))
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != string(want) {
				t.Fatalf("got  %s\nwant %s", got, want)
			}
		})
	}
}
