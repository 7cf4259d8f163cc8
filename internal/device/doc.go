// Package device is the device authorization grant (RFC 8628): a device
// without a browser asks for a device code and a short user code, a person
// enters the user code on the hosted verification page, signs in and
// approves or denies, and the device polls until it gets tokens. It decides
// who may start, approve and redeem, throttles guesses of user codes as
// passwords are, and issues through authorize.IssueForSignIn, the one path
// of the hosted pages' logins. It is core: it must not import net/http,
// gRPC or the generated API.
package device
