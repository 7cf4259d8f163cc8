package tokens

import (
	"context"
	"encoding/base64"
	"encoding/binary"
	"errors"
	"fmt"
	"strings"

	"github.com/chit-auth/chit/internal/keys"
	"github.com/chit-auth/chit/internal/secrets"
	"github.com/chit-auth/chit/internal/storage"
)

// A refresh token is opaque to clients. Inside, after RefreshTokenPrefix,
// it is base64url of:
//
//	version (1 byte, 2) | MAC key id (4) | generation (8) |
//	family id length (1) | family id | secret (32) | MAC (16)
//
// The store keeps one record per login: the digest of its current token and
// of the one before. A token of an earlier generation is no longer there;
// its MAC, under a key only the server holds, over everything before it and
// the login's random salt (kept in the record), proves it was issued for that
// login, so presenting it again is reuse and ends the login. A forged or
// altered token fails the MAC and ends nothing. The current token is
// accepted only by its digest: the MAC key alone cannot make it, and a copy
// of the database (digests, salts, the MAC keys sealed under the key
// encryption key) cannot either.
const refreshFormatVersion = 2

// refreshSecretBytes is the entropy of a refresh token.
const refreshSecretBytes = 32

// loginSaltBytes is the size of a login's salt.
const loginSaltBytes = 16

// refreshToken is a refresh token's contents.
type refreshToken struct {
	keyID      uint32
	generation uint64
	familyID   string
	secret     []byte
	tag        []byte
}

// macInput is what the MAC covers: the token's fields and the login's salt.
// The key id needs no cover: under another key the MAC is another.
func (t refreshToken) macInput(salt []byte) [][]byte {
	var header [9]byte
	header[0] = refreshFormatVersion
	binary.BigEndian.PutUint64(header[1:9], t.generation)
	return [][]byte{[]byte("chit refresh token"), header[:], []byte(t.familyID), t.secret, salt}
}

func (t refreshToken) encode() string {
	raw := make([]byte, 0, 14+len(t.familyID)+len(t.secret)+len(t.tag))
	raw = append(raw, refreshFormatVersion)
	raw = binary.BigEndian.AppendUint32(raw, t.keyID)
	raw = binary.BigEndian.AppendUint64(raw, t.generation)
	raw = append(raw, byte(len(t.familyID)))
	raw = append(raw, t.familyID...)
	raw = append(raw, t.secret...)
	raw = append(raw, t.tag...)
	return RefreshTokenPrefix + base64.RawURLEncoding.EncodeToString(raw)
}

// parseRefreshToken reads a token of this format; false for anything else
// (tokens issued before it carry only a secret).
func parseRefreshToken(token string) (refreshToken, bool) {
	raw, ok := decodeCanonical(token[len(RefreshTokenPrefix):])
	if !ok || len(raw) < 14 || raw[0] != refreshFormatVersion {
		return refreshToken{}, false
	}
	familyLength := int(raw[13])
	if len(raw) != 14+familyLength+refreshSecretBytes+keys.RefreshTagBytes {
		return refreshToken{}, false
	}
	// Family ids are NewFamilyID's: base64url. Anything else names no login,
	// and some stores cannot even look it up (PostgreSQL and NUL bytes).
	if familyLength == 0 || strings.ContainsFunc(string(raw[14:14+familyLength]), func(r rune) bool { return !isBase64URL(r) }) {
		return refreshToken{}, false
	}
	rest := raw[14:]
	return refreshToken{
		keyID:      binary.BigEndian.Uint32(raw[1:5]),
		generation: binary.BigEndian.Uint64(raw[5:13]),
		familyID:   string(rest[:familyLength]),
		secret:     rest[familyLength : familyLength+refreshSecretBytes],
		tag:        rest[familyLength+refreshSecretBytes:],
	}, true
}

func isBase64URL(r rune) bool {
	return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_'
}

// newRefreshToken makes the token of record's generation for its login
// (giving the login a salt if it has none yet, as records from before this
// format do) and returns it with record holding its digest. The token is
// shown once and never stored.
func (s *Service) newRefreshToken(record storage.RefreshToken) (string, storage.RefreshToken, error) {
	if len(record.FamilyID) > 255 {
		return "", storage.RefreshToken{}, fmt.Errorf("family id of %d bytes", len(record.FamilyID))
	}
	if len(record.LoginSalt) == 0 {
		record.LoginSalt = make([]byte, loginSaltBytes)
		if _, err := s.Random.Read(record.LoginSalt); err != nil {
			return "", storage.RefreshToken{}, err
		}
	}
	token := refreshToken{generation: record.Generation, familyID: record.FamilyID, secret: make([]byte, refreshSecretBytes)}
	if _, err := s.Random.Read(token.secret); err != nil {
		return "", storage.RefreshToken{}, err
	}
	token.keyID, token.tag = s.RefreshKeys.Tag(token.macInput(record.LoginSalt)...)
	encoded := token.encode()
	record.Hash = secrets.Digest(encoded)
	return encoded, record, nil
}

// storedRefreshToken reads what the store holds of token: by the login the
// token names, or, for a token from before this format, by its digest
// alone. Those tokens are accepted until the release after the one that
// ships this format, because its upgrade promised they keep working and the
// last of them expires within --refresh-idle-timeout of each deployment's
// own upgrade (storage.Logins says more); then this fallback, familyOf's empty answer
// and the salt given to records without one go with the store's records of
// one token.
func (s *Service) storedRefreshToken(ctx context.Context, token string) (storage.RefreshToken, error) {
	return s.Store.GetRefreshToken(ctx, familyOf(token), secrets.Digest(token))
}

// familyOf is the login a refresh token names; empty for a token from
// before this format, which names none.
func familyOf(token string) string {
	if strings.HasPrefix(token, RefreshTokenPrefix) {
		if parsed, ok := parseRefreshToken(token); ok {
			return parsed.familyID
		}
	}
	return ""
}

// earlierGeneration reports whether a token the store does not know is a
// genuine earlier token of a live login (whose record it returns): its MAC
// verifies under the login's salt, and its generation is before the
// login's previous one (the store knows the current and the previous).
func (s *Service) earlierGeneration(ctx context.Context, token string) (storage.RefreshToken, bool, error) {
	parsed, ok := parseRefreshToken(token)
	if !ok {
		return storage.RefreshToken{}, false, nil
	}
	login, err := s.Store.GetRefreshLogin(ctx, parsed.familyID)
	switch {
	case errors.Is(err, storage.ErrNotFound):
		return storage.RefreshToken{}, false, nil
	case err != nil:
		return storage.RefreshToken{}, false, fmt.Errorf("read login: %w", err)
	}
	// The store holds the current token and the one before: an earlier
	// one is of a generation before those.
	if login.Generation < 2 || parsed.generation > login.Generation-2 ||
		!s.RefreshKeys.Verify(ctx, parsed.keyID, parsed.tag, parsed.macInput(login.LoginSalt)...) {
		return storage.RefreshToken{}, false, nil
	}
	return login, true, nil
}
