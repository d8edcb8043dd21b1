package console

import (
	"context"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/agenthub/agenthub/internal/broker"
)

// HelpText lists the commands; the Slack app will offer the same words.
const HelpText = `Commands:
  /agenthub help               this text
  /agenthub connect <service>  connect github, google or slack
  /agenthub grants             what agents may do without asking, until when
  /agenthub revoke <service>   revoke a service: tokens, grants, pending requests
  /agenthub revoke all         the panic button: everything
  /agenthub pending            requests waiting for you
  /agenthub audit [n]          the last n audit events (default 10)
  /agenthub whoami             who you are and what you have connected
Anything else is a message to the bot, such as "list open pull requests in acme/website".`

// timeFormat shows times in commands' answers.
const timeFormat = "2006-01-02 15:04:05 MST"

func (s *session) command(ctx context.Context, args []string) ([]broker.Output, error) {
	p := s.opts.Principal
	if len(args) == 0 {
		return []broker.Output{{Kind: broker.KindMessage, Text: HelpText}}, nil
	}
	verb, rest := strings.ToLower(args[0]), args[1:]
	switch {
	case verb == "help" && len(rest) == 0:
		return []broker.Output{{Kind: broker.KindMessage, Text: HelpText}}, nil
	case verb == "revoke" && len(rest) == 1 && strings.EqualFold(rest[0], "all"):
		if s.opts.Commands == nil {
			return unavailable("revoke")
		}
		return s.opts.Commands.RevokeAll(ctx, p)
	case verb == "revoke" && len(rest) == 1:
		if s.opts.Commands == nil {
			return unavailable("revoke")
		}
		return s.opts.Commands.Revoke(ctx, p, strings.ToLower(rest[0]))
	case verb == "grants" && len(rest) == 0:
		return s.grants(ctx)
	case verb == "pending" && len(rest) == 0:
		return s.pending(ctx)
	case verb == "audit" && len(rest) <= 1:
		n := DefaultAuditLines
		if len(rest) == 1 {
			v, err := strconv.Atoi(rest[0])
			if err != nil || v < 1 || v > maxAuditLines {
				return []broker.Output{{Kind: broker.KindError, Text: fmt.Sprintf("audit takes a number of events from 1 to %d.", maxAuditLines)}}, nil
			}
			n = v
		}
		return s.audit(ctx, n)
	case verb == "whoami" && len(rest) == 0:
		return s.whoami(ctx)
	case verb == "connect" && len(rest) == 1:
		return s.connect(ctx, strings.ToLower(rest[0]))
	case verb == "code" && len(rest) == 0 && s.opts.DemoCode != nil && s.stepUp != "":
		// The demo's way to see the next code when the last prompt had none.
		return []broker.Output{{Kind: broker.KindStepUp, RequestID: s.stepUp, Text: "Verify it's you to continue."}}, nil
	}
	return []broker.Output{{Kind: broker.KindError, Text: fmt.Sprintf("I don't know %q.\n%s", "/agenthub "+strings.Join(args, " "), HelpText)}}, nil
}

func unavailable(what string) ([]broker.Output, error) {
	return []broker.Output{{Kind: broker.KindError, Text: fmt.Sprintf("%s is not available here.", what)}}, nil
}

func (s *session) grants(ctx context.Context) ([]broker.Output, error) {
	if s.opts.Commands == nil {
		return unavailable("grants")
	}
	gs, err := s.opts.Commands.Grants(ctx, s.opts.Principal)
	if err != nil {
		return []broker.Output{{Kind: broker.KindError, Text: "Your grants could not be read."}}, err
	}
	if len(gs) == 0 {
		return []broker.Output{{Kind: broker.KindMessage, Text: "You have no grants: every write asks you first.", Data: []broker.Grant{}}}, nil
	}
	var b strings.Builder
	b.WriteString("Your grants:")
	for _, g := range gs {
		fmt.Fprintf(&b, "\n  %s on %s (%s) until %s", g.Action, g.Resource, g.Lifetime, g.Expires.Format(timeFormat))
	}
	return []broker.Output{{Kind: broker.KindMessage, Text: b.String(), Data: gs}}, nil
}

func (s *session) pending(ctx context.Context) ([]broker.Output, error) {
	if s.opts.Commands == nil {
		return unavailable("pending")
	}
	rs, err := s.opts.Commands.Pending(ctx, s.opts.Principal)
	if err != nil {
		return []broker.Output{{Kind: broker.KindError, Text: "Your pending requests could not be read."}}, err
	}
	if len(rs) == 0 {
		return []broker.Output{{Kind: broker.KindMessage, Text: "Nothing is waiting for you.", Data: []pendingItem{}}}, nil
	}
	items := make([]pendingItem, 0, len(rs))
	var b strings.Builder
	b.WriteString("Waiting for you:")
	for _, r := range rs {
		items = append(items, pendingItem{ID: r.ID, Action: r.Step.Action, Resource: r.Resource.Name, Status: string(r.Status), Expires: r.Expires})
		fmt.Fprintf(&b, "\n  %s %s on %s: %s, expires %s", r.ID, r.Step.Action, r.Resource.Name, r.Status, r.Expires.Format(timeFormat))
	}
	outs := []broker.Output{{Kind: broker.KindMessage, Text: b.String(), Data: items}}
	if o, ok := resume(rs[len(rs)-1]); ok {
		outs = append(outs, o)
	}
	return outs, nil
}

