package store

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// LockKind is the record kind that holds locks.
const LockKind = "lock"

// Lock is a held lease-style lock: it expires by itself after its ttl, so a
// crashed holder cannot block others forever, and only its holder can
// release it early.
type Lock struct {
	s     Store
	key   Key
	token []byte
}

// TryLock takes the lock named id in scope, or returns ErrExists when
// another holder has it.
func TryLock(ctx context.Context, s Store, scope, id string, ttl time.Duration) (*Lock, error) {
	if ttl <= 0 {
		return nil, fmt.Errorf("store: lock %q: ttl must be positive", id)
	}
	var b [16]byte
	if _, err := rand.Read(b[:]); err != nil {
		return nil, fmt.Errorf("store: lock token: %w", err)
	}
	l := &Lock{s: s, key: Key{Scope: scope, Kind: LockKind, ID: id}, token: []byte(base64.RawURLEncoding.EncodeToString(b[:]))}
	if err := s.Create(ctx, l.key, l.token, ttl); err != nil {
		return nil, err
	}
	return l, nil
}

// AcquireLock waits, polling every poll interval, until it takes the lock or
// ctx ends.
func AcquireLock(ctx context.Context, s Store, scope, id string, ttl, poll time.Duration) (*Lock, error) {
	t := time.NewTimer(0)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("store: waiting for lock %q: %w", id, ctx.Err())
		case <-t.C:
		}
		l, err := TryLock(ctx, s, scope, id, ttl)
		if !errors.Is(err, ErrExists) {
			return l, err
		}
		t.Reset(poll)
	}
}

// Renew extends the lock to ttl from now if this holder still has it, and
// returns ErrConflict (another holder took it over) or ErrNotFound (it
// expired) when it does not: a long-running holder renews well before ttl
// ends, and stops what the lock guards when Renew says it is lost.
func (l *Lock) Renew(ctx context.Context, ttl time.Duration) error {
	return l.s.CompareAndSwap(ctx, l.key, l.token, l.token, ttl)
}

// Unlock releases the lock if this holder still has it. Releasing a lock
// that already expired, or was taken over by another holder, is not an error.
func (l *Lock) Unlock(ctx context.Context) error {
	err := l.s.CompareAndDelete(ctx, l.key, l.token)
	if errors.Is(err, ErrNotFound) || errors.Is(err, ErrConflict) {
		return nil
	}
	return err
}

// RedactURL returns a store URL with any password replaced, for error
// messages and logs. Anything it cannot parse as a URL with a host is
// reduced to its scheme, and anything before an "@" is dropped, so a
// mistyped URL or a DSN cannot carry a password into a message.
func RedactURL(raw string) string {
	u, err := url.Parse(raw)
	if err == nil && u.Scheme != "" && u.Opaque == "" && !strings.Contains(u.Host, "@") && !strings.Contains(u.Path, "@") {
		if u.User == nil {
			return raw
		}
		return u.Redacted()
	}
	if err == nil && u.Scheme == "bolt" && u.Opaque != "" {
		return raw // bolt:PATH holds no credentials
	}
	scheme, rest, ok := strings.Cut(raw, ":")
	if !ok || strings.ContainsAny(scheme, "/@") {
		scheme, rest = "", raw
	}
	if i := strings.LastIndex(rest, "@"); i >= 0 {
		rest = "…@" + rest[i+1:]
	} else {
		rest = "…"
	}
	if scheme == "" {
		return "(store URL " + rest + ")"
	}
	return scheme + ":" + rest
}
