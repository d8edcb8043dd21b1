package slackapp

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/store"
)

// demoContactKind marks a principal the demo has seen (scope: the
// principal). It is never deleted, so that after a revoke nobody is
// silently connected again.
const demoContactKind = "slack-demo-contact"

// handleEvent answers an Events API event: a mention, a DM, or the Home tab
// being opened.
func (a *App) handleEvent(ctx context.Context, ev slackevents.EventsAPIEvent) error {
	switch e := ev.InnerEvent.Data.(type) {
	case *slackevents.AppMentionEvent:
		if e.BotID != "" || e.User == "" || e.User == a.botUser {
			return nil
		}
		if !a.eventMember(ev, e.UserTeam, e.SourceTeam) {
			a.refused(ctx, principalOf(cmp.Or(e.UserTeam, e.SourceTeam, ev.TeamID), e.User), "not_a_member", "mention", "")
			a.reply(ctx, thread{Channel: e.Channel, TS: cmp.Or(e.ThreadTimeStamp, e.TimeStamp)}, e.User, notAMember)
			return nil
		}
		// The workspace the event came through first: member has checked
		// that the person belongs to it.
		a.handleMessage(ctx, cmp.Or(ev.TeamID, e.UserTeam), e.User, thread{Channel: e.Channel, TS: cmp.Or(e.ThreadTimeStamp, e.TimeStamp),
			External: ev.IsExtSharedChannel}, e.Text)
	case *slackevents.MessageEvent:
		// Edits, deletions, joins and bot posts (our own replies included)
		// come as messages too; only a person's new message is a request.
		if e.ChannelType != "im" || e.SubType != "" || e.BotID != "" || e.User == "" || e.User == a.botUser {
			return nil
		}
		if !a.eventMember(ev, e.UserTeam, e.SourceTeam) {
			a.refused(ctx, principalOf(cmp.Or(e.UserTeam, e.SourceTeam, ev.TeamID), e.User), "not_a_member", "message", "")
			return nil
		}
		a.handleMessage(ctx, cmp.Or(ev.TeamID, e.UserTeam), e.User, thread{Channel: e.Channel, TS: cmp.Or(e.ThreadTimeStamp, e.TimeStamp)}, e.Text)
	case *slackevents.AppHomeOpenedEvent:
		if e.Tab != "home" || e.User == "" || !a.member(ev.TeamID, "") {
			return nil
		}
		principal := principalOf(ev.TeamID, e.User)
		a.firstContact(ctx, principal)
		a.publishHome(ctx, principal)
	case *slackevents.TokensRevokedEvent:
		// People revoked the user tokens they gave AgentHub, at Slack: the
		// Slack connection goes here too. The event comes over the Socket
		// Mode connection, which only Slack holds.
		if !a.member(ev.TeamID, "") {
			return nil
		}
		for _, user := range e.Tokens.Oauth {
			if user != "" {
				a.ProviderRevoked(ctx, principalOf(ev.TeamID, user), "slack", "Slack")
			}
		}
	case *slackevents.AgentSessionStoppedEvent:
		a.sessionStopped(ctx, ev.TeamID, e)
	case *slackevents.AppUninstalledEvent:
		// Slack revoked every token of the app in the workspace, the bot's
		// own among them: nobody can be told, but nothing may stay
		// connected.
		if a.member(ev.TeamID, "") && a.opts.Uninstalled != nil {
			a.opts.Uninstalled(ctx, ev.TeamID)
		}
	}
	return nil
}

// notAMember answers someone the app does not act for.
const notAMember = "AgentHub acts only for members of the workspace it is installed in."

// member reports whether a person belongs to the app's workspace: the
// event's (or payload's) team and, when Slack names it, the person's own
// home team must both be the one auth.test named. Before Run has learnt
// it (tests that call the handlers directly), everyone is.
func (a *App) member(team, userTeam string) bool {
	if a.botTeam == "" {
		return true
	}
	return team == a.botTeam && (userTeam == "" || userTeam == a.botTeam)
}

