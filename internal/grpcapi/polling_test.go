package grpcapi

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/chit-auth/chit/internal/chiterr"
	"github.com/chit-auth/chit/internal/device"
)

// A device's "not yet" polls stay out of the info log; a denial does not.
func TestDevicePollsAreNotWarnings(t *testing.T) {
	for _, tc := range []struct {
		reason string
		logged bool
	}{
		{device.ReasonAuthorizationPending, false},
		{device.ReasonSlowDown, false},
		{device.ReasonAccessDenied, true},
		{device.ReasonExpiredToken, true},
	} {
		var out bytes.Buffer
		logger := slog.New(slog.NewTextHandler(&out, &slog.HandlerOptions{Level: slog.LevelInfo}))
		err := chiterr.New(chiterr.FailedPrecondition, "not yet").WithReason(tc.reason)
		_ = finish(context.Background(), logger, InterceptorConfig{}, "/chit.auth.v1.AuthService/PollDeviceLogin", "", time.Now(), err)
		if logged := strings.Contains(out.String(), "PollDeviceLogin"); logged != tc.logged {
			t.Errorf("%s: logged=%t, want %t: %q", tc.reason, logged, tc.logged, out.String())
		}
	}
}
