package slackapp

import (
	"bytes"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/google/go-cmp/cmp"
	"github.com/slack-go/slack"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/policy"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/")

var t0 = time.Date(2025, 3, 4, 14, 3, 0, 0, time.UTC)

const (
	reqID = "req_8f3a2c91d4e6"
	owner = "U0MARIA01"
)

func approvalOutput() broker.Output {
	return broker.Output{
		Kind:      broker.KindApproval,
		Text:      `Approve github.create_issue on acme/payments with {"body":"see <https://x>","title":"Fix & ship"}? private repo writes need approval (policy rule "private-writes", medium risk)`,
		Reason:    `private repo writes need approval (policy rule "private-writes", medium risk)`,
		Args:      json.RawMessage(`{"body":"see <https://x>","title":"Fix & ship"}`),
		ArgsHash:  "3f9a1c0b7e2d4a6f8b1c3e5d7f9a0b2c4d6e8f0a1b3c5d7e9f0a2b4c6d8e0f1a",
		Choices:   []broker.Choice{{Key: broker.ChoiceOnce, Label: "Approve once"}, {Key: broker.ChoiceHour, Label: "Approve for 1 hour"}, {Key: broker.ChoiceStanding, Label: "Approve until revoked"}, {Key: broker.ChoiceDeny, Label: "Deny"}},
		RequestID: reqID,
		Action:    "github.create_issue",
		Resource:  "acme/payments",
		Rule:      "private-writes",
		Risk:      "medium",
	}
}

func highRiskOutput() broker.Output {
	return broker.Output{
		Kind:      broker.KindApproval,
		Text:      `Approve github.merge_pull_request on acme/payments:main with {"number":42}? merges to protected branches are high risk (policy rule "protected-merge", high risk) After you approve, you will be asked for a code from your authenticator. It also needs the approval of one of: U0LEAD001, U0LEAD002.`,
		Reason:    `merges to protected branches are high risk (policy rule "protected-merge", high risk) After you approve, you will be asked for a code from your authenticator. It also needs the approval of one of: U0LEAD001, U0LEAD002.`,
		Args:      json.RawMessage(`{"number":42}`),
		ArgsHash:  "aa11bb22cc33dd44ee55ff6600112233445566778899aabbccddeeff00112233",
		Choices:   []broker.Choice{{Key: broker.ChoiceOnce, Label: "Approve once"}, {Key: broker.ChoiceDeny, Label: "Deny"}},
		RequestID: reqID,
		Action:    "github.merge_pull_request",
		Resource:  "acme/payments:main",
		Rule:      "protected-merge",
		Risk:      "high",
		Approvers: []string{"U0LEAD001", "U0LEAD002"},
	}
}

func request() broker.Request {
	return broker.Request{
		V: 1, ID: reqID, Principal: broker.Principal{Team: "T0ACME", User: owner},
		Step:     broker.Step{Action: "github.merge_pull_request", Args: json.RawMessage(`{"number":42,"repo":"acme/payments"}`)},
		Service:  "github",
		Resource: policy.Resource{Kind: "branch", Name: "acme/payments:main"},
		Decision: broker.StoredDecision{Rule: "protected-merge", Risk: policy.High},
		Status:   broker.StatusPending,
		Created:  t0.Add(-5 * time.Minute),
		Expires:  t0.Add(10 * time.Minute),
	}
}

