package dpop_test

import (
	"errors"
	"log"
	"net/http"
	"time"

	"golang.org/x/oauth2"

	"github.com/chit-auth/chit/pkg/dpop"
)

// A resource server checks the proof of each request. With nonces, a
// proof is single use across replicas (see NonceSource).
func ExampleVerifier() {
	nonces, err := dpop.NewNonceSource(5*time.Minute, nil)
	if err != nil {
		log.Fatal(err)
	}
	proofs := dpop.NewVerifier(dpop.Config{Nonces: nonces})
	http.HandleFunc("/orders", func(w http.ResponseWriter, r *http.Request) {
		proof, err := proofs.Verify(r.Header.Get(dpop.ProofHeader), dpop.Request{
			Method: r.Method, URL: "https://api.example.com" + r.URL.Path, AccessToken: "the request's access token"})
		var refused *dpop.Error
		if errors.As(err, &refused) {
			if refused.Nonce != "" {
				w.Header().Set(dpop.NonceHeader, refused.Nonce)
			}
			w.Header().Set("WWW-Authenticate", `DPoP error="`+refused.Code+`"`)
			http.Error(w, refused.Description, http.StatusUnauthorized)
			return
		}
		_ = proof.JKT // compare with the token's cnf.jkt (or pass it as Request.JKT)
	})
}

// A client calls with a DPoP-bound token: Transport adds the token and a
// fresh proof to each request and follows the server's nonces.
func ExampleTransport() {
	signer, err := dpop.GenerateSigner()
	if err != nil {
		log.Fatal(err)
	}
	var tokens oauth2.TokenSource // e.g. client.ClientCredentials in a client.WithDPoP(ctx, signer) context
	httpClient := &http.Client{Transport: &dpop.Transport{Signer: signer, Tokens: tokens}}
	_ = httpClient
}
