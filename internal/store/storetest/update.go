package storetest

import (
	"context"
	"errors"
	"strconv"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/store"
)

// testUpdate walks store.Update's outcomes on one backend: create, change,
// keep, remove, a change's own error, KeepTTL on a missing record, and
// UpdateFrom deciding on a stale read without losing the newer value.
func testUpdate(t *testing.T, open func() store.Store) {
	s := open()
	ctx := context.Background()
	k := key("T1:U1", "counter", "c")
	incr := func(cur []byte) ([]byte, error) {
		n := 0
		if cur != nil {
			var err error
			if n, err = strconv.Atoi(string(cur)); err != nil {
				return nil, err
			}
		}
		return []byte(strconv.Itoa(n + 1)), nil
	}

	if _, err := store.Update(ctx, s, k, store.KeepTTL, incr); err == nil {
		t.Fatal("Update created a record with KeepTTL, want an error")
	}
	wantNotFound(t, s, k)
	got, err := store.Update(ctx, s, k, time.Hour, incr)
	if err != nil || string(got) != "1" {
		t.Fatalf("Update of a missing record = %q, %v, want 1", got, err)
	}
	got, err = store.Update(ctx, s, k, store.KeepTTL, incr)
	if err != nil || string(got) != "2" {
		t.Fatalf("second Update = %q, %v, want 2", got, err)
	}
	it, err := s.Get(ctx, k)
	if err != nil || !aboutAnHour(it.ExpiresAt) {
		t.Fatalf("KeepTTL lost the expiry: %v, %v", it.ExpiresAt, err)
	}

	// UpdateFrom with a value that is no longer there decides again on
	// what is: nothing is lost.
	got, err = store.UpdateFrom(ctx, s, k, []byte("1"), store.KeepTTL, incr)
	if err != nil || string(got) != "3" {
		t.Fatalf("UpdateFrom on a stale read = %q, %v, want 3", got, err)
	}

	got, err = store.Update(ctx, s, k, store.KeepTTL, func([]byte) ([]byte, error) { return nil, store.Keep })
	if err != nil || string(got) != "3" {
		t.Fatalf("Keep = %q, %v, want the current value 3", got, err)
	}
	boom := errors.New("boom")
	if _, err := store.Update(ctx, s, k, store.KeepTTL, func([]byte) ([]byte, error) { return nil, boom }); !errors.Is(err, boom) {
		t.Fatalf("a change's error came back as %v", err)
	}
	if _, err := store.Update(ctx, s, k, store.KeepTTL, func([]byte) ([]byte, error) { return nil, nil }); err == nil {
		t.Fatal("a change that returned no value and no sentinel was accepted")
	}
	wantValue(t, s, k, "3")
	got, err = store.Update(ctx, s, k, store.KeepTTL, func([]byte) ([]byte, error) { return nil, store.Remove })
	if err != nil || got != nil {
		t.Fatalf("Remove = %q, %v", got, err)
	}
	wantNotFound(t, s, k)
	if _, err := store.Update(ctx, s, k, 0, func([]byte) ([]byte, error) { return nil, store.Remove }); err != nil {
		t.Fatalf("Remove of a missing record: %v", err)
	}
}

// testUpdateRace has many writers increment one counter at once: every
// increment must land, none twice.
func testUpdateRace(t *testing.T, open func() store.Store) {
	s := open()
	ctx := context.Background()
	k := key("T1:U1", "counter", "race")
	const writers = 24
	var calls atomic.Int64
	wins := race(t, writers, func(int) error {
		_, err := store.Update(ctx, s, k, time.Hour, func(cur []byte) ([]byte, error) {
			calls.Add(1)
			n := 0
			if cur != nil {
				n, _ = strconv.Atoi(string(cur))
			}
			return []byte(strconv.Itoa(n + 1)), nil
		})
		return err
	})
	if wins != writers {
		t.Fatalf("%d of %d updates succeeded", wins, writers)
	}
	wantValue(t, s, k, strconv.Itoa(writers))
	t.Logf("%d writers, %d decisions", writers, calls.Load())
}
