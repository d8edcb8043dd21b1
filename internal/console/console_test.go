package console

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/policy"
)

var me = broker.Principal{Team: "T1", User: "U1"}

var (
	approval = broker.Output{Kind: broker.KindApproval, RequestID: "r1", Text: "Approve?", Choices: []broker.Choice{
		{Key: broker.ChoiceOnce, Label: "Approve once"}, {Key: broker.ChoiceHour, Label: "Approve for 1 hour"}, {Key: broker.ChoiceDeny, Label: "Deny"}}}
	stepUp = broker.Output{Kind: broker.KindStepUp, RequestID: "r1", Text: "Enter a code."}
	done   = broker.Output{Kind: broker.KindResult, RequestID: "r1", Text: "Merged."}
)

// recordingBroker records every call as one string and answers with the
// outputs its replies map names for that string (a message otherwise).
// Pending lists pending, or one request waiting for approval when it is
// nil; History returns history, or one event when it is nil.
type recordingBroker struct {
	calls   []string
	replies map[string][]broker.Output
	pending []broker.Request
	history []audit.Event
	// progress is told to every Handle's Message.Progress first.
	progress []broker.Progress
}

func (b *recordingBroker) answer(call string) ([]broker.Output, error) {
	b.calls = append(b.calls, call)
	if outs, ok := b.replies[call]; ok {
		return outs, nil
	}
	return []broker.Output{{Kind: broker.KindMessage, Text: "ok: " + call}}, nil
}

func (b *recordingBroker) Handle(ctx context.Context, m broker.Message) ([]broker.Output, error) {
	for _, p := range b.progress {
		if m.Progress != nil {
			m.Progress(ctx, p)
		}
	}
	return b.answer("handle " + m.Principal.String() + " " + m.Text)
}

func (b *recordingBroker) Decide(_ context.Context, d broker.Decision) ([]broker.Output, error) {
	return b.answer("decide " + d.Actor.String() + " " + d.RequestID + " " + d.Choice)
}

func (b *recordingBroker) StepUp(_ context.Context, id string, actor broker.Principal, code string) ([]broker.Output, error) {
	return b.answer("stepup " + actor.String() + " " + id + " " + code)
}

func (b *recordingBroker) Revoke(_ context.Context, p broker.Principal, service string) ([]broker.Output, error) {
	return b.answer("revoke " + p.String() + " " + service)
}

func (b *recordingBroker) RevokeAll(_ context.Context, p broker.Principal) ([]broker.Output, error) {
	return b.answer("revoke-all " + p.String())
}

func (b *recordingBroker) Connected(_ context.Context, p broker.Principal, service string) ([]broker.Output, error) {
	b.calls = append(b.calls, "connected "+p.String()+" "+service)
	return nil, nil
}

func (b *recordingBroker) Pending(_ context.Context, p broker.Principal) ([]broker.Request, error) {
	b.calls = append(b.calls, "pending "+p.String())
	if b.pending != nil {
		return b.pending, nil
	}
	return []broker.Request{{ID: "r9", Step: broker.Step{Action: "github.comment"}, Status: broker.StatusPending}}, nil
}

func (b *recordingBroker) Grants(_ context.Context, p broker.Principal) ([]broker.Grant, error) {
	b.calls = append(b.calls, "grants "+p.String())
	return nil, nil
}

func (b *recordingBroker) History(_ context.Context, p broker.Principal, n int) ([]audit.Event, error) {
	b.calls = append(b.calls, fmt.Sprintf("history %s %d", p, n))
	if b.history != nil {
		return b.history, nil
	}
	return []audit.Event{{Seq: 1, Kind: audit.PolicyDecided, Actor: p.String(), Action: "github.comment"}}, nil
}

// runSession runs the console in -json mode on input and returns the calls it
// made and the outputs it printed.
func runSession(t *testing.T, replies map[string][]broker.Output, input string) ([]string, []jsonOutput) {
	t.Helper()
	b := &recordingBroker{replies: replies}
	outs := run(t, b, Options{DemoCode: func(context.Context) (string, error) { return "123456", nil }}, input)
	return b.calls, outs
}

// run runs the console in -json mode on input, with b as its broker, its
// commands and its history on top of opts, and returns the outputs it
// printed.
func run(tb testing.TB, b *recordingBroker, opts Options, input string) []jsonOutput {
	tb.Helper()
	var out bytes.Buffer
	opts.Broker, opts.Commands, opts.History = b, b, b.History
	opts.Principal, opts.In, opts.Out, opts.JSON = me, strings.NewReader(input), &out, true
	if err := Run(tb.Context(), opts); err != nil {
		tb.Fatalf("Run: %v", err)
	}
	var outs []jsonOutput
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" {
			continue
		}
		var o jsonOutput
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			tb.Fatalf("output line %q: %v", line, err)
		}
		outs = append(outs, o)
	}
	return outs
}

