package dpop

import "testing"

func TestAccessToken(t *testing.T) {
	for _, tt := range []struct {
		authorization, token string
		dpopScheme           bool
	}{
		{"Bearer abc", "abc", false},
		{"bearer abc", "abc", false},
		{"DPoP abc", "abc", true},
		{"dpop  abc ", "abc", true},
		{"Basic abc", "", false},
		{"Bearer", "", false},
		{"", "", false},
	} {
		token, dpopScheme := AccessToken(tt.authorization)
		if token != tt.token || dpopScheme != tt.dpopScheme {
			t.Errorf("AccessToken(%q) = %q, %v; want %q, %v", tt.authorization, token, dpopScheme, tt.token, tt.dpopScheme)
		}
	}
}
