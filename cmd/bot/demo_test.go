package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"io"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/config"
	"github.com/agenthub/agenthub/internal/logtest"
	"github.com/agenthub/agenthub/internal/planner/llm/llmtest"
	"github.com/agenthub/agenthub/internal/sim"
	"github.com/agenthub/agenthub/internal/store"
)

// jsonLine is one line of `bot demo -json`.
type jsonLine struct {
	Kind      broker.Kind     `json:"kind"`
	Text      string          `json:"text"`
	Choices   []broker.Choice `json:"choices"`
	RequestID string          `json:"request_id"`
	Service   string          `json:"service"`
	Rule      string          `json:"rule"`
	Approvers []string        `json:"approvers"`
	DemoCode  string          `json:"demo_code"`
	Data      json.RawMessage `json:"data"`
}

// input is one line of a script: fixed text, or text chosen from the
// outputs of the line before (such as the code the demo authenticator
// shows).
type input func(prev []jsonLine) string

func say(text string) input { return func([]jsonLine) string { return text } }

// lockedBuffer is a log destination safe for concurrent writers.
type lockedBuffer = logtest.Buffer

// scripted is stdin that produces its next line only when the console
// asks for it, which the console does once the previous line is handled;
// so each input can see every output of the one before.
type scripted struct {
	script  []input
	out     *lockedBuffer
	read    int        // bytes of stdout already split into turns
	turns   [][]string // raw output lines after each input
	pending []byte
	eof     bool
}

func (s *scripted) Read(p []byte) (int, error) {
	if len(s.pending) == 0 {
		if s.eof {
			return 0, io.EOF
		}
		prev := s.collect()
		if len(s.script) == 0 {
			s.eof = true
			return 0, io.EOF
		}
		var lines []jsonLine
		for _, raw := range prev {
			var l jsonLine
			if json.Unmarshal([]byte(raw), &l) == nil {
				lines = append(lines, l)
			}
		}
		s.pending = []byte(s.script[0](lines) + "\n")
		s.script = s.script[1:]
	}
	n := copy(p, s.pending)
	s.pending = s.pending[n:]
	return n, nil
}

// collect moves the output printed since the last input into a new turn
// and returns it.
func (s *scripted) collect() []string {
	all := s.out.String()
	chunk := all[s.read:]
	s.read = len(all)
	var lines []string
	sc := bufio.NewScanner(strings.NewReader(chunk))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		lines = append(lines, sc.Text())
	}
	s.turns = append(s.turns, lines)
	return lines
}

// demoRun is what one scripted `bot demo -json` did.
type demoRun struct {
	code   int
	stderr string
	turns  [][]jsonLine // turns[i]: the outputs of input i
	env    *demoEnv
	events []audit.Event // the whole audit trail at exit
}

// runDemoScript runs `bot demo -json` on a temporary store with script as
// stdin.
func runDemoScript(t *testing.T, script ...input) demoRun {
	t.Helper()
	return runDemoArgs(t, nil, script...)
}

// runDemoArgs is runDemoScript with more flags for `bot demo -json`.
func runDemoArgs(t *testing.T, flags []string, script ...input) demoRun {
	t.Helper()
	return runDemoWith(t, demoOpts{flags: flags}, script...)
}

// demoOpts are the less common settings of a scripted demo run.
type demoOpts struct {
	flags     []string                      // more flags for `bot demo -json`
	env       map[string]string             // the environment; empty otherwise
	started   func(*demoEnv)                // called once the demo is up
	wrapStore func(store.Store) store.Store // see hooks.wrapStore
	random    io.Reader                     // see hooks.random
	allowWarn bool                          // the run may log warnings and errors
}

