package main

import (
	"regexp"
	"strings"
	"testing"
)

// A client's and a service account's DPoP requirement (RFC 9449): set at
// creation, shown by get and list, kept by an update that does not name
// it, and changed by one that does; --help says what it does.
func TestRequireDPoPCommands(t *testing.T) {
	dir := t.TempDir()
	const help = "tokens are issued only with a DPoP proof (RFC 9449) and bound to its key"
	for _, args := range [][]string{{"client", "create", "--help"}, {"client", "update", "--help"}, {"service", "create", "--help"}, {"service", "set-dpop", "--help"}} {
		if out, err := run(t, "", args...); err != nil || !strings.Contains(out, help) {
			t.Errorf("%v does not say what the flag does: %q, %v", args, out, err)
		}
	}
	// requireDPoPColumn is the value of the REQUIRE_DPOP column of name's
	// row in a get or list table (standard output alone).
	requireDPoPColumn := func(out, name string) string {
		t.Helper()
		lines := strings.Split(strings.TrimSpace(out), "\n")
		column := -1
		// Columns are two spaces or more apart; a cell may hold one.
		cells := regexp.MustCompile(`\s{2,}`)
		for i, heading := range cells.Split(lines[0], -1) {
			if heading == "REQUIRE_DPOP" {
				column = i
			}
		}
		if column < 0 {
			t.Fatalf("no REQUIRE_DPOP column in %q", out)
		}
		for _, line := range lines[1:] {
			if fields := cells.Split(line, -1); len(fields) > column && fields[0] == name {
				return fields[column]
			}
		}
		t.Fatalf("no row %q in %q", name, out)
		return ""
	}
	shows := func(want string, args ...string) {
		t.Helper()
		_, out, err := runApart(t, "", append(args, "--data-dir", dir)...)
		if err != nil {
			t.Fatalf("%v: %q, %v", args, out, err)
		}
		if got := requireDPoPColumn(out, args[2]); got != want {
			t.Fatalf("%v shows REQUIRE_DPOP %s, want %s:\n%s", args, got, want, out)
		}
	}

	if out, err := run(t, "", "client", "create", "spa", "--redirect-uri", "https://spa.example/cb", "--require-dpop", "--data-dir", dir); err != nil {
		t.Fatalf("client create --require-dpop: %q, %v", out, err)
	}
	shows("true", "client", "get", "spa")
	if out, err := run(t, "", "client", "update", "spa", "--data-dir", dir); err != nil || !strings.Contains(out, "require DPoP true") {
		t.Fatalf("client update without the flag: %q, %v", out, err)
	}
	if out, err := run(t, "", "client", "update", "spa", "--require-dpop=false", "--data-dir", dir); err != nil || !strings.Contains(out, "require DPoP false") {
		t.Fatalf("client update --require-dpop=false: %q, %v", out, err)
	}
	_, out, err := runApart(t, "", "client", "list", "--data-dir", dir)
	if err != nil || requireDPoPColumn(out, "spa") != "false" {
		t.Fatalf("client list: %q, %v", out, err)
	}

	if out, err := run(t, "", "service", "create", "worker", "--require-dpop", "--data-dir", dir); err != nil || !strings.Contains(out, "client_secret: chit_cs_") {
		t.Fatalf("service create --require-dpop: %q, %v", out, err)
	}
	if _, err := run(t, "", "service", "create", "billing", "--data-dir", dir); err != nil {
		t.Fatal(err)
	}
	shows("true", "service", "get", "worker")
	shows("false", "service", "get", "billing")
	if out, err := run(t, "", "service", "set-dpop", "worker", "--require=false", "--data-dir", dir); err != nil || !strings.Contains(out, "service worker: require DPoP false") {
		t.Fatalf("service set-dpop --require=false: %q, %v", out, err)
	}
	if out, err := run(t, "", "service", "set-dpop", "billing", "--require=true", "--data-dir", dir); err != nil || !strings.Contains(out, "service billing: require DPoP true") {
		t.Fatalf("service set-dpop --require=true: %q, %v", out, err)
	}
	_, out, err = runApart(t, "", "service", "list", "--data-dir", dir)
	if err != nil || requireDPoPColumn(out, "worker") != "false" || requireDPoPColumn(out, "billing") != "true" {
		t.Fatalf("service list: %q, %v", out, err)
	}
	// Leaving --require out is no choice: it must not turn the requirement off.
	if _, err := run(t, "", "service", "set-dpop", "billing", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "require") {
		t.Fatalf("service set-dpop without --require: %v", err)
	}
	if _, err := run(t, "", "service", "set-dpop", "nobody", "--require=true", "--data-dir", dir); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("service set-dpop of an unknown account: %v", err)
	}
	shows("true", "service", "get", "billing")
}
