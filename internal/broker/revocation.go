package broker

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/store"
)

// A revocation marks its principal before it lists the requests it
// cancels: a fresh random value for the service it revokes (allServices
// for all of them). A plan keeps the marks it began with (asker.revoked),
// and a request stores them (Request.Revoked). Before each step a plan
// takes, and before a stored request resumes or runs, the marks are read
// again; a step whose service, or everything, was revoked since does not
// start, and its request is canceled. So no revocation misses a request:
// one stored after the revocation listed requests, one whose cancel a
// killed process never made, one that a plan stores while a revocation
// runs, or the later steps of a request of another service.
const (
	revocationKind = "revocation"
	allServices    = "*"
	// revocationKeep outlives any request (DefaultRequestTTL and more):
	// should marks expire before a request they guard, the request is
	// canceled, as if revoked.
	revocationKeep = 30 * 24 * time.Hour
)

func revocationKey(p Principal) store.Key {
	return store.Key{Scope: p.String(), Kind: revocationKind, ID: "marks"}
}

// A person's Stop on a conversation (Slack's Stop button on an agent
// session) is a mark too, among the same marks: stopKey(conversation),
// whose value begins with a sequence number, so that only the latest
// maxStopMarks are kept. A plan of that conversation, and a request it
// stored, compares it as it compares its service's mark: what was begun
// before the Stop does not go on after it, whichever replica holds it.
// A dropped mark leaves its number in stopsDropped (the highest dropped),
// and a plan keeps, in stopsSeen, the highest number issued when it
// began: a plan whose conversation has no mark now, and that began before
// a Stop that was dropped since, stops too, since that Stop may have
// been its conversation's.
const (
	stopPrefix   = "conversation:"
	maxStopMarks = 64
	stopsDropped = "stops:dropped"
	stopsSeen    = "stops:seen"
)

func stopKey(conversation string) string { return stopPrefix + conversation }

// Why a plan does not go on: its owner revoked access, or stopped its
// conversation, since it began.
const (
	whyRevoked = "revoked"
	whyStopped = "stopped"
)

// markRevoked leaves a fresh mark on principal for service ("" for all).
func (b *Broker) markRevoked(ctx context.Context, p Principal, service string) error {
	if service == "" {
		service = allServices
	}
	return b.mark(ctx, p, service)
}

// mark sets principal's mark key to a fresh value: a random one, after a
// sequence number for a Stop.
func (b *Broker) mark(ctx context.Context, p Principal, key string) error {
	mark, err := b.newID()
	if err != nil {
		return err
	}
	_, err = store.Update(ctx, b.store, revocationKey(p), max(revocationKeep, 2*(b.requestTTL+requestGrace)), func(cur []byte) ([]byte, error) {
		marks := map[string]string{}
		if cur != nil && json.Unmarshal(cur, &marks) != nil {
			marks = map[string]string{} // unreadable marks are replaced: every plan stops once
		}
		if strings.HasPrefix(key, stopPrefix) {
			marks[key] = fmt.Sprintf("%020d.%s", lastStop(marks)+1, mark)
			if dropped := dropOldStops(marks); dropped > stopSeq(marks[stopsDropped]) {
				marks[stopsDropped] = strconv.FormatUint(dropped, 10)
			}
		} else {
			marks[key] = mark
		}
		return json.Marshal(marks)
	})
	if err != nil {
		return fmt.Errorf("broker: mark %s: %w", key, err)
	}
	return nil
}

// stopSeq is the sequence number of a Stop's mark.
func stopSeq(mark string) uint64 {
	n, _ := strconv.ParseUint(mark[:strings.IndexByte(mark+".", '.')], 10, 64)
	return n
}

// lastStop is the highest sequence number of a Stop issued: of marks'
// Stops, and of the Stops dropped from them.
func lastStop(marks map[string]string) uint64 {
	last := stopSeq(marks[stopsDropped])
	for k, v := range marks {
		if strings.HasPrefix(k, stopPrefix) {
			last = max(last, stopSeq(v))
		}
	}
	return last
}

// dropOldStops keeps the latest maxStopMarks Stops, and returns the
// highest number it dropped (0 for none).
func dropOldStops(marks map[string]string) uint64 {
	var stops []string
	for k := range marks {
		if strings.HasPrefix(k, stopPrefix) {
			stops = append(stops, k)
		}
	}
	if len(stops) <= maxStopMarks {
		return 0
	}
	slices.SortFunc(stops, func(a, b string) int { return cmp.Compare(stopSeq(marks[a]), stopSeq(marks[b])) })
	var dropped uint64
	for _, k := range stops[:len(stops)-maxStopMarks] {
		dropped = max(dropped, stopSeq(marks[k]))
		delete(marks, k)
	}
	return dropped
}

// planMarks are the marks a plan of conversation keeps: the services',
// its own conversation's, not other conversations', and the number of
// the last Stop issued (stopsSeen).
func planMarks(marks map[string]string, conversation string) map[string]string {
	keep := map[string]string{}
	for k, v := range marks {
		if k == stopsDropped || strings.HasPrefix(k, stopPrefix) && (conversation == "" || k != stopKey(conversation)) {
			continue
		}
		keep[k] = v
	}
	if conversation != "" {
		keep[stopsSeen] = strconv.FormatUint(lastStop(marks), 10)
	}
	if len(keep) == 0 {
		return nil
	}
	return keep
}

