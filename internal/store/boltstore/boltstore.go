package boltstore

import (
	"bytes"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/agenthub/agenthub/internal/store"
)

// Defaults for the zero Options.
const (
	// DefaultTimeout bounds the wait for the file lock, so a second process
	// opening the same file fails fast with a clear error instead of hanging.
	DefaultTimeout = time.Second
	// DefaultBatchDelay is how long the first write of a batch waits for
	// others to join it. Much shorter than a commit (two fdatasyncs in
	// bbolt), batches fragment under load: writes queue behind the running
	// commit in many tiny batches, and 64 writers fell from ~11,000 to ~300
	// Puts/s at 1µs on the development machine. A lone write pays the delay
	// on top of its commit.
	DefaultBatchDelay = time.Millisecond
	// DefaultSweepInterval is how often Run removes expired records.
	DefaultSweepInterval = time.Minute
)

// sweepChunk caps the records one Sweep transaction deletes, so a large
// backlog of expired records never holds the write lock for long.
const sweepChunk = 1000

var (
	recordsBucket = []byte("records")
	logsBucket    = []byte("logs")
	// globalScope names the bucket of the "" scope; see the package comment.
	globalScope = []byte{0}
)

// Options configures Open. The zero value is ready to use.
type Options struct {
	// Logger receives sweep results and failures from Run. Default: discard.
	Logger *slog.Logger
	// Now is the clock that decides expiry. Default: time.Now.
	Now func() time.Time
	// Timeout bounds the wait for the file lock. Default: DefaultTimeout.
	Timeout time.Duration
	// BatchDelay is the longest a write waits for others to share its
	// transaction. Default: DefaultBatchDelay.
	BatchDelay time.Duration
	// SweepInterval is the period of Run. Default: DefaultSweepInterval.
	SweepInterval time.Duration
}

// Store is a store.Store on a bbolt file. It is safe for concurrent use.
type Store struct {
	db            *bolt.DB
	path          string
	log           *slog.Logger
	now           func() time.Time
	sweepInterval time.Duration
	// runBatch is db.Batch; tests replace it to replay bbolt's rollback
	// and re-run of batched functions deterministically.
	runBatch func(func(*bolt.Tx) error) error
}

var _ store.Store = (*Store)(nil)

// Open opens or creates the store file at path. It fails with an error
// naming the path when another process holds the file for longer than
// opts.Timeout.
func Open(path string, opts Options) (*Store, error) {
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Timeout <= 0 {
		opts.Timeout = DefaultTimeout
	}
	if opts.BatchDelay <= 0 {
		opts.BatchDelay = DefaultBatchDelay
	}
	if opts.SweepInterval <= 0 {
		opts.SweepInterval = DefaultSweepInterval
	}
	db, err := bolt.Open(path, 0o600, &bolt.Options{Timeout: opts.Timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, fmt.Errorf("boltstore: store file %s is in use by another process (waited %v): %w", path, opts.Timeout, err)
	}
	if err != nil {
		return nil, fmt.Errorf("boltstore: open store file %s: %w", path, err)
	}
	db.MaxBatchDelay = opts.BatchDelay
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{recordsBucket, logsBucket} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("boltstore: initialize store file %s: %w", path, err)
	}
	return &Store{
		db:            db,
		runBatch:      db.Batch,
		path:          path,
		log:           opts.Logger,
		now:           opts.Now,
		sweepInterval: opts.SweepInterval,
	}, nil
}

// Close releases the file and its lock. Closing twice is not an error.
// Writes waiting in a batch when Close is called fail.
func (s *Store) Close() error {
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("boltstore: close store file %s: %w", s.path, err)
	}
	return nil
}

// Ping reports whether the store file is open.
func (s *Store) Ping(ctx context.Context) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore: ping: %w", err)
	}
	if err := s.db.View(func(*bolt.Tx) error { return nil }); err != nil {
		return fmt.Errorf("boltstore: ping store file %s: %w", s.path, err)
	}
	return nil
}

// batch runs fn in a shared write transaction. fn must follow the rules in
// the package comment: idempotent, outcomes through captured variables.
func (s *Store) batch(ctx context.Context, op string, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore: %s: %w", op, err)
	}
	if err := s.runBatch(fn); err != nil {
		return fmt.Errorf("boltstore: %s: %w", op, err)
	}
	return nil
}

