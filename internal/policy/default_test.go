package policy

import (
	"bytes"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/google/go-cmp/cmp/cmpopts"
)

var (
	all          = []Lifetime{Once, OneHour, Standing}
	ignoreReason = cmpopts.IgnoreFields(Decision{}, "Reason")
)

func allow(rule string, r Risk) Decision { return Decision{Effect: Allow, Rule: rule, Risk: r} }
func deny(rule string, r Risk) Decision  { return Decision{Effect: Deny, Rule: rule, Risk: r} }
func approve(rule string, r Risk, grantOK bool, ls ...Lifetime) Decision {
	return Decision{Effect: Approve, Rule: rule, Risk: r, GrantOK: grantOK, Lifetimes: ls}
}
func stepUp(rule string, r Risk) Decision {
	return Decision{Effect: StepUp, Rule: rule, Risk: r, StepUp: true, Lifetimes: []Lifetime{Once}}
}
func second(rule string, r Risk, approvers ...string) Decision {
	return Decision{Effect: SecondApprover, Rule: rule, Risk: r, StepUp: true, SecondApprover: approvers, Lifetimes: []Lifetime{Once}}
}

// Inputs shared by the tables below, shaped like what the agents will send.
var (
	publicRepo  = map[string]any{"private": false}
	privateRepo = map[string]any{"private": true}

	listPublicPRs  = step("github.list_pull_requests", Low, false, "repo", "acme/website", publicRepo)
	listPrivatePRs = step("github.list_pull_requests", Low, false, "repo", "acme/payments", privateRepo)
	merge          = withArgs(step("github.merge_pull_request", High, true, "repo", "acme/payments", privateRepo), map[string]any{"number": 7})
	deploy         = func(env string) Input {
		return withArgs(step("github.dispatch_workflow", High, true, "repo", "acme/payments", privateRepo),
			map[string]any{"workflow": "deploy.yml", "environment": env})
	}
	comment    = withArgs(step("github.comment", Low, true, "repo", "acme/payments", privateRepo), map[string]any{"number": 7, "body": "LGTM"})
	createFile = func(protected bool) Input {
		return step("github.create_file", Medium, true, "branch", "acme/payments:main", map[string]any{"protected": protected})
	}
	listIssues = step("github.list_issues", Low, false, "repo", "acme/payments", privateRepo)
)

