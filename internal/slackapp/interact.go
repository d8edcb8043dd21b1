package slackapp

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/slack-go/slack"

	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/identity"
	"github.com/agenthub/agenthub/internal/policy"
)

// click is a button press, with what is needed to answer the one who
// pressed it.
type click struct {
	principal   broker.Principal
	user        string
	channel     string // the channel of the message holding the button; "" in App Home
	trigger     string
	responseURL string
	messageTS   string // the message holding the button; "" in App Home
	actionID    string
	value       string
}

// handleInteraction answers a button press or a submitted modal.
func (a *App) handleInteraction(ctx context.Context, cb slack.InteractionCallback) error {
	team := cb.Team.ID
	if team == "" {
		team = cb.User.TeamID
	}
	if cb.User.ID == "" || team == "" {
		return nil
	}
	member := a.member(team, cb.User.TeamID)
	switch cb.Type {
	case slack.InteractionTypeBlockActions:
		if len(cb.ActionCallback.BlockActions) == 0 {
			return nil
		}
		act := cb.ActionCallback.BlockActions[0]
		c := click{
			principal: principalOf(team, cb.User.ID), user: cb.User.ID,
			channel: cb.Container.ChannelID, trigger: cb.TriggerID, responseURL: cb.ResponseURL,
			messageTS: cb.Container.MessageTs, actionID: act.ActionID, value: act.Value,
		}
		if c.channel == "" {
			c.channel = cb.Channel.ID
		}
		if !member {
			a.refused(ctx, principalOf(cmp.Or(cb.User.TeamID, team), cb.User.ID), "not_a_member", "click", c.value)
			a.tell(ctx, c, notAMember)
			return nil
		}
		return a.handleClick(ctx, c)
	case slack.InteractionTypeViewSubmission:
		if !member {
			a.refused(ctx, principalOf(cmp.Or(cb.User.TeamID, team), cb.User.ID), "not_a_member", "view_submission", cb.View.PrivateMetadata)
			return nil
		}
		principal := principalOf(team, cb.User.ID)
		switch cb.View.CallbackID {
		case CallbackStepUp:
			return a.submitStepUp(ctx, principal, cb.View)
		case CallbackEnrol:
			a.submitEnrol(ctx, principal, cb.View)
		}
	}
	return nil
}

// handleClick answers a button. A decision the broker could not take
// (the store or the audit trail failed: nothing happened) is returned as an
// error, so that the transport forgets the click and the person can click
// again; the broker's compare-and-swap keeps a retried decision single.
func (a *App) handleClick(ctx context.Context, c click) error {
	switch {
	case strings.HasPrefix(c.actionID, ActionDecidePrefix):
		return a.decide(ctx, c, strings.TrimPrefix(c.actionID, ActionDecidePrefix))
	case c.actionID == ActionStepUp:
		a.openStepUp(ctx, c)
	case c.actionID == ActionEnrolConfirm:
		a.openEnrolConfirm(ctx, c)
	case c.actionID == ActionConnect:
		a.connectClick(ctx, c)
	case c.actionID == ActionGateAllow, c.actionID == ActionGateRefuse:
		if a.opts.Enroller != nil {
			a.gateClick(ctx, c)
		}
	case c.actionID == ActionViewArgs:
		a.viewArgs(ctx, c)
	case c.actionID == ActionRevokeService, c.actionID == ActionRevokeGrant, c.actionID == ActionRevokeAll:
		a.revokeClick(ctx, c)
	}
	return nil
}

// tell answers the one who clicked, and only them.
func (a *App) tell(ctx context.Context, c click, text string) {
	a.ephemeral(ctx, c.channel, c.user, c.responseURL, text)
}

