package grpcapi_test

import (
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/server/servertest"
)

// Admins list a person's sign-in sessions and end one or all of them, on
// both transports and stores; each call writes its audit line, and a
// session is found only under its own user.
func TestAdminListsAndEndsSessions(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		list := func(t *testing.T) []*adminv1.Session {
			t.Helper()
			var listed adminv1.ListSessionsResponse
			code := tr.Invoke(t, adminv1.AdminService_ListSessions_FullMethodName, c.Admin, &adminv1.ListSessionsRequest{Name: servertest.UserName}, &listed)
			servertest.WantCode(t, "ListSessions", code, codes.OK)
			return listed.GetSessions()
		}
		end := func(t *testing.T, name, id string) (int32, codes.Code) {
			t.Helper()
			var ended adminv1.EndSessionsResponse
			code := tr.Invoke(t, adminv1.AdminService_EndSessions_FullMethodName, c.Admin, &adminv1.EndSessionsRequest{Name: name, SessionId: id}, &ended)
			return ended.GetEnded(), code
		}
		if sessions := list(t); len(sessions) != 0 {
			t.Fatalf("sessions before any sign-in on the page: %v", sessions)
		}
		// A sign-in on the page (the CLI's here) starts a session.
		servertest.CodeFor(t, e, tr, servertest.NewVerifier(t), "openid")
		sessions := list(t)
		if len(sessions) != 1 {
			t.Fatalf("sessions = %v", sessions)
		}
		session := sessions[0]
		if session.GetName() != servertest.UserName || !slices.Equal(session.GetClientIds(), []string{authorize.CLIClientID}) ||
			!slices.Equal(session.GetAmr(), []string{"pwd"}) || session.GetAuthTime() == nil || session.GetExpireTime() == nil ||
			!session.GetIdleExpireTime().AsTime().After(session.GetCreateTime().AsTime()) {
			t.Fatalf("session %v", session)
		}
		// Another user's name, a made-up id or garbage find nothing.
		for _, tc := range []struct{ name, id string }{
			{servertest.AdminName, session.GetSessionId()},
			{servertest.UserName, strings.Repeat("A", 22)},
			{servertest.UserName, "../../etc"},
		} {
			if _, code := end(t, tc.name, tc.id); code != codes.NotFound {
				t.Fatalf("EndSessions %s %q: %v, want NotFound", tc.name, tc.id, code)
			}
		}
		if _, code := end(t, "not a name", ""); code != codes.InvalidArgument {
			t.Fatalf("EndSessions of an invalid name: %v", code)
		}
		if n, code := end(t, servertest.UserName, session.GetSessionId()); code != codes.OK || n != 1 {
			t.Fatalf("EndSessions one = %d, %v", n, code)
		}
		if n, code := end(t, servertest.UserName, session.GetSessionId()); code != codes.OK || n != 0 {
			t.Fatalf("EndSessions one again = %d, %v", n, code)
		}
		if sessions := list(t); len(sessions) != 0 {
			t.Fatalf("sessions after ending it: %v", sessions)
		}
		servertest.CodeFor(t, e, tr, servertest.NewVerifier(t), "openid")
		servertest.CodeFor(t, e, tr, servertest.NewVerifier(t), "openid")
		if n, code := end(t, servertest.UserName, ""); code != codes.OK || n != 2 {
			t.Fatalf("EndSessions all = %d, %v", n, code)
		}
		if sessions := list(t); len(sessions) != 0 {
			t.Fatalf("sessions after ending all: %v", sessions)
		}
		// Callers other than admins are refused.
		if code := tr.Invoke(t, adminv1.AdminService_ListSessions_FullMethodName, c.User, &adminv1.ListSessionsRequest{Name: servertest.UserName},
			&adminv1.ListSessionsResponse{}); code != codes.PermissionDenied {
			t.Fatalf("a user's ListSessions: %v", code)
		}
		var audited []string
		for _, line := range servertest.AuditLines(e) {
			if action, _ := line["action"].(string); strings.Contains(action, "Sessions") || strings.Contains(action, "sessions") {
				audited = append(audited, action+" "+line["target"].(string))
			}
		}
		if len(audited) < 8 || !slices.ContainsFunc(audited, func(a string) bool {
			return strings.Contains(a, "EndSessions "+servertest.UserName) || strings.Contains(a, "sessions:end "+servertest.UserName)
		}) {
			t.Fatalf("audit lines %v", audited)
		}
	})
}
