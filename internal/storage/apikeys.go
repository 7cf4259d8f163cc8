package storage

import (
	"context"
	"time"
)

// APIKeys are the long-lived credentials people and service accounts make
// for themselves. Invariants: a key's name is unique among its owner's keys;
// deleting a key refuses the access tokens it was exchanged for in the same
// transaction (it revokes APIKeyFamily of its id), and deleting its owner
// deletes it.
type APIKeys interface {
	// CreateAPIKey stores a key; ErrAlreadyExists when its owner has a key of
	// that name (or its id is taken).
	CreateAPIKey(ctx context.Context, key APIKey) error
	// GetAPIKey returns the key id; ErrNotFound when there is none.
	GetAPIKey(ctx context.Context, id string) (APIKey, error)
	// ListAPIKeys returns the keys of subject in page, by id.
	ListAPIKeys(ctx context.Context, subject string, page Page) ([]APIKey, error)
	// DeleteAPIKey removes the key and, in the same transaction, refuses its
	// access tokens (revokes APIKeyFamily(id) at revokedAt); ErrNotFound
	// when there is no such key. Deleting its owner deletes it too.
	DeleteAPIKey(ctx context.Context, id string, revokedAt time.Time) error
	// DeleteExpiredAPIKeys removes keys that expired before cutoff.
	DeleteExpiredAPIKeys(ctx context.Context, cutoff time.Time) (int, error)
}

// APIKey is a long-lived credential a person or service account made for
// itself, exchanged for short-lived access tokens. The key itself is not
// stored: Hash is its SHA-256 digest (it is 256 random bits).
type APIKey struct {
	// ID is public and random; the key carries it, to be found by.
	ID string
	// Subject is the owner's `sub`.
	Subject string
	// Name is the owner's label for it, unique among the owner's keys.
	Name string
	// Scopes are what its access tokens may carry, within the owner's.
	Scopes    []string
	Hash      []byte
	CreatedAt time.Time
	ExpiresAt time.Time
}

// APIKeyFamily is the family id under which an API key's access tokens are
// refused once the key is deleted: its tokens carry it as their login.
func APIKeyFamily(id string) string { return "apikey:" + id }