// TestDefaultPolicy exercises every rule of the embedded policy: an input
// that hits it, and inputs just outside it that fall to the next rule.
func TestDefaultPolicy(t *testing.T) {
	tests := []struct {
		name string
		rule string // the rule this case is about
		in   Input
		want Decision
	}{
		{"a guest's comment hits", "guests-and-outsiders-do-not-write", guest(comment), deny("guests-and-outsiders-do-not-write", Low)},
		{"an outsider's merge hits", "guests-and-outsiders-do-not-write", external(merge), deny("guests-and-outsiders-do-not-write", High)},
		{"a guest's public read misses", "guests-and-outsiders-do-not-write", guest(listPublicPRs), allow("public-reads", Low)},
		{"an outsider's private read misses", "guests-and-outsiders-do-not-write", external(listPrivatePRs),
			approve("private-reads-need-a-grant", Low, true, all...)},
		{"production deploy by args hits", "production-deploys-need-two", deploy("production"),
			// No release managers are configured by default, so no one but
			// the owner could approve: denied at once.
			deny("production-deploys-need-two", Critical)},
		{"production deploy by resource hits", "production-deploys-need-two",
			withArgs(step("github.dispatch_workflow", High, true, "repo", "acme/payments", map[string]any{"private": true, "environment": "production"}), map[string]any{"workflow": "deploy.yml"}),
			deny("production-deploys-need-two", Critical)},
		{"staging deploy misses, needs step-up", "production-deploys-need-two", deploy("staging"),
			stepUp("destructive-actions-need-step-up", High)},
		{"deploy without environment misses", "production-deploys-need-two",
			step("github.dispatch_workflow", High, true, "repo", "acme/payments", privateRepo),
			stepUp("destructive-actions-need-step-up", High)},

		{"merge hits", "destructive-actions-need-step-up", merge, stepUp("destructive-actions-need-step-up", High)},
		{"delete branch is raised to high", "destructive-actions-need-step-up",
			step("github.delete_branch", Medium, true, "branch", "acme/website:feature-x", map[string]any{"protected": false}),
			stepUp("destructive-actions-need-step-up", High)},
		{"delete event hits", "destructive-actions-need-step-up",
			step("calendar.delete_event", Medium, true, "calendar", "primary", privateRepo),
			stepUp("destructive-actions-need-step-up", High)},
		{"archive channel hits", "destructive-actions-need-step-up",
			step("slack.archive_channel", Medium, true, "channel", "#eng", map[string]any{"members": 12}),
			stepUp("destructive-actions-need-step-up", High)},
		{"comment misses, needs approval", "destructive-actions-need-step-up", comment,
			approve("writes-need-approval", Medium, true, all...)},

		{"public read hits", "public-reads", listPublicPRs, allow("public-reads", Low)},
		{"public channel list hits", "public-reads",
			step("slack.list_channels", Low, false, "workspace", "T1", publicRepo), allow("public-reads", Low)},
		{"private read misses", "public-reads", listPrivatePRs,
			approve("private-reads-need-a-grant", Low, true, all...)},
		{"read without private attribute counts as private", "public-reads",
			step("github.get_pull_request", Low, false, "repo", "acme/website", nil),
			approve("private-reads-need-a-grant", Low, true, all...)},
		{"private given as a string is not public", "public-reads",
			step("github.get_pull_request", Low, false, "repo", "acme/website", map[string]any{"private": "false"}),
			approve("private-reads-need-a-grant", Low, true, all...)},

		{"tainted public read hits", "untrusted-reads-need-a-person", tainted(listPublicPRs),
			approve("untrusted-reads-need-a-person", Low, false, Once)},
		{"tainted private read hits", "untrusted-reads-need-a-person", tainted(listPrivatePRs),
			approve("untrusted-reads-need-a-person", Low, false, Once)},
		{"untainted private read misses", "untrusted-reads-need-a-person", listPrivatePRs,
			approve("private-reads-need-a-grant", Low, true, all...)},
		{"tainted unknown read misses, no grant", "untrusted-reads-need-a-person", tainted(listIssues),
			approve("default", Low, false, Once)},

		{"private calendar read hits", "private-reads-need-a-grant",
			step("calendar.list_events", Low, false, "calendar", "primary", privateRepo),
			approve("private-reads-need-a-grant", Low, true, all...)},
		{"unknown read misses", "private-reads-need-a-grant", listIssues, approve("default", Low, true, Once)},

		{"unknown write to protected branch hits", "protected-branch-writes-need-step-up", createFile(true),
			stepUp("protected-branch-writes-need-step-up", High)},
		{"comment on protected resource hits", "protected-branch-writes-need-step-up",
			step("github.comment", Low, true, "branch", "acme/payments:main", map[string]any{"protected": true}),
			stepUp("protected-branch-writes-need-step-up", High)},
		{"unprotected branch misses", "protected-branch-writes-need-step-up", createFile(false),
			deny("unknown-writes-denied", Medium)},
		{"read of protected branch misses", "protected-branch-writes-need-step-up",
			step("github.get_branch", Low, false, "branch", "acme/payments:main", map[string]any{"protected": true}),
			approve("default", Low, true, Once)},

		{"comment hits", "writes-need-approval", comment, approve("writes-need-approval", Medium, true, all...)},
		{"event with attendees hits", "writes-need-approval",
			withArgs(step("calendar.create_event", Medium, true, "calendar", "primary", privateRepo), map[string]any{"attendees": []any{"bob@example.com"}}),
			approve("writes-need-approval", Medium, true, all...)},
		{"tainted comment needs fresh approval", "writes-need-approval", tainted(comment),
			approve("writes-need-approval", Medium, false, Once)},
		{"comment declared high needs step-up", "writes-need-approval",
			step("slack.post_message", High, true, "channel", "#deploys", nil),
			stepUp("writes-need-approval", High)},
		{"unknown write misses", "writes-need-approval", createFile(false), deny("unknown-writes-denied", Medium)},

		{"unknown write hits", "unknown-writes-denied",
			step("github.create_repository", Medium, true, "org", "acme", nil), deny("unknown-writes-denied", Medium)},
		{"tainted unknown write is still denied", "unknown-writes-denied", tainted(createFile(false)),
			deny("unknown-writes-denied", Medium)},
		{"unknown read misses", "unknown-writes-denied", listIssues, approve("default", Low, true, Once)},

		{"unknown read hits", "default", listIssues, approve("default", Low, true, Once)},
		{"unknown high-risk read needs step-up", "default",
			step("github.read_secrets", High, false, "repo", "acme/payments", privateRepo), stepUp("default", High)},
	}
	e := Default()
	covered := map[string]bool{}
	for _, tt := range tests {
		t.Run(tt.rule+"/"+tt.name, func(t *testing.T) {
			got := e.Evaluate(tt.in)
			if diff := cmp.Diff(tt.want, got, ignoreReason); diff != "" {
				t.Errorf("Evaluate() mismatch (-want +got):\n%s", diff)
			}
			if got.Reason == "" {
				t.Error("Evaluate().Reason is empty")
			}
		})
		if tt.want.Rule == tt.rule {
			covered[tt.rule] = true
		}
	}
	for _, name := range e.RuleNames() {
		if !covered[name] {
			t.Errorf("rule %q of the default policy has no case that hits it", name)
		}
	}
}

// guest and external make the input's principal a guest of the workspace
// or someone from another one.
func guest(in Input) Input    { in.Principal.Guest = true; return in }
func external(in Input) Input { in.Principal.External = true; return in }

// withReleaseManagers returns the default policy with release managers
// configured, as an operator would.
func withReleaseManagers(t testing.TB, members string) *Engine {
	t.Helper()
	src := bytes.Replace(defaultSource, []byte("release-managers: []"), []byte("release-managers: "+members), 1)
	if bytes.Equal(src, defaultSource) {
		t.Fatal("default.yaml no longer declares release-managers: []")
	}
	return mustParse(t, string(src))
}

