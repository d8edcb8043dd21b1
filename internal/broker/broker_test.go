package broker

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agenthub/agenthub/internal/agent/slackagent"
	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/sim"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

func TestPublicReadRuns(t *testing.T) {
	f := newFixture(t)
	o := only(t, f.handle(alice, "list open pull requests in acme/website"), KindResult)
	if o.Action != "github.list_pull_requests" || o.Resource != "acme/website" {
		t.Errorf("result = %s on %s, want github.list_pull_requests on acme/website", o.Action, o.Resource)
	}
	if got := f.calls(http.MethodGet, "/repos/acme/website/pulls"); got != 1 {
		t.Errorf("list calls = %d, want 1", got)
	}
	for _, c := range f.world.Calls() {
		if c.Method != http.MethodGet {
			t.Errorf("unexpected %s %s", c.Method, c.Path)
		}
	}
	var kinds []audit.Kind
	for _, e := range f.events(o.RequestID) {
		kinds = append(kinds, e.Kind)
	}
	for _, want := range []audit.Kind{audit.StepProposed, audit.PolicyDecided, audit.TokenIssued, audit.ProviderCalled, audit.ActionSucceeded} {
		if !slices.Contains(kinds, want) {
			t.Errorf("audit kinds for the request = %v, missing %s", kinds, want)
		}
	}
}

func TestInvalidArgsRunNothing(t *testing.T) {
	f := newFixture(t)
	// The planner reads this, but the schema refuses PR 0.
	outs := f.handle(alice, "merge PR 0 in acme/payments")
	o := only(t, outs, KindError)
	if !strings.Contains(o.Text, "number") {
		t.Errorf("error text = %q, want it to name the field", o.Text)
	}
	if n := len(f.world.Calls()); n != 0 {
		t.Errorf("sim calls = %d, want 0", n)
	}
}

func TestNotConnectedAsksToConnect(t *testing.T) {
	f := newFixture(t)
	o := only(t, f.handle(alice, "post 'hello' to #general"), KindConnect)
	if o.Service != "slack" {
		t.Errorf("connect service = %q, want slack", o.Service)
	}
	if n := len(f.world.Calls()); n != 0 {
		t.Errorf("sim calls = %d, want 0", n)
	}
}

func TestCommentNeedsApprovalAndRunsOnce(t *testing.T) {
	f := newFixture(t)
	a := f.approval("comment 'LGTM' on PR 12 in acme/website")
	want := []Choice{{ChoiceOnce, "Approve once"}, {ChoiceHour, "Approve for 1 hour"}, {ChoiceStanding, "Approve until revoked"}, {ChoiceDeny, "Deny"}}
	if diff := cmp.Diff(want, a.Choices); diff != "" {
		t.Errorf("choices (-want +got):\n%s", diff)
	}
	if a.Rule != "writes-need-approval" {
		t.Errorf("rule = %q, want writes-need-approval", a.Rule)
	}
	if got := f.calls(http.MethodPost, commentPath); got != 0 {
		t.Fatalf("comments before approval = %d, want 0", got)
	}
	if got := f.request(a.RequestID).Status; got != StatusPending {
		t.Errorf("status = %s, want pending", got)
	}
	only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindResult)
	only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindMessage) // already decided
	if got := f.calls(http.MethodPost, commentPath); got != 1 {
		t.Errorf("comments = %d, want 1", got)
	}
	if got := f.request(a.RequestID).Status; got != StatusSucceeded {
		t.Errorf("status = %s, want succeeded", got)
	}
	pr, _ := f.world.GitHub().PullRequest("acme/website", 12)
	if len(pr.Comments) != 1 || pr.Comments[0].Body != "LGTM" {
		t.Errorf("PR comments = %+v, want one LGTM", pr.Comments)
	}
}

func TestDenyRunsNothing(t *testing.T) {
	f := newFixture(t)
	a := f.approval("comment 'LGTM' on PR 12 in acme/website")
	only(t, f.decide(alice, a.RequestID, ChoiceDeny), KindMessage)
	only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindMessage)
	if got := f.calls(http.MethodPost, commentPath); got != 0 {
		t.Errorf("comments = %d, want 0", got)
	}
	if got := f.request(a.RequestID).Status; got != StatusDenied {
		t.Errorf("status = %s, want denied", got)
	}
}

