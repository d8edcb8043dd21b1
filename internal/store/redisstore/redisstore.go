package redisstore

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/agenthub/agenthub/internal/store"
)

// DefaultPrefix is the key prefix used when none is configured.
const DefaultPrefix = "agenthub"

// Options configures Open.
type Options struct {
	// URL is redis://[user:password@]host:port/db, or rediss://… for TLS,
	// with go-redis's query parameters (redis.ParseURL).
	URL string
	// Prefix starts every key; empty means DefaultPrefix. Several
	// deployments can share one Redis under different prefixes.
	Prefix string
	// Logger receives operational messages; nil discards them.
	Logger *slog.Logger
}

// Store is a store.Store on Redis. It is safe for concurrent use.
type Store struct {
	c      redis.UniversalClient
	prefix string
	log    *slog.Logger
	// now turns a remaining PTTL into Item.ExpiresAt on the caller's clock.
	now func() time.Time

	closeOnce sync.Once
	closeErr  error
}

var _ store.Store = (*Store)(nil)

// Open connects to the Redis at opts.URL and pings it. Its errors name the
// URL with the password removed and never contain the password.
func Open(ctx context.Context, opts Options) (*Store, error) {
	shown := store.RedactURL(opts.URL)
	ro, err := redis.ParseURL(opts.URL)
	if err != nil {
		return nil, fmt.Errorf("redisstore: open %s: %w", shown, parseError(err, opts.URL))
	}
	// A state-changing script must run at most once: go-redis would resend
	// an EVALSHA whose reply was lost (EOF, read timeout) although Redis may
	// already have run it, appending an audit batch twice or telling the one
	// winning compare-and-swap that it lost. Callers see the error instead
	// and decide, with fresh reads, what happened.
	ro.MaxRetries = -1
	c := redis.NewClient(ro)
	if err := c.Ping(ctx).Err(); err != nil {
		c.Close()
		return nil, fmt.Errorf("redisstore: open %s: %w", shown, scrub(err, ro.Password))
	}
	s := New(c, opts.Prefix)
	if opts.Logger != nil {
		s.log = opts.Logger
	}
	s.log.Info("store opened", "backend", "redis", "store_url", shown, "prefix", s.prefix)
	return s, nil
}

// New wraps an existing client, for example a *redis.ClusterClient, under
// the given key prefix (empty means DefaultPrefix). Close closes the client.
// Configure the client with MaxRetries -1, as Open does: a retried script
// may run twice.
func New(c redis.UniversalClient, prefix string) *Store {
	if prefix == "" {
		prefix = DefaultPrefix
	}
	return &Store{
		c:      c,
		prefix: escape(prefix, "%{}"),
		log:    slog.New(slog.DiscardHandler),
		now:    time.Now,
	}
}

// parseError keeps a URL parse error useful without echoing the URL:
// net/url's errors quote the whole URL, password included, and an invalid
// escape quotes the bytes around it, which may be part of the password.
func parseError(err error, raw string) error {
	var ue *url.Error
	if errors.As(err, &ue) {
		var ee url.EscapeError
		if errors.As(ue.Err, &ee) {
			return errors.New("invalid percent-escape in URL")
		}
		err = ue.Err
	}
	if u, perr := url.Parse(raw); perr == nil && u.User != nil {
		pw, _ := u.User.Password()
		return scrub(err, pw)
	}
	return err
}

// scrub returns err, or a copy of its text with secret replaced when the
// text contains it. The copy does not wrap err, so nothing that unwraps the
// result can reach the secret.
func scrub(err error, secret string) error {
	if secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "xxxxx"))
}

// escape percent-encodes the bytes of special in s; '%' must be among them
// so that the encoding stays reversible, and so distinct inputs stay
// distinct.
func escape(s, special string) string {
	if !strings.ContainsAny(s, special) {
		return s
	}
	// Every scoped key passes through here, and principals ("T1:U1")
	// always hold a colon, so this loop is on the path of every call.
	const hexDigits = "0123456789ABCDEF"
	b := make([]byte, 0, len(s)+8)
	for i := 0; i < len(s); i++ {
		if c := s[i]; strings.IndexByte(special, c) >= 0 {
			b = append(b, '%', hexDigits[c>>4], hexDigits[c&0xf])
		} else {
			b = append(b, c)
		}
	}
	return string(b)
}