// eventMember is member for a message or mention. In a channel shared
// with other workspaces (Slack Connect), the event's team is the channel's
// host, not the person's, and Slack names the person's home workspace
// (user_team) and the one the message was sent from (source_team): a
// message sent from another workspace is a guest's, and one there that
// names neither cannot be placed, so both are refused rather than taken
// for a member's.
func (a *App) eventMember(ev slackevents.EventsAPIEvent, userTeam, sourceTeam string) bool {
	if a.botTeam != "" {
		if sourceTeam != "" && sourceTeam != a.botTeam {
			return false
		}
		if ev.IsExtSharedChannel && userTeam == "" && sourceTeam == "" {
			return false
		}
	}
	return a.member(ev.TeamID, userTeam)
}

// refused puts a refusal the app made on the record, through the broker,
// which counts repeated ones instead of writing each (broker.Refuse).
func (a *App) refused(ctx context.Context, actor broker.Principal, reason, op, requestID string) {
	err := a.opts.Broker.Refuse(ctx, broker.Refusal{Actor: actor.String(), Kind: audit.InteractionRejected,
		Reason: reason, Op: op, RequestID: requestID})
	if err != nil {
		a.log.WarnContext(ctx, "refusal not recorded", "slack_user", actor.User, "op", op, "err", err)
	}
}

// handleMessage hands what a person said to the broker and renders the
// answer: replies in the thread of their message, anything with buttons in
// their DM.
func (a *App) handleMessage(ctx context.Context, team, user string, t thread, text string) {
	principal := principalOf(team, user)
	text = strings.TrimSpace(a.stripMention(text))
	if text == "" {
		a.reply(ctx, t, user, "Hi! Tell me what to do, for example _list open pull requests in acme/website_, or try `/agenthub help`.")
		return
	}
	connected := a.firstContact(ctx, principal)
	a.setSession(ctx, t, user, sessionProcessing, text)
	shown := a.newProgress(t, team, user)
	outs, err := a.opts.Broker.Handle(ctx, broker.Message{Principal: principal, Text: text, Conversation: t.conversation(), Progress: shown.update})
	shown.end(ctx)
	a.logBroker(ctx, "handle", requestIDOf(outs), user, err)
	a.deliverAsked(ctx, principal, t, outs)
	a.setSession(ctx, t, user, sessionAfter(outs), "")
	if connected || changesHome(outs) {
		a.publishHome(ctx, principal)
	}
}

var userMention = regexp.MustCompile(`<@([UW][A-Z0-9]+)(\|[^>]*)?>`)

// stripMention removes the bot's own mention from a message, wherever it
// is; other people's mentions stay, since they may be what is asked about.
// Before Run has learnt the bot's ID, a mention that opens the message is
// taken to be the bot's (an app_mention always carries it).
func (a *App) stripMention(text string) string {
	if a.botUser == "" {
		if loc := userMention.FindStringIndex(strings.TrimLeft(text, " ")); loc != nil && loc[0] == 0 {
			return strings.TrimLeft(text, " ")[loc[1]:]
		}
		return text
	}
	return userMention.ReplaceAllStringFunc(text, func(m string) string {
		if userMention.FindStringSubmatch(m)[1] == a.botUser {
			return ""
		}
		return m
	})
}

// changesHome reports whether outputs change what the person's App Home
// shows: a request now waits, or a revoke canceled some. A step that ran
// at once changes only its connection's last use (to the minute) and the
// history list, which the next app_home_opened shows: republishing after
// every read would cost more than the read itself under load.
func changesHome(outs []broker.Output) bool {
	return slices.ContainsFunc(outs, func(o broker.Output) bool {
		return o.Kind == broker.KindApproval || o.Kind == broker.KindStepUp || len(o.Requests) > 0
	})
}