func TestConcurrentDecideRunsOnce(t *testing.T) {
	f := newFixture(t)
	a := f.approval("comment 'LGTM' on PR 12 in acme/website")
	const n = 50
	var (
		wg      sync.WaitGroup
		mu      sync.Mutex
		results int
	)
	for range n {
		wg.Go(func() {
			outs, err := f.b.Decide(f.ctx, Decision{RequestID: a.RequestID, Actor: alice, Choice: ChoiceOnce})
			if err != nil {
				t.Errorf("Decide: %v", err)
			}
			mu.Lock()
			defer mu.Unlock()
			for _, o := range outs {
				if o.Kind == KindResult {
					results++
				}
			}
		})
	}
	wg.Wait()
	if got := f.calls(http.MethodPost, commentPath); got != 1 {
		t.Errorf("comments = %d, want 1", got)
	}
	if results != 1 {
		t.Errorf("result outputs = %d, want 1", results)
	}
}

func TestStrangerCannotDecide(t *testing.T) {
	f := newFixture(t)
	a := f.approval("comment 'LGTM' on PR 12 in acme/website")
	for _, choice := range []string{ChoiceOnce, ChoiceDeny} {
		only(t, f.decide(bob, a.RequestID, choice), KindError)
	}
	outs, err := f.b.StepUp(f.ctx, a.RequestID, bob, "123456")
	if err != nil {
		t.Fatalf("StepUp: %v", err)
	}
	only(t, outs, KindError)
	if got := f.calls(http.MethodPost, commentPath); got != 0 {
		t.Errorf("comments = %d, want 0", got)
	}
	if got := f.request(a.RequestID).Status; got != StatusPending {
		t.Errorf("status = %s, want still pending", got)
	}
	// The first refusal of each kind is recorded at once, about the
	// request; the repeated decide is counted, and recorded once its
	// window is over.
	rejected := f.count(a.RequestID, func(e audit.Event) bool { return e.Kind == audit.InteractionRejected && e.Actor == bob.String() })
	if rejected != 2 {
		t.Errorf("interaction.rejected events about the request by bob = %d, want 2 (decide, stepup)", rejected)
	}
	f.clock.Advance(RefusalWindow)
	if err := f.b.FlushRefusals(f.ctx); err != nil {
		t.Fatal(err)
	}
	if got := f.refusals(bob.String()); got != 3 {
		t.Errorf("refusals of bob counted in the trail = %d, want 3", got)
	}
	only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindResult) // the owner still can
}

func TestMergeNeedsStepUpOnce(t *testing.T) {
	f := newFixture(t)
	a := f.approval("merge PR 7 in acme/payments")
	if diff := cmp.Diff([]Choice{{ChoiceOnce, "Approve once"}, {ChoiceDeny, "Deny"}}, a.Choices); diff != "" {
		t.Errorf("high-risk choices (-want +got):\n%s", diff)
	}
	// A reusable lifetime is not on offer, so it is refused.
	only(t, f.decide(alice, a.RequestID, ChoiceHour), KindError)
	only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindStepUp)
	merged := func() bool {
		pr, _ := f.world.GitHub().PullRequest("acme/payments", 7)
		return pr.Merged
	}
	if merged() || f.calls(http.MethodPut, mergePath) != 0 {
		t.Fatal("approval alone merged the PR")
	}
	code := f.code()
	wrong := "000000"
	if code == wrong {
		wrong = "000001"
	}
	outs, err := f.b.StepUp(f.ctx, a.RequestID, alice, wrong)
	if err != nil {
		t.Fatalf("StepUp wrong code: %v", err)
	}
	only(t, outs, KindStepUp)
	if merged() {
		t.Fatal("a wrong code merged the PR")
	}
	outs, err = f.b.StepUp(f.ctx, a.RequestID, alice, code)
	if err != nil {
		t.Fatalf("StepUp: %v", err)
	}
	only(t, outs, KindResult)
	if !merged() {
		t.Fatal("the right code did not merge the PR")
	}

	// The same code cannot authorize a second merge.
	b := f.approval("merge PR 8 in acme/payments")
	only(t, f.decide(alice, b.RequestID, ChoiceOnce), KindStepUp)
	outs, err = f.b.StepUp(f.ctx, b.RequestID, alice, code)
	if err != nil {
		t.Fatalf("StepUp replay: %v", err)
	}
	if o := only(t, outs, KindStepUp); !strings.Contains(o.Text, "already used") {
		t.Errorf("replay answer = %q, want it to say the code was used", o.Text)
	}
	if got := f.calls(http.MethodPut, mergePath); got != 1 {
		t.Errorf("merge calls = %d, want 1", got)
	}
	if got := f.request(b.RequestID).Status; got != StatusAwaitingStepUp {
		t.Errorf("second request status = %s, want awaiting_stepup", got)
	}
}

