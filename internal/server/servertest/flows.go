package servertest

import (
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"google.golang.org/grpc/codes"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/accounts"
	"github.com/chit-auth/chit/internal/authorize"
	"github.com/chit-auth/chit/internal/storage"
)

// Loopback is the CLI's redirect URI in the sign-in flows of the tests.
const Loopback = "http://127.0.0.1:43110/callback"

// NewVerifier is a fresh PKCE code verifier.
func NewVerifier(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.RawURLEncoding.EncodeToString(b)
}

// AuthorizeRequest is a GetAuthorizeUrl request of the CLI for scope, with
// the challenge of verifier.
func AuthorizeRequest(verifier, scope string) *authv1.GetAuthorizeUrlRequest {
	return &authv1.GetAuthorizeUrlRequest{
		State: "state-123", RedirectUri: Loopback, Scope: scope, Nonce: "nonce-456",
		CodeChallenge: authorize.ChallengeFor(verifier), CodeChallengeMethod: "S256",
	}
}

// GetAuthorizeURL calls GetAuthorizeUrl over tr.
func GetAuthorizeURL(t *testing.T, tr Transport, req *authv1.GetAuthorizeUrlRequest) (string, codes.Code) {
	t.Helper()
	resp := &authv1.GetAuthorizeUrlResponse{}
	code := tr.Invoke(t, authv1.AuthService_GetAuthorizeUrl_FullMethodName, "", req, resp)
	return resp.GetUrl(), code
}

// NoRedirects is a browser that stops at the redirect, as the CLI's loopback
// listener would receive it.
func NoRedirects(t *testing.T, e *Env) *Browser {
	b := e.NewBrowser(t)
	b.Client.CheckRedirect = func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }
	return b
}

// SignIn submits the page for req and returns the redirect's query.
func SignIn(t *testing.T, e *Env, authorizeURL, password, action string) (*http.Response, url.Values) {
	t.Helper()
	b := NoRedirects(t, e)
	page := b.Open(t, authorizeURL)
	if page.Status != http.StatusOK {
		t.Fatalf("sign-in page: HTTP %d: %s", page.Status, page.Body)
	}
	resp := b.Submit(t, page, url.Values{"username": {UserName}, "password": {password}, "action": {action}})
	resp.Body.Close()
	location, err := resp.Location()
	if err != nil {
		return resp, nil
	}
	return resp, location.Query()
}

// LoginCli calls AuthService.LoginCli over tr.
func LoginCli(t *testing.T, tr Transport, code, redirectURI, verifier string) (*authv1.AccessToken, codes.Code) {
	t.Helper()
	resp := &authv1.LoginCliResponse{}
	c := tr.Invoke(t, authv1.AuthService_LoginCli_FullMethodName, "",
		&authv1.LoginCliRequest{Code: code, RedirectUri: redirectURI, CodeVerifier: verifier}, resp)
	return resp.GetAccessToken(), c
}

// RefreshCli calls AuthService.RefreshCli over tr.
func RefreshCli(t *testing.T, tr Transport, refreshToken string) (*authv1.AccessToken, codes.Code) {
	t.Helper()
	resp := &authv1.RefreshCliResponse{}
	c := tr.Invoke(t, authv1.AuthService_RefreshCli_FullMethodName, "", &authv1.RefreshCliRequest{RefreshToken: refreshToken}, resp)
	return resp.GetAccessToken(), c
}

// CodeFor runs GetAuthorizeUrl and the page, and returns the code.
func CodeFor(t *testing.T, e *Env, tr Transport, verifier, scope string) string {
	t.Helper()
	authorizeURL, c := GetAuthorizeURL(t, tr, AuthorizeRequest(verifier, scope))
	WantCode(t, "GetAuthorizeUrl", c, codes.OK)
	resp, query := SignIn(t, e, authorizeURL, UserPassword, "sign-in")
	if resp.StatusCode != http.StatusSeeOther || query.Get("state") != "state-123" || query.Get("code") == "" {
		t.Fatalf("sign-in answered %d with %v", resp.StatusCode, query)
	}
	if location, _ := resp.Location(); !strings.HasPrefix(location.String(), Loopback+"?") {
		t.Fatalf("redirected to %s, want %s", location, Loopback)
	}
	return query.Get("code")
}

// Callers holds one access token per kind of caller.
type Callers struct{ User, Service, Orchestrator string }

// NewCallers signs in the test user, service and orchestrator over tr.
func NewCallers(t *testing.T, e *Env, tr Transport) Callers {
	t.Helper()
	user, code := tr.Token(t, PasswordRequest(UserName, UserPassword))
	WantCode(t, "user token", code, codes.OK)
	service, code := tr.Token(t, ClientRequest(ServiceName, e.ServiceSecret))
	WantCode(t, "service token", code, codes.OK)
	orchestrator, code := tr.Token(t, ClientRequest(OrchestratorName, e.OrchestratorSecret))
	WantCode(t, "orchestrator token", code, codes.OK)
	return Callers{user.GetAccessToken(), service.GetAccessToken(), orchestrator.GetAccessToken()}
}

