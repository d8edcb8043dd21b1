package console

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/command"
)

// terminal is how the command's help and its answers to mistakes look in
// a terminal; the words are internal/command's, the Slack app's too.
var terminal = command.Style{
	Typed:   strconv.Quote,
	Example: strconv.Quote,
	Indent:  "  ",
	Align:   true,
}

// timeFormat shows times in commands' answers.
const timeFormat = "2006-01-02 15:04:05 MST"

// style is terminal, with the demo's forms when there is a demo
// authenticator.
func (s *session) style() command.Style {
	st := terminal
	st.Demo = s.opts.DemoCode != nil
	return st
}

// command does what text, the words after "/agenthub", asks.
func (s *session) command(ctx context.Context, text string) ([]broker.Output, error) {
	p := s.opts.Principal
	c, err := command.Parse(text)
	if err == nil && c.Verb == command.Code && s.opts.DemoCode == nil {
		err = command.Unknown(text) // no demo authenticator here
	}
	if err == nil && (c.Verb == command.Link || c.Verb == command.Unlink || c.Verb == command.Reset || c.Verb == command.Forget) {
		err = command.Unknown(text) // nobody signs in at an identity provider here
	}
	var bad *command.Error
	switch {
	case errors.As(err, &bad):
		return []broker.Output{{Kind: broker.KindError, Text: bad.Text(s.style())}}, nil
	case err != nil:
		return []broker.Output{{Kind: broker.KindError, Text: s.style().Help()}}, nil
	}
	switch c.Verb {
	case command.Revoke, command.RevokeAll:
		if s.opts.Commands == nil {
			return unavailable("revoke")
		}
		if c.Verb == command.RevokeAll {
			return s.opts.Commands.RevokeAll(ctx, p)
		}
		return s.opts.Commands.Revoke(ctx, p, c.Service)
	case command.Grants:
		return s.grants(ctx)
	case command.Pending:
		return s.pending(ctx)
	case command.Audit:
		return s.audit(ctx, c.Count)
	case command.Whoami:
		return s.whoami(ctx)
	case command.Connect:
		return s.connect(ctx, c.Service)
	case command.Code:
		return s.code(ctx)
	}
	return []broker.Output{{Kind: broker.KindMessage, Text: s.style().Help()}}, nil
}

// code shows the demo authenticator's next code: again for the step-up
// that waits (the last prompt may have come before a fresh code), or on
// its own.
func (s *session) code(ctx context.Context) ([]broker.Output, error) {
	if s.stepUp != "" {
		// print adds the code to the prompt.
		return []broker.Output{{Kind: broker.KindStepUp, RequestID: s.stepUp, Text: "Verify it's you to continue."}}, nil
	}
	code, err := s.opts.DemoCode(ctx)
	if err != nil {
		return []broker.Output{{Kind: broker.KindMessage, Text: "demo: " + noFreshCode}}, nil
	}
	return []broker.Output{{Kind: broker.KindMessage, Text: "demo: your authenticator shows " + code + ". No step-up is waiting for it."}}, nil
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
		items = append(items, pendingItem{ID: r.ID, Action: r.Step.Action, Resource: r.Resource.Name, Service: r.Service,
			Status: string(r.Status), Expires: r.Expires})
		fmt.Fprintf(&b, "\n  %s %s %s, expires %s", r.ID, r.Step.Action, waitingFor(r), r.Expires.Format(timeFormat))
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

// waitingFor says what a pending request waits for: its connection, or a
// decision about its resource.
func waitingFor(r broker.Request) string {
	if r.Status == broker.StatusWaitingConnection {
		// Such a request has no resource yet: it is known once the service
		// is connected.
		return "waiting for the " + r.Service + " connection"
	}
	return fmt.Sprintf("on %s: %s", r.Resource.Name, r.Status)
}

// pendingItem is what the pending command shows of a request: not its
// arguments, which the approval message already quoted. Resource is empty
// while the request waits for the connection to Service.
type pendingItem struct {
	ID       string    `json:"request_id"`
	Action   string    `json:"action"`
	Resource string    `json:"resource"`
	Service  string    `json:"service,omitempty"`
	Status   string    `json:"status"`
	Expires  time.Time `json:"expires"`
}

// audit shows the person's own last n audit events, as the Slack app's
// "/agenthub audit" does.
func (s *session) audit(ctx context.Context, n int) ([]broker.Output, error) {
	if s.opts.History == nil {
		return unavailable("audit")
	}
	es, err := s.opts.History(ctx, s.opts.Principal, n)
	if err != nil {
		return []broker.Output{{Kind: broker.KindError, Text: "The audit trail could not be read."}}, err
	}
	if len(es) == 0 {
		return []broker.Output{{Kind: broker.KindMessage, Text: "The audit trail has nothing about you yet.", Data: []audit.Event{}}}, nil
	}
	var b strings.Builder
	fmt.Fprintf(&b, "Your last %d audit event(s):", len(es))
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
	cs, err := s.opts.Connections(ctx, s.opts.Principal)
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
