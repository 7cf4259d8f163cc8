package storage

import (
	"bytes"
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
// found: a record of one token (Generation 0) as it is; otherwise the
// login's current token, or, when hash is the previous token's, that token as
// rotated, replaced by the current one. Stores share it so they answer alike.
func TokenOfRecord(record RefreshToken, previous PreviousRefreshToken, hash []byte) RefreshToken {
	// A record of one token, or one a replica of an earlier version marked
	// rotated, reads as it is.
	if record.Generation == 0 || !record.RotatedAt.IsZero() {
		return record
	}
	if !bytes.Equal(previous.Hash, hash) || len(hash) == 0 {
		// The sealed successor belongs to the previous token.
		record.RotatedAt, record.ReplacedBy, record.SealedSuccessor = time.Time{}, nil, nil
		return record
	}
	token := record
	token.Hash, token.RotatedAt, token.ReplacedBy, token.Generation = previous.Hash, previous.RotatedAt, record.Hash, record.Generation-1
	return token
}
