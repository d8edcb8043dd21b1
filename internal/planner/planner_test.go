package planner

import (
	"context"
	"strings"
	"testing"
	"time"
	_ "time/tzdata" // Europe/Berlin must resolve on machines without a zone database.

	"github.com/google/go-cmp/cmp"
)

// wednesday is the injected "now" of the table: Wednesday 10 June 2026,
// 09:15 UTC.
var wednesday = time.Date(2026, time.June, 10, 9, 15, 0, 0, time.UTC)

func plan(tb testing.TB, text string, now time.Time, loc *time.Location) Plan {
	tb.Helper()
	got, err := NewRules().Plan(context.Background(), Request{Principal: "T1/U1", Text: text, Now: now, Location: loc})
	if err != nil {
		tb.Fatalf("Plan(%q): %v", text, err)
	}
	return got
}

func step(action string, args map[string]any) []Step {
	return []Step{{Action: action, Args: args}}
}

func TestRulesPatterns(t *testing.T) {
	mergeP7 := step("github.merge_pull_request", map[string]any{"repo": "acme/payments", "number": 7, "method": "merge"})
	tests := []struct {
		name string
		text string
		want []Step
	}{
		// github.list_pull_requests
		{"list open PRs", "list open pull requests in acme/website",
			step("github.list_pull_requests", map[string]any{"repo": "acme/website", "state": "open"})},
		{"show PRs defaults to open", "show PRs in acme/payments",
			step("github.list_pull_requests", map[string]any{"repo": "acme/payments", "state": "open"})},
		{"list closed PRs", "List the closed PRs for acme/website.",
			step("github.list_pull_requests", map[string]any{"repo": "acme/website", "state": "closed"})},
		{"repo is lower-cased", "show PRs in Acme/Website",
			step("github.list_pull_requests", map[string]any{"repo": "acme/website", "state": "open"})},

		// github.get_pull_request
		{"show PR", "show PR 7 in acme/payments",
			step("github.get_pull_request", map[string]any{"repo": "acme/payments", "number": 7})},
		{"show pull request hash", "show pull request #7 in acme/payments",
			step("github.get_pull_request", map[string]any{"repo": "acme/payments", "number": 7})},
		{"show owner/repo#n", "show acme/payments#7",
			step("github.get_pull_request", map[string]any{"repo": "acme/payments", "number": 7})},

		// github.comment
		{"comment quoted first", "comment 'looks good' on PR 7 in acme/payments",
			step("github.comment", map[string]any{"repo": "acme/payments", "number": 7, "body": "looks good"})},
		{"comment quoted last", `comment on #7 in acme/payments: "ship it, it's fine"`,
			step("github.comment", map[string]any{"repo": "acme/payments", "number": 7, "body": "ship it, it's fine"})},
		{"comment keeps case and and-then inside quotes", "add a comment 'Fix it AND THEN merge.' to PR 7 in acme/payments",
			step("github.comment", map[string]any{"repo": "acme/payments", "number": 7, "body": "Fix it AND THEN merge."})},

		// github.review
		{"approve", "approve PR 7 in acme/payments",
			step("github.review", map[string]any{"repo": "acme/payments", "number": 7, "event": "APPROVE"})},
		{"approve with text", "approve the pull request 7 in acme/payments: 'LGTM'",
			step("github.review", map[string]any{"repo": "acme/payments", "number": 7, "event": "APPROVE", "body": "LGTM"})},
		{"request changes", "request changes on PR 12 in acme/website: 'needs tests'",
			step("github.review", map[string]any{"repo": "acme/website", "number": 12, "event": "REQUEST_CHANGES", "body": "needs tests"})},
		{"request changes quoted first", "request changes ‘needs tests’ on #12 in acme/website",
			step("github.review", map[string]any{"repo": "acme/website", "number": 12, "event": "REQUEST_CHANGES", "body": "needs tests"})},
		{"review comment", "review PR 12 in acme/website: 'one nit'",
			step("github.review", map[string]any{"repo": "acme/website", "number": 12, "event": "COMMENT", "body": "one nit"})},

		// github.create_issue
		{"create issue", "create an issue 'Flaky test' in acme/website",
			step("github.create_issue", map[string]any{"repo": "acme/website", "title": "Flaky test"})},
		{"create issue with body", `open a new issue in acme/website: “Flaky test” with body “fails on CI”`,
			step("github.create_issue", map[string]any{"repo": "acme/website", "title": "Flaky test", "body": "fails on CI"})},

		// github.merge_pull_request
		{"merge", "merge PR 7 in acme/payments", mergeP7},
		{"merge pull request", "merge pull request 7 in acme/payments", mergeP7},
		{"merge hash", "merge #7 in acme/payments", mergeP7},
		{"merge polite punctuated", "Please merge the PR #7 in acme/payments!", mergeP7},
		{"merge trailing please", "merge PR 7 in acme/payments, please", mergeP7},
		{"merge upper case", "MERGE PR 7 IN ACME/PAYMENTS", mergeP7},
		{"merge slack mention", "<@U0123ABC> merge PR 7 in acme/payments", mergeP7},
		{"merge slack mention with label", "<@U0123ABC|agenthub>: merge PR 7 in acme/payments.", mergeP7},
		{"merge typed mention", "@agenthub merge PR 7 in acme/payments", mergeP7},
		{"merge extra spaces", "  merge   PR   7  in  acme/payments  ", mergeP7},
		{"squash merge", "squash merge #12 in acme/website",
			step("github.merge_pull_request", map[string]any{"repo": "acme/website", "number": 12, "method": "squash"})},
		{"merge with rebase", "merge PR 12 in acme/website using rebase",
			step("github.merge_pull_request", map[string]any{"repo": "acme/website", "number": 12, "method": "rebase"})},

		// github.delete_branch
		{"delete branch", "delete the branch feature-x in acme/website",
			step("github.delete_branch", map[string]any{"repo": "acme/website", "branch": "feature-x"})},
		{"delete branch keeps case and slashes", "remove Feature/New-UI branch from acme/website",
			step("github.delete_branch", map[string]any{"repo": "acme/website", "branch": "Feature/New-UI"})},

		// github.dispatch_workflow
		{"deploy staging", "deploy acme/website to staging",
			step("github.dispatch_workflow", map[string]any{"repo": "acme/website", "workflow": "deploy.yml", "ref": "main", "environment": "staging"})},
		{"deploy production", "deploy acme/payments to production",
			step("github.dispatch_workflow", map[string]any{"repo": "acme/payments", "workflow": "deploy.yml", "ref": "main", "environment": "production"})},
		{"deploy prod alias with ref", "deploy acme/payments to prod from release-1.2",
			step("github.dispatch_workflow", map[string]any{"repo": "acme/payments", "workflow": "deploy.yml", "ref": "release-1.2", "environment": "production"})},

		// calendar.list_events (now: Wednesday 10 June 2026, UTC)
		{"calendar tomorrow", "what's on my calendar tomorrow",
			step("calendar.list_events", map[string]any{"calendar": "primary", "from": "2026-06-11T00:00:00Z", "to": "2026-06-12T00:00:00Z"})},
		{"calendar curly apostrophe question", "What’s on my calendar tomorrow?",
			step("calendar.list_events", map[string]any{"calendar": "primary", "from": "2026-06-11T00:00:00Z", "to": "2026-06-12T00:00:00Z"})},
		{"meetings today", "my meetings today",
			step("calendar.list_events", map[string]any{"calendar": "primary", "from": "2026-06-10T00:00:00Z", "to": "2026-06-11T00:00:00Z"})},
		{"calendar for friday", "calendar for Friday",
			step("calendar.list_events", map[string]any{"calendar": "primary", "from": "2026-06-12T00:00:00Z", "to": "2026-06-13T00:00:00Z"})},
		{"same weekday means next week", "show my calendar on wednesday",
			step("calendar.list_events", map[string]any{"calendar": "primary", "from": "2026-06-17T00:00:00Z", "to": "2026-06-18T00:00:00Z"})},
		{"calendar without day is today", "what's on my calendar",
			step("calendar.list_events", map[string]any{"calendar": "primary", "from": "2026-06-10T00:00:00Z", "to": "2026-06-11T00:00:00Z"})},

		// calendar.find_free_time
		{"find free time", "find 30 minutes free tomorrow with bob@example.com",
			step("calendar.find_free_time", map[string]any{"from": "2026-06-11T00:00:00Z", "to": "2026-06-12T00:00:00Z", "duration_minutes": 30, "attendees": []string{"bob@example.com"}})},
		{"find free time today starts now", "find free time today for an hour",
			step("calendar.find_free_time", map[string]any{"from": "2026-06-10T09:15:00Z", "to": "2026-06-11T00:00:00Z", "duration_minutes": 60})},
		{"find free slot slack mailto", "find a 45 min slot on friday with <mailto:Bob@Example.com|Bob@Example.com> and carol@example.org",
			step("calendar.find_free_time", map[string]any{"from": "2026-06-12T00:00:00Z", "to": "2026-06-13T00:00:00Z", "duration_minutes": 45, "attendees": []string{"bob@example.com", "carol@example.org"}})},

		// calendar.create_event
		{"schedule", "schedule 'Design review' tomorrow at 3pm for 30 minutes with bob@example.com",
			step("calendar.create_event", map[string]any{"summary": "Design review", "start": "2026-06-11T15:00:00Z", "end": "2026-06-11T15:30:00Z", "attendees": []string{"bob@example.com"}})},
		{"schedule 24h clock one hour", `schedule "Design review" tomorrow at 15:00 for 1 hour with bob@example.com`,
			step("calendar.create_event", map[string]any{"summary": "Design review", "start": "2026-06-11T15:00:00Z", "end": "2026-06-11T16:00:00Z", "attendees": []string{"bob@example.com"}})},
		{"schedule several attendees", "schedule 'Sync' tomorrow at 9:30am for 45 minutes with a@x.com and b@y.com",
			step("calendar.create_event", map[string]any{"summary": "Sync", "start": "2026-06-11T09:30:00Z", "end": "2026-06-11T10:15:00Z", "attendees": []string{"a@x.com", "b@y.com"}})},
		{"schedule list of attendees any order", "schedule a meeting 'Plan' with a@x.com, b@y.com and c@z.com for an hour on friday at 10am",
			step("calendar.create_event", map[string]any{"summary": "Plan", "start": "2026-06-12T10:00:00Z", "end": "2026-06-12T11:00:00Z", "attendees": []string{"a@x.com", "b@y.com", "c@z.com"}})},
		{"schedule default duration no attendees", "schedule 'Focus' today at noon",
			step("calendar.create_event", map[string]any{"summary": "Focus", "start": "2026-06-10T12:00:00Z", "end": "2026-06-10T12:30:00Z"})},

		// calendar.delete_event
		{"cancel event", "cancel event abc123",
			step("calendar.delete_event", map[string]any{"event_id": "abc123"})},
		{"delete event", "delete event abc123",
			step("calendar.delete_event", map[string]any{"event_id": "abc123"})},

		// slack
		{"list channels", "list channels",
			step("slack.list_channels", map[string]any{})},
		{"show all slack channels", "Show me all Slack channels.",
			step("slack.list_channels", map[string]any{})},
		{"post", "post 'deploy done' to #deploys",
			step("slack.post_message", map[string]any{"channel": "#deploys", "text": "deploy done"})},
		{"say double quotes", `say "hi" in #general`,
			step("slack.post_message", map[string]any{"channel": "#general", "text": "hi"})},
		{"post slack channel link", "post to <#C0123|eng>: 'standup moved'",
			step("slack.post_message", map[string]any{"channel": "#eng", "text": "standup moved"})},
		{"post named channel", "send 'hello' to deploys channel",
			step("slack.post_message", map[string]any{"channel": "#deploys", "text": "hello"})},
		{"archive", "archive #old-project",
			step("slack.archive_channel", map[string]any{"channel": "#old-project"})},

		// several steps
		{"and then", "merge PR 7 in acme/payments and then post 'merged' to #deploys", []Step{
			{Action: "github.merge_pull_request", Args: map[string]any{"repo": "acme/payments", "number": 7, "method": "merge"}},
			{Action: "slack.post_message", Args: map[string]any{"channel": "#deploys", "text": "merged"}},
		}},
		{"and then three", "Please approve PR 7 in acme/payments, and then merge PR 7 in acme/payments AND THEN deploy acme/payments to staging.", []Step{
			{Action: "github.review", Args: map[string]any{"repo": "acme/payments", "number": 7, "event": "APPROVE"}},
			{Action: "github.merge_pull_request", Args: map[string]any{"repo": "acme/payments", "number": 7, "method": "merge"}},
			{Action: "github.dispatch_workflow", Args: map[string]any{"repo": "acme/payments", "workflow": "deploy.yml", "ref": "main", "environment": "staging"}},
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := plan(t, tt.text, wednesday, nil)
			if got.Reply != "" {
				t.Fatalf("Plan(%q) replied %q, want steps", tt.text, got.Reply)
			}
			if diff := cmp.Diff(tt.want, got.Steps); diff != "" {
				t.Errorf("Plan(%q) steps (-want +got):\n%s", tt.text, diff)
			}
		})
	}
}

