package admincli

import (
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"google.golang.org/protobuf/types/known/timestamppb"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
)

func table(out io.Writer, header string) *tabwriter.Writer {
	w := tabwriter.NewWriter(out, 0, 4, 2, ' ', 0)
	fmt.Fprintln(w, header)
	return w
}

func printUsers(out io.Writer, users []*adminv1.User) error {
	w := table(out, "NAME\tROLE\tSCOPES\tDEFAULT_SCOPES\tEMAIL\tVERIFIED\tDISPLAY_NAME\tGROUPS\tCREATED")
	for _, u := range users {
		verified := "-"
		if u.GetEmail() != "" {
			verified = fmt.Sprint(u.GetEmailVerified())
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", u.GetName(), u.GetRole(), OrNone(u.GetAllowedScopes()), OrNone(u.GetDefaultScopes()),
			OrDash(u.GetEmail()), verified, OrDash(u.GetDisplayName()), OrNone(u.GetGroups()), Stamp(u.GetCreateTime()))
	}
	return w.Flush()
}

func printServiceAccounts(out io.Writer, all []*adminv1.ServiceAccount) error {
	w := table(out, "CLIENT_ID\tSCOPES\tDEFAULT_SCOPES\tAUDIENCES\tCREATED\tPREVIOUS_SECRET_UNTIL\tTOKEN_EXCHANGE\tREQUIRE_DPOP")
	for _, s := range all {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%t\n", s.GetClientId(), OrNone(s.GetAllowedScopes()), OrNone(s.GetDefaultScopes()),
			OrNone(s.GetAllowedAudiences()), Stamp(s.GetCreateTime()), Stamp(s.GetPreviousSecretExpireTime()), exchangeLine(s), s.GetRequireDpop())
	}
	return w.Flush()
}

func printClients(out io.Writer, all []*adminv1.Client) error {
	w := table(out, "CLIENT_ID\tTYPE\tPKCE\tID_TOKEN_ALG\tREDIRECT_URIS\tORIGINS\tSCOPES\tDEFAULT_SCOPES\tAUDIENCES\tPOST_LOGOUT_REDIRECT_URIS\tBACKCHANNEL_LOGOUT_URI\tLOGOUT_REVOKES\tREQUIRE_DPOP\tCREATED")
	for _, c := range all {
		kind := "public"
		if c.GetConfidential() {
			kind = "confidential"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%t\t%t\t%s\n", c.GetClientId(), kind, OrDash(c.GetPkce()), OrDash(c.GetIdTokenSignedResponseAlg()), OrNone(c.GetRedirectUris()), OrNone(c.GetAllowedOrigins()), OrNone(c.GetAllowedScopes()),
			OrNone(c.GetDefaultScopes()), OrNone(c.GetAllowedAudiences()), OrNone(c.GetPostLogoutRedirectUris()), OrDash(c.GetBackchannelLogoutUri()),
			c.GetLogoutRevokesRefreshTokens(), c.GetRequireDpop(), Stamp(c.GetCreateTime()))
	}
	return w.Flush()
}

func printProviders(out io.Writer, all []*adminv1.Provider) error {
	w := table(out, "ID\tCLAIMED\tREGISTERED_BY\tKID\tCREATED")
	for _, p := range all {
		state := "unclaimed (claim expires " + Stamp(p.GetClaimExpireTime()) + ")"
		if p.GetClaimed() {
			state = "claimed " + Stamp(p.GetClaimTime())
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\n", p.GetId(), state, OrDash(p.GetRegisteredBy()), OrDash(p.GetKeyId()), Stamp(p.GetCreateTime()))
	}
	return w.Flush()
}

func printSigningKeys(out io.Writer, all []*adminv1.SigningKey) error {
	w := table(out, "KID\tALG\tSTATE\tCREATED\tACTIVATED\tRETIRED\tENCRYPTED")
	for _, k := range all {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%v\n", k.GetKeyId(), k.GetAlgorithm(), k.GetState(),
			Stamp(k.GetCreateTime()), Stamp(k.GetActivateTime()), Stamp(k.GetRetireTime()), k.GetEncrypted())
	}
	return w.Flush()
}

func printLogins(out io.Writer, all []*adminv1.Login) error {
	w := table(out, "LOGIN_ID\tCLIENT\tSCOPES\tLAST_REFRESH\tIDLE_EXPIRES\tEXPIRES")
	for _, l := range all {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", l.GetLoginId(), OrDash(l.GetClientId()), OrNone(l.GetScopes()),
			Stamp(l.GetRefreshTime()), Stamp(l.GetIdleExpireTime()), Stamp(l.GetExpireTime()))
	}
	return w.Flush()
}

func printSessions(out io.Writer, all []*adminv1.Session) error {
	w := table(out, "SESSION_ID\tSIGNED_IN\tCLIENTS\tLAST_USED\tIDLE_EXPIRES\tEXPIRES")
	for _, s := range all {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", s.GetSessionId(), Stamp(s.GetAuthTime()), OrNone(s.GetClientIds()),
			Stamp(s.GetLastUseTime()), Stamp(s.GetIdleExpireTime()), Stamp(s.GetExpireTime()))
	}
	return w.Flush()
}

// PrintAPIKeys prints API keys, never their secrets (which no answer holds).
func PrintAPIKeys(out io.Writer, keys []*authv1.ApiKey) error {
	w := table(out, "ID\tNAME\tSUBJECT\tSCOPES\tCREATED\tEXPIRES")
	for _, k := range keys {
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\n", k.GetId(), k.GetName(), k.GetSubject(), OrNone(k.GetScopes()), Stamp(k.GetCreateTime()), Stamp(k.GetExpireTime()))
	}
	return w.Flush()
}

// OrNone is a list for a table: its items, or "-".
func OrNone(items []string) string {
	if len(items) == 0 {
		return "-"
	}
	return strings.Join(items, " ")
}

// OrDash is a string for a table, or "-" when empty.
func OrDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// Stamp is a time for a table: RFC 3339 in UTC, or "-" when unset.
func Stamp(at *timestamppb.Timestamp) string {
	if at == nil {
		return "-"
	}
	return at.AsTime().UTC().Format(time.RFC3339)
}
