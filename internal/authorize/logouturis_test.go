package authorize

import (
	"strings"
	"testing"

	"github.com/chit-auth/chit/internal/storage"
)

func TestValidateClientLogout(t *testing.T) {
	good := []storage.ClientLogout{
		{},
		{PostLogoutRedirectURIs: []string{"https://app.example/bye", "http://127.0.0.1:8000/bye", "http://localhost/bye", "http://[::1]/x?y=1"}},
		{BackchannelLogoutURI: "https://app.example/backchannel?tenant=a"},
		{BackchannelLogoutURI: "http://127.0.0.1:9000/bc", RevokesRefreshTokens: true},
	}
	for _, settings := range good {
		if err := ValidateClientLogout(settings); err != nil {
			t.Errorf("%+v refused: %v", settings, err)
		}
	}
	many := make([]string, MaxPostLogoutRedirectURIs+1)
	for i := range many {
		many[i] = "https://app.example/" + strings.Repeat("a", i+1)
	}
	bad := []struct {
		name     string
		settings storage.ClientLogout
		field    string
	}{
		{"http off loopback", storage.ClientLogout{PostLogoutRedirectURIs: []string{"http://app.example/bye"}}, "post_logout_redirect_uris"},
		{"fragment", storage.ClientLogout{PostLogoutRedirectURIs: []string{"https://app.example/bye#x"}}, "post_logout_redirect_uris"},
		{"relative", storage.ClientLogout{PostLogoutRedirectURIs: []string{"/bye"}}, "post_logout_redirect_uris"},
		{"javascript", storage.ClientLogout{PostLogoutRedirectURIs: []string{"javascript:alert(1)"}}, "post_logout_redirect_uris"},
		{"userinfo", storage.ClientLogout{PostLogoutRedirectURIs: []string{"https://a@app.example/bye"}}, "post_logout_redirect_uris"},
		{"too many", storage.ClientLogout{PostLogoutRedirectURIs: many}, "post_logout_redirect_uris"},
		{"too long", storage.ClientLogout{PostLogoutRedirectURIs: []string{"https://app.example/" + strings.Repeat("a", MaxRedirectURILength)}}, "post_logout_redirect_uris"},
		{"backchannel http", storage.ClientLogout{BackchannelLogoutURI: "http://app.example/bc"}, "backchannel_logout_uri"},
		{"backchannel fragment", storage.ClientLogout{BackchannelLogoutURI: "https://app.example/bc#f"}, "backchannel_logout_uri"},
		{"backchannel relative", storage.ClientLogout{BackchannelLogoutURI: "bc"}, "backchannel_logout_uri"},
	}
	for _, tc := range bad {
		t.Run(tc.name, func(t *testing.T) {
			err := ValidateClientLogout(tc.settings)
			if err == nil || !strings.HasPrefix(err.Error(), tc.field+":") {
				t.Fatalf("err = %v, want one naming %s", err, tc.field)
			}
		})
	}
}
