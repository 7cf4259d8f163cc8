package sqlite

import (
	"errors"

	moderncsqlite "modernc.org/sqlite"
	sqlite3 "modernc.org/sqlite/lib"

	"github.com/chit-auth/chit/internal/storage"
)

// unavailable marks err as storage.ErrUnavailable when SQLite could not take
// the database's lock within busy_timeout: another process (an operator's
// command, a backup) holds it, and the same call succeeds once it lets go.
// Errors are marked where the writer's queries and transactions return them
// (statements.go); a reader in WAL mode never waits for a writer.
//
// Every other failure stays an internal error: a disk that is full
// (SQLITE_FULL), failing or gone (SQLITE_IOERR, SQLITE_CANTOPEN), a file
// that became read-only or corrupt. Retrying in a second does not fix those;
// an operator must, and a 500 in the error log says so.
func unavailable(err error) error {
	var sqliteErr *moderncsqlite.Error
	if errors.As(err, &sqliteErr) {
		// The primary result code is the low byte of an extended one
		// (SQLITE_BUSY_SNAPSHOT, SQLITE_LOCKED_SHAREDCACHE...).
		switch sqliteErr.Code() & 0xff {
		case sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED:
			return storage.Unavailable(err)
		}
	}
	return err
}
