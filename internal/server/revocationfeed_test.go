package server_test

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/revocationfeed"
	"github.com/chit-auth/chit/internal/server/servertest"
	"github.com/chit-auth/chit/internal/storage"
)

// watcherToken creates a service account whose tokens carry the feed's
// scope and returns one.
func watcherToken(t *testing.T, e *servertest.Env) string {
	t.Helper()
	secret, err := e.Directory().CreateServiceAccount(t.Context(), "verifier",
		storage.Grants{AllowedScopes: []string{revocationfeed.Scope}, DefaultScopes: []string{revocationfeed.Scope}})
	if err != nil {
		t.Fatal(err)
	}
	resp, code := servertest.Transports(e)["gRPC"].Token(t, servertest.ClientRequest("verifier", secret))
	servertest.WantCode(t, "the verifier's token", code, codes.OK)
	return resp.GetAccessToken()
}

// feedMessage is one message of either transport, as the test reads it.
type feedMessage struct {
	heartbeat bool
	cursor    string
	kind      string
	subject   string
	familyID  string
	keyID     string
	provider  string
	expiresAt time.Time
}

// subscription is a stream on either transport.
type subscription interface {
	next(t *testing.T) feedMessage
}

type grpcSubscription struct {
	stream authv1.RevocationFeedService_WatchRevocationsClient
}

func watchGRPC(t *testing.T, e *servertest.Env, bearer, cursor string) (*grpcSubscription, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	if bearer != "" {
		ctx = metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+bearer)
	}
	stream, err := authv1.NewRevocationFeedServiceClient(e.Conn).WatchRevocations(ctx, &authv1.WatchRevocationsRequest{Cursor: cursor})
	if err != nil {
		return nil, err
	}
	// A refusal arrives as the stream's status, before any message.
	first, err := stream.Recv()
	if err != nil {
		return nil, err
	}
	return &grpcSubscription{stream: &prefetched{RevocationFeedService_WatchRevocationsClient: stream, first: first}}, nil
}

type prefetched struct {
	authv1.RevocationFeedService_WatchRevocationsClient
	first *authv1.WatchRevocationsResponse
}

func (p *prefetched) Recv() (*authv1.WatchRevocationsResponse, error) {
	if first := p.first; first != nil {
		p.first = nil
		return first, nil
	}
	return p.RevocationFeedService_WatchRevocationsClient.Recv()
}

func (s *grpcSubscription) next(t *testing.T) feedMessage {
	t.Helper()
	message, err := s.stream.Recv()
	if err != nil {
		t.Fatalf("WatchRevocations: %v", err)
	}
	if heartbeat := message.GetHeartbeat(); heartbeat != nil {
		if heartbeat.GetTime() == nil {
			t.Fatal("a heartbeat without the server's time")
		}
		return feedMessage{heartbeat: true, cursor: heartbeat.GetCursor()}
	}
	event := message.GetEvent()
	return feedMessage{cursor: event.GetCursor(), kind: event.GetKind(), subject: event.GetSubject(), familyID: event.GetFamilyId(),
		keyID: event.GetKeyId(), provider: event.GetProviderId(), expiresAt: event.GetExpiresAt().AsTime()}
}

type sseSubscription struct {
	body *bufio.Reader
}

// sseError is a refusal of the events endpoint: its status and JSON body.
type sseError struct {
	status int
	body   map[string]any
}

func (e *sseError) Error() string { return http.StatusText(e.status) }

func watchSSE(t *testing.T, e *servertest.Env, bearer, cursor string, header map[string]string) (*sseSubscription, error) {
	t.Helper()
	ctx, cancel := context.WithCancel(t.Context())
	target := e.HTTPBase() + "/v1/revocations/events"
	if cursor != "" {
		target += "?cursor=" + url.QueryEscape(cursor)
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, target, nil)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for name, value := range header {
		req.Header.Set(name, value)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		cancel()
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); resp.Body.Close() })
	if resp.StatusCode != http.StatusOK {
		refusal := &sseError{status: resp.StatusCode}
		if err := json.NewDecoder(resp.Body).Decode(&refusal.body); err != nil {
			t.Fatalf("the refusal's body is not JSON: %v", err)
		}
		return nil, refusal
	}
	if got := resp.Header.Get("Content-Type"); got != "text/event-stream" {
		t.Fatalf("Content-Type %q", got)
	}
	return &sseSubscription{body: bufio.NewReader(resp.Body)}, nil
}