func homeData() ([]HomeConnection, []broker.Grant, []broker.Request, []audit.Event) {
	conns := []HomeConnection{
		{Service: "github", Account: "octocat", Status: "connected", Scopes: []string{"repo", "read:org"}, LastUsed: t0.Add(-time.Hour)},
		{Service: "google", Status: "expired", Scopes: []string{"calendar.events"}},
		{Service: "slack", Off: true},
	}
	grants := []broker.Grant{
		{ID: "g_1", Action: "github.create_issue", Agent: "github", Service: "github", Resource: "acme/payments", Lifetime: policy.OneHour, Expires: t0.Add(time.Hour)},
		{ID: "g_2", Action: "calendar.create_event", Agent: "calendar", Service: "google", Resource: "primary", Lifetime: policy.Standing},
	}
	waiting := request()
	waiting.ID, waiting.Status = "req_awaiting_code", broker.StatusAwaitingStepUp
	pending := []broker.Request{request(), waiting}
	var events []audit.Event
	for i := range 12 {
		events = append(events, audit.Event{Seq: uint64(100 + i), Time: t0.Add(time.Duration(i) * time.Minute),
			Kind: audit.ActionSucceeded, Actor: "T0ACME:" + owner, Action: "github.list_pull_requests",
			Resource: "acme/<payments>", Result: "ok"})
	}
	events[11] = audit.Event{Seq: 111, Time: t0.Add(11 * time.Minute), Kind: audit.PolicyDecided, Actor: "T0ACME:" + owner,
		Action: "github.merge_pull_request", Resource: "acme/payments:main", Decision: "approve", Rule: "protected-merge"}
	return conns, grants, pending, events
}

func manyGrants(n int) []broker.Grant {
	gs := make([]broker.Grant, n)
	for i := range gs {
		gs[i] = broker.Grant{ID: fmt.Sprintf("g_%03d", i), Action: "github.create_issue", Agent: "github",
			Resource: fmt.Sprintf("acme/repo%03d", i), Lifetime: policy.OneHour, Expires: t0.Add(time.Hour)}
	}
	return gs
}

// golden compares v, as indented JSON, with testdata/name.json byte for
// byte, or rewrites the file under -update.
func golden(t testing.TB, name string, v any) {
	t.Helper()
	got := encode(t, v, "  ")
	path := filepath.Join("testdata", name+".json")
	if *update {
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("read golden (run go test -update to create it): %v", err)
	}
	if diff := cmp.Diff(string(want), string(got)); diff != "" {
		t.Errorf("%s differs from golden (-want +got); rerun with -update if intended:\n%s", path, diff)
	}
}

func TestGolden(t *testing.T) {
	conns, grants, pending, events := homeData()
	approved := request()
	approved.Lifetime = policy.OneHour
	tests := []struct {
		name      string
		v         any
		maxBlocks int
	}{
		{"approval", ApprovalMessage(approvalOutput(), owner, t0.Add(15*time.Minute)), maxMessageBlock},
		{"approval_high_risk", ApprovalMessage(highRiskOutput(), owner, t0.Add(15*time.Minute)), maxMessageBlock},
		{"approval_second", SecondApprovalMessage(secondOutput(), owner, t0.Add(15*time.Minute)), maxMessageBlock},
		{"decided_approved", DecidedMessage(approved, owner, t0, OutcomeApproved), maxMessageBlock},
		{"decided_denied", DecidedMessage(request(), owner, t0, OutcomeDenied), maxMessageBlock},
		{"decided_expired", DecidedMessage(request(), "", t0, OutcomeExpired), maxMessageBlock},
		{"decided_canceled", DecidedMessage(request(), "", t0, OutcomeCanceled), maxMessageBlock},
		{"stepup_message", StepUpMessage(broker.Output{Kind: broker.KindStepUp, RequestID: reqID, Action: "github.merge_pull_request",
			Resource: "acme/payments:main", Rule: "protected-merge", Risk: "high", Args: json.RawMessage(`{"method":"merge","number":42,"repo":"acme/payments"}`),
			Text: "Approved. github.merge_pull_request on acme/payments:main also needs a fresh code from your authenticator: enter it to run it."}), maxMessageBlock},
		{"stepup_modal", StepUpModal(request()), maxMessageBlock},
		{"approval_long_args", ApprovalMessage(longArgsOutput(5000), owner, t0.Add(15*time.Minute)), maxMessageBlock},
		{"args_modal", ArgsModal(longArgsRequest(5000)), maxModalBlocks},
		{"connect", ConnectMessage(broker.Output{Kind: broker.KindConnect, Service: "github", Action: "github.create_issue",
			Text: "github.create_issue needs your github account. Connect it (/agenthub connect github), then ask again."}), maxMessageBlock},
		{"reconnect", ConnectMessage(broker.Output{Kind: broker.KindConnect, Service: "github", Action: "github.create_issue", Reconnect: true,
			Text: "Your github connection expired. Connect it again (/agenthub connect github) and I'll carry on."}), maxMessageBlock},
		{"result", map[string]string{"text": ResultText(broker.Output{Kind: broker.KindResult, Text: "Opened issue #17 <https://github.com/acme/payments/issues/17> & assigned it."})}, 0},
		{"error", map[string]string{"text": ErrorText(broker.Output{Kind: broker.KindError, Text: "Not run: denied by policy rule \"no-force-push\" (force pushes > never)."})}, 0},
		{"home", HomeView(conns, grants, pending, events), maxHomeBlocks},
		{"home_empty", HomeView(nil, nil, nil, nil), maxHomeBlocks},
		{"home_truncated", HomeView(conns, manyGrants(80), pending, events), maxHomeBlocks},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			golden(t, tt.name, tt.v)
			checkLimits(t, tt.v, tt.maxBlocks)
		})
	}
}

