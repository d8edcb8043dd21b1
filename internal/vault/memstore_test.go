package vault

import (
	"bytes"
	"context"
	"fmt"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/agenthub/agenthub/internal/store"
)

// memStore is an in-memory store.Store for unit tests: fast, and its raw
// contents can be dumped and altered. TTLs run on the wall clock, as on the
// real backends. failWrites, when set, makes every write fail.
type memStore struct {
	mu         sync.Mutex
	recs       map[store.Key]memRec
	logs       map[string][][]byte
	failWrites error
	gets       int
}

type memRec struct {
	value   []byte
	expires time.Time
}

func newMemStore() *memStore {
	return &memStore{recs: make(map[store.Key]memRec), logs: make(map[string][][]byte)}
}

func (m *memStore) live(k store.Key, now time.Time) (memRec, bool) {
	r, ok := m.recs[k]
	if ok && !r.expires.IsZero() && !now.Before(r.expires) {
		delete(m.recs, k)
		return memRec{}, false
	}
	return r, ok
}

func (m *memStore) check(ctx context.Context, k *store.Key, write bool) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if k != nil {
		if err := k.Validate(); err != nil {
			return err
		}
	}
	if write && m.failWrites != nil {
		return m.failWrites
	}
	return nil
}

func expiresAt(ttl time.Duration) time.Time {
	if ttl <= 0 {
		return time.Time{}
	}
	return time.Now().Add(ttl)
}

func (m *memStore) Get(ctx context.Context, k store.Key) (store.Item, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.gets++
	if err := m.check(ctx, &k, false); err != nil {
		return store.Item{}, err
	}
	r, ok := m.live(k, time.Now())
	if !ok {
		return store.Item{}, store.ErrNotFound
	}
	return store.Item{Key: k, Value: slices.Clone(r.value), ExpiresAt: r.expires}, nil
}

func (m *memStore) Put(ctx context.Context, k store.Key, value []byte, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx, &k, true); err != nil {
		return err
	}
	m.recs[k] = memRec{value: slices.Clone(value), expires: expiresAt(ttl)}
	return nil
}

func (m *memStore) Create(ctx context.Context, k store.Key, value []byte, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx, &k, true); err != nil {
		return err
	}
	if _, ok := m.live(k, time.Now()); ok {
		return store.ErrExists
	}
	m.recs[k] = memRec{value: slices.Clone(value), expires: expiresAt(ttl)}
	return nil
}

func (m *memStore) CompareAndSwap(ctx context.Context, k store.Key, old, next []byte, ttl time.Duration) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx, &k, true); err != nil {
		return err
	}
	r, ok := m.live(k, time.Now())
	switch {
	case !ok:
		return store.ErrNotFound
	case !bytes.Equal(r.value, old):
		return store.ErrConflict
	}
	exp := r.expires
	if ttl != store.KeepTTL {
		exp = expiresAt(ttl)
	}
	m.recs[k] = memRec{value: slices.Clone(next), expires: exp}
	return nil
}

func (m *memStore) CompareAndDelete(ctx context.Context, k store.Key, old []byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx, &k, true); err != nil {
		return err
	}
	r, ok := m.live(k, time.Now())
	switch {
	case !ok:
		return store.ErrNotFound
	case !bytes.Equal(r.value, old):
		return store.ErrConflict
	}
	delete(m.recs, k)
	return nil
}

func (m *memStore) Delete(ctx context.Context, k store.Key) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx, &k, true); err != nil {
		return err
	}
	delete(m.recs, k)
	return nil
}

func (m *memStore) List(ctx context.Context, scope, kind string) ([]store.Item, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx, nil, false); err != nil {
		return nil, err
	}
	var out []store.Item
	now := time.Now()
	for k := range m.recs {
		if k.Scope != scope || k.Kind != kind {
			continue
		}
		if r, ok := m.live(k, now); ok {
			out = append(out, store.Item{Key: k, Value: slices.Clone(r.value), ExpiresAt: r.expires})
		}
	}
	slices.SortFunc(out, func(a, b store.Item) int { return strings.Compare(a.Key.ID, b.Key.ID) })
	return out, nil
}

func (m *memStore) Append(ctx context.Context, log string, after uint64, values [][]byte) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx, nil, true); err != nil {
		return err
	}
	if uint64(len(m.logs[log])) != after {
		return fmt.Errorf("memstore: append after %d, head is %d: %w", after, len(m.logs[log]), store.ErrConflict)
	}
	for _, v := range values {
		m.logs[log] = append(m.logs[log], slices.Clone(v))
	}
	return nil
}

func (m *memStore) Head(ctx context.Context, log string) (store.Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx, nil, false); err != nil {
		return store.Entry{}, err
	}
	l := m.logs[log]
	if len(l) == 0 {
		return store.Entry{}, nil
	}
	return store.Entry{Seq: uint64(len(l)), Value: slices.Clone(l[len(l)-1])}, nil
}

func (m *memStore) Read(ctx context.Context, log string, from uint64, limit int) ([]store.Entry, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.check(ctx, nil, false); err != nil {
		return nil, err
	}
	var out []store.Entry
	l := m.logs[log]
	for seq := max(from, 1); seq <= uint64(len(l)) && len(out) < limit; seq++ {
		out = append(out, store.Entry{Seq: seq, Value: slices.Clone(l[seq-1])})
	}
	return out, nil
}

func (m *memStore) Ping(ctx context.Context) error { return ctx.Err() }
func (m *memStore) Close() error                   { return nil }

// dump returns every byte the store holds, records and logs, for leak checks.
func (m *memStore) dump() []byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	var b bytes.Buffer
	for k, r := range m.recs {
		fmt.Fprintf(&b, "%s=%s\n", k, r.value)
	}
	for name, l := range m.logs {
		for _, v := range l {
			fmt.Fprintf(&b, "%s:%s\n", name, v)
		}
	}
	return b.Bytes()
}

func (m *memStore) setFailWrites(err error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.failWrites = err
}

func (m *memStore) getCount() int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.gets
}
