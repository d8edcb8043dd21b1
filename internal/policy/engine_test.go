package policy

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
)

// TestConditionVariables checks every variable and field a condition can
// read against one known input.
func TestConditionVariables(t *testing.T) {
	in := Input{
		Principal: Principal{ID: "T1:U1", Team: "T1", User: "U1", Groups: []string{"eng", "sre"}},
		Action:    Action{Agent: "github", Name: "github.merge_pull_request", Risk: High, Scopes: []string{"repo", "workflow"}, Write: true},
		Resource:  Resource{Kind: "repo", Name: "acme/payments", Attrs: map[string]any{"private": true, "members": 12, "environment": "production", "score": 0.5, "labels": []any{"pci"}}},
		Args:      map[string]any{"number": float64(7), "environment": "production", "nested": map[string]any{"k": "v"}},
		Tainted:   true,
		Now:       tuesday10, // 10:00 in Berlin, 08:00 UTC
	}
	conds := []string{
		`principal.id == "T1:U1" && principal.team == "T1" && principal.user == "U1"`,
		`"sre" in principal.groups && principal.groups.size() == 2`,
		`has(principal.user) && !has(action.name) == false`,
		`action.agent == "github" && action.name == "github.merge_pull_request"`,
		`action.risk == "high" && action.risk_level == HIGH && action.risk_level > MEDIUM && action.risk_level < CRITICAL && LOW == 0`,
		`"workflow" in action.scopes && action.write`,
		`resource.kind == "repo" && resource.name.startsWith("acme/")`,
		`resource.attrs.private && resource.attrs.members > 10 && resource.attrs.score < 1.0`,
		`"pci" in resource.attrs.labels && resource.attrs.environment == "production"`,
		`has(resource.attrs.private) && !has(resource.attrs.protected)`,
		`resource.attrs.?protected.orValue(false) == false`,
		`args.number == 7 && args.nested.k == "v" && has(args.environment) && !has(args.missing)`,
		`step.tainted`,
		`now == timestamp("2025-07-08T08:00:00Z") && now.getHours() == 8`,
		`now.getHours("Europe/Berlin") == 10 && now.getDayOfWeek("Europe/Berlin") == 2`,
		`now.getHours("+05:30") == 13 && now.getMinutes("+05:30") == 30 && now.getHours("-08:00") == 0`,
		`now.getFullYear("Europe/Berlin") == 2025 && now.getMonth("Europe/Berlin") == 6 && now.getDate("Europe/Berlin") == 8`,
		`now.getDayOfMonth("Europe/Berlin") == 7 && now.getDayOfYear("UTC") == 188 && now.getSeconds("UTC") == 0 && now.getMilliseconds("UTC") == 0`,
		`args.environment in ["staging", "production"]`,
		`args.?missing.orValue("") == "" && args.?environment.orValue("") == "production"`,
	}
	for _, c := range conds {
		t.Run(c, func(t *testing.T) {
			e := mustParse(t, fmt.Sprintf("version: 1\nrules:\n  - name: hit\n    when: %q\n    effect: deny\n  - name: default\n    effect: allow\n", c))
			got := e.Evaluate(in)
			if got.Err != nil {
				t.Fatalf("condition failed: %v", got.Err)
			}
			if got.Rule != "hit" {
				t.Errorf("condition was false (decided by %q)", got.Rule)
			}
		})
	}
}

func TestEmptyInputs(t *testing.T) {
	// Nil maps and empty fields read as empty, not as errors.
	e := mustParse(t, `version: 1
rules:
  - name: hit
    when: "!has(resource.attrs.private) && !has(args.x) && !has(principal.user) && principal.groups.size() == 0 && !step.tainted"
    effect: deny
`)
	if got := e.Evaluate(Input{}); got.Rule != "hit" || got.Err != nil {
		t.Errorf("Evaluate(Input{}) = %+v, want rule hit", got)
	}
}