func TestDefaultPolicyProductionDeploy(t *testing.T) {
	e := withReleaseManagers(t, "[U1, U2, U3]")
	tests := []struct {
		name string
		in   Input
		want Decision
	}{
		{"owner outside the group", owner(deploy("production"), "U9"), second("production-deploys-need-two", Critical, "U1", "U2", "U3")},
		{"owner in the group is not their own second", owner(deploy("production"), "U2"), second("production-deploys-need-two", Critical, "U1", "U3")},
		{"staging needs no second", owner(deploy("staging"), "U9"), stepUp("destructive-actions-need-step-up", High)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.Evaluate(tt.in)
			if diff := cmp.Diff(tt.want, got, ignoreReason); diff != "" {
				t.Errorf("Evaluate() mismatch (-want +got):\n%s", diff)
			}
		})
	}
	// The shared approvers list must not have been edited by removing U2.
	if got := e.Evaluate(owner(deploy("production"), "U9")).SecondApprover; !slices.Equal(got, []string{"U1", "U2", "U3"}) {
		t.Errorf("SecondApprover after an owner was removed = %v, want [U1 U2 U3]", got)
	}
}

// businessHoursSource is the default policy with its commented business
// hours example switched on, so the documented rule is proved to work.
func businessHoursSource(t testing.TB) []byte {
	t.Helper()
	var out []string
	in := false
	found := false
	for _, line := range strings.Split(string(defaultSource), "\n") {
		switch strings.TrimSpace(line) {
		case "# BEGIN business-hours":
			in, found = true, true
			continue
		case "# END business-hours":
			in = false
			continue
		}
		if in {
			indent := line[:len(line)-len(strings.TrimLeft(line, " "))]
			line = indent + strings.TrimPrefix(strings.TrimLeft(line, " "), "# ")
		}
		out = append(out, line)
	}
	if !found {
		t.Fatal("default.yaml has no business-hours example")
	}
	return []byte(strings.Join(out, "\n"))
}

func TestBusinessHoursExample(t *testing.T) {
	e, err := Parse("default.yaml", businessHoursSource(t))
	if err != nil {
		t.Fatalf("the business-hours example does not parse: %v", err)
	}
	if got := e.RuleNames()[0]; got != "no-high-risk-after-hours" {
		t.Fatalf("first rule = %q, want no-high-risk-after-hours", got)
	}
	berlin, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	const rule = "no-high-risk-after-hours"
	tests := []struct {
		name string
		in   Input
		want string // deciding rule
	}{
		{"tuesday 10:00 summer", at(merge, time.Date(2025, 7, 8, 10, 0, 0, 0, berlin)), "destructive-actions-need-step-up"},
		{"monday 09:00 winter", at(merge, time.Date(2025, 1, 6, 9, 0, 0, 0, berlin)), "destructive-actions-need-step-up"},
		{"friday 17:59", at(merge, time.Date(2025, 7, 11, 17, 59, 0, 0, berlin)), "destructive-actions-need-step-up"},
		{"monday 08:59", at(merge, time.Date(2025, 1, 6, 8, 59, 0, 0, berlin)), rule},
		{"tuesday 18:00", at(merge, time.Date(2025, 7, 8, 18, 0, 0, 0, berlin)), rule},
		{"saturday 10:00", at(merge, time.Date(2025, 7, 12, 10, 0, 0, 0, berlin)), rule},
		{"sunday noon", at(merge, time.Date(2025, 7, 13, 12, 0, 0, 0, berlin)), rule},
		// 07:30 UTC is 09:30 in Berlin in July: in hours, though not in UTC.
		{"zone, not UTC, decides", at(merge, time.Date(2025, 7, 8, 7, 30, 0, 0, time.UTC)), "destructive-actions-need-step-up"},
		// 23:30 UTC on Monday is 01:30 on Tuesday in Berlin.
		{"late in UTC is early in Berlin", at(merge, time.Date(2025, 7, 7, 23, 30, 0, 0, time.UTC)), rule},
		{"low risk at night is not affected", at(comment, time.Date(2025, 7, 12, 23, 0, 0, 0, berlin)), "writes-need-approval"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.Evaluate(tt.in)
			if got.Rule != tt.want {
				t.Errorf("Evaluate().Rule = %q (%s), want %q", got.Rule, got.Effect, tt.want)
			}
			if got.Rule == rule && got.Effect != Deny {
				t.Errorf("Evaluate().Effect = %s, want deny", got.Effect)
			}
		})
	}
}

func TestDefaultSourceIsACopy(t *testing.T) {
	src := DefaultSource()
	src[0] = 'X'
	if defaultSource[0] == 'X' {
		t.Error("DefaultSource returned the embedded bytes, not a copy")
	}
	if Default() != Default() {
		t.Error("Default() built a new engine on the second call")
	}
	if got := Default().Name(); got != "default.yaml" {
		t.Errorf("Default().Name() = %q, want default.yaml", got)
	}
}
