package grpcapi

import (
	"context"
	"slices"

	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/paging"
	"github.com/chit-auth/chit/internal/ssf"
	"github.com/chit-auth/chit/internal/storage"
)

const securityEventStreamsList = "ssf-streams"

var errNoSecurityEvents = chiterr.New(chiterr.Unimplemented, "Shared Signals streams are not enabled on this server")

// The delivery methods as the Admin API names them; the store keeps SSF's
// URNs (storage.DeliveryPush, DeliveryPoll).
const (
	deliveryPush = "push"
	deliveryPoll = "poll"
)

func (s *AdminServer) CreateSecurityEventStream(ctx context.Context, req *adminv1.CreateSecurityEventStreamRequest) (*adminv1.CreateSecurityEventStreamResponse, error) {
	if s.securityEvents == nil {
		return nil, errNoSecurityEvents
	}
	// The Authorization value goes to the core and from there, sealed, to
	// the store; it is in no answer and no audit line (whose target is id).
	stream, err := s.securityEvents.CreateStream(ctx, ssf.StreamSpec{
		ID: req.GetId(), Description: req.GetDescription(), Delivery: req.GetDelivery(),
		EndpointURL: req.GetEndpointUrl(), Authorization: req.GetAuthorization(), Receiver: req.GetReceiver(),
		Audience: req.GetAudience(), EventTypes: slices.Clone(req.GetEventTypes()),
	})
	if err != nil {
		return nil, err
	}
	return &adminv1.CreateSecurityEventStreamResponse{Stream: securityEventStreamMessage(stream)}, nil
}

func (s *AdminServer) GetSecurityEventStream(ctx context.Context, req *adminv1.GetSecurityEventStreamRequest) (*adminv1.GetSecurityEventStreamResponse, error) {
	if s.securityEvents == nil {
		return nil, errNoSecurityEvents
	}
	stream, err := s.securityEvents.GetStream(ctx, req.GetId())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetSecurityEventStreamResponse{Stream: securityEventStreamMessage(stream)}, nil
}

func (s *AdminServer) ListSecurityEventStreams(ctx context.Context, req *adminv1.ListSecurityEventStreamsRequest) (*adminv1.ListSecurityEventStreamsResponse, error) {
	if s.securityEvents == nil {
		return nil, errNoSecurityEvents
	}
	streams, next, err := paging.List(ctx, s.pages, securityEventStreamsList, paging.Request{Size: req.GetPageSize(), Token: req.GetPageToken()},
		func(page storage.Page) ([]storage.SecurityEventStream, error) {
			return s.securityEvents.ListStreams(ctx, page)
		},
		func(stream storage.SecurityEventStream) string { return stream.ID }, securityEventStreamMessage)
	if err != nil {
		return nil, err
	}
	return &adminv1.ListSecurityEventStreamsResponse{Streams: streams, NextPageToken: next}, nil
}

func (s *AdminServer) DeleteSecurityEventStream(ctx context.Context, req *adminv1.DeleteSecurityEventStreamRequest) (*adminv1.DeleteSecurityEventStreamResponse, error) {
	if s.securityEvents == nil {
		return nil, errNoSecurityEvents
	}
	if err := s.securityEvents.DeleteStream(ctx, req.GetId()); err != nil {
		return nil, err
	}
	return &adminv1.DeleteSecurityEventStreamResponse{}, nil
}

func (s *AdminServer) SetSecurityEventStreamStatus(ctx context.Context, req *adminv1.SetSecurityEventStreamStatusRequest) (*adminv1.SetSecurityEventStreamStatusResponse, error) {
	if s.securityEvents == nil {
		return nil, errNoSecurityEvents
	}
	if err := s.securityEvents.SetStreamStatus(ctx, req.GetId(), req.GetStatus()); err != nil {
		return nil, err
	}
	stream, err := s.securityEvents.GetStream(afterWrite(ctx), req.GetId())
	if err != nil {
		return nil, err
	}
	return &adminv1.SetSecurityEventStreamStatusResponse{Stream: securityEventStreamMessage(stream)}, nil
}

func (s *AdminServer) VerifySecurityEventStream(ctx context.Context, req *adminv1.VerifySecurityEventStreamRequest) (*adminv1.VerifySecurityEventStreamResponse, error) {
	if s.securityEvents == nil {
		return nil, errNoSecurityEvents
	}
	if err := s.securityEvents.VerifyStream(ctx, req.GetId(), req.GetState()); err != nil {
		return nil, err
	}
	return &adminv1.VerifySecurityEventStreamResponse{}, nil
}

// securityEventStreamMessage is a stream as the Admin API shows it: its
// Authorization value only as whether it has one (the core withholds the
// value itself).
func securityEventStreamMessage(stream storage.SecurityEventStream) *adminv1.SecurityEventStream {
	message := &adminv1.SecurityEventStream{
		Id: stream.ID, Description: stream.Description, Delivery: deliveryName(stream.Delivery),
		EndpointUrl: stream.EndpointURL, Receiver: stream.Receiver, Audience: stream.Audience,
		EventTypes: slices.Clone(stream.EventTypes), Status: stream.Status, Position: stream.Position.String(),
		LastError: stream.LastError, HasAuthorization: stream.HasAuthorization,
		CreateTime: timestamppb.New(stream.CreatedAt), UpdateTime: timestamppb.New(stream.UpdatedAt),
	}
	if !stream.DeliveredAt.IsZero() {
		message.DeliveryTime = timestamppb.New(stream.DeliveredAt)
	}
	return message
}

// deliveryName is the Admin API's name of a stored delivery method.
func deliveryName(method string) string {
	switch method {
	case storage.DeliveryPush:
		return deliveryPush
	case storage.DeliveryPoll:
		return deliveryPoll
	}
	return method
}
