package logout

import (
	"context"
	"fmt"
	"sync"
	"time"

	"github.com/lestrrat-go/jwx/v2/jwt"

	"github.com/chit-auth/chit/internal/secrets"
)

// Back-Channel Logout 1.0 §2.4.
const (
	// LogoutTokenType is the typ header of logout tokens, so that no other
	// JWT Chit signs (an ID token say) passes for one (§2.4, RFC 8725 §3.11).
	LogoutTokenType = "logout+jwt"
	// BackchannelLogoutEvent is the member of the events claim that makes
	// a JWT a logout token.
	BackchannelLogoutEvent = "http://schemas.openid.net/event/backchannel-logout"
	eventsClaim            = "events"
)

// receiver is a client's back-channel logout URI.
type receiver struct{ clientID, uri string }

// notify sends a logout token for session to each receiver concurrently
// and waits for them at most DeliveryWait; those still under way finish in
// the background within DeliveryTimeout.
func (s *Service) notify(ctx context.Context, session Session, receivers []receiver) {
	if len(receivers) == 0 || s.Deliverer == nil {
		return
	}
	// The deliveries outlive the browser's request.
	background := context.WithoutCancel(ctx)
	var all sync.WaitGroup
	for _, r := range receivers {
		token, err := s.LogoutToken(r.clientID, session)
		if err != nil {
			s.Logger.ErrorContext(ctx, "back-channel logout: sign the logout token", "client", r.clientID, "error", err)
			continue
		}
		all.Add(1)
		s.deliveries.Add(1)
		go func() {
			defer s.deliveries.Done()
			defer all.Done()
			s.deliver(background, r, token)
		}()
	}
	done := make(chan struct{})
	go func() { all.Wait(); close(done) }()
	timer := time.NewTimer(s.cfg.DeliveryWait)
	defer timer.Stop()
	select {
	case <-done:
	case <-timer.C:
	}
}

// LogoutToken is the logout token (§2.4) telling client clientID that
// session ended: iss, aud, iat, a short exp, jti, sub and sid, the
// back-channel logout event, never a nonce; typ logout+jwt.
func (s *Service) LogoutToken(clientID string, session Session) (string, error) {
	jti, err := secrets.Random(s.Random, 16)
	if err != nil {
		return "", err
	}
	now := s.Now()
	builder := jwt.NewBuilder().
		Issuer(s.cfg.Issuer).
		Audience([]string{clientID}).
		IssuedAt(now).
		Expiration(now.Add(s.cfg.LogoutTokenTTL)).
		JwtID(jti).
		Subject(session.Subject).
		Claim(eventsClaim, map[string]any{BackchannelLogoutEvent: map[string]any{}})
	if session.ID != "" {
		builder = builder.Claim(SessionIDClaim, session.ID)
	}
	token, err := builder.Build()
	if err != nil {
		return "", fmt.Errorf("build logout token: %w", err)
	}
	return s.Keys.SignAs(token, LogoutTokenType)
}

// deliver sends token to r within DeliveryTimeout and logs a failure,
// never the token.
func (s *Service) deliver(ctx context.Context, r receiver, token string) {
	ctx, cancel := context.WithTimeout(ctx, s.cfg.DeliveryTimeout)
	defer cancel()
	if err := s.Deliverer.Deliver(ctx, r.uri, token); err != nil {
		s.Logger.WarnContext(ctx, "back-channel logout failed", "client", r.clientID, "uri", r.uri, "error", err)
		return
	}
	s.Logger.InfoContext(ctx, "back-channel logout delivered", "client", r.clientID)
}