func TestApprovalDoesNotCarryOver(t *testing.T) {
	f := newFixture(t)
	a := f.approval("comment 'first' on PR 12 in acme/website")
	only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindResult)

	// A once-approval covers nothing else, not even the same comment.
	for _, text := range []string{"comment 'second' on PR 12 in acme/website", "comment 'first' on PR 12 in acme/website"} {
		f.approval(text)
	}
	if got := f.calls(http.MethodPost, commentPath); got != 1 {
		t.Fatalf("comments = %d, want 1", got)
	}

	// A one-hour grant covers comments on the same repository…
	g := f.approval("comment 'third' on PR 12 in acme/website")
	only(t, f.decide(alice, g.RequestID, ChoiceHour), KindResult)
	only(t, f.handle(alice, "comment 'fourth' on PR 12 in acme/website"), KindResult)
	if got := f.calls(http.MethodPost, commentPath); got != 3 {
		t.Errorf("comments = %d, want 3", got)
	}
	grants, err := f.b.Grants(f.ctx, alice)
	if err != nil || len(grants) != 1 || grants[0].Action != "github.comment" || grants[0].Resource != "acme/website" {
		t.Fatalf("Grants = %+v, %v; want one github.comment grant on acme/website", grants, err)
	}
	// …but not another action on it, nor the same action elsewhere…
	f.approval("merge PR 12 in acme/website")
	f.approval("comment 'x' on PR 7 in acme/payments")
	// …and not after it expires.
	f.clock.Advance(time.Hour + time.Second)
	f.approval("comment 'fifth' on PR 12 in acme/website")
	if got := f.calls(http.MethodPut, mergePath); got != 0 {
		t.Errorf("merge calls = %d, want 0", got)
	}
	if got := f.calls(http.MethodPost, commentPath); got != 3 {
		t.Errorf("comments = %d, want 3", got)
	}
}

func TestChangedStoredArgsDoNotRun(t *testing.T) {
	f := newFixture(t)
	a := f.approval("comment 'harmless' on PR 12 in acme/website")
	k := requestKey(alice, a.RequestID)
	it, err := f.st.Get(f.ctx, k)
	if err != nil {
		t.Fatalf("get request: %v", err)
	}
	changed := bytes.Replace(it.Value, []byte("harmless"), []byte("evil"), 1)
	if bytes.Equal(changed, it.Value) {
		t.Fatal("stored request does not hold the body")
	}
	if err := f.st.Put(f.ctx, k, changed, time.Hour); err != nil {
		t.Fatalf("put request: %v", err)
	}
	outs, err := f.b.Decide(f.ctx, Decision{RequestID: a.RequestID, Actor: alice, Choice: ChoiceOnce})
	if err == nil {
		t.Error("Decide of a changed request returned no error")
	}
	only(t, outs, KindError)
	if got := f.calls(http.MethodPost, commentPath); got != 0 {
		t.Errorf("comments = %d, want 0", got)
	}
}

func TestRevokeCancelsAndBlocks(t *testing.T) {
	f := newFixture(t)
	g := f.approval("comment 'one' on PR 12 in acme/website")
	only(t, f.decide(alice, g.RequestID, ChoiceStanding), KindResult)
	a := f.approval("comment 'LGTM' on PR 7 in acme/payments")
	m := f.approval("merge PR 7 in acme/payments")
	only(t, f.decide(alice, m.RequestID, ChoiceOnce), KindStepUp)
	before := len(f.world.Calls())

	outs, err := f.b.Revoke(f.ctx, alice, "github")
	if err != nil {
		t.Fatalf("Revoke: %v", err)
	}
	o := only(t, outs, KindMessage)
	if !strings.Contains(o.Text, "2 open request(s) canceled, 1 grant(s) removed") {
		t.Errorf("revoke text = %q", o.Text)
	}
	if got, want := slices.Sorted(slices.Values(o.Requests)), slices.Sorted(slices.Values([]string{a.RequestID, m.RequestID})); !slices.Equal(got, want) {
		t.Errorf("revoke output's canceled requests = %v, want %v", got, want)
	}
	for _, id := range []string{a.RequestID, m.RequestID} {
		if got := f.request(id).Status; got != StatusCanceled {
			t.Errorf("status of %s = %s, want canceled", id, got)
		}
	}
	only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindMessage)
	su, err := f.b.StepUp(f.ctx, m.RequestID, alice, f.code())
	if err != nil {
		t.Fatalf("StepUp: %v", err)
	}
	only(t, su, KindMessage)
	only(t, f.handle(alice, "comment 'two' on PR 12 in acme/website"), KindConnect)
	only(t, f.handle(alice, "list open pull requests in acme/website"), KindConnect)
	if got := len(f.world.Calls()); got != before {
		t.Errorf("sim calls after revoke = %d, want %d (none)", got, before)
	}
	if gs, err := f.b.Grants(f.ctx, alice); err != nil || len(gs) != 0 {
		t.Errorf("Grants after revoke = %+v, %v; want none", gs, err)
	}
	revoked := f.count(g.RequestID, ofKind(audit.GrantRevoked))
	if revoked != 1 {
		t.Errorf("grant.revoked events = %d, want 1", revoked)
	}
}

