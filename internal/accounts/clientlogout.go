package accounts

import (
	"context"
	"errors"
	"slices"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

// SetClientLogout replaces the logout settings of client id. The caller
// has checked them (authorize.ValidateClientLogout, whose URI rules are the
// sign-in page's); the URIs are kept sorted, once each.
func (d *Directory) SetClientLogout(ctx context.Context, id string, settings storage.ClientLogout) error {
	if err := ValidateClientID(id); err != nil {
		return err
	}
	settings.PostLogoutRedirectURIs = slices.Compact(slices.Sorted(slices.Values(settings.PostLogoutRedirectURIs)))
	err := d.store.SetClientLogout(ctx, id, settings)
	if errors.Is(err, storage.ErrNotFound) {
		return chiterr.New(chiterr.NotFound, "client %q does not exist", id)
	}
	return err
}

// ClientLogout returns the logout settings of client id: none for Chit's
// own clients, which register nothing, and for a client without any.
func (d *Directory) ClientLogout(ctx context.Context, id string) (storage.ClientLogout, error) {
	if slices.Contains(FirstPartyClientIDs, id) {
		return storage.ClientLogout{}, nil
	}
	return d.store.GetClientLogout(ctx, id)
}
