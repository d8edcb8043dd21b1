package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/simenv"
	"github.com/agenthub/agenthub/internal/slackapp"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
	"github.com/agenthub/agenthub/internal/store/redisstore/redistest"
)

// The Slack bot end to end: run() as main calls it, with AGENTHUB_DEMO=1,
// against the project's fake Slack. Everything between the websocket and
// the simulated providers is the real thing.

const (
	e2eAppToken = "xapp-test-e2e-4c1d2f0e9a8b7c6d"
	e2eBotToken = "xoxb-test-e2e-9f8e7d6c5b4a3210"
	e2eAudit    = "C0AUDIT"
	e2eChannel  = "C0GENERAL"
	alice       = "U0ALICE"
	mallory     = "U0MALLORY"
)

// e2eEnv is the environment shared by the bot processes of one test: the
// same keys, store and fake Slack.
func e2eEnv(t *testing.T, srv *slacktest.Server, storeURL, prefix string) map[string]string {
	t.Helper()
	key := func() string {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		return base64.StdEncoding.EncodeToString(b)
	}
	return map[string]string{
		"SLACK_APP_TOKEN":        e2eAppToken,
		"SLACK_BOT_TOKEN":        e2eBotToken,
		"SLACK_API_URL":          srv.APIURL(),
		"AGENTHUB_DEMO":          "1",
		"AGENTHUB_STORE":         storeURL,
		"AGENTHUB_REDIS_PREFIX":  prefix,
		"AGENTHUB_VAULT_KEY":     key(),
		"AGENTHUB_AUDIT_KEY":     key(),
		"AGENTHUB_AUDIT_CHANNEL": e2eAudit,
		"AGENTHUB_HTTP_ADDR":     "127.0.0.1:0",
		"AGENTHUB_LOG_LEVEL":     "debug",
	}
}

// runningBot is one bot process: run() in a goroutine.
type runningBot struct {
	env    *botEnv
	stderr *lockedBuffer
	stdout *lockedBuffer
	cancel context.CancelFunc
	done   chan error
}

// startBot runs the bot with hooks h (its botStarted is startBot's) and
// waits until it is connected.
func startBot(t *testing.T, srv *slacktest.Server, vars map[string]string, h hooks) *runningBot {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	b := &runningBot{stderr: new(lockedBuffer), stdout: new(lockedBuffer), cancel: cancel, done: make(chan error, 1)}
	started := make(chan *botEnv, 1)
	h.botStarted = func(e *botEnv) { started <- e }
	hellos := srv.Hellos()
	go func() {
		b.done <- h.run(ctx, []string{"bot"}, func(k string) string { return vars[k] }, strings.NewReader(""), b.stdout, b.stderr)
	}()
	select {
	case b.env = <-started:
	case err := <-b.done:
		t.Fatalf("bot stopped before starting: %v\n%s", err, b.stderr.String())
	case <-time.After(30 * time.Second):
		t.Fatal("bot did not start")
	}
	wctx, wcancel := context.WithTimeout(ctx, 30*time.Second)
	defer wcancel()
	if err := srv.WaitHellos(wctx, hellos+1); err != nil {
		t.Fatalf("bot did not connect: %v", err)
	}
	t.Cleanup(func() { b.stop(t) })
	return b
}

