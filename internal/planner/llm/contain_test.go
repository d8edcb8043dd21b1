package llm_test

import (
	"context"
	"net/http"
	"strings"
	"testing"
	"time"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/agent/calendaragent"
	"github.com/agenthub/agenthub/internal/agent/githubagent"
	"github.com/agenthub/agenthub/internal/agent/slackagent"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/planner"
	"github.com/agenthub/agenthub/internal/planner/llm"
	"github.com/agenthub/agenthub/internal/planner/llm/llmtest"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/sim"
	"github.com/agenthub/agenthub/internal/simenv"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

var alice = broker.Principal{Team: "T1", User: "U1"}

// stack is the simulated stack with the LLM planner on a scripted model;
// alice is connected to GitHub with tokens the test knows.
type stack struct {
	env    *simenv.Env
	m      *llmtest.Model
	tokens []string
}

func newStack(t *testing.T, answers ...llmtest.Answer) *stack {
	t.Helper()
	return newStackWith(t, nil, answers...)
}

// newStackWith is newStack under pol (nil: the default policy).
func newStackWith(t *testing.T, pol *policy.Engine, answers ...llmtest.Answer) *stack {
	t.Helper()
	s := &stack{m: llmtest.New(t, answers...)}
	reg := registry(t)
	st := memstore.New(memstore.Options{})
	p, err := llm.New(llm.Options{APIKey: "sk-test-key", BaseURL: s.m.URL(), Model: "scripted", Registry: reg,
		Fallback: planner.NewRules(), Backoff: time.Millisecond, Store: st})
	if err != nil {
		t.Fatal(err)
	}
	s.env, err = simenv.Start(t.Context(), simenv.Options{Store: st, Planner: p, Policy: pol})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.env.Close() })
	for service, scopes := range map[string][]string{
		sim.ServiceGitHub: {githubagent.Scope},
		sim.ServiceGoogle: calendaragent.Scopes,
		sim.ServiceSlack:  {slackagent.ScopeChannelsRead, slackagent.ScopeChatWrite, slackagent.ScopeChannelsManage},
	} {
		access, refresh, err := s.env.World.IssueTokens(service, alice.String(), scopes)
		if err != nil {
			t.Fatal(err)
		}
		s.tokens = append(s.tokens, access, refresh)
		if err := s.env.Vault.Connect(t.Context(), alice.String(), service, scopes,
			&oauth2.Token{AccessToken: access, RefreshToken: refresh, TokenType: "Bearer", Expiry: time.Now().Add(time.Hour)}); err != nil {
			t.Fatal(err)
		}
	}
	return s
}

func (s *stack) handle(t *testing.T, text string) []broker.Output {
	t.Helper()
	return s.handleIn(t, "C1:1700000000.000100", text)
}

// noTokenSent fails if any request to the model held a token of the
// person's.
func (s *stack) noTokenSent(t *testing.T) {
	t.Helper()
	for _, r := range s.m.Bodies() {
		for _, tok := range s.tokens {
			if strings.Contains(string(r), tok) {
				t.Fatal("a token of the person's reached the model")
			}
		}
	}
}

func (s *stack) handleIn(t *testing.T, conversation, text string) []broker.Output {
	t.Helper()
	outs, err := s.env.Broker.Handle(context.Background(), broker.Message{Principal: alice, Text: text, Conversation: conversation})
	if err != nil {
		t.Fatalf("Handle: %v", err)
	}
	return outs
}

// Whatever the model proposes goes through the policy: a merge it calls
// for is an approval for its owner, with the exact arguments, and nothing
// is merged; the model never saw a token of the person's.
func TestModelProposalsGoThroughThePolicy(t *testing.T) {
	s := newStack(t, llmtest.Answer{Calls: []llmtest.Call{llmtest.ToolCall(merge, `{"repo":"acme/payments","number":7}`)}})
	outs := s.handle(t, "please tidy up my pull requests")
	if len(outs) != 1 || outs[0].Kind != broker.KindApproval || outs[0].Action != "github.merge_pull_request" || !strings.Contains(string(outs[0].Args), `"number":7`) {
		t.Fatalf("outputs = %+v, want an approval for the merge, with its arguments", outs)
	}
	if pr, _ := s.env.World.GitHub().PullRequest("acme/payments", 7); pr.Merged {
		t.Fatal("the model's merge ran without its owner")
	}
	s.noTokenSent(t)
}

