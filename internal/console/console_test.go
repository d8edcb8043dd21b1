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
type recordingBroker struct {
	calls   []string
	replies map[string][]broker.Output
}

func (b *recordingBroker) answer(call string) ([]broker.Output, error) {
	b.calls = append(b.calls, call)
	if outs, ok := b.replies[call]; ok {
		return outs, nil
	}
	return []broker.Output{{Kind: broker.KindMessage, Text: "ok: " + call}}, nil
}

func (b *recordingBroker) Handle(_ context.Context, m broker.Message) ([]broker.Output, error) {
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
	return []broker.Request{{ID: "r9", Step: broker.Step{Action: "github.comment"}, Status: broker.StatusPending}}, nil
}

func (b *recordingBroker) Grants(_ context.Context, p broker.Principal) ([]broker.Grant, error) {
	b.calls = append(b.calls, "grants "+p.String())
	return nil, nil
}

func (b *recordingBroker) Tail(_ context.Context, n int) ([]audit.Event, error) {
	b.calls = append(b.calls, fmt.Sprintf("tail %d", n))
	return []audit.Event{{Seq: 1, Kind: audit.PolicyDecided, Action: "github.comment"}}, nil
}

// runSession runs the console in -json mode on input and returns the calls it
// made and the outputs it printed.
func runSession(t *testing.T, replies map[string][]broker.Output, input string) ([]string, []jsonOutput) {
	t.Helper()
	b := &recordingBroker{replies: replies}
	var out bytes.Buffer
	err := Run(t.Context(), Options{Broker: b, Commands: b, Audit: b, Principal: me, In: strings.NewReader(input), Out: &out, JSON: true,
		DemoCode: func(context.Context) (string, error) { return "123456", nil }})
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	var outs []jsonOutput
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		if line == "" {
			continue
		}
		var o jsonOutput
		if err := json.Unmarshal([]byte(line), &o); err != nil {
			t.Fatalf("output line %q: %v", line, err)
		}
		outs = append(outs, o)
	}
	return b.calls, outs
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
		{"audit default", nil, "/agenthub audit\n", []string{"tail 10"}},
		{"audit n", nil, "/agenthub audit 25\n", []string{"tail 25"}},
		{"audit bad n", nil, "/agenthub audit lots\n/agenthub audit 0\n", nil},
		{"help and unknown commands call nothing", nil, "/agenthub\n/agenthub help\n/agenthub frobnicate\n/agenthub revoke\n", nil},
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
		{"/agenthub frobnicate", broker.KindError, `I don't know "/agenthub frobnicate"`},
		{"/agenthub frobnicate", broker.KindError, "/agenthub help"},
		{"/agenthub audit lots", broker.KindError, "a number of events"},
		{"/agenthub audit 3", broker.KindMessage, "policy.decided github.comment"},
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
			if got := outs[0]; got.Kind != tt.wantKind || !strings.Contains(got.Text, tt.wantText) {
				t.Errorf("output = %s %q, want %s containing %q", got.Kind, got.Text, tt.wantKind, tt.wantText)
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
