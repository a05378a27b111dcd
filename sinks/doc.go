// Package sinks groups the replication targets. Each subpackage turns
// schema.Batch values into set-wise statements for one database and stores
// walmirror's state row in the same transaction as the data. Sinks know
// nothing of replication: they see tables, tuples and a state to commit.
// Every sink passes the contract suite in sinks/sinktest.
package sinks
