package revocationsse

import (
	"context"
	"encoding/json"
	"net/http"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/gateway"
	"github.com/chit-auth/chit/internal/grpcapi"
	"github.com/chit-auth/chit/internal/possession"
	"github.com/chit-auth/chit/internal/revocationfeed"
)

// Path is where the events are served.
const Path = "/v1/revocations/events"

// writeTimeout bounds each write to the stream: a verifier that stops
// reading is dropped instead of holding the stream open.
const writeTimeout = 30 * time.Second

// Dependencies are what the handler calls.
type Dependencies struct {
	Feed *revocationfeed.Feed
	// Authorize is grpcapi.Gatekeeper.Authorize: the access rule of
	// RevocationFeedService.WatchRevocations applies here too.
	Authorize func(ctx context.Context, fullMethod string) (context.Context, error)
	// MaxAge ends a stream once it is this old (the gRPC port's maximum
	// connection age), so that verifiers spread over the replicas there are
	// now; zero keeps it open.
	MaxAge time.Duration
}

// Handler returns the GET handler of Path.
func Handler(deps Dependencies) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			// As the gateway answers a known path with another method.
			w.Header().Set("Allow", "GET, HEAD")
			gateway.WriteError(w, r, status.Errorf(codes.Unimplemented, "method %s is not allowed on %s", r.Method, Path), http.StatusMethodNotAllowed)
			return
		}
		// The access rule reads the call's credentials as gRPC metadata:
		// the token and, for a DPoP-bound one, its proof (checked for this
		// request's method and path, which possession.Certificates'
		// middleware records with the client certificate of a trusted
		// proxy). Without them a sender-constrained watcher is refused.
		incoming := metadata.MD{"authorization": r.Header.Values("Authorization")}
		if proofs := r.Header.Values(possession.ProofHeader); len(proofs) > 0 {
			incoming[possession.ProofMetadata] = proofs
		}
		ctx := metadata.NewIncomingContext(r.Context(), incoming)
		ctx, err := deps.Authorize(ctx, authv1.RevocationFeedService_WatchRevocations_FullMethodName)
		if err != nil {
			writeError(w, r, err)
			return
		}
		caller, _ := grpcapi.CallerFrom(ctx)
		release, err := deps.Feed.Admit(caller.Subject)
		if err != nil {
			writeError(w, r, err)
			return
		}
		defer release()
		// An EventSource that reconnects sends the last id it saw, and
		// keeps the URL it was opened with: the header is the later news.
		cursor := r.Header.Get("Last-Event-ID")
		if cursor == "" {
			cursor = r.URL.Query().Get("cursor")
		}
		after, err := deps.Feed.Start(ctx, cursor)
		if err != nil {
			writeError(w, r, err)
			return
		}
		if deps.MaxAge > 0 {
			var cancel context.CancelFunc
			ctx, cancel = context.WithTimeout(ctx, deps.MaxAge)
			defer cancel()
		}
		controller := http.NewResponseController(w)
		w.Header().Set("Content-Type", "text/event-stream")
		w.Header().Set("Cache-Control", "no-store")
		// Proxies (nginx) must pass each event on as it is written.
		w.Header().Set("X-Accel-Buffering", "no")
		w.WriteHeader(http.StatusOK)
		_ = deps.Feed.Watch(ctx, after, func(message revocationfeed.Message) error {
			// The server's WriteTimeout would end the stream; each write
			// gets its own deadline instead.
			_ = controller.SetWriteDeadline(time.Now().Add(writeTimeout))
			if _, err := w.Write(Format(message)); err != nil {
				return err
			}
			return controller.Flush()
		})
	})
}

// writeError answers a refusal before the stream starts: as the REST API's
// errors, but 410 Gone for a cursor behind deleted events, which tells the
// verifier to subscribe again from the start.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	httpStatus := 0
	if chiterr.ReasonOf(err) == chiterr.ReasonCursorExpired {
		httpStatus = http.StatusGone
	}
	gateway.WriteError(w, r, grpcapi.ToStatus(err), httpStatus)
}

// eventData is the JSON of an event's data line; empty fields are left out.
type eventData struct {
	Cursor     string `json:"cursor"`
	Kind       string `json:"kind"`
	FamilyID   string `json:"familyId,omitempty"`
	Subject    string `json:"subject,omitempty"`
	RevokedAt  string `json:"revokedAt,omitempty"`
	ExpiresAt  string `json:"expiresAt,omitempty"`
	KeyID      string `json:"keyId,omitempty"`
	ProviderID string `json:"providerId,omitempty"`
}

type heartbeatData struct {
	Cursor string `json:"cursor"`
	Time   string `json:"time"`
}

// Format is message as one Server-Sent Event: an event carries its cursor
// as its id (which an EventSource sends back as Last-Event-ID), a
// heartbeat none (resuming from the last event's id loses nothing).
func Format(message revocationfeed.Message) []byte {
	if event := message.Event; event != nil {
		data, _ := json.Marshal(eventData{
			Cursor: event.Cursor.String(), Kind: event.Kind, FamilyID: event.FamilyID, Subject: event.Subject,
			RevokedAt: timestamp(event.RevokedAt), ExpiresAt: timestamp(event.ExpiresAt), KeyID: event.KeyID, ProviderID: event.ProviderID,
		})
		return []byte("id: " + event.Cursor.String() + "\nevent: revocation\ndata: " + string(data) + "\n\n")
	}
	data, _ := json.Marshal(heartbeatData{Cursor: message.Heartbeat.Cursor.String(), Time: timestamp(message.Heartbeat.Time)})
	return []byte("event: heartbeat\ndata: " + string(data) + "\n\n")
}

func timestamp(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