// TestConditionRuntimeErrors checks that a condition that cannot be
// evaluated denies under its rule's name and reveals no argument.
func TestConditionRuntimeErrors(t *testing.T) {
	const secret = "hunter2-canary"
	tests := []struct {
		name string
		when string
		in   Input
	}{
		{"missing key", `args.environment == "production"`, withArgs(comment, map[string]any{"body": secret})},
		{"missing dynamic key", `args[args.which] == 1`, withArgs(comment, map[string]any{"which": secret})},
		{"bad conversion", `int(args.n) > 1`, withArgs(comment, map[string]any{"n": secret})},
		{"missing attribute", `resource.attrs.protected`, step("github.comment", Low, true, "repo", "acme/x", map[string]any{"note": secret})},
		{"wrong type", `args.count > 3`, withArgs(comment, map[string]any{"count": secret})},
		{"not a bool", `args.flag`, withArgs(comment, map[string]any{"flag": secret})},
		{"unconvertible value", `resource.attrs.x == 1`, step("github.comment", Low, true, "repo", "acme/x", map[string]any{"x": struct{ S string }{secret}})},
		{"unknown dynamic zone", `now.getHours(args.tz) > 9`, withArgs(comment, map[string]any{"tz": secret})},
		{"division by zero", `10 / args.n == 1`, withArgs(comment, map[string]any{"n": 0})},
		{"whole object", `resource == resource`, withArgs(comment, map[string]any{"body": secret})},
		{"list of objects", `[principal].size() == 1`, withArgs(comment, map[string]any{"body": secret})},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			e := mustParse(t, fmt.Sprintf("version: 1\nrules:\n  - name: checks-args\n    when: %q\n    effect: allow\n    risk: medium\n  - name: default\n    effect: allow\n", tt.when))
			got := e.Evaluate(tt.in)
			if got.Effect != Deny || got.Rule != "checks-args" {
				t.Fatalf("Evaluate() = %s by %q, want deny by checks-args", got.Effect, got.Rule)
			}
			if got.Risk != Medium {
				t.Errorf("Risk = %s, want medium (the rule's raise)", got.Risk)
			}
			if !errors.Is(got.Err, ErrCondition) {
				t.Errorf("Err = %v, want one wrapping ErrCondition", got.Err)
			}
			if strings.Contains(got.Reason, secret) || strings.Contains(got.Reason, "args") {
				t.Error("Reason reveals the arguments")
			}
			if got.Err != nil && strings.Contains(got.Err.Error(), secret) {
				t.Error("Err reveals the arguments")
			}
		})
	}
}

func TestHeterogeneousEqualityIsNotAnError(t *testing.T) {
	// Comparing values of different types is false in CEL, not an error:
	// "private": "false" is not public, and the rule simply does not match.
	e := mustParse(t, `version: 1
rules:
  - name: public
    when: resource.attrs.private == false
    effect: allow
  - name: default
    effect: approve
`)
	got := e.Evaluate(step("github.get_pull_request", Low, false, "repo", "acme/x", map[string]any{"private": "false"}))
	if got.Rule != "default" || got.Err != nil {
		t.Errorf("Evaluate() = %+v, want the default rule", got)
	}
}

func TestFirstMatchAndPatterns(t *testing.T) {
	e := mustParse(t, `version: 1
rules:
  - name: website
    agent: github
    resource: acme/website
    effect: allow
  - name: acme-reads
    action: ["github.list_*", "github.get_*"]
    resource: acme/*
    effect: approve
  - name: calendar
    agent: calendar
    effect: deny
`)
	tests := []struct {
		in   Input
		want string
	}{
		{step("github.comment", Low, true, "repo", "acme/website", nil), "website"},
		{step("github.list_pull_requests", Low, false, "repo", "acme/website", nil), "website"},
		{step("github.list_pull_requests", Low, false, "repo", "acme/payments", nil), "acme-reads"},
		{step("github.get_pull_request", Low, false, "repo", "acme/payments", nil), "acme-reads"},
		{step("github.comment", Low, true, "repo", "acme/payments", nil), "default"},
		{step("github.list_pull_requests", Low, false, "repo", "other/acme", nil), "default"},
		{step("calendar.list_events", Low, false, "calendar", "primary", nil), "calendar"},
		{step("slack.post_message", Low, true, "channel", "#eng", nil), "default"},
	}
	for _, tt := range tests {
		t.Run(tt.in.Action.Name+" on "+tt.in.Resource.Name, func(t *testing.T) {
			if got := e.Evaluate(tt.in).Rule; got != tt.want {
				t.Errorf("Rule = %q, want %q", got, tt.want)
			}
		})
	}
}

