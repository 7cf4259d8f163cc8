// Package sqlite is Chit's default storage backend: one embedded SQLite
// database (modernc.org/sqlite, pure Go, no cgo) in WAL mode with full
// synchronous commits, so every answered write survives a crash. Writes
// queue for one writer connection; reads use a pool that refuses writes.
// Both pools prepare each statement once per connection and keep it
// (statements.go).
// Refresh-token rotations that wait together share one commit (rotation.go).
// Its schema migrations are embedded and applied by Open. A write that cannot
// take the database's lock within busy_timeout is storage.ErrUnavailable
// (unavailable.go). The methods are in one file per domain of the storage
// contract, named as its files are (logins.go, revocations.go, ...).
package sqlite
