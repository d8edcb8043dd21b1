package slackapp

import (
	"context"

	"github.com/slack-go/slack"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
)

// publishHome renders principal's App Home afresh: connections, grants,
// pending requests and their last events. When a part cannot be read the
// old view stays, rather than a new one that shows wrongly that there is
// nothing (no connections would read as "all revoked").
func (a *App) publishHome(ctx context.Context, principal broker.Principal) {
	user := principal.User
	var conns []HomeConnection
	if a.opts.Connections != nil {
		var err error
		if conns, err = a.opts.Connections(ctx, principal); err != nil {
			a.log.WarnContext(ctx, "app home not published: connections", "slack_user", user, "err", err)
			return
		}
	}
	for _, svc := range a.opts.Off {
		conns = append(conns, HomeConnection{Service: svc, Off: true})
	}
	grants, err := a.opts.Broker.Grants(ctx, principal)
	if err != nil {
		a.log.WarnContext(ctx, "app home not published: grants", "slack_user", user, "err", err)
		return
	}
	pending, err := a.opts.Broker.Pending(ctx, principal)
	if err != nil {
		a.log.WarnContext(ctx, "app home not published: pending", "slack_user", user, "err", err)
		return
	}
	var events []audit.Event
	if a.opts.History != nil {
		if events, err = a.opts.History(ctx, principal, homeAuditLines); err != nil {
			a.log.WarnContext(ctx, "app home not published: history", "slack_user", user, "err", err)
			return
		}
	}
	view := HomeView(conns, grants, pending, events)
	if _, err := a.opts.API.PublishViewContext(ctx, slack.PublishViewContextRequest{UserID: user, View: view}); err != nil {
		a.noteAuth(err)
		a.log.WarnContext(ctx, "app home not published", "slack_user", user, "err", err)
	}
}
