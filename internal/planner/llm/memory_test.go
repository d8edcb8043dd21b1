package llm_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/agenthub/agenthub/internal/clocktest"
	"github.com/agenthub/agenthub/internal/planner"
	"github.com/agenthub/agenthub/internal/planner/llm"
	"github.com/agenthub/agenthub/internal/planner/llm/llmtest"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

func memoryPlanner(t *testing.T, m *llmtest.Model, st *memstore.Store) *llm.LLM {
	t.Helper()
	p, err := llm.New(llm.Options{APIKey: "k", BaseURL: m.URL(), Model: "scripted", Registry: registry(t),
		Fallback: planner.NewRules(), Backoff: time.Millisecond, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// "Now merge it" follows "show me PR 12": the thread's earlier turns reach
// the model, and what they read taints what it proposes now.
func TestConversationMemory(t *testing.T) {
	m := llmtest.New(t,
		llmtest.Answer{Calls: []llmtest.Call{llmtest.ToolCall("github__get_pull_request", `{"repo":"acme/website","number":12}`)}},
		llmtest.Answer{Words: "PR 12 updates the landing page."},
		llmtest.Answer{Calls: []llmtest.Call{llmtest.ToolCall(merge, `{"repo":"acme/website","number":12}`)}},
	)
	p := memoryPlanner(t, m, memstore.New(memstore.Options{}))
	rf := &readFake{data: `{"title":"Landing page"}`, ran: true}
	r := req
	r.Conversation, r.Read = "C1:1700000000.000100", rf.read
	r.Text = "show me PR 12 in acme/website"
	if plan, err := p.Plan(context.Background(), r); err != nil || plan.Reply == "" {
		t.Fatalf("first turn: %+v, %v", plan, err)
	}
	r.Text = "now merge it"
	plan, err := p.Plan(context.Background(), r)
	if err != nil || len(plan.Steps) != 1 || plan.Steps[0].Tainted != "github.get_pull_request on acme/website" {
		t.Fatalf("second turn: %+v, %v; want the merge, tainted by the earlier read", plan, err)
	}
	sent := m.Requests()[2]["messages"].([]any)
	var said []string
	for _, msg := range sent {
		said = append(said, msg.(map[string]any)["content"].(string))
	}
	joined := strings.Join(said, "\n")
	if !strings.Contains(joined, "show me PR 12") || !strings.Contains(joined, "PR 12 updates the landing page.") {
		t.Errorf("the second turn's request lacks the first turn: %q", joined)
	}
	if strings.Contains(joined, "Landing page\"") {
		t.Error("the earlier read's raw result is kept in the conversation")
	}
	// Another thread knows nothing of it.
	m2 := llmtest.New(t, llmtest.Answer{Words: "Which pull request?"})
	p2 := memoryPlanner(t, m2, memstore.New(memstore.Options{}))
	r.Conversation = "C1:other"
	p2.Plan(context.Background(), r)
	if n := len(m2.Requests()[0]["messages"].([]any)); n != 2 {
		t.Errorf("a new thread sent %d messages, want the system prompt and the message", n)
	}
}

// A conversation keeps its last MemoryTurns turns within MemoryBytes, for
// MemoryTTL; Forget clears the person's conversations.
func TestMemoryBoundsAndExpiry(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 12, 2, 12, 0, 0, 0, time.UTC))
	st := memstore.New(memstore.Options{Now: clock.Now})
	var answers []llmtest.Answer
	for range 40 {
		answers = append(answers, llmtest.Answer{Words: strings.Repeat("x", 3000)})
	}
	m := llmtest.New(t, answers...)
	p := memoryPlanner(t, m, st)
	r := req
	r.Conversation = "C1:1.1"
	for i := range 30 {
		r.Text = "message " + strings.Repeat("y", i)
		if _, err := p.Plan(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	msgs := m.Requests()[29]["messages"].([]any)
	size := 0
	for _, msg := range msgs[1 : len(msgs)-1] {
		size += len(msg.(map[string]any)["content"].(string))
	}
	if turns := len(msgs) - 2; turns > llm.MemoryTurns || size > llm.MemoryBytes {
		t.Errorf("the conversation sent %d remembered turns, %d bytes; want at most %d and %d", turns, size, llm.MemoryTurns, llm.MemoryBytes)
	}
	if turns := len(msgs) - 2; turns == 0 {
		t.Error("nothing was remembered")
	}
	clock.Advance(llm.MemoryTTL + time.Minute)
	r.Text = "after a day"
	p.Plan(context.Background(), r)
	if n := len(m.Requests()[30]["messages"].([]any)); n != 2 {
		t.Errorf("after MemoryTTL the conversation sent %d messages, want 2", n)
	}
	n, err := p.Forget(context.Background(), r.Principal)
	if err != nil || n != 1 {
		t.Fatalf("Forget = %d, %v; want the one conversation", n, err)
	}
	r.Text = "and now?"
	p.Plan(context.Background(), r)
	if n := len(m.Requests()[31]["messages"].([]any)); n != 2 {
		t.Errorf("after Forget the conversation sent %d messages, want 2", n)
	}
}

// One person's model calls are bounded per sliding minute: past the bound
// the rules planner answers, with a note, until a minute after the calls
// that used it up; calls and tokens
// are counted for /metrics.
func TestCallsPerMinuteAndMetrics(t *testing.T) {
	clock := clocktest.New(time.Date(2026, 12, 2, 12, 0, 10, 0, time.UTC))
	ok := llmtest.Answer{Calls: []llmtest.Call{llmtest.ToolCall(merge, `{"repo":"acme/payments","number":7}`)}}
	m := llmtest.New(t, ok, ok, ok)
	reg := prometheus.NewRegistry()
	p, err := llm.New(llm.Options{APIKey: "k", BaseURL: m.URL(), Model: "scripted", Registry: registry(t), Fallback: planner.NewRules(),
		Backoff: time.Millisecond, Store: memstore.New(memstore.Options{Now: clock.Now}), CallsPerMinute: 2, Now: clock.Now, Registerer: reg})
	if err != nil {
		t.Fatal(err)
	}
	notes := []string{}
	for range 3 {
		plan, err := p.Plan(context.Background(), req)
		if err != nil || len(plan.Steps) != 1 {
			t.Fatalf("plan = %+v, %v", plan, err)
		}
		notes = append(notes, plan.Note)
	}
	if notes[0] != "" || notes[1] != "" || !strings.Contains(notes[2], "a lot in the last minute") {
		t.Errorf("notes = %q, want the third request answered by the rules, saying why", notes)
	}
	if n := len(m.Requests()); n != 2 {
		t.Errorf("the model was asked %d times, want 2", n)
	}
	// The minute slides: across a minute's boundary the calls of the
	// minute before still count.
	clock.Advance(50 * time.Second) // 12:01:00
	if plan, _ := p.Plan(context.Background(), req); !strings.Contains(plan.Note, "a lot in the last minute") || len(m.Requests()) != 2 {
		t.Errorf("at the next minute's start: note %q, model asked %d times; want the rules still", plan.Note, len(m.Requests()))
	}
	clock.Advance(10 * time.Second)
	if plan, _ := p.Plan(context.Background(), req); plan.Note != "" || len(m.Requests()) != 3 {
		t.Errorf("a minute later: note %q, model asked %d times; want the model again", plan.Note, len(m.Requests()))
	}
	got := map[string]float64{}
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, mf := range mfs {
		for _, mt := range mf.GetMetric() {
			got[mf.GetName()+"/"+mt.GetLabel()[0].GetValue()] = mt.GetCounter().GetValue()
		}
	}
	if got["agenthub_llm_calls_total/ok"] != 3 || got["agenthub_llm_calls_total/rate_limited"] != 2 ||
		got["agenthub_llm_tokens_total/prompt"] != 30 || got["agenthub_llm_tokens_total/completion"] != 15 {
		t.Errorf("metrics = %v", got)
	}
}
