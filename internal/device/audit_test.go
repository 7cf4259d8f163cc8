package device

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"strings"
	"sync"
	"testing"
)

type lockedBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *lockedBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *lockedBuffer) events() []string {
	b.mu.Lock()
	defer b.mu.Unlock()
	var events []string
	for _, text := range strings.Split(strings.TrimSpace(b.buf.String()), "\n") {
		var line map[string]any
		if json.Unmarshal([]byte(text), &line) == nil && line["audit"] == true {
			events = append(events, line["event"].(string)+":"+stringOf(line["why"]))
		}
	}
	return events
}

func stringOf(v any) string { s, _ := v.(string); return s }

// Wrong, used and expired user codes, the person's decision and the polls
// that end a request each write an audit line; never a code.
func TestDeviceAuditLines(t *testing.T) {
	e := newEnv(t)
	logs := &lockedBuffer{}
	e.svc.logger = slog.New(slog.NewJSONHandler(logs, nil))
	ctx := context.Background()
	approved := e.start(t, cli, "")
	denied := e.start(t, cli, "")
	expired := e.start(t, cli, "")

	if _, err := e.svc.Lookup(ctx, "BCDF-GHJK", "192.0.2.7"); err == nil {
		t.Fatal("a made-up code was found")
	}
	if _, err := e.svc.Lookup(ctx, "not a code!", "192.0.2.7"); err == nil {
		t.Fatal("a malformed code was found")
	}
	if err := e.svc.Decide(ctx, Decision{UserCode: approved.UserCode, Approve: true, Principal: alice, Address: "192.0.2.7"}); err != nil {
		t.Fatal(err)
	}
	if err := e.svc.Deny(ctx, denied.UserCode, "192.0.2.7"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.poll(approved.DeviceCode); err != nil {
		t.Fatal(err)
	}
	if _, err := e.poll(approved.DeviceCode); err == nil {
		t.Fatal("a used device code issued again")
	}
	if _, err := e.poll(denied.DeviceCode); err == nil {
		t.Fatal("a denied request issued")
	}
	if _, err := e.svc.Lookup(ctx, approved.UserCode, "192.0.2.7"); err == nil {
		t.Fatal("an answered code was found")
	}
	e.clock.Advance(DefaultCodeTTL)
	if _, err := e.poll(expired.DeviceCode); err == nil {
		t.Fatal("an expired request issued")
	}
	want := []string{"device_user_code_refused:unknown", "device_user_code_refused:malformed", "device_approved:", "device_denied:",
		"device_login:", "device_poll_refused:used", "device_poll_refused:denied", "device_user_code_refused:answered", "device_poll_refused:expired"}
	if got := logs.events(); strings.Join(got, " ") != strings.Join(want, " ") {
		t.Fatalf("audit events\n%v, want\n%v", got, want)
	}
	for _, code := range []string{approved.UserCode, strings.ReplaceAll(approved.UserCode, "-", ""), approved.DeviceCode} {
		if strings.Contains(logs.buf.String(), code) {
			t.Fatalf("a code (%s) is in the logs", code)
		}
	}
}
