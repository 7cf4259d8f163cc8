// Command protected is a small gRPC service that accepts only Chit tokens
// with the SERVICE role, using pkg/verifier. Its one method is the standard
// health check, so any gRPC client (grpcurl) can try it:
//
//	go run ./examples/protected --issuer http://localhost:8080 --addr localhost:9191
//	grpcurl -plaintext -H "authorization: Bearer $TOKEN" localhost:9191 grpc.health.v1.Health/Check
package main

import (
	"context"
	"flag"
	"log"
	"net"
	"os"
	"os/signal"

	"google.golang.org/grpc"
	"google.golang.org/grpc/health"
	"google.golang.org/grpc/health/grpc_health_v1"

	"github.com/chit-auth/chit/pkg/verifier"
)

func main() {
	issuer := flag.String("issuer", "http://localhost:8080", "Chit's issuer URL (its JWKS is fetched from there)")
	audience := flag.String("audience", "chit", "the aud Chit puts in access tokens")
	addr := flag.String("addr", "localhost:9191", "address to serve on")
	flag.Parse()

	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt)
	defer stop()
	v, err := verifier.New(ctx, verifier.Config{Issuer: *issuer, Audience: *audience})
	if err != nil {
		log.Fatal(err)
	}
	rules := verifier.Rules{grpc_health_v1.Health_Check_FullMethodName: {Roles: []string{"SERVICE"}}}
	server := grpc.NewServer(grpc.UnaryInterceptor(v.UnaryServerInterceptor(rules)), grpc.StreamInterceptor(v.StreamServerInterceptor(rules)))
	grpc_health_v1.RegisterHealthServer(server, health.NewServer())
	listener, err := net.Listen("tcp", *addr)
	if err != nil {
		log.Fatal(err)
	}
	go func() {
		<-ctx.Done()
		server.GracefulStop()
	}()
	log.Printf("serving on %s; only SERVICE tokens from %s get through", listener.Addr(), *issuer)
	if err := server.Serve(listener); err != nil {
		log.Fatal(err)
	}
}
