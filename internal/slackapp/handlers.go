package slackapp

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"

	"github.com/agenthub/agenthub/internal/broker"
)

// ackFor is what an envelope is acked with. It runs on the transport's
// reader, so it only looks at the payload: slash commands that need nothing
// but words (help, an empty or unknown command) are answered right in the
// ack, and a modal whose code is not six digits stays open with a message.
func (a *App) ackFor(w *work) any {
	switch w.typ {
	case socketmode.EventTypeSlashCommand:
		if text, ok := ackCommand(w.command.Text); ok {
			return ephemeralPayload(text)
		}
	case socketmode.EventTypeInteractive:
		if w.interaction.Type != slack.InteractionTypeViewSubmission {
			return nil
		}
		block, action, ok := codeField(w.interaction.View.CallbackID)
		if !ok {
			return nil
		}
		if code := viewValue(w.interaction.View, block, action); !sixDigits(code) {
			return map[string]any{
				"response_action": "errors",
				"errors":          map[string]string{block: "Enter the 6-digit code your authenticator app shows now."},
			}
		}
	}
	return nil
}

func ephemeralPayload(text string) map[string]any {
	return map[string]any{"response_type": "ephemeral", "text": text}
}

// handleWork does what an acked envelope asks. Errors worth retrying are
// returned only while nothing has happened yet: once the broker has been
// called, a redelivery must not run a step twice, so later failures are
// logged and the person is told.
func (a *App) handleWork(ctx context.Context, w work) error {
	switch w.typ {
	case socketmode.EventTypeEventsAPI:
		return a.handleEvent(ctx, w.event)
	case socketmode.EventTypeInteractive:
		return a.handleInteraction(ctx, w.interaction)
	case socketmode.EventTypeSlashCommand:
		return a.handleCommand(ctx, w.command)
	}
	return nil
}

// principalOf names a Slack user the way the broker does.
func principalOf(team, user string) broker.Principal { return broker.Principal{Team: team, User: user} }

// thread is where the replies about one request go: the channel and the
// thread of the person's own message.
type thread struct {
	Channel string `json:"channel"`
	TS      string `json:"ts"`
	// External is set for a channel shared with another company (Slack
	// Connect), where even what a policy rule lets a channel see stays
	// out.
	External bool `json:"external,omitempty"`
}

// conversation names the thread for the broker (Message.Conversation).
func (t thread) conversation() string { return t.Channel + ":" + t.TS }

// openDM returns the bot's DM channel with user.
func (a *App) openDM(ctx context.Context, user string) (string, error) {
	ch, _, _, err := a.opts.API.OpenConversationContext(ctx, &slack.OpenConversationParameters{Users: []string{user}})
	a.noteAuth(err)
	if err != nil {
		return "", fmt.Errorf("slackapp: open dm: %w", err)
	}
	if ch == nil || ch.ID == "" {
		return "", errors.New("slackapp: open dm: no channel in the answer")
	}
	return ch.ID, nil
}

// post sends a message; threadTS "" makes it top level. It returns the
// channel (a DM's ID when Slack resolved one) and the message's ts.
func (a *App) post(ctx context.Context, channel, threadTS, text string, blocks []slack.Block) (string, string, error) {
	opts := []slack.MsgOption{slack.MsgOptionText(text, false)}
	if len(blocks) > 0 {
		opts = append(opts, slack.MsgOptionBlocks(blocks...))
	}
	if threadTS != "" {
		opts = append(opts, slack.MsgOptionTS(threadTS))
	}
	ch, ts, err := a.opts.API.PostMessageContext(ctx, channel, opts...)
	a.noteAuth(err)
	if err != nil {
		return "", "", fmt.Errorf("slackapp: post message: %w", err)
	}
	return ch, ts, nil
}

// dm opens user's DM and posts there.
func (a *App) dm(ctx context.Context, user, text string, blocks []slack.Block) (string, string, error) {
	ch, err := a.openDM(ctx, user)
	if err != nil {
		return "", "", err
	}
	return a.post(ctx, ch, "", text, blocks)
}

