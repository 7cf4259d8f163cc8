package grpcapi_test

import (
	"net/http"
	"slices"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/proto"
	"google.golang.org/protobuf/types/known/fieldmaskpb"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	"github.com/chit-auth/chit/internal/server/servertest"
)

// An admin gives a person an email, a display name and groups when creating
// them, reads them back, and changes the fields an update mask names
// (all of them without one), on both transports and stores; userinfo says
// what was set.
func TestAdminUserProfile(t *testing.T) {
	t.Parallel()
	servertest.ForEachStoreAndTransport(t, func(t *testing.T, e *servertest.Env, tr servertest.Transport) {
		c := servertest.NewAdminCallers(t, e, tr)
		created := &adminv1.CreateUserResponse{}
		servertest.WantCode(t, "CreateUser", tr.Invoke(t, adminv1.AdminService_CreateUser_FullMethodName, c.Admin, &adminv1.CreateUserRequest{
			Name: "dana", Password: "dana's long password", Email: "dana@example.com", EmailVerified: true, DisplayName: "Dana Ødegård",
			Groups: []string{"ops", "team:payments", "ops"},
		}, created), codes.OK)
		want := &adminv1.User{Name: "dana", Role: "USER", Email: "dana@example.com", EmailVerified: true, DisplayName: "Dana Ødegård",
			Groups: []string{"ops", "team:payments"}, CreateTime: created.GetUser().GetCreateTime()}
		if !proto.Equal(created.GetUser(), want) {
			t.Fatalf("CreateUser answered %v, want %v (duplicate groups dropped)", created.GetUser(), want)
		}
		got := &adminv1.GetUserResponse{}
		servertest.WantCode(t, "GetUser", tr.Invoke(t, adminv1.AdminService_GetUser_FullMethodName, c.Admin, &adminv1.GetUserRequest{Name: "dana"}, got), codes.OK)
		if !proto.Equal(got.GetUser(), want) {
			t.Fatalf("GetUser = %v, want %v", got.GetUser(), want)
		}
		list := &adminv1.ListUsersResponse{}
		servertest.WantCode(t, "ListUsers", tr.Invoke(t, adminv1.AdminService_ListUsers_FullMethodName, c.Admin, &adminv1.ListUsersRequest{}, list), codes.OK)
		if i := slices.IndexFunc(list.GetUsers(), func(u *adminv1.User) bool { return u.GetName() == "dana" }); i < 0 || !proto.Equal(list.GetUsers()[i], want) {
			t.Fatalf("ListUsers = %v; want dana as %v", list.GetUsers(), want)
		}

		for _, step := range []struct {
			name   string
			req    *adminv1.SetUserProfileRequest
			change func(*adminv1.User)
		}{
			{"the groups alone", &adminv1.SetUserProfileRequest{Groups: []string{"readers"}, Email: "ignored@example.com",
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"groups"}}},
				func(u *adminv1.User) { u.Groups = []string{"readers"} }},
			{"a new email, so unverified", &adminv1.SetUserProfileRequest{Email: "dana@example.org", UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"email"}}},
				func(u *adminv1.User) { u.Email, u.EmailVerified = "dana@example.org", false }},
			{"verified, and the display name removed", &adminv1.SetUserProfileRequest{EmailVerified: true,
				UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"email_verified", "display_name"}}},
				func(u *adminv1.User) { u.EmailVerified, u.DisplayName = true, "" }},
			{"everything, without a mask", &adminv1.SetUserProfileRequest{DisplayName: "D. Ødegård"},
				func(u *adminv1.User) {
					u.Email, u.EmailVerified, u.DisplayName, u.Groups = "", false, "D. Ødegård", nil
				}},
		} {
			step.req.Name = "dana"
			step.change(want)
			answer := &adminv1.SetUserProfileResponse{}
			servertest.WantCode(t, "SetUserProfile: "+step.name, tr.Invoke(t, adminv1.AdminService_SetUserProfile_FullMethodName, c.Admin, step.req, answer), codes.OK)
			if !proto.Equal(answer.GetUser(), want) {
				t.Fatalf("SetUserProfile (%s) answered %v, want %v", step.name, answer.GetUser(), want)
			}
		}
		servertest.WantCode(t, "SetUserProfile of nobody", tr.Invoke(t, adminv1.AdminService_SetUserProfile_FullMethodName, c.Admin,
			&adminv1.SetUserProfileRequest{Name: "nobody"}, &adminv1.SetUserProfileResponse{}), codes.NotFound)
		servertest.WantCode(t, "SetUserProfile by a USER", tr.Invoke(t, adminv1.AdminService_SetUserProfile_FullMethodName, c.User,
			&adminv1.SetUserProfileRequest{Name: servertest.UserName, Groups: []string{"admins"}}, &adminv1.SetUserProfileResponse{}), codes.PermissionDenied)
	})
}