// stop ends the bot and checks that it ended cleanly.
func (b *runningBot) stop(t *testing.T) {
	t.Helper()
	if b.cancel == nil {
		return
	}
	b.cancel()
	b.cancel = nil
	select {
	case err := <-b.done:
		if err != nil {
			t.Errorf("bot ended with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Error("bot did not stop")
	}
}

// push delivers an envelope and waits for its ack.
func push(t *testing.T, srv *slacktest.Server, env slacktest.Envelope) slacktest.Ack {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	id, err := srv.Push(ctx, env)
	if err != nil {
		t.Fatal(err)
	}
	ack, err := srv.WaitAck(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	return ack
}

// eventually polls cond until it holds or 20 s pass.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// messageWith finds a message in channel whose text or blocks contain s.
func messageWith(srv *slacktest.Server, channel, s string) (slacktest.Message, bool) {
	for _, m := range srv.Messages(channel) {
		if strings.Contains(m.Text, s) || strings.Contains(string(m.Blocks), s) {
			return m, true
		}
	}
	return slacktest.Message{}, false
}

// buttonValue returns the value of the button with actionID in blocks.
func buttonValue(t *testing.T, blocks json.RawMessage, actionID string) string {
	t.Helper()
	re := regexp.MustCompile(`"action_id":"` + regexp.QuoteMeta(actionID) + `"[^}]*?"value":"([^"]+)"|"value":"([^"]+)"[^}]*?"action_id":"` + regexp.QuoteMeta(actionID) + `"`)
	m := re.FindSubmatch(blocks)
	if m == nil {
		t.Fatalf("no button %s in %s", actionID, blocks)
	}
	if len(m[1]) > 0 {
		return string(m[1])
	}
	return string(m[2])
}

// threadReplies are the bot's messages in channel's thread under ts.
func threadReplies(srv *slacktest.Server, channel, ts string) []slacktest.Message {
	var out []slacktest.Message
	for _, m := range srv.Messages(channel) {
		if m.ThreadTS == ts {
			out = append(out, m)
		}
	}
	return out
}

func hasButtons(m slacktest.Message) bool {
	return strings.Contains(string(m.Blocks), `"type":"button"`)
}

func TestSlackBotEndToEnd(t *testing.T) {
	rr := &recordingRand{}
	srv := slacktest.New(t)
	vars := e2eEnv(t, srv, "bolt:"+filepath.Join(t.TempDir(), "bot.db"), "")
	bot := startBot(t, srv, vars, hooks{random: rr})
	dm := srv.DMChannel(alice)

	// A slash command: help is answered ephemerally within the ack.
	ack := push(t, srv, srv.SlashCommand(slacktest.Command{User: alice, Channel: e2eChannel, Command: slackapp.Command, Text: "help"}))
	var payload struct {
		ResponseType string `json:"response_type"`
		Text         string `json:"text"`
	}
	if err := json.Unmarshal(ack.Payload, &payload); err != nil || payload.ResponseType != "ephemeral" || !strings.Contains(payload.Text, "revoke all") {
		t.Fatalf("help ack payload = %s (%v), want an ephemeral help text", ack.Payload, err)
	}

	// A read runs at once; the answer is a threaded reply. Its retry is
	// handled once.
	mention := srv.AppMention(slacktest.Msg{User: alice, Channel: e2eChannel, Text: "<@" + slacktest.BotUserID + "> list open pull requests in acme/website"})
	push(t, srv, mention)
	eventually(t, "the read's reply", func() bool { _, ok := messageWith(srv, e2eChannel, "acme/website"); return ok })
	push(t, srv, mention.Retry(1, "timeout"))
	readTS := mention.MustEventTS(t)
	eventually(t, "the retry seen as a duplicate", func() bool {
		return strings.Contains(get(t, "http://"+bot.env.web.Addr()+"/metrics"), `agenthub_slack_duplicates_total{type="events_api"} 1`)
	})
	if got := len(threadReplies(srv, e2eChannel, readTS)); got != 1 {
		t.Errorf("replies to the read and its retry = %d, want 1", got)
	}

	// A merge: approval DM → Approve → step-up → enrolment → code → result.
	mergeMention := srv.AppMention(slacktest.Msg{User: alice, Channel: e2eChannel, Text: "<@" + slacktest.BotUserID + "> merge PR 7 in acme/payments"})
	push(t, srv, mergeMention)
	approval, reqID := awaitApproval(t, srv, dm)

	// A stranger's click is refused, ephemerally, and changes nothing.
	strangerClick := srv.BlockAction(slacktest.Action{User: mallory, Channel: dm, MessageTS: approval.TS,
		ActionID: slackapp.ActionDecidePrefix + broker.ChoiceOnce, Value: reqID})
	strangerURL := strangerClick.ResponseURL()
	if strangerURL == "" {
		t.Fatal("click payload has no response_url")
	}
	push(t, srv, strangerClick)
	eventually(t, "the stranger's ephemeral refusal", func() bool {
		for _, r := range srv.Responses() {
			if r.URL == strangerURL && (r.ResponseType == "ephemeral" || r.ResponseType == "") && !r.ReplaceOriginal {
				return true
			}
		}
		for _, m := range srv.Ephemerals(dm) {
			if m.User == mallory {
				return true
			}
		}
		return false
	})
	if r, err := bot.env.core.Broker.Lookup(context.Background(), reqID); err != nil || r.Status != broker.StatusPending {
		t.Fatalf("after the stranger's click the request is %s (%v), want pending", r.Status, err)
	}

	push(t, srv, srv.BlockAction(slacktest.Action{User: alice, Channel: dm, MessageTS: approval.TS,
		ActionID: slackapp.ActionDecidePrefix + broker.ChoiceOnce, Value: reqID}))
	var stepMsg slacktest.Message
	eventually(t, "the step-up DM", func() bool {
		var ok bool
		stepMsg, ok = messageWith(srv, dm, slackapp.ActionStepUp)
		return ok
	})
	push(t, srv, srv.BlockAction(slacktest.Action{User: alice, Channel: dm, MessageTS: stepMsg.TS, ActionID: slackapp.ActionStepUp, Value: reqID}))
	// Not enrolled: the enrolment DM shows the secret once.
	var enrol slacktest.Message
	eventually(t, "the enrolment DM", func() bool {
		var ok bool
		enrol, ok = messageWith(srv, dm, slackapp.ActionEnrolConfirm)
		return ok
	})
	secret := regexp.MustCompile("`([A-Z2-7]{16,})`").FindStringSubmatch(string(enrol.Blocks))
	if secret == nil {
		t.Fatalf("no secret in the enrolment DM: %s", enrol.Blocks)
	}
	now := time.Now()
	first, err := totp.GenerateCode(secret[1], now)
	if err != nil {
		t.Fatal(err)
	}
	push(t, srv, srv.ViewSubmission(slacktest.Submission{User: alice, CallbackID: slackapp.CallbackEnrol, PrivateMetadata: reqID,
		Values: map[string]map[string]string{slackapp.EnrolBlockID: {slackapp.EnrolActionID: first}}}))
	eventually(t, "the secret removed from the DM", func() bool {
		for _, m := range srv.Messages(dm) {
			if m.TS == enrol.TS {
				return !strings.Contains(string(m.Blocks), secret[1]) && !strings.Contains(m.Text, secret[1])
			}
		}
		return false
	})
	// The step-up modal, a wrong code, then the next step's code (the
	// first one was spent on the confirmation).
	push(t, srv, srv.BlockAction(slacktest.Action{User: alice, Channel: dm, MessageTS: stepMsg.TS, ActionID: slackapp.ActionStepUp, Value: reqID}))
	eventually(t, "the step-up modal", func() bool {
		for _, v := range srv.Opened() {
			if strings.Contains(string(v.JSON), slackapp.CallbackStepUp) {
				return true
			}
		}
		return false
	})
	push(t, srv, srv.ViewSubmission(slacktest.Submission{User: alice, CallbackID: slackapp.CallbackStepUp, PrivateMetadata: reqID,
		Values: map[string]map[string]string{slackapp.StepUpBlockID: {slackapp.StepUpActionID: wrongCode(first)}}}))
	eventually(t, "the wrong code told", func() bool { _, ok := messageWith(srv, dm, "Not run:"); return ok })
	next, err := totp.GenerateCode(secret[1], now.Add(30*time.Second))
	if err != nil {
		t.Fatal(err)
	}
	push(t, srv, srv.ViewSubmission(slacktest.Submission{User: alice, CallbackID: slackapp.CallbackStepUp, PrivateMetadata: reqID,
		Values: map[string]map[string]string{slackapp.StepUpBlockID: {slackapp.StepUpActionID: next}}}))
	// acme/payments is private: the result goes to the DM, and the thread
	// is told so.
	eventually(t, "the merge's result in the DM, and a note in the thread", func() bool {
		_, inDM := messageWith(srv, dm, "Merged acme/payments#7")
		for _, m := range threadReplies(srv, e2eChannel, mergeMention.MustEventTS(t)) {
			if strings.Contains(m.Text, "Merged acme/payments#7") {
				t.Fatalf("the private merge's result was posted in the channel: %q", m.Text)
			}
			if inDM && m.Text == "I sent you the result in a DM." {
				return true
			}
		}
		return false
	})
	if pr, ok := bot.env.core.providers.sim.World.GitHub().PullRequest("acme/payments", 7); !ok || !pr.Merged {
		t.Fatal("the result says merged, the simulated GitHub does not")
	}
	eventually(t, "the approval DM updated", func() bool {
		for _, m := range srv.Messages(dm) {
			if m.TS == approval.TS {
				return m.Updates > 0 && !hasButtons(m)
			}
		}
		return false
	})

	// Revoke by slash command: answered through response_url, App Home
	// republished.
	published := len(srv.Published(alice))
	push(t, srv, srv.SlashCommand(slacktest.Command{User: alice, Channel: e2eChannel, Command: slackapp.Command, Text: "revoke github"}))
	eventually(t, "the revoke's ephemeral answer", func() bool {
		for _, r := range srv.Responses() {
			if strings.Contains(r.Text, "Revoked github") {
				return true
			}
		}
		return false
	})
	eventually(t, "App Home republished", func() bool { return len(srv.Published(alice)) > published })

	// The audit channel: every event once, the chain head matching the store.
	eventually(t, "the audit channel", func() bool {
		_, ok := messageWith(srv, e2eAudit, "connection.revoked")
		return ok
	})
	mergeLine := regexp.MustCompile("`action.succeeded` `T[A-Z0-9]+:" + alice + "` github.merge_pull_request")
	merged := false
	for _, m := range srv.Messages(e2eAudit) {
		merged = merged || mergeLine.Match(m.Blocks)
	}
	if !merged {
		t.Error("the audit channel has no line for the merge that ran")
	}

	// The channel's last chain head is a stored event's hash: the channel
	// witnesses the chain.
	heads := regexp.MustCompile(`chain head #(\d+) ([0-9a-f]{64})`)
	var lastSeq, lastHash string
	for _, m := range srv.Messages(e2eAudit) {
		for _, h := range heads.FindAllStringSubmatch(string(m.Blocks), -1) {
			lastSeq, lastHash = h[1], h[2]
		}
	}
	if lastSeq == "" {
		t.Fatal("no chain head line in the audit channel")
	}
	tail, err := bot.env.core.Audit.Tail(context.Background(), 10_000)
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, e := range tail {
		if fmt.Sprint(e.Seq) == lastSeq {
			found = e.Hash == lastHash
		}
	}
	if !found {
		t.Errorf("chain head #%s in the channel does not match the stored event", lastSeq)
	}

	// Health, readiness, metrics.
	base := "http://" + bot.env.web.Addr()
	for path, want := range map[string]string{"/healthz": "ok", "/readyz": "ready", "/metrics": "agenthub_slack_acks_total"} {
		body := get(t, base+path)
		if !strings.Contains(body, want) {
			t.Errorf("GET %s = %.300q, want %q in it", path, body, want)
		}
	}
	metrics := get(t, base+"/metrics")
	for _, want := range []string{`agenthub_policy_decisions_total{effect="stepup"}`, `agenthub_approvals_total{outcome="rejected"} 1`, "agenthub_slack_duplicates_total"} {
		if !strings.Contains(metrics, want) {
			t.Errorf("metrics lack %q", want)
		}
	}

	bot.stop(t)
	// No secret anywhere: not the Slack tokens, not the keys, not a token
	// the simulated providers issued, in any encoding; not in the logs, not
	// in anything sent to Slack. (The TOTP secret is shown once, in the
	// enrolment DM, by design, and removed once confirmed.)
	var posted strings.Builder
	posted.WriteString(sentToSlack(srv))
	for _, r := range srv.Responses() {
		posted.WriteString(r.Text + "\n" + string(r.Blocks) + "\n")
	}
	surfaces := map[string]string{"stderr": bot.stderr.String(), "stdout": bot.stdout.String(), "slack": posted.String()}
	if !strings.Contains(surfaces["stderr"], `"level":"DEBUG"`) {
		t.Error("nothing was logged at debug level: the log check proves little")
	}
	secrets := []string{e2eAppToken, e2eBotToken, vars["AGENTHUB_VAULT_KEY"], vars["AGENTHUB_AUDIT_KEY"]}
	for _, c := range rr.values() {
		secrets = append(secrets, hex.EncodeToString(c), base64.StdEncoding.EncodeToString(c), base64.RawURLEncoding.EncodeToString(c), string(c))
	}
	if len(secrets) < 4+4*6 {
		t.Fatalf("the bot drew %d random values, want at least the tokens of three services", (len(secrets)-4)/4)
	}
	for name, text := range surfaces {
		for i, s := range secrets {
			if strings.Contains(text, s) {
				t.Errorf("%s holds secret #%d", name, i) // which, never what
			}
		}
		if loc := tokenShape.FindStringIndex(text); loc != nil {
			t.Errorf("%s holds a provider token at byte %d", name, loc[0])
		}
	}
}

func get(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// TestTwoBotsShareOneRedis: two bot processes on one Redis and one fake
// Slack (which spreads envelopes over both connections). A request made
// through one is decided through the other and runs once; 200 duplicate
// clicks spread over both run it once.
func TestTwoBotsShareOneRedis(t *testing.T) {
	rs := redistest.Start(t)
	srv := slacktest.New(t)
	vars := e2eEnv(t, srv, rs.URL(), rs.Prefix())
	providers := simenv.StartProviders(nil, nil)
	defer providers.Server.Close()
	a := startBot(t, srv, vars, hooks{providers: providers})
	b := startBot(t, srv, vars, hooks{providers: providers})
	dm := srv.DMChannel(alice)

	// Alice's first contact connects her (demo mode); the comment needs
	// approval.
	push(t, srv, srv.AppMention(slacktest.Msg{User: alice, Channel: e2eChannel, Text: "<@" + slacktest.BotUserID + "> comment 'LGTM' on PR 7 in acme/payments"}))
	approval, reqID := awaitApproval(t, srv, dm)
	before := len(providers.World.CallsFor("github"))

	click := srv.BlockAction(slacktest.Action{User: alice, Channel: dm, MessageTS: approval.TS,
		ActionID: slackapp.ActionDecidePrefix + broker.ChoiceOnce, Value: reqID})
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var wg sync.WaitGroup
	errs := make(chan error, 200)
	for i := 0; i < 200; i++ {
		wg.Go(func() {
			c := click
			c.EnvelopeID = "" // a new envelope for each click
			id, err := srv.Push(ctx, c)
			if err == nil {
				_, err = srv.WaitAck(ctx, id)
			}
			if err != nil {
				errs <- err
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	eventually(t, "the request to finish", func() bool {
		r, err := a.env.core.Broker.Lookup(context.Background(), reqID)
		return err == nil && (r.Status == broker.StatusSucceeded || r.Status == broker.StatusFailed)
	})
	// The clicks reached both processes, and each knew the other had
	// handled the click: 199 duplicates between them, some on each.
	dup := regexp.MustCompile(`(?m)^agenthub_slack_duplicates_total\{type="interactive"\} (\d+)$`)
	counts := func() (first, second int) {
		for i, bot := range []*runningBot{a, b} {
			m := dup.FindStringSubmatch(get(t, "http://"+bot.env.web.Addr()+"/metrics"))
			if m == nil {
				t.Fatalf("bot %d's metrics lack the duplicates counter", i+1)
			}
			n, _ := strconv.Atoi(m[1])
			if i == 0 {
				first = n
			} else {
				second = n
			}
		}
		return first, second
	}
	// Every click is acked at once and handled after: wait for the queues.
	eventually(t, "199 duplicate clicks", func() bool { x, y := counts(); return x+y >= 199 })
	if x, y := counts(); x == 0 || y == 0 || x+y != 199 {
		t.Errorf("duplicate clicks = %d + %d, want 199 with some on each bot", x, y)
	}
	r, _ := b.env.core.Broker.Lookup(context.Background(), reqID)
	if r.Status != broker.StatusSucceeded {
		t.Fatalf("request status = %s (%s), want succeeded", r.Status, r.Result)
	}
	comments := 0
	for _, c := range providers.World.CallsFor("github")[before:] {
		if c.Method == http.MethodPost && strings.HasSuffix(c.Path, "/comments") {
			comments++
		}
	}
	if comments != 1 {
		t.Errorf("comments posted = %d, want 1", comments)
	}
	executed := 0
	events, err := a.env.core.Audit.Tail(context.Background(), 10_000)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range events {
		if e.Kind == audit.ActionSucceeded && e.RequestID == reqID {
			executed++
		}
	}
	if executed != 1 {
		t.Errorf("action.succeeded events = %d, want 1", executed)
	}

}

// sentToSlack is every field of every Web API call the fake Slack took,
// one per line: what a secret must never be in.
func sentToSlack(srv *slacktest.Server) string {
	var b strings.Builder
	for _, c := range srv.Calls("") {
		for _, v := range c.Fields {
			b.WriteString(v + "\n")
		}
	}
	return b.String()
}
