package storage

import (
	"bytes"
	"context"
	"errors"
	"time"
)

// PreviousRefreshToken is what a login's record keeps of the token before
// its current one: enough to answer it, within the grace period, with the
// current one (sealed under it in the record's SealedSuccessor).
type PreviousRefreshToken struct {
	Hash      []byte
	RotatedAt time.Time
}

// TokenOfRecord is what GetRefreshToken answers for hash from the record it
// found, and whether hash names a token of it: a record of one token
// (Generation 0) as it is; otherwise the login's current token, or, when
// hash is the previous token's, that token as rotated, replaced by the
// current one. Stores share it so they answer alike.
func TokenOfRecord(record RefreshToken, previous PreviousRefreshToken, hash []byte) (RefreshToken, bool) {
	if record.Generation == 0 {
		return record, bytes.Equal(record.Hash, hash)
	}
	if bytes.Equal(record.Hash, hash) {
		// The sealed successor belongs to the previous token.
		record.RotatedAt, record.ReplacedBy, record.SealedSuccessor = time.Time{}, nil, nil
		return record, true
	}
	if len(previous.Hash) == 0 || !bytes.Equal(previous.Hash, hash) {
		return RefreshToken{}, false
	}
	token := record
	token.Hash, token.RotatedAt, token.ReplacedBy, token.Generation = previous.Hash, previous.RotatedAt, record.Hash, record.Generation-1
	return token, true
}

// ReadRefreshTokenWithUser is GetRefreshTokenWithUser in two reads, for a
// store where a read costs little (SQLite) or a token that is rare (from
// before logins kept one record).
func ReadRefreshTokenWithUser(ctx context.Context, s interface {
	GetRefreshToken(ctx context.Context, familyID string, hash []byte) (RefreshToken, error)
	GetUser(ctx context.Context, name string) (User, error)
}, familyID string, hash []byte) (RefreshToken, *User, error) {
	token, err := s.GetRefreshToken(ctx, familyID, hash)
	if err != nil {
		return RefreshToken{}, nil, err
	}
	user, err := s.GetUser(ctx, token.Subject)
	switch {
	case errors.Is(err, ErrNotFound):
		return token, nil, nil
	case err != nil:
		return RefreshToken{}, nil, err
	}
	return token, &user, nil
}