func TestPendingSurvivesRestart(t *testing.T) {
	f := newFixture(t)
	a := f.approval("comment 'after restart' on PR 12 in acme/website")
	old := f.b
	f.b = f.newBroker()
	pending, err := f.b.Pending(f.ctx, alice)
	if err != nil || len(pending) != 1 || pending[0].ID != a.RequestID {
		t.Fatalf("Pending = %+v, %v; want the one request", pending, err)
	}
	only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindResult)
	f.b = old
	only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindMessage)
	if got := f.calls(http.MethodPost, commentPath); got != 1 {
		t.Errorf("comments = %d, want 1", got)
	}
	if pending, _ := f.b.Pending(f.ctx, alice); len(pending) != 0 {
		t.Errorf("Pending after run = %d requests, want 0", len(pending))
	}
}

func TestExpiredRequestDoesNotRun(t *testing.T) {
	f := newFixture(t)
	a := f.approval("comment 'late' on PR 12 in acme/website")
	f.clock.Advance(DefaultRequestTTL + time.Minute)
	only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindError)
	if got := f.calls(http.MethodPost, commentPath); got != 0 {
		t.Errorf("comments = %d, want 0", got)
	}
}

func TestAuditFailureFailsClosed(t *testing.T) {
	down := errors.New("disk full")
	tests := []struct {
		name string
		run  func(t *testing.T, f *fixture) // breaks the audit trail and tries
	}{
		{"store down before a read", func(t *testing.T, f *fixture) {
			f.auditSt.FailWrites(down)
			outs, err := f.b.Handle(f.ctx, Message{Principal: alice, Text: "list open pull requests in acme/website"})
			if err == nil {
				t.Error("Handle returned no error")
			}
			only(t, outs, KindError)
		}},
		{"store down at approval", func(t *testing.T, f *fixture) {
			a := f.approval("comment 'LGTM' on PR 12 in acme/website")
			f.auditSt.FailWrites(down)
			outs, err := f.b.Decide(f.ctx, Decision{RequestID: a.RequestID, Actor: alice, Choice: ChoiceOnce})
			if err == nil {
				t.Error("Decide returned no error")
			}
			only(t, outs, KindError)
			f.auditSt.FailWrites(nil)
			only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindMessage) // an unrecorded approval is spent
		}},
		{"policy decision unrecorded", func(t *testing.T, f *fixture) {
			f.audit = failingKind{kind: audit.PolicyDecided, next: f.rec}
			outs, err := f.b.Handle(f.ctx, Message{Principal: alice, Text: "list open pull requests in acme/website"})
			if err == nil {
				t.Error("Handle returned no error")
			}
			only(t, outs, KindError)
		}},
		{"policy decision at execution unrecorded", func(t *testing.T, f *fixture) {
			a := f.approval("comment 'LGTM' on PR 12 in acme/website")
			f.audit = failingKind{kind: audit.PolicyDecided, next: f.rec}
			outs, err := f.b.Decide(f.ctx, Decision{RequestID: a.RequestID, Actor: alice, Choice: ChoiceOnce})
			if err == nil {
				t.Error("Decide returned no error")
			}
			only(t, outs, KindError)
			if got := f.request(a.RequestID).Status; got != StatusFailed {
				t.Errorf("status = %s, want failed", got)
			}
		}},
		{"approval unrecorded", func(t *testing.T, f *fixture) {
			a := f.approval("comment 'LGTM' on PR 12 in acme/website")
			f.audit = failingKind{kind: audit.ApprovalGranted, next: f.rec}
			if _, err := f.b.Decide(f.ctx, Decision{RequestID: a.RequestID, Actor: alice, Choice: ChoiceOnce}); err == nil {
				t.Error("Decide returned no error")
			}
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			f := newFixture(t)
			tt.run(t, f)
			if got := f.calls(http.MethodGet, "/pulls"); got != 0 {
				t.Errorf("list calls = %d, want 0", got)
			}
			if got := f.calls(http.MethodPost, commentPath); got != 0 {
				t.Errorf("comments = %d, want 0", got)
			}
		})
	}
}

