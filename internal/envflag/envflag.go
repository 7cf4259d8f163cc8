// Package envflag lets every command-line flag of Chit's binaries also be set
// from an environment variable (CHIT_GRPC_ADDR for --grpc-addr), with the
// flag winning when both are given, and names the variable in --help (where
// a boolean flag reads --name, as in every cobra program's help).
package envflag

import (
	"fmt"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"
)

// Name returns the environment variable for a flag: prefix_FLAG_NAME.
func Name(prefix, flag string) string {
	return prefix + "_" + strings.ToUpper(strings.ReplaceAll(flag, "-", "_"))
}

// noEnvAnnotation marks flags that no environment variable sets.
const noEnvAnnotation = "envflag_no_env"

// NoEnv exempts the named flags of flags from environment variables: flags
// that say what one operator command does to one record (a scope to grant,
// say) must not be set by a variable exported for the server.
func NoEnv(flags *pflag.FlagSet, names ...string) {
	for _, name := range names {
		_ = flags.SetAnnotation(name, noEnvAnnotation, []string{"true"})
	}
}

func fromEnv(f *pflag.Flag) bool { _, exempt := f.Annotations[noEnvAnnotation]; return !exempt }

// Annotate appends "(env PREFIX_NAME)" to the usage of every flag of cmd and
// its sub-commands, so --help tells both ways to set it. Called on a root
// command, it also has --help print boolean flags as --name (plainBools).
func Annotate(cmd *cobra.Command, prefix string) {
	if !cmd.HasParent() {
		cmd.SetUsageTemplate(plainBoolsTemplate(cmd.UsageTemplate()))
	}
	annotate := func(f *pflag.Flag) {
		if f.Name == "help" || strings.Contains(f.Usage, "(env ") || !fromEnv(f) {
			return
		}
		f.Usage += fmt.Sprintf(" (env %s)", Name(prefix, f.Name))
	}
	cmd.PersistentFlags().VisitAll(annotate)
	cmd.LocalFlags().VisitAll(annotate)
	for _, sub := range cmd.Commands() {
		Annotate(sub, prefix)
	}
}

// plainBoolsFunc is the template function plainBoolsTemplate calls.
const plainBoolsFunc = "envflagUsages"

func init() { cobra.AddTemplateFunc(plainBoolsFunc, plainBools) }

// plainBoolsTemplate is cobra's usage template with the flags printed by
// plainBools.
func plainBoolsTemplate(template string) string {
	return strings.NewReplacer(
		"{{.LocalFlags.FlagUsages", "{{"+plainBoolsFunc+" .LocalFlags",
		"{{.InheritedFlags.FlagUsages", "{{"+plainBoolsFunc+" .InheritedFlags",
	).Replace(template)
}

// plainBools is flags.FlagUsages() with each boolean flag printed as
// --name, the way cobra programs print them (pflag did before v1.1.0, which
// prints --name[=true|false]): one gives the flag to turn it on, and
// --name=false turns it off as with Go's own flag package. The flags print
// through copies, so parsing is untouched.
func plainBools(flags *pflag.FlagSet) string {
	shown := pflag.NewFlagSet(flags.Name(), pflag.ContinueOnError)
	shown.SortFlags = flags.SortFlags
	flags.VisitAll(func(f *pflag.Flag) {
		copied := *f
		if f.Value.Type() == "bool" {
			copied.Value = unmarkedBool{f.Value}
		}
		shown.AddFlag(&copied)
	})
	return shown.FlagUsages()
}

// unmarkedBool is a bool flag's value without its IsBoolFlag method, the mark
// pflag v1.1.0 prints [=true|false] for. Its NoOptDefVal, "true", still says
// the value may be left out, and prints nothing.
type unmarkedBool struct{ pflag.Value }

// Apply sets every flag of cmd that was not given on the command line from
// its environment variable, if that is set. lookup is os.LookupEnv in
// production.
func Apply(cmd *cobra.Command, prefix string, lookup func(string) (string, bool)) error {
	var firstErr error
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if f.Changed || firstErr != nil || !fromEnv(f) {
			return
		}
		name := Name(prefix, f.Name)
		if value, ok := lookup(name); ok {
			if err := f.Value.Set(value); err != nil {
				firstErr = fmt.Errorf("environment variable %s=%q: %w", name, value, err)
				return
			}
			f.Changed = true
		}
	})
	return firstErr
}

// LookupEnv is os.LookupEnv, named here so callers need not import os.
var LookupEnv = os.LookupEnv
