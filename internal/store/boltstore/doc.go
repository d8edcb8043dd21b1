// Package boltstore is the embedded store.Store backend: one bbolt file,
// for a single AgentHub process (the demo, a one-node team, tests).
//
// # Layout
//
// The file holds two top-level buckets:
//
//	records/<scope>/<kind>/<id> = expiry (8 bytes) ‖ value
//	logs/<name>/<seq>          = value
//
// Records are nested by scope and then kind, so List(scope, kind) is one
// cursor walk over one bucket, already ordered by ID, and never touches
// another principal's data. The global scope "" is stored under the bucket
// name "\x00" because bbolt bucket names cannot be empty; Key.Validate
// forbids control characters, so no real scope can collide with it.
//
// Each record value starts with its expiry as big-endian Unix nanoseconds,
// 0 meaning none. Expired records are invisible to every read and
// conditional write at once; the bytes are removed lazily by the write
// paths that meet them, by Sweep, and by Run, which sweeps periodically.
// Sweep also drops buckets left empty, so the file does not keep a bucket
// for every principal that ever had a short-lived record.
//
// Log entries are keyed by their sequence number as a big-endian uint64, so
// the bucket's last key is the head and Read is a forward cursor walk.
//
// # Group commit
//
// Every write goes through bbolt's DB.Batch: writers that arrive within
// Options.BatchDelay of each other share one read-write transaction and one
// fsync. This is what lets many goroutines write at disk speed divided by the
// batch, rather than one fsync each.
//
// DB.Batch has two consequences for the code. A batched function may run
// more than once: when any function in a batch returns an error, bbolt
// rolls the whole transaction back, re-runs the others together and the
// failed one alone. So every batched function here resets its outputs on
// entry and reports expected outcomes (not found, already exists, conflict)
// through captured variables while returning nil; only real storage
// failures are returned as errors. And one function's writes are visible to
// the next one in the same batch, which is why conditional writes check
// their condition inside the transaction, never before it.
package boltstore
