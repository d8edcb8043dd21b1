package slackapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/slack-go/slack"

	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/stepup"
	"github.com/agenthub/agenthub/internal/store"
)

// Enrolment in TOTP step-up, for a person who clicks "Verify it's you"
// without an authenticator: a DM shows the secret once, with a Confirm
// button; the modal behind it takes the first code; once it passes, the DM
// is rewritten without the secret and the waiting request's step-up is
// offered.
const (
	// ActionEnrolConfirm opens the enrolment's confirm modal; value is the
	// request ID that waits for the step-up.
	ActionEnrolConfirm = "agenthub_enrol_confirm"
	// CallbackEnrol is the confirm modal's callback ID; its private
	// metadata is the waiting request's ID.
	CallbackEnrol = "agenthub_enrol"
	// EnrolBlockID and EnrolActionID locate the first code in the confirm
	// modal's submitted state.
	EnrolBlockID  = "enrol_code"
	EnrolActionID = "code"
)

// enrolmentKind records where the enrolment DM showing a secret is
// (scope: the principal, ID "dm"), so that it can be rewritten without the
// secret by whichever replica handles the confirmation.
const enrolmentKind = "slack-enrolment"

// enrolmentTTL is how long an unconfirmed enrolment DM is remembered.
const enrolmentTTL = 7 * 24 * time.Hour

type enrolmentDM struct {
	Channel   string `json:"channel"`
	TS        string `json:"ts"`
	RequestID string `json:"request_id"`
}

func enrolmentKey(principal string) store.Key {
	return store.Key{Scope: principal, Kind: enrolmentKind, ID: "dm"}
}

// startEnrolment creates a pending enrolment and DMs its secret.
func (a *App) startEnrolment(ctx context.Context, c click, requestID string) {
	enr, err := a.opts.Enroller.Enroll(ctx, c.principal, "")
	if errors.Is(err, stepup.ErrAlreadyEnrolled) {
		// Confirmed meanwhile (another click, another replica).
		a.tell(ctx, c, "Your authenticator is already set up. Click \"Verify it's you\" again.")
		return
	}
	if err != nil {
		a.log.WarnContext(ctx, "enrolment not started", "request_id", requestID, "slack_user", c.user, "err", err)
		a.tell(ctx, c, "I couldn't start setting up your authenticator just now. Try again in a moment.")
		return
	}
	ch, ts, err := a.dm(ctx, c.user, "Set up your authenticator for AgentHub", EnrolmentMessage(enr, requestID))
	if err != nil {
		a.log.WarnContext(ctx, "enrolment dm failed", "request_id", requestID, "slack_user", c.user, "err", err)
		a.tell(ctx, c, "I couldn't send you the set-up in a DM. Try again in a moment.")
		return
	}
	raw, err := json.Marshal(enrolmentDM{Channel: ch, TS: ts, RequestID: requestID})
	if err != nil {
		a.log.WarnContext(ctx, "enrolment dm not recorded", "slack_user", c.user, "err", err)
		return
	}
	key := enrolmentKey(c.principal)
	prev, _ := a.opts.Store.Get(ctx, key)
	if err := a.opts.Store.Put(ctx, key, raw, enrolmentTTL); err != nil {
		a.log.WarnContext(ctx, "enrolment dm not recorded", "slack_user", c.user, "err", err)
	}
	// A new enrolment replaces the secret of an earlier one: that one must
	// not stay in the conversation either.
	var old enrolmentDM
	if prev.Value != nil && json.Unmarshal(prev.Value, &old) == nil && old.TS != ts {
		a.replaceEnrolmentDM(ctx, old, "Set-up replaced", "This set-up was replaced by a newer one below; its key no longer works.")
	}
}

// openEnrolConfirm opens the modal that takes the first code.
func (a *App) openEnrolConfirm(ctx context.Context, c click) {
	if a.opts.Enroller == nil {
		return
	}
	if _, err := a.opts.API.OpenViewContext(ctx, c.trigger, EnrolModal(c.value)); err != nil {
		a.log.WarnContext(ctx, "enrolment modal not opened", "slack_user", c.user, "err", err)
		a.tell(ctx, c, "The code window didn't open in time. Click Confirm again.")
	}
}

