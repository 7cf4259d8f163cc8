package admincli

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/spf13/cobra"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
	"github.com/chit-auth/chit/internal/envflag"
	"github.com/chit-auth/chit/internal/secretin"
)

// The statuses of a stream, as SecurityEventStream.status names them.
const (
	streamEnabled = "enabled"
	streamPaused  = "paused"
)

// authorizationFlags are the ways `ssf create` takes a push stream's
// Authorization header value. Never a flag's value: a bearer token on the
// command line is in every user's process list and the shell's history.
type authorizationFlags struct {
	file, env string
	stdin     bool
}

func (a *authorizationFlags) register(cmd *cobra.Command) {
	flags := cmd.Flags()
	flags.StringVar(&a.file, "authorization-file", "", "a file whose first line is the Authorization header value each SET is sent with (push)")
	flags.StringVar(&a.env, "authorization-env", "", "the name of an environment variable holding that value (push)")
	flags.BoolVar(&a.stdin, "authorization-stdin", false, "read that value from standard input (push)")
	cmd.MarkFlagsMutuallyExclusive("authorization-file", "authorization-env", "authorization-stdin")
}

func (a *authorizationFlags) given() bool { return a.file != "" || a.env != "" || a.stdin }

// read returns the header value, or "" when none is given.
func (a *authorizationFlags) read(stdin io.Reader) (string, error) {
	var value string
	var err error
	switch {
	case a.file != "":
		value, err = secretin.ReadFile(a.file)
	case a.env != "":
		value, err = secretin.FromEnv(a.env)
	case a.stdin:
		value, err = secretin.ReadLine(stdin)
	default:
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("the Authorization value: %w", err)
	}
	return value, nil
}

func (t *tree) ssfCommand() *cobra.Command {
	cmd := &cobra.Command{Use: "ssf", Short: "Manage Shared Signals (SSF) streams: the receivers told of revocations as Security Event Tokens",
		Long: `Manage Shared Signals (SSF) streams. A stream delivers the revocation feed
(sessions and credentials revoked) to one receiver as Security Event Tokens
(CAEP session-revoked, credential-change) signed with the server's key: by
push (RFC 8935: Chit POSTs each SET to the receiver's URL) or by poll
(RFC 8936: a service account fetches and acknowledges them, with a token
carrying the scope chit:ssf). A new stream starts at the feed's head: its
receiver hears of revocations made from then on.`}

	var (
		pushURL, receiver, audience, description string
		poll                                     bool
		eventTypes                               []string
		authorization                            authorizationFlags
	)
	create := &cobra.Command{
		Use:   "create ID (--push URL [--authorization-file F | --authorization-env VAR | --authorization-stdin] | --poll --receiver SERVICE) --audience AUD [--event-type URI]... [--description D]",
		Short: "Register a receiver: a push stream to its URL, or a poll stream for its service account",
		Long: `Register a Shared Signals receiver as stream ID.

--push URL delivers each SET by POSTing it to URL (https, or http on a
loopback address). When the receiver wants credentials on those requests,
give the whole Authorization header value ("Bearer ...") in a file
(--authorization-file), an environment variable (--authorization-env names
the variable) or on standard input (--authorization-stdin): never as an
argument, which other users could see. It is stored (sealed when the server
has a key-encryption key) and never shown again.

--poll --receiver SERVICE keeps the SETs until the service account SERVICE
polls and acknowledges them (RFC 8936), with a token carrying the scope
chit:ssf.

--audience is the SETs' aud: the receiver's identifier. --event-type limits
the stream to these event type URIs (repeat it); by default every type Chit
sends is delivered. The stream is enabled at once, from the feed's head.`,
		Example: "  printf 'Bearer %s' \"$RECEIVER_TOKEN\" > receiver.auth\n" +
			t.example("ssf create siem --push https://siem.example/ssf/events --audience https://siem.example \\\n"+
				"      --authorization-file receiver.auth --description 'the SIEM'\n") +
			t.example("ssf create gateway --poll --receiver api-gateway --audience https://gateway.example \\\n"+
				"      --event-type https://schemas.openid.net/secevent/caep/event-type/session-revoked"),
		Args: cobra.ExactArgs(1),
	}
	create.RunE = func(cmd *cobra.Command, args []string) error {
		req := &adminv1.CreateSecurityEventStreamRequest{Id: args[0], Description: description, Audience: audience, EventTypes: eventTypes}
		switch {
		case pushURL != "" && poll:
			return errors.New("give --push URL or --poll, not both")
		case pushURL != "":
			if receiver != "" {
				return errors.New("--receiver is for a poll stream; a push stream is delivered to its --push URL")
			}
			req.Delivery, req.EndpointUrl = "push", pushURL
		case poll:
			if authorization.given() {
				return errors.New("an Authorization value is for a push stream; a poll stream's receiver authenticates with its own token")
			}
			req.Delivery, req.Receiver = "poll", receiver
		default:
			return errors.New("give --push URL (Chit POSTs the SETs to the receiver) or --poll --receiver SERVICE (the receiver fetches them)")
		}
		var err error
		if req.Authorization, err = authorization.read(cmd.InOrStdin()); err != nil {
			return err
		}
		return run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, _ []string) (*adminv1.SecurityEventStream, error) {
			resp, err := admin.CreateSecurityEventStream(ctx, req)
			return resp.GetStream(), err
		}, func(_ *cobra.Command, w io.Writer, _ []string, stream *adminv1.SecurityEventStream) error {
			return printSecurityEventStreams(w, []*adminv1.SecurityEventStream{stream})
		})(cmd, args)
	}
	flags := create.Flags()
	flags.StringVar(&pushURL, "push", "", "deliver by push (RFC 8935): POST each SET to this URL")
	flags.BoolVar(&poll, "poll", false, "deliver by poll (RFC 8936): --receiver fetches the SETs")
	flags.StringVar(&receiver, "receiver", "", "the service account (client id) that polls a poll stream")
	flags.StringVar(&audience, "audience", "", "the SETs' aud: the receiver's identifier")
	flags.StringArrayVar(&eventTypes, "event-type", nil, "an event type URI to deliver (repeat for more; default: every type)")
	flags.StringVar(&description, "description", "", "what the stream is for, for people")
	authorization.register(create)
	_ = create.MarkFlagRequired("audience")
	envflag.NoEnv(flags, "push", "poll", "receiver", "audience", "event-type", "description", "authorization-file", "authorization-env", "authorization-stdin")

	get := getCommand(t, "get ID", "Show a stream and how its delivery goes", func(ctx context.Context, admin adminv1.AdminServiceClient, id string) (*adminv1.SecurityEventStream, error) {
		resp, err := admin.GetSecurityEventStream(ctx, &adminv1.GetSecurityEventStreamRequest{Id: id})
		return resp.GetStream(), err
	}, printSecurityEventStreams)
	list := listCommand(t, "list", "List streams by id", cobra.NoArgs,
		func(ctx context.Context, admin adminv1.AdminServiceClient, _ []string, size int32, token string) ([]*adminv1.SecurityEventStream, string, error) {
			page, err := admin.ListSecurityEventStreams(ctx, &adminv1.ListSecurityEventStreamsRequest{PageSize: size, PageToken: token})
			return page.GetStreams(), page.GetNextPageToken(), err
		}, func(all []*adminv1.SecurityEventStream) *adminv1.ListSecurityEventStreamsResponse {
			return &adminv1.ListSecurityEventStreamsResponse{Streams: all}
		}, printSecurityEventStreams)
	remove := deleteCommand(t, "stream", "delete ID", "Delete a stream; nothing more is delivered to its receiver",
		func(ctx context.Context, admin adminv1.AdminServiceClient, id string) (proto.Message, error) {
			return admin.DeleteSecurityEventStream(ctx, &adminv1.DeleteSecurityEventStreamRequest{Id: id})
		})
	pause := t.streamStatusCommand("pause ID", "Pause a stream: it keeps its position and delivers nothing until enabled", streamPaused)
	enable := t.streamStatusCommand("enable ID", "Enable a paused stream: it delivers what happened meanwhile, from where it stopped", streamEnabled)

	var state string
	verify := &cobra.Command{
		Use:   "verify ID [--state S]",
		Short: "Send the stream's receiver a verification event, to check the stream reaches it",
		Long: `Send the stream's receiver an SSF verification event carrying --state, which
the receiver can match to this request: a push stream POSTs it at once, a poll
stream's next poll returns it. Whether it arrived, the receiver tells; a push
that failed shows in ssf get (LAST_ERROR).`,
		Example: t.example("ssf verify siem --state check-2026-12-08"),
		Args:    cobra.ExactArgs(1),
		RunE: run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (*adminv1.VerifySecurityEventStreamResponse, error) {
			return admin.VerifySecurityEventStream(ctx, &adminv1.VerifySecurityEventStreamRequest{Id: args[0], State: state})
		}, func(_ *cobra.Command, w io.Writer, args []string, _ *adminv1.VerifySecurityEventStreamResponse) error {
			_, err := fmt.Fprintf(w, "sent a verification event to stream %s\n", args[0])
			return err
		}),
	}
	verify.Flags().StringVar(&state, "state", "", "the state the verification event carries")
	envflag.NoEnv(verify.Flags(), "state")

	cmd.AddCommand(create, get, list, remove, pause, enable, verify)
	return cmd
}

