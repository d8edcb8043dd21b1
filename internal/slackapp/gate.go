package slackapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/slack-go/slack"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/identity"
	"github.com/agenthub/agenthub/internal/store"
)

// The enrolment gate: where enrolment is gated (stepup.Options.Gated), a
// Slack session alone cannot set up an authenticator, nor replace one. The
// person passes one of: a fresh sign-in of their linked identity at the
// identity provider (Options.SignInLink), or the approval of an
// administrator who is not them (Options.Admins, in Slack); the operator's
// out-of-band link (bot stepup enrol-link) is the third way. Then the
// enrolment starts in their DM (EnrolAllowed).
const (
	// ActionGateAllow and ActionGateRefuse are an administrator's answer
	// to someone's wish to set up (or reset) an authenticator; value is
	// their principal.
	ActionGateAllow  = "agenthub_gate_allow"
	ActionGateRefuse = "agenthub_gate_refuse"
)

// gateKind holds the wishes waiting for an administrator (scope "", ID the
// principal): one at a time per person, so that asking again does not
// flood the administrators, and one answer decides it.
const (
	gateKind = "slack-enrol-gate"
	gateTTL  = 24 * time.Hour
)

// gateAsk is one person's wish, waiting for an administrator.
type gateAsk struct {
	RequestID string    `json:"request_id,omitempty"`
	Reset     bool      `json:"reset,omitempty"`
	Asked     time.Time `json:"asked"`
}

func gateKey(p broker.Principal) store.Key { return store.Key{Kind: gateKind, ID: p.String()} }

// askGate starts the gate for principal (reset: they lost their
// authenticator); tell answers them.
func (a *App) askGate(ctx context.Context, principal broker.Principal, requestID string, reset bool, tell func(string)) {
	what := "Setting up an authenticator"
	if reset {
		what = "Replacing your authenticator"
	}
	if a.opts.SignInLink != nil {
		tell(a.signInText(ctx, principal, identity.EnrolPurpose(requestID, reset), "Sign in to set up your authenticator",
			what+" needs a fresh sign-in at your identity provider. Once you have signed in, I send you the set-up here."))
		return
	}
	admins := slices.DeleteFunc(slices.Clone(a.opts.Admins), func(id string) bool { return id == principal.User })
	if len(admins) == 0 {
		tell(what + " needs more than a Slack session, and neither an identity provider nor an administrator who could approve it is set up here. " +
			"Ask whoever runs AgentHub for a set-up link (bot stepup enrol-link).")
		return
	}
	ask, err := json.Marshal(gateAsk{RequestID: requestID, Reset: reset, Asked: a.now()})
	if err != nil {
		return
	}
	switch err := a.opts.Store.Create(ctx, gateKey(principal), ask, gateTTL); {
	case errors.Is(err, store.ErrExists):
		tell(fmt.Sprintf("I already asked an administrator (%s) to approve this; I'll tell you here when one does.", mentions(admins)))
		return
	case err != nil:
		a.log.WarnContext(ctx, "enrolment gate not asked", "slack_user", principal.User, "err", err)
		tell("I couldn't ask an administrator just now. Try again in a moment.")
		return
	}
	why := "set up an authenticator for step-up"
	if reset {
		why = "replace their authenticator (they lost it): the old one stops working"
	}
	text := fmt.Sprintf("%s asks to %s. Approve only once you know it is them (a call, in person): whoever holds their Slack session could be asking.",
		mention(principal.User), why)
	blocks := []slack.Block{section(text)}
	blocks = append(blocks, actions("agenthub_gate", []*slack.ButtonBlockElement{
		button(ActionGateAllow, "Approve", principal.String()).WithStyle(slack.StylePrimary),
		button(ActionGateRefuse, "Refuse", principal.String()).WithStyle(slack.StyleDanger),
	})...)
	asked := 0
	for _, admin := range admins {
		if _, _, err := a.dm(ctx, admin, text, blocks); err != nil {
			a.log.WarnContext(ctx, "enrolment gate dm failed", "slack_user", admin, "err", err)
			continue
		}
		asked++
	}
	if asked == 0 {
		_ = a.opts.Store.Delete(ctx, gateKey(principal))
		tell("I couldn't reach an administrator just now. Try again in a moment.")
		return
	}
	tell(fmt.Sprintf("%s needs more than a Slack session: I asked an administrator (%s) to approve it, and I'll tell you here when one does.", what, mentions(admins)))
}

// gateClick answers an administrator's Approve or Refuse. Only the
// administrators may answer, never for themselves, and the first answer
// decides.
func (a *App) gateClick(ctx context.Context, c click) {
	who, err := broker.ParsePrincipal(c.value)
	switch {
	case err != nil:
		return
	case !slices.Contains(a.opts.Admins, c.user) || c.principal.Team != who.Team:
		a.refused(ctx, c.principal, "not_an_admin", "enrol_gate", "")
		a.tell(ctx, c, "Only AgentHub's administrators can answer this.")
		return
	case c.principal == who:
		a.refused(ctx, c.principal, "own_enrolment", "enrol_gate", "")
		a.tell(ctx, c, "You cannot approve your own authenticator: another administrator has to.")
		return
	}
	var ask *gateAsk
	_, err = store.Update(ctx, a.opts.Store, gateKey(who), store.KeepTTL, func(cur []byte) ([]byte, error) {
		ask = nil
		if cur == nil {
			return nil, store.Keep
		}
		var g gateAsk
		if json.Unmarshal(cur, &g) == nil {
			ask = &g
		}
		return nil, store.Remove
	})
	if err != nil {
		a.log.WarnContext(ctx, "enrolment gate not read", "slack_user", c.user, "err", err)
		a.tell(ctx, c, "I couldn't record your answer just now. Try again in a moment.")
		return
	}
	if ask == nil {
		a.tell(ctx, c, "This was already answered, or it expired.")
		return
	}
	if c.actionID == ActionGateRefuse {
		if err := a.opts.Broker.Refuse(ctx, broker.Refusal{Actor: who.String(), Kind: audit.InteractionRejected,
			Reason: "enrolment_refused", Op: "enrol_gate", Resource: c.principal.String()}); err != nil {
			a.log.WarnContext(ctx, "refusal not recorded", "slack_user", c.user, "err", err)
		}
		a.tell(ctx, c, fmt.Sprintf("Refused: %s cannot set up an authenticator with this request.", mention(who.User)))
		a.reply(ctx, thread{}, who.User, fmt.Sprintf("%s refused setting up your authenticator. Talk to them if it was you who asked.", mention(c.user)))
		return
	}
	if err := a.opts.Enroller.Allow(ctx, who.String(), "admin:"+c.principal.String(), ask.Reset); err != nil {
		a.log.WarnContext(ctx, "enrolment not allowed", "slack_user", c.user, "err", err)
		a.tell(ctx, c, "I couldn't record your approval just now. Ask them to ask again.")
		return
	}
	a.tell(ctx, c, fmt.Sprintf("Approved: I am sending %s the set-up of their authenticator.", mention(who.User)))
	a.reply(ctx, thread{}, who.User, fmt.Sprintf("%s approved setting up your authenticator.", mention(c.user)))
	a.EnrolAllowed(ctx, who, ask.RequestID)
}

// resetText answers /agenthub reset: the gate, for a new authenticator in
// place of a lost one.
func (a *App) resetText(ctx context.Context, principal broker.Principal) string {
	if a.opts.Enroller == nil {
		return "Step-up codes are not used here: there is no authenticator to reset."
	}
	var answer string
	a.askGate(ctx, principal, "", true, func(text string) { answer = text })
	return answer
}
