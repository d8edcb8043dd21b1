package llm_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/agent/githubagent"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/planner"
	"github.com/agenthub/agenthub/internal/planner/llm"
	"github.com/agenthub/agenthub/internal/planner/llm/llmtest"
	"github.com/agenthub/agenthub/internal/sim"
	"github.com/agenthub/agenthub/internal/simenv"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

// newMemorylessStack is newStack with the LLM planner's Options.Store
// left nil ("nil: no memory", a documented set-up); the same holds once a
// conversation's memory (MemoryTTL) is gone while its request waits.
func newMemorylessStack(t *testing.T, answers ...llmtest.Answer) *stack {
	t.Helper()
	s := &stack{m: llmtest.New(t, answers...)}
	st := memstore.New(memstore.Options{})
	p, err := llm.New(llm.Options{APIKey: "sk-test-key", BaseURL: s.m.URL(), Model: "scripted", Registry: registry(t),
		Fallback: planner.NewRules(), Backoff: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	s.env, err = simenv.Start(t.Context(), simenv.Options{Store: st, Planner: p})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.env.Close() })
	access, refresh, err := s.env.World.IssueTokens(sim.ServiceGitHub, alice.String(), []string{githubagent.Scope})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.env.Vault.Connect(t.Context(), alice.String(), sim.ServiceGitHub, []string{githubagent.Scope},
		&oauth2.Token{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	return s
}

// TestReportAfterAPrivateReadIsPrivateWithoutMemory: the model reads a
// private repository (on alice's standing grant), then proposes a public
// read and a comment whose body quotes what it read. Once the read is
// approved and has run, the report is written from the outcomes, which
// include the waiting comment's approval text with the private title.
// The planner keeps no memory here (no store, or the memory expired while
// the request waited): the request itself keeps its plan's privacy, so
// the report is for the person alone.
func TestReportAfterAPrivateReadIsPrivateWithoutMemory(t *testing.T) {
	readPayments := llmtest.Answer{Calls: []llmtest.Call{llmtest.ToolCall(list, `{"repo":"acme/payments"}`)}}
	s := newMemorylessStack(t,
		readPayments,                          // thread 1: proposed, approved for good
		llmtest.Answer{Words: "There is #7."}, // its report
		readPayments,                          // thread 2: runs on the grant (private)
		llmtest.Answer{Calls: []llmtest.Call{
			llmtest.ToolCall(list, `{"repo":"acme/website"}`),
			llmtest.ToolCall("github__comment", `{"repo":"acme/website","number":12,"body":"Blocked by payments: SECRET-TITLE"}`),
		}},
		llmtest.Answer{Words: "The website has open PRs; your comment 'Blocked by payments: SECRET-TITLE' waits for you."},
	)
	a := s.handleIn(t, "C1:1.1", "anything open in payments?")
	if _, err := s.env.Broker.Decide(context.Background(), broker.Decision{RequestID: a[0].RequestID, Actor: alice, Choice: broker.ChoiceStanding}); err != nil {
		t.Fatal(err)
	}
	b := s.handleIn(t, "C1:2.2", "check payments, then tell the website folks")
	if len(b) < 1 || b[0].Kind != broker.KindApproval || b[0].Action != "github.list_pull_requests" {
		t.Fatalf("outputs = %+v, want the tainted website read proposed", b)
	}
	outs, err := s.env.Broker.Decide(context.Background(), broker.Decision{RequestID: b[0].RequestID, Actor: alice, Choice: broker.ChoiceOnce})
	if err != nil {
		t.Fatal(err)
	}
	last := outs[len(outs)-1]
	if last.Kind != broker.KindMessage || !strings.Contains(last.Text, "SECRET-TITLE") {
		t.Fatalf("outputs = %+v, want the model's report last", outs)
	}
	bodies := s.m.Bodies()
	if !strings.Contains(string(bodies[len(bodies)-1]), "SECRET-TITLE") {
		t.Errorf("the report request did not carry the waiting comment's arguments")
	}
	if !last.Private {
		t.Errorf("the report drawn from a private read (quoted in the comment it proposed) is public: %+v", last)
	}
}
