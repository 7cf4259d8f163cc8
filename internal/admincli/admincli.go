package admincli

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"unicode"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
	"google.golang.org/grpc/status"
	"google.golang.org/protobuf/encoding/protojson"
	"google.golang.org/protobuf/proto"

	adminv1 "github.com/chit-auth/chit/gen/chit/admin/v1"
)

// Connect opens the Admin API for one command: the client, the context its
// calls are made in (with their credential and deadline) and the function
// that ends the session.
type Connect func(cmd *cobra.Command) (admin adminv1.AdminServiceClient, ctx context.Context, done func(), err error)

// Config is what a CLI gives the tree.
type Config struct {
	// Program is how the examples name the tree's parent: "chitd" or
	// "chit admin".
	Program string
	// Connect opens the Admin API for each command.
	Connect Connect
	// Explain turns an error a call answered into words for the operator;
	// nil uses Explain.
	Explain func(error) error
}

// LocalOnly is the annotation (on a command, or on a flag) of what one CLI
// adds to the tree for its own way in: chitd's store and hashing flags, the
// algorithm of a rotation, keys encrypt. SameTree skips them.
const LocalOnly = "chit-admin-local-only"

// tree is the state the commands share.
type tree struct {
	Config
	output string
}

// Commands returns the Admin API's nouns, each with its verbs and an
// --output flag (table or json).
func Commands(cfg Config) []*cobra.Command {
	if cfg.Explain == nil {
		cfg.Explain = Explain
	}
	t := &tree{Config: cfg}
	nouns := []*cobra.Command{t.userCommand(), t.serviceCommand(), t.clientCommand(), t.providerCommand(), t.keysCommand(), t.loginCommand(), t.sessionCommand(), t.apiKeyCommand(), t.federationCommand(), t.ssfCommand()}
	for _, noun := range nouns {
		noun.PersistentFlags().StringVarP(&t.output, "output", "o", "table", "table or json")
	}
	return nouns
}

// example is an example line of the tree's parent.
func (t *tree) example(line string) string {
	return "  " + t.Program + " " + line
}

// run is a command's body: it calls the Admin API once and prints the
// answer, as a table (print) or as JSON.
func run[M proto.Message](t *tree, call func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (M, error),
	print func(cmd *cobra.Command, w io.Writer, args []string, answer M) error) func(*cobra.Command, []string) error {
	return func(cmd *cobra.Command, args []string) error {
		if err := CheckOutput(t.output); err != nil {
			return err
		}
		admin, ctx, done, err := t.Connect(cmd)
		if err != nil {
			return err
		}
		defer done()
		answer, err := call(ctx, admin, args)
		if err != nil {
			return t.Explain(err)
		}
		return PrintAnswer(cmd.OutOrStdout(), t.output, answer, func(w io.Writer, _ proto.Message) error {
			return print(cmd, w, args, answer)
		})
	}
}

// getCommand is `NOUN get ID`.
func getCommand[M proto.Message](t *tree, use, short string, get func(ctx context.Context, admin adminv1.AdminServiceClient, id string) (M, error),
	print func(io.Writer, []M) error) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(1),
		RunE: run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (M, error) {
			return get(ctx, admin, args[0])
		}, func(_ *cobra.Command, w io.Writer, _ []string, item M) error {
			return print(w, []M{item})
		})}
}

// page is one call of a list: its items and the next page's token.
type page[M any] func(ctx context.Context, admin adminv1.AdminServiceClient, args []string, size int32, token string) ([]M, string, error)

// listCommand is `NOUN list`: every page, followed from the first, printed
// as one table, or in JSON as one answer of the list (wrap).
func listCommand[M any, R proto.Message](t *tree, use, short string, args cobra.PositionalArgs, read page[M], wrap func([]M) R,
	print func(io.Writer, []M) error) *cobra.Command {
	var size int32
	// items are what the command's one run read, for the table.
	var items []M
	cmd := &cobra.Command{Use: use, Short: short, Args: args,
		RunE: run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (R, error) {
			var err error
			items, err = EveryPage(func(token string) ([]M, string, error) { return read(ctx, admin, args, size, token) })
			return wrap(items), err
		}, func(_ *cobra.Command, w io.Writer, _ []string, _ R) error {
			return print(w, items)
		})}
	cmd.Flags().Int32Var(&size, "page-size", 0, "items fetched per call (default: the server's, 50)")
	return cmd
}