func TestDispatch(t *testing.T) {
	afterApproval := map[string][]broker.Output{"handle T1:U1 merge": {approval}}
	afterStepUp := map[string][]broker.Output{
		"handle T1:U1 merge":        {approval},
		"decide T1:U1 r1 once":      {stepUp},
		"stepup T1:U1 r1 000000":    {stepUp}, // a wrong code: asked again
		"stepup T1:U1 r1 123456":    {done},
		"handle T1:U1 list my PRs":  {{Kind: broker.KindResult, Text: "none"}},
		"decide T1:U1 r1 deny":      {{Kind: broker.KindMessage, RequestID: "r1", Text: "Denied."}},
		"handle T1:U1 merge again":  {approval},
		"handle T1:U1 unrelated 42": nil,
	}
	tests := []struct {
		name    string
		replies map[string][]broker.Output
		input   string
		want    []string
	}{
		{"plain text is a message", nil, "hello there\n", []string{"handle T1:U1 hello there"}},
		{"blank lines are skipped", nil, "\n  \nhi\n", []string{"handle T1:U1 hi"}},
		{"choice by key", afterApproval, "merge\nonce\n", []string{"handle T1:U1 merge", "decide T1:U1 r1 once"}},
		{"choice by label, any case", afterApproval, "merge\nAPPROVE FOR 1 HOUR\n", []string{"handle T1:U1 merge", "decide T1:U1 r1 1h"}},
		{"choice by number", afterApproval, "merge\n3\n", []string{"handle T1:U1 merge", "decide T1:U1 r1 deny"}},
		{"a number out of range is a message", afterApproval, "merge\n4\n", []string{"handle T1:U1 merge", "handle T1:U1 4"}},
		{"no choices without an approval", nil, "once\n", []string{"handle T1:U1 once"}},
		{"a choice answers once", afterStepUp, "merge\ndeny\ndeny\n", []string{"handle T1:U1 merge", "decide T1:U1 r1 deny", "handle T1:U1 deny"}},
		{"code while a step-up waits", afterStepUp, "merge\nonce\n123 456\n",
			[]string{"handle T1:U1 merge", "decide T1:U1 r1 once", "stepup T1:U1 r1 123456"}},
		{"a wrong code keeps the step-up", afterStepUp, "merge\nonce\n000000\n123456\n123456\n",
			[]string{"handle T1:U1 merge", "decide T1:U1 r1 once", "stepup T1:U1 r1 000000", "stepup T1:U1 r1 123456", "handle T1:U1 123456"}},
		{"digits without a step-up are a message", nil, "123456\n", []string{"handle T1:U1 123456"}},
		{"five digits are not a code", afterStepUp, "merge\nonce\n12345\n", []string{"handle T1:U1 merge", "decide T1:U1 r1 once", "handle T1:U1 12345"}},
		{"other text during a step-up is a message", afterStepUp, "merge\nonce\nlist my PRs\n123456\n",
			[]string{"handle T1:U1 merge", "decide T1:U1 r1 once", "handle T1:U1 list my PRs", "stepup T1:U1 r1 123456"}},
		{"revoke a service", nil, "/agenthub revoke GitHub\n", []string{"revoke T1:U1 github"}},
		{"revoke all", nil, "/agenthub revoke all\n", []string{"revoke-all T1:U1"}},
		{"grants, any case", nil, "/AgentHub grants\n", []string{"grants T1:U1"}},
		{"pending", nil, "/agenthub pending\n", []string{"pending T1:U1"}},
		{"audit default: the person's own", nil, "/agenthub audit\n", []string{"history T1:U1 10"}},
		{"audit n", nil, "/agenthub audit 25\n", []string{"history T1:U1 25"}},
		{"audit bad n", nil, "/agenthub audit lots\n/agenthub audit 0\n", nil},
		{"help and unknown commands call nothing", nil, "/agenthub\n/agenthub help\n/agenthub frobnicate\n/agenthub revoke\n", nil},
		{"code calls nothing", nil, "/agenthub code\n", nil},
		{"connect, lower case", nil, "/agenthub connect GitHub\n", nil}, // no Connect here
		{"a command does not answer an approval", afterApproval, "merge\n/agenthub grants\nonce\n",
			[]string{"handle T1:U1 merge", "grants T1:U1", "decide T1:U1 r1 once"}},
		{"pending offers the newest request again", afterApproval, "merge\n/agenthub pending\nonce\n",
			[]string{"handle T1:U1 merge", "pending T1:U1", "decide T1:U1 r9 once"}},
		{"pending offers only once and deny", nil, "/agenthub pending\n1h\n",
			[]string{"pending T1:U1", "handle T1:U1 1h"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, _ := runSession(t, tt.replies, tt.input)
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestCommandOutputs(t *testing.T) {
	tests := []struct {
		input    string
		wantKind broker.Kind
		wantText string
	}{
		{"/agenthub", broker.KindMessage, "/agenthub revoke all"},
		{"/agenthub help", broker.KindMessage, "/agenthub audit [n]"},
		{"/agenthub help", broker.KindMessage, "/agenthub code "}, // DemoCode is set
		{"/agenthub frobnicate", broker.KindError, `I don't know "/agenthub frobnicate"`},
		{"/agenthub frobnicate", broker.KindError, "/agenthub help"},
		{"/agenthub frobnicate\x1b[2J", broker.KindError, `I don't know "/agenthub frobnicate?[2J"`},
		{"/agenthub revoke", broker.KindError, "Try:\n  /agenthub revoke <service>  revoke a service"},
		{"/agenthub audit lots", broker.KindError, "a number of events from 1 to 1000"},
		{"/agenthub audit 3", broker.KindMessage, "Your last 1 audit event(s):\n  #1"},
		{"/agenthub audit 3", broker.KindMessage, "policy.decided github.comment"},
		{"/agenthub code", broker.KindMessage, "demo: your authenticator shows 123456"},
		{"/agenthub pending", broker.KindMessage, "r9 github.comment"}, // then the approval for r9
		{"/agenthub grants", broker.KindMessage, "no grants"},
		{"/agenthub whoami", broker.KindMessage, "You are T1:U1"},
		{"/agenthub connect github", broker.KindError, "not available here"},
	}
	for _, tt := range tests {
		t.Run(tt.input+" "+tt.wantText, func(t *testing.T) {
			_, outs := runSession(t, nil, tt.input+"\n")
			if len(outs) == 0 {
				t.Fatal("no output")
			}
			if len(outs[0].Choices) != 0 || outs[0].RequestID != "" {
				t.Errorf("output = %+v, want no choices and no request", outs[0])
			}
			if got := outs[0]; got.Kind != tt.wantKind || !strings.Contains(got.Text, tt.wantText) {
				t.Errorf("output = %s %q, want %s containing %q", got.Kind, got.Text, tt.wantKind, tt.wantText)
			}
		})
	}
}

// TestCodeOutsideTheDemo: without a demo authenticator code is a command
// like any unknown one, and the help does not offer it.
func TestCodeOutsideTheDemo(t *testing.T) {
	b := &recordingBroker{}
	outs := run(t, b, Options{}, "/agenthub code\n/agenthub help\n")
	if len(outs) != 2 {
		t.Fatalf("outputs = %+v, want 2", outs)
	}
	if got := outs[0]; got.Kind != broker.KindError || !strings.HasPrefix(got.Text, `I don't know "/agenthub code".`) {
		t.Errorf("code = %s %q, want it unknown", got.Kind, got.Text)
	}
	for _, o := range outs {
		if strings.Contains(o.Text, "/agenthub code ") {
			t.Errorf("help %q offers code outside the demo", o.Text)
		}
	}
}

// TestCodeDuringAStepUp: code prompts for the waiting step-up again, which
// prints the demo authenticator's code.
func TestCodeDuringAStepUp(t *testing.T) {
	replies := map[string][]broker.Output{"handle T1:U1 merge": {stepUp}}
	calls, outs := runSession(t, replies, "merge\n/agenthub code\n123456\n")
	if len(outs) != 3 {
		t.Fatalf("outputs = %+v, want 3", outs)
	}
	if got := outs[1]; got.Kind != broker.KindStepUp || got.RequestID != "r1" || got.DemoCode != "123456" {
		t.Errorf("code = %+v, want the step-up for r1 again, with the demo code", got)
	}
	if diff := cmp.Diff([]string{"handle T1:U1 merge", "stepup T1:U1 r1 123456"}, calls); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestPending(t *testing.T) {
	expires := time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	tests := []struct {
		name     string
		pending  []broker.Request
		wantText string
		wantData string
	}{
		{"waiting for approval",
			[]broker.Request{{ID: "r1", Step: broker.Step{Action: "github.comment"}, Service: "github",
				Resource: policy.Resource{Name: "acme/payments"}, Status: broker.StatusPending, Expires: expires}},
			"Waiting for you:\n  r1 github.comment on acme/payments: pending, expires 2030-01-02 03:04:05 UTC",
			`[{"request_id":"r1","action":"github.comment","resource":"acme/payments","service":"github","status":"pending","expires":"2030-01-02T03:04:05Z"}]`},
		{"waiting for a connection",
			[]broker.Request{{ID: "r2", Step: broker.Step{Action: "github.list_pull_requests"}, Service: "github",
				Status: broker.StatusWaitingConnection, Expires: expires}},
			"Waiting for you:\n  r2 github.list_pull_requests waiting for the github connection, expires 2030-01-02 03:04:05 UTC",
			`[{"request_id":"r2","action":"github.list_pull_requests","resource":"","service":"github","status":"waiting_connection","expires":"2030-01-02T03:04:05Z"}]`},
		{"nothing", []broker.Request{}, "Nothing is waiting for you.", `[]`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			outs := run(t, &recordingBroker{pending: tt.pending}, Options{}, "/agenthub pending\n")
			if len(outs) == 0 {
				t.Fatal("no output")
			}
			got := outs[0]
			if diff := cmp.Diff(tt.wantText, got.Text); diff != "" {
				t.Errorf("text (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(decode(t, tt.wantData), got.Data); diff != "" {
				t.Errorf("data (-want +got):\n%s", diff)
			}
		})
	}
}

// decode is JSON as a -json line's data decodes.
func decode(tb testing.TB, s string) any {
	tb.Helper()
	var v any
	if err := json.Unmarshal([]byte(s), &v); err != nil {
		tb.Fatal(err)
	}
	return v
}

func TestAuditShowsTheTrailAboutYou(t *testing.T) {
	tests := []struct {
		name     string
		history  []audit.Event
		wantText string
		wantData string
	}{
		{"events", []audit.Event{
			{Seq: 7, Time: time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC), Kind: audit.PolicyDecided, Actor: me.String(),
				Action: "github.comment", Resource: "acme/payments", Decision: "needs_approval", RequestID: "0123456789abcdef"}},
			"Your last 1 audit event(s):\n  #7 03:04:05 policy.decided github.comment acme/payments needs_approval req=01234567", ""},
		{"none", []audit.Event{}, "The audit trail has nothing about you yet.", "[]"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			b := &recordingBroker{history: tt.history}
			outs := run(t, b, Options{}, "/agenthub audit 5\n")
			if len(outs) != 1 {
				t.Fatalf("outputs = %+v, want 1", outs)
			}
			if got, want := outs[0].Kind, broker.KindMessage; got != want {
				t.Errorf("kind = %s, want %s", got, want)
			}
			if diff := cmp.Diff(tt.wantText, outs[0].Text); diff != "" {
				t.Errorf("text (-want +got):\n%s", diff)
			}
			if tt.wantData != "" {
				if diff := cmp.Diff(decode(t, tt.wantData), outs[0].Data); diff != "" {
					t.Errorf("data (-want +got):\n%s", diff)
				}
			}
			if diff := cmp.Diff([]string{"history T1:U1 5"}, b.calls); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestJSONOutput(t *testing.T) {
	replies := map[string][]broker.Output{"handle T1:U1 merge": {approval}, "decide T1:U1 r1 once": {stepUp}}
	_, outs := runSession(t, replies, "merge\nonce\nhi\n")
	if len(outs) != 3 {
		t.Fatalf("outputs = %+v, want 3", outs)
	}
	if got, want := outs[0].Choices, approval.Choices; !cmp.Equal(got, want) {
		t.Errorf("approval choices = %+v, want %+v", got, want)
	}
	if got, want := outs[1].DemoCode, "123456"; got != want {
		t.Errorf("step_up demo_code = %q, want %q", got, want)
	}
	if outs[0].DemoCode != "" || outs[2].DemoCode != "" {
		t.Errorf("demo_code on an output that is not a step-up: %+v", outs)
	}
	if outs[2].Choices == nil {
		t.Errorf("a message's choices decode as null, want []")
	}
}

func TestTextOutput(t *testing.T) {
	b := &recordingBroker{replies: map[string][]broker.Output{"handle T1:U1 merge": {approval}, "decide T1:U1 r1 once": {stepUp}}}
	var out bytes.Buffer
	err := Run(t.Context(), Options{Broker: b, Principal: me, In: strings.NewReader("merge\nonce\n"), Out: &out,
		DemoCode: func(context.Context) (string, error) { return "654321", nil }})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	for _, want := range []string{"you> merge\n", "bot> Approve?\n", "1) Approve once [once]", "3) Deny [deny]",
		"you> once\n", "demo: your authenticator shows 654321", "6-digit code"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text output lacks %q:\n%s", want, out.String())
		}
	}
}

func TestNoDemoCodeOutsideTheDemo(t *testing.T) {
	b := &recordingBroker{replies: map[string][]broker.Output{"handle T1:U1 merge": {stepUp}}}
	var out bytes.Buffer
	if err := Run(t.Context(), Options{Broker: b, Principal: me, In: strings.NewReader("merge\n"), Out: &out, JSON: true}); err != nil {
		t.Fatalf("Run: %v", err)
	}
	if strings.Contains(out.String(), "demo_code") {
		t.Errorf("output %s has a demo_code without DemoCode", out.String())
	}
}

func TestCancel(t *testing.T) {
	ctx, cancel := context.WithCancel(t.Context())
	in, w := io.Pipe() // never written: Run waits for a line
	defer w.Close()
	errc := make(chan error, 1)
	go func() {
		errc <- Run(ctx, Options{Broker: &recordingBroker{}, Principal: me, In: in, Out: io.Discard})
	}()
	cancel()
	select {
	case err := <-errc:
		if !errors.Is(err, context.Canceled) {
			t.Errorf("Run after cancel = %v, want context.Canceled", err)
		}
	case <-time.After(10 * time.Second):
		// Not a timing assertion: a hang is the failure.
		t.Fatal("Run did not return after its context was cancelled")
	}
}

func TestReadError(t *testing.T) {
	boom := errors.New("disk on fire")
	err := Run(t.Context(), Options{Broker: &recordingBroker{}, Principal: me, In: io.MultiReader(strings.NewReader("hi\n"), errReader{boom}), Out: io.Discard})
	if !errors.Is(err, boom) {
		t.Errorf("Run = %v, want %v", err, boom)
	}
}

type errReader struct{ err error }

func (r errReader) Read([]byte) (int, error) { return 0, r.err }

// TestWhoamiListsConnections: whoami shows the person's connections
// through the console's own view of them, asked for the person typing.
func TestWhoamiListsConnections(t *testing.T) {
	tests := []struct {
		name  string
		conns []Connection
		err   error
		kind  broker.Kind
		want  string
	}{
		{"two services", []Connection{{Service: "github", Status: "active", Scopes: []string{"repo"}}, {Service: "google", Status: "expired", Scopes: []string{"calendar", "openid"}}},
			nil, broker.KindMessage, "You are T1:U1 (T1:U1).\n  github: active, scopes repo\n  google: expired, scopes calendar openid"},
		{"none", nil, nil, broker.KindMessage, "You are T1:U1 (T1:U1). You have connected no service."},
		{"unreadable", nil, errors.New("store down"), broker.KindError, "You are T1:U1 (T1:U1). Your connections could not be read."},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			var asked []broker.Principal
			outs := run(t, &recordingBroker{}, Options{Connections: func(_ context.Context, p broker.Principal) ([]Connection, error) {
				asked = append(asked, p)
				return tt.conns, tt.err
			}}, "/agenthub whoami\n")
			if len(outs) != 1 || outs[0].Kind != tt.kind || outs[0].Text != tt.want {
				t.Fatalf("whoami = %+v, want one %s %q", outs, tt.kind, tt.want)
			}
			if diff := cmp.Diff([]broker.Principal{me}, asked); diff != "" {
				t.Errorf("principals asked for (-want +got):\n%s", diff)
			}
		})
	}
}

// The planner's reads show as they start in text mode; -json prints the
// outputs alone.
func TestProgress(t *testing.T) {
	b := &recordingBroker{progress: []broker.Progress{
		{ID: "r1", Title: "Reading acme/website (github.list_pull_requests)", Status: broker.ProgressRunning},
		{ID: "r1", Title: "Reading acme/website (github.list_pull_requests)", Status: broker.ProgressDone},
	}}
	var out bytes.Buffer
	if err := Run(t.Context(), Options{Broker: b, Commands: b, History: b.History, Principal: me, In: strings.NewReader("what is open?\n"), Out: &out}); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(out.String(), "… Reading acme/website (github.list_pull_requests)"); n != 1 {
		t.Errorf("progress lines = %d in %q, want the read once, as it starts", n, out.String())
	}
	if outs := run(t, b, Options{}, "what is open?\n"); len(outs) != 1 {
		t.Errorf("-json outputs = %+v, want the answer alone", outs)
	}
}
