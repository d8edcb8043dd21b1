package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/sim"
	"github.com/agenthub/agenthub/internal/store"
)

// writePolicy writes a policy file into a temporary directory.
func writePolicy(t testing.TB, text string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "policy.yaml")
	if err := os.WriteFile(path, []byte(text), 0o600); err != nil {
		t.Fatalf("write policy: %v", err)
	}
	return path
}

// commentsFreely lets every agent comment without asking; anything else
// needs approval.
const commentsFreely = `version: 1
rules:
  - name: comments-are-fine
    action: github.comment
    effect: allow
    reason: Comments need no approval here.
  - name: default
    effect: approve
    lifetimes: [once]
    reason: Everything else needs your approval.
`

func TestDemoCustomPolicy(t *testing.T) {
	path := writePolicy(t, commentsFreely)
	tests := []struct {
		name string
		opts demoOpts
	}{
		{"AGENTHUB_POLICY", demoOpts{env: map[string]string{"AGENTHUB_POLICY": path}}},
		{"-policy flag", demoOpts{flags: []string{"-policy", path}}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := runDemoWith(t, tt.opts, say(commentPR7), say(listWebsite))
			r.one(t, 0, broker.KindResult)
			// The default policy would allow this read; this one asks.
			r.one(t, 1, broker.KindApproval)
			if got, want := r.calls(sim.ServiceGitHub, "POST", "/repos/acme/payments/issues/7/comments"), 1; got != want {
				t.Errorf("comments reaching GitHub = %d, want %d", got, want)
			}
			if got := r.calls(sim.ServiceGitHub, "GET", pullsPath); got != 0 {
				t.Errorf("list calls reaching GitHub = %d, want 0 before approval", got)
			}
		})
	}
}

func TestDemoBadPolicyStopsStartUp(t *testing.T) {
	path := writePolicy(t, `version: 1
rules:
  - name: fine
    effect: allow
  - name: broken-condition
    when: "args.body =="
    effect: allow
`)
	tests := []struct {
		name   string
		args   []string
		getenv func(string) string
	}{
		{"AGENTHUB_POLICY", []string{"bot", "demo", "-json"}, func(n string) string {
			if n == "AGENTHUB_POLICY" {
				return path
			}
			return ""
		}},
		{"-policy flag", []string{"bot", "demo", "-json", "-policy", path}, func(string) string { return "" }},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			started := false
			h := hooks{demoStarted: func(*demoEnv) { started = true }}
			var stdout, stderr bytes.Buffer
			err := h.run(context.Background(), tt.args, tt.getenv, strings.NewReader(commentPR7+"\n"), &stdout, &stderr)
			if code := exitCode(err, &stderr); code == 0 {
				t.Errorf("exit code 0 with a bad policy file")
			}
			if started {
				t.Error("the demo started with a bad policy file")
			}
			if stdout.Len() != 0 {
				t.Errorf("stdout = %q, want nothing", stdout.String())
			}
			for _, want := range []string{path + ":6", `"broken-condition"`} {
				if !strings.Contains(stderr.String(), want) {
					t.Errorf("stderr %q does not name %s", stderr.String(), want)
				}
			}
		})
	}
}

func TestDemoStepUpCodeIsSingleUse(t *testing.T) {
	var used string
	r := runDemoScript(t,
		say(mergePR7), say("once"),
		func(prev []jsonLine) string {
			if len(prev) == 1 {
				used = prev[0].DemoCode
			}
			return used
		},
		say("delete the branch feature-x in acme/website"), say("once"),
		func([]jsonLine) string { return used }, // the code that already passed
	)
	merge := r.one(t, 0, broker.KindApproval)
	if got := r.one(t, 2, broker.KindResult); got.RequestID != merge.RequestID {
		t.Fatalf("merge result for %q, want %q", got.RequestID, merge.RequestID)
	}
	del := r.one(t, 3, broker.KindApproval)
	if del.RequestID == merge.RequestID {
		t.Fatalf("the delete reused the merge's request %s", del.RequestID)
	}
	r.one(t, 4, broker.KindStepUp)
	if got := r.one(t, 5, broker.KindStepUp); got.RequestID != del.RequestID || !strings.Contains(got.Text, "already used") {
		t.Errorf("replayed code: %+v, want the step-up for %s saying the code was already used", got, del.RequestID)
	}
	if kinds := auditKinds(t, r, del.RequestID); indexOf(kinds, audit.StepUpFailed) < 0 || indexOf(kinds, audit.StepUpPassed) >= 0 {
		t.Errorf("audit of the delete = %v, want stepup.failed and no stepup.passed", kinds)
	}
	if got := r.calls(sim.ServiceGitHub, "DELETE", "/git/refs/heads/feature-x"); got != 0 {
		t.Errorf("branch deletions reaching GitHub = %d, want 0", got)
	}
	if got, want := r.calls(sim.ServiceGitHub, "PUT", "/repos/acme/payments/pulls/7/merge"), 1; got != want {
		t.Errorf("merges reaching GitHub = %d, want %d", got, want)
	}
}

