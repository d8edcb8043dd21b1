package stepup

import (
	"bytes"
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"

	"github.com/agenthub/agenthub/internal/store"
)

func TestOldKeysOpen(t *testing.T) {
	tests := []struct {
		name string
		key  []byte
		old  [][]byte
		want error
	}{
		{"the sealing key", testKey, nil, nil},
		{"a new key without the old one", newKey, nil, errCorrupt},
		{"a new key with the old one", newKey, [][]byte{testKey}, nil},
		{"a new key with the old one among others", newKey, [][]byte{strangerKey, testKey}, nil},
		{"a new key with another old one", newKey, [][]byte{strangerKey}, errCorrupt},
		{"a new key with itself as the old one", newKey, [][]byte{newKey}, errCorrupt},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t, nil, false)
			secret := f.enrol(t, alice) // sealed under testKey
			err := f.keyed(t, tt.key, tt.old...).Verify(context.Background(), alice, "req", codeAt(t, secret, f.clock.Now()))
			if !errors.Is(err, tt.want) || (tt.want == nil && err != nil) {
				t.Errorf("Verify = %v, want %v", err, tt.want)
			}
		})
	}

	t.Run("new enrolments seal under the new key", func(t *testing.T) {
		ctx := context.Background()
		f := newFixture(t, nil, false)
		enr, err := f.keyed(t, newKey, testKey).Enroll(ctx, alice, "")
		if err != nil {
			t.Fatal(err)
		}
		if err := f.keyed(t, newKey).Confirm(ctx, alice, codeAt(t, enr.Secret.Reveal(), f.clock.Now())); err != nil {
			t.Errorf("Confirm with only the new key = %v, want nil", err)
		}
	})
}

func TestReseal(t *testing.T) {
	forEachBackend(t, func(t *testing.T, f *fixture, _ func() *Service) {
		ctx := context.Background()
		secret := f.enrol(t, alice) // under testKey
		used := codeAt(t, secret, f.clock.Now())
		if err := f.svc.Verify(ctx, alice, "req", used); err != nil {
			t.Fatal(err)
		}
		key := store.Key{Scope: alice, Kind: recordKind, ID: recordID}
		before := get(t, f.store, key)

		// A service that holds neither key cannot reseal, and leaves the
		// record alone.
		if rewrote, err := f.keyed(t, newKey).Reseal(ctx, alice); !errors.Is(err, errCorrupt) || rewrote {
			t.Errorf("Reseal without the old key = %v, %v; want false, errCorrupt", rewrote, err)
		}
		if after := get(t, f.store, key); !bytes.Equal(after, before) {
			t.Error("a failed Reseal changed the record")
		}

		rotated := f.keyed(t, newKey, testKey)
		steps := []struct {
			name      string
			principal string
			want      bool
		}{
			{"sealed under an old key", alice, true},
			{"sealed under the current key", alice, false},
			{"not enrolled", "T1:UNOBODY", false},
		}
		for _, s := range steps {
			rewrote, err := rotated.Reseal(ctx, s.principal)
			if err != nil || rewrote != s.want {
				t.Fatalf("%s: Reseal = %v, %v; want %v, nil", s.name, rewrote, err, s.want)
			}
		}

		// Now the new key alone opens it, and the old key does not; the
		// replay state came along.
		fresh := f.keyed(t, newKey)
		if err := fresh.Verify(ctx, alice, "req", used); !errors.Is(err, ErrReplay) {
			t.Errorf("Verify with the code used before the reseal = %v, want ErrReplay", err)
		}
		if err := fresh.Verify(ctx, alice, "req", codeAt(t, secret, f.clock.Now().Add(Period))); err != nil {
			t.Errorf("Verify with only the new key after Reseal = %v, want nil", err)
		}
		if err := f.svc.Verify(ctx, alice, "req", codeAt(t, secret, f.clock.Now().Add(Period))); !errors.Is(err, errCorrupt) {
			t.Errorf("Verify with only the old key after Reseal = %v, want errCorrupt", err)
		}
	})
}

