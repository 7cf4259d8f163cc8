package tokens

import (
	"context"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/storage"
)

// RevokeClientLogins ends every live login of subject through client
// clientID (a logout whose client asks for it, OpenID Connect RP-Initiated
// Logout): each family as RevokeFamily ends it, reason going to the audit
// log. Logins through other clients stay. It returns how many it ended.
func (s *Service) RevokeClientLogins(ctx context.Context, subject, clientID, reason string) (int, error) {
	if err := accounts.ValidateLoginSubject(subject); err != nil {
		return 0, err
	}
	// A subject holds few logins; the families are gathered first, so that
	// revoking does not move the pages under the reading.
	var families []Family
	page := storage.Page{Limit: 500}
	for {
		logins, err := s.Store.ListLogins(ctx, subject, s.Now(), page)
		if err != nil {
			return 0, err
		}
		for _, login := range logins {
			if login.ClientID == clientID {
				families = append(families, Family{ID: login.FamilyID, Subject: subject, ClientID: login.ClientID})
			}
		}
		if len(logins) < page.Limit {
			break
		}
		page.After = logins[len(logins)-1].FamilyID
	}
	for i, family := range families {
		if err := s.RevokeFamily(ctx, family, reason); err != nil {
			return i, err
		}
	}
	return len(families), nil
}
