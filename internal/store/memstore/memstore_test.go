package memstore_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/memstore"
	"github.com/agenthub/agenthub/internal/store/storetest"
)

// Each subtest gets a new memory; every handle the suite opens on it is a
// new handle from Reopen, so "data survives close and reopen" is checked
// for real: the closed handle is dead, the memory is not.
func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) func() store.Store {
		s := memstore.New(memstore.Options{})
		return func() store.Store { return s.Reopen() }
	})
}

// clock is a settable time source for Options.Now.
type clock struct{ t atomic.Pointer[time.Time] }

func newClock() *clock {
	c := &clock{}
	c.set(time.Date(2025, 6, 1, 9, 0, 0, 0, time.UTC))
	return c
}

func (c *clock) now() time.Time          { return *c.t.Load() }
func (c *clock) set(t time.Time)         { c.t.Store(&t) }
func (c *clock) advance(d time.Duration) { c.set(c.now().Add(d)) }

func key(id string) store.Key { return store.Key{Scope: "T1:U1", Kind: "request", ID: id} }

func mustPut(t testing.TB, s store.Store, k store.Key, v string, ttl time.Duration) {
	t.Helper()
	if err := s.Put(context.Background(), k, []byte(v), ttl); err != nil {
		t.Fatalf("Put(%v): %v", k, err)
	}
}

func TestCloseClosesOnlyTheHandle(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(memstore.Options{})
	mustPut(t, s, key("r1"), "kept", 0)
	h := s.Reopen()
	if err := h.Close(); err != nil {
		t.Fatalf("Close: %v", err)
	}
	if err := h.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, err := h.Get(ctx, key("r1")); err == nil || errors.Is(err, store.ErrNotFound) {
		t.Errorf("Get on a closed handle: error = %v, want a closed-handle error", err)
	}
	if err := h.Put(ctx, key("r2"), []byte("x"), 0); err == nil {
		t.Error("Put on a closed handle succeeded")
	}
	if err := h.Ping(ctx); err == nil {
		t.Error("Ping on a closed handle succeeded")
	}
	for name, other := range map[string]*memstore.Store{"the first handle": s, "a handle reopened from the closed one": h.Reopen()} {
		it, err := other.Get(ctx, key("r1"))
		if err != nil || string(it.Value) != "kept" {
			t.Errorf("Get through %s = %q, %v; want %q", name, it.Value, err, "kept")
		}
		if _, err := other.Get(ctx, key("r2")); !errors.Is(err, store.ErrNotFound) {
			t.Errorf("Get through %s of the record the closed handle was refused: error = %v, want ErrNotFound", name, err)
		}
	}
}

func TestExpiryFollowsTheClock(t *testing.T) {
	ctx := context.Background()
	c := newClock()
	s := memstore.New(memstore.Options{Now: c.now})
	mustPut(t, s, key("r1"), "v", time.Minute)
	it, err := s.Get(ctx, key("r1"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := it.ExpiresAt, c.now().Add(time.Minute); !got.Equal(want) {
		t.Errorf("ExpiresAt = %v, want %v", got, want)
	}
	c.advance(time.Minute - time.Nanosecond)
	if _, err := s.Get(ctx, key("r1")); err != nil {
		t.Fatalf("Get just before expiry: %v", err)
	}
	c.advance(time.Nanosecond)
	if _, err := s.Get(ctx, key("r1")); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("Get at expiry: error = %v, want ErrNotFound", err)
	}
	if err := s.Create(ctx, key("r1"), []byte("again"), 0); err != nil {
		t.Fatalf("Create after expiry: %v", err)
	}
}

// An expired record that nobody reads again is removed by a later write once
// the sweep interval (a minute) has passed; Dump shows what is still held.
func TestSweepRemovesUnreadExpiredRecords(t *testing.T) {
	c := newClock()
	s := memstore.New(memstore.Options{Now: c.now})
	mustPut(t, s, key("short"), "SHORT-LIVED", time.Second)
	mustPut(t, s, key("long"), "LONG-LIVED", 0)
	c.advance(2 * time.Second)
	if !bytes.Contains(s.Dump(), []byte("SHORT-LIVED")) {
		t.Fatal("Dump lacks an expired record not yet removed: the check below would pass vacuously")
	}
	c.advance(time.Minute)
	mustPut(t, s, key("other"), "x", 0)
	dump := s.Dump()
	if bytes.Contains(dump, []byte("SHORT-LIVED")) {
		t.Error("an expired record is still held after a write past the sweep interval")
	}
	if !bytes.Contains(dump, []byte("LONG-LIVED")) {
		t.Error("the sweep removed a record without expiry")
	}
}

func TestRejectsBadArguments(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(memstore.Options{})
	mustPut(t, s, key("r1"), "v", 0)
	tests := []struct {
		name string
		op   func() error
	}{
		{"Put with KeepTTL", func() error { return s.Put(ctx, key("r2"), []byte("v"), store.KeepTTL) }},
		{"Put with a negative ttl", func() error { return s.Put(ctx, key("r2"), []byte("v"), -time.Second) }},
		{"Create with a negative ttl", func() error { return s.Create(ctx, key("r2"), []byte("v"), -time.Second) }},
		{"CompareAndSwap with a negative ttl", func() error {
			return s.CompareAndSwap(ctx, key("r1"), []byte("v"), []byte("w"), -time.Second)
		}},
		{"Append to an unnamed log", func() error { return s.Append(ctx, "", 0, [][]byte{[]byte("e")}) }},
		{"Append to a log with a control character", func() error { return s.Append(ctx, "a\nb", 0, [][]byte{[]byte("e")}) }},
		{"Head of an unnamed log", func() error { _, err := s.Head(ctx, ""); return err }},
		{"List with an invalid kind", func() error { _, err := s.List(ctx, "T1:U1", "a:b"); return err }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			before := s.Dump()
			if err := tt.op(); err == nil {
				t.Fatal("succeeded, want an error")
			}
			if got := s.Dump(); !bytes.Equal(got, before) {
				t.Errorf("the refused call changed the store:\n got %q\nwant %q", got, before)
			}
		})
	}
}