func TestResealIndexesUnindexed(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil, false)
	f.enrol(t, alice)
	// As enrolled before the index existed.
	if err := f.store.Delete(ctx, store.Key{Kind: indexKind, ID: alice}); err != nil {
		t.Fatal(err)
	}
	principals := func() []string {
		t.Helper()
		p, err := f.svc.Principals(ctx)
		if err != nil {
			t.Fatalf("Principals: %v", err)
		}
		return p
	}
	if got := principals(); len(got) != 0 {
		t.Fatalf("Principals = %q, want none", got)
	}
	if _, err := f.keyed(t, newKey, testKey).Reseal(ctx, alice); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff([]string{alice}, principals()); diff != "" {
		t.Errorf("Principals after Reseal (-want +got):\n%s", diff)
	}
}

func TestResealAll(t *testing.T) {
	ctx := context.Background()
	f := newFixture(t, nil, false)
	const (
		gone   = "T1:UGONE"   // indexed, then Reset
		broken = "T1:UBROKEN" // indexed, with a record that does not open
	)
	enrolled := []string{"T1:UA", "T1:UB", "T1:UC"}
	secrets := map[string]string{}
	for _, p := range enrolled {
		secrets[p] = f.enrol(t, p)
	}
	f.enrol(t, gone)
	if err := f.svc.Reset(ctx, gone); err != nil {
		t.Fatal(err)
	}
	if _, err := f.svc.Enroll(ctx, broken, ""); err != nil {
		t.Fatal(err)
	}
	copied := get(t, f.store, store.Key{Scope: enrolled[0], Kind: recordKind, ID: recordID})
	if err := f.store.Put(ctx, store.Key{Scope: broken, Kind: recordKind, ID: recordID}, copied, 0); err != nil {
		t.Fatal(err)
	}

	rotated := f.keyed(t, newKey, testKey)
	got, err := rotated.Principals(ctx)
	if err != nil {
		t.Fatal(err)
	}
	want := append([]string{broken, gone}, enrolled...)
	if diff := cmp.Diff(want, got, cmpopts.SortSlices(func(a, b string) bool { return a < b })); diff != "" {
		t.Errorf("Principals (-want +got):\n%s", diff)
	}

	var progress [][2]int
	n, err := rotated.ResealAll(ctx, func(done, total int) { progress = append(progress, [2]int{done, total}) })
	if n != len(enrolled) {
		t.Errorf("ResealAll rewrote %d, want %d", n, len(enrolled))
	}
	if !errors.Is(err, errCorrupt) || !strings.Contains(err.Error(), broken) || strings.Contains(err.Error(), gone) {
		t.Errorf("ResealAll error = %v, want errCorrupt for %s only", err, broken)
	}
	if diff := cmp.Diff([][2]int{{1, 5}, {2, 5}, {3, 5}, {4, 5}, {5, 5}}, progress); diff != "" {
		t.Errorf("progress (-want +got):\n%s", diff)
	}
	fresh := f.keyed(t, newKey)
	for _, p := range enrolled {
		if err := fresh.Verify(ctx, p, "req", codeAt(t, secrets[p], f.clock.Now())); err != nil {
			t.Errorf("Verify of %s with only the new key after ResealAll = %v, want nil", p, err)
		}
	}

	// Again: nothing left to rewrite, and the broken record still reported.
	if n, err := rotated.ResealAll(ctx, nil); n != 0 || !errors.Is(err, errCorrupt) {
		t.Errorf("ResealAll again = %d, %v; want 0, errCorrupt", n, err)
	}

	t.Run("canceled", func(t *testing.T) {
		ctx, cancel := context.WithCancel(ctx)
		cancel()
		if _, err := rotated.ResealAll(ctx, nil); !errors.Is(err, context.Canceled) {
			t.Errorf("ResealAll with a canceled context = %v, want context.Canceled", err)
		}
	})
}

// get returns the value stored under k.
func get(tb testing.TB, st store.Store, k store.Key) []byte {
	tb.Helper()
	item, err := st.Get(context.Background(), k)
	if err != nil {
		tb.Fatalf("Get %s: %v", k, err)
	}
	return item.Value
}
