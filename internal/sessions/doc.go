// Package sessions owns the sign-in page's browser sessions (single
// sign-on): starting one after a password sign-in, resuming it from its
// cookie's value, recording the clients signed in through it, listing and
// ending them. It knows nothing of HTTP: the cookie is a string here, and
// the sign-in page sets and reads it.
package sessions