func TestDemoApprovalBoundToArguments(t *testing.T) {
	const (
		commentA = "comment 'A' on PR 7 in acme/payments"
		commentB = "comment 'B' on PR 7 in acme/payments"
		path     = "/repos/acme/payments/issues/7/comments"
	)
	var afterA, beforeB int
	var world *sim.World
	count := func() int {
		n := 0
		for _, c := range world.CallsFor(sim.ServiceGitHub) {
			if c.Method == "POST" && strings.HasSuffix(c.Path, path) {
				n++
			}
		}
		return n
	}
	r := runDemoWith(t, demoOpts{started: func(e *demoEnv) { world = e.world }},
		say(commentA), say("once"),
		func([]jsonLine) string { afterA = count(); return commentB },
		func([]jsonLine) string { beforeB = count(); return "once" },
	)
	a := r.one(t, 0, broker.KindApproval)
	r.one(t, 1, broker.KindResult)
	b := r.one(t, 2, broker.KindApproval)
	if b.RequestID == a.RequestID {
		t.Errorf("the changed comment reused request %s", a.RequestID)
	}
	if got := r.one(t, 3, broker.KindResult); got.RequestID != b.RequestID {
		t.Errorf("result for %q, want %q", got.RequestID, b.RequestID)
	}
	if afterA != 1 || beforeB != 1 {
		t.Errorf("comments after A = %d, before B's approval = %d; want 1 and 1", afterA, beforeB)
	}
	if got, want := r.calls(sim.ServiceGitHub, "POST", path), 2; got != want {
		t.Errorf("comments reaching GitHub = %d, want %d", got, want)
	}
}

func TestDemoDoubleApprovalViaPending(t *testing.T) {
	r := runDemoScript(t,
		say(commentPR7),
		say("/agenthub pending"), // offers the same request again
		say("once"), say("once"),
		say("/agenthub pending"),
	)
	ap := r.one(t, 0, broker.KindApproval)
	if got := r.turns[1]; len(got) != 2 || got[1].Kind != broker.KindApproval || got[1].RequestID != ap.RequestID {
		t.Fatalf("pending = %+v, want the list and an approval for %s", got, ap.RequestID)
	}
	if got := r.one(t, 2, broker.KindResult); got.RequestID != ap.RequestID {
		t.Errorf("result for %q, want %q", got.RequestID, ap.RequestID)
	}
	if got := r.turns[3]; len(got) == 0 || got[0].Kind == broker.KindResult {
		t.Errorf("the second 'once' ran something: %+v", got)
	}
	if got := r.one(t, 4, broker.KindMessage); !strings.Contains(got.Text, "Nothing is waiting") {
		t.Errorf("pending after it ran = %q, want nothing waiting", got.Text)
	}
	if got, want := r.calls(sim.ServiceGitHub, "POST", "/repos/acme/payments/issues/7/comments"), 1; got != want {
		t.Errorf("comments reaching GitHub = %d, want %d", got, want)
	}
}

// failingAppends is a store whose log appends (the audit trail) fail once
// fail is set.
type failingAppends struct {
	store.Store
	fail *atomic.Bool
}

func (s failingAppends) Append(ctx context.Context, log string, after uint64, values [][]byte) error {
	if s.fail.Load() {
		return errors.New("audit store unavailable")
	}
	return s.Store.Append(ctx, log, after, values)
}

