package slackapp

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/clocktest"
	"github.com/agenthub/agenthub/internal/logtest"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/simenv"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/redisstore/redistest"
)

// The handlers' tests drive a.ackFor and a.handleWork directly with work
// built from the fake Slack's envelopes, parsed the way socketmode parses
// them, against the real broker of internal/simenv and the fake's Web API.

const flowBotToken = "xoxb-test-handlers-0123456789"

// flowOptions vary a flow's set-up.
type flowOptions struct {
	policy     *policy.Engine // nil: the default policy
	demo       bool           // Options.Demo, with Connect
	noEnroller bool           // leave Options.Enroller nil
	noConnect  bool           // leave Options.Connect nil
	// connectLink is Options.ConnectLink (nil: not set).
	connectLink func(broker.Principal, string, []string) (string, error)
	// stackStore, when set, wraps the store the simulated stack (broker,
	// vault, step-up) uses, to inject faults there.
	stackStore func(store.Store) store.Store
	// gated gates enrolment (stepup.Options.Gated), with admins as
	// Options.Admins and signInLink as Options.SignInLink.
	gated      bool
	admins     []string
	signInLink func(broker.Principal, string) (string, error)
	enrolLink  func(context.Context, broker.Principal, string, bool) (string, error)
	planner    broker.Planner // nil: the rules planner
}

// flow is one test's world: a fake Slack, the simulated stack and an App.
type flow struct {
	t     testing.TB
	ctx   context.Context
	srv   *slacktest.Server
	app   *App
	env   *simenv.Env
	store store.Store
	logs  *lockedBuffer // the App's log
	// stackLogs is the simulated stack's log, which records provider
	// calls (paths, so people's words) by design.
	stackLogs *lockedBuffer
	clock     *clocktest.Clock
	random    *recordingRand
}

