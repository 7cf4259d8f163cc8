package grpcapi

import (
	"context"

	"google.golang.org/protobuf/types/known/timestamppb"

	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/paging"
	"github.com/chit-auth/chit/internal/storage"
	adminv1 "github.com/chit-auth/chit/sdk/gen/chit/admin/v1"
)

// AdminServer serves chit.admin.v1.AdminService over the same core
// functions the chitd commands call. The access rule (ADMIN only) and the
// audit line are the interceptors'.
type AdminServer struct {
	adminv1.UnimplementedAdminServiceServer
	directory *accounts.Directory
	pages     *paging.Tokens
}

var _ adminv1.AdminServiceServer = (*AdminServer)(nil)

// NewAdminServer returns the AdminService handlers over deps.Directory,
// its lists' page tokens made with deps.Pages.
func NewAdminServer(deps Dependencies) *AdminServer {
	return &AdminServer{directory: deps.Directory, pages: deps.Pages}
}

// The lists' names in their page tokens: a token of one list is refused by
// another.
const usersList = "users"

func (s *AdminServer) CreateUser(ctx context.Context, req *adminv1.CreateUserRequest) (*adminv1.CreateUserResponse, error) {
	role := accounts.RoleUser
	if req.GetRole() != "" {
		var err error
		if role, err = accounts.ParseUserRole(req.GetRole()); err != nil {
			return nil, err
		}
	}
	grants, err := accounts.NewGrants(accounts.GrantAPIFields, req.GetAllowedScopes(), req.GetDefaultScopes(), nil)
	if err != nil {
		return nil, err
	}
	if err := s.directory.CreateUser(ctx, req.GetName(), req.GetPassword(), role, grants); err != nil {
		return nil, err
	}
	user, err := s.directory.GetUser(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &adminv1.CreateUserResponse{User: userMessage(user)}, nil
}

func (s *AdminServer) GetUser(ctx context.Context, req *adminv1.GetUserRequest) (*adminv1.GetUserResponse, error) {
	if err := accounts.ValidateName("user", req.GetName()); err != nil {
		return nil, err
	}
	user, err := s.directory.GetUser(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &adminv1.GetUserResponse{User: userMessage(user)}, nil
}

func (s *AdminServer) ListUsers(ctx context.Context, req *adminv1.ListUsersRequest) (*adminv1.ListUsersResponse, error) {
	page, err := s.pages.Page(ctx, usersList, paging.Request{Size: req.GetPageSize(), Token: req.GetPageToken()})
	if err != nil {
		return nil, err
	}
	users, err := s.directory.ListUsers(ctx, page)
	if err != nil {
		return nil, err
	}
	users, next := paging.Next(s.pages, usersList, page, users, func(user storage.User) string { return user.Name })
	resp := &adminv1.ListUsersResponse{Users: make([]*adminv1.User, len(users)), NextPageToken: next}
	for i, user := range users {
		resp.Users[i] = userMessage(user)
	}
	return resp, nil
}

func (s *AdminServer) SetUserRole(ctx context.Context, req *adminv1.SetUserRoleRequest) (*adminv1.SetUserRoleResponse, error) {
	if req.GetRole() == "" {
		return nil, chiterr.New(chiterr.InvalidArgument, "role is required: USER or ADMIN")
	}
	role, err := accounts.ParseUserRole(req.GetRole())
	if err != nil {
		return nil, err
	}
	if err := accounts.ValidateName("user", req.GetName()); err != nil {
		return nil, err
	}
	if err := s.directory.SetUserRole(ctx, req.GetName(), role); err != nil {
		return nil, err
	}
	user, err := s.directory.GetUser(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &adminv1.SetUserRoleResponse{User: userMessage(user)}, nil
}

func (s *AdminServer) SetUserScopes(ctx context.Context, req *adminv1.SetUserScopesRequest) (*adminv1.SetUserScopesResponse, error) {
	if err := accounts.ValidateName("user", req.GetName()); err != nil {
		return nil, err
	}
	grants, err := accounts.NewGrants(accounts.GrantAPIFields, req.GetAllowedScopes(), req.GetDefaultScopes(), nil)
	if err != nil {
		return nil, err
	}
	if err := s.directory.SetUserGrants(ctx, req.GetName(), grants); err != nil {
		return nil, err
	}
	user, err := s.directory.GetUser(ctx, req.GetName())
	if err != nil {
		return nil, err
	}
	return &adminv1.SetUserScopesResponse{User: userMessage(user)}, nil
}

func (s *AdminServer) DeleteUser(ctx context.Context, req *adminv1.DeleteUserRequest) (*adminv1.DeleteUserResponse, error) {
	if err := accounts.ValidateName("user", req.GetName()); err != nil {
		return nil, err
	}
	if err := s.directory.DeleteUser(ctx, req.GetName()); err != nil {
		return nil, err
	}
	return &adminv1.DeleteUserResponse{}, nil
}

func userMessage(user storage.User) *adminv1.User {
	return &adminv1.User{
		Name:          user.Name,
		Role:          user.Role,
		AllowedScopes: user.AllowedScopes,
		DefaultScopes: user.DefaultScopes,
		CreateTime:    timestamppb.New(user.CreatedAt),
	}
}