// decide applies an Approve/Deny click. The request is read after the
// broker has decided, so what is shown is what the decision made of it.
func (a *App) decide(ctx context.Context, c click, choice string) error {
	id := c.value
	outs, err := a.opts.Broker.Decide(ctx, broker.Decision{RequestID: id, Actor: c.principal, Choice: choice})
	a.logBroker(ctx, "decide", id, c.user, err)
	r, lerr := a.lookup(ctx, id)
	if lerr != nil || !r.MayDecide(c.principal) {
		// Gone, unreadable or not theirs to decide: only the clicker hears
		// of it, and the request's messages stay as they are (a gone
		// request's are settled as expired). Only the owner's approval
		// asks for step-up, so that prompt goes to the clicker's DM.
		for _, o := range outs {
			if o.Kind == broker.KindStepUp && lerr != nil {
				a.sendStepUp(ctx, c.principal, thread{}, o)
				continue
			}
			a.tell(ctx, c, outputText(o))
		}
		if errors.Is(lerr, broker.ErrNoRequest) {
			a.updateMessages(ctx, id, "")
		}
		return err
	}
	// What the broker says to a second approver about their own click is
	// theirs; everything else (a step-up prompt, a result, the rest of the
	// plan) is the owner's, in the request's thread.
	t := a.threadOf(ctx, id)
	var forOwner []broker.Output
	for _, o := range outs {
		if o.Kind == broker.KindMessage && o.RequestID == id && c.principal != r.Principal {
			a.tell(ctx, c, outputText(o))
			continue
		}
		forOwner = append(forOwner, o)
	}
	a.deliverAsked(ctx, r.Principal, t, forOwner)
	a.updateMessages(ctx, id, c.user)
	a.settleSession(ctx, t, id, r.Principal.User)
	a.publishHome(ctx, r.Principal)
	return err
}

// lookup reads a request, once more after a failure other than its being
// gone: the decision is already taken, and a blip must not leave the
// person without the prompt or the result it produced.
func (a *App) lookup(ctx context.Context, id string) (broker.Request, error) {
	r, err := a.opts.Broker.Lookup(ctx, id)
	if err != nil && !errors.Is(err, broker.ErrNoRequest) {
		r, err = a.opts.Broker.Lookup(ctx, id)
	}
	return r, err
}

// openStepUp answers "Verify it's you": the code modal, or first the
// enrolment of an authenticator for someone who has none.
func (a *App) openStepUp(ctx context.Context, c click) {
	r, err := a.opts.Broker.Lookup(ctx, c.value)
	switch {
	case errors.Is(err, broker.ErrNoRequest):
		a.tell(ctx, c, "That request no longer exists: it may have expired. Ask again.")
		a.updateMessages(ctx, c.value, "")
		return
	case err != nil:
		a.log.WarnContext(ctx, "request lookup failed", "request_id", c.value, "slack_user", c.user, "err", err)
		a.tell(ctx, c, "I couldn't read that request just now. Try again in a moment.")
		return
	case r.Principal != c.principal:
		a.refused(ctx, c.principal, "not_owner", "stepup_button", r.ID)
		a.tell(ctx, c, "Only the person who asked for this can verify it.")
		return
	}
	if r.Decision.SecondFactor() == policy.FactorOIDC {
		a.tell(ctx, c, a.signInText(ctx, c.principal, identity.StepUpPurpose(r.ID), "Sign in to verify",
			"Once you have signed in, I run it here."))
		return
	}
	if a.opts.Enroller != nil {
		enrolled, err := a.opts.Enroller.Enrolled(ctx, c.principal.String())
		if err != nil {
			a.log.WarnContext(ctx, "enrolment check failed", "request_id", c.value, "slack_user", c.user, "err", err)
			a.tell(ctx, c, "I couldn't check your authenticator set-up just now. Try again in a moment.")
			return
		}
		if !enrolled {
			a.startEnrolment(ctx, c, c.value)
			return
		}
	}
	if _, err := a.opts.API.OpenViewContext(ctx, c.trigger, StepUpModal(r)); err != nil {
		a.noteAuth(err)
		a.log.WarnContext(ctx, "step-up modal not opened", "request_id", c.value, "slack_user", c.user, "err", err)
		a.tell(ctx, c, "The code window didn't open in time. Click \"Verify it's you\" again.")
	}
}

