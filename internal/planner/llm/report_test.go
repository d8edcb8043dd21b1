package llm_test

import (
	"context"
	"net/http"
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/planner"
	"github.com/agenthub/agenthub/internal/planner/llm/llmtest"
)

// After the step it proposed runs (here once its owner approved it), the
// model writes the reply from the outcome: the result stands as the broker
// said it, the model's words follow it, it was sent the outcome as
// delimited data with no tool to call, and what it read there taints what
// the conversation proposes next.
func TestModelWritesTheReplyAfterTheStepRuns(t *testing.T) {
	comment := llmtest.ToolCall("github__comment", `{"repo":"acme/website","number":12,"body":"LGTM"}`)
	s := newStack(t,
		llmtest.Answer{Calls: []llmtest.Call{comment}},
		llmtest.Answer{Words: "Done: I commented LGTM on PR 12."},
		llmtest.Answer{Calls: []llmtest.Call{llmtest.ToolCall("github__comment", `{"repo":"acme/website","number":12,"body":"and again"}`)}},
	)
	a := s.handle(t, "say LGTM on the website's PR 12")
	if len(a) != 1 || a[0].Kind != broker.KindApproval {
		t.Fatalf("outputs = %+v, want the comment proposed", a)
	}
	outs, err := s.env.Broker.Decide(context.Background(), broker.Decision{RequestID: a[0].RequestID, Actor: alice, Choice: broker.ChoiceOnce})
	if err != nil {
		t.Fatal(err)
	}
	if len(outs) != 2 || outs[0].Kind != broker.KindResult || outs[1].Kind != broker.KindMessage || outs[1].Text != "Done: I commented LGTM on PR 12." {
		t.Fatalf("outputs = %+v, want the result, then the model's reply", outs)
	}
	sent := s.m.Requests()[1]
	if _, ok := sent["tools"]; ok {
		t.Errorf("the report's request offers tools")
	}
	msgs, _ := sent["messages"].([]any)
	last, _ := msgs[len(msgs)-1].(map[string]any)
	body, _ := last["content"].(string)
	if !strings.Contains(body, `<untrusted source="the outcomes of the proposed steps">`) || !strings.Contains(body, "github.comment on acme/website: ran.") {
		t.Errorf("the outcomes were sent as %q, want them delimited and named", body)
	}
	if len(msgs) < 4 || !strings.Contains(msgs[1].(map[string]any)["content"].(string), "say LGTM") {
		t.Errorf("the report was written without the conversation: %d messages", len(msgs))
	}
	next := s.handle(t, "do it once more")
	if len(next) != 1 || next[0].Kind != broker.KindApproval || !strings.Contains(next[0].Text, "Proposed after reading content from github.comment on acme/website") {
		t.Fatalf("outputs = %+v, want the next write proposed after the result it read", next)
	}
	s.noTokenSent(t)
}

// A report the model cannot write leaves the outcomes alone: nothing is
// lost and nothing fails. A report on results of a private repository is
// for the person alone (TestAnswerFromAPrivateReadIsPrivate).
func TestNoReportLeavesTheOutcomes(t *testing.T) {
	s := newStack(t,
		llmtest.Answer{Calls: []llmtest.Call{llmtest.ToolCall("github__comment", `{"repo":"acme/website","number":12,"body":"LGTM"}`)}},
		llmtest.Answer{Status: http.StatusBadRequest},
	)
	a := s.handle(t, "say LGTM on the website's PR 12")
	outs, err := s.env.Broker.Decide(context.Background(), broker.Decision{RequestID: a[0].RequestID, Actor: alice, Choice: broker.ChoiceOnce})
	if err != nil || len(outs) != 1 || outs[0].Kind != broker.KindResult {
		t.Fatalf("outputs = %+v, %v; want the result alone", outs, err)
	}
}

// Long outcomes reach the model cut, with a note saying so.
func TestLongOutcomesAreCutWithANote(t *testing.T) {
	m := llmtest.New(t, llmtest.Answer{Words: "Listed them."})
	long := strings.Repeat("x", 5000)
	var outcomes []planner.Outcome
	for range 4 {
		outcomes = append(outcomes, planner.Outcome{Action: "github.list_pull_requests", Resource: "acme/website", State: planner.StateRan, Text: "Listed.", Data: long})
	}
	rep, err := newPlanner(t, m).Report(context.Background(), req, outcomes)
	if err != nil || rep.Reply != "Listed them." {
		t.Fatalf("report = %+v, %v", rep, err)
	}
	body := string(m.Bodies()[0])
	if !strings.Contains(body, "were cut here") || len(body) > 16<<10 {
		t.Errorf("the outcomes sent were %d bytes, with the note %v; want them cut, and said so", len(body), strings.Contains(body, "were cut here"))
	}
}

// A plan whose read runs at once while its write waits gets the model's
// reply at once, from both outcomes.
func TestModelReportsWhatRanAndWhatWaits(t *testing.T) {
	s := newStack(t,
		llmtest.Answer{Calls: []llmtest.Call{
			llmtest.ToolCall(list, `{"repo":"acme/website"}`),
			llmtest.ToolCall("github__comment", `{"repo":"acme/website","number":12,"body":"LGTM"}`),
		}},
		llmtest.Answer{Words: "Two pull requests are open; your comment waits for your approval."},
	)
	outs := s.handle(t, "list the website's PRs and say LGTM on 12")
	if len(outs) != 3 || outs[0].Kind != broker.KindResult || outs[1].Kind != broker.KindApproval || !strings.HasPrefix(outs[2].Text, "Two pull requests") {
		t.Fatalf("outputs = %+v, want the list, the comment's approval, then the model's reply", outs)
	}
	body := string(s.m.Bodies()[1])
	if !strings.Contains(body, "github.comment on acme/website: waits for the person's approval") {
		t.Errorf("the report's outcomes did not say the comment waits: %s", body)
	}
}
