package slackapp

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/planner"
)

// hangingReporter proposes a comment and, once it has run, writes its
// report as a model does that is slow, rate-limited upstream or hanging:
// it answers only when its context ends.
type hangingReporter struct{}

func (hangingReporter) Plan(context.Context, planner.Request) (planner.Plan, error) {
	return planner.Plan{Steps: []planner.Step{{Action: "github.comment",
		Args: map[string]any{"repo": "acme/website", "number": 12, "body": "ship it"}}}, Report: true}, nil
}

func (hangingReporter) Report(ctx context.Context, _ planner.Request, _ []planner.Outcome) (planner.Plan, error) {
	<-ctx.Done()
	return planner.Plan{}, ctx.Err()
}

// TestASlowReportLeavesTheResult: the model's report after an approved
// step has run is the least of what is owed. A model that hangs then
// costs at most a third of the work's time left, and the result, the
// card's update and the session's status are all delivered. Scaled down:
// a 2 s budget instead of the envelope's 2 min.
func TestASlowReportLeavesTheResult(t *testing.T) {
	f := newFlow(t, flowOptions{demo: true, planner: hangingReporter{}})
	ts := f.mention(alice, "C1", "say ship it on the website's PR 12")
	card := f.lastDM(alice)
	w := workOf(t, f.click(alice, card, ActionDecidePrefix+broker.ChoiceOnce))
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
	defer cancel()
	_ = f.app.handleWork(ctx, w)

	pr, _ := f.env.World.GitHub().PullRequest("acme/website", 12)
	if len(pr.Comments) != 1 {
		t.Fatalf("comments on PR 12 = %d, want the approved one", len(pr.Comments))
	}
	delivered := false
	for _, text := range append(f.replies("C1", ts), dmTexts(f, alice)...) {
		if strings.Contains(text, "Commented on acme/website#12") {
			delivered = true
		}
	}
	if !delivered {
		t.Errorf("the comment ran, but its result never reached the person: thread = %q, DMs = %q",
			f.replies("C1", ts), dmTexts(f, alice))
	}
	if got := flowButtons(f.message(card).Blocks); len(got) > 0 {
		t.Errorf("the approval card still offers %v after the request ran", keys(got))
	}
}

func dmTexts(f *flow, user string) []string {
	var out []string
	for _, m := range f.srv.Messages(f.srv.DMChannel(user)) {
		out = append(out, m.Text)
	}
	return out
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}
