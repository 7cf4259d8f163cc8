package main

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// chitd ssf create/list/get/pause/enable/verify/delete on a local store:
// the push stream's Authorization value comes from a file and shows
// nowhere after (not in the answers, not in the audit lines on standard
// error); a verification, which needs a running server, is refused saying
// so; deleting a poll stream's service account deletes the stream.
func TestSSFCommands(t *testing.T) {
	dir := t.TempDir()
	if _, err := run(t, "", "service", "create", "api-gateway", "--data-dir", dir); err != nil {
		t.Fatal(err)
	}
	authFile := filepath.Join(t.TempDir(), "receiver.auth")
	if err := os.WriteFile(authFile, []byte("Bearer receiver-secret-91f\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	var everything strings.Builder
	ssf := func(args ...string) (string, error) {
		t.Helper()
		out, err := run(t, "", append(append([]string{"ssf"}, args...), "--data-dir", dir)...)
		everything.WriteString(out)
		return out, err
	}
	out, err := ssf("create", "siem", "--push", "https://siem.example/ssf/events", "--audience", "https://siem.example",
		"--authorization-file", authFile, "--description", "the SIEM")
	if err != nil || !strings.Contains(out, "siem") || !strings.Contains(out, "https://siem.example/ssf/events") || !strings.Contains(out, "enabled") {
		t.Fatalf("ssf create --push: %q, %v", out, err)
	}
	out, err = ssf("create", "gateway", "--poll", "--receiver", "api-gateway", "--audience", "https://gateway.example",
		"--event-type", "https://schemas.openid.net/secevent/caep/event-type/session-revoked")
	if err != nil || !strings.Contains(out, "api-gateway") || !strings.Contains(out, "session-revoked") {
		t.Fatalf("ssf create --poll: %q, %v", out, err)
	}
	if _, err := ssf("create", "orphan", "--poll", "--receiver", "nobody", "--audience", "a"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("a poll stream of no service account: %v", err)
	}
	if _, err := ssf("create", "plain", "--push", "http://siem.example/ssf", "--audience", "a"); err == nil || !strings.Contains(err.Error(), "endpoint_url") {
		t.Fatalf("a push stream to plain http: %v", err)
	}
	out, err = ssf("list")
	if err != nil || !strings.Contains(out, "gateway") || !strings.Contains(out, "siem") {
		t.Fatalf("ssf list: %q, %v", out, err)
	}
	out, err = ssf("get", "siem", "-o", "json")
	if err != nil || !strings.Contains(out, `"has_authorization": true`) || !strings.Contains(out, `"delivery": "push"`) {
		t.Fatalf("ssf get: %q, %v", out, err)
	}
	if out, err = ssf("pause", "siem"); err != nil || !strings.Contains(out, "paused") {
		t.Fatalf("ssf pause: %q, %v", out, err)
	}
	if out, err = ssf("enable", "siem"); err != nil || !strings.Contains(out, "enabled") {
		t.Fatalf("ssf enable: %q, %v", out, err)
	}
	if _, err := ssf("verify", "siem", "--state", "s1"); err == nil || !strings.Contains(err.Error(), "running server") {
		t.Fatalf("ssf verify without a server: %v", err)
	}
	if _, err := ssf("delete", "siem"); err != nil {
		t.Fatal(err)
	}
	if _, err := ssf("get", "siem"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("after delete: %v", err)
	}
	if _, err := run(t, "", "service", "delete", "api-gateway", "--data-dir", dir); err != nil {
		t.Fatal(err)
	}
	if _, err := ssf("get", "gateway"); err == nil || !strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("the poll stream outlived its service account: %v", err)
	}
	if strings.Contains(everything.String(), "receiver-secret") {
		t.Fatalf("the Authorization value was printed: %s", everything.String())
	}
}
