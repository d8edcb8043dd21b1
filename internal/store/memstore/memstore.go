// Package memstore is an in-memory store.Store: the contract's third
// backend, for tests and for single-process ephemeral use such as a demo
// that should leave no file behind.
//
// It is not durable. Its data lives in the process's memory, shared by
// every handle that Reopen derives from the Store that New returned, and is
// gone when the process exits. Closing a handle closes that handle only; the
// data stays for the others, as a file or a Redis outlives one client.
//
// It keeps the contract exactly as boltstore and redisstore do and passes
// the same conformance suite: keys are validated, a context that has ended
// fails the call, time-to-lives run on Options.Now, and every operation is
// atomic under one mutex. A few methods (Dump, EditLog, FailWrites) exist
// only for tests of the packages above the store; each says so.
package memstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/agenthub/agenthub/internal/store"
)

// sweepInterval is how often a write scans every record for expired ones.
// Records are also removed whenever a read or write meets them expired; the
// scan is for those nobody asks for again, so a long-running demo does not
// keep every dedupe key it ever saw.
const sweepInterval = time.Minute

// errClosed is returned by every call on a closed handle.
var errClosed = errors.New("handle is closed")

// Options configures New. The zero value is ready to use.
type Options struct {
	// Now is the clock that decides expiry. Default: time.Now.
	Now func() time.Time
}

// Store is a handle on one in-memory database. It is safe for concurrent
// use.
type Store struct {
	m      *memory
	closed atomic.Bool
}

var _ store.Store = (*Store)(nil)

// memory is the data that every handle from one New shares.
type memory struct {
	now func() time.Time

	mu sync.Mutex
	// records is scope → kind → id, so List walks one kind of one scope.
	records    map[string]map[string]map[string]record
	logs       map[string][][]byte
	failWrites error
	nextSweep  time.Time
}

type record struct {
	value   []byte
	expires time.Time // zero: no expiry
}

func (r record) live(now time.Time) bool { return r.expires.IsZero() || now.Before(r.expires) }

// New returns a handle on a new, empty in-memory database.
func New(opts Options) *Store {
	if opts.Now == nil {
		opts.Now = time.Now
	}
	return &Store{m: &memory{
		now:     opts.Now,
		records: make(map[string]map[string]map[string]record),
		logs:    make(map[string][][]byte),
	}}
}

// Reopen returns a new handle on s's data, open even when s is closed, as
// reopening a file or connecting a second Redis client would.
func (s *Store) Reopen() *Store { return &Store{m: s.m} }

// Close closes this handle; later calls on it fail. The data stays for the
// other handles. Closing twice is not an error.
func (s *Store) Close() error {
	s.closed.Store(true)
	return nil
}

// Ping reports whether the handle is open.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.do(ctx, false, func(time.Time) error { return nil }); err != nil {
		return fmt.Errorf("memstore: ping: %w", err)
	}
	return nil
}

// do runs fn under the lock with the current time, after checking ctx and
// the handle. A write fails while FailWrites is set, and now and then
// sweeps expired records first.
func (s *Store) do(ctx context.Context, write bool, fn func(now time.Time) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.closed.Load() {
		return errClosed
	}
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	now := m.now()
	if write {
		if m.failWrites != nil {
			return m.failWrites
		}
		if !now.Before(m.nextSweep) {
			m.sweep(now)
			m.nextSweep = now.Add(sweepInterval)
		}
	}
	return fn(now)
}

// clone copies b, keeping an empty value empty rather than nil, as the
// other backends return it.
func clone(b []byte) []byte { return append([]byte{}, b...) }

// expiry turns a ttl into an absolute expiry; zero means none.
func expiry(now time.Time, ttl time.Duration) (time.Time, error) {
	switch {
	case ttl == 0:
		return time.Time{}, nil
	case ttl < 0:
		return time.Time{}, fmt.Errorf("negative ttl %v", ttl)
	}
	// UTC and no monotonic reading, as the other backends return it.
	return now.Add(ttl).Round(0).UTC(), nil
}

func (r record) item(k store.Key) store.Item {
	return store.Item{Key: k, Value: clone(r.value), ExpiresAt: r.expires}
}

// lookup returns the live record under k, deleting it when it has expired.
func (m *memory) lookup(k store.Key, now time.Time) (record, bool) {
	r, ok := m.records[k.Scope][k.Kind][k.ID]
	if !ok {
		return record{}, false
	}
	if !r.live(now) {
		m.remove(k)
		return record{}, false
	}
	return r, true
}

func (m *memory) set(k store.Key, r record) {
	kinds := m.records[k.Scope]
	if kinds == nil {
		kinds = make(map[string]map[string]record)
		m.records[k.Scope] = kinds
	}
	ids := kinds[k.Kind]
	if ids == nil {
		ids = make(map[string]record)
		kinds[k.Kind] = ids
	}
	ids[k.ID] = r
}

// remove deletes the record under k and the maps it leaves empty, so a
// principal whose last record went does not leave a trace.
func (m *memory) remove(k store.Key) {
	kinds := m.records[k.Scope]
	ids := kinds[k.Kind]
	delete(ids, k.ID)
	if len(ids) == 0 {
		delete(kinds, k.Kind)
	}
	if len(kinds) == 0 {
		delete(m.records, k.Scope)
	}
}

