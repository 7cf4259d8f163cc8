package accounts

import (
	"context"
	"net/mail"
	"slices"
	"unicode"
	"unicode/utf8"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/storage"
)

// Bounds on a person's profile, so a record, and the ID tokens that state
// it, stay small.
const (
	// MaxEmailLength is the longest address SMTP carries (RFC 5321
	// §4.5.3.1.3's 256-octet path, less its angle brackets).
	MaxEmailLength = 254
	// MaxDisplayNameLength is in characters, not bytes.
	MaxDisplayNameLength = 256
	// MaxGroups and MaxGroupLength bound groups as grants bound scopes.
	MaxGroups      = MaxGrantedScopes
	MaxGroupLength = MaxScopeLength
)

// The profile's fields as the Admin API names them, in the messages that
// refuse one.
const (
	FieldEmail         = "email"
	FieldEmailVerified = "email_verified"
	FieldDisplayName   = "display_name"
	FieldGroups        = "groups"
)

// CheckProfile checks what an operator says about a person and returns it
// with duplicate groups dropped: an email is one address (RFC 5322
// addr-spec) without a display name, comment or angle brackets; a display
// name is UTF-8 text without control characters; a group is a scope-token
// (printable ASCII but space, '"' and '\'), so the list is stored
// space-separated. email_verified needs an email. Each error names its
// field.
func CheckProfile(profile storage.Profile) (storage.Profile, error) {
	if err := checkEmail(profile.Email); err != nil {
		return storage.Profile{}, err
	}
	if profile.EmailVerified && profile.Email == "" {
		return storage.Profile{}, chiterr.New(chiterr.InvalidArgument, "%s: set without an %s", FieldEmailVerified, FieldEmail)
	}
	if err := checkDisplayName(profile.DisplayName); err != nil {
		return storage.Profile{}, err
	}
	groups, err := checkGroups(profile.Groups)
	if err != nil {
		return storage.Profile{}, err
	}
	profile.Groups = groups
	return profile, nil
}

func checkEmail(email string) error {
	if email == "" {
		return nil
	}
	if len(email) > MaxEmailLength {
		return chiterr.New(chiterr.InvalidArgument, "%s: at most %d characters", FieldEmail, MaxEmailLength)
	}
	// ParseAddress also accepts "Alice <alice@example.com>", a comment or
	// surrounding spaces; the address it finds must be the whole value.
	address, err := mail.ParseAddress(email)
	if err != nil || address.Name != "" || address.Address != email {
		return chiterr.New(chiterr.InvalidArgument, "%s: %s is not one address such as alice@example.com (no name, comment or angle brackets)",
			FieldEmail, chiterr.Quote(email))
	}
	return nil
}

func checkDisplayName(name string) error {
	if !utf8.ValidString(name) {
		return chiterr.New(chiterr.InvalidArgument, "%s: not UTF-8 text", FieldDisplayName)
	}
	if utf8.RuneCountInString(name) > MaxDisplayNameLength {
		return chiterr.New(chiterr.InvalidArgument, "%s: at most %d characters", FieldDisplayName, MaxDisplayNameLength)
	}
	if slices.ContainsFunc([]rune(name), unicode.IsControl) {
		return chiterr.New(chiterr.InvalidArgument, "%s: contains a control character", FieldDisplayName)
	}
	return nil
}

func checkGroups(groups []string) ([]string, error) {
	// Counted before the duplicates are dropped, as grants are.
	if len(groups) > MaxGroups {
		return nil, chiterr.New(chiterr.InvalidArgument, "%s: at most %d groups", FieldGroups, MaxGroups)
	}
	var kept []string
	for _, group := range groups {
		if group == "" {
			return nil, chiterr.New(chiterr.InvalidArgument, "%s: a group is empty", FieldGroups)
		}
		if err := checkToken("group", group); err != nil {
			return nil, chiterr.New(chiterr.InvalidArgument, "%s: %s", FieldGroups, chiterr.PublicMessage(err))
		}
		if !slices.Contains(kept, group) {
			kept = append(kept, group)
		}
	}
	return kept, nil
}

// ProfileFields say which parts of a profile a change replaces (the Admin
// API's update_mask); AllProfileFields replaces them all.
type ProfileFields struct {
	Email, EmailVerified, DisplayName, Groups bool
}

// AllProfileFields is a change of the whole profile.
var AllProfileFields = ProfileFields{Email: true, EmailVerified: true, DisplayName: true, Groups: true}

// ParseProfileFields reads an update mask's paths: "" or no path at all is
// every field.
func ParseProfileFields(paths []string) (ProfileFields, error) {
	if len(paths) == 0 {
		return AllProfileFields, nil
	}
	var fields ProfileFields
	for _, path := range paths {
		switch path {
		case FieldEmail:
			fields.Email = true
		case FieldEmailVerified:
			fields.EmailVerified = true
		case FieldDisplayName:
			fields.DisplayName = true
		case FieldGroups:
			fields.Groups = true
		default:
			return ProfileFields{}, chiterr.New(chiterr.InvalidArgument, "update_mask: %s is not one of email, email_verified, display_name, groups", chiterr.Quote(path))
		}
	}
	return fields, nil
}

// SetUserProfile replaces the fields of a user's profile that fields name
// with profile's. A new email that the change does not also say is verified
// is unverified: verification was of the old address. Tokens issued before
// keep what they stated (no token is refused); the next ID token, userinfo
// answer or sign-in states the new profile.
func (d *Directory) SetUserProfile(ctx context.Context, name string, profile storage.Profile, fields ProfileFields) error {
	if err := ValidateName("user", name); err != nil {
		return err
	}
	return d.updateUser(ctx, name, func(user *storage.User) (bool, error) {
		next := user.Profile
		if fields.Email {
			if profile.Email != next.Email && !fields.EmailVerified {
				next.EmailVerified = false
			}
			next.Email = profile.Email
		}
		if fields.EmailVerified {
			next.EmailVerified = profile.EmailVerified
		}
		if fields.DisplayName {
			next.DisplayName = profile.DisplayName
		}
		if fields.Groups {
			next.Groups = profile.Groups
		}
		next, err := CheckProfile(next)
		user.Profile = next
		return false, err
	})
}