func TestNoMatchDeniesByDefault(t *testing.T) {
	e := mustParse(t, "version: 1\nrules:\n  - name: only-github\n    agent: github\n    effect: allow\n")
	got := e.Evaluate(step("slack.post_message", Medium, true, "channel", "#eng", nil))
	want := Decision{Effect: Deny, Rule: "default", Risk: Medium}
	if diff := cmp.Diff(want, got, ignoreReason); diff != "" {
		t.Errorf("Evaluate() mismatch (-want +got):\n%s", diff)
	}
	if got.Reason == "" {
		t.Error("Reason is empty")
	}
	var none *Engine
	if got := none.Evaluate(listPublicPRs); got.Effect != Deny || got.Rule != "default" {
		t.Errorf("nil engine: Evaluate() = %s by %q, want deny by default", got.Effect, got.Rule)
	}
	var zero Decision
	if zero.Effect != Deny || zero.NeedsApproval() {
		t.Error("the zero Decision does not deny")
	}
}

// TestInvariants checks what no policy can switch off, on a policy that
// tries: it allows everything and offers standing grants where it can.
func TestInvariants(t *testing.T) {
	permissive := mustParse(t, `version: 1
rules:
  - name: allow-public
    when: has(resource.attrs.private) && !resource.attrs.private
    effect: allow
  - name: approve-rest
    effect: approve
    lifetimes: [once, 1h, standing]
`)
	engines := map[string]*Engine{"permissive": permissive, "default": Default(), "release managers": withReleaseManagers(t, "[U1, U2]")}
	actions := []Input{listPublicPRs, listPrivatePRs, merge, deploy("production"), deploy("staging"), comment, createFile(true), createFile(false), listIssues}
	for name, e := range engines {
		for _, base := range []Risk{Low, Medium, High, Critical, Risk(9), Risk(-1)} {
			for _, in := range actions {
				for _, taint := range []bool{false, true} {
					in := in
					in.Action.Risk = base
					in.Tainted = taint
					d := e.Evaluate(in)
					label := fmt.Sprintf("%s: %s base %d tainted %v → %s by %s", name, in.Action.Name, base, taint, d.Effect, d.Rule)
					if d.Risk < base.clamp() {
						t.Errorf("%s: risk %s below the base risk", label, d.Risk)
					}
					if d.Risk >= High && (d.Effect == Allow || d.Effect == Approve) {
						t.Errorf("%s: high risk without step-up", label)
					}
					if d.Risk >= High || d.StepUp || taint {
						if d.GrantOK {
							t.Errorf("%s: a grant may stand in for the approval", label)
						}
						if d.NeedsApproval() && !cmp.Equal(d.Lifetimes, []Lifetime{Once}) {
							t.Errorf("%s: lifetimes %v, want only once", label, d.Lifetimes)
						}
					}
					if taint && d.Effect == Allow {
						t.Errorf("%s: tainted step allowed without a person", label)
					}
					if d.StepUp != (d.Effect == StepUp || d.Effect == SecondApprover) {
						t.Errorf("%s: StepUp %v does not match the effect", label, d.StepUp)
					}
					if d.NeedsApproval() && (len(d.Lifetimes) == 0 || d.Lifetimes[0] != Once) {
						t.Errorf("%s: lifetimes %v do not start with once", label, d.Lifetimes)
					}
					if !d.NeedsApproval() && len(d.Lifetimes) > 0 {
						t.Errorf("%s: lifetimes %v offered without an approval", label, d.Lifetimes)
					}
					if d.Reason == "" || d.Rule == "" {
						t.Errorf("%s: missing rule or reason", label)
					}
				}
			}
		}
	}
	// The permissive policy's allow is tightened, and says why.
	got := permissive.Evaluate(tainted(listPublicPRs))
	want := approve("allow-public", Low, false, Once)
	if diff := cmp.Diff(want, got, ignoreReason); diff != "" {
		t.Errorf("tainted allow mismatch (-want +got):\n%s", diff)
	}
	if !strings.Contains(got.Reason, "did not write") {
		t.Errorf("Reason %q does not explain the taint", got.Reason)
	}
	highRead := listPublicPRs
	highRead.Action.Risk = High
	if got := permissive.Evaluate(highRead); got.Effect != StepUp || !strings.Contains(got.Reason, "second factor") {
		t.Errorf("high-risk allow = %s (%q), want stepup explaining why", got.Effect, got.Reason)
	}
}