// deliverAsked renders outputs for principal, about what they asked in
// thread t: anything with buttons goes to their DM, the rest to t. A
// result that shows something not public (Output.Private) goes to their
// DM too, unless t is that DM, and t gets a line saying so: a private
// repository's pull requests must not appear in a channel others read,
// whichever path (an answer at once, an approval, a second approval, a
// recovered request) produced them.
func (a *App) deliverAsked(ctx context.Context, principal broker.Principal, t thread, outs []broker.Output) {
	user := principal.User
	toldDM := false
	for _, o := range outs {
		switch {
		case o.Kind == broker.KindApproval:
			a.askApproval(ctx, principal, t, o)
		case o.Kind == broker.KindStepUp:
			a.sendStepUp(ctx, principal, t, o)
		case o.Kind == broker.KindConnect:
			a.sendConnect(ctx, principal, t, o)
		case (o.Private || o.ByRule && t.External) && !isDM(t.Channel):
			if _, _, err := a.dm(ctx, user, outputText(o), nil); err != nil {
				a.log.WarnContext(ctx, "private result dm failed", "slack_user", user, "request_id", o.RequestID, "err", err)
				a.reply(ctx, t, user, "I couldn't send you the result in a DM, and it is not for this channel. Ask me again in a DM.")
				continue
			}
			if t.Channel != "" && !toldDM {
				toldDM = true
				a.reply(ctx, t, user, "I sent you the result in a DM.")
			}
		default:
			a.reply(ctx, t, user, outputText(o))
		}
	}
}

// isDM reports whether a channel is a direct message with the bot (Slack's
// DM channel IDs start with D); "" is the person's DM too.
func isDM(channel string) bool { return channel == "" || strings.HasPrefix(channel, "D") }

// askApproval DMs the approval to the owner and to every second approver,
// records each message so it can be updated once the request is settled,
// and says so in the thread.
func (a *App) askApproval(ctx context.Context, principal broker.Principal, t thread, o broker.Output) {
	owner := principal.User
	expires := a.now().Add(broker.DefaultRequestTTL)
	if r, err := a.opts.Broker.Lookup(ctx, o.RequestID); err == nil {
		expires = r.Expires
	}
	base := requestRecord{RequestID: o.RequestID, Owner: principal, Action: o.Action, Resource: o.Resource, Thread: t, Expires: expires}
	blocks := ApprovalMessage(o, owner, expires)
	text := escape(fmt.Sprintf("Approval needed: %s on %s", o.Action, o.Resource))
	secondBlocks := SecondApprovalMessage(o, owner, expires)
	secondText := escape(fmt.Sprintf("Second approval needed: %s on %s", o.Action, o.Resource))

	ch, ts, err := a.dm(ctx, owner, text, blocks)
	if err != nil {
		a.log.WarnContext(ctx, "approval dm failed", "request_id", o.RequestID, "slack_user", owner, "err", err)
		a.reply(ctx, t, owner, "This needs your approval, but I couldn't send you the buttons in a DM. Ask again in a moment.")
		return
	}
	a.remember(ctx, base, shown{Channel: ch, TS: ts, What: whatApproval, User: owner})

	var asked []string
	for _, u := range o.Approvers {
		if u == owner || slices.Contains(asked, u) || !slackUserID.MatchString(u) {
			continue
		}
		ach, ats, err := a.dm(ctx, u, secondText, secondBlocks)
		if err != nil {
			a.log.WarnContext(ctx, "approver dm failed", "request_id", o.RequestID, "slack_user", u, "err", err)
			continue
		}
		asked = append(asked, u)
		a.remember(ctx, base, shown{Channel: ach, TS: ats, What: whatApprover, User: u})
	}

	if t.Channel == ch {
		return // asked in the DM itself: the buttons are right there
	}
	note := "I've sent you the approval in a DM."
	if len(asked) > 0 {
		note += " I've also asked " + mentions(asked) + ", since it needs a second approval."
	}
	a.reply(ctx, t, owner, note)
}