// checkLimits walks v's JSON and fails on anything Slack would reject for
// length or count; maxBlocks 0 means v is not a block list or view.
func checkLimits(t testing.TB, v any, maxBlocks int) {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	var doc any
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if maxBlocks > 0 {
		blocks, ok := doc.([]any)
		if m, isMap := doc.(map[string]any); isMap {
			blocks, ok = m["blocks"].([]any)
		}
		if !ok {
			t.Fatalf("no block list in %s", raw)
		}
		if len(blocks) > maxBlocks {
			t.Errorf("got %d blocks, want at most %d", len(blocks), maxBlocks)
		}
		// slack-go must be able to read back what we send.
		var bs slack.Blocks
		if err := json.Unmarshal(mustJSON(t, blocks), &bs); err != nil {
			t.Errorf("slack.Blocks cannot decode the blocks: %v", err)
		}
	}
	if m, ok := doc.(map[string]any); ok {
		if s, ok := m["text"].(string); ok && maxBlocks == 0 {
			atMost(t, "reply text", s, maxReplyText)
		}
	}
	walk(t, doc)
}

// mustJSON marshals v as Slack receives it, without Go's HTML escaping,
// so that tests can look for markup literally.
func mustJSON(t testing.TB, v any) []byte {
	t.Helper()
	return bytes.TrimSuffix(encode(t, v, ""), []byte("\n"))
}

