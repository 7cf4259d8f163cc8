package grpcapi

import (
	"google.golang.org/protobuf/types/known/timestamppb"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/revocationfeed"
)

// RevocationFeedServiceServer serves chit.auth.v1.RevocationFeedService over the feed.
type RevocationFeedServiceServer struct {
	authv1.UnimplementedRevocationFeedServiceServer
	feed *revocationfeed.Feed
}

var _ authv1.RevocationFeedServiceServer = (*RevocationFeedServiceServer)(nil)

// NewRevocationFeedServer returns the RevocationFeedService handler over deps.Revocations.
func NewRevocationFeedServer(deps Dependencies) *RevocationFeedServiceServer {
	return &RevocationFeedServiceServer{feed: deps.Revocations}
}

func (s *RevocationFeedServiceServer) WatchRevocations(req *authv1.WatchRevocationsRequest, stream authv1.RevocationFeedService_WatchRevocationsServer) error {
	ctx := stream.Context()
	caller, _ := CallerFrom(ctx)
	release, err := s.feed.Admit(caller.Subject)
	if err != nil {
		return err
	}
	defer release()
	after, err := s.feed.Start(ctx, req.GetCursor())
	if err != nil {
		return err
	}
	return s.feed.Watch(ctx, after, func(message revocationfeed.Message) error {
		return stream.Send(RevocationMessage(message))
	})
}

// RevocationMessage is message as the API states it.
func RevocationMessage(message revocationfeed.Message) *authv1.WatchRevocationsResponse {
	if event := message.Event; event != nil {
		return &authv1.WatchRevocationsResponse{Message: &authv1.WatchRevocationsResponse_Event{Event: &authv1.RevocationEvent{
			Cursor: event.Cursor.String(), Kind: event.Kind, FamilyId: event.FamilyID, Subject: event.Subject,
			RevokedAt: timestamppb.New(event.RevokedAt), ExpiresAt: timestamppb.New(event.ExpiresAt),
			KeyId: event.KeyID, ProviderId: event.ProviderID,
		}}}
	}
	return &authv1.WatchRevocationsResponse{Message: &authv1.WatchRevocationsResponse_Heartbeat{Heartbeat: &authv1.RevocationHeartbeat{
		Cursor: message.Heartbeat.Cursor.String(), Time: timestamppb.New(message.Heartbeat.Time),
	}}}
}