// view runs fn in a read-only transaction.
func (s *Store) view(ctx context.Context, op string, fn func(*bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("boltstore: %s: %w", op, err)
	}
	if err := s.db.View(fn); err != nil {
		return fmt.Errorf("boltstore: %s: %w", op, err)
	}
	return nil
}

func scopeName(scope string) []byte {
	if scope == "" {
		return globalScope
	}
	return []byte(scope)
}

// kindBucket returns the bucket of one scope and kind, or nil when it does
// not exist and create is false.
func kindBucket(tx *bolt.Tx, scope, kind string, create bool) (*bolt.Bucket, error) {
	root := tx.Bucket(recordsBucket)
	if root == nil {
		return nil, errors.New("records bucket missing")
	}
	if !create {
		sb := root.Bucket(scopeName(scope))
		if sb == nil {
			return nil, nil
		}
		return sb.Bucket([]byte(kind)), nil
	}
	sb, err := root.CreateBucketIfNotExists(scopeName(scope))
	if err != nil {
		return nil, err
	}
	return sb.CreateBucketIfNotExists([]byte(kind))
}

// encode prefixes value with its expiry in Unix nanoseconds, 0 for none.
func encode(expires int64, value []byte) []byte {
	b := make([]byte, 8+len(value))
	binary.BigEndian.PutUint64(b, uint64(expires))
	copy(b[8:], value)
	return b
}

// record is a decoded stored value. value aliases the bbolt page and is
// only valid inside the transaction that read it.
type record struct {
	expires int64
	value   []byte
}

func decode(raw []byte) (record, error) {
	if len(raw) < 8 {
		return record{}, fmt.Errorf("corrupt record of %d bytes", len(raw))
	}
	return record{expires: int64(binary.BigEndian.Uint64(raw)), value: raw[8:]}, nil
}

func (r record) live(now int64) bool { return r.expires == 0 || now < r.expires }

func (r record) item(k store.Key) store.Item {
	it := store.Item{Key: k, Value: bytes.Clone(r.value)}
	if it.Value == nil {
		it.Value = []byte{}
	}
	if r.expires != 0 {
		it.ExpiresAt = time.Unix(0, r.expires).UTC()
	}
	return it
}

// lookup reads the live record under k. It reports found false for a
// missing or expired record, and expired true for an expired one, so write
// paths can delete it.
func lookup(b *bolt.Bucket, id []byte, now int64) (r record, found, expired bool, err error) {
	if b == nil {
		return record{}, false, false, nil
	}
	raw := b.Get(id)
	if raw == nil {
		return record{}, false, false, nil
	}
	r, err = decode(raw)
	if err != nil {
		return record{}, false, false, err
	}
	if !r.live(now) {
		return record{}, false, true, nil
	}
	return r, true, false, nil
}

// expiry turns a ttl into an absolute expiry in Unix nanoseconds.
func expiry(now time.Time, ttl time.Duration) (int64, error) {
	switch {
	case ttl == 0:
		return 0, nil
	case ttl < 0:
		return 0, fmt.Errorf("negative ttl %v", ttl)
	}
	return now.Add(ttl).UnixNano(), nil
}

// Get returns the live record under k, or an error wrapping
// store.ErrNotFound.
func (s *Store) Get(ctx context.Context, k store.Key) (store.Item, error) {
	if err := k.Validate(); err != nil {
		return store.Item{}, err
	}
	items, err := s.fetch(ctx, "get "+k.String(), []store.Key{k})
	if err != nil {
		return store.Item{}, err
	}
	if len(items) == 0 {
		return store.Item{}, fmt.Errorf("boltstore: get %s: %w", k, store.ErrNotFound)
	}
	return items[0], nil
}