// A profile the API cannot store is refused with INVALID_ARGUMENT naming
// the field, over gRPC and in REST's message, and nothing is written.
func TestAdminUserProfileRefusesBadValues(t *testing.T) {
	t.Parallel()
	e := servertest.Start(t)
	c := servertest.NewAdminCallers(t, e, servertest.Transports(e)["gRPC"])
	many := make([]string, 65)
	for i := range many {
		many[i] = strings.Repeat("g", i+1)
	}
	for _, bad := range []struct {
		name    string
		profile *adminv1.SetUserProfileRequest
		mention string
	}{
		{"an email with a display name", &adminv1.SetUserProfileRequest{Email: "Dana <dana@example.com>"}, "email"},
		{"two emails", &adminv1.SetUserProfileRequest{Email: "dana@example.com, eve@example.com"}, "email"},
		{"an email without @", &adminv1.SetUserProfileRequest{Email: "dana"}, "email"},
		{"an email over the length", &adminv1.SetUserProfileRequest{Email: strings.Repeat("d", 250) + "@example.com"}, "email"},
		{"verified without an email", &adminv1.SetUserProfileRequest{EmailVerified: true}, "email_verified"},
		{"a display name over the length", &adminv1.SetUserProfileRequest{DisplayName: strings.Repeat("d", 257)}, "display_name"},
		{"a display name with a control character", &adminv1.SetUserProfileRequest{DisplayName: "Dana\u0007"}, "display_name"},
		{"a group with a space", &adminv1.SetUserProfileRequest{Groups: []string{"team payments"}}, "groups"},
		{"an empty group", &adminv1.SetUserProfileRequest{Groups: []string{""}}, "groups"},
		{"too many groups", &adminv1.SetUserProfileRequest{Groups: many}, "groups"},
		{"an unknown mask path", &adminv1.SetUserProfileRequest{UpdateMask: &fieldmaskpb.FieldMask{Paths: []string{"role"}}}, "update_mask"},
	} {
		t.Run(bad.name, func(t *testing.T) {
			create := &adminv1.CreateUserRequest{Name: "dana", Password: "dana's long password", Email: bad.profile.GetEmail(),
				EmailVerified: bad.profile.GetEmailVerified(), DisplayName: bad.profile.GetDisplayName(), Groups: bad.profile.GetGroups()}
			calls := []struct {
				method string
				req    proto.Message
			}{{adminv1.AdminService_SetUserProfile_FullMethodName, withName(bad.profile, servertest.UserName)}}
			if bad.profile.GetUpdateMask() == nil {
				calls = append(calls, struct {
					method string
					req    proto.Message
				}{adminv1.AdminService_CreateUser_FullMethodName, create})
			}
			for _, call := range calls {
				err := e.Conn.Invoke(servertest.WithBearer(c.Admin), call.method, call.req, responseFor(call.method))
				if code := status.Code(err); code != codes.InvalidArgument || !strings.Contains(status.Convert(err).Message(), bad.mention+":") {
					t.Errorf("%s: got %v, want InvalidArgument naming %q", call.method, err, bad.mention)
				}
			}
		})
	}
	// Over REST, the message names the field too.
	code, body := servertest.RawAdmin(t, e, http.MethodPut, "/v1/admin/users/"+servertest.UserName+"/profile", c.Admin,
		`{"email":"Alice <alice@example.com>","updateMask":"email,emailVerified"}`, nil)
	if code != http.StatusBadRequest || !strings.Contains(body, "email:") {
		t.Fatalf("REST SetUserProfile with a bad email: %d %s; want 400 naming email", code, body)
	}
	code, body = servertest.RawAdmin(t, e, http.MethodPut, "/v1/admin/users/"+servertest.UserName+"/profile", c.Admin,
		`{"email":"alice@example.com","emailVerified":true,"updateMask":"email,emailVerified"}`, nil)
	if code != http.StatusOK || !strings.Contains(body, `"emailVerified":true`) {
		t.Fatalf("REST SetUserProfile with a mask in JSON: %d %s", code, body)
	}
	if _, err := e.Directory().GetUser(t.Context(), "dana"); err == nil {
		t.Fatal("a refused CreateUser left a user behind")
	}
	user, err := e.Directory().GetUser(t.Context(), servertest.UserName)
	if err != nil || user.DisplayName != "" || len(user.Groups) != 0 {
		t.Fatalf("refused changes altered the user: %+v, %v", user, err)
	}
}

func withName(req *adminv1.SetUserProfileRequest, name string) *adminv1.SetUserProfileRequest {
	named := proto.Clone(req).(*adminv1.SetUserProfileRequest)
	named.Name = name
	return named
}