func TestRulesUnreadable(t *testing.T) {
	tests := []struct {
		name     string
		text     string
		wantHint string // a phrase the reply must contain besides the examples
	}{
		{"empty", "", "Tell me what to do."},
		{"only spaces", "   \n\t", "Tell me what to do."},
		{"only a mention", "<@U0123ABC>", "Tell me what to do."},
		{"gibberish", "make me a sandwich", `I couldn't read "make me a sandwich".`},
		{"merge without repo", "merge PR 7", `I couldn't read "merge PR 7".`},
		{"merge without number", "merge PR in acme/payments", "I couldn't read"},
		{"unterminated quote", "post 'deploy done to #deploys", "I couldn't read"},
		{"empty message", "post '' to #deploys", "The message is empty."},
		{"request changes without text", "request changes on PR 12 in acme/website", "Say what needs to change"},
		{"schedule without time", "schedule 'Design review' tomorrow", "Say when"},
		{"schedule ambiguous hour", "schedule 'Design review' tomorrow at 3", "am/pm"},
		{"schedule unknown words kept", "schedule 'Standup' tomorrow at 9am every week", "I couldn't read"},
		{"bad hour", "schedule 'Late' tomorrow at 13pm", "am/pm"},
		{"find free without duration", "find free time tomorrow", "Say how long"},
		{"one bad part spoils the plan", "merge PR 7 in acme/payments and then dance", `I couldn't read "dance".`},
		{"help", "Help!", "Tell me what to do."},
		{"greeting", "@agenthub hi", "Tell me what to do."},
		{"only punctuation", "?", "Tell me what to do."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := plan(t, tt.text, wednesday, nil)
			if len(got.Steps) != 0 {
				t.Fatalf("Plan(%q) steps = %v, want none", tt.text, got.Steps)
			}
			if !strings.Contains(got.Reply, tt.wantHint) {
				t.Errorf("Plan(%q) reply = %q, want it to contain %q", tt.text, got.Reply, tt.wantHint)
			}
			for _, e := range Examples {
				if !strings.Contains(got.Reply, e) {
					t.Errorf("Plan(%q) reply lacks example %q", tt.text, e)
				}
			}
		})
	}
}