// GetMany returns the live records among keys, in their order, from one
// read transaction.
func (s *Store) GetMany(ctx context.Context, keys []store.Key) ([]store.Item, error) {
	if err := store.SameGroup(keys); err != nil {
		return nil, fmt.Errorf("boltstore: get many: %w", err)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	return s.fetch(ctx, "get many "+keys[0].String(), keys)
}

// fetch reads the live records among keys in one read transaction.
func (s *Store) fetch(ctx context.Context, op string, keys []store.Key) ([]store.Item, error) {
	now := s.now().UnixNano()
	var items []store.Item
	err := s.view(ctx, op, func(tx *bolt.Tx) error {
		for _, k := range keys {
			b, err := kindBucket(tx, k.Scope, k.Kind, false)
			if err != nil {
				return err
			}
			r, ok, _, err := lookup(b, []byte(k.ID), now)
			if err != nil {
				return err
			}
			if ok {
				items = append(items, r.item(k))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return items, nil
}

// Put writes the record, replacing any previous value and expiry.
func (s *Store) Put(ctx context.Context, k store.Key, value []byte, ttl time.Duration) error {
	if err := k.Validate(); err != nil {
		return err
	}
	exp, err := expiry(s.now(), ttl)
	if err != nil {
		return fmt.Errorf("boltstore: put %s: %w", k, err)
	}
	raw := encode(exp, value)
	return s.batch(ctx, "put "+k.String(), func(tx *bolt.Tx) error {
		b, err := kindBucket(tx, k.Scope, k.Kind, true)
		if err != nil {
			return err
		}
		return b.Put([]byte(k.ID), raw)
	})
}

// Create writes the record only if no live record exists under k; otherwise
// it returns an error wrapping store.ErrExists. An expired record does not
// count.
func (s *Store) Create(ctx context.Context, k store.Key, value []byte, ttl time.Duration) error {
	if err := k.Validate(); err != nil {
		return err
	}
	now := s.now()
	exp, err := expiry(now, ttl)
	if err != nil {
		return fmt.Errorf("boltstore: create %s: %w", k, err)
	}
	raw := encode(exp, value)
	var exists bool
	err = s.batch(ctx, "create "+k.String(), func(tx *bolt.Tx) error {
		exists = false
		b, err := kindBucket(tx, k.Scope, k.Kind, true)
		if err != nil {
			return err
		}
		_, found, _, err := lookup(b, []byte(k.ID), now.UnixNano())
		if err != nil {
			return err
		}
		if found {
			exists = true
			return nil
		}
		return b.Put([]byte(k.ID), raw)
	})
	if err != nil {
		return err
	}
	if exists {
		return fmt.Errorf("boltstore: create %s: %w", k, store.ErrExists)
	}
	return nil
}

// compareOutcome is what a conditional write found inside its transaction.
type compareOutcome int

const (
	compareDone compareOutcome = iota
	compareNotFound
	compareConflict
)

func (o compareOutcome) err(op string, k store.Key) error {
	switch o {
	case compareNotFound:
		return fmt.Errorf("boltstore: %s %s: %w", op, k, store.ErrNotFound)
	case compareConflict:
		return fmt.Errorf("boltstore: %s %s: %w", op, k, store.ErrConflict)
	}
	return nil
}

// compare runs a conditional write on k: write is called, inside the
// transaction, only when the live value equals old. Expired records met on
// the way are deleted.
func (s *Store) compare(ctx context.Context, op string, k store.Key, old []byte, write func(b *bolt.Bucket, cur record) error) error {
	if err := k.Validate(); err != nil {
		return err
	}
	now := s.now().UnixNano()
	var out compareOutcome
	err := s.batch(ctx, op+" "+k.String(), func(tx *bolt.Tx) error {
		out = compareDone
		b, err := kindBucket(tx, k.Scope, k.Kind, false)
		if err != nil {
			return err
		}
		cur, found, expired, err := lookup(b, []byte(k.ID), now)
		switch {
		case err != nil:
			return err
		case expired:
			out = compareNotFound
			return b.Delete([]byte(k.ID))
		case !found:
			out = compareNotFound
			return nil
		case !bytes.Equal(cur.value, old):
			out = compareConflict
			return nil
		}
		return write(b, cur)
	})
	if err != nil {
		return err
	}
	return out.err(op, k)
}

// CompareAndSwap replaces the value with next only if the live value equals
// old. ttl may be store.KeepTTL to keep the current expiry.
func (s *Store) CompareAndSwap(ctx context.Context, k store.Key, old, next []byte, ttl time.Duration) error {
	exp, keep := int64(0), ttl == store.KeepTTL
	if !keep {
		var err error
		if exp, err = expiry(s.now(), ttl); err != nil {
			return fmt.Errorf("boltstore: compare-and-swap %s: %w", k, err)
		}
	}
	return s.compare(ctx, "compare-and-swap", k, old, func(b *bolt.Bucket, cur record) error {
		e := exp
		if keep {
			e = cur.expires
		}
		return b.Put([]byte(k.ID), encode(e, next))
	})
}

// CompareAndDelete deletes the record only if its live value equals old.
func (s *Store) CompareAndDelete(ctx context.Context, k store.Key, old []byte) error {
	return s.compare(ctx, "compare-and-delete", k, old, func(b *bolt.Bucket, _ record) error {
		return b.Delete([]byte(k.ID))
	})
}

// Delete removes the record; deleting a missing record is not an error.
func (s *Store) Delete(ctx context.Context, k store.Key) error {
	if err := k.Validate(); err != nil {
		return err
	}
	return s.batch(ctx, "delete "+k.String(), func(tx *bolt.Tx) error {
		b, err := kindBucket(tx, k.Scope, k.Kind, false)
		if err != nil || b == nil {
			return err
		}
		return b.Delete([]byte(k.ID))
	})
}

// List returns the live records of one kind in one scope, ordered by ID.
func (s *Store) List(ctx context.Context, scope, kind string) ([]store.Item, error) {
	if err := (store.Key{Scope: scope, Kind: kind, ID: "-"}).Validate(); err != nil {
		return nil, err
	}
	now := s.now().UnixNano()
	var items []store.Item
	err := s.view(ctx, fmt.Sprintf("list %s/%s", scope, kind), func(tx *bolt.Tx) error {
		items = nil
		b, err := kindBucket(tx, scope, kind, false)
		if err != nil || b == nil {
			return err
		}
		c := b.Cursor()
		for id, raw := c.First(); id != nil; id, raw = c.Next() {
			if raw == nil {
				continue // a nested bucket; none are created here
			}
			r, err := decode(raw)
			if err != nil {
				return fmt.Errorf("id %q: %w", id, err)
			}
			if r.live(now) {
				items = append(items, r.item(store.Key{Scope: scope, Kind: kind, ID: string(id)}))
			}
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return items, nil
}

// Sweep deletes every expired record, and every bucket left empty, and
// returns how many records it deleted. It works in transactions of at most
// sweepChunk deletions so writers are never held up for long, and stops
// between them when ctx ends.
func (s *Store) Sweep(ctx context.Context) (int, error) {
	total := 0
	for {
		now := s.now().UnixNano()
		var (
			n    int
			more bool
		)
		err := s.batch(ctx, "sweep "+s.path, func(tx *bolt.Tx) error {
			var err error
			n, more, err = sweepTx(tx, now)
			return err
		})
		if err != nil {
			return total, err
		}
		total += n
		if !more {
			return total, nil
		}
	}
}

// sweepTx deletes up to sweepChunk expired records and the buckets left
// empty. more reports that the chunk filled up and another pass is needed.
// Keys are collected first and deleted after each cursor walk, because a
// bbolt cursor must not see its bucket change under it.
func sweepTx(tx *bolt.Tx, now int64) (n int, more bool, err error) {
	root := tx.Bucket(recordsBucket)
	if root == nil {
		return 0, false, errors.New("records bucket missing")
	}
	var emptyScopes [][]byte
	err = root.ForEachBucket(func(scope []byte) error {
		sb := root.Bucket(scope)
		var emptyKinds [][]byte
		err := sb.ForEachBucket(func(kind []byte) error {
			kb := sb.Bucket(kind)
			var expired [][]byte
			c := kb.Cursor()
			for id, raw := c.First(); id != nil && n+len(expired) < sweepChunk; id, raw = c.Next() {
				if raw == nil {
					continue
				}
				r, err := decode(raw)
				if err != nil {
					return fmt.Errorf("%q/%q/%q: %w", scope, kind, id, err)
				}
				if !r.live(now) {
					expired = append(expired, bytes.Clone(id))
				}
			}
			for _, id := range expired {
				if err := kb.Delete(id); err != nil {
					return err
				}
			}
			n += len(expired)
			if n >= sweepChunk {
				more = true
			}
			if k, _ := kb.Cursor().First(); k == nil {
				emptyKinds = append(emptyKinds, bytes.Clone(kind))
			}
			return nil
		})
		if err != nil {
			return err
		}
		for _, kind := range emptyKinds {
			if err := sb.DeleteBucket(kind); err != nil {
				return err
			}
		}
		if k, _ := sb.Cursor().First(); k == nil {
			emptyScopes = append(emptyScopes, bytes.Clone(scope))
		}
		return nil
	})
	if err != nil {
		return 0, false, err
	}
	for _, scope := range emptyScopes {
		if err := root.DeleteBucket(scope); err != nil {
			return 0, false, err
		}
	}
	return n, more, nil
}

// Run sweeps expired records at once and then every Options.SweepInterval
// until ctx ends, when it returns nil. It returns an error only when the
// store has been closed under it; other sweep failures are logged and
// retried at the next tick.
func (s *Store) Run(ctx context.Context) error {
	t := time.NewTicker(s.sweepInterval)
	defer t.Stop()
	for {
		n, err := s.Sweep(ctx)
		switch {
		case ctx.Err() != nil:
			return nil
		case errors.Is(err, bolterrors.ErrDatabaseNotOpen):
			return err
		case err != nil:
			s.log.WarnContext(ctx, "sweeping expired records failed", "path", s.path, "swept", n, "error", err)
		case n > 0:
			s.log.DebugContext(ctx, "swept expired records", "path", s.path, "swept", n)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// checkLog validates a log name, which becomes a bucket name.
func checkLog(name string) error {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return r < 0x20 || r == 0x7f }) {
		return fmt.Errorf("boltstore: invalid log name %q", name)
	}
	return nil
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// lastSeq returns the sequence number of the log's last entry, 0 if none.
func lastSeq(b *bolt.Bucket) (uint64, []byte, error) {
	if b == nil {
		return 0, nil, nil
	}
	k, v := b.Cursor().Last()
	if k == nil {
		return 0, nil, nil
	}
	if len(k) != 8 {
		return 0, nil, fmt.Errorf("corrupt log key %x", k)
	}
	return binary.BigEndian.Uint64(k), v, nil
}

// Append adds values as entries after+1, after+2, … only if the log's head
// is after; otherwise it returns an error wrapping store.ErrConflict that
// names the actual head. The head check and the writes share one
// transaction, so two writers can never both extend the same head.
func (s *Store) Append(ctx context.Context, log string, after uint64, values [][]byte) error {
	if err := checkLog(log); err != nil {
		return err
	}
	op := fmt.Sprintf("append to log %q after %d", log, after)
	var head uint64
	check := func(b *bolt.Bucket) (bool, error) {
		var err error
		head, _, err = lastSeq(b)
		return err == nil && head == after, err
	}
	var (
		ok  bool
		err error
	)
	if len(values) == 0 {
		// Nothing to write: check the head without a write transaction.
		err = s.view(ctx, op, func(tx *bolt.Tx) error {
			ok, err = check(tx.Bucket(logsBucket).Bucket([]byte(log)))
			return err
		})
	} else {
		err = s.batch(ctx, op, func(tx *bolt.Tx) error {
			b, err := tx.Bucket(logsBucket).CreateBucketIfNotExists([]byte(log))
			if err != nil {
				return err
			}
			if ok, err = check(b); err != nil || !ok {
				return err
			}
			// Sequential keys fill pages completely instead of leaving
			// them half empty after each split.
			b.FillPercent = 1
			for i, v := range values {
				if err := b.Put(seqKey(after+uint64(i)+1), v); err != nil {
					return err
				}
			}
			return nil
		})
	}
	if err != nil {
		return err
	}
	if !ok {
		return fmt.Errorf("boltstore: %s: head is %d: %w", op, head, store.ErrConflict)
	}
	return nil
}

// Head returns the log's last entry, or a zero Entry for an empty log.
func (s *Store) Head(ctx context.Context, log string) (store.Entry, error) {
	if err := checkLog(log); err != nil {
		return store.Entry{}, err
	}
	var e store.Entry
	err := s.view(ctx, fmt.Sprintf("head of log %q", log), func(tx *bolt.Tx) error {
		seq, v, err := lastSeq(tx.Bucket(logsBucket).Bucket([]byte(log)))
		if err != nil || seq == 0 {
			return err
		}
		e = store.Entry{Seq: seq, Value: bytes.Clone(v)}
		if e.Value == nil {
			e.Value = []byte{}
		}
		return nil
	})
	return e, err
}

// Read returns up to limit entries with Seq >= from, in order. A limit of
// zero or less returns no entries.
func (s *Store) Read(ctx context.Context, log string, from uint64, limit int) ([]store.Entry, error) {
	if err := checkLog(log); err != nil {
		return nil, err
	}
	if limit <= 0 {
		return nil, nil
	}
	var out []store.Entry
	err := s.view(ctx, fmt.Sprintf("read log %q from %d", log, from), func(tx *bolt.Tx) error {
		out = nil
		b := tx.Bucket(logsBucket).Bucket([]byte(log))
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Seek(seqKey(from)); k != nil && len(out) < limit; k, v = c.Next() {
			if len(k) != 8 {
				return fmt.Errorf("corrupt log key %x", k)
			}
			val := bytes.Clone(v)
			if val == nil {
				val = []byte{}
			}
			out = append(out, store.Entry{Seq: binary.BigEndian.Uint64(k), Value: val})
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