// encode marshals v and re-encodes the result without HTML escaping:
// slack-go marshals some objects itself, with json.Marshal, which writes
// <, > and & as \u003c…; the round trip makes every string literal, so
// golden files are readable and tests can search for markup. Object keys
// come out sorted.
func encode(t testing.TB, v any, indent string) []byte {
	t.Helper()
	raw, err := json.Marshal(v)
	if err != nil {
		t.Fatalf("marshal: %v", err)
	}
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var doc any
	if err := d.Decode(&doc); err != nil {
		t.Fatalf("decode: %v", err)
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", indent)
	if err := enc.Encode(doc); err != nil {
		t.Fatalf("encode: %v", err)
	}
	return buf.Bytes()
}

func textOf(v any) string {
	m, _ := v.(map[string]any)
	s, _ := m["text"].(string)
	return s
}

func atMost(t testing.TB, what, s string, max int) {
	t.Helper()
	if n := utf8.RuneCountInString(s); n > max {
		t.Errorf("%s has %d characters, want at most %d", what, n, max)
	}
}

func walk(t testing.TB, v any) {
	t.Helper()
	switch v := v.(type) {
	case []any:
		for _, e := range v {
			walk(t, e)
		}
	case map[string]any:
		switch v["type"] {
		case "section":
			atMost(t, "section text", textOf(v["text"]), maxSectionText)
			fs, _ := v["fields"].([]any)
			if len(fs) > maxFields {
				t.Errorf("section has %d fields, want at most %d", len(fs), maxFields)
			}
			for _, f := range fs {
				atMost(t, "section field", textOf(f), maxFieldText)
			}
			if v["text"] == nil && len(fs) == 0 {
				t.Error("section has neither text nor fields")
			}
		case "header":
			atMost(t, "header", textOf(v["text"]), maxHeaderText)
		case "actions":
			if es, _ := v["elements"].([]any); len(es) > maxActionElems {
				t.Errorf("actions block has %d elements, want at most %d", len(es), maxActionElems)
			}
		case "context":
			es, _ := v["elements"].([]any)
			if len(es) > 10 {
				t.Errorf("context block has %d elements, want at most 10", len(es))
			}
			for _, e := range es {
				atMost(t, "context text", textOf(e), maxContextText)
			}
		case "button":
			atMost(t, "button text", textOf(v["text"]), maxButtonText)
			s, _ := v["value"].(string)
			atMost(t, "button value", s, maxButtonValue)
		}
		for _, e := range v {
			walk(t, e)
		}
	}
}

// buttons returns every button in v's JSON.
func buttons(t testing.TB, v any) []map[string]any {
	t.Helper()
	var doc any
	if err := json.Unmarshal(mustJSON(t, v), &doc); err != nil {
		t.Fatal(err)
	}
	var out []map[string]any
	var rec func(any)
	rec = func(v any) {
		switch v := v.(type) {
		case []any:
			for _, e := range v {
				rec(e)
			}
		case map[string]any:
			if v["type"] == "button" {
				out = append(out, v)
			}
			for _, e := range v {
				rec(e)
			}
		}
	}
	rec(doc)
	return out
}

func TestButtonValuesCarryOnlyTheRequestID(t *testing.T) {
	o := approvalOutput()
	o.Approvers = []string{"U0LEAD001"}
	stepUp := o
	stepUp.Kind = broker.KindStepUp
	tests := []struct {
		name   string
		blocks []slack.Block
		want   int // buttons expected
	}{
		{"approval", ApprovalMessage(o, owner, t0), 4},
		{"high risk approval", ApprovalMessage(highRiskOutput(), owner, t0), 2},
		{"step-up", StepUpMessage(stepUp), 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			bs := buttons(t, tt.blocks)
			if len(bs) != tt.want {
				t.Fatalf("got %d buttons, want %d", len(bs), tt.want)
			}
			for _, b := range bs {
				if got := b["value"]; got != reqID {
					t.Errorf("button %v: got value %q, want only the request ID %q", b["action_id"], got, reqID)
				}
				id, _ := b["action_id"].(string)
				for _, leak := range []string{o.Resource, owner, "U0LEAD001", "Fix", "acme"} {
					if strings.Contains(id, leak) {
						t.Errorf("action_id %q holds %q", id, leak)
					}
				}
			}
		})
	}
}

func TestApprovalButtons(t *testing.T) {
	bs := buttons(t, ApprovalMessage(approvalOutput(), owner, t0))
	type btn struct{ ActionID, Style string }
	var got []btn
	for _, b := range bs {
		style, _ := b["style"].(string)
		got = append(got, btn{b["action_id"].(string), style})
	}
	want := []btn{
		{"agenthub_decide_once", "primary"},
		{"agenthub_decide_1h", ""},
		{"agenthub_decide_standing", ""},
		{"agenthub_decide_deny", "danger"},
	}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("buttons (-want +got):\n%s", diff)
	}
}

func TestDecidedMessageHasNoButtons(t *testing.T) {
	for _, outcome := range []string{OutcomeApproved, OutcomeDenied, OutcomeExpired, OutcomeCanceled} {
		t.Run(outcome, func(t *testing.T) {
			if bs := buttons(t, DecidedMessage(request(), owner, t0, outcome)); len(bs) != 0 {
				t.Errorf("got %d buttons, want none", len(bs))
			}
		})
	}
}

