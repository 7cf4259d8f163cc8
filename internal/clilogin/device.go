package clilogin

import (
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"google.golang.org/genproto/googleapis/rpc/errdetails"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
)

// DeviceOptions configure one device login (RFC 8628): for a terminal with
// no browser on its machine (over SSH, no display).
type DeviceOptions struct {
	Auth authv1.AuthServiceClient
	// Out receives the URL and the code for the person.
	Out   io.Writer
	Scope string
	Now   func() time.Time
	// Wait waits d between polls; nil is a timer. Tests advance a clock.
	Wait func(ctx context.Context, d time.Duration) error
}

// Errors of a device login a person can act on.
var (
	ErrDeviceDenied  = errors.New("the login was denied on the verification page")
	ErrDeviceExpired = errors.New("the code expired before it was approved; run chit login again")
)

// The ErrorInfo reasons of PollDeviceLogin (auth.proto).
const (
	reasonPending  = "AUTHORIZATION_PENDING"
	reasonSlowDown = "SLOW_DOWN"
	reasonDenied   = "ACCESS_DENIED"
	reasonExpired  = "EXPIRED_TOKEN"
)

// slowDownStep is RFC 8628 §3.5's: a slow_down adds 5 seconds.
const slowDownStep = 5 * time.Second

// DeviceLogin starts a device authorization, prints where to approve it
// and polls, at the interval the server asks for, until the person
// approves (the credentials), denies or lets it expire.
func DeviceLogin(ctx context.Context, opts DeviceOptions) (Credentials, error) {
	if opts.Scope == "" {
		opts.Scope = DefaultScope
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Wait == nil {
		opts.Wait = func(ctx context.Context, d time.Duration) error {
			timer := time.NewTimer(d)
			defer timer.Stop()
			select {
			case <-timer.C:
				return nil
			case <-ctx.Done():
				return ctx.Err()
			}
		}
	}
	started, err := opts.Auth.StartDeviceLogin(ctx, &authv1.StartDeviceLoginRequest{Scope: opts.Scope})
	if err != nil {
		return Credentials{}, err
	}
	fmt.Fprintf(opts.Out, "On any device with a browser, open\n\n  %s\n\nand enter the code\n\n  %s\n\n(or open %s)\nWaiting for the approval...\n",
		started.GetVerificationUri(), started.GetUserCode(), started.GetVerificationUriComplete())
	interval := time.Duration(started.GetInterval()) * time.Second
	if interval <= 0 {
		interval = 5 * time.Second
	}
	deadline := opts.Now().Add(time.Duration(started.GetExpiresIn()) * time.Second)
	for {
		if err := opts.Wait(ctx, interval); err != nil {
			return Credentials{}, err
		}
		resp, err := opts.Auth.PollDeviceLogin(ctx, &authv1.PollDeviceLoginRequest{DeviceCode: started.GetDeviceCode()})
		if err == nil {
			return fromAccessToken(resp.GetAccessToken(), opts.Now()), nil
		}
		reason, retry := pollAnswer(err)
		switch reason {
		case reasonPending:
		case reasonSlowDown:
			interval += slowDownStep
			if retry > interval {
				interval = retry
			}
		case reasonDenied:
			return Credentials{}, ErrDeviceDenied
		case reasonExpired:
			return Credentials{}, ErrDeviceExpired
		default:
			return Credentials{}, err
		}
		if !opts.Now().Before(deadline) {
			return Credentials{}, ErrDeviceExpired
		}
	}
}

// pollAnswer reads a poll's ErrorInfo reason and RetryInfo delay.
func pollAnswer(err error) (string, time.Duration) {
	st, ok := status.FromError(err)
	if !ok || (st.Code() != codes.FailedPrecondition && st.Code() != codes.ResourceExhausted && st.Code() != codes.PermissionDenied) {
		return "", 0
	}
	var reason string
	var retry time.Duration
	for _, detail := range st.Details() {
		switch d := detail.(type) {
		case *errdetails.ErrorInfo:
			reason = d.GetReason()
		case *errdetails.RetryInfo:
			retry = d.GetRetryDelay().AsDuration()
		}
	}
	return reason, retry
}