// submitStepUp checks the code typed into the step-up modal. Like decide,
// it reads the request after the broker's answer, and returns the broker's
// error so that a submission nothing came of may be sent again.
func (a *App) submitStepUp(ctx context.Context, principal broker.Principal, v slack.View) error {
	id, code := v.PrivateMetadata, viewValue(v, StepUpBlockID, StepUpActionID)
	if !sixDigits(code) {
		return nil // the ack kept the modal open with a message
	}
	user := principal.User
	outs, err := a.opts.Broker.StepUp(ctx, id, principal, code)
	a.logBroker(ctx, "stepup", id, user, err)
	r, lerr := a.lookup(ctx, id)
	if lerr != nil || r.Principal != principal {
		for _, o := range outs {
			a.reply(ctx, thread{}, user, outputText(o))
		}
		if errors.Is(lerr, broker.ErrNoRequest) {
			a.updateMessages(ctx, id, "")
		}
		return err
	}
	// A wrong code comes back as a step-up output: a fresh button, since
	// the modal has closed.
	t := a.threadOf(ctx, id)
	a.deliverAsked(ctx, principal, t, outs)
	a.updateMessages(ctx, id, user)
	a.settleSession(ctx, t, id, user)
	a.publishHome(ctx, principal)
	return err
}

// errNotMoved: a sign-in that the request did not take.
var errNotMoved = errors.New("slackapp: the request did not take the sign-in")

// SignedIn is told that principal's sign-in at the identity provider for
// request id was checked and recorded (internal/identity): the request
// moves on, and what comes of it goes to its thread, as after a code. It
// returns an error when the request did not take it (it no longer waits
// for it, or the broker failed), so that the sign-in's page says so.
func (a *App) SignedIn(ctx context.Context, principal broker.Principal, id string) error {
	prior, perr := a.lookup(ctx, id)
	outs, err := a.opts.Broker.SignedIn(ctx, id, principal)
	a.logBroker(ctx, "signed_in", id, principal.User, err)
	r, lerr := a.lookup(ctx, id)
	if err == nil && (perr != nil || lerr != nil || prior.Status != broker.StatusAwaitingStepUp || r.Status == broker.StatusAwaitingStepUp) {
		err = errNotMoved // it was not waiting for this, or still is
	}
	if lerr != nil || r.Principal != principal {
		for _, o := range outs {
			a.reply(ctx, thread{}, principal.User, outputText(o))
		}
		if errors.Is(lerr, broker.ErrNoRequest) {
			a.updateMessages(ctx, id, "")
		}
		return cmp.Or(err, lerr, errNotMoved)
	}
	t := a.threadOf(ctx, id)
	a.deliverAsked(ctx, principal, t, outs)
	a.updateMessages(ctx, id, principal.User)
	a.settleSession(ctx, t, id, principal.User)
	a.publishHome(ctx, principal)
	return err
}

// signInText is the answer that gives principal a link to sign in at the
// identity provider for purpose, labelled label, with what happens next.
func (a *App) signInText(ctx context.Context, principal broker.Principal, purpose, label, next string) string {
	if a.opts.SignInLink == nil {
		return "Signing in at an identity provider is not set up here (OIDC_ISSUER): an admin sets it up first (docs/INSTALL.md)."
	}
	link, err := a.opts.SignInLink(principal, purpose)
	if err != nil {
		a.log.WarnContext(ctx, "sign-in link not made", "slack_user", principal.User, "err", err)
		return "I couldn't make a sign-in link just now. Try again in a moment."
	}
	// The link is a URL AgentHub made (base64url and a fixed path).
	return fmt.Sprintf("<%s|%s> (this link is for you alone: it works once, for 10 minutes). %s", link, label, next)
}