func TestCanaryTokensNeverShow(t *testing.T) {
	f := newFixture(t)
	f.connect(alice, "slack", "channels:read", "chat:write")
	var outs []Output
	add := func(o []Output, err error) []Output {
		t.Helper()
		if err != nil {
			t.Fatalf("broker call: %v", err)
		}
		outs = append(outs, o...)
		return o
	}
	add(f.b.Handle(f.ctx, Message{Principal: alice, Text: "list open pull requests in acme/payments"}))
	add(f.b.Handle(f.ctx, Message{Principal: alice, Text: "list channels"}))
	c := add(f.b.Handle(f.ctx, Message{Principal: alice, Text: "post 'deploy done' to #deploys"}))
	add(f.b.Decide(f.ctx, Decision{RequestID: c[0].RequestID, Actor: alice, Choice: ChoiceOnce}))
	m := add(f.b.Handle(f.ctx, Message{Principal: alice, Text: "merge PR 7 in acme/payments"}))
	add(f.b.Decide(f.ctx, Decision{RequestID: m[0].RequestID, Actor: bob, Choice: ChoiceOnce}))
	add(f.b.Decide(f.ctx, Decision{RequestID: m[0].RequestID, Actor: alice, Choice: ChoiceOnce}))
	add(f.b.StepUp(f.ctx, m[0].RequestID, alice, f.code()))
	f.clock.Advance(11 * time.Minute) // past the access tokens' life: the next call refreshes
	add(f.b.Handle(f.ctx, Message{Principal: alice, Text: "list open pull requests in acme/website"}))
	add(f.b.Revoke(f.ctx, alice, "github"))

	if got := outs[len(outs)-2].Kind; got != KindResult {
		t.Errorf("read after refresh = %s, want result (outputs %s)", got, dump(outs))
	}
	if pr, _ := f.world.GitHub().PullRequest("acme/payments", 7); !pr.Merged {
		t.Error("scenario did not merge PR 7")
	}
	if f.logs.Len() == 0 {
		t.Error("nothing was logged, so the log check proves nothing")
	}
	shown, err := json.Marshal(outs)
	if err != nil {
		t.Fatalf("marshal outputs: %v", err)
	}
	var export bytes.Buffer
	if _, err := audit.Export(f.ctx, f.auditSt, audit.DefaultLog, 0, &export); err != nil {
		t.Fatalf("export audit: %v", err)
	}
	for i, secret := range f.secrets {
		if len(secret) < 8 {
			t.Fatalf("secret %d is too short to be a canary", i)
		}
		if bytes.Contains(shown, []byte(secret)) {
			t.Errorf("secret %d appears in the outputs", i)
		}
		if bytes.Contains(export.Bytes(), []byte(secret)) {
			t.Errorf("secret %d appears in the audit export", i)
		}
		if bytes.Contains(f.logs.Bytes(), []byte(secret)) {
			t.Errorf("secret %d appears in the logs", i)
		}
	}
}

func TestRequestsAreFoundByIDOnly(t *testing.T) {
	f := newFixture(t)
	a := f.approval("comment 'LGTM' on PR 12 in acme/website")
	it, err := f.st.Get(f.ctx, store.Key{Kind: ownerKind, ID: a.RequestID})
	if err != nil || string(it.Value) != alice.String() {
		t.Fatalf("owner pointer = %q, %v; want %s", it.Value, err, alice)
	}
	for _, id := range []string{"", "nope", "a\nb"} {
		only(t, f.decide(alice, id, ChoiceOnce), KindError)
	}
}

// TestSlackPostFindsItsChannel pins that resource discovery can read Slack:
// its Web API reads are POSTs (conversations.list), which the read-only
// discovery client must let through while still refusing writes.
func TestSlackPostFindsItsChannel(t *testing.T) {
	f := newFixture(t)
	f.connect(alice, sim.ServiceSlack, slackagent.ScopeChannelsRead, slackagent.ScopeChatWrite)
	a := f.approval("post 'deploy done' to #deploys")
	if a.Resource != "#deploys" && a.Resource != "deploys" && !strings.Contains(a.Resource, "deploys") {
		t.Errorf("resource = %q, want the #deploys channel", a.Resource)
	}
	if got := f.calls(http.MethodPost, "chat.postMessage"); got != 0 {
		t.Fatalf("messages before approval = %d, want 0", got)
	}
	only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindResult)
	if got := f.calls(http.MethodPost, "chat.postMessage"); got != 1 {
		t.Fatalf("messages after approval = %d, want 1", got)
	}
}

