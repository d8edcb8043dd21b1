package store

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"time"
)

// Sentinels a Change returns to end Update without writing a new value.
var (
	// Keep leaves the record as it is; Update returns the current value
	// and no error.
	Keep = errors.New("store: keep the record as it is")
	// Remove deletes the record, by compare-and-delete on the value the
	// change saw; Update returns a nil value and no error.
	Remove = errors.New("store: remove the record")
)

// Change computes a record's next value from its current one (nil when no
// live record exists). It may run several times, once per attempt, each
// time with what the store holds then, so it must not act on the world:
// it decides, and the caller acts once Update has returned. Its own
// errors end Update and are returned as they are.
type Change func(cur []byte) (next []byte, err error)

// UpdateAttempts bounds the reads and writes of one Update. Each lost race
// means another writer made progress, so running out means a store that
// keeps changing under a hot key, or a broken one.
const UpdateAttempts = 32

// Update is the one read-modify-write of the code base: it reads the
// record under k, lets change decide its next value and writes that value
// only if the record still holds what change saw (compare-and-swap, or
// create when there was none). When another writer got there first it
// waits a random, growing moment and decides again on what is there now.
// ttl applies to the value written; KeepTTL keeps the record's expiry, and
// may not be used when change creates a record. It returns the value the
// store holds once it is done.
func Update(ctx context.Context, s Store, k Key, ttl time.Duration, change Change) ([]byte, error) {
	return update(ctx, s, k, ttl, change, nil, false)
}

// UpdateFrom is Update for a caller that has just read the record: cur is
// the value read (nil: none), and the first attempt decides on it without
// reading again.
func UpdateFrom(ctx context.Context, s Store, k Key, cur []byte, ttl time.Duration, change Change) ([]byte, error) {
	return update(ctx, s, k, ttl, change, cur, true)
}

func update(ctx context.Context, s Store, k Key, ttl time.Duration, change Change, cur []byte, known bool) ([]byte, error) {
	if err := k.Validate(); err != nil {
		return nil, err
	}
	for attempt := 0; attempt < UpdateAttempts; attempt++ {
		if attempt > 0 {
			if err := Pause(ctx, attempt); err != nil {
				return nil, fmt.Errorf("store: update %s: %w", k, err)
			}
		}
		if !known || attempt > 0 {
			it, err := s.Get(ctx, k)
			switch {
			case errors.Is(err, ErrNotFound):
				cur = nil
			case err != nil:
				return nil, err
			default:
				cur = it.Value
			}
		}
		next, err := change(cur)
		var werr error
		switch {
		case errors.Is(err, Keep):
			return cur, nil
		case errors.Is(err, Remove):
			if cur == nil {
				return nil, nil
			}
			werr = s.CompareAndDelete(ctx, k, cur)
		case err != nil:
			return nil, err
		case next == nil:
			return nil, fmt.Errorf("store: update %s: the change returned no value (return Keep or Remove)", k)
		case cur == nil:
			if ttl == KeepTTL {
				return nil, fmt.Errorf("store: update %s: KeepTTL on a record that does not exist", k)
			}
			werr = s.Create(ctx, k, next, ttl)
		default:
			werr = s.CompareAndSwap(ctx, k, cur, next, ttl)
		}
		switch {
		case werr == nil:
			return next, nil
		case errors.Is(werr, ErrConflict), errors.Is(werr, ErrNotFound), errors.Is(werr, ErrExists):
			continue // another writer moved it: decide again
		default:
			return nil, werr
		}
	}
	return nil, fmt.Errorf("store: update %s: gave up after %d attempts: %w", k, UpdateAttempts, ErrConflict)
}

// The wait before retry number n (from 1) is random, up to
// min(pauseBase<<n, pauseMax), so that writers who lost a race to one
// another do not meet again at once.
const (
	pauseBase = 50 * time.Microsecond
	pauseMax  = 5 * time.Millisecond
)

// PauseFor returns a random wait before retry number attempt.
func PauseFor(attempt int) time.Duration {
	return rand.N(min(pauseBase<<min(max(attempt, 0), 16), pauseMax)) + 1
}

// Pause waits PauseFor(attempt), or until ctx ends.
func Pause(ctx context.Context, attempt int) error {
	t := time.NewTimer(PauseFor(attempt))
	defer t.Stop()
	select {
	case <-ctx.Done():
		return ctx.Err()
	case <-t.C:
		return nil
	}
}
