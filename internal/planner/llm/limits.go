package llm

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	openai "github.com/sashabaranov/go-openai"

	"github.com/agenthub/agenthub/internal/store"
)

// DefaultCallsPerMinute is how many model calls one person's requests may
// make in a minute before the rules planner answers for them.
const DefaultCallsPerMinute = 30

// errRateLimited: the person's model calls of the last minute are used up.
var errRateLimited = errors.New("llm: the person's model calls of the last minute are used up")

// rateKind holds, per person (the scope), when their model calls of the
// last minute were made, in the store, so that every replica counts
// together: a sliding minute, so that no burst across a minute's
// boundary makes twice the limit.
const rateKind = "llm-rate"

// allow counts one model call of principal and reports whether it is
// within the limit: fewer than CallsPerMinute calls in the minute before
// it. Without a store nothing is counted; a store that does not answer
// lets the call through (the limit protects the bill, not a boundary of
// trust).
func (l *LLM) allow(ctx context.Context, principal string) bool {
	if l.opts.Store == nil || principal == "" {
		return true
	}
	now := l.opts.Now()
	since := now.Add(-time.Minute).UnixMilli()
	key := store.Key{Scope: principal, Kind: rateKind, ID: "calls"}
	limited := false
	_, err := store.Update(ctx, l.opts.Store, key, 2*time.Minute, func(cur []byte) ([]byte, error) {
		var calls []int64
		if cur != nil && json.Unmarshal(cur, &calls) != nil {
			calls = nil // unreadable: counted afresh
		}
		calls = slices.DeleteFunc(calls, func(at int64) bool { return at <= since })
		if limited = len(calls) >= l.opts.CallsPerMinute; limited {
			return json.Marshal(calls)
		}
		return json.Marshal(append(calls, now.UnixMilli()))
	})
	if err != nil {
		l.opts.Logger.WarnContext(ctx, "model call not counted", "error", err)
		return true
	}
	return !limited
}

// metrics are the planner's counters.
type metrics struct {
	calls  *prometheus.CounterVec // by outcome: ok, retried, failed, rate_limited
	tokens *prometheus.CounterVec // by kind: prompt, completion
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agenthub_llm_calls_total",
			Help: "Chat-completion calls of the LLM planner, by outcome."}, []string{"outcome"}),
		tokens: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "agenthub_llm_tokens_total",
			Help: "Tokens the model reported using, by kind (prompt, completion)."}, []string{"kind"}),
	}
	if reg != nil {
		for _, c := range []prometheus.Collector{m.calls, m.tokens} {
			if err := reg.Register(c); err != nil {
				return nil, err
			}
		}
	}
	return m, nil
}

func (m *metrics) used(u openai.Usage) {
	m.tokens.WithLabelValues("prompt").Add(float64(u.PromptTokens))
	m.tokens.WithLabelValues("completion").Add(float64(u.CompletionTokens))
}
