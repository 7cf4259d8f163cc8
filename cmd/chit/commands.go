package main

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"net/netip"
	"os"
	"os/exec"
	"runtime"
	"strings"
	"text/tabwriter"
	"time"
	"unicode"

	"github.com/spf13/cobra"
	"google.golang.org/grpc"
	"google.golang.org/grpc/codes"
	"google.golang.org/grpc/credentials"
	"google.golang.org/grpc/credentials/insecure"
	"google.golang.org/grpc/metadata"
	"google.golang.org/grpc/status"

	authv1 "github.com/chit-auth/chit/gen/chit/auth/v1"
	"github.com/chit-auth/chit/internal/clilogin"
	"github.com/chit-auth/chit/internal/envflag"
	"github.com/chit-auth/chit/internal/secretin"
)

// cli is the state the commands share. Tests replace openBrowser and now.
type cli struct {
	serverAddr string
	useTLS     bool
	// insecurePlaintext allows plain text to a server that is not on this
	// machine.
	insecurePlaintext bool
	caFile            string
	timeout           time.Duration
	credentialsPath   string
	openBrowser       func(url string) error
	now               func() time.Time
	// getenv reads the environment (whether a display or SSH is there);
	// wait waits between a device login's polls. Tests replace both.
	getenv func(string) string
	wait   func(ctx context.Context, d time.Duration) error
}

func newRootCommand() *cobra.Command {
	return (&cli{openBrowser: openInBrowser, now: time.Now, getenv: os.Getenv}).command()
}

func (c *cli) command() *cobra.Command {
	root := &cobra.Command{
		Use:   "chit",
		Short: "Client for the Chit token server",
		Long: `chit signs you in to a Chit server and prints access tokens, over gRPC. Every
flag can also be set through the environment variable named in its help.`,
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if err := envflag.Apply(cmd, "CHIT", envflag.LookupEnv); err != nil {
				return err
			}
			if c.credentialsPath == "" {
				path, err := clilogin.DefaultPath()
				if err != nil {
					return err
				}
				c.credentialsPath = path
			}
			return nil
		},
	}
	flags := root.PersistentFlags()
	flags.StringVar(&c.serverAddr, "server", "localhost:9090", "gRPC address of the Chit server")
	flags.BoolVar(&c.useTLS, "tls", false, "connect over TLS, verifying the server against the system's CAs (or --ca-file)")
	flags.StringVar(&c.caFile, "ca-file", "", "PEM file of the CA that signed the server's certificate; implies --tls")
	flags.BoolVar(&c.insecurePlaintext, "insecure-plaintext", false, "allow plain text to a server that is not on this machine (tokens and passwords travel unencrypted)")
	flags.DurationVar(&c.timeout, "timeout", 30*time.Second, "how long to wait for the server")
	flags.StringVar(&c.credentialsPath, "credentials", "", "where chit login keeps tokens (default: the user config directory's chit/credentials.json)")
	root.AddCommand(c.loginCommand(), c.tokenCommand(), c.whoamiCommand(), c.logoutCommand(), c.apiKeyCommand(), c.adminCommand())
	envflag.Annotate(root, "CHIT")
	return root
}

// dial connects to the server; calls made on it report unreachable servers
// in words (explain).
func (c *cli) dial() (authv1.AuthServiceClient, func(), error) {
	conn, err := c.connect()
	if err != nil {
		return nil, nil, err
	}
	return authv1.NewAuthServiceClient(conn), func() { conn.Close() }, nil
}

// connect opens a connection to --server: over TLS with --tls or
// --ca-file, in plain text otherwise (a server on this machine).
func (c *cli) connect() (*grpc.ClientConn, error) {
	creds := insecure.NewCredentials()
	if !c.useTLS && c.caFile == "" && !c.insecurePlaintext && !loopback(c.serverAddr) {
		return nil, fmt.Errorf("chit would send passwords and tokens to %s in plain text: pass --tls (or --ca-file), or --insecure-plaintext on a network you trust", c.serverAddr)
	}
	if c.useTLS || c.caFile != "" {
		config := &tls.Config{MinVersion: tls.VersionTLS12}
		if c.caFile != "" {
			pemBytes, err := os.ReadFile(c.caFile)
			if err != nil {
				return nil, fmt.Errorf("--ca-file: %w", err)
			}
			config.RootCAs = x509.NewCertPool()
			if !config.RootCAs.AppendCertsFromPEM(pemBytes) {
				return nil, fmt.Errorf("--ca-file %s holds no PEM certificate", c.caFile)
			}
		}
		creds = credentials.NewTLS(config)
	}
	conn, err := grpc.NewClient(c.serverAddr, grpc.WithTransportCredentials(creds))
	if err != nil {
		return nil, fmt.Errorf("server address %q: %w", c.serverAddr, err)
	}
	return conn, nil
}

// session dials the server and bounds the command's calls by --timeout; done
// releases both.
func (c *cli) session(cmd *cobra.Command) (authv1.AuthServiceClient, context.Context, func(), error) {
	auth, closeConn, err := c.dial()
	if err != nil {
		return nil, nil, nil, err
	}
	ctx, cancel := context.WithTimeout(cmd.Context(), c.timeout)
	return auth, ctx, func() { cancel(); closeConn() }, nil
}