// sendStepUp DMs the owner the "Verify it's you" message and records it.
func (a *App) sendStepUp(ctx context.Context, principal broker.Principal, t thread, o broker.Output) {
	owner := principal.User
	text := escape(fmt.Sprintf("Verify it's you: %s on %s", o.Action, o.Resource))
	ch, ts, err := a.dm(ctx, owner, text, StepUpMessage(o))
	if err != nil {
		a.log.WarnContext(ctx, "step-up dm failed", "request_id", o.RequestID, "slack_user", owner, "err", err)
		a.reply(ctx, t, owner, "This needs a code from your authenticator, but I couldn't send you the button in a DM. Try again in a moment.")
		return
	}
	base := requestRecord{RequestID: o.RequestID, Owner: principal, Action: o.Action, Resource: o.Resource, Thread: t,
		Expires: a.now().Add(broker.DefaultRequestTTL)}
	if r, err := a.opts.Broker.Lookup(ctx, o.RequestID); err == nil {
		base.Expires = r.Expires
	}
	a.remember(ctx, base, shown{Channel: ch, TS: ts, What: whatStepUp, User: owner})
}

// sendConnect DMs the Connect button. A request that waits for the
// connection records the DM and its thread, so that the request goes on
// there once the person has connected.
func (a *App) sendConnect(ctx context.Context, principal broker.Principal, t thread, o broker.Output) {
	user := principal.User
	expires := a.now().Add(broker.DefaultRequestTTL)
	var earlier *connectPrompt
	if o.RequestID != "" {
		if r, err := a.opts.Broker.Lookup(ctx, o.RequestID); err == nil {
			expires = r.Expires
		}
		// One Connect button per person and service: the newest request
		// waiting for the connection holds it (it is the last to expire),
		// asking for the scopes every waiting request needs, and the
		// earlier button is rewritten to point at it.
		earlier = a.waitingPrompt(ctx, principal, o.Service)
		if earlier != nil {
			o.Scopes = union(o.Scopes, earlier.Scopes)
		}
	}
	ch, ts, err := a.dm(ctx, user, escape(o.Text), ConnectMessage(o))
	if err != nil {
		a.log.WarnContext(ctx, "connect dm failed", "slack_user", user, "err", err)
		a.reply(ctx, t, user, outputText(o))
		return
	}
	if o.RequestID != "" {
		base := requestRecord{RequestID: o.RequestID, Owner: principal, Action: o.Action, Resource: o.Resource, Thread: t, Expires: expires}
		a.remember(ctx, base, shown{Channel: ch, TS: ts, What: whatConnect, User: user})
		p := connectPrompt{RequestID: o.RequestID, Channel: ch, TS: ts, Scopes: o.Scopes}
		if raw, err := json.Marshal(p); err == nil {
			if err := a.opts.Store.Put(ctx, connectPromptKey(principal, o.Service), raw, max(expires.Sub(a.now()), time.Minute)); err != nil {
				a.log.WarnContext(ctx, "connect prompt not recorded", "slack_user", user, "err", err)
			}
		}
		if earlier != nil {
			text := escape(fmt.Sprintf("This waits for your %s connection too: connect it with the newer button below, and I'll carry on with everything that waits for it.", o.Service))
			_, _, _, err := a.opts.API.UpdateMessageContext(ctx, earlier.Channel, earlier.TS, slack.MsgOptionText(text, false), slack.MsgOptionBlocks(section(text)))
			a.noteAuth(err)
			if err != nil && !slackGone(err) {
				a.log.WarnContext(ctx, "earlier connect button not rewritten", "slack_user", user, "err", err)
			}
		}
	}
	if t.Channel != "" && t.Channel != ch {
		a.reply(ctx, t, user, escape(fmt.Sprintf("This needs your %s account: I've sent you a DM to connect it.", o.Service)))
	}
}

// connectPromptKind marks that a person was shown a Connect button for a
// service (scope the principal, ID the service), until it is connected or
// the request it was for expires.
const connectPromptKind = "slack-connect-prompt"

func connectPromptKey(p broker.Principal, service string) store.Key {
	return store.Key{Scope: p.String(), Kind: connectPromptKind, ID: service}
}

