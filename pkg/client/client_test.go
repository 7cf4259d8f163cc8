package client

import (
	"context"
	"errors"
	"testing"
	"time"

	"golang.org/x/oauth2"
)

type fixedSource struct {
	token *oauth2.Token
	err   error
}

func (f fixedSource) Token() (*oauth2.Token, error) { return f.token, f.err }

func TestPerRPCCredentials(t *testing.T) {
	creds := PerRPCCredentials(fixedSource{token: &oauth2.Token{AccessToken: "abc", Expiry: time.Now().Add(time.Hour)}}, false)
	md, err := creds.GetRequestMetadata(context.Background())
	if err != nil || md["authorization"] != "Bearer abc" {
		t.Fatalf("metadata %v, %v", md, err)
	}
	if !creds.RequireTransportSecurity() {
		t.Fatal("tokens must not be sent without TLS by default")
	}
	if PerRPCCredentials(fixedSource{}, true).RequireTransportSecurity() {
		t.Fatal("allowInsecure must allow plaintext")
	}
	if _, err := PerRPCCredentials(fixedSource{err: errors.New("down")}, true).GetRequestMetadata(context.Background()); err == nil {
		t.Fatal("a failing token source must fail the call")
	}
}

func TestTokenURL(t *testing.T) {
	for _, issuer := range []string{"https://auth.example.com", "https://auth.example.com/"} {
		if got := TokenURL(issuer); got != "https://auth.example.com/oauth2/token" {
			t.Errorf("TokenURL(%q) = %q", issuer, got)
		}
	}
}