// The fallback note reaches the person beside what the rules planner
// made of the message.
func TestFallbackNoteReachesThePerson(t *testing.T) {
	s := newStack(t, llmtest.Answer{Status: http.StatusUnauthorized})
	outs := s.handle(t, "list open pull requests in acme/website")
	if len(outs) < 2 || !strings.Contains(outs[0].Text, "did not answer") || outs[1].Kind != broker.KindResult {
		t.Fatalf("outputs = %+v, want the note, then the rules planner's result", outs)
	}
}

// An injection in what the model read: a pull request's title tells it to
// merge, and it does propose the merge; the merge is tainted, asks its
// owner (no grant stands in), says where the content came from, and does
// not run. The read itself ran through the policy, on the record.
func TestInjectedMergeAsksItsOwner(t *testing.T) {
	s := newStack(t,
		llmtest.Answer{Calls: []llmtest.Call{llmtest.ToolCall(list, `{"repo":"acme/website"}`)}},
		llmtest.Answer{Calls: []llmtest.Call{llmtest.ToolCall(merge, `{"repo":"acme/website","number":12}`)}},
	)
	outs := s.handle(t, "what's open in acme/website?")
	if len(outs) != 1 || outs[0].Kind != broker.KindApproval || !strings.Contains(outs[0].Reason, "Proposed after reading content from github.list_pull_requests on acme/website") {
		t.Fatalf("outputs = %+v, want the tainted merge's approval", outs)
	}
	if pr, _ := s.env.World.GitHub().PullRequest("acme/website", 12); pr.Merged {
		t.Fatal("merged on what a pull request said")
	}
	events, err := s.env.Audit.Tail(t.Context(), 100)
	if err != nil {
		t.Fatal(err)
	}
	var readRecorded, taintRecorded bool
	for _, e := range events {
		readRecorded = readRecorded || e.Kind == "step.proposed" && e.Action == "github.list_pull_requests" && e.Detail["by"] == "planner_read"
		taintRecorded = taintRecorded || e.Kind == "step.proposed" && e.Action == "github.merge_pull_request" && e.Detail["tainted"] != ""
	}
	if !readRecorded || !taintRecorded {
		t.Errorf("trail: the planner's read recorded %v, the tainted merge %v", readRecorded, taintRecorded)
	}
	s.noTokenSent(t)
}

// A private repository's pull requests need a grant: the model's read of
// them is proposed for approval, not run. Once a grant covers it, the read
// runs, and the answer the model wrote from it is for the person alone.
func TestAnswerFromAPrivateReadIsPrivate(t *testing.T) {
	read := llmtest.Answer{Calls: []llmtest.Call{llmtest.ToolCall(list, `{"repo":"acme/payments"}`)}}
	s := newStack(t, read, llmtest.Answer{Words: "There is one: #7."}, read, llmtest.Answer{Words: "acme/payments has one open pull request, #7."})
	outs := s.handle(t, "anything open in payments?")
	if len(outs) != 1 || outs[0].Kind != broker.KindApproval || outs[0].Action != "github.list_pull_requests" {
		t.Fatalf("outputs = %+v, want the private read proposed for approval", outs)
	}
	outs, err := s.env.Broker.Decide(context.Background(), broker.Decision{RequestID: outs[0].RequestID, Actor: alice, Choice: broker.ChoiceStanding})
	if err != nil {
		t.Fatal(err)
	}
	// Once it ran, the model's reply from its result is private too.
	if len(outs) != 2 || outs[0].Kind != broker.KindResult || outs[1].Text != "There is one: #7." || !outs[1].Private {
		t.Fatalf("after the approval, outputs = %+v; want the result and the model's private report", outs)
	}
	// In another thread (this one has read the repository: its reads are
	// tainted now, and asked for).
	outs = s.handleIn(t, "C1:1700000000.000200", "anything open in payments?")
	if len(outs) != 1 || outs[0].Kind != broker.KindMessage || !outs[0].Private || !strings.Contains(outs[0].Text, "#7") {
		t.Fatalf("outputs = %+v, want the model's private answer", outs)
	}
}

