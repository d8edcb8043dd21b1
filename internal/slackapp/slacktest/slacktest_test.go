package slacktest_test

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
)

// Fake tokens with the right prefixes; the tests check they are never recorded.
const (
	botToken = "xoxb-0000-fake-bot-token"
	appToken = "xapp-1-fake-app-token"
)

func newAPI(srv *slacktest.Server, bot, app string) *slack.Client {
	return slack.New(bot, slack.OptionAPIURL(srv.APIURL()), slack.OptionAppLevelToken(app))
}

func testContext(tb testing.TB) context.Context {
	tb.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	tb.Cleanup(cancel)
	return ctx
}

// received is what the test's app saw of one envelope.
type received struct {
	kind string // the inner event type, "slash" or the interaction type
	text string
}

// runApp connects a real slack-go Socket Mode client to srv and acks every
// envelope, answering slash commands within the ack and opening a modal on
// block actions. It stops when the test ends.
func runApp(t *testing.T, srv *slacktest.Server) <-chan received {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	api := newAPI(srv, botToken, appToken)
	client := socketmode.New(api, socketmode.OptionLog(log.New(io.Discard, "", 0)))
	out := make(chan received, 16)
	runDone := make(chan struct{})
	loopDone := make(chan struct{})
	t.Cleanup(func() { cancel(); <-runDone; <-loopDone })
	go func() {
		defer close(runDone)
		_ = client.RunContext(ctx)
	}()
	go func() {
		defer close(loopDone)
		for {
			select {
			case <-ctx.Done():
				return
			case evt := <-client.Events:
				switch evt.Type {
				case socketmode.EventTypeEventsAPI:
					_ = client.Ack(*evt.Request)
					e, _ := evt.Data.(slackevents.EventsAPIEvent)
					r := received{kind: e.InnerEvent.Type}
					if m, ok := e.InnerEvent.Data.(*slackevents.AppMentionEvent); ok {
						r.text = m.Text
					}
					out <- r
				case socketmode.EventTypeSlashCommand:
					cmd, _ := evt.Data.(slack.SlashCommand)
					_ = client.Ack(*evt.Request, map[string]any{"response_type": "ephemeral", "text": "got " + cmd.Text})
					out <- received{kind: "slash", text: cmd.Text}
				case socketmode.EventTypeInteractive:
					_ = client.Ack(*evt.Request)
					cb, _ := evt.Data.(slack.InteractionCallback)
					r := received{kind: string(cb.Type)}
					if cb.Type == slack.InteractionTypeBlockActions {
						modal := slack.ModalViewRequest{Type: slack.VTModal, Title: slack.NewTextBlockObject("plain_text", "Code", false, false)}
						_, err := api.OpenViewContext(ctx, cb.TriggerID, modal)
						r.text = fmt.Sprint(err)
						// A trigger is good for one modal only.
						_, err = api.OpenViewContext(ctx, cb.TriggerID, modal)
						r.text += "|" + fmt.Sprint(err)
					}
					out <- r
				}
			}
		}
	}()
	return out
}

func next(t *testing.T, ctx context.Context, ch <-chan received) received {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-ctx.Done():
		t.Fatal("the app received nothing")
		return received{}
	}
}

func TestSocketModeRoundTrip(t *testing.T) {
	ctx := testContext(t)
	srv := slacktest.New(t)
	got := runApp(t, srv)

	mention := srv.AppMention(slacktest.Msg{User: "U123", Channel: "C123", Text: "<@" + slacktest.BotUserID + "> open a PR"})
	mentionID, err := srv.Push(ctx, mention)
	if err != nil {
		t.Fatal(err)
	}
	if r := next(t, ctx, got); r != (received{kind: "app_mention", text: "<@" + slacktest.BotUserID + "> open a PR"}) {
		t.Errorf("app received %+v, want the app_mention", r)
	}
	ack, err := srv.WaitAck(ctx, mentionID)
	if err != nil {
		t.Fatal(err)
	}
	if ack.Payload != nil {
		t.Errorf("mention ack payload = %s, want none", ack.Payload)
	}

	cmdID, err := srv.Push(ctx, srv.SlashCommand(slacktest.Command{User: "U123", Channel: "D1", Command: "/agenthub", Text: "status"}))
	if err != nil {
		t.Fatal(err)
	}
	if r := next(t, ctx, got); r != (received{kind: "slash", text: "status"}) {
		t.Errorf("app received %+v, want the slash command", r)
	}
	ack, err = srv.WaitAck(ctx, cmdID)
	if err != nil {
		t.Fatal(err)
	}
	var answer map[string]string
	if err := json.Unmarshal(ack.Payload, &answer); err != nil {
		t.Fatalf("slash ack payload %s: %v", ack.Payload, err)
	}
	if diff := cmp.Diff(map[string]string{"response_type": "ephemeral", "text": "got status"}, answer); diff != "" {
		t.Errorf("slash ack payload (-want +got):\n%s", diff)
	}
	if mentionID == cmdID {
		t.Errorf("two envelopes share the ID %q", mentionID)
	}
	var ids []string
	for _, a := range srv.Acks() {
		ids = append(ids, a.EnvelopeID)
	}
	if diff := cmp.Diff([]string{mentionID, cmdID}, ids); diff != "" {
		t.Errorf("acked envelope IDs (-want +got):\n%s", diff)
	}

	// A block action's trigger opens one modal, not two.
	if _, err := srv.Push(ctx, srv.BlockAction(slacktest.Action{User: "U123", Channel: "D1", MessageTS: "1.000001", ActionID: "approve", Value: "req-1"})); err != nil {
		t.Fatal(err)
	}
	if r := next(t, ctx, got); r != (received{kind: "block_actions", text: "<nil>|exchanged_trigger_id"}) {
		t.Errorf("app received %+v, want a block action whose trigger opens one modal", r)
	}
	if n := len(srv.Opened()); n != 1 {
		t.Errorf("modals opened = %d, want 1", n)
	}

	// Slack recycles the connection: the client reconnects and still gets envelopes.
	srv.Disconnect()
	if err := srv.WaitHellos(ctx, 2); err != nil {
		t.Fatal(err)
	}
	homeID, err := srv.Push(ctx, srv.AppHomeOpened("U123"))
	if err != nil {
		t.Fatal(err)
	}
	if r := next(t, ctx, got); r.kind != "app_home_opened" {
		t.Errorf("app received %+v after reconnecting, want app_home_opened", r)
	}
	if _, err := srv.WaitAck(ctx, homeID); err != nil {
		t.Fatal(err)
	}
	if got := srv.Hellos(); got != 2 {
		t.Errorf("hellos = %d, want 2", got)
	}
}