func TestLimits(t *testing.T) {
	long := strings.Repeat("ä<", 4000) // escaping grows it; runes, not bytes
	choices := func(n int) []broker.Choice {
		cs := make([]broker.Choice, n)
		for i := range cs {
			cs[i] = broker.Choice{Key: fmt.Sprintf("c%d", i), Label: fmt.Sprintf("Choice %d", i)}
		}
		return cs
	}
	conns, _, pending, events := homeData()
	tests := []struct {
		name      string
		v         any
		maxBlocks int
		visible   string // what must show that something was cut
	}{
		{"section text", ApprovalMessage(broker.Output{Text: long, RequestID: reqID, Choices: choices(2)}, owner, t0), maxMessageBlock, "_(truncated)_"},
		{"field text", ApprovalMessage(broker.Output{Resource: long, RequestID: reqID}, owner, t0), maxMessageBlock, "_(truncated)_"},
		{"button text", ApprovalMessage(broker.Output{RequestID: reqID, Choices: []broker.Choice{{Key: "once", Label: strings.Repeat("é", 100)}}}, owner, t0), maxMessageBlock, "…"},
		{"button value", ApprovalMessage(broker.Output{RequestID: strings.Repeat("r", 3000), Choices: choices(1)}, owner, t0), maxMessageBlock, ""},
		{"actions elements", ApprovalMessage(broker.Output{RequestID: reqID, Choices: choices(30)}, owner, t0), maxMessageBlock, ""},
		{"message blocks", ApprovalMessage(broker.Output{RequestID: reqID, Choices: choices(25 * 60)}, owner, t0), maxMessageBlock, "more blocks _(truncated)_"},
		{"decided args", DecidedMessage(broker.Request{Step: broker.Step{Args: json.RawMessage(long)}}, owner, t0, OutcomeDenied), maxMessageBlock, "_(truncated)_"},
		{"step-up text", StepUpMessage(broker.Output{Text: long, RequestID: reqID}), maxMessageBlock, "_(truncated)_"},
		{"connect text", ConnectMessage(broker.Output{Text: long, Service: strings.Repeat("s", 3000)}), maxMessageBlock, "_(truncated)_"},
		{"modal metadata", StepUpModal(broker.Request{ID: strings.Repeat("r", 4000)}), maxMessageBlock, ""},
		{"reply text", map[string]string{"text": ResultText(broker.Output{Text: long})}, 0, "_(truncated)_"},
		{"home grants", HomeView(conns, manyGrants(300), pending, events), maxHomeBlocks, "and 255 more grants"},
		{"home everything", HomeView(manyConns(40), manyGrants(300), manyPending(90), events), maxHomeBlocks, "more pending requests"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			checkLimits(t, tt.v, tt.maxBlocks)
			raw := string(mustJSON(t, tt.v))
			if !strings.Contains(raw, tt.visible) {
				t.Errorf("no visible truncation %q in the output", tt.visible)
			}
			if !utf8.ValidString(raw) || strings.Contains(raw, `\ufffd`) {
				t.Error("output holds a broken character")
			}
		})
	}
}

func TestLimitsKeepWhatMatters(t *testing.T) {
	t.Run("every choice survives splitting into actions blocks", func(t *testing.T) {
		cs := make([]broker.Choice, 30)
		for i := range cs {
			cs[i] = broker.Choice{Key: fmt.Sprintf("c%d", i), Label: "x"}
		}
		if got := len(buttons(t, ApprovalMessage(broker.Output{RequestID: reqID, Choices: cs}, owner, t0))); got != 30 {
			t.Errorf("got %d buttons, want 30", got)
		}
	})
	t.Run("revoke everything survives a full App Home", func(t *testing.T) {
		v := HomeView(manyConns(40), manyGrants(300), manyPending(90), nil)
		bs := buttons(t, v)
		last := bs[len(bs)-1]
		if last["action_id"] != ActionRevokeAll || last["confirm"] == nil || last["style"] != "danger" {
			t.Errorf("got last button %v, want a danger %s with a confirm dialog", last["action_id"], ActionRevokeAll)
		}
	})
	t.Run("home shows only the last ten audit events", func(t *testing.T) {
		_, _, _, events := homeData()
		raw := string(mustJSON(t, HomeView(nil, nil, nil, events)))
		if strings.Contains(raw, "`#101`") || !strings.Contains(raw, "`#102`") || !strings.Contains(raw, "`#111`") {
			t.Errorf("want events #102…#111 and not #101 in %s", raw)
		}
	})
}

func manyConns(n int) []HomeConnection {
	cs := make([]HomeConnection, n)
	for i := range cs {
		cs[i] = HomeConnection{Service: fmt.Sprintf("svc%d", i), Status: "connected"}
	}
	return cs
}

