package servertest

import (
	"net/http"
	"net/url"
	"testing"
)

// DeviceVerificationPath is the device flow's verification page.
const DeviceVerificationPath = "/oauth2/device"

// AnswerDevice drives the verification page as a person does with b: it
// opens the page with userCode (verification_uri_complete), checks it names
// the request, and approves (signing in as alice with password) or denies.
// It returns the final page.
func (e *Env) AnswerDevice(t testing.TB, b *Browser, userCode, password string, approve bool) Page {
	t.Helper()
	confirm := b.Open(t, e.HTTPBase()+DeviceVerificationPath+"?user_code="+url.QueryEscape(userCode))
	if confirm.Status != http.StatusOK || !confirm.Contains("Confirm the device") {
		t.Fatalf("verification page for %s: %d %s", userCode, confirm.Status, confirm.Body)
	}
	form := url.Values{"action": {"deny"}}
	if approve {
		form = url.Values{"action": {"approve"}, "username": {UserName}, "password": {password}}
	}
	return ReadPage(t, b.Submit(t, confirm, form))
}
