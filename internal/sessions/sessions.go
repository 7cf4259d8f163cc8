package sessions

import (
	"context"
	"crypto/subtle"
	"errors"
	"fmt"
	"io"
	"regexp"
	"slices"
	"strings"
	"time"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/secrets"
	"github.com/chit-auth/chit/internal/storage"
)

// Defaults of Config.
const (
	DefaultIdleTimeout = 24 * time.Hour
	DefaultLifetime    = 7 * 24 * time.Hour
	// DefaultMaxPerUser is how many live sessions one person keeps (one per
	// browser they use): starting one more ends the oldest.
	DefaultMaxPerUser = 32
	// MaxClients bounds the clients recorded on one session; beyond it the
	// oldest is forgotten.
	MaxClients = 64
)

// AMRPassword is the authentication method of a password sign-in (RFC 8176
// §2).
const AMRPassword = "pwd"

// Config is the sessions' policy.
type Config struct {
	// IdleTimeout ends a session unused for this long.
	IdleTimeout time.Duration
	// Lifetime ends a session this long after it started, whatever its use;
	// zero disables sessions: nothing is stored and every sign-in shows the
	// form.
	Lifetime time.Duration
	// MaxPerUser bounds one person's live sessions; zero takes
	// DefaultMaxPerUser.
	MaxPerUser int
}

// Store is what sessions need of storage: the sessions, and the subject
// revocations that cut them off on every replica.
type Store interface {
	storage.Sessions
	GetRevocation(ctx context.Context, familyID, subject, client string) (storage.Revocation, error)
}

// Dependencies are what the sessions work with.
type Dependencies struct {
	Store     Store
	Directory *accounts.Directory
	Now       func() time.Time
	Random    io.Reader
}

// Service runs the sign-in sessions.
type Service struct {
	cfg       Config
	store     Store
	directory *accounts.Directory
	now       func() time.Time
	random    io.Reader
}

// NewService wires the sessions, as the other core services are: their
// configuration, then what they work with.
func NewService(cfg Config, deps Dependencies) *Service {
	if cfg.MaxPerUser <= 0 {
		cfg.MaxPerUser = DefaultMaxPerUser
	}
	if cfg.IdleTimeout <= 0 || cfg.IdleTimeout > cfg.Lifetime {
		cfg.IdleTimeout = cfg.Lifetime
	}
	return &Service{cfg: cfg, store: deps.Store, directory: deps.Directory, now: deps.Now, random: deps.Random}
}

// Enabled reports whether sign-ins start sessions (Config.Lifetime is not
// zero).
func (s *Service) Enabled() bool { return s != nil && s.cfg.Lifetime > 0 }

// Session is a live (or, as End returns it, just ended) sign-in session.
type Session struct {
	// ID is public: the sid claim of the ID tokens issued through it.
	ID       string
	Subject  string
	AuthTime time.Time
	// AMR are the methods of the sign-in that started it (RFC 8176).
	AMR []string
	// ClientIDs are the clients that signed in through it, oldest first.
	ClientIDs     []string
	CreatedAt     time.Time
	LastUsedAt    time.Time
	IdleExpiresAt time.Time
	ExpiresAt     time.Time
	// EndedAt is zero unless the session was ended.
	EndedAt time.Time
}

func fromStorage(stored storage.Session) Session {
	return Session{ID: stored.ID, Subject: stored.Subject, AuthTime: stored.AuthTime, AMR: stored.AMR, ClientIDs: stored.ClientIDs,
		CreatedAt: stored.CreatedAt, LastUsedAt: stored.LastUsedAt, IdleExpiresAt: stored.IdleExpiresAt, ExpiresAt: stored.ExpiresAt,
		EndedAt: stored.EndedAt}
}

// Sizes of the cookie's parts, in random bytes: the id only has to be
// unique, the secret unguessable.
const (
	idBytes     = 16
	secretBytes = 32
)

// MaxCookieLength bounds a cookie value Resume looks at: Chit's own are 66
// characters.
const MaxCookieLength = 128

// cookiePattern is what Start writes: the id, a dot and the secret, both
// base64url without padding.
var cookiePattern = regexp.MustCompile(`^([A-Za-z0-9_-]{22})\.([A-Za-z0-9_-]{43})$`)

var errNoSession = chiterr.New(chiterr.Unauthenticated, "no live sign-in session")

