package client_test

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/chit-auth/chit/pkg/client"
	"github.com/chit-auth/chit/pkg/dpop"
)

// A service calls another one with its own Chit token, refreshed before it
// expires.
func Example() {
	tokens := client.ClientCredentials(context.Background(), "https://auth.example.com", "billing", "chit_cs_...")
	conn, err := grpc.NewClient("inventory.internal:443",
		grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(nil, "")),
		grpc.WithPerRPCCredentials(client.PerRPCCredentials(tokens, false)))
	if err == nil {
		defer conn.Close()
	}
}

// The same with a DPoP-bound token (RFC 9449): the token request carries a
// proof, and every call a fresh one for the method it makes.
func Example_dPoP() {
	signer, err := dpop.GenerateSigner() // or dpop.LoadSigner("/etc/billing/dpop.pem")
	if err != nil {
		return
	}
	ctx := client.WithDPoP(context.Background(), signer)
	tokens := client.ClientCredentials(ctx, "https://auth.example.com", "billing", "chit_cs_...")
	creds := client.DPoPPerRPCCredentials(tokens, signer, "https://inventory.example.com", false)
	conn, err := grpc.NewClient("inventory.internal:443",
		grpc.WithTransportCredentials(credentials.NewClientTLSFromCert(nil, "")),
		grpc.WithPerRPCCredentials(creds), grpc.WithUnaryInterceptor(creds.UnaryClientInterceptor()))
	if err == nil {
		defer conn.Close()
	}
}