func manyPending(n int) []broker.Request {
	rs := make([]broker.Request, n)
	for i := range rs {
		rs[i] = request()
		rs[i].ID = fmt.Sprintf("req_%d", i)
	}
	return rs
}

func TestEscape(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"plain", "hello world", "hello world"},
		{"ampersand", "a & b", "a &amp; b"},
		{"angle brackets", "a < b > c", "a &lt; b &gt; c"},
		{"broadcast", "<!channel> hi", "&lt;!channel&gt; hi"},
		{"mention", "<@U123>", "&lt;@U123&gt;"},
		{"link", "<https://evil|click>", "&lt;https://evil|click&gt;"},
		{"already escaped stays literal", "&amp;", "&amp;amp;"},
		{"formatting left alone", "*bold* _it_ `code`", "*bold* _it_ `code`"},
		{"unicode", "héllo <wörld>", "héllo &lt;wörld&gt;"},
		{"empty", "", ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := escape(tt.in); got != tt.want {
				t.Errorf("escape(%q) = %q, want %q", tt.in, got, tt.want)
			}
		})
	}
}

func TestTruncate(t *testing.T) {
	tests := []struct {
		name string
		in   string
		max  int
		want string
	}{
		{"fits", "hello", 5, "hello"},
		{"cut", "hello world", 6, "hello…"},
		{"multibyte", "héllo wörld", 6, "héllo…"},
		{"emoji", "🙂🙂🙂🙂", 3, "🙂🙂…"},
		{"one", "hello", 1, "…"},
		{"zero", "hello", 0, ""},
		{"empty", "", 3, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := truncate(tt.in, tt.max)
			if got != tt.want {
				t.Errorf("truncate(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
			if n := utf8.RuneCountInString(got); n > max(tt.max, 0) {
				t.Errorf("got %d runes, want at most %d", n, tt.max)
			}
		})
	}
}

func TestClip(t *testing.T) {
	tests := []struct {
		name    string
		in      string
		max     int
		want    string
		notWant string // a fragment that must not be left behind
	}{
		{"fits", "a &amp; b", 20, "a &amp; b", ""},
		{"no half entity", strings.Repeat("x", 10) + "&amp;" + strings.Repeat("y", 40), 28, "xxxxxxxxxx…" + truncatedNote, "&am"},
		{"no half mention", strings.Repeat("x", 10) + "<@U0MARIA01>" + strings.Repeat("y", 40), 30, "xxxxxxxxxx…" + truncatedNote, "<@"},
		{"unbalanced code", "`" + strings.Repeat("x", 40), 30, "'" + strings.Repeat("x", 14) + "…" + truncatedNote, "`"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got := clip(tt.in, tt.max)
			if got != tt.want {
				t.Errorf("clip(%q, %d) = %q, want %q", tt.in, tt.max, got, tt.want)
			}
			if n := utf8.RuneCountInString(got); n > tt.max {
				t.Errorf("got %d runes, want at most %d", n, tt.max)
			}
			if tt.notWant != "" && strings.Contains(got, tt.notWant) {
				t.Errorf("clip left %q behind: %q", tt.notWant, got)
			}
		})
	}
}

func TestMention(t *testing.T) {
	tests := []struct{ name, in, want string }{
		{"user ID", "U0MARIA01", "<@U0MARIA01>"},
		{"enterprise user", "W012ABC", "<@W012ABC>"},
		{"a principal is not a user ID", "T0ACME:U0MARIA01", "T0ACME:U0MARIA01"},
		{"broadcast is not a user", "!channel", "!channel"},
		{"markup is escaped", "<!here>", "&lt;!here&gt;"},
		{"lowercase is not an ID", "u123", "u123"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := mention(tt.in); got != tt.want {
				t.Errorf("mention(%q) = %q, want %q", tt.in, got, tt.want)
			}
			if tt.name == "a principal is not a user ID" {
				if got, want := actorMention(tt.in), "<@U0MARIA01>"; got != want {
					t.Errorf("actorMention(%q) = %q, want %q", tt.in, got, want)
				}
			}
		})
	}
}

