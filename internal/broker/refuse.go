package broker

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"hash/fnv"
	"strconv"
	"strings"
	"time"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/store"
)

// Refusal is something refused before it could do anything: a click, a
// modal, a message or a command from someone the adapter or the broker does
// not act for, or a request that could not even be proposed.
type Refusal struct {
	// Actor is who tried: a principal's text form ("T…:U…"), also for a
	// person from another workspace.
	Actor string
	// Kind is audit.InteractionRejected (someone not allowed) or
	// audit.RequestRefused (a request that could not be proposed).
	Kind audit.Kind
	// Reason is a short code: not_owner, not_a_member, no_plan,
	// unknown_action, invalid_arguments.
	Reason string
	// Op is what was tried: decide, stepup, stepup_button, message,
	// command, view_submission, click.
	Op string
	// What it was about, when known.
	RequestID, Action, Resource string
}

// RefusalWindow is how long refusals of one actor for one reason are
// counted together: the first is recorded at once, the rest only counted,
// and the count recorded when the window is over. A flood from one Slack
// session then costs the audit trail two events per window.
const RefusalWindow = 10 * time.Minute

// refusalKind holds the counters (scope "", ID actor|kind|reason|op|the
// broker instance): each process counts on keys of its own, one refusal
// at a time, so a flood arriving on many workers and replicas at once
// meets no compare-and-swap contention and is counted exactly; the trail
// then gets at most two events per window and process.
// A counter is kept for refusalKeep, long after its window, so that a
// count waiting for FlushRefusals (or a store that held nothing else to
// sweep) is not lost to an expiry.
const (
	refusalKind = "refusal-count"
	refusalKeep = 24 * time.Hour
	// refusalStripes is how many locks a broker's refusal counters share.
	refusalStripes = 64
)

// refusalCount is one actor's refusals for one reason in one window.
type refusalCount struct {
	Actor    string     `json:"actor"`
	Kind     audit.Kind `json:"kind"`
	Reason   string     `json:"reason"`
	Op       string     `json:"op"`
	Start    time.Time  `json:"start"`
	Count    int        `json:"count"`    // refusals in the window
	Recorded int        `json:"recorded"` // of which the trail has counted
}

func (b *Broker) refusalKey(r Refusal) store.Key {
	return store.Key{Kind: refusalKind, ID: strings.Join([]string{r.Actor, string(r.Kind), r.Reason, r.Op, b.instance}, "|")}
}

// Refuse puts a refusal on the record: the first of its actor, kind,
// reason and op in a RefusalWindow at once, with what it was about; later
// ones only as a count, recorded once the window is over (by the next
// refusal, or by FlushRefusals). It returns an error when the refusal could
// not be counted or recorded; the refusal itself stands either way.
func (b *Broker) Refuse(ctx context.Context, r Refusal) error {
	if r.Actor == "" || r.Reason == "" {
		return errors.New("broker: a refusal needs an actor and a reason")
	}
	if r.Kind == "" {
		r.Kind = audit.InteractionRejected
	}
	key := b.refusalKey(r)
	ended, first, err := b.count(ctx, key, r)
	if err != nil {
		// Uncounted, the refusal is recorded on its own: a trail with one
		// event too many beats one with a refusal missing.
		return errors.Join(fmt.Errorf("broker: count refusal: %w", err), b.record(ctx, refusalEvent(r, 1)))
	}
	var errs []error
	if ended != nil {
		errs = append(errs, b.record(ctx, countEvent(*ended, ended.Count-ended.Recorded)))
	}
	if first {
		errs = append(errs, b.record(ctx, refusalEvent(r, 1)))
	}
	return errors.Join(errs...)
}

// count adds one refusal to its counter. It returns the window this
// refusal closed, if any refusals in it were not recorded yet, and whether
// this refusal opened a window (and is to be recorded on its own). Only
// this broker writes the key (the instance is in it), and one refusal of a
// key at a time, under one of refusalStripes locks: no compare-and-swap
// ever loses, and refusals of other keys do not wait.
func (b *Broker) count(ctx context.Context, key store.Key, r Refusal) (*refusalCount, bool, error) {
	h := fnv.New32a()
	h.Write([]byte(key.ID))
	mu := &b.refusing[h.Sum32()%refusalStripes]
	mu.Lock()
	defer mu.Unlock()
	now := b.now()
	var ended *refusalCount
	first := false
	_, err := store.Update(ctx, b.store, key, refusalKeep, func(cur []byte) ([]byte, error) {
		ended, first = nil, false
		var c refusalCount
		if cur != nil {
			if err := json.Unmarshal(cur, &c); err != nil {
				c = refusalCount{} // a damaged counter starts again
			}
		}
		if cur == nil || !now.Before(c.Start.Add(RefusalWindow)) {
			if cur != nil && c.Count > c.Recorded {
				old := c
				ended = &old
			}
			c = refusalCount{Actor: r.Actor, Kind: r.Kind, Reason: r.Reason, Op: r.Op, Start: now, Count: 1, Recorded: 1}
			first = true
		} else {
			c.Count++
		}
		return json.Marshal(c)
	})
	return ended, first, err
}

func refusalEvent(r Refusal, n int) audit.Event {
	return audit.Event{Kind: r.Kind, Actor: r.Actor, Agent: agentOf(r.Action), Action: r.Action, Resource: r.Resource,
		RequestID: r.RequestID, Result: r.Reason, Detail: map[string]string{"op": r.Op, "count": strconv.Itoa(n)}}
}

// countEvent records n refusals of a window that were counted, not
// recorded one by one.
func countEvent(c refusalCount, n int) audit.Event {
	return audit.Event{Kind: c.Kind, Actor: c.Actor, Result: c.Reason, Detail: map[string]string{
		"op": c.Op, "count": strconv.Itoa(n), "repeated": "true",
		"since": c.Start.UTC().Format(time.RFC3339), "window": RefusalWindow.String(),
	}}
}

// FlushRefusals records the counts of refusal windows that are over and
// were not recorded yet, and forgets their counters. The Slack app's
// sweeper calls it, so that the count of a flood that stopped reaches the
// trail without waiting for the next refusal.
func (b *Broker) FlushRefusals(ctx context.Context) error {
	items, err := b.store.List(ctx, "", refusalKind)
	if err != nil {
		return fmt.Errorf("broker: list refusal counters: %w", err)
	}
	now := b.now()
	var errs []error
	for _, it := range items {
		var todo *refusalCount
		_, err := store.UpdateFrom(ctx, b.store, it.Key, it.Value, store.KeepTTL, func(cur []byte) ([]byte, error) {
			todo = nil
			var c refusalCount
			if cur == nil || json.Unmarshal(cur, &c) != nil || now.Before(c.Start.Add(RefusalWindow)) {
				return nil, store.Keep
			}
			if c.Count > c.Recorded {
				todo = &c
			}
			return nil, store.Remove
		})
		if err != nil {
			errs = append(errs, fmt.Errorf("broker: flush refusal counter: %w", err))
			continue
		}
		if todo != nil {
			errs = append(errs, b.record(ctx, countEvent(*todo, todo.Count-todo.Recorded)))
		}
	}
	return errors.Join(errs...)
}