// viewArgs answers View all on an approval card: the request's whole
// arguments in a modal, for the people who may decide it alone.
func (a *App) viewArgs(ctx context.Context, c click) {
	r, err := a.opts.Broker.Lookup(ctx, c.value)
	switch {
	case errors.Is(err, broker.ErrNoRequest):
		a.tell(ctx, c, "That request no longer exists: it may have expired.")
		return
	case err != nil:
		a.log.WarnContext(ctx, "request lookup failed", "request_id", c.value, "slack_user", c.user, "err", err)
		a.tell(ctx, c, "I couldn't read that request just now. Try again in a moment.")
		return
	case !r.MayDecide(c.principal):
		a.refused(ctx, c.principal, "not_owner", "view_args", r.ID)
		a.tell(ctx, c, "Only the people who may decide this request can see its arguments.")
		return
	}
	if _, err := a.opts.API.OpenViewContext(ctx, c.trigger, ArgsModal(r)); err != nil {
		a.noteAuth(err)
		a.log.WarnContext(ctx, "arguments modal not opened", "request_id", r.ID, "slack_user", c.user, "err", err)
		a.tell(ctx, c, "The window didn't open in time. Click View all again.")
	}
}

// connectClick answers a Connect button.
func (a *App) connectClick(ctx context.Context, c click) {
	fields := strings.Fields(c.value)
	if len(fields) == 0 {
		return
	}
	a.tell(ctx, c, a.connect(ctx, c.principal, fields[0], fields[1:]...))
}

// connect answers principal's wish to connect service: a link to the OAuth
// flow, made out to them alone, or (the demo) the connection itself.
func (a *App) connect(ctx context.Context, principal broker.Principal, service string, scopes ...string) string {
	if a.opts.Connect == nil && a.opts.ConnectLink == nil {
		return escape(fmt.Sprintf("Connecting %s is not set up here (AGENTHUB_PUBLIC_URL and the service's OAuth client), so I can't connect it from Slack.", service))
	}
	if slices.Contains(a.opts.Off, service) {
		return escape(fmt.Sprintf("%s is not set up here: an admin adds its OAuth client first (docs/INSTALL.md). I can connect %s.",
			service, strings.Join(a.opts.Services, ", ")))
	}
	if !slices.Contains(a.opts.Services, service) {
		return escape(fmt.Sprintf("I don't know the service %q. I can connect %s.", service, strings.Join(a.opts.Services, ", ")))
	}
	if a.opts.ConnectLink != nil {
		link, err := a.opts.ConnectLink(principal, service, scopes)
		if err != nil {
			a.log.WarnContext(ctx, "connect link not made", "slack_user", principal.User, "service", service, "err", err)
			return "I couldn't make a connect link just now. Try again in a moment."
		}
		// The link is a URL AgentHub made (base64url and a fixed path):
		// nothing in it needs escaping inside <…|…>.
		return fmt.Sprintf("<%s|Connect %s> (this link is for you alone: it works once, for 10 minutes). "+
			"I'll carry on here with anything that waits for it once you're connected.", link, escape(service))
	}
	if err := a.opts.Connect(ctx, principal, service); err != nil {
		a.log.WarnContext(ctx, "connect failed", "slack_user", principal.User, "service", service, "err", err)
		return escape(fmt.Sprintf("I couldn't connect %s: the service did not answer as it should. Try again in a moment.", service))
	}
	return escape(a.landed(ctx, principal, service, ""))
}

// ProviderRevoked follows a revocation the person made at the provider
// (named title, as people know it): the connection to service is revoked
// here too, what waited for it is canceled, and the person is told in
// their DM.
func (a *App) ProviderRevoked(ctx context.Context, principal broker.Principal, service, title string) {
	outs, err := a.opts.Broker.Revoke(ctx, principal, service)
	a.logBroker(ctx, "provider_revoked", "", principal.User, err)
	text := fmt.Sprintf("You took back AgentHub's access at %s, so I revoked %s here too.", title, service)
	for _, o := range outs {
		if o.Text != "" {
			text += " " + o.Text
		}
	}
	if _, _, err := a.dm(ctx, principal.User, escape(text), nil); err != nil {
		a.log.WarnContext(ctx, "provider revoked dm failed", "slack_user", principal.User, "service", service, "err", err)
	}
	a.publishHome(ctx, principal)
}

// ConnectionLanded is told that principal's connection to service was
// stored (the OAuth callback): it goes on with the requests that waited for
// it, refreshes App Home and tells principal in their DM.
func (a *App) ConnectionLanded(ctx context.Context, principal broker.Principal, service, account string) {
	if _, _, err := a.dm(ctx, principal.User, escape(a.landed(ctx, principal, service, account)), nil); err != nil {
		a.log.WarnContext(ctx, "connected dm failed", "slack_user", principal.User, "service", service, "err", err)
	}
}