// TestHostileTextStaysText proves that text quoted into a message cannot
// become a broadcast, a link or a mention: in mrkdwn it is escaped, and the
// arguments are shown as plain text, which Slack never reads as markup. A
// token-shaped string (which the broker never puts there) renders as inert
// text.
func TestHostileTextStaysText(t *testing.T) {
	const hostile = `title "<!channel> <https://evil.example|login> <@U0BOSS> xoxb-0000-FAKE-not-a-token"`
	o := approvalOutput()
	o.Text, o.Reason = hostile, hostile
	o.Args = json.RawMessage(`{"title":` + strconvQuote(hostile) + `}`)
	raw := mustJSON(t, ApprovalMessage(o, owner, t0))
	var mrkdwnText, plainText strings.Builder
	walkObjects(raw, func(x map[string]any) {
		text, _ := x["text"].(string)
		switch x["type"] {
		case "mrkdwn":
			mrkdwnText.WriteString(text)
		case "plain_text":
			plainText.WriteString(text)
		}
	})
	for _, bad := range []string{"<!channel>", "<https://evil", "<@U0BOSS>"} {
		if strings.Contains(mrkdwnText.String(), bad) {
			t.Errorf("mrkdwn holds live markup %q", bad)
		}
		if !strings.Contains(plainText.String(), bad) {
			t.Errorf("the arguments' plain text does not show %q as it is", bad)
		}
	}
	if !strings.Contains(mrkdwnText.String(), "&lt;!channel&gt;") || !strings.Contains(mrkdwnText.String(), "xoxb-0000-FAKE-not-a-token") {
		t.Errorf("quoted text not rendered escaped: %s", mrkdwnText.String())
	}
}

