// Package store defines the storage contract that AgentHub's broker, vault
// and audit trail stand on, and the helpers built on top of it.
//
// A Store holds three kinds of state, each with atomic operations:
//
//   - Records: values addressed by a Key (scope, kind, ID), with an optional
//     time-to-live. Create-if-absent serves dedupe keys and request creation;
//     compare-and-swap serves status transitions, where only one of many
//     concurrent deciders may win.
//   - Per-scope listing: every record lives in a scope (a principal, or ""
//     for global records) and List returns the live records of one kind in
//     one scope without scanning the keyspace.
//   - Logs: append-only, totally ordered sequences (the audit chain). An
//     append names the sequence number it expects to follow, so a writer
//     that chains each entry to its predecessor can never fork the chain,
//     even with several processes appending to one Redis.
//
// Update (update.go) is the one read-modify-write built on top: read,
// decide, compare-and-swap, and on a lost race wait a random moment and
// decide again. Every record that several writers change (requests,
// connections, enrolments, the Slack app's message records) changes through
// it, so there is one retry discipline in the code base.
//
// Three backends implement the contract: boltstore (an embedded file, the
// single-node default), redisstore (shared by replicas) and memstore (tests
// and throwaway single-process use). storetest.Run is the conformance suite
// that all of them pass.
package store

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Errors returned by every backend. Callers test them with errors.Is.
var (
	// ErrNotFound means the record does not exist or has expired.
	ErrNotFound = errors.New("store: not found")
	// ErrExists means Create found a live record under the key.
	ErrExists = errors.New("store: already exists")
	// ErrConflict means a compare-and-swap or compare-and-delete saw a value
	// other than the expected one, or a log append saw a head other than the
	// expected one.
	ErrConflict = errors.New("store: conflict")
)

// KeepTTL, passed as a ttl to CompareAndSwap, keeps the record's current
// expiry instead of setting a new one.
const KeepTTL time.Duration = -1

// Key addresses one record. Scope groups records that are listed together
// and that multi-key operations touch together (on Redis Cluster all keys of
// one scope share a hash slot). Kind names the record type and ID is unique
// within a scope and kind.
type Key struct {
	Scope string // a principal such as "T123:U456", or "" for global records
	Kind  string // e.g. "request", "grant", "connection", "dedupe", "lock"
	ID    string
}

// String renders the key for error messages. It holds no values.
func (k Key) String() string {
	return fmt.Sprintf("%s/%s/%s", k.Scope, k.Kind, k.ID)
}

// Validate reports whether the key can be stored. Kinds and IDs must be
// non-empty and free of control characters; the backends use them in file
// bucket names and Redis keys.
func (k Key) Validate() error {
	if k.Kind == "" || k.ID == "" {
		return fmt.Errorf("store: invalid key %q: kind and id are required", k.String())
	}
	for _, part := range []string{k.Scope, k.Kind, k.ID} {
		if strings.ContainsFunc(part, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
			return fmt.Errorf("store: invalid key %q: control character", k.String())
		}
	}
	if strings.ContainsAny(k.Kind, "{}:") {
		return fmt.Errorf("store: invalid key kind %q", k.Kind)
	}
	return nil
}

// SameGroup reports whether keys may be read together by GetMany: valid
// keys of one scope, and for the global scope "" also of one kind (global
// kinds are spread over a cluster one kind each; a scope's kinds stay
// together).
func SameGroup(keys []Key) error {
	for _, k := range keys {
		if err := k.Validate(); err != nil {
			return err
		}
		if k.Scope != keys[0].Scope || (k.Scope == "" && k.Kind != keys[0].Kind) {
			return fmt.Errorf("store: keys %s and %s are not of one group", keys[0], k)
		}
	}
	return nil
}

// Item is one record read back from the store.
type Item struct {
	Key   Key
	Value []byte
	// ExpiresAt is the zero time for records without a time-to-live.
	ExpiresAt time.Time
}

// Entry is one record of a log. Seq starts at 1 and has no gaps.
type Entry struct {
	Seq   uint64
	Value []byte
}

// Store is the contract every backend satisfies; see the package comment.
// All methods are safe for concurrent use. A ttl of zero means no expiry.
type Store interface {
	// Get returns the live record under k, or ErrNotFound.
	Get(ctx context.Context, k Key) (Item, error)
	// GetMany returns the live records among keys, in the order of keys,
	// leaving out the keys that have none, in one round trip. The keys
	// must be of one group (see SameGroup), so that a sharded backend
	// finds them together.
	GetMany(ctx context.Context, keys []Key) ([]Item, error)
	// Put writes the record, replacing any previous value and expiry.
	Put(ctx context.Context, k Key, value []byte, ttl time.Duration) error
	// Create writes the record only if no live record exists under k;
	// otherwise it returns ErrExists and changes nothing.
	Create(ctx context.Context, k Key, value []byte, ttl time.Duration) error
	// CompareAndSwap replaces the record's value with next only if its
	// current value equals old byte for byte. It returns ErrNotFound when no
	// live record exists and ErrConflict when the value differs. ttl may be
	// KeepTTL.
	CompareAndSwap(ctx context.Context, k Key, old, next []byte, ttl time.Duration) error
	// CompareAndDelete deletes the record only if its value equals old. It
	// returns ErrNotFound or ErrConflict like CompareAndSwap.
	CompareAndDelete(ctx context.Context, k Key, old []byte) error
	// Delete removes the record. Deleting a missing record is not an error.
	Delete(ctx context.Context, k Key) error
	// List returns the live records of one kind in one scope, ordered by ID.
	List(ctx context.Context, scope, kind string) ([]Item, error)

	// Append adds values to the named log as entries after+1, after+2, …
	// only if the log's last sequence number is after (0 for an empty log).
	// Otherwise it returns an error wrapping ErrConflict and appends nothing.
	Append(ctx context.Context, log string, after uint64, values [][]byte) error
	// Head returns the log's last entry, or an Entry with Seq 0 and a nil
	// Value when the log is empty.
	Head(ctx context.Context, log string) (Entry, error)
	// Read returns up to limit entries with Seq >= from, in order.
	Read(ctx context.Context, log string, from uint64, limit int) ([]Entry, error)

	// Ping reports whether the backend is reachable.
	Ping(ctx context.Context) error
	// Close releases the backend's resources.
	Close() error
}
