// Package accounts owns the principals Chit issues tokens to: people with a
// username and password, and service accounts with a client id and secret.
// It creates, lists and deletes them and authenticates their credentials. It
// must not import any transport.
package accounts