// TestExamplesPlan keeps the help text honest: every example it offers
// must itself be readable.
func TestExamplesPlan(t *testing.T) {
	for _, e := range Examples {
		t.Run(e, func(t *testing.T) {
			got := plan(t, e, wednesday, nil)
			if got.Reply != "" || len(got.Steps) == 0 {
				t.Errorf("Plan(%q) = %+v, want steps", e, got)
			}
		})
	}
}

func TestRulesDaylightSaving(t *testing.T) {
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	tests := []struct {
		name string
		now  time.Time
		text string
		want []Step
	}{
		{
			// Clocks go forward on Sunday 29 March 2026: that day has 23 hours.
			name: "list_events on the spring-forward day",
			now:  time.Date(2026, time.March, 28, 22, 30, 0, 0, berlin),
			text: "what's on my calendar tomorrow",
			want: step("calendar.list_events", map[string]any{"calendar": "primary", "from": "2026-03-29T00:00:00+01:00", "to": "2026-03-30T00:00:00+02:00"}),
		},
		{
			// Clocks go back on Sunday 25 October 2026: that day has 25 hours.
			name: "list_events on the fall-back day by weekday",
			now:  time.Date(2026, time.October, 22, 12, 0, 0, 0, berlin),
			text: "calendar for sunday",
			want: step("calendar.list_events", map[string]any{"calendar": "primary", "from": "2026-10-25T00:00:00+02:00", "to": "2026-10-26T00:00:00+01:00"}),
		},
		{
			// "Tomorrow at 9am" keeps the wall clock across the change, it
			// is not now+24h.
			name: "create_event the morning after spring-forward",
			now:  time.Date(2026, time.March, 28, 9, 0, 0, 0, berlin),
			text: "schedule 'Standup' tomorrow at 9am for 15 minutes",
			want: step("calendar.create_event", map[string]any{"summary": "Standup", "start": "2026-03-29T09:00:00+02:00", "end": "2026-03-29T09:15:00+02:00"}),
		},
		{
			// Now is given in UTC; "tomorrow" is read in the person's zone,
			// where it is already Sunday.
			name: "day boundary is the person's",
			now:  time.Date(2026, time.October, 24, 22, 30, 0, 0, time.UTC), // 00:30 CEST on the 25th
			text: "my meetings tomorrow",
			want: step("calendar.list_events", map[string]any{"calendar": "primary", "from": "2026-10-26T00:00:00+01:00", "to": "2026-10-27T00:00:00+01:00"}),
		},
		{
			// An event that crosses the fall-back hour lasts its real
			// duration: 01:30 CEST + 90 minutes is 02:00 CET.
			name: "create_event across fall-back",
			now:  time.Date(2026, time.October, 24, 12, 0, 0, 0, berlin),
			text: "schedule 'Night ops' tomorrow at 1:30am for an hour and a half",
			want: step("calendar.create_event", map[string]any{"summary": "Night ops", "start": "2026-10-25T01:30:00+02:00", "end": "2026-10-25T02:00:00+01:00"}),
		},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := plan(t, tt.text, tt.now, berlin)
			if got.Reply != "" {
				t.Fatalf("Plan(%q) replied %q, want steps", tt.text, got.Reply)
			}
			if diff := cmp.Diff(tt.want, got.Steps); diff != "" {
				t.Errorf("Plan(%q) steps (-want +got):\n%s", tt.text, diff)
			}
		})
	}
}

func TestRulesCancelledContext(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	_, err := NewRules().Plan(ctx, Request{Text: "list channels", Now: wednesday})
	if err == nil {
		t.Fatal("Plan with a cancelled context: got nil error, want one")
	}
}

func BenchmarkRulesPlan(b *testing.B) {
	r := NewRules()
	ctx := context.Background()
	for _, bc := range []struct{ name, text string }{
		{"merge", "<@U0123ABC> please merge PR 7 in acme/payments"},
		{"schedule", "schedule 'Design review' tomorrow at 3pm for 30 minutes with bob@example.com"},
		{"post_last_pattern", "archive #old-project"},
		{"unreadable", "make me a sandwich"},
	} {
		b.Run(bc.name, func(b *testing.B) {
			req := Request{Text: bc.text, Now: wednesday}
			b.ReportAllocs()
			for b.Loop() {
				if _, err := r.Plan(ctx, req); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