// sweep removes every expired record.
func (m *memory) sweep(now time.Time) {
	for scope, kinds := range m.records {
		for kind, ids := range kinds {
			for id, r := range ids {
				if !r.live(now) {
					m.remove(store.Key{Scope: scope, Kind: kind, ID: id})
				}
			}
		}
	}
}

// Get returns the live record under k, or an error wrapping
// store.ErrNotFound.
func (s *Store) Get(ctx context.Context, k store.Key) (store.Item, error) {
	if err := k.Validate(); err != nil {
		return store.Item{}, err
	}
	items, err := s.fetch(ctx, []store.Key{k})
	if err == nil && len(items) == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Item{}, fmt.Errorf("memstore: get %s: %w", k, err)
	}
	return items[0], nil
}

// GetMany returns the live records among keys, in their order.
func (s *Store) GetMany(ctx context.Context, keys []store.Key) ([]store.Item, error) {
	if err := store.SameGroup(keys); err != nil {
		return nil, fmt.Errorf("memstore: get many: %w", err)
	}
	items, err := s.fetch(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("memstore: get many: %w", err)
	}
	return items, nil
}

// fetch reads the live records among keys at one moment.
func (s *Store) fetch(ctx context.Context, keys []store.Key) ([]store.Item, error) {
	var items []store.Item
	err := s.do(ctx, false, func(now time.Time) error {
		for _, k := range keys {
			if r, ok := s.m.lookup(k, now); ok {
				items = append(items, r.item(k))
			}
		}
		return nil
	})
	return items, err
}

// Put writes the record, replacing any previous value and expiry.
func (s *Store) Put(ctx context.Context, k store.Key, value []byte, ttl time.Duration) error {
	if err := s.write(ctx, k, value, ttl, false); err != nil {
		return fmt.Errorf("memstore: put %s: %w", k, err)
	}
	return nil
}

// Create writes the record only if no live record exists under k;
// otherwise it returns an error wrapping store.ErrExists.
func (s *Store) Create(ctx context.Context, k store.Key, value []byte, ttl time.Duration) error {
	if err := s.write(ctx, k, value, ttl, true); err != nil {
		return fmt.Errorf("memstore: create %s: %w", k, err)
	}
	return nil
}

func (s *Store) write(ctx context.Context, k store.Key, value []byte, ttl time.Duration, create bool) error {
	if err := k.Validate(); err != nil {
		return err
	}
	return s.do(ctx, true, func(now time.Time) error {
		exp, err := expiry(now, ttl)
		if err != nil {
			return err
		}
		if _, found := s.m.lookup(k, now); create && found {
			return store.ErrExists
		}
		s.m.set(k, record{value: clone(value), expires: exp})
		return nil
	})
}

// compare runs a conditional write on k: write is called only when the live
// value equals old.
func (s *Store) compare(ctx context.Context, k store.Key, old []byte, write func(now time.Time, cur record) error) error {
	if err := k.Validate(); err != nil {
		return err
	}
	return s.do(ctx, true, func(now time.Time) error {
		cur, ok := s.m.lookup(k, now)
		switch {
		case !ok:
			return store.ErrNotFound
		case !bytes.Equal(cur.value, old):
			return store.ErrConflict
		}
		return write(now, cur)
	})
}

// CompareAndSwap replaces the value with next only if the live value equals
// old. ttl may be store.KeepTTL to keep the current expiry.
func (s *Store) CompareAndSwap(ctx context.Context, k store.Key, old, next []byte, ttl time.Duration) error {
	err := s.compare(ctx, k, old, func(now time.Time, cur record) error {
		exp := cur.expires
		if ttl != store.KeepTTL {
			var err error
			if exp, err = expiry(now, ttl); err != nil {
				return err
			}
		}
		s.m.set(k, record{value: clone(next), expires: exp})
		return nil
	})
	if err != nil {
		return fmt.Errorf("memstore: compare-and-swap %s: %w", k, err)
	}
	return nil
}

// CompareAndDelete deletes the record only if its live value equals old.
func (s *Store) CompareAndDelete(ctx context.Context, k store.Key, old []byte) error {
	err := s.compare(ctx, k, old, func(time.Time, record) error {
		s.m.remove(k)
		return nil
	})
	if err != nil {
		return fmt.Errorf("memstore: compare-and-delete %s: %w", k, err)
	}
	return nil
}

// Delete removes the record; deleting a missing record is not an error.
func (s *Store) Delete(ctx context.Context, k store.Key) error {
	if err := k.Validate(); err != nil {
		return err
	}
	err := s.do(ctx, true, func(time.Time) error {
		s.m.remove(k)
		return nil
	})
	if err != nil {
		return fmt.Errorf("memstore: delete %s: %w", k, err)
	}
	return nil
}