func TestDiscoveryClientOnlyReads(t *testing.T) {
	tests := []struct {
		method, url string
		read        bool
	}{
		{http.MethodGet, "https://api.github.com/repos/acme/payments", true},
		{http.MethodHead, "https://api.github.com/repos/acme/payments", true},
		{http.MethodPost, "https://slack.com/api/conversations.list", true},
		{http.MethodPost, "https://slack.com/api/conversations.info", true},
		{http.MethodPost, "https://slack.com/api/chat.postMessage", false},
		{http.MethodPost, "https://slack.com/api/conversations.archive", false},
		{http.MethodPost, "https://api.github.com/repos/acme/payments/issues", false},
		{http.MethodPut, "https://api.github.com/repos/acme/payments/pulls/7/merge", false},
		{http.MethodDelete, "https://api.github.com/repos/acme/website/git/refs/heads/x", false},
		{http.MethodPost, "https://example.com/a.b.list", false},
	}
	for _, tt := range tests {
		t.Run(tt.method+" "+tt.url, func(t *testing.T) {
			req, err := http.NewRequest(tt.method, tt.url, nil)
			if err != nil {
				t.Fatal(err)
			}
			if got := isRead(req); got != tt.read {
				t.Fatalf("isRead = %v, want %v", got, tt.read)
			}
		})
	}
}

// pushFirst is a transport that pushes a commit to a branch just before it
// forwards the first merge it sees: a push that lands between the broker's
// last look at the pull request and the merge itself.
type pushFirst struct {
	next         http.RoundTripper
	world        *sim.World
	repo, branch string
	pushed       bool
}

func (p *pushFirst) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == http.MethodPut && strings.HasSuffix(r.URL.Path, mergePath) && !p.pushed {
		p.pushed = true
		p.world.Push(p.repo, p.branch)
	}
	return p.next.RoundTrip(r)
}

// TestMergeNeverLandsAnUnapprovedCommit: a commit pushed after the broker's
// re-check, right before the merge call, is not merged: the merge names the
// approved head commit and GitHub refuses it.
func TestMergeNeverLandsAnUnapprovedCommit(t *testing.T) {
	f := newFixtureWith(t, nil, true)
	push := &pushFirst{next: f.simTime.next, world: f.world, repo: "acme/payments", branch: "fix-rounding"}
	f.simTime.next = push
	a := f.approval("merge PR 7 in acme/payments")
	only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindStepUp)
	o := only(t, f.stepUp(a.RequestID, alice), KindError)
	if !push.pushed {
		t.Fatal("the merge call was never made")
	}
	if pr, _ := f.world.GitHub().PullRequest("acme/payments", 7); pr.Merged {
		t.Fatalf("a commit pushed after the approval was merged (output %q)", o.Text)
	}
	if got := f.request(a.RequestID).Status; got != StatusFailed {
		t.Errorf("status = %s, want failed", got)
	}
	if f.count(a.RequestID, ofKind(audit.ActionFailed)) == 0 {
		t.Error("no action.failed event")
	}
}

// TestMergeRefusedWhenThePullRequestMoved: the approval and the code cover
// the pull request as it was; a commit pushed after the approval means the
// merge does not run, and the person is asked to approve again.
func TestMergeRefusedWhenThePullRequestMoved(t *testing.T) {
	f := newFixture(t)
	a := f.approval("merge PR 7 in acme/payments")
	only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindStepUp)
	if _, ok := f.world.Push("acme/payments", "fix-rounding"); !ok {
		t.Fatal("push to fix-rounding failed")
	}
	outs, err := f.b.StepUp(f.ctx, a.RequestID, alice, f.code())
	if err != nil {
		t.Fatalf("StepUp: %v", err)
	}
	o := only(t, outs, KindError)
	if !strings.Contains(o.Text, "changed after you approved") {
		t.Errorf("output = %q, want it to say the pull request changed", o.Text)
	}
	if got := f.calls(http.MethodPut, mergePath); got != 0 {
		t.Fatalf("merges = %d, want 0", got)
	}
	if got := f.request(a.RequestID).Status; got != StatusFailed {
		t.Errorf("status = %s, want failed", got)
	}
	if f.count(a.RequestID, failedWith("resource_changed")) == 0 {
		t.Error("no action.failed resource_changed event")
	}
	// Approved again as it is now, it runs.
	b := f.approval("merge PR 7 in acme/payments")
	only(t, f.decide(alice, b.RequestID, ChoiceOnce), KindStepUp)
	f.clock.Advance(30 * time.Second) // a fresh code
	outs, err = f.b.StepUp(f.ctx, b.RequestID, alice, f.code())
	if err != nil {
		t.Fatalf("StepUp: %v", err)
	}
	only(t, outs, KindResult)
}

