package slackapp

import (
	"context"
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/planner"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
)

// readingPlanner reads before it answers, as the LLM planner does: each
// read runs through the broker's Request.Read, which reports progress.
type readingPlanner struct{ repos []string }

func (p readingPlanner) Plan(ctx context.Context, req planner.Request) (planner.Plan, error) {
	reads := 0
	for _, repo := range p.repos {
		res, err := req.Read(ctx, planner.Step{Action: "github.list_pull_requests", Args: map[string]any{"repo": repo}})
		if err != nil {
			return planner.Plan{}, err
		}
		if res.Ran {
			reads++
		}
	}
	return planner.Plan{Reply: "Here is what is open.", Reads: reads}, nil
}

// Each read the planner runs streams into the thread as a task update,
// begun and then completed, in one streamed message for the asker that is
// stopped when the answer is there.
func TestProgressStreamsIntoTheThread(t *testing.T) {
	f := newFlow(t, flowOptions{demo: true, planner: readingPlanner{repos: []string{"acme/website", "acme/website"}}})
	ts := f.mention(alice, "C1", "what is open on the website?")
	streams := f.srv.Streams()
	if len(streams) != 1 {
		t.Fatalf("streams = %+v, want one", streams)
	}
	s := streams[0]
	if s.Channel != "C1" || s.ThreadTS != ts || s.Recipient != alice || s.Team != slacktest.TeamID || s.DisplayMode != "timeline" || !s.Stopped {
		t.Errorf("stream = %+v, want one in the thread, for alice, as a timeline, stopped", s)
	}
	var got []string
	for _, c := range s.Chunks {
		if c.Type != "task_update" || !strings.Contains(c.Title, "acme/website") {
			t.Errorf("chunk = %+v, want a task update naming the public repository", c)
		}
		got = append(got, c.Status)
	}
	if strings.Join(got, " ") != "in_progress complete in_progress complete" {
		t.Errorf("task statuses = %v, want each read begun then completed", got)
	}
	if s.Chunks[0].ID == s.Chunks[2].ID || s.Chunks[0].ID != s.Chunks[1].ID {
		t.Errorf("task IDs = %q %q %q, want one per read", s.Chunks[0].ID, s.Chunks[1].ID, s.Chunks[2].ID)
	}
	if r := f.replies("C1", ts); len(r) == 0 || r[len(r)-1] != "Here is what is open." {
		t.Errorf("thread replies = %q, want the answer", r)
	}
}

// Where the workspace streams no messages, progress is one plain threaded
// message updated in place, and streaming is not tried again.
func TestProgressWithoutStreams(t *testing.T) {
	f := newFlow(t, flowOptions{demo: true, planner: readingPlanner{repos: []string{"acme/website"}}})
	f.srv.NoStreams()
	ts := f.mention(alice, "C1", "what is open on the website?")
	r := f.replies("C1", ts)
	if len(r) != 2 || r[0] != "✓ Reading acme/website (github.list_pull_requests)" || r[1] != "Here is what is open." {
		t.Fatalf("thread replies = %q, want the progress line, done, then the answer", r)
	}
	f.mention(alice, "C1", "and now?")
	if n := len(f.srv.Calls("chat.startStream")); n != 1 {
		t.Errorf("chat.startStream called %d times, want once", n)
	}
}
