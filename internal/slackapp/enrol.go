package slackapp

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
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

// enrolmentKind records the enrolment DMs that show, or showed, a secret
// (scope "", ID the principal): global, so that the sweeper can list them,
// and in the store, so that whichever replica handles the confirmation can
// rewrite them without the secret.
const enrolmentKind = "slack-enrolment"

// enrolmentTTL is how long an enrolment record outlives its last change:
// long enough for the sweeper to outlast any Slack outage worth waiting for.
const enrolmentTTL = 7 * 24 * time.Hour

// enrolmentGrace is how long past stepup.PendingTTL the sweeper waits
// before it calls a set-up expired, so that a code confirmed at the last
// moment is not followed by "this set-up expired".
const enrolmentGrace = time.Minute

// Why an enrolment DM is rewritten without its secret.
const (
	retireConfirmed = "confirmed" // the first code passed
	retireReplaced  = "replaced"  // a newer enrolment's DM shows the live secret
	retireExpired   = "expired"   // not confirmed within stepup.PendingTTL
	retireUnsaved   = "unsaved"   // the record could not be written: nothing could rewrite it later
)

// enrolmentDM is one DM that shows a secret.
type enrolmentDM struct {
	Channel   string `json:"channel"`
	TS        string `json:"ts"`
	RequestID string `json:"request_id,omitempty"`
}

// retiredDM is an enrolment DM still to be rewritten, and why.
type retiredDM struct {
	enrolmentDM
	Why string `json:"why"`
}

// enrolmentRecord is what the app keeps about one person's enrolment DMs:
// the one showing the live secret, if any, and those whose secret must
// still leave Slack because an earlier rewrite failed. Every change is a
// compare-and-swap, so of two enrolments started at once on two replicas
// exactly one DM is recorded as current: the one with the later
// generation, whatever order the replicas write in.
type enrolmentRecord struct {
	Generation stepup.Generation `json:"generation"`
	Current    *enrolmentDM      `json:"current,omitempty"`
	Started    time.Time         `json:"started,omitzero"` // when Current was shown
	Retire     []retiredDM       `json:"retire,omitempty"`
}

func enrolmentKey(principal broker.Principal) store.Key {
	return store.Key{Kind: enrolmentKind, ID: principal.String()}
}

// startEnrolment creates a pending enrolment and DMs its secret, after the
// click of "Verify it's you" of someone not enrolled.
func (a *App) startEnrolment(ctx context.Context, c click, requestID string) {
	a.enrol(ctx, c.principal, requestID, func(text string) { a.tell(ctx, c, text) })
}

// enrol creates a pending enrolment and DMs its secret; tell answers the
// person when it cannot. Where enrolment is gated and nothing let them
// enrol, the gate is started instead.
func (a *App) enrol(ctx context.Context, principal broker.Principal, requestID string, tell func(string)) {
	enr, err := a.opts.Enroller.Enroll(ctx, principal.String(), "")
	if errors.Is(err, stepup.ErrNotAllowed) {
		a.askGate(ctx, principal, requestID, false, tell)
		return
	}
	if errors.Is(err, stepup.ErrAlreadyEnrolled) {
		// Confirmed meanwhile (another click, another replica).
		tell("Your authenticator is already set up. Click \"Verify it's you\" again.")
		return
	}
	if err != nil {
		a.log.WarnContext(ctx, "enrolment not started", "request_id", requestID, "slack_user", principal.User, "err", err)
		tell("I couldn't start setting up your authenticator just now. Try again in a moment.")
		return
	}
	ch, ts, err := a.dm(ctx, principal.User, "Set up your authenticator for AgentHub", EnrolmentMessage(enr, requestID))
	if err != nil {
		a.log.WarnContext(ctx, "enrolment dm failed", "request_id", requestID, "slack_user", principal.User, "err", err)
		tell("I couldn't send you the set-up in a DM. Try again in a moment.")
		return
	}
	dm := enrolmentDM{Channel: ch, TS: ts, RequestID: requestID}
	err = a.updateEnrolment(ctx, principal, func(rec *enrolmentRecord, _ bool) bool {
		// An Enroller that does not number its enrolments (generation 0)
		// gets last-writer-wins.
		if enr.Generation != 0 && enr.Generation <= rec.Generation {
			// A later enrolment, started at the same time, was recorded
			// first: this DM's secret is already dead.
			rec.Retire = append(rec.Retire, retiredDM{dm, retireReplaced})
			return true
		}
		if rec.Current != nil {
			// The earlier secret must not stay in the conversation either.
			rec.Retire = append(rec.Retire, retiredDM{*rec.Current, retireReplaced})
		}
		rec.Generation, rec.Current, rec.Started = enr.Generation, &dm, a.now()
		return true
	})
	if err != nil {
		// Unrecorded, nothing would ever take the secret out of the DM:
		// take it out now, and let the person start over.
		a.log.WarnContext(ctx, "enrolment dm not recorded", "request_id", requestID, "slack_user", principal.User, "err", err)
		if err := a.rewriteEnrolmentDM(ctx, dm, retireUnsaved); err != nil {
			a.log.ErrorContext(ctx, "unrecorded enrolment dm not rewritten", "request_id", requestID, "slack_user", principal.User, "err", err)
		}
		tell("I couldn't save your authenticator set-up, so I removed its key. Click \"Verify it's you\" again in a moment.")
		return
	}
	a.settleEnrolment(ctx, principal)
}

