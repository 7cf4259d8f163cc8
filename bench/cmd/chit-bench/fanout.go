package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"sort"
	"sync"
	"time"

	"golang.org/x/oauth2"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/pkg/verifier"
)

// revocationFanout is the revocation feed's scenario: fanoutVerifiers SDK
// verifiers (pkg/verifier), each with its own subscription to the server's
// Server-Sent Events feed, as many services verifying tokens offline would
// hold; a person's login is revoked fanoutRounds times, and each verifier's
// delay between the revocation's call and its refusal of the token is one
// sample.
const (
	revocationFanout = "revocation refused by 100 subscribed verifiers"
	fanoutVerifiers  = 100
	fanoutRounds     = 20
	// fanoutPoll is how often a verifier's set is looked at: the samples'
	// resolution, far below the 1 s target.
	fanoutPoll = 2 * time.Millisecond
)

// measureFanout runs the fan-out scenario on t. Its result's rate is the
// rounds per second, its percentiles the delays to refusal.
func (t *target) measureFanout(ctx context.Context) (result, error) {
	r := result{scenario: revocationFanout, transport: "sse"}
	if t.feedClientID == "" {
		return r, errors.New("chitd made no service account allowed chit:revocations")
	}
	if err := t.needUser(); err != nil {
		return r, err
	}
	auth := authv1.NewAuthServiceClient(t.conn)
	feed, err := auth.Token(ctx, &authv1.TokenRequest{Scope: "chit:revocations", Credential: &authv1.TokenRequest_ClientCredential{
		ClientCredential: &authv1.ClientCredential{ClientId: t.feedClientID, ClientSecret: t.feedSecret}}})
	if err != nil {
		return r, fmt.Errorf("the feed's token: %w", err)
	}
	base := t.rest.scheme + "://" + t.rest.host
	issuer, err := discoverIssuer(ctx, base)
	if err != nil {
		return r, err
	}
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	verifiers := make([]*verifier.Verifier, fanoutVerifiers)
	defer func() {
		for _, v := range verifiers {
			if v != nil {
				_ = v.Close()
			}
		}
	}()
	tokens := oauth2.StaticTokenSource(&oauth2.Token{AccessToken: feed.GetAccessToken()})
	for i := range verifiers {
		v, err := verifier.New(ctx, verifier.Config{Issuer: issuer, Audience: "chit", JWKSURL: base + "/.well-known/jwks.json",
			Revocations: &verifier.RevocationConfig{URL: base + "/v1/revocations/events", TokenSource: tokens, InitialWait: 10 * time.Second}})
		if err != nil {
			return r, fmt.Errorf("verifier %d: %w", i, err)
		}
		verifiers[i] = v
	}
	var delays []time.Duration
	started := time.Now()
	for round := range fanoutRounds {
		person, err := auth.Token(ctx, t.passwordRequest(round))
		if err != nil {
			return r, fmt.Errorf("round %d: sign in: %w", round, err)
		}
		cursors := make([]string, len(verifiers))
		for i, v := range verifiers {
			if _, err := v.Verify(ctx, person.GetAccessToken()); err != nil {
				return r, fmt.Errorf("round %d: verifier %d refuses the token before its revocation: %w", round, i, err)
			}
			cursors[i] = v.RevocationStatus().Cursor
		}
		revoked := time.Now()
		if _, err := auth.Revoke(ctx, &authv1.RevokeRequest{Token: person.GetAccessToken()}); err != nil {
			return r, fmt.Errorf("round %d: revoke: %w", round, err)
		}
		roundDelays, err := awaitRefusals(ctx, verifiers, cursors, person.GetAccessToken(), revoked)
		if err != nil {
			return r, fmt.Errorf("round %d: %w", round, err)
		}
		delays = append(delays, roundDelays...)
	}
	elapsed := time.Since(started)
	sort.Slice(delays, func(i, j int) bool { return delays[i] < delays[j] })
	r.requests = len(delays)
	r.rate = float64(fanoutRounds) / elapsed.Seconds()
	r.p50, r.p90, r.p99 = percentile(delays, 0.50), percentile(delays, 0.90), percentile(delays, 0.99)
	fmt.Fprintf(os.Stderr, "%-42s %-5s %d refusals  p50 %v  p99 %v  max %v\n", r.scenario, r.transport, len(delays), r.p50, r.p99, delays[len(delays)-1])
	return r, nil
}

// awaitRefusals waits, for each verifier, until its set moved past cursor
// and it refuses token, and returns each one's delay since revoked. A
// verifier still taking the token after 30 s fails the run.
func awaitRefusals(ctx context.Context, verifiers []*verifier.Verifier, cursors []string, token string, revoked time.Time) ([]time.Duration, error) {
	delays := make([]time.Duration, len(verifiers))
	errs := make([]error, len(verifiers))
	var wg sync.WaitGroup
	for i, v := range verifiers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			deadline := revoked.Add(30 * time.Second)
			for {
				// The cursor moves with each event the verifier applies: a
				// cheap look, and a check of the token only when it moved.
				if cursor := v.RevocationStatus().Cursor; cursor != cursors[i] {
					cursors[i] = cursor
					if _, err := v.Verify(ctx, token); errors.Is(err, verifier.ErrRevoked) {
						delays[i] = time.Since(revoked)
						return
					}
				}
				if time.Now().After(deadline) {
					errs[i] = fmt.Errorf("verifier %d still takes the revoked token after 30s (%+v)", i, v.RevocationStatus())
					return
				}
				time.Sleep(fanoutPoll)
			}
		}()
	}
	wg.Wait()
	return delays, errors.Join(errs...)
}

// discoverIssuer reads the issuer from the server's discovery document.
func discoverIssuer(ctx context.Context, base string) (string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/.well-known/openid-configuration", nil)
	if err != nil {
		return "", err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", fmt.Errorf("discovery: %w", err)
	}
	defer resp.Body.Close()
	var doc struct {
		Issuer string `json:"issuer"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&doc); err != nil || doc.Issuer == "" {
		return "", fmt.Errorf("discovery: no issuer (%v)", err)
	}
	return doc.Issuer, nil
}

// percentile is the q quantile of sorted delays.
func percentile(sorted []time.Duration, q float64) time.Duration {
	if len(sorted) == 0 {
		return 0
	}
	i := int(q*float64(len(sorted))+0.5) - 1
	return sorted[max(0, min(i, len(sorted)-1))]
}