// landed goes on after principal's connection to service was stored: the
// requests that waited for it, App Home; it returns what to tell them.
func (a *App) landed(ctx context.Context, principal broker.Principal, service, account string) string {
	a.forgetConnectPrompt(ctx, principal, service)
	resumed := a.resumeConnected(ctx, principal, service)
	a.publishHome(ctx, principal)
	what := service
	if account != "" {
		what = fmt.Sprintf("%s as %s", service, account)
	}
	if resumed > 0 {
		return fmt.Sprintf("Connected %s. I went on with the %d request(s) that waited for it.", what, resumed)
	}
	return fmt.Sprintf("Connected %s.", what)
}

// resumeConnected goes on with the principal's requests that waited for
// service, now connected, and delivers what comes of each in its thread.
// It returns how many requests it went on with.
func (a *App) resumeConnected(ctx context.Context, principal broker.Principal, service string) int {
	outs, err := a.opts.Broker.Connected(ctx, principal, service)
	a.logBroker(ctx, "connected", requestIDOf(outs), principal.User, err)
	var (
		t       thread
		current string
		ids     []string
	)
	for _, o := range outs {
		if o.RequestID != "" && o.RequestID != current {
			// A request of its own (the resumed one), or a later step of
			// its plan, which goes to the thread of the one before it.
			if rec, _, err := a.loadRecord(ctx, o.RequestID); err == nil {
				t, current = rec.Thread, o.RequestID
				ids = append(ids, o.RequestID)
			}
		}
		a.deliverAsked(ctx, principal, t, []broker.Output{o})
	}
	for _, id := range ids {
		a.updateMessages(ctx, id, "")
	}
	return len(ids)
}

// revokeClick answers the App Home's revoke buttons.
func (a *App) revokeClick(ctx context.Context, c click) {
	var outs []broker.Output
	var err error
	switch c.actionID {
	case ActionRevokeService:
		outs, err = a.opts.Broker.Revoke(ctx, c.principal, c.value)
	case ActionRevokeGrant:
		outs, err = a.opts.Broker.RevokeGrant(ctx, c.principal, c.value)
	default:
		outs, err = a.opts.Broker.RevokeAll(ctx, c.principal)
	}
	a.logBroker(ctx, "revoke", "", c.user, err)
	for _, o := range outs {
		a.tell(ctx, c, outputText(o))
	}
	a.afterRevoke(ctx, c.principal, outs)
}

// afterRevoke settles the messages of the requests a revoke canceled and
// shows the person their App Home as it now is.
func (a *App) afterRevoke(ctx context.Context, principal broker.Principal, outs []broker.Output) {
	// What the planner remembers may quote what the revoked access read:
	// it goes with the access.
	if a.opts.Forget != nil {
		if _, err := a.opts.Forget(ctx, principal); err != nil {
			a.log.WarnContext(ctx, "conversations not forgotten after a revoke", "slack_user", principal.User, "err", err)
		}
	}
	for _, o := range outs {
		for _, id := range o.Requests {
			a.updateMessages(ctx, id, "")
		}
	}
	a.publishHome(ctx, principal)
}

// viewValue returns the text typed into a modal's input.
func viewValue(v slack.View, block, action string) string {
	if v.State == nil {
		return ""
	}
	return strings.TrimSpace(v.State.Values[block][action].Value)
}

// sixDigits reports whether code looks like a TOTP code.
func sixDigits(code string) bool {
	if len(code) != 6 {
		return false
	}
	for _, r := range code {
		if r < '0' || r > '9' {
			return false
		}
	}
	return true
}

// codeField returns the block and action IDs of the code input of a
// modal with callbackID, if it asks for one.
func codeField(callbackID string) (block, action string, ok bool) {
	switch callbackID {
	case CallbackStepUp:
		return StepUpBlockID, StepUpActionID, true
	case CallbackEnrol:
		return EnrolBlockID, EnrolActionID, true
	}
	return "", "", false
}