func TestFailWrites(t *testing.T) {
	ctx := context.Background()
	errBoom := errors.New("disk on fire")
	s := memstore.New(memstore.Options{})
	mustPut(t, s, key("r1"), "v", 0)
	if err := s.Append(ctx, "audit", 0, [][]byte{[]byte("e1")}); err != nil {
		t.Fatal(err)
	}
	other := s.Reopen()
	s.FailWrites(errBoom)
	writes := []struct {
		name string
		op   func(st store.Store) error
	}{
		{"Put", func(st store.Store) error { return st.Put(ctx, key("r2"), []byte("v"), 0) }},
		{"Create", func(st store.Store) error { return st.Create(ctx, key("r2"), []byte("v"), 0) }},
		{"CompareAndSwap", func(st store.Store) error { return st.CompareAndSwap(ctx, key("r1"), []byte("v"), []byte("w"), 0) }},
		{"CompareAndDelete", func(st store.Store) error { return st.CompareAndDelete(ctx, key("r1"), []byte("v")) }},
		{"Delete", func(st store.Store) error { return st.Delete(ctx, key("r1")) }},
		{"Append", func(st store.Store) error { return st.Append(ctx, "audit", 1, [][]byte{[]byte("e2")}) }},
	}
	before := s.Dump()
	for _, tt := range writes {
		t.Run(tt.name, func(t *testing.T) {
			for name, st := range map[string]store.Store{"same handle": s, "other handle": other} {
				if err := tt.op(st); !errors.Is(err, errBoom) {
					t.Errorf("%s: error = %v, want one wrapping %v", name, err, errBoom)
				}
			}
			if got := s.Dump(); !bytes.Equal(got, before) {
				t.Errorf("a failed write changed the store:\n got %q\nwant %q", got, before)
			}
		})
	}
	if it, err := s.Get(ctx, key("r1")); err != nil || string(it.Value) != "v" {
		t.Errorf("Get while writes fail = %q, %v; want %q", it.Value, err, "v")
	}
	if head, err := s.Head(ctx, "audit"); err != nil || head.Seq != 1 {
		t.Errorf("Head while writes fail = %d, %v; want 1", head.Seq, err)
	}
	s.FailWrites(nil)
	if err := s.Put(ctx, key("r2"), []byte("v"), 0); err != nil {
		t.Errorf("Put after FailWrites(nil): %v", err)
	}
	if err := other.Append(ctx, "audit", 1, [][]byte{[]byte("e2")}); err != nil {
		t.Errorf("Append after FailWrites(nil): %v", err)
	}
}

func entries(t testing.TB, s store.Store, log string) string {
	t.Helper()
	es, err := s.Read(context.Background(), log, 1, 100)
	if err != nil {
		t.Fatalf("Read: %v", err)
	}
	var out []string
	for _, e := range es {
		out = append(out, fmt.Sprintf("%d=%s", e.Seq, e.Value))
	}
	return strings.Join(out, ",")
}

