// Package testenv starts real, throwaway PostgreSQL servers for tests,
// benchmarks and demos: initdb into a fresh temporary directory, a postmaster
// owned by this process on a free 127.0.0.1 port with wal_level=logical, and
// cleanup that stops the server and removes its files. Replication code is
// only trustworthy against a real server, so nothing here is a mock.
//
// When running as root (initdb refuses to), the server runs as the "postgres"
// OS user and its directories are owned by that user.
package testenv