func strconvQuote(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

func TestAuditChannelLineMentionsNobody(t *testing.T) {
	e := audit.Event{Seq: 7, Time: time.Date(2026, 11, 27, 14, 3, 0, 0, time.UTC), Kind: audit.ApprovalGranted,
		Actor: "T1:U1ABC", Action: "github.merge_pull_request", Resource: "acme/payments#7"}
	if got := AuditLine(e); !strings.Contains(got, "<@U1ABC>") {
		t.Errorf("AuditLine = %q, want a mention of the actor", got)
	}
	got := AuditChannelLine(e)
	if strings.Contains(got, "<@") || !strings.Contains(got, "`T1:U1ABC`") {
		t.Errorf("AuditChannelLine = %q, want the actor in code and no mention", got)
	}
}

// longArgsOutput is an approval whose comment body is n characters long:
// too long to show on a card.
func longArgsOutput(n int) broker.Output {
	o := approvalOutput()
	o.Action, o.Args = "github.comment", longArgs(n)
	return o
}

func longArgs(n int) json.RawMessage {
	body := strings.Repeat("All good here. <@U0EVE> & friends ", n/34+1)[:n]
	raw, _ := json.Marshal(map[string]any{"body": body, "number": 12, "repo": "acme/website"})
	return raw
}

func longArgsRequest(n int) broker.Request {
	r := request()
	r.Step = broker.Step{Action: "github.comment", Args: longArgs(n)}
	r.ArgsHash = "3f9a1c0b7e2d4a6f8b1c3e5d7f9a0b2c4d6e8f0a1b3c5d7e9f0a2b4c6d8e0f1a"
	return r
}

// TestLongArgumentsAreNeverCutSilently: arguments too long for a card are
// not shown cut: the card says how long they are, shows their digest, and
// offers View all, whose modal holds every character of them, as plain
// text; arguments too long even for a modal say so.
func TestLongArgumentsAreNeverCutSilently(t *testing.T) {
	for _, n := range []int{3000, 65536} {
		o := longArgsOutput(n)
		card := string(mustJSON(t, ApprovalMessage(o, owner, t0)))
		if strings.Contains(card, "All good here") {
			t.Errorf("%d: the card shows part of the arguments", n)
		}
		if !strings.Contains(card, ActionViewArgs) || !strings.Contains(card, "3f9a 1c0b 7e2d 4a6f") {
			t.Errorf("%d: the card has no View all or no digest", n)
		}
		modal := ArgsModal(longArgsRequest(n))
		checkLimits(t, modal, maxModalBlocks)
		var got strings.Builder
		for _, b := range modal.Blocks.BlockSet {
			if s, ok := b.(*slack.SectionBlock); ok && s.Text != nil && s.Text.Type == slack.PlainTextType {
				got.WriteString(s.Text.Text)
			}
		}
		if want := prettyArgs(longArgs(n)); got.String() != want {
			t.Errorf("%d: the modal's text (%d runes) is not the whole arguments (%d runes)", n, utf8.RuneCountInString(got.String()), utf8.RuneCountInString(want))
		}
	}
	short := string(mustJSON(t, ApprovalMessage(approvalOutput(), owner, t0)))
	if strings.Contains(short, ActionViewArgs) || !strings.Contains(short, "Fix \u0026 ship") {
		t.Error("short arguments are not shown on the card itself")
	}
	huge := ArgsModal(broker.Request{Step: broker.Step{Args: longArgs(400_000)}})
	checkLimits(t, huge, maxModalBlocks)
	if !strings.Contains(string(mustJSON(t, huge)), "do not fit in a Slack window") {
		t.Error("arguments too long for a modal are cut without a word")
	}
}

func secondOutput() broker.Output {
	o := highRiskOutput()
	o.Action, o.Resource, o.Rule, o.Risk = "github.dispatch_workflow", "acme/payments:production", "prod-deploy-second-approver", "critical"
	o.Text, o.Reason = "deploy acme/payments to production", "deploy acme/payments to production"
	o.Args = json.RawMessage(`{"environment":"production","repo":"acme/payments"}`)
	o.Approvers = []string{"U0BOB123", "U0CAROL1"}
	return o
}

func TestSecondApprovalOffersOnlyOnceAndDeny(t *testing.T) {
	raw, err := json.Marshal(SecondApprovalMessage(secondOutput(), owner, t0))
	if err != nil {
		t.Fatal(err)
	}
	for _, key := range []string{broker.ChoiceHour, broker.ChoiceStanding} {
		if strings.Contains(string(raw), ActionDecidePrefix+key) {
			t.Errorf("a second approver is offered %q, which the broker refuses from them", key)
		}
	}
	for _, key := range []string{broker.ChoiceOnce, broker.ChoiceDeny} {
		if !strings.Contains(string(raw), ActionDecidePrefix+key) {
			t.Errorf("a second approver is not offered %q", key)
		}
	}
}

func TestCodeSpanCannotBeClosedEarly(t *testing.T) {
	got := code("acme/x` *bold* <!channel> https://evil.example")
	if strings.Count(got, "`") != 2 || !strings.HasPrefix(got, "`") || !strings.HasSuffix(got, "`") {
		t.Errorf("code(...) = %q: a backtick inside ends the span early", got)
	}
	if strings.Contains(got, "<!channel>") {
		t.Errorf("code(...) = %q: <!channel> left live", got)
	}
}

// TestStepUpPromptsTellRequestsApart: the step-up prompts of two merges
// into one branch differ by their arguments, so a look-alike queued by
// someone holding the session is not verified by mistake.
func TestStepUpPromptsTellRequestsApart(t *testing.T) {
	pr := func(n int) broker.Request {
		r := request()
		r.Step.Args = json.RawMessage(fmt.Sprintf(`{"number":%d,"repo":"acme/payments"}`, n))
		return r
	}
	a, b := string(mustJSON(t, StepUpModal(pr(7)))), string(mustJSON(t, StepUpModal(pr(8))))
	if a == b || !strings.Contains(a, `\"number\": 7`) {
		t.Errorf("the step-up modals of PR 7 and PR 8 do not tell them apart:\n%s", a)
	}
	msg := func(n int) string {
		return string(mustJSON(t, StepUpMessage(broker.Output{Kind: broker.KindStepUp, RequestID: reqID, Action: "github.merge_pull_request",
			Resource: "acme/payments:main", Args: pr(n).Step.Args})))
	}
	if msg(7) == msg(8) {
		t.Error("the step-up messages of PR 7 and PR 8 are the same")
	}
}
