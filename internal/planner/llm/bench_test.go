package llm_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/planner"
	"github.com/agenthub/agenthub/internal/planner/llm"
)

// cannedModel answers every chat completion at once, in process, with one
// valid merge call: what is measured is the planner's own work (the
// request it builds with every tool, decoding, validation), not a model's
// latency or a socket's.
type cannedModel struct{ answer string }

const cannedAnswer = `{"id":"c","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,"message":{"role":"assistant",` +
	`"content":"","tool_calls":[{"id":"call_0","type":"function","function":{"name":"github__merge_pull_request",` +
	`"arguments":"{\"repo\":\"acme/payments\",\"number\":7}"}}]},"finish_reason":"tool_calls"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`

// cannedWords is the answer of a model that writes a report.
const cannedWords = `{"id":"c","object":"chat.completion","created":0,"model":"m","choices":[{"index":0,"message":{"role":"assistant",` +
	`"content":"I merged PR 7 in acme/payments."},"finish_reason":"stop"}],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}`

func (m cannedModel) RoundTrip(r *http.Request) (*http.Response, error) {
	io.Copy(io.Discard, r.Body)
	r.Body.Close()
	return &http.Response{StatusCode: http.StatusOK, Header: http.Header{"Content-Type": {"application/json"}},
		Body: io.NopCloser(strings.NewReader(m.answer)), Request: r}, nil
}

// BenchmarkPlanOverhead is the planner's own overhead for one request that
// the model answers with one valid tool call.
func BenchmarkPlanOverhead(b *testing.B) {
	p, err := llm.New(llm.Options{APIKey: "k", BaseURL: "https://model.invalid/v1", Model: "m", Registry: registry(b),
		Fallback: planner.NewRules(), HTTPClient: &http.Client{Transport: cannedModel{cannedAnswer}}})
	if err != nil {
		b.Fatal(err)
	}
	r := planner.Request{Principal: "T1:U1", Text: "merge PR 7 in acme/payments", Now: time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		plan, err := p.Plan(ctx, r)
		if err != nil || len(plan.Steps) != 1 {
			b.Fatalf("plan = %+v, %v", plan, err)
		}
	}
}

// BenchmarkReportOverhead is the planner's own overhead for the reply it
// writes after a step ran: one outcome with 2 KB of result data, which
// the model answers in words.
func BenchmarkReportOverhead(b *testing.B) {
	p, err := llm.New(llm.Options{APIKey: "k", BaseURL: "https://model.invalid/v1", Model: "m", Registry: registry(b),
		Fallback: planner.NewRules(), HTTPClient: &http.Client{Transport: cannedModel{cannedWords}}})
	if err != nil {
		b.Fatal(err)
	}
	r := planner.Request{Principal: "T1:U1", Now: time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC)}
	outcomes := []planner.Outcome{{Action: "github.merge_pull_request", Resource: "acme/payments#7", State: planner.StateRan,
		Text: "Merged acme/payments#7.", Data: `{"sha":"` + strings.Repeat("ab", 1000) + `"}`}}
	ctx := context.Background()
	b.ReportAllocs()
	for b.Loop() {
		rep, err := p.Report(ctx, r, outcomes)
		if err != nil || rep.Reply == "" {
			b.Fatalf("report = %+v, %v", rep, err)
		}
	}
}