func newFlow(t testing.TB, fo flowOptions) *flow {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	t.Cleanup(cancel)
	st := redistest.Open(t)()
	f := &flow{t: t, ctx: ctx, store: st, logs: &lockedBuffer{}, stackLogs: &lockedBuffer{}, random: &recordingRand{},
		clock: clocktest.New(time.Now())}
	logger := slog.New(slog.NewJSONHandler(f.logs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	stackLogger := slog.New(slog.NewJSONHandler(f.stackLogs, &slog.HandlerOptions{Level: slog.LevelDebug}))
	var stackSt store.Store = st
	if fo.stackStore != nil {
		stackSt = fo.stackStore(st)
	}
	f.srv = slacktest.New(t)
	api := slack.New(flowBotToken, slack.OptionAPIURL(f.srv.APIURL()))
	env, err := simenv.Start(ctx, simenv.Options{Store: stackSt, Logger: stackLogger, Rand: f.random, Policy: fo.policy,
		Directory: NewDirectory(api, f.clock.Now), GatedEnrolment: fo.gated, Planner: fo.planner})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { env.Close() })
	f.env = env
	opts := Options{
		Broker: env.Broker, Store: st,
		API: api,
		Connections: func(ctx context.Context, principal broker.Principal) ([]HomeConnection, error) {
			cs, err := env.Vault.Connections(ctx, principal.String())
			out := make([]HomeConnection, len(cs))
			for i, c := range cs {
				out[i] = HomeConnection{Service: c.Service, Status: string(c.Status), Scopes: c.Scopes, LastUsed: c.LastUsed}
			}
			return out, err
		},
		History: func(ctx context.Context, principal broker.Principal, n int) ([]audit.Event, error) {
			return env.Audit.TailOf(ctx, principal.String(), n, 1000)
		},
		Demo: fo.demo, Services: simenv.Services,
		Logger: logger, Now: f.clock.Now,
	}
	if !fo.noEnroller {
		opts.Enroller = env.StepUp
	}
	if !fo.noConnect {
		opts.Connect = env.Connect
	}
	opts.ConnectLink = fo.connectLink
	opts.Admins, opts.SignInLink, opts.EnrolLink = fo.admins, fo.signInLink, fo.enrolLink
	f.app, err = New(opts)
	if err != nil {
		t.Fatal(err)
	}
	f.app.botUser = slacktest.BotUserID // Run sets it from auth.test
	return f
}

// principal is user's principal in the fake's workspace.
func testPrincipal(user string) broker.Principal {
	return broker.Principal{Team: slacktest.TeamID, User: user}
}

// workOf parses an envelope the way socketmode does.
func workOf(tb testing.TB, env slacktest.Envelope) work {
	tb.Helper()
	w := work{envelopeID: "test-envelope", acked: time.Now()}
	var err error
	switch env.Type {
	case "events_api":
		w.typ = socketmode.EventTypeEventsAPI
		w.event, err = slackevents.ParseEvent(env.Payload, slackevents.OptionNoVerifyToken())
	case "interactive":
		w.typ = socketmode.EventTypeInteractive
		err = json.Unmarshal(env.Payload, &w.interaction)
	case "slash_commands":
		w.typ = socketmode.EventTypeSlashCommand
		err = json.Unmarshal(env.Payload, &w.command)
	default:
		tb.Fatalf("envelope type %q", env.Type)
	}
	if err != nil {
		tb.Fatalf("parse %s payload: %v", env.Type, err)
	}
	return w
}

// do acks and handles one envelope, as the transport would, and returns
// the ack's payload as JSON ("" for a bare ack).
func (f *flow) do(env slacktest.Envelope) string {
	f.t.Helper()
	w := workOf(f.t, env)
	var ack string
	if p := f.app.ackFor(&w); p != nil {
		b, err := json.Marshal(p)
		if err != nil {
			f.t.Fatal(err)
		}
		ack = string(b)
	}
	if err := f.app.handleWork(f.ctx, w); err != nil {
		f.t.Fatalf("handleWork: %v", err)
	}
	return ack
}

// mention has user mention the bot in channel and returns the message's ts.
func (f *flow) mention(user, channel, text string) string {
	f.t.Helper()
	env := f.srv.AppMention(slacktest.Msg{User: user, Channel: channel, Text: "<@" + slacktest.BotUserID + "> " + text})
	f.do(env)
	return workOf(f.t, env).event.InnerEvent.Data.(*slackevents.AppMentionEvent).TimeStamp
}

// dms returns the bot's top-level messages in user's DM, oldest first.
func (f *flow) dms(user string) []slacktest.Message {
	var out []slacktest.Message
	for _, m := range f.srv.Messages(f.srv.DMChannel(user)) {
		if m.ThreadTS == "" {
			out = append(out, m)
		}
	}
	return out
}

// lastDM returns the newest top-level message in user's DM.
func (f *flow) lastDM(user string) slacktest.Message {
	f.t.Helper()
	ms := f.dms(user)
	if len(ms) == 0 {
		f.t.Fatalf("no DM to %s", user)
	}
	return ms[len(ms)-1]
}

// message returns the message as it now stands.
func (f *flow) message(m slacktest.Message) slacktest.Message {
	f.t.Helper()
	for _, now := range f.srv.Messages(m.Channel) {
		if now.TS == m.TS {
			return now
		}
	}
	f.t.Fatalf("message %s in %s is gone", m.TS, m.Channel)
	return slacktest.Message{}
}

// replies returns the texts of the bot's replies in a thread.
func (f *flow) replies(channel, ts string) []string {
	var out []string
	for _, m := range f.srv.Messages(channel) {
		if m.ThreadTS == ts {
			out = append(out, m.Text)
		}
	}
	return out
}

// click presses the button actionID of message m as user.
func (f *flow) click(user string, m slacktest.Message, actionID string) slacktest.Envelope {
	f.t.Helper()
	value, ok := flowButtons(m.Blocks)[actionID]
	if !ok {
		f.t.Fatalf("message %s has no button %s; it has %v", m.TS, actionID, flowButtons(m.Blocks))
	}
	return f.srv.BlockAction(slacktest.Action{User: user, Channel: m.Channel, MessageTS: m.TS, ActionID: actionID, Value: value})
}

// submit sends the modal last opened, with code typed in.
func (f *flow) submit(user, code string) string {
	f.t.Helper()
	opened := f.srv.Opened()
	if len(opened) == 0 {
		f.t.Fatal("no modal was opened")
	}
	var v struct {
		CallbackID      string `json:"callback_id"`
		PrivateMetadata string `json:"private_metadata"`
		Blocks          []struct {
			Type    string `json:"type"`
			BlockID string `json:"block_id"`
			Element struct {
				ActionID string `json:"action_id"`
			} `json:"element"`
		} `json:"blocks"`
	}
	if err := json.Unmarshal(opened[len(opened)-1].JSON, &v); err != nil {
		f.t.Fatal(err)
	}
	values := map[string]map[string]string{}
	for _, b := range v.Blocks {
		if b.Type == "input" {
			values[b.BlockID] = map[string]string{b.Element.ActionID: code}
		}
	}
	return f.do(f.srv.ViewSubmission(slacktest.Submission{User: user, ViewID: opened[len(opened)-1].ID,
		CallbackID: v.CallbackID, PrivateMetadata: v.PrivateMetadata, Values: values}))
}

// flowButtons maps the action IDs of a message's buttons to their values.
func flowButtons(blocks json.RawMessage) map[string]string {
	out := map[string]string{}
	walkObjects(blocks, func(x map[string]any) {
		if x["type"] == "button" {
			id, _ := x["action_id"].(string)
			value, _ := x["value"].(string)
			out[id] = value
		}
	})
	return out
}

// flowTexts joins every text of a message's blocks.
func flowTexts(blocks json.RawMessage) string {
	var b strings.Builder
	walkObjects(blocks, func(x map[string]any) {
		if s, ok := x["text"].(string); ok {
			b.WriteString(s + "\n")
		}
	})
	return b.String()
}

// walkObjects calls visit for every JSON object in raw, depth first.
func walkObjects(raw json.RawMessage, visit func(map[string]any)) {
	var walk func(v any)
	walk = func(v any) {
		switch x := v.(type) {
		case map[string]any:
			visit(x)
			for _, c := range x {
				walk(c)
			}
		case []any:
			for _, c := range x {
				walk(c)
			}
		}
	}
	var v any
	if json.Unmarshal(raw, &v) == nil {
		walk(v)
	}
}

// events returns the audit trail's events of kind.
func (f *flow) events(kind audit.Kind) []audit.Event {
	f.t.Helper()
	all, err := f.env.Audit.Tail(f.ctx, 1000)
	if err != nil {
		f.t.Fatal(err)
	}
	var out []audit.Event
	for _, e := range all {
		if e.Kind == kind {
			out = append(out, e)
		}
	}
	return out
}

// demoCode is the code U's authenticator shows now.
func (f *flow) demoCode(user string) string {
	f.t.Helper()
	code, err := f.env.StepUp.DemoCode(f.ctx, testPrincipal(user).String())
	if err != nil {
		f.t.Fatal(err)
	}
	return code
}

// lockedBuffer is a log destination safe for concurrent writers.
type lockedBuffer = logtest.Buffer

// recordingRand is crypto/rand that remembers every chunk it handed out,
// so a test knows every key and token the simulated stack made.
type recordingRand struct {
	mu     sync.Mutex
	chunks [][]byte
}

func (r *recordingRand) Read(p []byte) (int, error) {
	n, err := io.ReadFull(rand.Reader, p)
	r.mu.Lock()
	r.chunks = append(r.chunks, bytes.Clone(p[:n]))
	r.mu.Unlock()
	return n, err
}

func (r *recordingRand) hexChunks() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []string
	for _, c := range r.chunks {
		if len(c) >= 16 {
			out = append(out, fmt.Sprintf("%x", c))
		}
	}
	return out
}