// runDemoWith is runDemoScript with opts.
func runDemoWith(t *testing.T, opts demoOpts, script ...input) demoRun {
	t.Helper()
	var env *demoEnv
	var events []audit.Event
	h := hooks{random: opts.random, wrapStore: opts.wrapStore}
	h.demoStarted = func(e *demoEnv) {
		env = e
		if opts.started != nil {
			opts.started(e)
		}
	}
	h.demoStopping = func(e *demoEnv) {
		var err error
		if events, err = e.rec.Tail(context.Background(), 10000); err != nil {
			t.Errorf("audit tail: %v", err)
		}
	}

	out := new(lockedBuffer)
	in := &scripted{script: script, out: out}
	var stderr bytes.Buffer
	getenv := func(name string) string { return opts.env[name] }
	err := h.run(context.Background(), append([]string{"bot", "demo", "-json"}, opts.flags...), getenv, in, out, &stderr)
	r := demoRun{code: exitCode(err, &stderr), stderr: stderr.String(), env: env, events: events}
	if env == nil {
		t.Fatalf("the demo did not start: exit %d, stderr %s", r.code, r.stderr)
	}
	if !in.eof {
		t.Fatalf("the demo ended before reading all its input; stderr: %s", r.stderr)
	}
	// turns[0] is what came before the first input: nothing, in -json mode.
	if len(in.turns[0]) != 0 {
		t.Errorf("output before the first input: %q", in.turns[0])
	}
	for _, turn := range in.turns[1:] {
		var lines []jsonLine
		for _, raw := range turn {
			var l jsonLine
			if err := json.Unmarshal([]byte(raw), &l); err != nil {
				t.Fatalf("stdout line %q is not JSON: %v", raw, err)
			}
			if l.Kind == "" || l.Choices == nil {
				t.Errorf("stdout line %q lacks kind or choices", raw)
			}
			lines = append(lines, l)
		}
		r.turns = append(r.turns, lines)
	}
	if got, want := len(r.turns), len(script); got != want {
		t.Fatalf("%d turns of output, want %d (one per input)", got, want)
	}
	if r.code != 0 {
		t.Fatalf("exit code %d at EOF, want 0; stderr: %s", r.code, r.stderr)
	}
	if !opts.allowWarn && strings.Contains(r.stderr, `"level":"WARN"`) || strings.Contains(r.stderr, `"level":"ERROR"`) {
		t.Errorf("the demo logged a warning or error: %s", r.stderr)
	}
	return r
}

// one returns the single output of turn i, failing unless it has kind want.
func (r demoRun) one(t *testing.T, i int, want broker.Kind) jsonLine {
	t.Helper()
	if len(r.turns[i]) != 1 || r.turns[i][0].Kind != want {
		t.Fatalf("input %d: outputs %+v, want one %s", i, r.turns[i], want)
	}
	return r.turns[i][0]
}

// calls counts the calls that reached the simulated service with method and
// a path ending in suffix.
func (r demoRun) calls(service, method, suffix string) int {
	n := 0
	for _, c := range r.env.world.CallsFor(service) {
		if c.Method == method && strings.HasSuffix(c.Path, suffix) {
			n++
		}
	}
	return n
}

const (
	listWebsite = "list open pull requests in acme/website"
	commentPR7  = "comment 'LGTM' on PR 7 in acme/payments"
	mergePR7    = "merge PR 7 in acme/payments"
	pullsPath   = "/repos/acme/website/pulls"
)

func TestDemoRead(t *testing.T) {
	r := runDemoScript(t, say(listWebsite))
	res := r.one(t, 0, broker.KindResult)
	for _, want := range []string{"#12", "#13"} {
		if !strings.Contains(res.Text, want) {
			t.Errorf("result %q does not mention %s", res.Text, want)
		}
	}
	if got, want := r.calls(sim.ServiceGitHub, "GET", pullsPath), 1; got != want {
		t.Errorf("list calls reaching GitHub = %d, want %d", got, want)
	}
	for _, c := range r.env.world.CallsFor(sim.ServiceGitHub) {
		if c.Principal != demoPrincipal.String() {
			t.Errorf("call %s %s made as %q, want %q", c.Method, c.Path, c.Principal, demoPrincipal)
		}
	}
}