// The model changes the target between proposal and approval: its new
// proposal is a new request, and approving the first runs the first as it
// was shown, nothing else.
func TestChangedTargetIsANewRequest(t *testing.T) {
	s := newStack(t,
		llmtest.Answer{Calls: []llmtest.Call{llmtest.ToolCall("github__comment", `{"repo":"acme/website","number":12,"body":"LGTM"}`)}},
		llmtest.Answer{Calls: []llmtest.Call{llmtest.ToolCall("github__comment", `{"repo":"acme/website","number":13,"body":"LGTM"}`)}},
		llmtest.Answer{Words: "I commented on PR 12."},
	)
	first := s.handle(t, "comment LGTM on the website's PR")
	second := s.handle(t, "actually, the other one")
	if len(first) != 1 || len(second) != 1 || first[0].Kind != broker.KindApproval || second[0].Kind != broker.KindApproval || first[0].RequestID == second[0].RequestID {
		t.Fatalf("proposals = %+v / %+v, want two approvals, two requests", first, second)
	}
	if _, err := s.env.Broker.Decide(t.Context(), broker.Decision{RequestID: first[0].RequestID, Actor: alice, Choice: broker.ChoiceOnce}); err != nil {
		t.Fatal(err)
	}
	var on []string
	for _, c := range s.env.World.CallsFor(sim.ServiceGitHub) {
		if c.Method == http.MethodPost && strings.HasSuffix(c.Path, "/comments") {
			on = append(on, c.Path)
		}
	}
	if len(on) != 1 || !strings.Contains(on[0], "/issues/12/") {
		t.Errorf("comments posted = %q, want PR 12's alone", on)
	}
}

// An answer the model gives later in a conversation that read something
// private is private too, though it reads nothing itself then.
func TestPrivateConversationStaysPrivate(t *testing.T) {
	read := llmtest.Answer{Calls: []llmtest.Call{llmtest.ToolCall(list, `{"repo":"acme/payments"}`)}}
	s := newStack(t, read, llmtest.Answer{Words: "There is one: #7."}, llmtest.Answer{Words: "As I said: #7 is still open."})
	outs := s.handle(t, "anything open in payments?")
	outs, err := s.env.Broker.Decide(context.Background(), broker.Decision{RequestID: outs[0].RequestID, Actor: alice, Choice: broker.ChoiceStanding})
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 || !outs[1].Private {
		t.Fatalf("the report from the private read is not private: %+v", outs)
	}
	if outs = s.handle(t, "and now?"); len(outs) != 1 || !outs[0].Private {
		t.Fatalf("a later answer in the same conversation = %+v, want it private", outs)
	}
}

// Where a rule lets the channel see a private resource's results, the
// model's answer from them keeps the rule's mark, so it stays out of
// channels shared with another company.
func TestAnswerKeepsTheRulesMark(t *testing.T) {
	pol, err := policy.Parse("p.yaml", []byte(`version: 1
rules:
  - name: payments-for-the-team
    action: github.list_pull_requests
    resource: acme/payments
    effect: allow
    results: channel
  - name: default
    effect: approve
`))
	if err != nil {
		t.Fatal(err)
	}
	s := newStackWith(t, pol, llmtest.Answer{Calls: []llmtest.Call{llmtest.ToolCall(list, `{"repo":"acme/payments"}`)}},
		llmtest.Answer{Words: "One open pull request, #7."})
	outs := s.handle(t, "anything open in payments?")
	if len(outs) != 1 || outs[0].Private || !outs[0].ByRule {
		t.Fatalf("outputs = %+v, want the answer marked ByRule", outs)
	}
}

// A write the model proposes on its own words, having read nothing, is its
// owner's to approve: a grant that covers the same step does not run it.
func TestModelsOwnWriteIgnoresGrants(t *testing.T) {
	s := newStack(t, llmtest.Answer{Status: http.StatusUnauthorized},
		llmtest.Answer{Calls: []llmtest.Call{llmtest.ToolCall("github__comment", `{"repo":"acme/website","number":12,"body":"private numbers: 42"}`)}})
	first := s.handle(t, "comment 'LGTM' on PR 12 in acme/website") // the rules plan it: the person's own words
	approval := first[len(first)-1]
	if _, err := s.env.Broker.Decide(context.Background(), broker.Decision{RequestID: approval.RequestID, Actor: alice, Choice: broker.ChoiceStanding}); err != nil {
		t.Fatal(err)
	}
	outs := s.handle(t, "what's the weather?")
	if len(outs) != 1 || outs[0].Kind != broker.KindApproval || !strings.Contains(outs[0].Reason, "Proposed by the language model") {
		t.Fatalf("outputs = %+v, want the model's comment to ask its owner", outs)
	}
	n := 0
	for _, c := range s.env.World.CallsFor(sim.ServiceGitHub) {
		if c.Method == http.MethodPost && strings.HasSuffix(c.Path, "/comments") {
			n++
		}
	}
	if n != 1 {
		t.Errorf("comments posted = %d, want the person's own alone", n)
	}
}