func TestEditLog(t *testing.T) {
	ctx := context.Background()
	tests := []struct {
		name     string
		edit     func([][]byte) [][]byte
		want     string
		wantHead uint64
	}{
		{"delete the first", func(l [][]byte) [][]byte { return l[1:] }, "1=e2,2=e3", 2},
		{"swap two", func(l [][]byte) [][]byte { l[0], l[1] = l[1], l[0]; return l }, "1=e2,2=e1,3=e3", 3},
		{"alter in place", func(l [][]byte) [][]byte { l[1][0] = 'X'; return l }, "1=e1,2=X2,3=e3", 3},
		{"insert", func(l [][]byte) [][]byte { return append(l[:1], append([][]byte{[]byte("forged")}, l[1:]...)...) }, "1=e1,2=forged,3=e2,4=e3", 4},
		{"empty it", func(l [][]byte) [][]byte { return nil }, "", 0},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := memstore.New(memstore.Options{})
			if err := s.Append(ctx, "audit", 0, [][]byte{[]byte("e1"), []byte("e2"), []byte("e3")}); err != nil {
				t.Fatal(err)
			}
			var kept [][]byte
			s.EditLog("audit", func(l [][]byte) [][]byte {
				kept = tt.edit(l)
				return kept
			})
			if got := entries(t, s, "audit"); got != tt.want {
				t.Errorf("entries after the edit = %s, want %s", got, tt.want)
			}
			// The store holds its own copy of what the edit returned.
			for _, v := range kept {
				v[0] = '!'
			}
			if got := entries(t, s, "audit"); got != tt.want {
				t.Errorf("entries after the caller changed its slices = %s, want %s", got, tt.want)
			}
			head, err := s.Head(ctx, "audit")
			if err != nil || head.Seq != tt.wantHead {
				t.Errorf("Head = %d, %v; want %d", head.Seq, err, tt.wantHead)
			}
			if err := s.Append(ctx, "audit", tt.wantHead, [][]byte{[]byte("next")}); err != nil {
				t.Errorf("Append after the new head: %v", err)
			}
		})
	}
}

func TestDump(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(memstore.Options{})
	mustPut(t, s, store.Key{Scope: "T1:U2", Kind: "grant", ID: "g1"}, "b", 0)
	mustPut(t, s, store.Key{Scope: "T1:U1", Kind: "grant", ID: "g2"}, "a2", time.Hour)
	mustPut(t, s, store.Key{Scope: "T1:U1", Kind: "grant", ID: "g1"}, "a1", 0)
	mustPut(t, s, store.Key{Kind: "dedupe", ID: "Ev1"}, "", 0)
	for _, log := range []string{"zz", "audit"} {
		if err := s.Append(ctx, log, 0, [][]byte{[]byte(log + "-1"), []byte(log + "-2")}); err != nil {
			t.Fatal(err)
		}
	}
	got := string(s.Dump())
	want := "/dedupe/Ev1=\n" +
		"T1:U1/grant/g1=a1\n" +
		"T1:U1/grant/g2=a2\n" +
		"T1:U2/grant/g1=b\n" +
		"audit#1=audit-1\n" +
		"audit#2=audit-2\n" +
		"zz#1=zz-1\n" +
		"zz#2=zz-2\n"
	if got != want {
		t.Errorf("Dump =\n%s\nwant\n%s", got, want)
	}
}

// The values handed in and out are copies: a caller that reuses its buffer
// cannot change what is stored.
func TestValuesAreCopied(t *testing.T) {
	ctx := context.Background()
	s := memstore.New(memstore.Options{})
	in := []byte("original")
	mustPut(t, s, key("r1"), string(in), 0)
	if err := s.Put(ctx, key("r2"), in, 0); err != nil {
		t.Fatal(err)
	}
	if err := s.Append(ctx, "audit", 0, [][]byte{in}); err != nil {
		t.Fatal(err)
	}
	copy(in, "XXXXXXXX")
	it, err := s.Get(ctx, key("r2"))
	if err != nil {
		t.Fatal(err)
	}
	copy(it.Value, "YYYYYYYY")
	head, err := s.Head(ctx, "audit")
	if err != nil {
		t.Fatal(err)
	}
	copy(head.Value, "ZZZZZZZZ")
	if got, want := entries(t, s, "audit"), "1=original"; got != want {
		t.Errorf("log = %s, want %s", got, want)
	}
	if it, _ := s.Get(ctx, key("r2")); string(it.Value) != "original" {
		t.Errorf("record = %q, want %q", it.Value, "original")
	}
}