func TestDemoApprovalRunsOnce(t *testing.T) {
	r := runDemoScript(t, say(commentPR7), say("once"), say("once"))
	ap := r.one(t, 0, broker.KindApproval)
	if ap.RequestID == "" {
		t.Fatalf("approval without a request ID: %+v", ap)
	}
	keys := map[string]bool{}
	for _, c := range ap.Choices {
		keys[c.Key] = true
	}
	if !keys[broker.ChoiceOnce] || !keys[broker.ChoiceDeny] {
		t.Errorf("approval choices %+v lack once or deny", ap.Choices)
	}
	if got := r.one(t, 1, broker.KindResult); got.RequestID != ap.RequestID {
		t.Errorf("result for request %q, want %q", got.RequestID, ap.RequestID)
	}
	// The second "once" has no approval to answer: it is a message the
	// planner cannot read, and must not run the comment again.
	if r.turns[2][0].Kind == broker.KindResult {
		t.Errorf("a second 'once' ran something: %+v", r.turns[2])
	}
	if got, want := r.calls(sim.ServiceGitHub, "POST", "/repos/acme/payments/issues/7/comments"), 1; got != want {
		t.Errorf("comments reaching GitHub = %d, want %d", got, want)
	}
}

// wrongCode is a code that differs from code in every digit.
func wrongCode(code string) string {
	b := []byte(code)
	for i := range b {
		b[i] = '0' + (b[i]-'0'+5)%10
	}
	return string(b)
}

func TestDemoMergeNeedsStepUp(t *testing.T) {
	var shown string
	r := runDemoScript(t,
		say(mergePR7),
		say("Approve once"), // by label
		func(prev []jsonLine) string {
			if len(prev) == 1 {
				shown = prev[0].DemoCode
			}
			return wrongCode(shown)
		},
		func(prev []jsonLine) string {
			if len(prev) == 1 && prev[0].DemoCode != "" {
				return prev[0].DemoCode
			}
			return shown
		},
	)
	ap := r.one(t, 0, broker.KindApproval)
	for _, c := range ap.Choices {
		if c.Key != broker.ChoiceOnce && c.Key != broker.ChoiceDeny {
			t.Errorf("a merge offers the reusable choice %+v", c)
		}
	}
	su := r.one(t, 1, broker.KindStepUp)
	if su.RequestID != ap.RequestID || len(su.DemoCode) != 6 {
		t.Fatalf("step-up prompt %+v, want request %s with a 6-digit demo code", su, ap.RequestID)
	}
	if got := r.one(t, 2, broker.KindStepUp); !strings.Contains(got.Text, "not valid") {
		t.Errorf("after a wrong code: %+v, want a step-up saying the code is not valid", got)
	}
	if got := r.one(t, 3, broker.KindResult); got.RequestID != ap.RequestID {
		t.Errorf("result for request %q, want %q", got.RequestID, ap.RequestID)
	}
	if got, want := r.calls(sim.ServiceGitHub, "PUT", "/repos/acme/payments/pulls/7/merge"), 1; got != want {
		t.Errorf("merges reaching GitHub = %d, want %d", got, want)
	}
	if pr, ok := r.env.world.GitHub().PullRequest("acme/payments", 7); !ok || !pr.Merged {
		t.Errorf("acme/payments#7 merged = %v (found %v), want true", pr.Merged, ok)
	}
	// The failed attempt is on the record before the one that passed.
	events := auditKinds(t, r, ap.RequestID)
	failed, passed := indexOf(events, audit.StepUpFailed), indexOf(events, audit.StepUpPassed)
	if failed < 0 || passed < 0 || failed > passed {
		t.Errorf("audit of the request = %v, want stepup.failed before stepup.passed", events)
	}
}

