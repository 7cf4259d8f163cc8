package dpop

import "testing"

// Every way to get a token over gRPC is in the table, so that its proof
// names its REST form and one proof shape serves both transports
// (docs/sender-constrained-tokens.md). PollDeviceLogin was missing: over
// gRPC its proof had to name /chit.auth.v1.AuthService/PollDeviceLogin,
// over REST /v1/auth/device/token.
func TestEveryWayToGetATokenIsInTheTable(t *testing.T) {
	for _, fullMethod := range []string{
		"/chit.auth.v1.AuthService/Token",
		"/chit.auth.v1.AuthService/RefreshToken",
		"/chit.auth.v1.AuthService/LoginCli",
		"/chit.auth.v1.AuthService/RefreshCli",
		"/chit.auth.v1.AuthService/PollDeviceLogin",
	} {
		if _, _, ok := ChitMethod(fullMethod); !ok {
			t.Errorf("%s is not in the table", fullMethod)
		}
	}
}
