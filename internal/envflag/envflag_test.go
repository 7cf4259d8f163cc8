package envflag

import (
	"bytes"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/spf13/cobra"
)

func TestApply(t *testing.T) {
	var addr string
	var ttl time.Duration
	cmd := &cobra.Command{Use: "serve", RunE: func(*cobra.Command, []string) error { return nil }}
	cmd.Flags().StringVar(&addr, "grpc-addr", "localhost:9090", "gRPC address")
	cmd.Flags().DurationVar(&ttl, "access-token-ttl", time.Minute, "lifetime")
	env := map[string]string{"CHIT_GRPC_ADDR": "0.0.0.0:1", "CHIT_ACCESS_TOKEN_TTL": "5m"}
	lookup := func(name string) (string, bool) { v, ok := env[name]; return v, ok }

	if err := cmd.ParseFlags([]string{"--access-token-ttl=2m"}); err != nil {
		t.Fatal(err)
	}
	if err := Apply(cmd, "CHIT", lookup); err != nil {
		t.Fatal(err)
	}
	if addr != "0.0.0.0:1" {
		t.Errorf("grpc-addr = %q, want it from the environment", addr)
	}
	if ttl != 2*time.Minute {
		t.Errorf("access-token-ttl = %v, want the flag to win over the environment", ttl)
	}
}

func TestApplyReportsBadValues(t *testing.T) {
	var ttl time.Duration
	cmd := &cobra.Command{Use: "serve"}
	cmd.Flags().DurationVar(&ttl, "access-token-ttl", time.Minute, "lifetime")
	err := Apply(cmd, "CHIT", func(string) (string, bool) { return "soon", true })
	if err == nil || !strings.Contains(err.Error(), "CHIT_ACCESS_TOKEN_TTL") {
		t.Fatalf("got %v, want an error naming the variable", err)
	}
}

func TestAnnotate(t *testing.T) {
	root := &cobra.Command{Use: "chitd"}
	root.PersistentFlags().String("data-dir", "./data", "where data lives")
	sub := &cobra.Command{Use: "serve"}
	sub.Flags().String("grpc-addr", "", "gRPC address")
	root.AddCommand(sub)
	Annotate(root, "CHIT")
	Annotate(root, "CHIT") // twice must not repeat the note
	if got := root.PersistentFlags().Lookup("data-dir").Usage; got != "where data lives (env CHIT_DATA_DIR)" {
		t.Errorf("usage %q", got)
	}
	if got := sub.Flags().Lookup("grpc-addr").Usage; got != "gRPC address (env CHIT_GRPC_ADDR)" {
		t.Errorf("usage %q", got)
	}
}

// Help prints a boolean flag as --name, as cobra programs do, and parsing
// still takes the flag with or without a value.
func TestAnnotatePrintsBooleanFlagsPlainly(t *testing.T) {
	var insecure, pkce bool
	root := &cobra.Command{Use: "chitd", RunE: func(*cobra.Command, []string) error { return nil }}
	root.PersistentFlags().BoolVar(&insecure, "insecure-dev", false, "allow http")
	sub := &cobra.Command{Use: "serve", RunE: func(*cobra.Command, []string) error { return nil }}
	sub.Flags().BoolVar(&pkce, "require-pkce", true, "require PKCE")
	sub.Flags().String("grpc-addr", "localhost:9090", "gRPC address")
	root.AddCommand(sub)
	Annotate(root, "CHIT")

	var help bytes.Buffer
	root.SetOut(&help)
	root.SetArgs([]string{"serve", "--help"})
	if err := root.Execute(); err != nil {
		t.Fatal(err)
	}
	for _, want := range []*regexp.Regexp{
		regexp.MustCompile(`(?m)^  -h, --help +help for serve$`),
		regexp.MustCompile(`(?m)^      --require-pkce +require PKCE \(env CHIT_REQUIRE_PKCE\) \(default true\)$`),
		regexp.MustCompile(`(?m)^      --grpc-addr string +gRPC address \(env CHIT_GRPC_ADDR\) \(default "localhost:9090"\)$`),
		regexp.MustCompile(`(?m)^Global Flags:\n      --insecure-dev +allow http \(env CHIT_INSECURE_DEV\)$`),
	} {
		if !want.MatchString(help.String()) {
			t.Errorf("help does not match %s:\n%s", want, help.String())
		}
	}
	if strings.Contains(help.String(), "[=") {
		t.Errorf("help marks a flag's optional value:\n%s", help.String())
	}

	root.SetArgs([]string{"serve", "--insecure-dev", "--require-pkce=false"})
	if err := root.Execute(); err != nil || !insecure || pkce {
		t.Fatalf("parsing --insecure-dev --require-pkce=false: %v, insecure-dev %v, require-pkce %v", err, insecure, pkce)
	}
}