// openEnrolConfirm opens the modal that takes the first code.
func (a *App) openEnrolConfirm(ctx context.Context, c click) {
	if a.opts.Enroller == nil {
		return
	}
	shownIn := enrolmentDM{Channel: c.channel, TS: c.messageTS, RequestID: c.value}
	if _, err := a.opts.API.OpenViewContext(ctx, c.trigger, EnrolModal(shownIn)); err != nil {
		a.noteAuth(err)
		a.log.WarnContext(ctx, "enrolment modal not opened", "slack_user", c.user, "err", err)
		a.tell(ctx, c, "The code window didn't open in time. Click Confirm again.")
	}
}

// submitEnrol confirms the enrolment with the first code.
func (a *App) submitEnrol(ctx context.Context, principal broker.Principal, v slack.View) {
	code := viewValue(v, EnrolBlockID, EnrolActionID)
	if a.opts.Enroller == nil || !sixDigits(code) {
		return
	}
	user := principal.User
	if err := a.opts.Enroller.Confirm(ctx, principal.String(), code); err != nil {
		if errors.Is(err, stepup.ErrExpired) {
			a.retireCurrent(ctx, principal, retireExpired)
			a.reply(ctx, thread{}, user, escape(expiredText))
			return
		}
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
		if lo, ok := errors.AsType[*stepup.LockedOut](err); ok && !errors.Is(err, stepup.ErrLocked) {
			a.reply(ctx, thread{}, user, escape(broker.LockoutNotice(lo)))
		}
		return
	}
	// The DM the Confirm button was pressed in shows the secret that now
	// works, whether or not the record names it (its write may have failed,
	// or the post that made it may have timed out after Slack took it): it
	// joins the DMs to rewrite.
	shownIn := enrolModalMeta(v.PrivateMetadata)
	if shownIn.Channel != "" && shownIn.TS != "" {
		err := a.updateEnrolment(ctx, principal, func(rec *enrolmentRecord, _ bool) bool {
			same := func(d enrolmentDM) bool { return d.Channel == shownIn.Channel && d.TS == shownIn.TS }
			if rec.Current != nil && same(*rec.Current) || slices.ContainsFunc(rec.Retire, func(r retiredDM) bool { return same(r.enrolmentDM) }) {
				return false
			}
			rec.Retire = append(rec.Retire, retiredDM{shownIn, retireConfirmed})
			return true
		})
		if err != nil {
			a.log.WarnContext(ctx, "enrolment dm record not updated", "slack_user", user, "err", err)
			if err := a.rewriteEnrolmentDM(ctx, shownIn, retireConfirmed); err != nil {
				a.log.ErrorContext(ctx, "enrolment dm still shows its secret", "slack_user", user, "err", err)
			}
		}
	}
	a.retireCurrent(ctx, principal, retireConfirmed)

	// The request that was waiting gets its step-up now.
	id := shownIn.RequestID
	r, err := a.opts.Broker.Lookup(ctx, id)
	if err != nil || r.Principal != principal || r.Status != broker.StatusAwaitingStepUp {
		return
	}
	o := broker.Output{Kind: broker.KindStepUp, RequestID: r.ID, Action: r.Step.Action, Resource: r.Resource.Name,
		Args: r.Step.Args, ArgsHash: r.ArgsHash,
		Rule: r.Decision.Rule, Risk: r.Decision.Risk.String(),
		Text: fmt.Sprintf("You're set up. Now verify it's you to run %s on %s.", r.Step.Action, r.Resource.Name)}
	if r.SecondBy.IsZero() {
		o.Approvers = r.Approvers
	}
	a.sendStepUp(ctx, principal, a.threadOf(ctx, id), o)
}