func TestLifetimes(t *testing.T) {
	e := mustParse(t, `version: 1
rules:
  - name: listed
    action: a.listed
    effect: approve
    lifetimes: [standing, once]
  - name: unlisted
    action: a.unlisted
    effect: approve
  - name: raised
    action: a.raised
    effect: approve
    risk: high
    lifetimes: [once]
  - name: stepup
    action: a.stepup
    effect: stepup
`)
	tests := []struct {
		action string
		base   Risk
		taint  bool
		want   []Lifetime
	}{
		{"a.listed", Low, false, []Lifetime{Once, Standing}},
		{"a.listed", Medium, false, []Lifetime{Once, Standing}},
		{"a.listed", High, false, []Lifetime{Once}},
		{"a.listed", Low, true, []Lifetime{Once}},
		{"a.unlisted", Low, false, []Lifetime{Once, OneHour, Standing}},
		{"a.unlisted", Medium, false, []Lifetime{Once, OneHour, Standing}},
		{"a.unlisted", Critical, false, []Lifetime{Once}},
		{"a.raised", Low, false, []Lifetime{Once}},
		{"a.stepup", Low, false, []Lifetime{Once}},
	}
	for _, tt := range tests {
		t.Run(fmt.Sprintf("%s %s tainted %v", tt.action, tt.base, tt.taint), func(t *testing.T) {
			in := step(tt.action, tt.base, true, "x", "y", nil)
			in.Tainted = tt.taint
			got := e.Evaluate(in).Lifetimes
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("Lifetimes mismatch (-want +got):\n%s", diff)
			}
		})
	}
	// A caller appending to the returned slice must not change the next
	// decision.
	d := e.Evaluate(step("a.listed", Low, true, "x", "y", nil))
	_ = append(d.Lifetimes, OneHour)
	if got := e.Evaluate(step("a.listed", Low, true, "x", "y", nil)).Lifetimes; !cmp.Equal(got, []Lifetime{Once, Standing}) {
		t.Errorf("after append, Lifetimes = %v", got)
	}
}

func TestGroups(t *testing.T) {
	e := mustParse(t, `version: 1
groups:
  release-managers: [U1, U2, U3, U2]
  solo: [U7]
  nobody: []
rules:
  - name: mixed
    action: a.mixed
    effect: second_approver
    approvers: ["@release-managers", U4, U2]
  - name: solo
    action: a.solo
    effect: second_approver
    approvers: "@solo"
  - name: nobody
    action: a.nobody
    effect: second_approver
    approvers: ["@nobody"]
`)
	tests := []struct {
		name, action, owner string
		want                Decision
	}{
		{"group and users, deduplicated in order", "a.mixed", "U9", second("mixed", Low, "U1", "U2", "U3", "U4")},
		{"owner is removed", "a.mixed", "U2", second("mixed", Low, "U1", "U3", "U4")},
		{"a named user who is the owner is removed", "a.mixed", "U4", second("mixed", Low, "U1", "U2", "U3")},
		{"someone else", "a.solo", "U1", second("solo", Low, "U7")},
		{"the only approver is the owner", "a.solo", "U7", deny("solo", Low)},
		{"empty group", "a.nobody", "U1", deny("nobody", Low)},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := e.Evaluate(owner(step(tt.action, Low, true, "x", "y", nil), tt.owner))
			if diff := cmp.Diff(tt.want, got, ignoreReason); diff != "" {
				t.Errorf("Evaluate() mismatch (-want +got):\n%s", diff)
			}
		})
	}
}

