package storage

import (
	"context"
	"time"
)

// Sessions are the sign-in page's browser sessions (single sign-on), by
// public id. Invariants: a session's secret is kept only as its digest; a
// subject holds at most the newest keep live sessions (CreateSession ends
// the older ones); an ended session stays ended; deleting the user deletes
// their sessions.
type Sessions interface {
	// CreateSession stores session and, in the same transaction, ends the
	// live sessions of its subject beyond the newest keep (the new one
	// counted) at session.CreatedAt, and deletes that subject's sessions
	// already ended or expired then, so one person's rows stay bounded. An
	// id taken is ErrAlreadyExists.
	CreateSession(ctx context.Context, session Session, keep int) error
	// GetSession returns the session with id as stored, ended or expired
	// ones too (the core decides what is live); ErrNotFound when there is
	// none.
	GetSession(ctx context.Context, id string) (Session, error)
	// UpdateSession runs update on the stored session and saves what it
	// leaves, in one transaction, returning the session as saved; an error
	// from update saves nothing and is returned as it is. ErrNotFound when
	// there is none. The id, secret digest and subject cannot change.
	UpdateSession(ctx context.Context, id string, update func(*Session) error) (Session, error)
	// ListSessions returns subject's live sessions at now (not ended, not
	// idle- or absolutely expired) of page, by id.
	ListSessions(ctx context.Context, subject string, now time.Time, page Page) ([]Session, error)
	// EndSessions ends every live session of subject at endedAt and returns
	// how many it ended.
	EndSessions(ctx context.Context, subject string, endedAt time.Time) (int, error)
	// DeleteExpiredSessions removes sessions that expired or ended before
	// cutoff.
	DeleteExpiredSessions(ctx context.Context, cutoff time.Time) (int, error)
}

// Session is a browser's sign-in on the page, which later authorization
// requests from the same browser reuse without the form.
type Session struct {
	// ID is public: it is the `sid` claim of the ID tokens issued through
	// the session, and the cookie names it beside the secret.
	ID string
	// SecretHash is the digest of the cookie's secret; the secret itself is
	// never stored.
	SecretHash []byte
	Subject    string
	// AuthTime is when the person proved who they are (the password
	// sign-in that started the session).
	AuthTime time.Time
	// AMR are the authentication methods of that sign-in (RFC 8176).
	AMR        []string
	CreatedAt  time.Time
	LastUsedAt time.Time
	// IdleExpiresAt is when the session ends unless used; it is never later
	// than ExpiresAt, the end whatever its use, and ending a session brings
	// it forward to EndedAt, so the sweep needs one time.
	IdleExpiresAt time.Time
	ExpiresAt     time.Time
	// EndedAt is zero while the session is not ended (signed out, ended by
	// an admin, replaced by a newer one).
	EndedAt time.Time
	// ClientIDs are the clients that signed in through the session, oldest
	// first.
	ClientIDs []string
}

// Live reports whether the session may be used at now: not ended and not
// expired.
func (s Session) Live(now time.Time) bool {
	return s.EndedAt.IsZero() && now.Before(s.IdleExpiresAt) && now.Before(s.ExpiresAt)
}