// The ADMIN that NewAdminCallers creates.
const (
	AdminName     = "root"
	AdminPassword = "admin password for tests"
)

// AdminCallers are an access token of each kind of caller, and an ADMIN's.
type AdminCallers struct {
	Callers
	Admin, Provider string
}

// NewAdminCallers creates the ADMIN AdminName and a provider of the test
// service, and signs every kind of caller in over tr.
func NewAdminCallers(t *testing.T, e *Env, tr Transport) AdminCallers {
	t.Helper()
	if err := e.Directory().CreateUser(t.Context(), AdminName, AdminPassword, accounts.RoleAdmin, storage.Grants{}); err != nil {
		t.Fatal(err)
	}
	admin, code := tr.Token(t, PasswordRequest(AdminName, AdminPassword))
	WantCode(t, "admin token", code, codes.OK)
	c := AdminCallers{Callers: NewCallers(t, e, tr), Admin: admin.GetAccessToken()}
	claimTokens := Register(t, tr, c.Service, "provider-1")
	claimed, code := Claim(t, tr, c.Service, claimTokens...)
	WantCode(t, "claim", code, codes.OK)
	providerTokens, code := ProviderRefresh(t, tr, claimed[0].GetRefreshToken())
	WantCode(t, "provider token", code, codes.OK)
	c.Provider = providerTokens[0]
	return c
}

// Register registers the providers ids over tr and returns their claim
// tokens.
func Register(t *testing.T, tr Transport, bearer string, ids ...string) []string {
	t.Helper()
	req := &authv1.AuthProvidersRegisterRequest{}
	for _, id := range ids {
		req.Items = append(req.Items, &authv1.AuthProvidersRegisterRequestItem{Id: id})
	}
	resp := &authv1.AuthProvidersRegisterResponse{}
	WantCode(t, "register", tr.Invoke(t, authv1.AuthProviders_Register_FullMethodName, bearer, req, resp), codes.OK)
	var claimTokens []string
	for _, item := range resp.GetResponses() {
		claimTokens = append(claimTokens, item.GetClaimToken())
	}
	if len(claimTokens) != len(ids) {
		t.Fatalf("register answered %d items for %d", len(claimTokens), len(ids))
	}
	return claimTokens
}

// Claim calls AuthProviders.Claim over tr.
func Claim(t *testing.T, tr Transport, bearer string, claimTokens ...string) ([]*authv1.PublicKeyAndRefreshToken, codes.Code) {
	t.Helper()
	req := &authv1.AuthProvidersClaimRequest{}
	for _, token := range claimTokens {
		req.Items = append(req.Items, &authv1.AuthProvidersRegisterResponseItem{ClaimToken: token})
	}
	resp := &authv1.AuthProvidersClaimResponse{}
	code := tr.Invoke(t, authv1.AuthProviders_Claim_FullMethodName, bearer, req, resp)
	return resp.GetResponses(), code
}

// ProviderRefresh calls AuthProviders.Refresh over tr and returns the access
// tokens.
func ProviderRefresh(t *testing.T, tr Transport, refreshTokens ...string) ([]string, codes.Code) {
	t.Helper()
	req := &authv1.AuthProvidersRefreshRequest{}
	for _, token := range refreshTokens {
		req.Items = append(req.Items, &authv1.RefreshToken{RefreshToken: token})
	}
	resp := &authv1.AuthProvidersRefreshResponse{}
	code := tr.Invoke(t, authv1.AuthProviders_Refresh_FullMethodName, "", req, resp)
	var tokens []string
	for _, item := range resp.GetResponses() {
		tokens = append(tokens, item.GetAccessToken())
	}
	return tokens, code
}

// AuditLines are the audit lines the server logged so far.
func AuditLines(e *Env) []map[string]any {
	var lines []map[string]any
	for _, line := range strings.Split(e.Logs.String(), "\n") {
		var entry map[string]any
		if json.Unmarshal([]byte(line), &entry) == nil && entry["audit"] == true && entry["actor"] != nil {
			lines = append(lines, entry)
		}
	}
	return lines
}

// RawAdmin sends one REST request to the Admin API as written, and returns
// its status and body.
func RawAdmin(t *testing.T, e *Env, method, path, bearer, body string, header map[string]string) (int, string) {
	t.Helper()
	var reader io.Reader
	if body != "" {
		reader = strings.NewReader(body)
	}
	req, err := http.NewRequest(method, e.HTTPBase()+path, reader)
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	for name, value := range header {
		req.Header.Set(name, value)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// Get fetches url and returns its status and body.
func Get(t *testing.T, url string) (int, string) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(raw)
}

// Do sends req and returns its status and body.
func Do(t *testing.T, req *http.Request) (int, string) {
	t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(body)
}