func (s *sseSubscription) next(t *testing.T) feedMessage {
	t.Helper()
	fields := map[string]string{}
	for {
		line, err := s.body.ReadString('\n')
		if err != nil {
			t.Fatalf("reading the events: %v", err)
		}
		line = strings.TrimSuffix(line, "\n")
		if line == "" {
			break
		}
		name, value, _ := strings.Cut(line, ": ")
		fields[name] = value
	}
	var data map[string]string
	if err := json.Unmarshal([]byte(fields["data"]), &data); err != nil {
		t.Fatalf("data %q: %v", fields["data"], err)
	}
	switch fields["event"] {
	case "heartbeat":
		if _, err := time.Parse(time.RFC3339Nano, data["time"]); err != nil || fields["id"] != "" {
			t.Fatalf("heartbeat %v", fields)
		}
		return feedMessage{heartbeat: true, cursor: data["cursor"]}
	case "revocation":
		if fields["id"] != data["cursor"] {
			t.Fatalf("event id %q, cursor %q", fields["id"], data["cursor"])
		}
		for name := range data {
			if data[name] == "" {
				t.Errorf("empty field %s sent", name)
			}
		}
		expiresAt, err := time.Parse(time.RFC3339Nano, data["expiresAt"])
		if err != nil {
			t.Fatalf("expiresAt %q: %v", data["expiresAt"], err)
		}
		if _, err := time.Parse(time.RFC3339Nano, data["revokedAt"]); err != nil {
			t.Fatalf("revokedAt %q: %v", data["revokedAt"], err)
		}
		return feedMessage{cursor: data["cursor"], kind: data["kind"], subject: data["subject"], familyID: data["familyId"],
			keyID: data["keyId"], provider: data["providerId"], expiresAt: expiresAt}
	}
	t.Fatalf("unknown event %v", fields)
	return feedMessage{}
}

// watchers open a subscription on each transport.
var watchers = map[string]func(t *testing.T, e *servertest.Env, bearer, cursor string) (subscription, error){
	"gRPC": func(t *testing.T, e *servertest.Env, bearer, cursor string) (subscription, error) {
		s, err := watchGRPC(t, e, bearer, cursor)
		if err != nil {
			return nil, err
		}
		return s, nil
	},
	"SSE": func(t *testing.T, e *servertest.Env, bearer, cursor string) (subscription, error) {
		s, err := watchSSE(t, e, bearer, cursor, nil)
		if err != nil {
			return nil, err
		}
		return s, nil
	},
}

// nextEvent skips heartbeats.
func nextEvent(t *testing.T, s subscription) feedMessage {
	t.Helper()
	for {
		if message := s.next(t); !message.heartbeat {
			return message
		}
	}
}

func mustWatch(t *testing.T, watch func(*testing.T, *servertest.Env, string, string) (subscription, error), e *servertest.Env, bearer, cursor string) subscription {
	t.Helper()
	s, err := watch(t, e, bearer, cursor)
	if err != nil {
		t.Fatalf("watch from %q: %v", cursor, err)
	}
	return s
}

// A revocation made on one replica reaches a verifier watching another,
// in order; a stream cut and resumed from its last cursor loses and
// repeats nothing; the removal of a provider's key is an event too.
func TestRevocationFeedDeliversAcrossReplicasAndResumes(t *testing.T) {
	for _, backend := range servertest.Backends {
		for transport, watch := range watchers {
			t.Run(backend+"/"+transport, func(t *testing.T) {
				primary := servertest.StartOn(t, backend)
				watcher := primary
				if backend == servertest.Postgres {
					watcher = primary.StartReplica(t)
				}
				token := watcherToken(t, primary)
				ctx := t.Context()
				first := mustWatch(t, watch, watcher, token, "")
				if message := first.next(t); !message.heartbeat {
					t.Fatalf("first message %+v, want the heartbeat that ends the (empty) backlog", message)
				}
				revokedAt := primary.Clock.Now()
				if _, err := primary.Store.RevokeSubject(ctx, servertest.UserName, revokedAt); err != nil {
					t.Fatal(err)
				}
				got := nextEvent(t, first)
				if got.kind != storage.RevocationSubject || got.subject != servertest.UserName {
					t.Fatalf("event %+v, want alice's revocation", got)
				}
				// Retention is the longest token lifetime and the skew (15m, 30s).
				if want := revokedAt.Add(15*time.Minute + 30*time.Second); !got.expiresAt.Equal(want.Truncate(time.Microsecond)) && !got.expiresAt.Equal(want) {
					t.Errorf("expiresAt %v, want %v", got.expiresAt, want)
				}
				if _, err := primary.Store.RevokeRefreshFamily(ctx, "family-a", revokedAt); err != nil {
					t.Fatal(err)
				}
				got = nextEvent(t, first)
				if got.kind != storage.RevocationFamily || got.familyID != "family-a" {
					t.Fatalf("event %+v, want family-a", got)
				}
				resumeFrom := got.cursor

				// Cut: events committed while nobody watches arrive on resuming
				// from the last cursor received, the earlier ones not again.
				if _, err := primary.Store.RevokeRefreshFamily(ctx, "family-b", revokedAt); err != nil {
					t.Fatal(err)
				}
				if err := primary.Store.CreateProviders(ctx, []storage.Provider{{ID: "hpc", ClaimTokenHash: []byte("claim"), ClaimExpiresAt: revokedAt.Add(time.Hour), CreatedAt: revokedAt}}); err != nil {
					t.Fatal(err)
				}
				if err := primary.Store.ClaimProviders(ctx, []storage.ProviderCredentials{{ProviderID: "hpc", KeyID: "hpc-key", PublicKey: []byte("k"),
					PrivateKey: []byte("p"), RefreshTokenHash: []byte("r")}}, revokedAt); err != nil {
					t.Fatal(err)
				}
				if err := primary.Store.DeleteProvider(ctx, "hpc", revokedAt); err != nil {
					t.Fatal(err)
				}
				resumed := mustWatch(t, watch, watcher, token, resumeFrom)
				if got := nextEvent(t, resumed); got.kind != storage.RevocationFamily || got.familyID != "family-b" {
					t.Fatalf("first event after resuming %+v, want family-b (family-a was received before the cut)", got)
				}
				got = resumed.next(t)
				if got.kind != storage.RevocationProviderKeyRemoved || got.provider != "hpc" || got.keyID != "hpc-key" {
					t.Fatalf("event %+v, want hpc's key removed", got)
				}
				// The backlog ends with a heartbeat at the head.
				if heartbeat := resumed.next(t); !heartbeat.heartbeat || heartbeat.cursor != got.cursor {
					t.Fatalf("after the backlog %+v, want a heartbeat at %s", heartbeat, got.cursor)
				}
			})
		}
	}
}

