package llm

import (
	"context"
	"encoding/json"
	"log/slog"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/clocktest"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

// The sliding minute holds: no burst across a minute's boundary passes
// the limit, the stored list never grows past the limit however often a
// person is refused, and one person's calls never count against another.
func TestSlidingLimitHolds(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 12, 2, 12, 0, 59, 0, time.UTC))
	st := memstore.New(memstore.Options{Now: clock.Now})
	l := &LLM{opts: Options{Store: st, Now: clock.Now, CallsPerMinute: 5, Logger: slog.New(slog.DiscardHandler)}}
	ctx := context.Background()
	allowed := 0
	for range 200 {
		if l.allow(ctx, "T1:U1") {
			allowed++
		}
		clock.Advance(100 * time.Millisecond) // 20 s in all, across 12:01:00
	}
	if allowed != 5 {
		t.Errorf("allowed %d calls within 20 s, want 5", allowed)
	}
	it, err := st.Get(ctx, store.Key{Scope: "T1:U1", Kind: rateKind, ID: "calls"})
	if err != nil {
		t.Fatal(err)
	}
	var calls []int64
	if err := json.Unmarshal(it.Value, &calls); err != nil || len(calls) > 5 {
		t.Errorf("stored calls = %d (%v), want at most the limit", len(calls), err)
	}
	if !l.allow(ctx, "T1:U2") {
		t.Errorf("another person was refused for the first one's calls")
	}
	clock.Advance(61 * time.Second)
	if !l.allow(ctx, "T1:U1") {
		t.Errorf("a minute later the person is still refused")
	}
}
