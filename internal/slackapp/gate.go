package slackapp

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/identity"
	"github.com/agenthub/agenthub/internal/store"
)

// The enrolment gate: where enrolment is gated (stepup.Options.Gated), a
// Slack session alone cannot set up an authenticator, nor replace one, and
// its key never travels through Slack. The person passes one of: a fresh
// sign-in of their linked identity at the identity provider (Options.
// SignInLink), whose page shows the key; or the approval of an
// administrator who is not them (Options.Admins), who gets a single-use
// link (Options.EnrolLink) to hand over out of band, whose page shows the
// key; the operator's "bot stepup enrol-link" is the same link without
// Slack.
const (
	// ActionGateAllow and ActionGateRefuse are an administrator's answer
	// to someone's wish to set up (or reset) an authenticator; value is
	// their principal and the wish's ID, "T…:U…|id".
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
	ID    string    `json:"id"` // in the buttons: an answer is for this wish only
	Reset bool      `json:"reset,omitempty"`
	Asked time.Time `json:"asked"`
	// Shown are the administrators' DMs that ask, rewritten once one
	// answers.
	Shown []enrolmentDM `json:"shown,omitempty"`
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
			what+" needs a fresh sign-in at your identity provider. The page you sign in on shows the key; then confirm it here."))
		return
	}
	admins := slices.DeleteFunc(slices.Clone(a.opts.Admins), func(id string) bool { return id == principal.User })
	if len(admins) == 0 || a.opts.EnrolLink == nil {
		tell(what + " needs more than a Slack session, and neither an identity provider nor an administrator who could approve it is set up here. " +
			"Ask whoever runs AgentHub for a set-up link (bot stepup enrol-link).")
		return
	}
	var id [16]byte
	if _, err := rand.Read(id[:]); err != nil {
		tell("I couldn't ask an administrator just now. Try again in a moment.")
		return
	}
	ask := gateAsk{ID: hex.EncodeToString(id[:]), Reset: reset, Asked: a.now()}
	raw, err := json.Marshal(ask)
	if err != nil {
		return
	}
	switch err := a.opts.Store.Create(ctx, gateKey(principal), raw, gateTTL); {
	case errors.Is(err, store.ErrExists):
		tell(fmt.Sprintf("I already asked an administrator (%s) to approve this; one of them will hand you a set-up link outside Slack.", mentions(admins)))
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
	text := fmt.Sprintf("%s asks to %s. Approve only once you know it is them (a call, in person): whoever holds their Slack session could be asking. "+
		"Approving gives you a link to hand them outside Slack; it shows their key once.", mention(principal.User), why)
	value := principal.String() + "|" + ask.ID
	blocks := []slack.Block{section(text)}
	blocks = append(blocks, actions("agenthub_gate", []*slack.ButtonBlockElement{
		button(ActionGateAllow, "Approve", value).WithStyle(slack.StylePrimary),
		button(ActionGateRefuse, "Refuse", value).WithStyle(slack.StyleDanger),
	})...)
	for _, admin := range admins {
		ch, ts, err := a.dm(ctx, admin, text, blocks)
		if err != nil {
			a.log.WarnContext(ctx, "enrolment gate dm failed", "slack_user", admin, "err", err)
			continue
		}
		ask.Shown = append(ask.Shown, enrolmentDM{Channel: ch, TS: ts})
	}
	if len(ask.Shown) == 0 {
		_ = a.opts.Store.CompareAndDelete(ctx, gateKey(principal), raw)
		tell("I couldn't reach an administrator just now. Try again in a moment.")
		return
	}
	if shown, err := json.Marshal(ask); err == nil {
		if err := a.opts.Store.CompareAndSwap(ctx, gateKey(principal), raw, shown, store.KeepTTL); err != nil {
			a.log.WarnContext(ctx, "enrolment gate messages not recorded", "slack_user", principal.User, "err", err)
		}
	}
	tell(fmt.Sprintf("%s needs more than a Slack session: I asked an administrator (%s) to approve it. One of them will hand you a set-up link outside Slack.",
		what, mentions(admins)))
}