// Who may watch, and which cursors are refused, on both transports.
func TestRevocationFeedRefusals(t *testing.T) {
	e := servertest.Start(t)
	token := watcherToken(t, e)
	admins := servertest.NewAdminCallers(t, e, servertest.Transports(e)["gRPC"])
	ctx := t.Context()
	for _, family := range []string{"one", "two"} {
		if _, err := e.Store.RevokeRefreshFamily(ctx, family, e.Clock.Now()); err != nil {
			t.Fatal(err)
		}
	}
	s := mustWatch(t, watchers["gRPC"], e, token, "")
	oldest := nextEvent(t, s).cursor
	// The clean-up forgets "one" and "two"; "three" stays.
	if _, err := e.Store.DeleteExpiredRevocations(ctx, e.Clock.Now().Add(time.Second)); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Store.RevokeRefreshFamily(ctx, "three", e.Clock.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}

	cases := []struct {
		name, bearer, cursor string
		code                 codes.Code
		httpStatus           int
		reason               string
	}{
		{"no token", "", "", codes.Unauthenticated, http.StatusUnauthorized, ""},
		{"a bad token", "not-a-token", "", codes.Unauthenticated, http.StatusUnauthorized, ""},
		{"a person", admins.User, "", codes.PermissionDenied, http.StatusForbidden, ""},
		{"a service without the scope", admins.Service, "", codes.PermissionDenied, http.StatusForbidden, ""},
		{"a malformed cursor", token, "not-a-cursor", codes.InvalidArgument, http.StatusBadRequest, ""},
		{"a forged cursor", token, "1-0-999999", codes.InvalidArgument, http.StatusBadRequest, ""},
		{"an expired cursor", token, oldest, codes.FailedPrecondition, http.StatusGone, "CURSOR_EXPIRED"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			_, err := watchGRPC(t, e, tc.bearer, tc.cursor)
			if status.Code(err) != tc.code {
				t.Fatalf("gRPC: got %v, want %v", err, tc.code)
			}
			if tc.code == codes.PermissionDenied && !strings.Contains(status.Convert(err).Message(), revocationfeed.Scope) {
				t.Errorf("the refusal %q does not name the scope", status.Convert(err).Message())
			}
			if tc.reason != "" && reasonOf(err) != tc.reason {
				t.Errorf("gRPC reason %q, want %q", reasonOf(err), tc.reason)
			}
			_, err = watchSSE(t, e, tc.bearer, tc.cursor, nil)
			var refusal *sseError
			if !errors.As(err, &refusal) || refusal.status != tc.httpStatus {
				t.Fatalf("SSE: got %v, want HTTP %d", err, tc.httpStatus)
			}
			if code, _ := refusal.body["code"].(float64); codes.Code(code) != tc.code {
				t.Errorf("SSE body %v, want code %v", refusal.body, tc.code)
			}
			// Last-Event-ID is read as the cursor too.
			if tc.cursor != "" {
				_, err = watchSSE(t, e, tc.bearer, "", map[string]string{"Last-Event-ID": tc.cursor})
				if !errors.As(err, &refusal) || refusal.status != tc.httpStatus {
					t.Fatalf("SSE with Last-Event-ID: got %v, want HTTP %d", err, tc.httpStatus)
				}
			}
		})
	}
	// Without a cursor a verifier starts from the oldest retained event;
	// an admin may watch.
	for name, watch := range watchers {
		if got := nextEvent(t, mustWatch(t, watch, e, admins.Admin, "")); got.familyID != "three" {
			t.Errorf("%s: first event without a cursor %+v, want three", name, got)
		}
	}
}

func reasonOf(err error) string {
	for _, detail := range status.Convert(err).Details() {
		if info, ok := detail.(*errdetails.ErrorInfo); ok {
			return info.GetReason()
		}
	}
	return ""
}