func TestDemoAuditFailureStopsProviderCalls(t *testing.T) {
	tests := []struct {
		name   string
		before []input // run while the audit trail works
		after  input   // run once it fails
	}{
		{"read", nil, say(listWebsite)},
		{"approved comment", []input{say(commentPR7)}, say("once")},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var fail atomic.Bool
			var world *sim.World
			callsAtFailure := -1
			breakAudit := func(next input) input {
				return func(prev []jsonLine) string {
					callsAtFailure = len(world.Calls())
					fail.Store(true)
					return next(prev)
				}
			}
			script := append(append([]input{}, tt.before...), breakAudit(tt.after))
			r := runDemoWith(t, demoOpts{
				started:   func(e *demoEnv) { world = e.world },
				wrapStore: func(s store.Store) store.Store { return failingAppends{Store: s, fail: &fail} },
				allowWarn: true,
			}, script...)
			last := r.turns[len(r.turns)-1]
			if len(last) == 0 || last[0].Kind != broker.KindError {
				t.Errorf("output with the audit trail down = %+v, want an error", last)
			}
			if callsAtFailure < 0 {
				t.Fatal("the audit trail was never broken")
			}
			for _, c := range world.Calls()[callsAtFailure:] {
				t.Errorf("provider call after the audit trail failed: %s %s %s", c.Service, c.Method, c.Path)
			}
		})
	}
}

// recordingRand is crypto/rand that keeps a copy of what it produced.
type recordingRand struct {
	mu     sync.Mutex
	chunks [][]byte
}

// values returns a copy of what was drawn so far.
func (r *recordingRand) values() [][]byte {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.chunks)
}

func (r *recordingRand) Read(p []byte) (int, error) {
	n, err := rand.Read(p)
	r.mu.Lock()
	r.chunks = append(r.chunks, append([]byte{}, p[:n]...))
	r.mu.Unlock()
	return n, err
}

// TestDemoCanary checks that no secret the demo made — the audit, vault
// and step-up keys, and every access and refresh token the simulated
// providers issued, refreshed ones included — appears in stdout, in the
// debug-level log or in the audit trail, in any of the encodings a
// careless log line would use.
func TestDemoCanary(t *testing.T) {
	rr := &recordingRand{}
	var shown string
	r := runDemoWith(t, demoOpts{random: rr, env: map[string]string{"AGENTHUB_LOG_LEVEL": "debug"}},
		say(listWebsite), say(commentPR7), say("1h"), say("/agenthub grants"),
		say(mergePR7), say("once"),
		func(prev []jsonLine) string {
			if len(prev) == 1 {
				shown = prev[0].DemoCode
			}
			return shown
		},
		say("what's on my calendar tomorrow"), say("once"),
		say("post 'deploy done' to #deploys"), say("once"),
		say("/agenthub whoami"), say("/agenthub revoke all"), say("/agenthub audit 1000"),
	)
	if !strings.Contains(r.stderr, `"level":"DEBUG"`) {
		t.Error("AGENTHUB_LOG_LEVEL=debug logged nothing at debug level: the log check proves little")
	}
	rr.mu.Lock()
	chunks := rr.chunks
	rr.mu.Unlock()
	// Three 32-byte keys, then 20 bytes per token: at least the three
	// services' first access and refresh tokens.
	if len(chunks) < 3+6 {
		t.Fatalf("the demo drew %d random values, want its keys and tokens", len(chunks))
	}
	for name, text := range r.surfaces(t) {
		for i, c := range chunks {
			for enc, s := range map[string]string{
				"hex":    hex.EncodeToString(c),
				"base64": base64.StdEncoding.EncodeToString(c),
				"url64":  base64.RawURLEncoding.EncodeToString(c),
				"raw":    string(c),
			} {
				if strings.Contains(text, s) {
					// Say which, never what.
					t.Errorf("%s holds secret #%d (%d bytes) as %s", name, i, len(c), enc)
				}
			}
		}
		if loc := tokenShape.FindStringIndex(text); loc != nil {
			t.Errorf("%s holds a provider token at byte %d", name, loc[0])
		}
	}
}