// List returns the live records of one kind in one scope, ordered by ID.
func (s *Store) List(ctx context.Context, scope, kind string) ([]store.Item, error) {
	if err := (store.Key{Scope: scope, Kind: kind, ID: "-"}).Validate(); err != nil {
		return nil, err
	}
	var items []store.Item
	err := s.do(ctx, false, func(now time.Time) error {
		for id, r := range s.m.records[scope][kind] {
			k := store.Key{Scope: scope, Kind: kind, ID: id}
			if r.live(now) {
				items = append(items, r.item(k))
			} else {
				s.m.remove(k)
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("memstore: list %s/%s: %w", scope, kind, err)
	}
	slices.SortFunc(items, func(a, b store.Item) int { return strings.Compare(a.Key.ID, b.Key.ID) })
	return items, nil
}

// checkLog rejects the log names that boltstore cannot store, so code
// tested on memory does not fail on the file.
func checkLog(name string) error {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("memstore: invalid log name %q", name)
	}
	return nil
}

// Append adds values as entries after+1, after+2, … only if the log's head
// is after; otherwise it returns an error wrapping store.ErrConflict that
// names the actual head.
func (s *Store) Append(ctx context.Context, log string, after uint64, values [][]byte) error {
	if err := checkLog(log); err != nil {
		return err
	}
	err := s.do(ctx, true, func(time.Time) error {
		l := s.m.logs[log]
		if head := uint64(len(l)); head != after {
			return fmt.Errorf("head is %d: %w", head, store.ErrConflict)
		}
		for _, v := range values {
			l = append(l, clone(v))
		}
		if len(l) > 0 {
			s.m.logs[log] = l
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("memstore: append to log %q after %d: %w", log, after, err)
	}
	return nil
}

// Head returns the log's last entry, or a zero Entry for an empty log.
func (s *Store) Head(ctx context.Context, log string) (store.Entry, error) {
	if err := checkLog(log); err != nil {
		return store.Entry{}, err
	}
	var e store.Entry
	err := s.do(ctx, false, func(time.Time) error {
		if l := s.m.logs[log]; len(l) > 0 {
			e = store.Entry{Seq: uint64(len(l)), Value: clone(l[len(l)-1])}
		}
		return nil
	})
	if err != nil {
		return store.Entry{}, fmt.Errorf("memstore: head of log %q: %w", log, err)
	}
	return e, nil
}

// Read returns up to limit entries with Seq >= from, in order. A limit of
// zero or less returns no entries.
func (s *Store) Read(ctx context.Context, log string, from uint64, limit int) ([]store.Entry, error) {
	if err := checkLog(log); err != nil {
		return nil, err
	}
	from = max(from, 1)
	var out []store.Entry
	err := s.do(ctx, false, func(time.Time) error {
		l := s.m.logs[log]
		if limit <= 0 || from > uint64(len(l)) {
			return nil
		}
		n := min(uint64(limit), uint64(len(l))-from+1)
		out = make([]store.Entry, n)
		for i := range out {
			seq := from + uint64(i)
			out[i] = store.Entry{Seq: seq, Value: clone(l[seq-1])}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("memstore: read log %q from %d: %w", log, from, err)
	}
	return out, nil
}

// Dump returns every byte the database holds — each record as
// "scope/kind/id=value" and each log entry as "log#seq=value", one a line,
// in order — expired records not yet removed included. It is for tests
// that check what reaches the storage, such as a secret that must never be
// stored in the clear; the format is not meant to be parsed.
func (s *Store) Dump() []byte {
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	var b bytes.Buffer
	for _, scope := range slices.Sorted(maps.Keys(m.records)) {
		kinds := m.records[scope]
		for _, kind := range slices.Sorted(maps.Keys(kinds)) {
			ids := kinds[kind]
			for _, id := range slices.Sorted(maps.Keys(ids)) {
				fmt.Fprintf(&b, "%s=%s\n", store.Key{Scope: scope, Kind: kind, ID: id}, ids[id].value)
			}
		}
	}
	for _, name := range slices.Sorted(maps.Keys(m.logs)) {
		for i, v := range m.logs[name] {
			fmt.Fprintf(&b, "%s#%d=%s\n", name, i+1, v)
		}
	}
	return b.Bytes()
}

// EditLog replaces the entries of the named log with what edit returns,
// behind the append-only contract, as someone with direct access to the
// storage could. It is for tests that tamper with a log. edit gets a copy
// of the entries and may change it freely.
func (s *Store) EditLog(name string, edit func(entries [][]byte) [][]byte) {
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	entries := make([][]byte, len(m.logs[name]))
	for i, v := range m.logs[name] {
		entries[i] = clone(v)
	}
	entries = edit(entries)
	if len(entries) == 0 {
		delete(m.logs, name)
		return
	}
	l := make([][]byte, len(entries))
	for i, v := range entries {
		l[i] = clone(v)
	}
	m.logs[name] = l
}

// FailWrites makes every later Put, Create, CompareAndSwap,
// CompareAndDelete, Delete and Append, on every handle, fail with an error
// wrapping err and change nothing, until it is called with nil. Reads still
// work. It is for tests of how callers handle a failing store.
func (s *Store) FailWrites(err error) {
	m := s.m
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failWrites = err
}