// expiredText tells the person an unconfirmed set-up has died.
const expiredText = "This set-up expired; click \"Verify it's you\" again to start over."

// retireCurrent marks principal's current enrolment DM to be rewritten
// (why: confirmed or expired) and rewrites it. Marking comes first: if the
// rewrite fails, the sweeper's next pass tries again.
func (a *App) retireCurrent(ctx context.Context, principal broker.Principal, why string) {
	err := a.updateEnrolment(ctx, principal, func(rec *enrolmentRecord, _ bool) bool {
		if rec.Current == nil {
			return false
		}
		rec.Retire, rec.Current = append(rec.Retire, retiredDM{*rec.Current, why}), nil
		return true
	})
	if err != nil {
		a.log.WarnContext(ctx, "enrolment dm record not updated", "slack_user", principal.User, "err", err)
	}
	a.settleEnrolment(ctx, principal)
}

// settleEnrolment rewrites the DMs of principal's record that must lose
// their secret, once each, and forgets those done; a current DM past its
// expiry is retired first. A DM Slack could not rewrite stays recorded for
// the sweeper's next pass. Failures are logged.
func (a *App) settleEnrolment(ctx context.Context, principal broker.Principal) {
	tried, done := map[enrolmentDM]bool{}, map[enrolmentDM]bool{}
	err := a.updateEnrolment(ctx, principal, func(rec *enrolmentRecord, found bool) bool {
		if !found {
			return false
		}
		changed := false
		if rec.Current != nil && !a.now().Before(rec.Started.Add(stepup.PendingTTL+enrolmentGrace)) {
			rec.Retire, rec.Current = append(rec.Retire, retiredDM{*rec.Current, a.expiredWhy(ctx, principal)}), nil
			changed = true
		}
		kept := rec.Retire[:0]
		for _, r := range rec.Retire {
			if !tried[r.enrolmentDM] {
				tried[r.enrolmentDM] = true
				if err := a.rewriteEnrolmentDM(ctx, r.enrolmentDM, r.Why); err != nil {
					a.log.WarnContext(ctx, "enrolment dm not rewritten", "slack_user", principal.User, "request_id", r.RequestID, "err", err)
				} else {
					done[r.enrolmentDM] = true
				}
			}
			if done[r.enrolmentDM] {
				changed = true
				continue
			}
			kept = append(kept, r)
		}
		rec.Retire = kept
		return changed
	})
	if err != nil {
		a.log.WarnContext(ctx, "enrolment dm record not updated", "slack_user", principal.User, "err", err)
	}
}

// expiredWhy says how to rewrite a current DM the sweeper found past its
// expiry: normally "expired", but "confirmed" when the confirmation's own
// bookkeeping failed after the code passed.
func (a *App) expiredWhy(ctx context.Context, principal broker.Principal) string {
	if a.opts.Enroller == nil {
		return retireExpired
	}
	if ok, err := a.opts.Enroller.Enrolled(ctx, principal.String()); err == nil && ok {
		return retireConfirmed
	}
	return retireExpired
}

// updateEnrolment applies change to principal's enrolment record (the
// zero record and found false when there is none) with compare-and-swap,
// retrying on conflict; change may run several times and returns false to
// leave the record as it is. A record left with nothing to rewrite and no
// current DM is deleted.
func (a *App) updateEnrolment(ctx context.Context, principal broker.Principal, change func(rec *enrolmentRecord, found bool) bool) error {
	_, err := store.Update(ctx, a.opts.Store, enrolmentKey(principal), enrolmentTTL, func(cur []byte) ([]byte, error) {
		var rec enrolmentRecord
		if cur != nil {
			if err := json.Unmarshal(cur, &rec); err != nil {
				return nil, fmt.Errorf("slackapp: decode enrolment record: %w", err)
			}
		}
		if !change(&rec, cur != nil) {
			return nil, store.Keep
		}
		if rec.Current == nil && len(rec.Retire) == 0 {
			return nil, store.Remove
		}
		return json.Marshal(rec)
	})
	if err != nil {
		return fmt.Errorf("slackapp: enrolment record: %w", err)
	}
	return nil
}