// connectPrompt is the Connect button shown for a service: the request it
// was posted for, where, and the scopes it asks for.
type connectPrompt struct {
	RequestID string   `json:"request_id"`
	Channel   string   `json:"channel"`
	TS        string   `json:"ts"`
	Scopes    []string `json:"scopes,omitempty"`
}

// waitingPrompt is the Connect button shown for service while its request
// still waits for the connection; nil when there is none.
func (a *App) waitingPrompt(ctx context.Context, p broker.Principal, service string) *connectPrompt {
	it, err := a.opts.Store.Get(ctx, connectPromptKey(p, service))
	if err != nil {
		return nil
	}
	var cp connectPrompt
	if json.Unmarshal(it.Value, &cp) != nil {
		return nil
	}
	r, err := a.opts.Broker.Lookup(ctx, cp.RequestID)
	if err != nil || r.Status != broker.StatusWaitingConnection || !a.now().Before(r.Expires) {
		return nil
	}
	return &cp
}

// union is a's strings then b's that a lacks.
func union(a, b []string) []string {
	out := slices.Clone(a)
	for _, s := range b {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// forgetConnectPrompt lets the next request waiting for service show a
// Connect button again (the connection landed, or the button was not
// shown).
func (a *App) forgetConnectPrompt(ctx context.Context, p broker.Principal, service string) {
	if err := a.opts.Store.Delete(ctx, connectPromptKey(p, service)); err != nil {
		a.log.WarnContext(ctx, "connect prompt not forgotten", "slack_user", p.User, "service", service, "err", err)
	}
}

// firstContact connects a person the demo has never seen to every
// simulated service, once. It reports whether it connected anything.
func (a *App) firstContact(ctx context.Context, principal broker.Principal) bool {
	if !a.opts.Demo || a.opts.Connect == nil {
		return false
	}
	if a.contacted.has(principal) {
		return false
	}
	key := store.Key{Scope: principal.String(), Kind: demoContactKind, ID: "first"}
	err := a.opts.Store.Create(ctx, key, []byte(a.now().UTC().Format(time.RFC3339)), 0)
	if errors.Is(err, store.ErrExists) {
		a.contacted.add(principal)
		return false
	}
	if err != nil {
		a.log.WarnContext(ctx, "demo first contact not recorded", "slack_user", principal.User, "err", err)
		return false
	}
	connected := false
	for _, svc := range a.opts.Services {
		if err := a.opts.Connect(ctx, principal, svc); err != nil {
			a.log.WarnContext(ctx, "demo connect failed", "slack_user", principal.User, "service", svc, "err", err)
			continue
		}
		connected = true
	}
	if !connected && len(a.opts.Services) > 0 {
		// Nothing connected (the simulated providers were unreachable, say):
		// forget the contact, so that the person's next message tries again
		// rather than leaving them unconnected for good.
		if err := a.opts.Store.Delete(context.WithoutCancel(ctx), key); err != nil {
			a.log.WarnContext(ctx, "demo first contact not forgotten", "slack_user", principal.User, "err", err)
		}
		return false
	}
	a.contacted.add(principal)
	return connected
}

// maxContacted bounds the first-contact cache: past it the cache starts
// again, and the store's marks answer.
const maxContacted = 100_000

// contactCache remembers the principals whose first-contact mark is in the
// store, so that their later messages skip the store write: the mark is
// never deleted, so a remembered principal can only be one the store
// already knows. A process that forgets (a restart, a full cache) asks the
// store again.
type contactCache struct {
	mu   sync.Mutex
	seen map[broker.Principal]struct{}
}

func (c *contactCache) has(principal broker.Principal) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	_, ok := c.seen[principal]
	return ok
}

func (c *contactCache) add(principal broker.Principal) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil || len(c.seen) >= maxContacted {
		c.seen = make(map[broker.Principal]struct{})
	}
	c.seen[principal] = struct{}{}
}