func TestDemoRevokeBlocksAndCancels(t *testing.T) {
	r := runDemoScript(t,
		say(listWebsite),
		say(commentPR7), // left pending
		say("/agenthub revoke github"),
		say(listWebsite),
		say("once"), // the canceled approval
	)
	r.one(t, 0, broker.KindResult)
	ap := r.one(t, 1, broker.KindApproval)
	rev := r.one(t, 2, broker.KindMessage)
	if !strings.Contains(rev.Text, "Revoked github") || !strings.Contains(rev.Text, "1 open request(s) canceled") {
		t.Errorf("revoke said %q, want github revoked and one request canceled", rev.Text)
	}
	if got := r.turns[3]; len(got) == 0 || got[0].Kind == broker.KindResult {
		t.Errorf("a read after revoke: %+v, want it blocked", got)
	}
	if got := r.turns[4]; len(got) == 0 || got[0].Kind == broker.KindResult {
		t.Errorf("approving the canceled request %s: %+v, want it refused", ap.RequestID, got)
	}
	if got, want := r.calls(sim.ServiceGitHub, "GET", pullsPath), 1; got != want {
		t.Errorf("list calls reaching GitHub = %d, want %d (none after revoke)", got, want)
	}
	if got := r.calls(sim.ServiceGitHub, "POST", "/comments"); got != 0 {
		t.Errorf("comments reaching GitHub = %d, want 0", got)
	}
	grants := r.env.world.Grants(sim.ServiceGitHub)
	if len(grants) == 0 {
		t.Fatal("the sim holds no GitHub grant")
	}
	for _, g := range grants {
		if g.Principal == demoPrincipal.String() && !g.Revoked {
			t.Errorf("GitHub grant %d of %s not revoked at the provider", g.ID, g.Principal)
		}
	}
}

func TestDemoAuditCommand(t *testing.T) {
	r := runDemoScript(t, say(listWebsite), say("/agenthub audit 50"))
	r.one(t, 0, broker.KindResult)
	out := r.one(t, 1, broker.KindMessage)
	var events []audit.Event
	if err := json.Unmarshal(out.Data, &events); err != nil {
		t.Fatalf("audit output data: %v", err)
	}
	var kinds []audit.Kind
	for _, e := range events {
		kinds = append(kinds, e.Kind)
	}
	for _, want := range []audit.Kind{audit.ConnectionCreated, audit.StepProposed, audit.PolicyDecided, audit.ProviderCalled, audit.ActionSucceeded} {
		if indexOf(kinds, want) < 0 {
			t.Errorf("audit output kinds %v lack %s", kinds, want)
		}
	}
	if !strings.Contains(out.Text, string(audit.PolicyDecided)) {
		t.Errorf("audit text %q does not show the events", out.Text)
	}
}

func TestDemoPendingSurvivesRestart(t *testing.T) {
	storeURL := "bolt:" + filepath.Join(t.TempDir(), "demo.db")
	first := runDemoArgs(t, []string{"-store", storeURL}, say(commentPR7))
	ap := first.one(t, 0, broker.KindApproval)

	second := runDemoArgs(t, []string{"-store", storeURL}, say("/agenthub pending"), say("once"), say("/agenthub pending"), say("once"))
	if got := second.turns[0]; len(got) != 2 || got[1].Kind != broker.KindApproval || got[1].RequestID != ap.RequestID {
		t.Fatalf("pending after a restart = %+v, want the list and an approval for %s", got, ap.RequestID)
	}
	if got := second.one(t, 1, broker.KindResult); got.RequestID != ap.RequestID {
		t.Errorf("result for request %q, want %q", got.RequestID, ap.RequestID)
	}
	if got := second.one(t, 2, broker.KindMessage); !strings.Contains(got.Text, "Nothing is waiting") {
		t.Errorf("pending after it ran = %q, want nothing waiting", got.Text)
	}
	if got := second.turns[3]; len(got) == 0 || got[0].Kind == broker.KindResult {
		t.Errorf("a second 'once' ran something: %+v", got)
	}
	if got := first.calls(sim.ServiceGitHub, "POST", "/comments"); got != 0 {
		t.Errorf("comments in the first session = %d, want 0", got)
	}
	if got, want := second.calls(sim.ServiceGitHub, "POST", "/repos/acme/payments/issues/7/comments"), 1; got != want {
		t.Errorf("comments in the second session = %d, want %d", got, want)
	}
}

// tokenShape matches every token the simulated providers issue.
var tokenShape = regexp.MustCompile(`(ghu_|ghr_|ya29\.|1//|xoxe\.xoxp-1-|xoxe-1-)[0-9a-f]{40}`)