// rewriteEnrolmentDM rewrites an enrolment DM so that its secret leaves
// the conversation. A DM Slack no longer has is as good as rewritten.
func (a *App) rewriteEnrolmentDM(ctx context.Context, dm enrolmentDM, why string) error {
	var title, text string
	switch why {
	case retireConfirmed:
		title, text = "Authenticator set up", "Your authenticator is set up. I removed its key from this conversation; from now on, codes from your app verify high-risk actions."
	case retireReplaced:
		title, text = "Set-up replaced", "This set-up was replaced by a newer one; its key no longer works."
	case retireExpired:
		title, text = "Set-up expired", expiredText
	default:
		title, text = "Set-up not saved", "I couldn't save this set-up, so I removed its key. Click \"Verify it's you\" again to start over."
	}
	blocks := []slack.Block{header(title), section(escape(text))}
	_, _, _, err := a.opts.API.UpdateMessageContext(ctx, dm.Channel, dm.TS,
		slack.MsgOptionText(escape(title), false), slack.MsgOptionBlocks(blocks...))
	a.noteAuth(err)
	if err != nil && !slackGone(err) {
		return fmt.Errorf("slackapp: rewrite enrolment dm: %w", err)
	}
	return nil
}

// slackGone reports whether Slack answered that the message or its
// channel no longer exists: there is nothing left to update.
func slackGone(err error) bool {
	var se slack.SlackErrorResponse
	code := err.Error()
	if errors.As(err, &se) {
		code = se.Err
	}
	return code == "message_not_found" || code == "channel_not_found"
}

// EnrolmentMessage shows a new authenticator secret, once, with a Confirm
// button (value: the request waiting for step-up). This is the only place
// the secret is revealed; the message is rewritten without it once the
// first code passes, a newer set-up replaces it, or it expires.
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

// EnrolOnPageMessage asks for the first code of an authenticator whose
// key was shown on a page (the enrolment gate's sign-in or the operator's
// link): it holds no key, only the Confirm button (value: the request
// waiting for step-up, if any).
func EnrolOnPageMessage(requestID string) []slack.Block {
	b := button(ActionEnrolConfirm, "Confirm", requestID).WithStyle(slack.StylePrimary)
	blocks := []slack.Block{
		header("Confirm your authenticator"),
		section("Your authenticator's key is on the AgentHub page you just opened, and nowhere else. " +
			"Once it is in your app, press Confirm and type the code your app shows."),
	}
	return append(blocks, actions("agenthub_enrol", []*slack.ButtonBlockElement{b})...)
}

// EnrolOnPage enrols principal, who passed the enrolment gate in a browser
// (by says how: a fresh sign-in, a link handed over out of band), for that
// browser's page to show the key: only the Confirm button comes to their
// DM. requestID is the request waiting for it, if any. The DM, which holds
// no key, comes first: when it cannot be sent nothing would take the first
// code, so nothing is enrolled.
func (a *App) EnrolOnPage(ctx context.Context, principal broker.Principal, by, requestID string, reset bool) (stepup.Enrolment, error) {
	if !reset {
		if ok, err := a.opts.Enroller.Enrolled(ctx, principal.String()); err == nil && ok {
			return stepup.Enrolment{}, stepup.ErrAlreadyEnrolled // no DM for a set-up that cannot be
		}
	}
	if _, _, err := a.dm(ctx, principal.User, "Confirm your authenticator", EnrolOnPageMessage(requestID)); err != nil {
		return stepup.Enrolment{}, fmt.Errorf("slackapp: the confirm DM: %w", err)
	}
	return a.opts.Enroller.EnrollAfterGate(ctx, principal.String(), by, reset)
}

// EnrolModal asks for the first code of a new authenticator. Its private
// metadata is the waiting request's ID.
//
// Its private metadata names the waiting request and the DM the Confirm
// button was pressed in (Slack keeps it from the person's reach), so that
// DM's secret is removed once it works, whatever the store recorded.
func EnrolModal(shownIn enrolmentDM) slack.ModalViewRequest {
	meta, _ := json.Marshal(shownIn)
	input := slack.NewPlainTextInputBlockElement(plain("123456", 150), EnrolActionID).
		WithMinLength(6).WithMaxLength(6)
	return slack.ModalViewRequest{
		Type:            slack.VTModal,
		Title:           plain("Confirm authenticator", maxModalTitle),
		Submit:          plain("Confirm", maxModalTitle),
		Close:           plain("Cancel", maxModalTitle),
		CallbackID:      CallbackEnrol,
		PrivateMetadata: string(meta),
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			section("Type the 6-digit code your authenticator app shows for AgentHub."),
			slack.NewInputBlock(EnrolBlockID, plain("6-digit code", 2000), nil, input),
		}},
	}
}

// enrolModalMeta reads EnrolModal's private metadata; a bare request ID is
// what modals opened by an earlier version carry.
func enrolModalMeta(meta string) enrolmentDM {
	var dm enrolmentDM
	if err := json.Unmarshal([]byte(meta), &dm); err != nil {
		return enrolmentDM{RequestID: meta}
	}
	return dm
}