func TestConcurrentEvaluate(t *testing.T) {
	e := Default()
	inputs := []Input{listPublicPRs, merge, deploy("production"), comment, tainted(listPrivatePRs)}
	want := make([]Decision, len(inputs))
	for i, in := range inputs {
		want[i] = e.Evaluate(in)
	}
	var wg sync.WaitGroup
	errs := make(chan string, 8)
	for g := range 8 {
		wg.Go(func() {
			for i := range 200 {
				k := (g + i) % len(inputs)
				if got := e.Evaluate(inputs[k]); !cmp.Equal(got, want[k]) {
					errs <- fmt.Sprintf("%s: got %+v, want %+v", inputs[k].Action.Name, got, want[k])
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for msg := range errs {
		t.Error(msg)
	}
}

func TestZeroNowUsesTheClock(t *testing.T) {
	e := mustParse(t, "version: 1\nrules:\n  - name: recent\n    when: now > timestamp(\"2020-01-01T00:00:00Z\")\n    effect: allow\n")
	in := listPublicPRs
	in.Now = time.Time{}
	if got := e.Evaluate(in).Rule; got != "recent" {
		t.Errorf("Rule = %q, want recent", got)
	}
}

func TestEnumNames(t *testing.T) {
	for r := Low; r <= Critical; r++ {
		got, err := ParseRisk(r.String())
		if err != nil || got != r {
			t.Errorf("ParseRisk(%q) = %v, %v; want %v", r.String(), got, err, r)
		}
	}
	for e := Deny; e <= SecondApprover; e++ {
		got, err := ParseEffect(e.String())
		if err != nil || got != e {
			t.Errorf("ParseEffect(%q) = %v, %v; want %v", e.String(), got, err, e)
		}
	}
	for l := Once; l <= Standing; l++ {
		got, err := ParseLifetime(l.String())
		if err != nil || got != l {
			t.Errorf("ParseLifetime(%q) = %v, %v; want %v", l.String(), got, err, l)
		}
	}
	if _, err := ParseRisk("severe"); err == nil {
		t.Error("ParseRisk(severe) succeeded")
	}
	if _, err := ParseEffect("permit"); err == nil {
		t.Error("ParseEffect(permit) succeeded")
	}
	if _, err := ParseLifetime("forever"); err == nil {
		t.Error("ParseLifetime(forever) succeeded")
	}
	if got := Risk(7).String(); got != "risk(7)" {
		t.Errorf("Risk(7).String() = %q", got)
	}

	d := Decision{Effect: SecondApprover, Risk: Critical, Lifetimes: []Lifetime{Once}}
	b, err := json.Marshal(d)
	if err != nil {
		t.Fatal(err)
	}
	if s := string(b); !strings.Contains(s, `"Effect":"second_approver"`) || !strings.Contains(s, `"Risk":"critical"`) || !strings.Contains(s, `"Lifetimes":["once"]`) {
		t.Errorf("json = %s, want names, not numbers", s)
	}
	var back Decision
	if err := json.Unmarshal(b, &back); err != nil {
		t.Fatal(err)
	}
	if diff := cmp.Diff(d, back); diff != "" {
		t.Errorf("json round trip mismatch (-want +got):\n%s", diff)
	}
	if _, err := json.Marshal(Risk(9)); err == nil {
		t.Error("marshalling an invalid risk succeeded")
	}
}

// TestZoneCache checks that the calendar functions go through the engine's
// cached zones rather than CEL's per-call load, and that the cache keeps
// only canonical names.
func TestZoneCache(t *testing.T) {
	e := mustParse(t, "version: 1\nrules:\n  - name: hit\n    when: now.getHours(args.tz) >= 0\n    effect: deny\n")
	for _, tz := range []string{"Asia/Tokyo", "+09:00", "+0009:00"} {
		if got := e.Evaluate(withArgs(comment, map[string]any{"tz": tz})); got.Rule != "hit" || got.Err != nil {
			t.Fatalf("zone %q: Evaluate() = %+v", tz, got)
		}
	}
	for tz, want := range map[string]bool{"Asia/Tokyo": true, "+09:00": true, "+0009:00": false} {
		if _, got := zones.Load(tz); got != want {
			t.Errorf("zone %q cached = %v, want %v", tz, got, want)
		}
	}
	// Same answers as CEL's own implementation would give.
	tests := []struct {
		tz   string
		want int
	}{{"Asia/Tokyo", 17}, {"+09:00", 17}, {"-03:30", 4}, {"UTC", 8}}
	for _, tt := range tests {
		loc, err := zone(tt.tz)
		if err != nil {
			t.Fatalf("zone(%q) = %v", tt.tz, err)
		}
		if got := tuesday10.In(loc).Hour(); got != tt.want {
			t.Errorf("hour in %q = %d, want %d", tt.tz, got, tt.want)
		}
	}
	for _, bad := range []string{"Mars/Olympus", "+24:00", "+01:60", "x:y", "../etc/passwd"} {
		if _, err := zone(bad); err == nil {
			t.Errorf("zone(%q) succeeded", bad)
		}
	}
}

// TestResultsInChannel: a rule may let the channel a step was asked in see
// its results (results: channel); every other decision keeps them for the
// person alone.
func TestResultsInChannel(t *testing.T) {
	e := mustParse(t, `version: 1
rules:
  - name: team-calendar
    action: calendar.list_events
    resource: team-calendar
    effect: allow
    results: channel
  - name: reads
    effect: allow
    results: private
`)
	for _, tt := range []struct {
		resource string
		want     bool
	}{{"team-calendar", true}, {"primary", false}} {
		in := step("calendar.list_events", Low, false, "calendar", tt.resource, nil)
		if got := e.Evaluate(in).ResultsInChannel; got != tt.want {
			t.Errorf("ResultsInChannel for %s = %v, want %v", tt.resource, got, tt.want)
		}
	}
}

// TestFactor: a rule may name the second factor its step-up asks for, and
// that factor is in the decision whether the rule asked for step-up itself
// or the risk made it; the policy lists the factors it names.
func TestFactor(t *testing.T) {
	e := mustParse(t, `version: 1
rules:
  - name: merges
    action: github.merge_pull_request
    effect: stepup
    factor: oidc
  - name: deletes
    action: github.delete_branch
    effect: approve
    factor: totp
  - name: rest
    effect: approve
`)
	for _, tt := range []struct {
		action string
		risk   Risk
		want   string
		stepUp bool
	}{
		{"github.merge_pull_request", Medium, FactorOIDC, true},
		{"github.delete_branch", High, FactorTOTP, true},
		{"github.list_issues", High, "", true},
		{"github.list_issues", Low, "", false},
	} {
		d := e.Evaluate(step(tt.action, tt.risk, false, "github", "acme/app", nil))
		if d.Factor != tt.want || d.StepUp != tt.stepUp {
			t.Errorf("%s at %v: factor %q, step-up %v; want %q, %v", tt.action, tt.risk, d.Factor, d.StepUp, tt.want, tt.stepUp)
		}
	}
	if got := e.Factors(); !slices.Equal(got, []string{FactorOIDC, FactorTOTP}) {
		t.Errorf("Factors() = %v", got)
	}
}

// TestApprovalOnThePhone: approval: ciba puts where the owner approves in
// the decision, for this one step (no grant stands in for it or comes of
// it, tainted or not, and whatever the risk made of the effect), and names
// CIBA among the factors the deployment must offer.
func TestApprovalOnThePhone(t *testing.T) {
	e := mustParse(t, `version: 1
rules:
  - name: deploys
    action: github.deploy
    effect: approve
    approval: ciba
  - name: merges
    action: github.merge_pull_request
    effect: stepup
    factor: ciba
  - name: rest
    effect: approve
`)
	for _, tt := range []struct {
		action  string
		risk    Risk
		tainted bool
	}{{"github.deploy", Medium, false}, {"github.deploy", Medium, true}, {"github.deploy", High, false}} {
		d := e.Evaluate(step(tt.action, tt.risk, tt.tainted, "github", "acme/app", nil))
		if d.Approval != ApprovalCIBA || d.GrantOK || !slices.Equal(d.Lifetimes, []Lifetime{Once}) {
			t.Errorf("%s at %v (tainted %v): approval %q, grant ok %v, lifetimes %v", tt.action, tt.risk, tt.tainted, d.Approval, d.GrantOK, d.Lifetimes)
		}
	}
	if d := e.Evaluate(step("github.merge_pull_request", Medium, false, "github", "acme/app", nil)); d.Factor != FactorCIBA || d.Approval != "" {
		t.Errorf("merge: factor %q, approval %q", d.Factor, d.Approval)
	}
	if d := e.Evaluate(step("github.list_issues", Medium, false, "github", "acme/app", nil)); d.Approval != "" || !d.GrantOK {
		t.Errorf("another step: approval %q, grant ok %v", d.Approval, d.GrantOK)
	}
	if got := e.Factors(); !slices.Equal(got, []string{FactorCIBA}) {
		t.Errorf("Factors() = %v, want ciba", got)
	}
}
