package dpop

import (
	"os"
	"strings"
	"testing"
)

// TestChitMethodsMatchTheRESTMapping: the table says what the gateway
// configuration says, so a gRPC call and its REST twin take one proof.
func TestChitMethodsMatchTheRESTMapping(t *testing.T) {
	raw, err := os.ReadFile("../../proto/chit/auth/v1/auth_api.yaml")
	if err != nil {
		t.Fatal(err)
	}
	rules := map[string]string{} // selector → "VERB path"
	lines := strings.Split(string(raw), "\n")
	for i, line := range lines {
		selector, ok := strings.CutPrefix(strings.TrimSpace(line), "- selector: ")
		if !ok || i+1 == len(lines) {
			continue
		}
		verb, path, _ := strings.Cut(strings.TrimSpace(lines[i+1]), ": ")
		rules["/"+strings.ReplaceAll(selector, ".", "/")] = strings.ToUpper(verb) + " " + path
	}
	if len(chitMethods) == 0 {
		t.Fatal("the table is empty")
	}
	for fullMethod, target := range chitMethods {
		// rules' keys have every dot made a slash; compare that way.
		key := strings.ReplaceAll(fullMethod, ".", "/")
		if got := rules[key]; got != target.method+" "+target.path {
			t.Errorf("%s: table %s %s, auth_api.yaml %q", fullMethod, target.method, target.path, got)
		}
	}
}

func TestMethodURL(t *testing.T) {
	for _, tt := range []struct{ base, fullMethod, method, url string }{
		{"https://chit.example.com", "/chit.auth.v1.AuthService/CheckToken", "GET", "https://chit.example.com/v1/auth/check"},
		{"https://chit.example.com/", "/chit.auth.v1.AuthService/Token", "POST", "https://chit.example.com/v1/auth/token"},
		{"https://chit.example.com/base", "/chit.auth.v1.AuthService/RefreshCli", "POST", "https://chit.example.com/base/v1/auth/cli/refresh"},
		{"https://api.example.com", "/shop.v1.Orders/Get", "POST", "https://api.example.com/shop.v1.Orders/Get"},
	} {
		method, url, ok := MethodURL(tt.base, tt.fullMethod)
		_, _, inTable := ChitMethod(tt.fullMethod)
		if method != tt.method || url != tt.url || ok != inTable {
			t.Errorf("%s on %s: %s %s %v, want %s %s", tt.fullMethod, tt.base, method, url, ok, tt.method, tt.url)
		}
	}
	if _, _, ok := ChitMethod("/chit.admin.v1.AdminService/ListUsers"); ok {
		t.Error("an admin method is in the table")
	}
}