// deleteCommand is `NOUN delete ID`: what it prints says what went.
func deleteCommand(t *tree, noun, use, short string, remove func(ctx context.Context, admin adminv1.AdminServiceClient, id string) (proto.Message, error)) *cobra.Command {
	return &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(1),
		RunE: run(t, func(ctx context.Context, admin adminv1.AdminServiceClient, args []string) (proto.Message, error) {
			return remove(ctx, admin, args[0])
		}, func(_ *cobra.Command, w io.Writer, args []string, _ proto.Message) error {
			_, err := fmt.Fprintf(w, "deleted %s %s\n", noun, args[0])
			return err
		})}
}

// EveryPage follows a list's next_page_token from the first page to the
// last and returns every item.
func EveryPage[T any](page func(token string) (items []T, next string, err error)) ([]T, error) {
	var all []T
	for token := ""; ; {
		items, next, err := page(token)
		if err != nil {
			return nil, err
		}
		all = append(all, items...)
		if next == "" {
			return all, nil
		}
		token = next
	}
}

// CheckOutput refuses an --output other than table or json.
func CheckOutput(output string) error {
	if output != "table" && output != "json" {
		return fmt.Errorf("--output must be table or json, not %q", output)
	}
	return nil
}

// PrintAnswer prints a call's answer as output says: JSON with the proto
// field names, or print's table.
func PrintAnswer(w io.Writer, output string, answer proto.Message, print func(io.Writer, proto.Message) error) error {
	if output != "json" {
		return print(w, answer)
	}
	encoded, err := protojson.MarshalOptions{UseProtoNames: true}.Marshal(answer)
	if err != nil {
		return err
	}
	// protojson varies its whitespace from build to build on purpose;
	// scripts and people diffing outputs get json.Indent's stable layout.
	var indented bytes.Buffer
	if err := json.Indent(&indented, encoded, "", "  "); err != nil {
		return err
	}
	_, err = fmt.Fprintln(w, indented.String())
	return err
}

// Explain is an error answered by the Admin API in words: its message and
// its code ("... does not exist (not found)").
func Explain(err error) error {
	st, ok := status.FromError(err)
	if !ok {
		return err
	}
	return errors.New(st.Message() + " (" + CodeInWords(st.Code().String()) + ")")
}

// CodeInWords is a gRPC code's name as words: PermissionDenied is
// "permission denied".
func CodeInWords(code string) string {
	var words strings.Builder
	for i, r := range code {
		if unicode.IsUpper(r) && i > 0 {
			words.WriteByte(' ')
		}
		words.WriteRune(unicode.ToLower(r))
	}
	return words.String()
}

// Shape describes the tree under cmd, one line per command: its path
// below cmd and its own flags, without what LocalOnly marks. Two CLIs that
// mount the same tree have the same shape.
func Shape(cmd *cobra.Command) []string {
	var lines []string
	var walk func(c *cobra.Command, path string)
	walk = func(c *cobra.Command, path string) {
		for _, sub := range c.Commands() {
			if sub.Annotations[LocalOnly] != "" || sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			subPath := strings.TrimSpace(path + " " + sub.Name())
			var flags []string
			sub.LocalFlags().VisitAll(func(f *pflag.Flag) {
				if _, local := f.Annotations[LocalOnly]; !local && f.Name != "help" {
					flags = append(flags, "--"+f.Name)
				}
			})
			sort.Strings(flags)
			lines = append(lines, strings.TrimSpace(subPath+" "+strings.Join(flags, " ")))
			walk(sub, subPath)
		}
	}
	walk(cmd, "")
	sort.Strings(lines)
	return lines
}

// MarkLocalOnly marks flags of cmd as one CLI's own (see LocalOnly).
func MarkLocalOnly(cmd *cobra.Command, names ...string) {
	for _, name := range names {
		_ = cmd.Flags().SetAnnotation(name, LocalOnly, []string{"true"})
	}
}
