package slackapp

import (
	"context"
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
)

// TestNoSecretsReachSlack runs every kind of interaction and then looks for
// the stack's secrets in everything the app sent to Slack and logged: the
// simulated providers' tokens and the stack's keys (all drawn from the
// recorded random source), the bot token, and the TOTP secret, which may
// appear in the one enrolment DM and nowhere else.
func TestNoSecretsReachSlack(t *testing.T) {
	f := newFlow(t, flowOptions{demo: true})
	f.do(f.srv.AppHomeOpened(alice)) // first contact: the demo connects alice

	// A step that runs, one approved, a merge with enrolment and step-up.
	f.mention(alice, "C1", listPulls)
	f.mention(alice, "C1", comment)
	f.do(f.click(alice, f.lastDM(alice), ActionDecidePrefix+broker.ChoiceOnce))
	stepUp, _ := askMerge(t, f)
	enrolment := f.lastDM(alice)
	secret := enrolmentSecret(t, enrolment)
	f.do(f.click(alice, enrolment, ActionEnrolConfirm))
	code, err := totp.GenerateCode(secret, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	f.submit(alice, code)
	f.do(f.click(alice, f.lastDM(alice), ActionStepUp))
	f.submit(alice, otherCode(f.demoCode(alice)))
	f.do(f.click(alice, f.lastDM(alice), ActionStepUp))
	f.submit(alice, f.demoCode(alice))
	f.do(f.click(eve, stepUp, ActionStepUp))
	for _, c := range []string{"whoami", "grants", "pending", "audit 50", "connect github", "revoke github", "revoke all"} {
		f.command(alice, c)
	}
	f.mention(alice, "C1", listPulls) // after the revoke: a connect prompt

	tokens := f.random.hexChunks()
	if len(tokens) < 6 {
		t.Fatalf("only %d secrets recorded: the canary would see nothing", len(tokens))
	}

	// Everything Slack received, call by call.
	secretCalls := 0
	for _, c := range f.srv.Calls("") {
		raw, _ := json.Marshal(c.Fields)
		body := string(raw)
		for _, tok := range append(tokens, flowBotToken) {
			if strings.Contains(body, tok) {
				t.Errorf("a secret reached Slack in %s", c.Method)
			}
		}
		if strings.Contains(body, secret) {
			secretCalls++
			if c.Method != "chat.postMessage" || c.Fields["ts"] != "" {
				t.Errorf("the TOTP secret reached Slack in %s", c.Method)
			}
		}
	}
	if secretCalls != 1 {
		t.Errorf("the TOTP secret was sent %d times, want once (the enrolment DM)", secretCalls)
	}
	for _, r := range f.srv.Responses() {
		for _, tok := range append(tokens, flowBotToken, secret) {
			if strings.Contains(r.Text, tok) || strings.Contains(string(r.Blocks), tok) {
				t.Error("a secret reached a response_url")
			}
		}
	}
	// And as the conversation now stands, the secret is gone from it.
	for _, m := range f.srv.Messages(f.srv.DMChannel(alice)) {
		if strings.Contains(m.Text, secret) || strings.Contains(string(m.Blocks), secret) {
			t.Errorf("message %s still shows the TOTP secret", m.TS)
		}
	}

	logs := f.logs.String()
	for _, tok := range append(tokens, flowBotToken, secret, code) {
		if strings.Contains(logs, tok) {
			t.Error("a secret reached the app's log")
		}
		if strings.Contains(f.stackLogs.String(), tok) {
			t.Error("a secret reached the stack's log")
		}
	}
	for _, words := range []string{"LGTM", "acme/website"} {
		if strings.Contains(logs, words) {
			t.Errorf("people's words (%q) reached the log", words)
		}
	}
}

// brokenBroker is the real broker whose Handle also reports an operator
// error, as when the audit trail is down.
type brokenBroker struct{ *broker.Broker }

var errAuditDown = errors.New("audit store unreachable")

func (b brokenBroker) Handle(ctx context.Context, m broker.Message) ([]broker.Output, error) {
	outs, _ := b.Broker.Handle(ctx, m)
	return outs, errAuditDown
}

func TestBrokerErrorIsLoggedNotShown(t *testing.T) {
	f := newFlow(t, flowOptions{})
	f.app.opts.Broker = brokenBroker{f.env.Broker}
	if err := f.env.ConnectAll(f.ctx, testPrincipal(alice)); err != nil {
		t.Fatal(err)
	}
	ts := f.mention(alice, "C1", listPulls)
	if got := f.replies("C1", ts); len(got) != 1 || strings.Contains(got[0], errAuditDown.Error()) {
		t.Errorf("replies = %q, want the outputs without the internal error", got)
	}
	logs := f.logs.String()
	if !strings.Contains(logs, errAuditDown.Error()) || !strings.Contains(logs, `"slack_user":"`+alice+`"`) || !strings.Contains(logs, `"level":"WARN"`) {
		t.Errorf("log = %s, want a warning with the error and the Slack user", logs)
	}
	if strings.Contains(logs, "acme/website") {
		t.Error("the message's text reached the log")
	}
}

func TestAckFor(t *testing.T) {
	f := newFlow(t, flowOptions{})
	tests := []struct {
		name string
		env  slacktest.Envelope
		want string // "" for a bare ack
	}{
		{"step-up code ok", f.srv.ViewSubmission(slacktest.Submission{User: alice, CallbackID: CallbackStepUp, PrivateMetadata: "r1",
			Values: map[string]map[string]string{StepUpBlockID: {StepUpActionID: "123456"}}}), ""},
		{"step-up code short", f.srv.ViewSubmission(slacktest.Submission{User: alice, CallbackID: CallbackStepUp, PrivateMetadata: "r1",
			Values: map[string]map[string]string{StepUpBlockID: {StepUpActionID: "12345"}}}), `"errors":{"` + StepUpBlockID + `"`},
		{"step-up code missing", f.srv.ViewSubmission(slacktest.Submission{User: alice, CallbackID: CallbackStepUp, PrivateMetadata: "r1"}),
			`"response_action":"errors"`},
		{"enrol code letters", f.srv.ViewSubmission(slacktest.Submission{User: alice, CallbackID: CallbackEnrol, PrivateMetadata: "r1",
			Values: map[string]map[string]string{EnrolBlockID: {EnrolActionID: "12345a"}}}), `"errors":{"` + EnrolBlockID + `"`},
		{"other modal", f.srv.ViewSubmission(slacktest.Submission{User: alice, CallbackID: "someone_else"}), ""},
		{"mention", f.srv.AppMention(slacktest.Msg{User: alice, Channel: "C1", Text: "hi"}), ""},
		{"click", f.srv.BlockAction(slacktest.Action{User: alice, ActionID: ActionStepUp, Value: "r1"}), ""},
		{"slash pending", f.srv.SlashCommand(slacktest.Command{User: alice, Command: Command, Text: "pending"}), ""},
		{"slash help", f.srv.SlashCommand(slacktest.Command{User: alice, Command: Command, Text: "help"}), `"response_type":"ephemeral"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w := workOf(t, tt.env)
			var got string
			if p := f.app.ackFor(&w); p != nil {
				b, err := json.Marshal(p)
				if err != nil {
					t.Fatal(err)
				}
				got = string(b)
			}
			if (tt.want == "") != (got == "") || !strings.Contains(got, tt.want) {
				t.Errorf("ack = %s, want %s", got, tt.want)
			}
		})
	}
	if calls := f.srv.Calls(""); len(calls) != 0 {
		t.Errorf("ackFor made Slack calls: %+v", calls)
	}
}
