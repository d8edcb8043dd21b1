package slackapp

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/slack-go/slack"

	"github.com/agenthub/agenthub/internal/broker"
)

// The slash command's words are the terminal demo's (internal/console),
// so that what people learn in one works in the other.
const (
	// defaultAuditLines is how many events "/agenthub audit" shows
	// without n; maxAuditLines bounds n.
	defaultAuditLines = 10
	maxAuditLines     = 1000
)

// helpText lists the commands, in mrkdwn.
var helpText = strings.Join([]string{
	"*Commands*",
	"`/agenthub help`  this text",
	"`/agenthub connect &lt;service&gt;`  connect github, google or slack",
	"`/agenthub grants`  what agents may do without asking, until when",
	"`/agenthub revoke &lt;service&gt;`  revoke a service: tokens, grants, pending requests",
	"`/agenthub revoke all`  the panic button: everything",
	"`/agenthub pending`  requests waiting for you",
	"`/agenthub audit [n]`  your last n audit events (default 10)",
	"`/agenthub whoami`  who you are and what you have connected",
	"Anything else is a message to the bot: mention me or DM me, such as _list open pull requests in acme/website_.",
}, "\n")

// command is a parsed "/agenthub …".
type command struct {
	verb string // help, connect, grants, revoke, revoke-all, pending, audit, whoami
	arg  string // the service, or the grant
	n    int    // audit's count
}

// parseCommand reads the slash command's text. When the command needs no
// I/O to answer (help, nothing, a typo), answer holds the reply.
func parseCommand(text string) (c command, answer string) {
	args := strings.Fields(text)
	if len(args) == 0 {
		return command{verb: "help"}, helpText
	}
	verb, rest := strings.ToLower(args[0]), args[1:]
	switch {
	case verb == "help" && len(rest) == 0:
		return command{verb: "help"}, helpText
	case verb == "revoke" && len(rest) == 1 && strings.EqualFold(rest[0], "all"):
		return command{verb: "revoke-all"}, ""
	case verb == "revoke" && len(rest) == 1:
		return command{verb: "revoke", arg: strings.ToLower(rest[0])}, ""
	case verb == "connect" && len(rest) == 1:
		return command{verb: "connect", arg: strings.ToLower(rest[0])}, ""
	case (verb == "grants" || verb == "pending" || verb == "whoami") && len(rest) == 0:
		return command{verb: verb}, ""
	case verb == "audit" && len(rest) <= 1:
		n := defaultAuditLines
		if len(rest) == 1 {
			v, err := strconv.Atoi(rest[0])
			if err != nil || v < 1 || v > maxAuditLines {
				return command{}, fmt.Sprintf(":warning: audit takes a number of events from 1 to %d.", maxAuditLines)
			}
			n = v
		}
		return command{verb: "audit", n: n}, ""
	}
	return command{}, fmt.Sprintf("I don't know `%s`.\n%s", escape(clipCommand("/agenthub "+strings.Join(args, " "))), helpText)
}

// clipCommand keeps an echoed command short and on one line of code.
func clipCommand(s string) string {
	return strings.ReplaceAll(truncate(s, 100), "`", "'")
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
	if connected && c.verb != "connect" && c.verb != "revoke" && c.verb != "revoke-all" {
		a.publishHome(ctx, principal)
	}
	return nil
}

// runCommand does the work of a command and returns the answer, in mrkdwn.
func (a *App) runCommand(ctx context.Context, principal broker.Principal, c command) string {
	user := principal.User
	switch c.verb {
	case "connect":
		return a.connect(ctx, principal, c.arg)
	case "revoke", "revoke-all":
		var outs []broker.Output
		var err error
		if c.verb == "revoke" {
			outs, err = a.opts.Broker.Revoke(ctx, principal, c.arg)
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
	case "grants":
		return a.grantsText(ctx, principal)
	case "pending":
		return a.pendingText(ctx, principal)
	case "audit":
		return a.auditText(ctx, principal, c.n)
	case "whoami":
		return a.whoamiText(ctx, principal)
	}
	return helpText
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
		fmt.Fprintf(&b, "\n• *%s* on `%s`: %s, expires %s",
			escape(r.Step.Action), escape(r.Resource.Name), escape(strings.ReplaceAll(string(r.Status), "_", " ")), when(r.Expires))
	}
	b.WriteString("\nThe buttons are in your DMs with me.")
	return b.String()
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
