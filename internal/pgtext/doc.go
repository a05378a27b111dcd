// Package pgtext parses the text forms PostgreSQL's output functions print,
// as pgoutput and COPY send them (DateStyle ISO, IntervalStyle postgres,
// bytea_output hex): integers, floats, numeric, dates, times, timestamps,
// intervals, uuids and bytea. Parsers read []byte and do not allocate unless
// they fail; each sink turns their results into its own stored forms.
//
// Parsers whose acceptance matters to a caller take a Mode. Exact accepts
// only what an output function prints, one spelling per value, so an encoder
// that must store exactly what the server's input function would (binary
// COPY into PostgreSQL) can trust whatever it accepts and leave the rest to
// the server. Lenient also takes other spellings of a value that
// PostgreSQL's input functions accept (a '+' sign, leading zeros, upper-case
// hex, 24:00:00 or a leap second in a timestamp) and values past the type's
// range that still fit the result, for a sink that converts whatever arrives
// (DuckDB). Every spelling Exact accepts, Lenient accepts with the same value.
package pgtext
