package tokens

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"strings"

	"github.com/chit-auth/chit/internal/chiterr"
)

// IssueForExchange runs a token exchange (issueForExchange) and writes its
// audit line, granted or refused: who exchanged, for which audience, and,
// when granted, whose token and with which scopes; when refused, why. Never
// a token.
func (s *Service) IssueForExchange(ctx context.Context, req ExchangeRequest) (Grant, error) {
	grant, err := s.issueForExchange(ctx, req)
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
		"service", req.Service.Name, "audience", audience, "subject", subjectOf(grant.AccessToken), "scope", grant.Scope,
		"expires_in", grant.ExpiresIn.String())
	return grant, nil
}

// subjectOf reads the sub of a token this server has just signed.
func subjectOf(token string) string {
	parts := strings.Split(token, ".")
	if len(parts) != 3 {
		return ""
	}
	payload, err := base64.RawURLEncoding.DecodeString(parts[1])
	if err != nil {
		return ""
	}
	var claims struct {
		Subject string `json:"sub"`
	}
	_ = json.Unmarshal(payload, &claims)
	return claims.Subject
}

// limitText bounds what a caller wrote before it is logged.
func limitText(text string) string {
	if len(text) > 256 {
		return text[:256] + "…"
	}
	return text
}
