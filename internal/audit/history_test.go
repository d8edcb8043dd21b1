package audit

import (
	"context"
	"errors"
	"fmt"
	"testing"

	"github.com/agenthub/agenthub/internal/store/memstore"
	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

func TestTailOf(t *testing.T) {
	s := memstore.New(memstore.Options{})
	r := newRecorder(t, s, Options{})
	if got, err := r.TailOf(context.Background(), "T1:U1", 5, 100); err != nil || len(got) != 0 {
		t.Fatalf("TailOf on an empty log = %v, %v; want none", got, err)
	}

	// Seq 1..12: U1 at 1, 3, 5, 7, 9, 11; U2 at 2, 6, 10; nobody at 4, 8, 12.
	var all []Event
	for i := range 12 {
		e := sampleEvent(i)
		switch {
		case i%2 == 0:
			e.Actor = "T1:U1"
		case i%4 == 1:
			e.Actor = "T1:U2"
		default:
			e.Actor = ""
		}
		got := record(t, r, e)
		got.Args = nil
		all = append(all, got)
	}
	at := func(seqs ...uint64) []Event {
		var out []Event
		for _, q := range seqs {
			out = append(out, all[q-1])
		}
		return out
	}

	tests := []struct {
		name      string
		actor     string
		n, window int
		want      []Event
	}{
		{"all of a person's events", "T1:U1", 10, 12, at(1, 3, 5, 7, 9, 11)},
		{"the newest n", "T1:U1", 2, 12, at(9, 11)},
		{"only within the window", "T1:U1", 10, 4, at(9, 11)},
		{"window and n together", "T1:U2", 1, 100, at(10)},
		{"window larger than the log", "T1:U2", 10, 1000, at(2, 6, 10)},
		{"window holds none of theirs", "T1:U2", 10, 2, nil},
		{"a stranger", "T9:U9", 10, 12, nil},
		{"empty actor matches nothing", "", 10, 12, nil},
		{"n zero", "T1:U1", 0, 12, nil},
		{"n negative", "T1:U1", -1, 12, nil},
		{"window zero", "T1:U1", 10, 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := r.TailOf(context.Background(), tt.actor, tt.n, tt.window)
			if err != nil {
				t.Fatalf("TailOf(%q, %d, %d): %v", tt.actor, tt.n, tt.window, err)
			}
			if diff := cmp.Diff(tt.want, got, cmpopts.EquateEmpty()); diff != "" {
				t.Errorf("TailOf(%q, %d, %d) (-want +got):\n%s", tt.actor, tt.n, tt.window, diff)
			}
		})
	}
}

func TestTailOfReadError(t *testing.T) {
	s := memstore.New(memstore.Options{})
	r := newRecorder(t, s, Options{})
	record(t, r, sampleEvent(1))
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := r.TailOf(ctx, "T1:U1", 10, 10); !errors.Is(err, context.Canceled) {
		t.Errorf("TailOf with an ended context = %v, want an error wrapping %v", err, context.Canceled)
	}
}

func BenchmarkTailOf(b *testing.B) {
	s := memstore.New(memstore.Options{})
	r := newRecorder(b, s, Options{})
	for i := range 1000 {
		e := sampleEvent(i)
		e.Actor = fmt.Sprintf("T1:U%d", i%20)
		record(b, r, e)
	}
	for b.Loop() {
		if _, err := r.TailOf(context.Background(), "T1:U3", 10, 500); err != nil {
			b.Fatal(err)
		}
	}
}

// TestTailOfAcrossPages checks the paged walk back against the plain
// definition (the window's events, filtered) where pages and the window
// cut the log in every way; one actor's ID is a prefix of another's.
func TestTailOfAcrossPages(t *testing.T) {
	s := memstore.New(memstore.Options{})
	r := newRecorder(t, s, Options{})
	actors := []string{"T1:U1", "T1:U10", "T1:U2", "", "T1:U7"}
	for i := range 3*tailPage + 17 {
		e := sampleEvent(i)
		e.Actor = actors[(i*i+i/3)%len(actors)]
		record(t, r, e)
	}
	ctx := context.Background()
	for _, actor := range []string{"T1:U1", "T1:U10", "T1:U7", "T1:U9"} {
		for _, n := range []int{1, 10, 200, 1000} {
			for _, window := range []int{1, 50, tailPage, tailPage + 1, 2*tailPage + 5, 5000} {
				all, err := r.Tail(ctx, window)
				if err != nil {
					t.Fatal(err)
				}
				var want []Event
				for i := len(all) - 1; i >= 0 && len(want) < n; i-- {
					if all[i].Actor == actor {
						want = append([]Event{all[i]}, want...)
					}
				}
				got, err := r.TailOf(ctx, actor, n, window)
				if err != nil {
					t.Fatal(err)
				}
				if diff := cmp.Diff(want, got, cmpopts.EquateEmpty()); diff != "" {
					t.Errorf("TailOf(%q, %d, %d) (-want +got):\n%s", actor, n, window, diff)
				}
			}
		}
	}
}
