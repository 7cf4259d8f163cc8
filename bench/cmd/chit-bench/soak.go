package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"sync"
	"time"

	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
)

// soak runs CheckToken over gRPC for a long time and compares the server's
// resident memory after the first minute with the end: it must not grow.
func soak(args []string) error {
	flags := flag.NewFlagSet("chit-bench soak", flag.ContinueOnError)
	chitd := flags.String("chitd", "../bin/chitd", "chitd binary to start")
	duration := flags.Duration("duration", 5*time.Minute, "length of the run")
	concurrency := flags.Int("concurrency", 32, "concurrent callers")
	if err := flags.Parse(args); err != nil {
		return err
	}
	if *duration < 2*time.Minute {
		return errors.New("--duration must be at least 2m: the first minute is the warm-up")
	}
	dir, err := os.MkdirTemp("", "chit-soak-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	out, err := exec.Command(*chitd, "service", "create", "soak", "--data-dir", dir).Output()
	if err != nil {
		return fmt.Errorf("create service: %w", err)
	}
	clientID, secret := serviceCredentials(out)
	server := exec.Command(*chitd, "serve", "--grpc-addr", "127.0.0.1:0", "--http-addr", "127.0.0.1:0", "--insecure-dev",
		"--log-format", "json", "--data-dir", dir)
	grpcAddr, _, err := startServer(server)
	if err != nil {
		return err
	}
	defer func() { _ = server.Process.Kill(); _ = server.Wait() }()
	conn, err := grpc.NewClient(grpcAddr, grpc.WithTransportCredentials(insecure.NewCredentials()))
	if err != nil {
		return err
	}
	defer conn.Close()
	auth := authv1.NewAuthServiceClient(conn)
	service := &target{conn: conn, clientID: clientID, clientSecret: secret}
	tokens := make([]string, 512)
	for i := range tokens {
		t, err := auth.Token(context.Background(), service.clientRequest())
		if err != nil {
			return err
		}
		tokens[i] = t.GetAccessToken()
	}
	ctx, cancel := context.WithTimeout(context.Background(), *duration)
	defer cancel()
	var wg sync.WaitGroup
	var calls, failures sync.Map
	for w := range *concurrency {
		wg.Add(1)
		go func() {
			defer wg.Done()
			n, bad := 0, 0
			for i := w; ctx.Err() == nil; i++ {
				md := metadata.AppendToOutgoingContext(context.Background(), "authorization", "Bearer "+tokens[i%len(tokens)])
				if _, err := auth.CheckToken(md, &authv1.CheckTokenRequest{}); err != nil {
					bad++
				}
				n++
			}
			calls.Store(w, n)
			failures.Store(w, bad)
		}()
	}
	time.Sleep(time.Minute) // the warm-up the comparison starts after
	afterWarmup := procStatusMiB(server.Process.Pid, "VmRSS")
	wg.Wait()
	atEnd := procStatusMiB(server.Process.Pid, "VmRSS")
	total, bad := 0, 0
	calls.Range(func(_, v any) bool { total += v.(int); return true })
	failures.Range(func(_, v any) bool { bad += v.(int); return true })
	fmt.Printf("CheckToken soak: %v, %d calls (%.0f/s), %d errors; RSS after 1 min %.1f MiB, at end %.1f MiB (ratio %.3f)\n",
		*duration, total, float64(total)/duration.Seconds(), bad, afterWarmup, atEnd, atEnd/afterWarmup)
	if atEnd > afterWarmup*1.10 {
		return fmt.Errorf("memory grew by more than 10%%")
	}
	return nil
}
