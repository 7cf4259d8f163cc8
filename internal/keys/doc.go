// Package keys owns the server's own token-signing keys: it generates a key
// on first start, keeps it in the store, signs with the active key and
// publishes every public key as a JSON Web Key Set. The private key never
// leaves this package except serialized into the store. It must not import
// any transport.
package keys
