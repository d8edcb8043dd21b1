package llm

import (
	"context"
	"log/slog"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/clocktest"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

// A turn planned while the person asked to forget is not kept after the
// forgetting: they were told everything was forgotten.
func TestForgetWinsOverATurnInFlight(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
	l := &LLM{opts: Options{Store: memstore.New(memstore.Options{Now: clock.Now}), Now: clock.Now, Logger: slog.New(slog.DiscardHandler)}}
	ctx := context.Background()
	began := clock.Now()
	clock.Advance(time.Second)
	if _, err := l.Forget(ctx, "T1:U1"); err != nil {
		t.Fatal(err)
	}
	clock.Advance(time.Second)
	l.remember(ctx, "T1:U1", "C1:1.1", exchange("show me PR 7", "PR 7 is about pricing"), nil, true, false, began)
	if m := l.recall(ctx, "T1:U1", "C1:1.1"); len(m.Turns) != 0 {
		t.Fatalf("a turn begun before the forgetting was kept: %d turns", len(m.Turns))
	}
	l.remember(ctx, "T1:U1", "C1:1.1", exchange("and now?", "nothing new"), nil, false, false, clock.Now())
	if m := l.recall(ctx, "T1:U1", "C1:1.1"); len(m.Turns) != 2 {
		t.Fatalf("a turn begun after the forgetting: %d turns kept, want 2", len(m.Turns))
	}
}

func exchange(said, answer string) []turn {
	return []turn{{Role: "user", Content: said}, {Role: "assistant", Content: answer}}
}