func TestDemoShowsNoSecret(t *testing.T) {
	var shown string
	r := runDemoScript(t,
		say(listWebsite), say(commentPR7), say("1h"), say("/agenthub grants"),
		say(mergePR7), say("once"),
		func(prev []jsonLine) string {
			if len(prev) == 1 {
				shown = prev[0].DemoCode
			}
			return shown
		},
		say("/agenthub whoami"), say("/agenthub pending"), say("/agenthub revoke all"), say("/agenthub audit 1000"),
	)
	if got := r.one(t, 6, broker.KindResult); !strings.Contains(got.Text, "Merged") {
		t.Errorf("merge result %q", got.Text)
	}
	for name, text := range r.surfaces(t) {
		if loc := tokenShape.FindStringIndex(text); loc != nil {
			// Say where, never what.
			t.Errorf("%s holds a provider token at byte %d", name, loc[0])
		}
		for service, c := range sim.DefaultClients() {
			if strings.Contains(text, c.Secret) {
				t.Errorf("%s holds the %s client secret", name, service)
			}
		}
	}
	if len(r.env.world.Grants(sim.ServiceSlack)) == 0 || len(r.events) == 0 {
		t.Fatal("the demo issued no tokens or recorded no events: the check above proves nothing")
	}
}

func TestDemoEOFWithoutInput(t *testing.T) {
	r := runDemoScript(t)
	if len(r.turns) != 0 {
		t.Errorf("outputs without input: %+v", r.turns)
	}
}

// auditKinds returns the kinds of the audit events about one request.
// surfaces returns everything a run showed anyone, by name: its JSON
// output, its logs and its audit trail, for the leak checks.
func (r demoRun) surfaces(t *testing.T) map[string]string {
	t.Helper()
	trail, err := json.Marshal(r.events)
	if err != nil {
		t.Fatalf("encode audit events: %v", err)
	}
	var stdout strings.Builder
	for _, turn := range r.turns {
		for _, l := range turn {
			b, _ := json.Marshal(l)
			stdout.Write(b)
		}
	}
	return map[string]string{"stdout": stdout.String(), "stderr": r.stderr, "audit trail": string(trail)}
}

func auditKinds(t *testing.T, r demoRun, requestID string) []audit.Kind {
	t.Helper()
	var kinds []audit.Kind
	for _, e := range r.events {
		if e.RequestID == requestID {
			kinds = append(kinds, e.Kind)
		}
	}
	return kinds
}

func indexOf[T comparable](s []T, v T) int {
	for i, x := range s {
		if x == v {
			return i
		}
	}
	return -1
}

// With OPENAI_API_KEY and OPENAI_BASE_URL, `bot demo` plans with the LLM
// planner against the simulated services: a sentence no rule reads becomes
// the model's merge, which still asks its owner for approval; nothing is
// merged by the model's word alone.
func TestDemoWithTheLLMPlanner(t *testing.T) {
	m := llmtest.New(t, llmtest.Answer{Calls: []llmtest.Call{llmtest.ToolCall("github__merge_pull_request", `{"repo":"acme/payments","number":7}`)}})
	r := runDemoWith(t, demoOpts{env: map[string]string{"OPENAI_API_KEY": "sk-CANARY-demo-key", "OPENAI_BASE_URL": m.URL()}},
		say("ship the payments fix, the one from this morning"))
	a := r.one(t, 0, broker.KindApproval)
	if !strings.Contains(a.Text, "github.merge_pull_request") {
		t.Fatalf("approval %q, want the model's merge", a.Text)
	}
	if len(m.Requests()) != 1 || m.Requests()[0]["model"] != config.DefaultLLMModel {
		t.Errorf("the model was asked %d time(s) (model %v), want once, the default model", len(m.Requests()), m.Requests())
	}
	if pr, _ := r.env.world.GitHub().PullRequest("acme/payments", 7); pr.Merged {
		t.Fatal("merged on the model's word")
	}
	if strings.Contains(r.stderr, "sk-CANARY-demo-key") {
		t.Error("the API key is in the log")
	}
}
