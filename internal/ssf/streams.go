package ssf

import (
	"context"
	"encoding/base64"
	"errors"
	"slices"
	"strings"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

// Bounds of a stream's fields.
const (
	MaxDescription   = 256
	MaxAudience      = 255
	MaxAuthorization = 4096
	MaxState         = 256
)

// StreamSpec is a stream as an admin registers it.
type StreamSpec struct {
	ID, Description string
	// Delivery is "push" or "poll" (or the URNs storage.DeliveryPush,
	// storage.DeliveryPoll).
	Delivery string
	// EndpointURL and Authorization are a push stream's: where SETs are
	// POSTed, and the Authorization header sent with them ("" for none).
	EndpointURL, Authorization string
	// Receiver is a poll stream's: the client id of the service account
	// whose token (with the scope chit:ssf) polls it.
	Receiver string
	// Audience is the SETs' aud: the receiver's identifier.
	Audience string
	// EventTypes are the CAEP event type URIs delivered; empty is all.
	EventTypes []string
}

// deliveryMethod is spec's delivery as a URN.
func deliveryMethod(delivery string) (string, error) {
	switch delivery {
	case "push", storage.DeliveryPush:
		return storage.DeliveryPush, nil
	case "poll", storage.DeliveryPoll:
		return storage.DeliveryPoll, nil
	case "":
		return "", chiterr.New(chiterr.InvalidArgument, "delivery is required: push (%s) or poll (%s)", storage.DeliveryPush, storage.DeliveryPoll)
	}
	return "", chiterr.New(chiterr.InvalidArgument, "delivery %s is not push (%s) or poll (%s)", chiterr.Quote(delivery), storage.DeliveryPush, storage.DeliveryPoll)
}

// validateSpec checks spec, naming the field as the Admin API spells it,
// and returns the stream it describes (without its position and times).
func validateSpec(spec StreamSpec) (storage.SecurityEventStream, error) {
	stream := storage.SecurityEventStream{ID: spec.ID, Description: spec.Description, EndpointURL: spec.EndpointURL,
		Authorization: spec.Authorization, Receiver: spec.Receiver, Audience: spec.Audience, Status: storage.StreamEnabled}
	if spec.ID == "" {
		return stream, chiterr.New(chiterr.InvalidArgument, "id is required")
	}
	if accounts.ValidateName("stream", spec.ID) != nil {
		return stream, chiterr.New(chiterr.InvalidArgument, "id must be 1 to 64 letters, digits, '.', '_', '@' or '-', starting with a letter or digit")
	}
	if len(spec.Description) > MaxDescription {
		return stream, chiterr.New(chiterr.InvalidArgument, "description is longer than %d characters", MaxDescription)
	}
	var err error
	if stream.Delivery, err = deliveryMethod(spec.Delivery); err != nil {
		return stream, err
	}
	switch stream.Delivery {
	case storage.DeliveryPush:
		if spec.EndpointURL == "" {
			return stream, chiterr.New(chiterr.InvalidArgument, "endpoint_url is required for push delivery")
		}
		if err := authorize.ValidateReceiverURI("endpoint_url", spec.EndpointURL); err != nil {
			return stream, err
		}
		if spec.Receiver != "" {
			return stream, chiterr.New(chiterr.InvalidArgument, "receiver is for poll delivery; a push stream's receiver is its endpoint_url")
		}
		if len(spec.Authorization) > MaxAuthorization {
			return stream, chiterr.New(chiterr.InvalidArgument, "authorization is longer than %d characters", MaxAuthorization)
		}
		// It becomes a header value: a line break would add headers.
		if strings.ContainsFunc(spec.Authorization, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return stream, chiterr.New(chiterr.InvalidArgument, "authorization must be one line of printable characters (an HTTP header value)")
		}
	case storage.DeliveryPoll:
		if spec.Receiver == "" {
			return stream, chiterr.New(chiterr.InvalidArgument, "receiver is required for poll delivery: the service account that polls")
		}
		if spec.EndpointURL != "" || spec.Authorization != "" {
			return stream, chiterr.New(chiterr.InvalidArgument, "endpoint_url and authorization are for push delivery; a poll receiver authenticates with its own token")
		}
	}
	if spec.Audience == "" {
		return stream, chiterr.New(chiterr.InvalidArgument, "audience is required: the receiver's identifier, the SETs' aud")
	}
	if len(spec.Audience) > MaxAudience {
		return stream, chiterr.New(chiterr.InvalidArgument, "audience is longer than %d characters", MaxAudience)
	}
	for i, eventType := range spec.EventTypes {
		if !slices.Contains(EventTypes, eventType) {
			return stream, chiterr.New(chiterr.InvalidArgument, "event_types: %s is not one Chit sends (%s)", chiterr.Quote(eventType), strings.Join(EventTypes, ", "))
		}
		if slices.Contains(spec.EventTypes[:i], eventType) {
			return stream, chiterr.New(chiterr.InvalidArgument, "event_types: %s is listed twice", eventType)
		}
	}
	stream.EventTypes = slices.Clone(spec.EventTypes)
	return stream, nil
}

// CreateStream registers a stream, positioned at the feed's head: its
// receiver hears of the revocations made from then on.
func (s *Service) CreateStream(ctx context.Context, spec StreamSpec) (storage.SecurityEventStream, error) {
	stream, err := validateSpec(spec)
	if err != nil {
		return storage.SecurityEventStream{}, err
	}
	if stream.Delivery == storage.DeliveryPoll {
		if _, err := s.Accounts.GetServiceAccount(ctx, stream.Receiver); err != nil {
			if chiterr.KindOf(err) == chiterr.NotFound {
				return storage.SecurityEventStream{}, chiterr.New(chiterr.NotFound, "receiver: service %q does not exist", stream.Receiver)
			}
			return storage.SecurityEventStream{}, err
		}
	}
	if stream.Authorization, err = s.sealAuthorization(stream.Authorization); err != nil {
		return storage.SecurityEventStream{}, err
	}
	bounds, err := s.Store.RevocationBounds(ctx)
	if err != nil {
		return storage.SecurityEventStream{}, err
	}
	now := s.Now()
	stream.Position, stream.CreatedAt, stream.UpdatedAt = bounds.Head, now, now
	switch err := s.Store.CreateSecurityEventStream(ctx, stream); {
	case errors.Is(err, storage.ErrAlreadyExists):
		return storage.SecurityEventStream{}, chiterr.New(chiterr.AlreadyExists, "stream %q exists", stream.ID)
	case errors.Is(err, storage.ErrNotFound):
		// The service account was deleted meanwhile.
		return storage.SecurityEventStream{}, chiterr.New(chiterr.NotFound, "receiver: service %q does not exist", stream.Receiver)
	case err != nil:
		return storage.SecurityEventStream{}, err
	}
	s.notifyChanged()
	return withoutSecret(stream), nil
}

// GetStream returns stream id, without its Authorization.
func (s *Service) GetStream(ctx context.Context, id string) (storage.SecurityEventStream, error) {
	stream, err := s.getStream(ctx, id)
	return withoutSecret(stream), err
}

func (s *Service) getStream(ctx context.Context, id string) (storage.SecurityEventStream, error) {
	stream, err := s.Store.GetSecurityEventStream(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return storage.SecurityEventStream{}, notFound(id)
	}
	return stream, err
}

func notFound(id string) error {
	return chiterr.New(chiterr.NotFound, "stream %s does not exist", chiterr.Quote(id))
}

// ListStreams returns the streams of page, by id, without their
// Authorization.
func (s *Service) ListStreams(ctx context.Context, page storage.Page) ([]storage.SecurityEventStream, error) {
	streams, err := s.Store.ListSecurityEventStreams(ctx, page)
	if err != nil {
		return nil, err
	}
	for i := range streams {
		streams[i] = withoutSecret(streams[i])
	}
	return streams, nil
}

// DeleteStream removes stream id; its receiver hears nothing more.
func (s *Service) DeleteStream(ctx context.Context, id string) error {
	if err := s.Store.DeleteSecurityEventStream(ctx, id); errors.Is(err, storage.ErrNotFound) {
		return notFound(id)
	} else if err != nil {
		return err
	}
	s.forgetVerification(id)
	return nil
}

// SetStreamStatus enables or pauses stream id (storage.StreamEnabled,
// StreamPaused). A paused stream keeps its position: enabled again, it
// delivers what happened meanwhile.
func (s *Service) SetStreamStatus(ctx context.Context, id, status string) error {
	if status != storage.StreamEnabled && status != storage.StreamPaused {
		return chiterr.New(chiterr.InvalidArgument, "status %s is not %s or %s", chiterr.Quote(status), storage.StreamEnabled, storage.StreamPaused)
	}
	if err := s.Store.SetSecurityEventStreamStatus(ctx, id, status, s.Now()); errors.Is(err, storage.ErrNotFound) {
		return notFound(id)
	} else if err != nil {
		return err
	}
	s.notifyChanged()
	return nil
}

// withoutSecret blanks what the Admin API never returns, keeping whether
// there was one (the Admin API's has_authorization).
func withoutSecret(stream storage.SecurityEventStream) storage.SecurityEventStream {
	stream.HasAuthorization = stream.Authorization != ""
	stream.Authorization = ""
	return stream
}

// sealedAuthorization prefixes an Authorization value sealed under the
// key-encryption key (base64 of keys.Sealer's output); no header value an
// admin gives begins so.
const sealedAuthorization = "chit-sealed:"

func (s *Service) sealAuthorization(value string) (string, error) {
	if value == "" || !s.Sealer.Encrypts() {
		return value, nil
	}
	sealed, err := s.Sealer.Seal([]byte(value))
	if err != nil {
		return "", err
	}
	return sealedAuthorization + base64.RawStdEncoding.EncodeToString(sealed), nil
}

// openAuthorization is a stored Authorization value in the clear, for the
// push.
func (s *Service) openAuthorization(stored string) (string, error) {
	rest, sealed := strings.CutPrefix(stored, sealedAuthorization)
	if !sealed {
		return stored, nil
	}
	raw, err := base64.RawStdEncoding.DecodeString(rest)
	if err != nil {
		return "", errors.New("the stored authorization is not a sealed value")
	}
	plain, err := s.Sealer.Open(raw)
	if err != nil {
		return "", err
	}
	return string(plain), nil
}
