package gateway

import (
	"bufio"
	"context"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"strings"
	"testing"

	"google.golang.org/grpc"
	"google.golang.org/protobuf/reflect/protoreflect"
	"google.golang.org/protobuf/reflect/protoregistry"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
)

// apiRoute is one rule of the REST mapping.
type apiRoute struct{ selector, method, path string }

// apiRoutes reads every rule of proto/chit/auth/v1/auth_api.yaml, the file
// the gateway is generated from, so a route added there is checked here.
func apiRoutes(t *testing.T) []apiRoute {
	t.Helper()
	file, err := os.Open("../../proto/chit/auth/v1/auth_api.yaml")
	if err != nil {
		t.Fatal(err)
	}
	defer file.Close()
	rule := regexp.MustCompile(`^\s*(get|post|put|delete|patch): (\S+)$`)
	var routes []apiRoute
	var selector string
	for lines := bufio.NewScanner(file); lines.Scan(); {
		line := lines.Text()
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "- selector: "); ok {
			selector = name
		} else if match := rule.FindStringSubmatch(line); match != nil {
			routes = append(routes, apiRoute{selector, strings.ToUpper(match[1]), match[2]})
		}
	}
	return routes
}

// registerEmptyAnswers serves every method of the service named with its
// response message, empty: a successful answer for any route.
func registerEmptyAnswers(t *testing.T, conn *InProcess, service string) {
	t.Helper()
	found, err := protoregistry.GlobalFiles.FindDescriptorByName(protoreflect.FullName(service))
	if err != nil {
		t.Fatal(err)
	}
	methods := found.(protoreflect.ServiceDescriptor).Methods()
	desc := &grpc.ServiceDesc{ServiceName: service, HandlerType: (*any)(nil)}
	for i := range methods.Len() {
		method := methods.Get(i)
		input, err := protoregistry.GlobalTypes.FindMessageByName(method.Input().FullName())
		if err != nil {
			t.Fatal(err)
		}
		output, err := protoregistry.GlobalTypes.FindMessageByName(method.Output().FullName())
		if err != nil {
			t.Fatal(err)
		}
		desc.Methods = append(desc.Methods, grpc.MethodDesc{
			MethodName: string(method.Name()),
			Handler: func(_ any, _ context.Context, decode func(any) error, _ grpc.UnaryServerInterceptor) (any, error) {
				if err := decode(input.New().Interface()); err != nil {
					return nil, err
				}
				return output.New().Interface(), nil
			},
		})
	}
	conn.RegisterService(desc, nil)
}

// No REST answer of the API may be kept by a cache: many carry tokens or
// secrets (Token, RefreshToken, LoginCli, RefreshCli, CreateApiKey, the
// providers' claim and refresh, CreateServiceAccount, CreateClient, the
// secret rotations), and RFC 6749 §5.1 asks for Cache-Control: no-store and
// Pragma: no-cache on those. Every route of the mapping answers with both,
// successes and refusals alike.
func TestEveryAPIAnswerForbidsCaching(t *testing.T) {
	conn := NewInProcess(nil, nil, 0)
	for _, service := range []string{authv1.AuthService_ServiceDesc.ServiceName, authv1.AuthProviders_ServiceDesc.ServiceName, adminv1.AdminService_ServiceDesc.ServiceName} {
		registerEmptyAnswers(t, conn, service)
	}
	handler, err := New(context.Background(), conn, Options{
		JWKS: func() []byte { return []byte(`{"keys":[]}`) }, OpenAPI: []byte(`{}`),
		Discovery: func() Discovery { return Discovery{} },
	})
	if err != nil {
		t.Fatal(err)
	}
	forbidsCaching := func(t *testing.T, what string, rec *httptest.ResponseRecorder) {
		t.Helper()
		if got, pragma := rec.Header().Get("Cache-Control"), rec.Header().Get("Pragma"); got != "no-store" || pragma != "no-cache" {
			t.Errorf("%s: HTTP %d with Cache-Control %q, Pragma %q; want no-store, no-cache", what, rec.Code, got, pragma)
		}
	}

	routes := apiRoutes(t)
	if len(routes) < 40 {
		t.Fatalf("read %d routes from the REST mapping; it has more", len(routes))
	}
	placeholder := regexp.MustCompile(`\{[^}]+\}`)
	for _, route := range routes {
		var body *strings.Reader
		if route.method == http.MethodPost || route.method == http.MethodPut || route.method == http.MethodPatch {
			body = strings.NewReader(`{}`)
		} else {
			body = strings.NewReader("")
		}
		req := httptest.NewRequest(route.method, placeholder.ReplaceAllString(route.path, "x1"), body)
		req.Header.Set("Content-Type", "application/json")
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, req)
		what := route.selector + " (" + route.method + " " + route.path + ")"
		if rec.Code != http.StatusOK {
			t.Errorf("%s: HTTP %d %s, want the empty answer", what, rec.Code, rec.Body)
			continue
		}
		forbidsCaching(t, what, rec)
	}

	for _, refused := range []struct{ method, path, body string }{
		{http.MethodGet, "/v1/auth/nowhere", ""},
		{http.MethodGet, "/v1/auth/token", ""},
		{http.MethodPost, "/v1/auth/token", `{"passwordCredential":`},
		{http.MethodGet, "/v1/admin/users?dryRun=true", ""},
		{http.MethodGet, "/healthz", ""},
	} {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest(refused.method, refused.path, strings.NewReader(refused.body)))
		forbidsCaching(t, refused.method+" "+refused.path, rec)
	}

	// The public documents stay cacheable.
	for _, path := range []string{"/.well-known/jwks.json", "/.well-known/openid-configuration"} {
		rec := httptest.NewRecorder()
		handler.ServeHTTP(rec, httptest.NewRequest(http.MethodGet, path, nil))
		if got := rec.Header().Get("Cache-Control"); got != "public, max-age=300" {
			t.Errorf("%s: Cache-Control %q, want public, max-age=300", path, got)
		}
	}
}
