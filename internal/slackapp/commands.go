package slackapp

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/slack-go/slack"

	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/command"
	"github.com/agenthub/agenthub/internal/identity"
)

// slashStyle is how the slash command's help and its answers to mistakes
// look in Slack, in mrkdwn; the words are internal/command's, the terminal
// demo's too.
var slashStyle = command.Style{
	Heading: func(s string) string { return "*" + s + "*" },
	Usage:   code,
	Typed:   code,
	Example: func(s string) string { return "_" + escape(s) + "_" },
	Reach:   "mention me or DM me",
	SignIn:  true,
	Memory:  true,
}

// helpText lists the commands, in mrkdwn.
var helpText = slashStyle.Help()

// parseCommand reads the slash command's text. When the command needs no
// I/O to answer (help, nothing, a mistake), answer holds the reply.
func parseCommand(text string) (c command.Command, answer string) {
	c, err := command.Parse(text)
	if err == nil && c.Verb == command.Code {
		err = command.Unknown(text) // the Slack app has no demo authenticator
	}
	var bad *command.Error
	switch {
	case errors.As(err, &bad):
		return command.Command{}, bad.Text(slashStyle)
	case err != nil || c.Verb == command.Help:
		return c, helpText
	}
	return c, ""
}

// ackCommand returns the answer a slash command gets in its ack, if it
// needs no work.
func ackCommand(text string) (string, bool) {
	_, answer := parseCommand(text)
	return answer, answer != ""
}

// handleCommand does a slash command's work and answers through its
// response_url, to the person alone.
func (a *App) handleCommand(ctx context.Context, sc slack.SlashCommand) error {
	c, answer := parseCommand(sc.Text)
	if answer != "" || sc.UserID == "" || sc.TeamID == "" {
		return nil // answered in the ack
	}
	if !a.member(sc.TeamID, "") {
		a.refused(ctx, principalOf(sc.TeamID, sc.UserID), "not_a_member", "command", "")
		if err := a.respond(ctx, sc.ResponseURL, notAMember); err != nil {
			a.log.WarnContext(ctx, "slash command answer failed", "slack_user", sc.UserID, "err", err)
		}
		return nil
	}
	principal := principalOf(sc.TeamID, sc.UserID)
	connected := a.firstContact(ctx, principal)
	text := clip(a.runCommand(ctx, principal, c), maxReplyText)
	if err := a.respond(ctx, sc.ResponseURL, text); err != nil {
		a.log.WarnContext(ctx, "slash command answer failed", "slack_user", sc.UserID, "err", err)
		a.reply(ctx, thread{}, sc.UserID, text)
	}
	if connected && c.Verb != command.Connect && c.Verb != command.Revoke && c.Verb != command.RevokeAll {
		a.publishHome(ctx, principal)
	}
	return nil
}

// runCommand does the work of a command and returns the answer, in mrkdwn.
func (a *App) runCommand(ctx context.Context, principal broker.Principal, c command.Command) string {
	user := principal.User
	switch c.Verb {
	case command.Connect:
		return a.connect(ctx, principal, c.Service)
	case command.Revoke, command.RevokeAll:
		var outs []broker.Output
		var err error
		if c.Verb == command.Revoke {
			outs, err = a.opts.Broker.Revoke(ctx, principal, c.Service)
		} else {
			outs, err = a.opts.Broker.RevokeAll(ctx, principal)
		}
		a.logBroker(ctx, "revoke", "", user, err)
		a.afterRevoke(ctx, principal, outs)
		lines := make([]string, len(outs))
		for i, o := range outs {
			lines[i] = outputText(o)
		}
		return strings.Join(lines, "\n")
	case command.Grants:
		return a.grantsText(ctx, principal)
	case command.Pending:
		return a.pendingText(ctx, principal)
	case command.Audit:
		return a.auditText(ctx, principal, c.Count)
	case command.Whoami:
		return a.whoamiText(ctx, principal)
	case command.Link, command.Unlink:
		return a.linkText(ctx, principal, c.Verb)
	case command.Reset:
		return a.resetText(ctx, principal)
	case command.Forget:
		return a.forgetText(ctx, principal)
	}
	return helpText
}