// deviceLoginReason says why chit login should use the device flow by
// itself: a browser opened here would not be the person's (over SSH) or
// could not be opened at all (no display). "" means the browser flow.
func (c *cli) deviceLoginReason() string {
	getenv := c.getenv
	if getenv == nil {
		getenv = os.Getenv
	}
	switch {
	case getenv("SSH_CONNECTION") != "":
		return "SSH_CONNECTION is set: this session runs over SSH"
	case runtime.GOOS != "darwin" && runtime.GOOS != "windows" && getenv("DISPLAY") == "" && getenv("WAYLAND_DISPLAY") == "":
		return "there is no display (neither DISPLAY nor WAYLAND_DISPLAY is set)"
	}
	return ""
}

func (c *cli) loginCommand() *cobra.Command {
	var noBrowser, deviceFlow bool
	var scope string
	var wait time.Duration
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Sign in through the browser and keep the tokens for later commands",
		Long: `Sign in through Chit's sign-in page. chit listens on a random loopback port,
opens the page in your browser (or prints its URL with --no-browser) and waits
for the browser to come back, then stores the tokens in the credentials file
(readable by you only).

With --device (the device flow, RFC 8628) chit prints a URL and a short code
instead: open the URL on any device with a browser, enter the code, sign in and
approve; chit polls until then. chit login uses the device flow by itself over
SSH (SSH_CONNECTION is set) or when there is no display (Linux and other Unix
without DISPLAY or WAYLAND_DISPLAY), and says so on stderr; --device=false
forces the browser flow.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			auth, closeConn, err := c.dial()
			if err != nil {
				return err
			}
			defer closeConn()
			useDevice := deviceFlow
			if !cmd.Flags().Changed("device") {
				if reason := c.deviceLoginReason(); reason != "" {
					useDevice = true
					fmt.Fprintf(cmd.ErrOrStderr(), "chit login: using the device flow because %s (--device=false for the browser flow)\n", reason)
				}
			}
			var creds clilogin.Credentials
			if useDevice {
				creds, err = clilogin.DeviceLogin(cmd.Context(), clilogin.DeviceOptions{Auth: auth, Out: cmd.ErrOrStderr(), Scope: scope, Now: c.now, Wait: c.wait})
			} else {
				opts := clilogin.Options{Auth: auth, OpenBrowser: c.openBrowser, Out: cmd.ErrOrStderr(), Timeout: wait, Scope: scope, Now: c.now}
				if noBrowser {
					opts.OpenBrowser = nil
				}
				creds, err = clilogin.Login(cmd.Context(), opts)
			}
			if err != nil {
				return c.explain(err)
			}
			creds.Server = c.serverAddr
			if err := clilogin.Save(c.credentialsPath, creds); err != nil {
				return fmt.Errorf("save tokens: %w", err)
			}
			fmt.Fprintf(cmd.OutOrStdout(), "Logged in. Tokens saved to %s\n", c.credentialsPath)
			return nil
		},
	}
	cmd.Flags().BoolVar(&noBrowser, "no-browser", false, "print the sign-in URL instead of opening a browser")
	cmd.Flags().BoolVar(&deviceFlow, "device", false, "sign in with the device flow: print a URL and a code to approve from any browser, and poll (the default over SSH or without a display)")
	cmd.Flags().StringVar(&scope, "scope", clilogin.DefaultScope, "scopes to ask for; offline_access gives a refresh token")
	cmd.Flags().DurationVar(&wait, "login-timeout", 5*time.Minute, "how long to wait for the browser")
	return cmd
}

func (c *cli) tokenCommand() *cobra.Command {
	var user, scope string
	var passwordStdin bool
	cmd := &cobra.Command{
		Use:   "token",
		Short: "Print a valid access token",
		Long: `Print a valid access token. Without --user it uses the tokens of chit login,
refreshing them when they are expired or about to be. With --user and
--password-stdin it signs in with a password instead.`,
		Example: "  chit token\n  printf '%s' \"$PASSWORD\" | chit token --user alice --password-stdin",
		Args:    cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			auth, ctx, done, err := c.session(cmd)
			if err != nil {
				return err
			}
			defer done()
			var token string
			if user == "" {
				if passwordStdin {
					return errors.New("--password-stdin needs --user")
				}
				token, err = clilogin.ValidAccessToken(ctx, auth, c.credentialsPath, c.serverAddr, c.now())
			} else {
				token, err = c.passwordToken(cmd, ctx, auth, user, scope, passwordStdin)
			}
			if err != nil {
				return c.explain(err)
			}
			fmt.Fprintln(cmd.OutOrStdout(), token)
			return nil
		},
	}
	cmd.Flags().StringVar(&user, "user", "", "sign in with a password as this user instead of using chit login's tokens")
	cmd.Flags().BoolVar(&passwordStdin, "password-stdin", false, "read the password from standard input")
	cmd.Flags().StringVar(&scope, "scope", "", "space-separated scopes to request (with --user)")
	return cmd
}

func (c *cli) passwordToken(cmd *cobra.Command, ctx context.Context, auth authv1.AuthServiceClient, user, scope string, passwordStdin bool) (string, error) {
	if !passwordStdin {
		return "", errors.New("pass the password on standard input with --password-stdin")
	}
	password, err := secretin.ReadLine(cmd.InOrStdin())
	if err != nil {
		return "", err
	}
	resp, err := auth.Token(ctx, &authv1.TokenRequest{
		Credential: &authv1.TokenRequest_PasswordCredential{PasswordCredential: &authv1.PasswordCredential{Username: user, Password: password}},
		Scope:      scope,
	})
	return resp.GetAccessToken(), err
}

func (c *cli) whoamiCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "whoami",
		Short: "Show who the stored tokens belong to",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			auth, ctx, done, err := c.session(cmd)
			if err != nil {
				return err
			}
			defer done()
			token, err := clilogin.ValidAccessToken(ctx, auth, c.credentialsPath, c.serverAddr, c.now())
			if err != nil {
				return c.explain(err)
			}
			claims, err := auth.CheckToken(metadata.AppendToOutgoingContext(ctx, "authorization", "Bearer "+token), &authv1.CheckTokenRequest{})
			if err != nil {
				return c.explain(err)
			}
			w := tabwriter.NewWriter(cmd.OutOrStdout(), 0, 4, 2, ' ', 0)
			fmt.Fprintf(w, "subject:\t%s\n", claims.GetSubject())
			fmt.Fprintf(w, "role:\t%s\n", claims.GetRole())
			fmt.Fprintf(w, "scopes:\t%s\n", strings.Join(claims.GetScopes(), " "))
			fmt.Fprintf(w, "issuer:\t%s\n", claims.GetIssuer())
			fmt.Fprintf(w, "expires:\t%s\n", claims.GetExpiresAt().AsTime().Local().Format(time.RFC3339))
			return w.Flush()
		},
	}
}

func (c *cli) logoutCommand() *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Revoke the stored login on the server and forget its tokens",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			creds, err := clilogin.Load(c.credentialsPath)
			if errors.Is(err, clilogin.ErrNotLoggedIn) {
				fmt.Fprintln(cmd.OutOrStdout(), "Not logged in.")
				return nil
			}
			if err == nil {
				// The tokens go to the server that issued them, or nowhere.
				if _, err := clilogin.LoadFor(c.credentialsPath, c.serverAddr); err != nil {
					return err
				}
			}
			if err == nil && (creds.RefreshToken != "" || creds.AccessToken != "") {
				token := creds.RefreshToken
				if token == "" {
					token = creds.AccessToken
				}
				auth, ctx, done, dialErr := c.session(cmd)
				if dialErr != nil {
					return dialErr
				}
				defer done()
				if _, err := auth.Revoke(ctx, &authv1.RevokeRequest{Token: token}); err != nil {
					// Keep the file: the login is still alive on the server.
					return fmt.Errorf("%w; the tokens were kept, try again", c.explain(err))
				}
			}
			if err := clilogin.Remove(c.credentialsPath); err != nil {
				return err
			}
			fmt.Fprintln(cmd.OutOrStdout(), "Logged out.")
			return nil
		},
	}
}

// explain turns an error into a sentence for a person at a terminal.
func (c *cli) explain(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	switch st.Code() {
	case codes.Unavailable:
		if len(st.Details()) > 0 {
			// The server answered, with a retry hint: its store cannot be
			// reached now.
			return fmt.Errorf("the Chit server at %s is unavailable for a moment: %s", c.serverAddr, st.Message())
		}
		return fmt.Errorf("cannot reach the Chit server at %s (is it running? set --server or CHIT_SERVER)", c.serverAddr)
	case codes.DeadlineExceeded:
		return fmt.Errorf("the Chit server at %s did not answer in time", c.serverAddr)
	}
	return fmt.Errorf("%s (%s)", st.Message(), codeInWords(st.Code()))
}

// codeInWords is a gRPC code as words: PermissionDenied is "permission
// denied".
func codeInWords(code codes.Code) string {
	var words strings.Builder
	for i, r := range code.String() {
		if unicode.IsUpper(r) && i > 0 {
			words.WriteByte(' ')
		}
		words.WriteRune(unicode.ToLower(r))
	}
	return words.String()
}

// openInBrowser asks the desktop to open url.
func openInBrowser(url string) error {
	var cmd *exec.Cmd
	switch runtime.GOOS {
	case "darwin":
		cmd = exec.Command("open", url)
	case "windows":
		cmd = exec.Command("rundll32", "url.dll,FileProtocolHandler", url)
	default:
		cmd = exec.Command("xdg-open", url)
	}
	return cmd.Start()
}

// loopback reports whether the host of address is this machine: localhost
// or a loopback IP.
func loopback(address string) bool {
	host, _, err := net.SplitHostPort(address)
	if err != nil {
		host = address
	}
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip, err := netip.ParseAddr(strings.Trim(host, "[]"))
	return err == nil && ip.IsLoopback()
}
