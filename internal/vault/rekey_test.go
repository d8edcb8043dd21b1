package vault

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"

	"github.com/agenthub/agenthub/internal/store/memstore"
)

// TestRekeyAllReportsProgressAndGoesOn: RekeyAll tells its caller how far
// it is after each principal, reseals everything it can open when one
// connection cannot be, names that one by principal and service (never by
// a value), and stops between principals when its context ends.
func TestRekeyAllReportsProgressAndGoesOn(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "CANARY-")
	st := memstore.New(memstore.Options{})
	a, b, c := testKey('a'), testKey('b'), testKey('c')
	vA := f.vault(t, st, &fakeRecorder{}, mustKeys(t, a))
	for _, p := range []string{alice, bob, "T1:U3"} {
		mustConnect(t, vA, p, "google", f.tokens.fresh())
	}
	mustConnect(t, vA, alice, "github", f.tokens.fresh())
	// Bob's github connection, listed before his google one, is sealed
	// under a key nobody lists any more.
	mustConnect(t, f.vault(t, st, &fakeRecorder{}, mustKeys(t, c)), bob, "github", f.tokens.fresh())

	vBA := f.vault(t, st, &fakeRecorder{}, mustKeys(t, b, a))
	type step struct{ Done, Total int }
	var steps []step
	n, err := vBA.RekeyAll(ctx, func(done, total int) { steps = append(steps, step{done, total}) })
	if n != 4 {
		t.Errorf("RekeyAll rewrote %d records, want 4 (all but bob's github)", n)
	}
	if !errors.Is(err, ErrUnknownKey) {
		t.Fatalf("RekeyAll error = %v, want ErrUnknownKey for bob's github connection", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "github connection of "+bob) {
		t.Errorf("RekeyAll error = %q, want it to name bob's github connection", msg)
	}
	if msg := err.Error(); strings.Contains(msg, "CANARY-") || strings.Contains(msg, b) || strings.Contains(msg, c) {
		t.Error("RekeyAll error holds a token or a key") // not shown
	}
	if diff := cmp.Diff([]step{{1, 3}, {2, 3}, {3, 3}}, steps); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	if got, want := storedRecord(t, st, bob, "google").KeyID, keyID(t, b); got != want {
		t.Errorf("bob's google record after RekeyAll names key %s, want the current one %s: the failure before it stopped it", got, want)
	}

	// A second run rewrites nothing that is done and fails the same way.
	n, err = vBA.RekeyAll(ctx, nil)
	if n != 0 || !errors.Is(err, ErrUnknownKey) {
		t.Errorf("second RekeyAll = %d, %v; want 0 and bob's github connection again", n, err)
	}

	t.Run("stops when the context ends", func(t *testing.T) {
		cctx, cancel := context.WithCancel(ctx)
		calls := 0
		_, err := f.vault(t, st, &fakeRecorder{}, mustKeys(t, c, a, b)).RekeyAll(cctx, func(done, total int) {
			calls++
			cancel()
		})
		if !errors.Is(err, context.Canceled) || calls != 1 {
			t.Errorf("RekeyAll with its context ended after the first principal: %d progress calls, error %v; want 1 and context.Canceled", calls, err)
		}
	})
}

func TestPrincipals(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	st := memstore.New(memstore.Options{})
	v := f.vault(t, st, &fakeRecorder{}, mustKeys(t, testKey('a')))
	if got, err := v.Principals(ctx); err != nil || len(got) != 0 {
		t.Fatalf("Principals of an empty store = %v, %v; want none", got, err)
	}
	mustConnect(t, v, bob, "github", f.tokens.fresh())
	mustConnect(t, v, alice, "github", f.tokens.fresh())
	mustConnect(t, v, alice, "google", f.tokens.fresh())
	if err := v.Revoke(ctx, bob, "github"); err != nil {
		t.Fatal(err)
	}
	got, err := v.Principals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{alice, bob}, got); diff != "" {
		t.Errorf("Principals (-want +got):\n%s", diff)
	}
}

func TestSealedByKey(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, "")
	st := memstore.New(memstore.Options{})
	a, b := testKey('a'), testKey('b')
	vA := f.vault(t, st, &fakeRecorder{}, mustKeys(t, a))
	mustConnect(t, vA, alice, "github", f.tokens.fresh())
	mustConnect(t, vA, bob, "github", f.tokens.fresh())
	vB := f.vault(t, st, &fakeRecorder{}, mustKeys(t, b))
	mustConnect(t, vB, alice, "google", f.tokens.fresh())
	mustConnect(t, vB, "T1:U3", "github", f.tokens.fresh())
	if err := vB.Revoke(ctx, "T1:U3", "github"); err != nil { // no token left: not counted
		t.Fatal(err)
	}
	got, err := vB.SealedByKey(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(map[string]int{keyID(t, a): 2, keyID(t, b): 1}, got); diff != "" {
		t.Errorf("SealedByKey (-want +got):\n%s", diff)
	}
}
