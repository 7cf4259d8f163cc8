package dpop

import (
	"net/http"
	"strings"
)

// chitMethods are the gRPC methods of Chit whose proofs name their REST
// form (proto/chit/auth/v1/auth_api.yaml): every way to get a token and
// CheckToken, so that a gRPC call and its REST twin take the same proof.
var chitMethods = map[string]struct{ method, path string }{
	"/chit.auth.v1.AuthService/Token":           {http.MethodPost, "/v1/auth/token"},
	"/chit.auth.v1.AuthService/RefreshToken":    {http.MethodPost, "/v1/auth/token/refresh"},
	"/chit.auth.v1.AuthService/LoginCli":        {http.MethodPost, "/v1/auth/cli/login"},
	"/chit.auth.v1.AuthService/RefreshCli":      {http.MethodPost, "/v1/auth/cli/refresh"},
	"/chit.auth.v1.AuthService/PollDeviceLogin": {http.MethodPost, "/v1/auth/device/token"},
	"/chit.auth.v1.AuthService/CheckToken":      {http.MethodGet, "/v1/auth/check"},
}

// ChitMethod is the HTTP method and path a proof for the gRPC method
// fullMethod ("/chit.auth.v1.AuthService/Token") names, for the methods
// of Chit in its table (docs/sender-constrained-tokens.md); ok is false for
// any other method. The server and the SDK both read this table, so they
// agree.
func ChitMethod(fullMethod string) (httpMethod, path string, ok bool) {
	target, ok := chitMethods[fullMethod]
	return target.method, target.path, ok
}

// MethodURL is the htm and htu of a proof for a gRPC call of fullMethod on
// the service whose public base URL is base (Chit's issuer, or a resource
// server's URL): a Chit method of ChitMethod's table names its REST form;
// any other names POST and base + fullMethod
// ("https://api.example.com/shop.v1.Orders/Get"). ok reports whether the
// method was in the table.
func MethodURL(base, fullMethod string) (method, url string, ok bool) {
	base = strings.TrimSuffix(base, "/")
	if method, path, ok := ChitMethod(fullMethod); ok {
		return method, base + path, true
	}
	return http.MethodPost, base + fullMethod, false
}