func TestRevokeGrantAsksAgain(t *testing.T) {
	f := newFixture(t)
	g := f.approval("comment 'one' on PR 12 in acme/website")
	only(t, f.decide(alice, g.RequestID, ChoiceStanding), KindResult)
	gs, err := f.b.Grants(f.ctx, alice)
	if err != nil || len(gs) != 1 {
		t.Fatalf("Grants = %+v, %v; want one", gs, err)
	}
	// Another person cannot remove alice's grant by naming its ID: grants
	// live under their owner.
	if outs, err := f.b.RevokeGrant(f.ctx, bob, gs[0].ID); err != nil || outs[0].Kind != KindMessage {
		t.Fatalf("RevokeGrant by bob = %s, %v", dump(outs), err)
	}
	if gs2, _ := f.b.Grants(f.ctx, alice); len(gs2) != 1 {
		t.Fatalf("bob's RevokeGrant removed alice's grant")
	}
	outs, err := f.b.RevokeGrant(f.ctx, alice, gs[0].ID)
	if err != nil {
		t.Fatalf("RevokeGrant: %v", err)
	}
	only(t, outs, KindMessage)
	only(t, f.handle(alice, "comment 'two' on PR 12 in acme/website"), KindApproval)
	revoked := f.count(g.RequestID, ofKind(audit.GrantRevoked))
	if revoked != 1 {
		t.Errorf("grant.revoked events = %d, want 1", revoked)
	}
	if outs, err := f.b.RevokeGrant(f.ctx, alice, "no-such-grant"); err != nil || !strings.Contains(outs[0].Text, "already gone") {
		t.Errorf("RevokeGrant of an unknown ID = %s, %v; want already gone", dump(outs), err)
	}
}

func TestLookup(t *testing.T) {
	f := newFixture(t)
	a := f.approval("comment 'LGTM' on PR 7 in acme/payments")
	r, err := f.b.Lookup(f.ctx, a.RequestID)
	if err != nil || r.Principal != alice || r.Status != StatusPending {
		t.Fatalf("Lookup = %+v, %v", r, err)
	}
	if _, err := f.b.Lookup(f.ctx, "nope"); !errors.Is(err, ErrNoRequest) {
		t.Errorf("Lookup(unknown) err = %v, want ErrNoRequest", err)
	}
}

// cancelOn cancels a context when a request matching method and path
// suffix is sent, as an adapter's deadline might strike mid-call.
type cancelOn struct {
	next   http.RoundTripper
	cancel context.CancelFunc
	method string
	suffix string
}

func (c cancelOn) RoundTrip(r *http.Request) (*http.Response, error) {
	if r.Method == c.method && strings.HasSuffix(r.URL.Path, c.suffix) {
		c.cancel()
	}
	return c.next.RoundTrip(r)
}

// TestOutcomeRecordedWhenTheCallersContextEnds: the caller's context ends
// during the provider call (the Slack app gives each envelope a deadline).
// The outcome must still reach the audit trail and the request must still
// leave executing: a step that may have run is never left unrecorded.
func TestOutcomeRecordedWhenTheCallersContextEnds(t *testing.T) {
	f := newFixtureWith(t, memstore.New(memstore.Options{}), true)
	a := f.approval("comment 'LGTM' on PR 7 in acme/payments")
	ctx, cancel := context.WithCancel(f.ctx)
	defer cancel()
	f.simTime.next = cancelOn{next: f.simTime.next, cancel: cancel, method: http.MethodPost, suffix: "/comments"}
	f.b.Decide(ctx, Decision{RequestID: a.RequestID, Actor: alice, Choice: ChoiceOnce})
	if got := f.request(a.RequestID).Status; got != StatusSucceeded && got != StatusFailed {
		t.Fatalf("request status = %s, want succeeded or failed", got)
	}
	outcomes := f.count(a.RequestID, func(e audit.Event) bool { return e.Kind == audit.ActionSucceeded || e.Kind == audit.ActionFailed })
	if outcomes != 1 {
		t.Errorf("outcome events = %d, want 1", outcomes)
	}
}

// TestResultPrivacy: a result is marked private unless its resource is
// public to everyone, or the deciding rule lets the channel see it.
func TestResultPrivacy(t *testing.T) {
	f := newFixture(t)
	if o := only(t, f.handle(alice, "list open pull requests in acme/website"), KindResult); o.Private {
		t.Error("a public repository's pull requests marked private")
	}
	a := f.approval("list open pull requests in acme/payments")
	if o := only(t, f.decide(alice, a.RequestID, ChoiceStanding), KindResult); !o.Private {
		t.Error("a private repository's pull requests (approved) not marked private")
	}
	if o := only(t, f.handle(alice, "list open pull requests in acme/payments"), KindResult); !o.Private {
		t.Error("a private repository's pull requests (by a grant) not marked private")
	}
	withPolicy(t, f, []byte(`version: 1
rules:
  - name: team-repos
    action: github.list_pull_requests
    effect: allow
    results: channel
  - name: default
    effect: deny
`))
	if o := only(t, f.handle(alice, "list open pull requests in acme/payments"), KindResult); o.Private {
		t.Error("results: channel did not let the channel see the result")
	}
}

