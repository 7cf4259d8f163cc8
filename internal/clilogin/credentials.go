package clilogin

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"time"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
)

// Credentials are what `chit login` keeps between runs.
type Credentials struct {
	AccessToken  string    `json:"access_token"`
	RefreshToken string    `json:"refresh_token,omitempty"`
	IDToken      string    `json:"id_token,omitempty"`
	Scope        string    `json:"scope,omitempty"`
	ExpiresAt    time.Time `json:"expires_at"`
	// Server is the address of the server that issued the tokens (chit's
	// --server): they are sent to that server only.
	Server string `json:"server,omitempty"`
}

func fromAccessToken(token *authv1.AccessToken, now time.Time) Credentials {
	return Credentials{
		AccessToken:  token.GetAccessToken(),
		RefreshToken: token.GetRefreshToken(),
		IDToken:      token.GetIdToken(),
		Scope:        token.GetScope(),
		ExpiresAt:    now.Add(time.Duration(token.GetExpiresIn()) * time.Second),
	}
}

// DefaultPath is os.UserConfigDir()/chit/credentials.json.
func DefaultPath() (string, error) {
	dir, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find the config directory: %w", err)
	}
	return filepath.Join(dir, "chit", "credentials.json"), nil
}

// ErrNotLoggedIn is returned when no credentials are stored.
var ErrNotLoggedIn = errors.New("not logged in: run chit login")

// ErrSessionExpired is returned when the stored refresh token no longer works.
var ErrSessionExpired = errors.New("your login has expired or was revoked: run chit login")

// Save writes credentials readable by the user only (0600), atomically.
func Save(path string, creds Credentials) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	data, err := json.MarshalIndent(creds, "", "  ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".credentials-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// Load reads stored credentials.
func Load(path string) (Credentials, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return Credentials{}, ErrNotLoggedIn
	}
	if err != nil {
		return Credentials{}, err
	}
	var creds Credentials
	if err := json.Unmarshal(data, &creds); err != nil {
		return Credentials{}, fmt.Errorf("read %s: %w (run chit login)", path, err)
	}
	return creds, nil
}

// Remove deletes stored credentials; it is not an error if there are none.
func Remove(path string) error {
	if err := os.Remove(path); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return err
	}
	return nil
}

// RefreshMargin is how long before expiry a stored access token is renewed.
const RefreshMargin = time.Minute

// LoadFor returns the stored credentials if they were issued by server:
// tokens are never sent to another server than the one that issued them
// (a mistyped or hostile --server would otherwise receive them).
func LoadFor(path, server string) (Credentials, error) {
	creds, err := Load(path)
	if err != nil {
		return Credentials{}, err
	}
	if creds.Server != server {
		from := creds.Server
		if from == "" {
			from = "a server this chit did not record"
		}
		return Credentials{}, fmt.Errorf("the stored login is for %s, not %s: run chit login --server %s (tokens are only sent to the server that issued them)",
			from, server, server)
	}
	return creds, nil
}

// ValidAccessToken returns a stored access token of server that is valid for
// at least RefreshMargin, refreshing (and saving) through RefreshCli when
// needed.
func ValidAccessToken(ctx context.Context, auth authv1.AuthServiceClient, path, server string, now time.Time) (string, error) {
	creds, err := LoadFor(path, server)
	if err != nil {
		return "", err
	}
	if now.Add(RefreshMargin).Before(creds.ExpiresAt) {
		return creds.AccessToken, nil
	}
	if creds.RefreshToken == "" {
		return "", ErrSessionExpired
	}
	resp, err := auth.RefreshCli(ctx, &authv1.RefreshCliRequest{RefreshToken: creds.RefreshToken})
	if status.Code(err) == codes.Unauthenticated {
		return "", ErrSessionExpired
	}
	if err != nil {
		return "", err
	}
	refreshed := fromAccessToken(resp.GetAccessToken(), now)
	refreshed.Server = server
	if refreshed.IDToken == "" {
		refreshed.IDToken = creds.IDToken
	}
	if err := Save(path, refreshed); err != nil {
		return "", fmt.Errorf("save refreshed tokens: %w", err)
	}
	return refreshed.AccessToken, nil
}