// gateClick answers an administrator's Approve or Refuse. Only the
// administrators may answer, never for themselves, for the wish the
// buttons were shown for, and the first answer decides.
func (a *App) gateClick(ctx context.Context, c click) {
	raw, askID, _ := strings.Cut(c.value, "|")
	who, err := broker.ParsePrincipal(raw)
	switch {
	case err != nil || askID == "":
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
		if json.Unmarshal(cur, &g) != nil || g.ID != askID {
			return nil, store.Keep // another wish's buttons, or damaged
		}
		ask = &g
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
	outcome := "refused by " + mention(c.user)
	defer func() { a.settleGate(ctx, who, *ask, outcome) }()
	if c.actionID == ActionGateRefuse {
		if err := a.opts.Broker.Refuse(ctx, broker.Refusal{Actor: who.String(), Kind: audit.InteractionRejected,
			Reason: "enrolment_refused", Op: "enrol_gate", Resource: c.principal.String()}); err != nil {
			a.log.WarnContext(ctx, "refusal not recorded", "slack_user", c.user, "err", err)
		}
		a.tell(ctx, c, fmt.Sprintf("Refused: %s cannot set up an authenticator with this request.", mention(who.User)))
		a.reply(ctx, thread{}, who.User, fmt.Sprintf("%s refused setting up your authenticator. Talk to them if it was you who asked.", mention(c.user)))
		return
	}
	link, err := a.opts.EnrolLink(ctx, who, "admin:"+c.principal.String(), ask.Reset)
	if err != nil {
		a.log.WarnContext(ctx, "enrolment link not made", "slack_user", c.user, "err", err)
		outcome = "not answered: the link could not be made"
		a.tell(ctx, c, "I couldn't make the set-up link just now. Ask them to ask again.")
		a.reply(ctx, thread{}, who.User, "An administrator approved setting up your authenticator, but I couldn't make the set-up link. Ask again in a moment.")
		return
	}
	outcome = "approved by " + mention(c.user)
	// The link is a URL AgentHub made (base64url and a fixed path). It is
	// shown to the administrator alone, and never left in a conversation.
	if !a.ephemeralOnly(ctx, c.channel, c.user, c.responseURL, fmt.Sprintf("Approved. Hand %s this link outside Slack (in person, on a call): <%s|set-up link>. "+
		"It works once, shows their key once, and nothing in Slack ever shows it.", mention(who.User), link)) {
		a.reply(ctx, thread{}, c.user, fmt.Sprintf("Approved, but I couldn't show you the set-up link privately, and it must not stay in a conversation. "+
			"Run bot stepup enrol-link %s where AgentHub runs instead.", who))
	}
	a.reply(ctx, thread{}, who.User, fmt.Sprintf("%s approved setting up your authenticator and will hand you a set-up link outside Slack. "+
		"Open it in your browser: it shows your key once.", mention(c.user)))
}

// settleGate rewrites the administrators' DMs of an answered wish, so that
// no button of it stays.
func (a *App) settleGate(ctx context.Context, who broker.Principal, ask gateAsk, outcome string) {
	what := "set up an authenticator"
	if ask.Reset {
		what = "replace their authenticator"
	}
	text := fmt.Sprintf("%s asked to %s: %s.", mention(who.User), what, outcome)
	for _, m := range ask.Shown {
		_, _, _, err := a.opts.API.UpdateMessageContext(ctx, m.Channel, m.TS, slack.MsgOptionText(text, false),
			slack.MsgOptionBlocks(section(text)))
		a.noteAuth(err)
		if err != nil && !slackGone(err) {
			a.log.WarnContext(ctx, "enrolment gate dm not rewritten", "slack_user", who.User, "err", err)
		}
	}
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
