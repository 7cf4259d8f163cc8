// Package postgres is Chit's storage backend for several replicas behind one
// PostgreSQL (or PostgreSQL-compatible) database, on pgx. Every atomic
// operation of storage.Store is one statement or one short transaction that
// holds no connection across anything but the database; migrations are
// embedded and applied under an advisory lock so replicas starting together
// do not race. A database that cannot be reached fails calls with
// storage.ErrUnavailable (unavailable.go). The methods are in one file per
// domain of the storage contract, named as its files are (logins.go,
// revocations.go, ...); batched reads and grouped rotations have their own
// (reads.go, rotation.go).
package postgres