var errDisabled = chiterr.New(chiterr.FailedPrecondition, "sign-in sessions are disabled (--session-lifetime 0)")

// Start starts a session for principal, a person who has just signed in
// with amr through clientID (recorded as its first client), and returns the cookie value that resumes it (the id and the
// secret; only the secret's digest is stored) and the session. The
// principal's ReadAt is the session's auth_time: a revocation of the
// subject after it ends the session.
func (s *Service) Start(ctx context.Context, principal accounts.Principal, amr []string, clientID string) (string, Session, error) {
	if !s.Enabled() {
		return "", Session{}, errDisabled
	}
	if !principal.Person() {
		return "", Session{}, chiterr.New(chiterr.InvalidArgument, "only people have sign-in sessions")
	}
	id, err := secrets.Random(s.random, idBytes)
	if err != nil {
		return "", Session{}, err
	}
	secret, err := secrets.Random(s.random, secretBytes)
	if err != nil {
		return "", Session{}, err
	}
	now := s.now()
	authTime := principal.ReadAt
	if authTime.IsZero() || authTime.After(now) {
		authTime = now
	}
	expiresAt := now.Add(s.cfg.Lifetime)
	stored := storage.Session{
		ID: id, SecretHash: secrets.Digest(secret), Subject: principal.Subject, AuthTime: authTime, AMR: slices.Clone(amr),
		CreatedAt: now, LastUsedAt: now, IdleExpiresAt: earliest(now.Add(s.cfg.IdleTimeout), expiresAt), ExpiresAt: expiresAt,
	}
	if clientID != "" {
		stored.ClientIDs = []string{clientID}
	}
	if err := s.store.CreateSession(ctx, stored, s.cfg.MaxPerUser); err != nil {
		return "", Session{}, fmt.Errorf("store sign-in session: %w", err)
	}
	return id + "." + secret, fromStorage(stored), nil
}

// Resume returns the live session a cookie value names (not ended, not
// idle- or absolutely expired, its user still exists and was not recreated,
// not cut off by a revocation of the subject such as a password change or
// an admin ending the person's logins); an error of kind
// chiterr.Unauthenticated otherwise. Nothing in the cookie is trusted
// beyond the lookup: the secret must match the stored digest.
func (s *Service) Resume(ctx context.Context, cookie string) (Session, error) {
	session, _, err := s.ResumeWithPrincipal(ctx, cookie)
	return session, err
}

// ResumeWithPrincipal is Resume that also returns the session's person as
// read to check it, for a sign-in that goes on to issue them a code.
func (s *Service) ResumeWithPrincipal(ctx context.Context, cookie string) (Session, accounts.Principal, error) {
	if !s.Enabled() || len(cookie) > MaxCookieLength {
		return Session{}, accounts.Principal{}, errNoSession
	}
	parts := cookiePattern.FindStringSubmatch(cookie)
	if parts == nil {
		return Session{}, accounts.Principal{}, errNoSession
	}
	stored, err := s.store.GetSession(ctx, parts[1])
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return Session{}, accounts.Principal{}, errNoSession
	case err != nil:
		return Session{}, accounts.Principal{}, fmt.Errorf("read sign-in session: %w", err)
	}
	if subtle.ConstantTimeCompare(secrets.Digest(parts[2]), stored.SecretHash) != 1 || !stored.Live(s.now()) {
		return Session{}, accounts.Principal{}, errNoSession
	}
	principal, err := s.directory.LookupUser(ctx, stored.Subject)
	switch {
	case errors.Is(err, storage.ErrNotFound) || (err == nil && principal.CreatedAt.After(stored.AuthTime)):
		return Session{}, accounts.Principal{}, errNoSession
	case err != nil:
		return Session{}, accounts.Principal{}, fmt.Errorf("read the session's user: %w", err)
	}
	// A revocation of the subject is how a deletion or a narrowing reaches
	// every replica: one made at or after the sign-in ends the session, as
	// it refuses the access tokens issued before it.
	revocation, err := s.store.GetRevocation(ctx, "", stored.Subject, "")
	if err != nil {
		return Session{}, accounts.Principal{}, fmt.Errorf("read the session's revocations: %w", err)
	}
	if !revocation.SubjectRevokedAt.IsZero() && !stored.AuthTime.After(revocation.SubjectRevokedAt) {
		return Session{}, accounts.Principal{}, errNoSession
	}
	return fromStorage(stored), principal, nil
}

