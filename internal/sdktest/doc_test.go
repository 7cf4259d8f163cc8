// Package sdktest_test tests the SDK (module github.com/chit-auth/chit/sdk)
// against a real server: the SDK's own tests must not pull the server in,
// so these live in the server's module.
package sdktest_test
