// Package passwords hashes and verifies people's passwords with argon2id
// (RFC 9106) in the PHC string format, so each hash records the parameters it
// was made with and they can be raised later. It bounds how many hashes run at
// once: each one holds Params.MemoryKiB of memory, and a burst of logins must
// not exhaust the machine. It must not import storage or any transport.
package passwords