// touchInterval is how stale a session's last use may be before a sign-in
// through it writes the new one: the idle expiry is that much early at
// most, and a busy session costs one write a minute, not one per sign-in.
func (s *Service) touchInterval() time.Duration { return min(time.Minute, s.cfg.IdleTimeout/10) }

// SignedIn records that clientID signed in through the live session
// (as Resume returned it): the client joins its list (the oldest forgotten
// beyond MaxClients) and its idle expiry starts again. A session that
// ended meanwhile is chiterr.Unauthenticated. A client already listed on a
// session used within the last minute writes nothing.
func (s *Service) SignedIn(ctx context.Context, resumed Session, clientID string) (Session, error) {
	now := s.now()
	if slices.Contains(resumed.ClientIDs, clientID) && now.Sub(resumed.LastUsedAt) < s.touchInterval() {
		return resumed, nil
	}
	stored, err := s.store.UpdateSession(ctx, resumed.ID, func(session *storage.Session) error {
		if !session.Live(now) {
			return errNoSession
		}
		session.ClientIDs = slices.DeleteFunc(session.ClientIDs, func(id string) bool { return id == clientID })
		session.ClientIDs = append(session.ClientIDs, clientID)
		if over := len(session.ClientIDs) - MaxClients; over > 0 {
			session.ClientIDs = session.ClientIDs[over:]
		}
		session.LastUsedAt = now
		session.IdleExpiresAt = earliest(now.Add(s.cfg.IdleTimeout), session.ExpiresAt)
		return nil
	})
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return Session{}, errNoSession
	case err != nil:
		return Session{}, err
	}
	return fromStorage(stored), nil
}

// End ends the session with this public id and returns it as it was before
// (chiterr.NotFound, wrapping storage.ErrNotFound, when there is none). An
// ended session's cookie resumes nothing from then on.
func (s *Service) End(ctx context.Context, id string) (Session, error) {
	now := s.now()
	var before storage.Session
	_, err := s.store.UpdateSession(ctx, id, func(session *storage.Session) error {
		before = *session
		if session.EndedAt.IsZero() {
			session.EndedAt = now
		}
		session.IdleExpiresAt = earliest(session.IdleExpiresAt, session.EndedAt)
		return nil
	})
	if errors.Is(err, storage.ErrNotFound) {
		return Session{}, &chiterr.Error{Kind: chiterr.NotFound, Message: "no sign-in session has this id", Cause: err}
	}
	if err != nil {
		return Session{}, err
	}
	return fromStorage(before), nil
}

// Live reports whether session (as End returned it, say) was live now:
// not ended, not expired.
func (s *Service) Live(session Session) bool {
	now := s.now()
	return session.EndedAt.IsZero() && now.Before(session.IdleExpiresAt) && now.Before(session.ExpiresAt)
}

// EndAll ends every live session of subject and returns how many it ended.
func (s *Service) EndAll(ctx context.Context, subject string) (int, error) {
	return s.store.EndSessions(ctx, subject, s.now())
}

// List returns subject's live sessions of page, by id.
func (s *Service) List(ctx context.Context, subject string, page storage.Page) ([]Session, error) {
	stored, err := s.store.ListSessions(ctx, subject, s.now(), page)
	if err != nil {
		return nil, err
	}
	listed := make([]Session, 0, len(stored))
	for _, session := range stored {
		listed = append(listed, fromStorage(session))
	}
	return listed, nil
}

// Get returns the session with id as stored, live or not
// (chiterr.NotFound when there is none): for the Admin API, which names a
// session by its subject and id.
func (s *Service) Get(ctx context.Context, id string) (Session, error) {
	stored, err := s.store.GetSession(ctx, id)
	if errors.Is(err, storage.ErrNotFound) {
		return Session{}, &chiterr.Error{Kind: chiterr.NotFound, Message: "no sign-in session has this id", Cause: err}
	}
	if err != nil {
		return Session{}, err
	}
	return fromStorage(stored), nil
}

// ValidID reports whether id is one Start could have made: other values
// are refused before any lookup.
func ValidID(id string) bool {
	return len(id) == 22 && strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-") == ""
}

func earliest(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}
