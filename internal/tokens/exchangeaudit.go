package tokens

import (
	"context"

	"github.com/chit-auth/chit/internal/chiterr"
)

// IssueForExchange runs a token exchange (issueForExchange) and writes its
// audit line, granted or refused: who exchanged, for which audience, and,
// when granted, whose token and with which scopes; when refused, why. Never
// a token.
func (s *Service) IssueForExchange(ctx context.Context, req ExchangeRequest) (Grant, error) {
	grant, subject, err := s.issueForExchange(ctx, req)
	audience := req.Audience
	if audience == "" {
		audience = s.cfg.Audience
	}
	if err != nil {
		s.Logger.InfoContext(ctx, "token exchange refused", "audit", true, "event", "token_exchange_refused",
			"service", req.Service.Name, "audience", limitText(audience), "reason", chiterr.PublicMessage(err))
		return Grant{}, err
	}
	s.Logger.InfoContext(ctx, "token exchanged", "audit", true, "event", "token_exchange",
		"service", req.Service.Name, "audience", audience, "subject", subject, "scope", grant.Scope,
		"expires_in", grant.ExpiresIn.String())
	return grant, nil
}

// limitText bounds what a caller wrote before it is logged.
func limitText(text string) string {
	if len(text) > 256 {
		return text[:256] + "…"
	}
	return text
}