func TestRetryKeepsEventID(t *testing.T) {
	srv := slacktest.New(t)
	first := srv.AppMention(slacktest.Msg{User: "U1", Channel: "C1", Text: "hi"})
	retry := first.Retry(1, "timeout")
	eventID := func(e slacktest.Envelope) string {
		var p struct {
			EventID string `json:"event_id"`
		}
		if err := json.Unmarshal(e.Payload, &p); err != nil {
			t.Fatal(err)
		}
		return p.EventID
	}
	if eventID(first) == "" || eventID(first) != eventID(retry) {
		t.Errorf("retry event_id = %q, want %q", eventID(retry), eventID(first))
	}
	if retry.RetryAttempt != 1 || retry.RetryReason != "timeout" {
		t.Errorf("retry = attempt %d reason %q, want 1 timeout", retry.RetryAttempt, retry.RetryReason)
	}
}

func TestWebAPI(t *testing.T) {
	ctx := testContext(t)
	srv := slacktest.New(t)
	api := newAPI(srv, botToken, appToken)

	auth, err := api.AuthTestContext(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if auth.UserID != slacktest.BotUserID || auth.TeamID != slacktest.TeamID || auth.BotID != slacktest.BotID {
		t.Errorf("auth.test = %+v, want the fake's bot", auth)
	}

	ch, _, _, err := api.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{"U123"}})
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(ch.ID, "D") || ch.ID != srv.DMChannel("U123") {
		t.Errorf("conversations.open channel = %q, want the D channel %q", ch.ID, srv.DMChannel("U123"))
	}

	blocks := slack.MsgOptionBlocks(slack.NewSectionBlock(slack.NewTextBlockObject("mrkdwn", "*approve?*", false, false), nil, nil))
	postCh, ts, err := api.PostMessageContext(ctx, ch.ID, slack.MsgOptionText("approve?", false), blocks)
	if err != nil {
		t.Fatal(err)
	}
	if postCh != ch.ID || ts == "" {
		t.Errorf("postMessage = (%q, %q), want (%q, a ts)", postCh, ts, ch.ID)
	}
	if _, _, _, err := api.UpdateMessageContext(ctx, ch.ID, ts, slack.MsgOptionText("approved", false)); err != nil {
		t.Fatal(err)
	}
	if _, _, _, err := api.UpdateMessageContext(ctx, ch.ID, "9.999999", slack.MsgOptionText("x", false)); err == nil || err.Error() != "message_not_found" {
		t.Errorf("updating a missing message: err = %v, want message_not_found", err)
	}
	msgs := srv.Messages(ch.ID)
	if len(msgs) != 1 {
		t.Fatalf("messages in %s = %d, want 1", ch.ID, len(msgs))
	}
	if m := msgs[0]; m.TS != ts || m.Text != "approved" || m.Updates != 1 || !strings.Contains(string(m.Blocks), "*approve?*") {
		t.Errorf("message = %+v blocks %s, want updated text, blocks kept", m, m.Blocks)
	}

	ets, err := api.PostEphemeralContext(ctx, "C9", "U123", slack.MsgOptionText("only you", false))
	if err != nil {
		t.Fatal(err)
	}
	if e := srv.Ephemerals("C9"); len(e) != 1 || e[0].User != "U123" || e[0].TS != ets {
		t.Errorf("ephemerals = %+v, want one for U123 at %s", e, ets)
	}

	home := slack.HomeTabViewRequest{Type: slack.VTHomeTab, Blocks: slack.Blocks{BlockSet: []slack.Block{slack.NewDividerBlock()}}}
	pv, err := api.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: "U123", View: home})
	if err != nil {
		t.Fatal(err)
	}
	pub := srv.Published("U123")
	if len(pub) != 1 || pub[0].ID != pv.ID || !strings.Contains(string(pub[0].JSON), `"home"`) {
		t.Errorf("published = %+v, want the home view %s", pub, pv.ID)
	}

	modal := slack.ModalViewRequest{Type: slack.VTModal}
	if _, err := api.OpenViewContext(ctx, "123.456.never-issued", modal); err == nil || err.Error() != "expired_trigger_id" {
		t.Errorf("views.open with an unissued trigger: err = %v, want expired_trigger_id", err)
	}

	var methods []string
	for _, c := range srv.Calls("") {
		methods = append(methods, c.Method)
	}
	want := []string{"auth.test", "conversations.open", "chat.postMessage", "chat.update", "chat.update",
		"chat.postEphemeral", "views.publish", "views.open"}
	if diff := cmp.Diff(want, methods); diff != "" {
		t.Errorf("recorded methods (-want +got):\n%s", diff)
	}
	if c := srv.Calls("chat.postMessage"); len(c) != 1 || c[0].Fields["channel"] != ch.ID || !strings.Contains(c[0].Fields["blocks"], "approve?") {
		t.Errorf("recorded chat.postMessage = %+v", c)
	}
	assertNoToken(t, srv)
}