// reply posts text in t's thread, logging a failure: a reply that could
// not be posted is nothing to retry the whole envelope for.
func (a *App) reply(ctx context.Context, t thread, user, text string) {
	if t.Channel == "" {
		if _, _, err := a.dm(ctx, user, text, nil); err != nil {
			a.log.WarnContext(ctx, "slack reply failed", "slack_user", user, "err", err)
		}
		return
	}
	if _, _, err := a.post(ctx, t.Channel, t.TS, text, nil); err != nil {
		a.log.WarnContext(ctx, "slack reply failed", "slack_user", user, "err", err)
	}
}

// ephemeral shows text to user alone, in channel when there is one, else
// through the interaction's response_url, else in their DM.
func (a *App) ephemeral(ctx context.Context, channel, user, responseURL, text string) {
	if a.ephemeralOnly(ctx, channel, user, responseURL, text) {
		return
	}
	if _, _, err := a.dm(ctx, user, text, nil); err != nil {
		a.log.WarnContext(ctx, "slack dm failed", "slack_user", user, "err", err)
	}
}

// ephemeralOnly is ephemeral without the DM: for what must not stay in a
// conversation's history (a link that shows a key). It reports whether it
// was shown.
func (a *App) ephemeralOnly(ctx context.Context, channel, user, responseURL, text string) bool {
	if channel != "" {
		_, err := a.opts.API.PostEphemeralContext(ctx, channel, user, slack.MsgOptionText(text, false))
		a.noteAuth(err)
		if err == nil {
			return true
		}
		a.log.WarnContext(ctx, "slack ephemeral failed", "slack_user", user, "err", err)
	}
	if responseURL != "" {
		err := a.respond(ctx, responseURL, text)
		if err == nil {
			return true
		}
		a.log.WarnContext(ctx, "slack response_url failed", "slack_user", user, "err", err)
	}
	return false
}

// respond posts an ephemeral answer to a response_url. The URL is a
// capability, so a failure is reported without it.
func (a *App) respond(ctx context.Context, responseURL, text string) error {
	err := slack.PostWebhookCustomHTTPContext(ctx, responseURL, webhookClient, &slack.WebhookMessage{
		ResponseType: slack.ResponseTypeEphemeral, Text: text, ReplaceOriginal: false,
	})
	if err == nil {
		return nil
	}
	var uerr *url.Error
	if errors.As(err, &uerr) {
		err = uerr.Err
	}
	return fmt.Errorf("slackapp: post to response_url: %w", err)
}

// webhookClient posts to response_urls.
var webhookClient = HTTPClient()

// slackTransport carries every call to Slack. http.DefaultTransport keeps
// two idle connections per host, so when more workers than that post at
// once, each burst closes the spare connections and the next one dials
// (and, against slack.com, handshakes TLS) again: under load, 5 % of the
// bot's CPU went to dialling and accepting loopback connections.
var slackTransport = func() *http.Transport {
	t := http.DefaultTransport.(*http.Transport).Clone()
	t.MaxIdleConnsPerHost = 128
	t.MaxIdleConns = 256
	return t
}()

// HTTPClient returns the client for Slack's Web API and response_urls: it
// shares one pool of connections, kept open for the worker pool's
// concurrency, and gives up on a Slack that does not answer, so that a hung
// connection does not hold a worker for ever.
func HTTPClient() *http.Client {
	return &http.Client{Timeout: 15 * time.Second, Transport: slackTransport}
}

// outputText renders an output as the text of a reply.
func outputText(o broker.Output) string {
	switch o.Kind {
	case broker.KindResult:
		return ResultText(o)
	case broker.KindError:
		return ErrorText(o)
	}
	return clip(escape(o.Text), maxReplyText)
}

// logBroker reports a broker error for the operator; the person got the
// outputs, which say what they need to know.
func (a *App) logBroker(ctx context.Context, op, requestID, user string, err error) {
	if err == nil {
		return
	}
	a.log.WarnContext(ctx, "broker failed", "op", op, "request_id", requestID, "slack_user", user, "err", err)
}

// requestIDOf returns the first request ID among outs, for the log.
func requestIDOf(outs []broker.Output) string {
	for _, o := range outs {
		if o.RequestID != "" {
			return o.RequestID
		}
	}
	return ""
}