// streamStatusCommand is `ssf pause ID` or `ssf enable ID`.
func (t *tree) streamStatusCommand(use, short, status string) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(1),
		RunE: run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (*adminv1.SecurityEventStream, error) {
			resp, err := admin.SetSecurityEventStreamStatus(ctx, &adminv1.SetSecurityEventStreamStatusRequest{Id: args[0], Status: status})
			return resp.GetStream(), err
		}, func(_ *cobra.Command, w io.Writer, _ []string, stream *adminv1.SecurityEventStream) error {
			return printSecurityEventStreams(w, []*adminv1.SecurityEventStream{stream})
		})}
}

// printSecurityEventStreams prints streams; whether a push stream sends an
// Authorization header shows, its value never (no answer holds it).
func printSecurityEventStreams(out io.Writer, all []*adminv1.SecurityEventStream) error {
	w := table(out, "ID\tDELIVERY\tRECEIVER\tAUDIENCE\tEVENT_TYPES\tAUTHORIZATION\tSTATUS\tPOSITION\tLAST_DELIVERY\tLAST_ERROR\tCREATED\tDESCRIPTION")
	for _, s := range all {
		receiver := s.GetReceiver()
		if s.GetDelivery() == "push" {
			receiver = s.GetEndpointUrl()
		}
		eventTypes := "all"
		if len(s.GetEventTypes()) > 0 {
			eventTypes = OrNone(s.GetEventTypes())
		}
		auth := "-"
		if s.GetHasAuthorization() {
			auth = "set"
		}
		fmt.Fprintf(w, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", s.GetId(), s.GetDelivery(), OrDash(receiver), s.GetAudience(),
			eventTypes, auth, s.GetStatus(), OrDash(s.GetPosition()), Stamp(s.GetDeliveryTime()), OrDash(s.GetLastError()),
			Stamp(s.GetCreateTime()), OrDash(s.GetDescription()))
	}
	return w.Flush()
}
