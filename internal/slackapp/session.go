package slackapp

import (
	"context"
	"errors"
	"fmt"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"

	"github.com/agenthub/agenthub/internal/broker"
)

// Slack's agent experience: each thread a person asks in is an agent
// session whose status follows the work (agents.sessions.setStatus):
// processing while planning and running, suspended while a request of it
// waits for an approval, a step-up or a connection, closed when done. Its
// Stop button (agent_session_stopped) cancels the session's waiting
// requests, on the record. A workspace without the agent features answers
// the first call with an error, after which the app stops asking; nothing
// else depends on them.

// Session statuses.
const (
	sessionProcessing = slack.AgentSessionStatusProcessing
	sessionSuspended  = slack.AgentSessionStatusSuspended
	sessionClosed     = slack.AgentSessionStatusClosed
)

// setSession sets the status of thread t's agent session (title and
// initiator count when it is created). Best effort.
func (a *App) setSession(ctx context.Context, t thread, user, status, title string) {
	if a.noAgents.Load() || t.Channel == "" || t.TS == "" {
		return
	}
	_, err := a.opts.API.SetAgentSessionStatusContext(ctx, slack.AgentSessionSetStatusParameters{
		Status: status, ChannelID: t.Channel, ThreadTS: t.TS, InitiatorUserID: user, Title: clip(title, 200),
	})
	if err == nil {
		return
	}
	a.noteAuth(err)
	var se slack.SlackErrorResponse
	if errors.As(err, &se) {
		switch se.Err {
		case "unknown_method", "not_allowed_token_type", "feature_not_enabled", "missing_scope", "not_authed":
			if !a.noAgents.Swap(true) {
				a.log.InfoContext(ctx, "this workspace has no agent sessions: threads carry the conversation alone", "error_code", se.Err)
			}
			return
		}
	}
	a.log.DebugContext(ctx, "agent session status not set", "status", status, "err", err)
}

// sessionAfter is the status outputs leave the session in: suspended while
// something of it waits for the person, closed otherwise.
func sessionAfter(outs []broker.Output) string {
	for _, o := range outs {
		if o.Kind == broker.KindApproval || o.Kind == broker.KindStepUp || o.Kind == broker.KindConnect {
			return sessionSuspended
		}
	}
	return sessionClosed
}

// settleSession sets the session of request id's thread t after a move:
// suspended while the request waits, closed once it is settled.
func (a *App) settleSession(ctx context.Context, t thread, id, user string) {
	r, err := a.opts.Broker.Lookup(ctx, id)
	if err != nil {
		return
	}
	status := sessionProcessing
	switch {
	case r.Status.Waiting():
		status = sessionSuspended
	case r.Status.Terminal():
		status = sessionClosed
	}
	a.setSession(ctx, t, user, status, "")
}

// sessionStopped answers Stop on an agent session: nothing begun in that
// thread goes on (the broker's conversation mark, which a plan being made
// or run on any replica checks before each step), and the person's
// requests that wait in it are canceled at once, their cards updated.
func (a *App) sessionStopped(ctx context.Context, team string, e *slackevents.AgentSessionStoppedEvent) {
	if e.User == "" || e.Channel == "" || e.ThreadTimestamp == "" || !a.member(team, "") {
		return
	}
	principal := principalOf(team, e.User)
	t := thread{Channel: e.Channel, TS: e.ThreadTimestamp}
	// The waiting requests are canceled even when the mark could not be
	// left: what can be stopped is.
	markErr := a.opts.Broker.StopConversation(ctx, principal, t.conversation())
	if markErr != nil {
		a.log.WarnContext(ctx, "conversation not stopped", "slack_user", e.User, "err", markErr)
		a.reply(ctx, t, e.User, "I could not stop all of this conversation just now: press Stop again in a moment.")
	}
	pending, err := a.opts.Broker.Pending(ctx, principal)
	if err != nil {
		a.log.WarnContext(ctx, "pending requests unreadable", "slack_user", e.User, "err", err)
		return
	}
	stopped := 0
	for _, r := range pending {
		if r.Principal != principal || !a.inThread(ctx, r, t) {
			continue
		}
		_, err := a.opts.Broker.Cancel(ctx, r.ID, principal, "stopped in Slack")
		a.logBroker(ctx, "cancel", r.ID, e.User, err)
		if err == nil {
			stopped++
		}
		a.updateMessages(ctx, r.ID, e.User)
	}
	a.setSession(ctx, t, e.User, sessionClosed, "")
	if stopped > 0 {
		a.reply(ctx, t, e.User, escape(fmt.Sprintf("Stopped: I canceled the %d request(s) of this conversation that waited for you.", stopped)))
		a.publishHome(ctx, principal)
	}
}

// inThread reports whether request r was asked in thread t: by the
// conversation its plan was of, or, for a request asked otherwise (a
// slash command) or before requests kept it, by the thread it is shown in.
func (a *App) inThread(ctx context.Context, r broker.Request, t thread) bool {
	if r.Conversation != "" {
		return r.Conversation == t.conversation()
	}
	at := a.threadOf(ctx, r.ID)
	return at.Channel == t.Channel && at.TS == t.TS
}
