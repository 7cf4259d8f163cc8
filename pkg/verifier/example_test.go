package verifier_test

import (
	"context"
	"fmt"
	"log"
	"net/http"

	"google.golang.org/grpc"

	"github.com/chit-auth/chit/pkg/verifier"
)

// A gRPC service accepts Chit tokens in three lines: a verifier, rules per
// method, and the interceptors.
func Example_grpc() {
	v, err := verifier.New(context.Background(), verifier.Config{Issuer: "https://auth.example.com", Audience: "chit"})
	if err != nil {
		log.Fatal(err)
	}
	rules := verifier.Rules{"/inventory.v1.Inventory/Reserve": {Roles: []string{"SERVICE"}, Scopes: []string{"inventory:write"}}}
	server := grpc.NewServer(grpc.UnaryInterceptor(v.UnaryServerInterceptor(rules)), grpc.StreamInterceptor(v.StreamServerInterceptor(rules)))
	_ = server
}

// An HTTP handler reads the caller from the request context.
func Example_http() {
	v, err := verifier.New(context.Background(), verifier.Config{Issuer: "https://auth.example.com", Audience: "chit"})
	if err != nil {
		log.Fatal(err)
	}
	protect := v.Middleware(verifier.Requirement{Scopes: []string{"reports:read"}})
	http.Handle("/reports", protect(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		claims, _ := verifier.ClaimsFrom(r.Context())
		fmt.Fprintf(w, "hello %s", claims.Subject)
	})))
}