// TestDemoAnotherPersonsApprovalIsRefused: @bob, a colleague in the same
// workspace, clicks Approve on @demo's request, twice. The clicks are
// refused and audited (the repeat counted), nothing runs, and the owner can
// still decide.
func TestDemoAnotherPersonsApprovalIsRefused(t *testing.T) {
	r := runDemoScript(t,
		say(commentPR7),
		say("@bob once"),
		say("@bob 1"),
		say("once"),
	)
	ap := r.one(t, 0, broker.KindApproval)
	for _, turn := range []int{1, 2} {
		got := r.one(t, turn, broker.KindError)
		if got.RequestID != ap.RequestID || !strings.Contains(got.Text, "Only the person who asked") {
			t.Errorf("turn %d = %+v, want a refusal for %s", turn, got, ap.RequestID)
		}
	}
	if got := r.one(t, 3, broker.KindResult); got.RequestID != ap.RequestID {
		t.Errorf("the owner's decision ran %q, want %q", got.RequestID, ap.RequestID)
	}
	if got, want := r.calls(sim.ServiceGitHub, "POST", "/repos/acme/payments/issues/7/comments"), 1; got != want {
		t.Errorf("comments reaching GitHub = %d, want %d", got, want)
	}
	var rejected int
	for _, e := range r.events {
		if e.RequestID == ap.RequestID && e.Kind == audit.InteractionRejected {
			rejected++
			if e.Actor != demoOtherPrincipal.String() {
				t.Errorf("rejected event actor = %q, want %q", e.Actor, demoOtherPrincipal)
			}
		}
	}
	// The second refusal within the window is counted, not recorded
	// on its own (broker.Refuse): the trail holds the first.
	if rejected != 1 {
		t.Errorf("interaction.rejected events about the request = %d, want 1", rejected)
	}
	kinds := auditKinds(t, r, ap.RequestID)
	if i, j := indexOf(kinds, audit.InteractionRejected), indexOf(kinds, audit.ApprovalGranted); i < 0 || j < i {
		t.Errorf("audit kinds %v: want the rejections before the owner's approval", kinds)
	}
}

// TestDemoProductionDeployNeedsSecondApprover: the demo's policy names @bob
// as the release manager. @demo's approval and code are not enough; once
// @bob approves too, the deploy runs, exactly once.
func TestDemoProductionDeployNeedsSecondApprover(t *testing.T) {
	r := runDemoScript(t,
		say("deploy acme/payments to production"),
		say("once"),
		func(prev []jsonLine) string { return prev[0].DemoCode }, // @demo verifies
		say("@bob once"), // the release manager approves: now it runs
		say("@bob once"), // a second click runs nothing more
	)
	ap := r.one(t, 0, broker.KindApproval)
	if ap.Rule != "production-deploys-need-two" || !slices.Contains(ap.Approvers, "U0BOB") {
		t.Fatalf("approval = %+v, want the second-approver rule naming U0BOB", ap)
	}
	if su := r.one(t, 1, broker.KindStepUp); su.DemoCode == "" {
		t.Fatalf("step-up prompt without a demo code: %+v", su)
	}
	if got := r.one(t, 2, broker.KindMessage); got.RequestID != ap.RequestID || !strings.Contains(got.Text, "U0BOB") {
		t.Errorf("after @demo's code: %+v, want a message that it waits for U0BOB", got)
	}
	if got := r.one(t, 3, broker.KindResult); got.RequestID != ap.RequestID {
		t.Errorf("after @bob's approval: %+v, want the result", got)
	}
	if got := r.turns[4]; len(got) == 0 || got[0].Kind == broker.KindResult {
		t.Errorf("a second click by @bob: %+v, want no second run", got)
	}
	if got := len(r.env.world.GitHub().Dispatches("acme/payments")); got != 1 {
		t.Errorf("deploys of acme/payments = %d, want 1", got)
	}
	kinds := auditKinds(t, r, ap.RequestID)
	if n := len(slices.DeleteFunc(slices.Clone(kinds), func(k audit.Kind) bool { return k != audit.ApprovalGranted })); n != 2 {
		t.Errorf("approval.granted events = %d, want 2 (owner and release manager): %v", n, kinds)
	}
}