// TestGuestsAndOutsidersMayNotWrite: what the adapter knows of the asker
// reaches the policy, which refuses guests and outsiders every write; a
// request keeps the asker's traits for the decision at execution.
func TestGuestsAndOutsidersMayNotWrite(t *testing.T) {
	f := newFixture(t)
	for _, traits := range []Traits{{Guest: true}, {External: true}} {
		outs, err := f.b.Handle(f.ctx, Message{Principal: alice, Traits: traits, Text: "comment 'x' on PR 12 in acme/website"})
		if err != nil {
			t.Fatal(err)
		}
		if o := only(t, outs, KindError); o.Rule != "guests-and-outsiders-do-not-write" {
			t.Errorf("%+v: refused by %q, want the guests rule", traits, o.Rule)
		}
		outs, err = f.b.Handle(f.ctx, Message{Principal: alice, Traits: traits, Text: "list open pull requests in acme/website"})
		if err != nil || len(outs) != 1 || outs[0].Kind != KindResult {
			t.Errorf("%+v: a public read = %s, %v; want its result", traits, dump(outs), err)
		}
	}
	outs, err := f.b.Handle(f.ctx, Message{Principal: alice, Traits: Traits{Guest: true}, Text: "list open pull requests in acme/payments"})
	if err != nil {
		t.Fatal(err)
	}
	if r := f.request(only(t, outs, KindApproval).RequestID); !r.Traits.Guest {
		t.Errorf("stored traits = %+v, want the guest's", r.Traits)
	}
}

// directory is a Directory whose answers a test sets.
type directory struct {
	mu     sync.Mutex
	traits map[Principal]Traits
	err    error
}

func (d *directory) Traits(_ context.Context, p Principal) (Traits, error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.traits[p], d.err
}

func (d *directory) set(p Principal, t Traits, err error) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.traits == nil {
		d.traits = map[Principal]Traits{}
	}
	d.traits[p], d.err = t, err
}

// TestTheDirectoryIsAskedAtEveryDecision: someone made a guest after
// asking cannot have their earlier write run (the policy, deciding again
// just before it runs, sees them as they are now), and when the directory
// cannot say who someone is, nothing runs.
func TestTheDirectoryIsAskedAtEveryDecision(t *testing.T) {
	f := newFixture(t)
	dir := &directory{}
	f.dir = dir
	f.b = f.newBroker()
	a := f.approval("comment 'LGTM' on PR 12 in acme/website")
	dir.set(alice, Traits{Guest: true}, nil)
	o := only(t, f.decide(alice, a.RequestID, ChoiceOnce), KindError)
	if !strings.Contains(o.Text, "guests-and-outsiders-do-not-write") {
		t.Errorf("a write approved by someone now a guest = %q, want the guests rule's refusal", o.Text)
	}
	if got := f.calls(http.MethodPost, commentPath); got != 0 {
		t.Errorf("comments = %d, want 0", got)
	}
	dir.set(alice, Traits{}, errors.New("users.info unavailable"))
	outs, err := f.b.Handle(f.ctx, Message{Principal: alice, Text: "list open pull requests in acme/website"})
	if err == nil || len(outs) != 1 || outs[0].Kind != KindError || f.calls(http.MethodGet, "/repos/acme/website/pulls") != 0 {
		t.Errorf("with no answer from the directory: %s, %v; want nothing run and the error", dump(outs), err)
	}
}

// TestDirectoryDownAtExecutionFailsTheRequestOnTheRecord: an approved step
// whose asker the directory cannot look up just before it runs does not
// run, and the trail says why; the request ends failed rather than hang.
func TestDirectoryDownAtExecutionFailsTheRequestOnTheRecord(t *testing.T) {
	f := newFixture(t)
	dir := &directory{}
	f.dir = dir
	f.b = f.newBroker()
	a := f.approval("comment 'LGTM' on PR 12 in acme/website")
	dir.set(alice, Traits{}, errors.New("users.info unavailable"))
	outs, err := f.b.Decide(f.ctx, Decision{RequestID: a.RequestID, Actor: alice, Choice: ChoiceOnce})
	if err == nil {
		t.Errorf("approval with the directory down: no error")
	}
	only(t, outs, KindError)
	if got := f.calls(http.MethodPost, commentPath); got != 0 {
		t.Errorf("comments = %d, want 0", got)
	}
	if got := f.count(a.RequestID, failedWith("directory_unavailable")); got != 1 {
		t.Errorf("action.failed directory_unavailable = %d, want 1", got)
	}
	if got := f.request(a.RequestID).Status; got != StatusFailed {
		t.Errorf("status = %s, want failed", got)
	}
}
