package client_test

import (
	"context"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/chit-auth/chit/pkg/client"
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