// stoppedSince reports whether conversation was stopped since a plan
// of it began with the marks since: its mark changed, or was dropped, or
// a Stop issued after the plan began was dropped (it may have been its
// conversation's).
func stoppedSince(now, since map[string]string, conversation string) bool {
	k := stopKey(conversation)
	switch {
	case now[k] != since[k]:
		return true
	case now[k] != "":
		return false
	}
	return stopSeq(now[stopsDropped]) > stopSeq(since[stopsSeen])
}

// revocationMarks returns principal's marks, none when they never revoked
// anything (or not for a long time).
func (b *Broker) revocationMarks(ctx context.Context, p Principal) (map[string]string, error) {
	it, err := b.store.Get(ctx, revocationKey(p))
	if errors.Is(err, store.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("broker: read revocation marks: %w", err)
	}
	var marks map[string]string
	if err := json.Unmarshal(it.Value, &marks); err != nil {
		return nil, fmt.Errorf("broker: decode revocation marks: %w", err)
	}
	return marks, nil
}

// interrupted reports why p's plan must not take a step of service: ""
// when it may, whyRevoked when p revoked service, or everything, since
// the plan began, whyStopped when p stopped the plan's conversation.
func (b *Broker) interrupted(ctx context.Context, p asker, service string) (string, error) {
	now, err := b.revocationMarks(ctx, p.Principal)
	if err != nil {
		return "", err
	}
	since := p.revoked
	switch {
	case now[allServices] != since[allServices] || (service != "" && now[service] != since[service]):
		return whyRevoked, nil
	case p.conversation != "" && stoppedSince(now, since, p.conversation):
		return whyStopped, nil
	}
	return "", nil
}

// cancelIfRevoked cancels stored request r when its owner revoked its
// service, or everything, or stopped its conversation, since they asked,
// and tells them; it reports whether r must not go on (also when the
// marks could not be read).
func (b *Broker) cancelIfRevoked(ctx context.Context, r Request, raw []byte) ([]Output, bool, error) {
	why, err := b.interrupted(ctx, r.asker(), r.Service)
	if err == nil && why == "" {
		return nil, false, nil
	}
	if err != nil {
		return []Output{{Kind: KindError, RequestID: r.ID, Text: "Nothing was done: I couldn't check that you have not revoked access since. Try again in a moment."}}, true, err
	}
	result, text := "revoked after it was asked", fmt.Sprintf("You revoked your %s access after asking for %s, so I canceled it.", r.Service, r.Step.Action)
	if why == whyStopped {
		result, text = "stopped in Slack", fmt.Sprintf("You stopped the conversation %s came from, so I canceled it.", r.Step.Action)
	}
	_, _, merr := b.move(ctx, r, raw, Event{Type: EventCancel, By: r.Principal, Result: result}, nil)
	if errors.Is(merr, ErrIllegal) || errors.Is(merr, ErrNoRequest) {
		return nil, true, nil // another process ended it
	}
	// It names no request, so that an adapter gives it to the owner
	// whoever's click found it (as planDropped).
	out := Output{Kind: KindMessage, Action: r.Step.Action, Resource: r.Resource.Name, Text: text}
	if merr != nil && !errors.Is(merr, errUnrecorded) {
		out = Output{Kind: KindError, RequestID: r.ID, Text: "Nothing was done: you revoked access or stopped the conversation after asking for this, and the request could not be canceled just now."}
	}
	return []Output{out}, true, merr
}

// StopConversation is a person's Stop on one of their conversations
// (conversation as in Message): whatever of it is under way — a plan
// being made, the steps left of a plan, a request that waits — does not
// go on, on any replica. It is on the record (conversation.stopped); the
// waiting requests are canceled when next touched, or at once by Cancel.
func (b *Broker) StopConversation(ctx context.Context, p Principal, conversation string) error {
	if err := validPrincipal(p); err != nil {
		return err
	}
	if conversation == "" {
		return errors.New("broker: stop: no conversation")
	}
	if err := b.mark(ctx, p, stopKey(conversation)); err != nil {
		return err
	}
	return b.record(ctx, audit.Event{Kind: audit.ConversationStopped, Actor: p.String(), Resource: conversation})
}

// Cancel ends a request its owner no longer wants (Slack's Stop button on
// the agent session it belongs to): it does not run, and the rest of its
// plan does not start. Only the owner cancels, on the record
// (request.canceled with reason); a request already settled, or running,
// stays as it is.
func (b *Broker) Cancel(ctx context.Context, requestID string, actor Principal, reason string) ([]Output, error) {
	r, raw, outs, err := b.loadForOwner(ctx, requestID, actor, "cancel")
	if outs != nil || err != nil {
		return outs, err
	}
	if r.Status == StatusExecuting || r.Status.Terminal() {
		return []Output{{Kind: KindMessage, RequestID: r.ID, Text: fmt.Sprintf("This request is %s: there is nothing to stop.", strings.ReplaceAll(string(r.Status), "_", " "))}}, nil
	}
	if _, _, err := b.move(ctx, r, raw, Event{Type: EventCancel, By: actor, Result: reason}, nil); err != nil {
		if errors.Is(err, ErrIllegal) || errors.Is(err, ErrNoRequest) {
			return []Output{{Kind: KindMessage, RequestID: r.ID, Text: "This request ended meanwhile."}}, nil
		}
		return []Output{{Kind: KindError, RequestID: r.ID, Text: "Nothing was done: the request could not be stopped just now."}}, err
	}
	return append([]Output{{Kind: KindMessage, RequestID: r.ID, Text: fmt.Sprintf("Stopped: %s on %s will not run.", r.Step.Action, r.Resource.Name)}},
		planDropped(r)...), nil
}