// tag is the hash-tagged part shared by every key of one scope and kind.
func (s *Store) tag(scope, kind string) string {
	if scope == "" {
		return s.prefix + ":{g:" + kind + "}"
	}
	return s.prefix + ":{s:" + escape(scope, "%{}:") + "}"
}

func (s *Store) recordKey(k store.Key) string {
	return s.tag(k.Scope, k.Kind) + ":r:" + k.Kind + ":" + k.ID
}

func (s *Store) indexKey(scope, kind string) string {
	return s.tag(scope, kind) + ":i:" + kind
}

func (s *Store) logKey(name string) string {
	return s.prefix + ":{l:" + escape(name, "%{}:") + "}"
}

// ttlArg renders a ttl for the scripts in whole milliseconds, rounding up,
// so that a record never expires before its ttl (and a ttl below one
// millisecond still expires rather than living forever).
func ttlArg(ttl time.Duration) (int64, error) {
	switch {
	case ttl == store.KeepTTL:
		return -1, nil
	case ttl < 0:
		return 0, fmt.Errorf("negative ttl %v", ttl)
	case ttl == 0:
		return 0, nil
	}
	return int64((ttl + time.Millisecond - 1) / time.Millisecond), nil
}

// scriptInt runs a script that returns an integer.
func (s *Store) scriptInt(ctx context.Context, sc *redis.Script, keys []string, args ...any) (int64, error) {
	return sc.Run(ctx, s.c, keys, args...).Int64()
}

// Get returns the live record under k.
func (s *Store) Get(ctx context.Context, k store.Key) (store.Item, error) {
	if err := k.Validate(); err != nil {
		return store.Item{}, err
	}
	items, err := s.fetch(ctx, []store.Key{k})
	if err != nil {
		return store.Item{}, fmt.Errorf("redisstore: get %v: %w", k, err)
	}
	if len(items) == 0 {
		return store.Item{}, fmt.Errorf("redisstore: get %v: %w", k, store.ErrNotFound)
	}
	return items[0], nil
}

// GetMany returns the live records among keys, in their order.
func (s *Store) GetMany(ctx context.Context, keys []store.Key) ([]store.Item, error) {
	if err := store.SameGroup(keys); err != nil {
		return nil, fmt.Errorf("redisstore: get many: %w", err)
	}
	if len(keys) == 0 {
		return nil, nil
	}
	items, err := s.fetch(ctx, keys)
	if err != nil {
		return nil, fmt.Errorf("redisstore: get many %v…: %w", keys[0], err)
	}
	return items, nil
}

// fetch reads the live records among keys, which are of one slot, with
// GET and PTTL of each in one MULTI/EXEC: atomic, and one round trip.
func (s *Store) fetch(ctx context.Context, keys []store.Key) ([]store.Item, error) {
	gets := make([]*redis.StringCmd, len(keys))
	pttls := make([]*redis.DurationCmd, len(keys))
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		for i, k := range keys {
			key := s.recordKey(k)
			gets[i] = p.Get(ctx, key)
			pttls[i] = p.PTTL(ctx, key)
		}
		return nil
	})
	if err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	var items []store.Item
	for i, k := range keys {
		v, err := gets[i].Bytes()
		if errors.Is(err, redis.Nil) {
			continue
		}
		if err != nil {
			return nil, err
		}
		it := store.Item{Key: k, Value: v}
		if d, err := pttls[i].Result(); err == nil && d >= 0 {
			it.ExpiresAt = s.now().Add(d)
		}
		items = append(items, it)
	}
	return items, nil
}

// expiresAt turns a PTTL reply into an absolute time on the caller's clock;
// a negative PTTL (no expiry) gives the zero time.
func (s *Store) expiresAt(pttl any) time.Time {
	ms, ok := pttl.(int64)
	if !ok || ms < 0 {
		return time.Time{}
	}
	return s.now().Add(time.Duration(ms) * time.Millisecond)
}

// Put writes the record, replacing any previous value and expiry.
func (s *Store) Put(ctx context.Context, k store.Key, value []byte, ttl time.Duration) error {
	if err := s.write(ctx, k, value, ttl, false); err != nil {
		return fmt.Errorf("redisstore: put %v: %w", k, err)
	}
	return nil
}