// forgetText answers /agenthub forget: the LLM planner's memory of the
// person's conversations is cleared.
func (a *App) forgetText(ctx context.Context, principal broker.Principal) string {
	if a.opts.Forget == nil {
		return "I remember no conversation here: the language model is not set up (OPENAI_API_KEY)."
	}
	n, err := a.opts.Forget(ctx, principal)
	if err != nil {
		a.log.WarnContext(ctx, "conversations not forgotten", "slack_user", principal.User, "err", err)
		return "I couldn't forget our conversations just now. Try again in a moment."
	}
	return fmt.Sprintf("Forgotten: I no longer remember our %d conversation(s). Your requests, grants and the audit trail stay as they are.", n)
}

// linkText answers /agenthub link and unlink: a sign-in link.
func (a *App) linkText(ctx context.Context, principal broker.Principal, verb command.Verb) string {
	if verb == command.Unlink {
		return a.signInText(ctx, principal, identity.PurposeUnlink, "Sign in to unlink",
			"Sign in as the identity linked to you: only it can undo the link.")
	}
	return a.signInText(ctx, principal, identity.PurposeLink, "Sign in to link your identity",
		"Risky actions then ask that identity to sign in again.")
}

func (a *App) grantsText(ctx context.Context, principal broker.Principal) string {
	gs, err := a.opts.Broker.Grants(ctx, principal)
	if err != nil {
		a.log.WarnContext(ctx, "grants unreadable", "slack_user", principal.User, "err", err)
		return ":warning: Your grants could not be read. Try again in a moment."
	}
	if len(gs) == 0 {
		return "You have no grants: every write asks you first."
	}
	var b strings.Builder
	b.WriteString("*Your grants:*")
	for _, g := range gs {
		fmt.Fprintf(&b, "\n• *%s* on `%s` (%s) until %s", escape(g.Action), escape(g.Resource), escape(g.Lifetime.String()), when(g.Expires))
	}
	return b.String()
}

func (a *App) pendingText(ctx context.Context, principal broker.Principal) string {
	rs, err := a.opts.Broker.Pending(ctx, principal)
	if err != nil {
		a.log.WarnContext(ctx, "pending unreadable", "slack_user", principal.User, "err", err)
		return ":warning: Your pending requests could not be read. Try again in a moment."
	}
	if len(rs) == 0 {
		return "Nothing is waiting for you."
	}
	var b strings.Builder
	b.WriteString("*Waiting for you:*")
	for _, r := range rs {
		fmt.Fprintf(&b, "\n• *%s* %s, expires %s", escape(r.Step.Action), waitingFor(r), when(r.Expires))
	}
	b.WriteString("\nThe buttons are in your DMs with me.")
	return b.String()
}

// waitingFor says what a pending request waits for: its connection, or a
// decision about its resource.
func waitingFor(r broker.Request) string {
	if r.Status == broker.StatusWaitingConnection {
		// Such a request has no resource yet: it is known once the service
		// is connected.
		return "waiting for the " + code(r.Service) + " connection"
	}
	return fmt.Sprintf("on %s: %s", code(r.Resource.Name), escape(strings.ReplaceAll(string(r.Status), "_", " ")))
}

func (a *App) auditText(ctx context.Context, principal broker.Principal, n int) string {
	if a.opts.History == nil {
		return ":warning: audit is not available here."
	}
	es, err := a.opts.History(ctx, principal, n)
	if err != nil {
		a.log.WarnContext(ctx, "history unreadable", "slack_user", principal.User, "err", err)
		return ":warning: The audit trail could not be read. Try again in a moment."
	}
	if len(es) == 0 {
		return "The audit trail has nothing about you yet."
	}
	lines := make([]string, 0, len(es)+1)
	lines = append(lines, fmt.Sprintf("*Your last %d audit event(s):*", len(es)))
	for _, e := range es {
		lines = append(lines, AuditLine(e))
	}
	return strings.Join(lines, "\n")
}

func (a *App) whoamiText(ctx context.Context, principal broker.Principal) string {
	text := fmt.Sprintf("You are %s (`%s`).", mention(principal.User), escape(principal.String()))
	if a.opts.Connections == nil {
		return text
	}
	cs, err := a.opts.Connections(ctx, principal)
	if err != nil {
		a.log.WarnContext(ctx, "connections unreadable", "slack_user", principal.User, "err", err)
		return text + " Your connections could not be read."
	}
	if len(cs) == 0 {
		return text + " You have connected no service."
	}
	for _, c := range cs {
		text += fmt.Sprintf("\n• *%s*: %s, scopes %s", escape(c.Service), escape(c.Status), codeList(c.Scopes))
	}
	return text
}