func assertNoToken(t *testing.T, srv *slacktest.Server) {
	t.Helper()
	dump := fmt.Sprint(srv.Calls(""))
	for _, tok := range []string{botToken, appToken, "xoxb-", "xapp-", "xoxp-"} {
		if strings.Contains(dump, tok) {
			t.Errorf("recorded calls contain a token prefix %q", tok[:5])
		}
	}
}

func TestWrongTokenRefused(t *testing.T) {
	ctx := testContext(t)
	srv := slacktest.New(t)
	tests := []struct {
		name     string
		bot, app string
		call     func(*slack.Client) error
		want     string
	}{
		{"no bot token", "", appToken, func(c *slack.Client) error { _, err := c.AuthTestContext(ctx); return err }, "not_authed"},
		{"user token for the bot", "xoxp-1-user", appToken, func(c *slack.Client) error { _, err := c.AuthTestContext(ctx); return err }, "invalid_auth"},
		{"app token for the bot", appToken, appToken, func(c *slack.Client) error {
			_, _, err := c.PostMessageContext(ctx, "C1", slack.MsgOptionText("x", false))
			return err
		}, "invalid_auth"},
		{"bot token for socket mode", botToken, botToken, func(c *slack.Client) error { _, _, err := c.StartSocketModeContext(ctx); return err }, "invalid_auth"},
		{"no app token", botToken, "", func(c *slack.Client) error { _, _, err := c.StartSocketModeContext(ctx); return err }, "not_authed"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := tt.call(newAPI(srv, tt.bot, tt.app))
			if err == nil || err.Error() != tt.want {
				t.Errorf("err = %v, want %s", err, tt.want)
			}
		})
	}
	if n := len(srv.Messages("C1")); n != 0 {
		t.Errorf("a refused post stored %d messages", n)
	}
	assertNoToken(t, srv)
}

func TestPostMessageRateLimit(t *testing.T) {
	ctx := testContext(t)
	now := time.Date(2025, 3, 1, 12, 0, 45, 0, time.UTC)
	srv := slacktest.New(t, slacktest.WithClock(func() time.Time { return now }))
	srv.LimitPostMessage(1, time.Minute)
	api := newAPI(srv, botToken, appToken)
	post := func(ch string) error {
		_, _, err := api.PostMessageContext(ctx, ch, slack.MsgOptionText("audit line", false))
		return err
	}

	if err := post("C_AUDIT"); err != nil {
		t.Fatalf("first post: %v", err)
	}
	err := post("C_AUDIT")
	var rl *slack.RateLimitedError
	if !errors.As(err, &rl) {
		t.Fatalf("second post: err = %v, want *slack.RateLimitedError", err)
	}
	if rl.RetryAfter != 15*time.Second {
		t.Errorf("RetryAfter = %v, want 15s (to the end of the minute)", rl.RetryAfter)
	}
	if err := post("C_OTHER"); err != nil {
		t.Errorf("post to another channel: %v, want the limit per channel", err)
	}
	now = now.Add(15 * time.Second)
	if err := post("C_AUDIT"); err != nil {
		t.Errorf("post in the next window: %v", err)
	}
	if n := len(srv.Messages("C_AUDIT")); n != 2 {
		t.Errorf("audit messages = %d, want 2", n)
	}
	var statuses []int
	for _, c := range srv.Calls("chat.postMessage") {
		statuses = append(statuses, c.Status)
	}
	if diff := cmp.Diff([]int{200, 429, 200, 200}, statuses); diff != "" {
		t.Errorf("statuses (-want +got):\n%s", diff)
	}
}
