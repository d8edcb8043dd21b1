package llm

import (
	"context"
	"errors"
	"strconv"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	openai "github.com/sashabaranov/go-openai"

	"github.com/agenthub/agenthub/internal/store"
)

// DefaultCallsPerMinute is how many model calls one person's requests may
// make in a minute before the rules planner answers for them.
const DefaultCallsPerMinute = 30

// errRateLimited: the person's model calls this minute are used up.
var errRateLimited = errors.New("llm: the person's model calls this minute are used up")

// rateKind counts a person's model calls per minute (scope the principal,
// ID the minute), in the store, so that every replica counts together.
const rateKind = "llm-rate"

// allow counts one model call of principal and reports whether it is
// within the limit. Without a store nothing is counted; a store that does
// not answer lets the call through (the limit protects the bill, not a
// boundary of trust).
func (l *LLM) allow(ctx context.Context, principal string) bool {
	if l.opts.Store == nil || principal == "" {
		return true
	}
	minute := l.opts.Now().UTC().Truncate(time.Minute).Unix()
	key := store.Key{Scope: principal, Kind: rateKind, ID: strconv.FormatInt(minute, 10)}
	limited := false
	_, err := store.Update(ctx, l.opts.Store, key, 2*time.Minute, func(cur []byte) ([]byte, error) {
		n := 0
		if cur != nil {
			n, _ = strconv.Atoi(string(cur))
		}
		if limited = n >= l.opts.CallsPerMinute; limited {
			return nil, store.Keep
		}
		return []byte(strconv.Itoa(n + 1)), nil
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