// submitEnrol confirms the enrolment with the first code.
func (a *App) submitEnrol(ctx context.Context, principal string, v slack.View) {
	code := viewValue(v, EnrolBlockID, EnrolActionID)
	if a.opts.Enroller == nil || !sixDigits(code) {
		return
	}
	user := userOf(principal)
	if err := a.opts.Enroller.Confirm(ctx, principal, code); err != nil {
		text := "I couldn't check that code just now. Press Confirm and try again in a moment."
		known := false
		for _, e := range []error{stepup.ErrBadCode, stepup.ErrReplay, stepup.ErrLocked, stepup.ErrNotEnrolled, stepup.ErrAlreadyEnrolled} {
			if errors.Is(err, e) {
				text, known = "That didn't work: "+e.Error()+". Press Confirm and enter the code your app shows now.", true
				break
			}
		}
		if !known {
			a.log.WarnContext(ctx, "enrolment confirm failed", "slack_user", user, "err", err)
		}
		a.reply(ctx, thread{}, user, escape(text))
		return
	}

	key := enrolmentKey(principal)
	if it, err := a.opts.Store.Get(ctx, key); err == nil {
		var dm enrolmentDM
		if json.Unmarshal(it.Value, &dm) == nil {
			a.replaceEnrolmentDM(ctx, dm, "Authenticator set up",
				"Your authenticator is set up. I removed its key from this conversation; from now on, codes from your app verify high-risk actions.")
		}
		if err := a.opts.Store.CompareAndDelete(ctx, key, it.Value); err != nil && !errors.Is(err, store.ErrConflict) && !errors.Is(err, store.ErrNotFound) {
			a.log.WarnContext(ctx, "enrolment dm record not deleted", "slack_user", user, "err", err)
		}
	} else if !errors.Is(err, store.ErrNotFound) {
		a.log.WarnContext(ctx, "enrolment dm record unreadable", "slack_user", user, "err", err)
	}

	// The request that was waiting gets its step-up now.
	id := v.PrivateMetadata
	r, err := a.opts.Broker.Lookup(ctx, id)
	if err != nil || r.Principal != principal || r.Status != broker.StatusAwaitingStepUp {
		return
	}
	o := broker.Output{Kind: broker.KindStepUp, RequestID: r.ID, Action: r.Step.Action, Resource: r.Resource.Name,
		Rule: r.Decision.Rule, Risk: r.Decision.Risk.String(),
		Text: fmt.Sprintf("You're set up. Now verify it's you to run %s on %s.", r.Step.Action, r.Resource.Name)}
	if r.SecondBy == "" {
		o.Approvers = r.Approvers
	}
	a.sendStepUp(ctx, principal, a.threadOf(ctx, id), o)
}

// replaceEnrolmentDM rewrites an enrolment DM so that its secret leaves
// the conversation.
func (a *App) replaceEnrolmentDM(ctx context.Context, dm enrolmentDM, title, text string) {
	blocks := []slack.Block{header(title), section(escape(text))}
	if _, _, _, err := a.opts.API.UpdateMessageContext(ctx, dm.Channel, dm.TS,
		slack.MsgOptionText(escape(title), false), slack.MsgOptionBlocks(blocks...)); err != nil {
		a.log.WarnContext(ctx, "enrolment dm not rewritten", "err", err)
	}
}

// EnrolmentMessage shows a new authenticator secret, once, with a Confirm
// button (value: the request waiting for step-up). This is the only place
// the secret is revealed; the message is rewritten without it once the
// first code passes.
func EnrolmentMessage(enr stepup.Enrolment, requestID string) []slack.Block {
	b := button(ActionEnrolConfirm, "Confirm", requestID).WithStyle(slack.StylePrimary)
	blocks := []slack.Block{
		header("Set up your authenticator"),
		section("High-risk actions need a fresh code from an authenticator app (Google Authenticator, 1Password, Authy, …). " +
			"Add AgentHub to yours with this key:\n`" + escape(enr.Secret.Reveal()) + "`\n" +
			"or open this link on your phone:\n`" + escape(enr.URI.Reveal()) + "`"),
		contextLine("Then press Confirm and type the first code your app shows. I'll remove the key from this conversation once it works."),
	}
	return append(blocks, actions("agenthub_enrol", []*slack.ButtonBlockElement{b})...)
}

// EnrolModal asks for the first code of a new authenticator. Its private
// metadata is the waiting request's ID.
func EnrolModal(requestID string) slack.ModalViewRequest {
	input := slack.NewPlainTextInputBlockElement(plain("123456", 150), EnrolActionID).
		WithMinLength(6).WithMaxLength(6)
	return slack.ModalViewRequest{
		Type:            slack.VTModal,
		Title:           plain("Confirm authenticator", maxModalTitle),
		Submit:          plain("Confirm", maxModalTitle),
		Close:           plain("Cancel", maxModalTitle),
		CallbackID:      CallbackEnrol,
		PrivateMetadata: cut(requestID, maxMetadata),
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			section("Type the 6-digit code your authenticator app shows for AgentHub."),
			slack.NewInputBlock(EnrolBlockID, plain("6-digit code", 2000), nil, input),
		}},
	}
}
