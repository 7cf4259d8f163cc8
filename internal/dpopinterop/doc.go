// Package dpopinterop holds only tests: DPoP proofs made by another JOSE
// library (go-jose) verified by pkg/dpop, and pkg/dpop's proofs verified by
// it. It lives in the main module so that pkg/go.mod does not grow a
// dependency for a test.
package dpopinterop