// resume asks again about the newest pending request, so one left by an
// earlier session (the store keeps requests across restarts) can be
// finished here. It offers only approving once or denying, which every
// request accepts; the broker re-checks the choice all the same.
func resume(r broker.Request) (broker.Output, bool) {
	base := broker.Output{RequestID: r.ID, Action: r.Step.Action, Resource: r.Resource.Name, Rule: r.Decision.Rule, Risk: r.Decision.Risk.String()}
	switch r.Status {
	case broker.StatusPending:
		base.Kind = broker.KindApproval
		base.Text = fmt.Sprintf("Decide the newest: %s on %s?", r.Step.Action, r.Resource.Name)
		base.Choices = []broker.Choice{{Key: broker.ChoiceOnce, Label: "Approve once"}, {Key: broker.ChoiceDeny, Label: "Deny"}}
		return base, true
	case broker.StatusAwaitingStepUp:
		base.Kind = broker.KindStepUp
		base.Text = fmt.Sprintf("%s on %s waits for a code from your authenticator.", r.Step.Action, r.Resource.Name)
		return base, true
	}
	return broker.Output{}, false
}

// pendingItem is what the pending command shows of a request: not its
// arguments, which the approval message already quoted.
type pendingItem struct {
	ID       string    `json:"request_id"`
	Action   string    `json:"action"`
	Resource string    `json:"resource"`
	Status   string    `json:"status"`
	Expires  time.Time `json:"expires"`
}

func (s *session) audit(ctx context.Context, n int) ([]broker.Output, error) {
	if s.opts.Audit == nil {
		return unavailable("audit")
	}
	es, err := s.opts.Audit.Tail(ctx, n)
	if err != nil {
		return []broker.Output{{Kind: broker.KindError, Text: "The audit trail could not be read."}}, err
	}
	if len(es) == 0 {
		return []broker.Output{{Kind: broker.KindMessage, Text: "The audit trail is empty."}}, nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "The last %d audit event(s):", len(es))
	for _, e := range es {
		fmt.Fprintf(&b, "\n  #%d %s %s", e.Seq, e.Time.Format("15:04:05"), e.Kind)
		for _, f := range []string{e.Detail["service"], e.Action, e.Resource, e.Decision, e.Rule, e.Result} {
			if f != "" {
				b.WriteString(" " + f)
			}
		}
		if e.RequestID != "" {
			// Enough of the ID to tell requests apart; Data has all of it.
			b.WriteString(" req=" + shortID(e.RequestID))
		}
	}
	return []broker.Output{{Kind: broker.KindMessage, Text: b.String(), Data: es}}, nil
}

func (s *session) whoami(ctx context.Context) ([]broker.Output, error) {
	text := fmt.Sprintf("You are %s (%s).", s.opts.Name, s.opts.Principal)
	if s.opts.Connections == nil {
		return []broker.Output{{Kind: broker.KindMessage, Text: text}}, nil
	}
	cs, err := s.opts.Connections.Connections(ctx, s.opts.Principal.String())
	if err != nil {
		return []broker.Output{{Kind: broker.KindError, Text: text + " Your connections could not be read."}}, err
	}
	if len(cs) == 0 {
		text += " You have connected no service."
	}
	for _, c := range cs {
		text += fmt.Sprintf("\n  %s: %s, scopes %s", c.Service, c.Status, strings.Join(c.Scopes, " "))
	}
	return []broker.Output{{Kind: broker.KindMessage, Text: text}}, nil
}

func (s *session) connect(ctx context.Context, service string) ([]broker.Output, error) {
	if s.opts.Connect == nil {
		return []broker.Output{{Kind: broker.KindError, Service: service,
			Text: "Connecting a service needs the OAuth flow of the Slack app; it is not available here."}}, nil
	}
	if err := s.opts.Connect(ctx, s.opts.Principal, service); err != nil {
		return []broker.Output{{Kind: broker.KindError, Service: service, Text: fmt.Sprintf("Could not connect %s.", service)}}, err
	}
	outs := []broker.Output{{Kind: broker.KindMessage, Service: service, Text: fmt.Sprintf("Connected %s.", service)}}
	if s.opts.Commands == nil {
		return outs, nil
	}
	// The requests that waited for this connection go on now.
	more, err := s.opts.Commands.Connected(ctx, s.opts.Principal, service)
	return append(outs, more...), err
}

func shortID(id string) string {
	if len(id) > 8 {
		return id[:8]
	}
	return id
}