// Create writes the record only if no live record exists under k.
func (s *Store) Create(ctx context.Context, k store.Key, value []byte, ttl time.Duration) error {
	if err := s.write(ctx, k, value, ttl, true); err != nil {
		return fmt.Errorf("redisstore: create %v: %w", k, err)
	}
	return nil
}

func (s *Store) write(ctx context.Context, k store.Key, value []byte, ttl time.Duration, create bool) error {
	if err := k.Validate(); err != nil {
		return err
	}
	if ttl == store.KeepTTL {
		return errors.New("KeepTTL is only for CompareAndSwap")
	}
	ms, err := ttlArg(ttl)
	if err != nil {
		return err
	}
	nx := "0"
	if create {
		nx = "1"
	}
	n, err := s.scriptInt(ctx, writeScript, []string{s.recordKey(k), s.indexKey(k.Scope, k.Kind)}, value, ms, k.ID, nx)
	if err != nil {
		return err
	}
	if n == 0 {
		return store.ErrExists
	}
	return nil
}

// CompareAndSwap replaces the value only if it equals old.
func (s *Store) CompareAndSwap(ctx context.Context, k store.Key, old, next []byte, ttl time.Duration) error {
	if err := s.cas(ctx, k, old, next, ttl); err != nil {
		return fmt.Errorf("redisstore: compare-and-swap %v: %w", k, err)
	}
	return nil
}

func (s *Store) cas(ctx context.Context, k store.Key, old, next []byte, ttl time.Duration) error {
	if err := k.Validate(); err != nil {
		return err
	}
	ms, err := ttlArg(ttl)
	if err != nil {
		return err
	}
	n, err := s.scriptInt(ctx, casScript, []string{s.recordKey(k), s.indexKey(k.Scope, k.Kind)}, old, next, ms, k.ID)
	if err != nil {
		return err
	}
	return compareResult(n)
}

func compareResult(n int64) error {
	switch n {
	case resOK:
		return nil
	case resNotFound:
		return store.ErrNotFound
	case resConflict:
		return store.ErrConflict
	}
	return fmt.Errorf("unexpected script result %d", n)
}

// CompareAndDelete deletes the record only if its value equals old.
func (s *Store) CompareAndDelete(ctx context.Context, k store.Key, old []byte) error {
	if err := k.Validate(); err != nil {
		return fmt.Errorf("redisstore: compare-and-delete: %w", err)
	}
	n, err := s.scriptInt(ctx, cadScript, []string{s.recordKey(k), s.indexKey(k.Scope, k.Kind)}, old, k.ID)
	if err == nil {
		err = compareResult(n)
	}
	if err != nil {
		return fmt.Errorf("redisstore: compare-and-delete %v: %w", k, err)
	}
	return nil
}

// Delete removes the record; a missing record is not an error.
func (s *Store) Delete(ctx context.Context, k store.Key) error {
	if err := k.Validate(); err != nil {
		return fmt.Errorf("redisstore: delete: %w", err)
	}
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		p.Del(ctx, s.recordKey(k))
		p.ZRem(ctx, s.indexKey(k.Scope, k.Kind), k.ID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("redisstore: delete %v: %w", k, err)
	}
	return nil
}

// List returns the live records of one kind in one scope, ordered by ID.
// It takes two round trips; see the package comment.
func (s *Store) List(ctx context.Context, scope, kind string) ([]store.Item, error) {
	if err := (store.Key{Scope: scope, Kind: kind, ID: "-"}).Validate(); err != nil {
		return nil, fmt.Errorf("redisstore: list: %w", err)
	}
	ids, err := indexScript.Run(ctx, s.c, []string{s.indexKey(scope, kind)}).StringSlice()
	if err != nil {
		return nil, fmt.Errorf("redisstore: list %s/%s: %w", scope, kind, err)
	}
	if len(ids) == 0 {
		return nil, nil
	}
	slices.Sort(ids)
	keys := make([]string, len(ids))
	for i, id := range ids {
		keys[i] = s.recordKey(store.Key{Scope: scope, Kind: kind, ID: id})
	}
	res, err := fetchScript.Run(ctx, s.c, keys).Slice()
	if err != nil {
		return nil, fmt.Errorf("redisstore: list %s/%s: %w", scope, kind, err)
	}
	if len(res) != 2*len(keys) {
		return nil, fmt.Errorf("redisstore: list %s/%s: unexpected reply of %d elements for %d records", scope, kind, len(res), len(keys))
	}
	items := make([]store.Item, 0, len(ids))
	for i, id := range ids {
		v, ok := res[2*i].(string)
		if !ok {
			// Deleted or expired between the two round trips.
			continue
		}
		items = append(items, store.Item{
			Key:       store.Key{Scope: scope, Kind: kind, ID: id},
			Value:     []byte(v),
			ExpiresAt: s.expiresAt(res[2*i+1]),
		})
	}
	return items, nil
}

