package ssf

import (
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/storage"
)

// Claims of a SET besides the registered ones (RFC 8417 §2.2, SSF 1.0 §4).
const (
	eventsClaim    = "events"
	subjectClaim   = "sub_id"
	timestampClaim = "event_timestamp"
)

// CredentialTypeSigningKey is the credential_type of a provider's key
// change: CAEP's list (passwords, FIDO authenticators, certificates...)
// names no signing key, and allows a type transmitter and receiver agree on.
const CredentialTypeSigningKey = "signing-key"

// SecurityEvent is one event of a SET: its type, its subject (an SSF 1.0
// subject identifier, RFC 9493) and its payload.
type SecurityEvent struct {
	Type    string
	Subject map[string]any
	Payload map[string]any
}

// Map is the security event that reports a revocation event to a receiver
// of issuer's, or false for an event no receiver is told of:
//
//   - a family revoked (a login, an API key): CAEP session-revoked of the
//     session the family is (the access tokens' fid), as a complex subject
//     {session: {format: opaque, id: fid}};
//   - a subject revoked: session-revoked of the principal, iss_sub {iss,
//     sub} for a person's or a service account's sub, and a complex
//     subject {application: {format: opaque, id: client id}} for an OAuth
//     client's principal key (client:ID), whose revocation refuses every
//     token issued through the client;
//   - a provider's key removed: CAEP credential-change (credential_type
//     signing-key, change_type revoke, friendly_name the key id) of the
//     provider, iss_sub with the provider's sub;
//   - a signing key of the server's removed: nothing. Receivers verify
//     Chit's tokens against its JWKS, which no longer holds the key; and a
//     removed key is the end of a retired key's life (retired keys still
//     verify until removed), not a change about any subject.
//
// event_timestamp is the event's RevokedAt: the cut-off of a subject's
// tokens, or when the family was revoked or the key removed.
func Map(issuer string, event storage.RevocationEvent) (SecurityEvent, bool) {
	payload := map[string]any{timestampClaim: event.RevokedAt.Unix()}
	switch event.Kind {
	case storage.RevocationFamily:
		return SecurityEvent{Type: EventSessionRevoked, Payload: payload, Subject: map[string]any{
			"format": "complex", "session": map[string]any{"format": "opaque", "id": event.FamilyID},
		}}, true
	case storage.RevocationSubject:
		if clientID, ok := strings.CutPrefix(event.Subject, accounts.ClientSubjectPrefix); ok {
			return SecurityEvent{Type: EventSessionRevoked, Payload: payload, Subject: map[string]any{
				"format": "complex", "application": map[string]any{"format": "opaque", "id": clientID},
			}}, true
		}
		return SecurityEvent{Type: EventSessionRevoked, Payload: payload, Subject: issSub(issuer, event.Subject)}, true
	case storage.RevocationProviderKeyRemoved:
		payload["credential_type"] = CredentialTypeSigningKey
		payload["change_type"] = "revoke"
		payload["friendly_name"] = event.KeyID
		return SecurityEvent{Type: EventCredentialChange, Payload: payload, Subject: issSub(issuer, accounts.ProviderSubject(event.ProviderID))}, true
	}
	return SecurityEvent{}, false
}

func issSub(issuer, sub string) map[string]any {
	return map[string]any{"format": "iss_sub", "iss": issuer, "sub": sub}
}

// wants reports whether stream asks for events of eventType.
func wants(stream storage.SecurityEventStream, eventType string) bool {
	return len(stream.EventTypes) == 0 || slices.Contains(stream.EventTypes, eventType)
}

// JTI is the jti of the SET that delivers the event at cursor to stream
// streamID: the same at every redelivery, so that receivers de-duplicate,
// and read back from an acknowledgement (stream ids never hold ':').
func JTI(streamID string, cursor storage.RevocationCursor) string {
	return streamID + ":" + cursor.String()
}

// parseJTI is the cursor of one of stream streamID's jtis.
func parseJTI(streamID, jti string) (storage.RevocationCursor, bool) {
	rest, ok := strings.CutPrefix(jti, streamID+":")
	if !ok || rest == "" {
		return storage.RevocationCursor{}, false
	}
	cursor, err := storage.ParseRevocationCursor(rest)
	return cursor, err == nil
}

// sign makes the SET of event for stream: iss, iat, jti, aud, sub_id and
// events, typ secevent+jwt, signed with the key that signs access tokens.
// It has no exp (RFC 8417 §2.2: a SET is a statement of fact, not a
// credential) and no sub: SSF 1.0 names the subject in sub_id.
func (s *Service) sign(stream storage.SecurityEventStream, jti string, event SecurityEvent, now time.Time) (string, error) {
	token, err := jwt.NewBuilder().
		Issuer(s.cfg.Issuer).
		IssuedAt(now).
		JwtID(jti).
		Audience([]string{stream.Audience}).
		Claim(subjectClaim, event.Subject).
		Claim(eventsClaim, map[string]any{event.Type: event.Payload}).
		Build()
	if err != nil {
		return "", fmt.Errorf("build SET: %w", err)
	}
	return s.Keys.SignAs(token, SETType)
}