// Append adds values to the log only if its last sequence number is after.
func (s *Store) Append(ctx context.Context, log string, after uint64, values [][]byte) error {
	args := make([]any, 0, 1+len(values))
	args = append(args, strconv.FormatUint(after, 10))
	for _, v := range values {
		args = append(args, v)
	}
	res, err := appendScript.Run(ctx, s.c, []string{s.logKey(log)}, args...).Int64Slice()
	if err != nil {
		return fmt.Errorf("redisstore: append to log %q: %w", log, err)
	}
	if len(res) != 2 {
		return fmt.Errorf("redisstore: append to log %q: unexpected reply of %d elements", log, len(res))
	}
	if res[0] != 1 {
		return fmt.Errorf("redisstore: append to log %q after %d: head is %d: %w", log, after, res[1], store.ErrConflict)
	}
	return nil
}

// Head returns the log's last entry, or Seq 0 for an empty log.
func (s *Store) Head(ctx context.Context, log string) (store.Entry, error) {
	key := s.logKey(log)
	var n *redis.IntCmd
	var last *redis.StringCmd
	_, err := s.c.TxPipelined(ctx, func(p redis.Pipeliner) error {
		n = p.LLen(ctx, key)
		last = p.LIndex(ctx, key, -1)
		return nil
	})
	if errors.Is(err, redis.Nil) && n.Err() == nil && n.Val() == 0 {
		return store.Entry{}, nil // an empty log: LINDEX found nothing
	}
	if err != nil {
		return store.Entry{}, fmt.Errorf("redisstore: head of log %q: %w", log, err)
	}
	v, err := last.Bytes()
	if err != nil || n.Val() <= 0 {
		return store.Entry{}, fmt.Errorf("redisstore: head of log %q: unexpected reply", log)
	}
	return store.Entry{Seq: uint64(n.Val()), Value: v}, nil
}

// Read returns up to limit entries with Seq >= from, in order.
func (s *Store) Read(ctx context.Context, log string, from uint64, limit int) ([]store.Entry, error) {
	if from == 0 {
		from = 1
	}
	if limit <= 0 || from > math.MaxInt64 {
		return nil, nil
	}
	start := int64(from - 1)
	stop := int64(-1) // the end of the list
	if int64(limit) <= math.MaxInt64-start {
		stop = start + int64(limit) - 1
	}
	vals, err := s.c.LRange(ctx, s.logKey(log), start, stop).Result()
	if err != nil {
		return nil, fmt.Errorf("redisstore: read log %q from %d: %w", log, from, err)
	}
	if len(vals) == 0 {
		return nil, nil
	}
	out := make([]store.Entry, len(vals))
	for i, v := range vals {
		out[i] = store.Entry{Seq: from + uint64(i), Value: []byte(v)}
	}
	return out, nil
}

// Ping reports whether Redis answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.c.Ping(ctx).Err(); err != nil {
		return fmt.Errorf("redisstore: ping: %w", err)
	}
	return nil
}

// Close closes the client. Later calls return the first call's result
// rather than go-redis's "client is closed", so a store closed by its user
// and again by a test cleanup is not an error.
func (s *Store) Close() error {
	s.closeOnce.Do(func() {
		if err := s.c.Close(); err != nil {
			s.closeErr = fmt.Errorf("redisstore: close: %w", err)
		}
	})
	return s.closeErr
}
