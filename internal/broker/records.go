package broker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/store"
)

// Step is one proposed action invocation, as stored. Args stays raw JSON
// so that numbers come back exactly: canonical arguments for a request's
// own step, the planner's arguments as proposed for the steps of its plan
// that have not been taken yet.
type Step struct {
	Action string          `json:"action"`
	Args   json.RawMessage `json:"args"`
	// Tainted names the untrusted content the planner had read when it
	// proposed the step (planner.Step.Tainted); "" when none.
	Tainted string `json:"tainted,omitempty"`
}

// StoredDecision is the part of a policy decision a request keeps.
type StoredDecision struct {
	Effect    policy.Effect     `json:"effect"`
	Rule      string            `json:"rule"`
	Reason    string            `json:"reason"`
	Risk      policy.Risk       `json:"risk"`
	StepUp    bool              `json:"stepup,omitempty"`
	GrantOK   bool              `json:"grant_ok,omitempty"`
	Lifetimes []policy.Lifetime `json:"lifetimes,omitempty"`
	// ResultsInChannel: the rule lets the asking channel see the result.
	ResultsInChannel bool `json:"results_in_channel,omitempty"`
	// Factor is the second factor step-up asks for (policy.FactorTOTP or
	// policy.FactorOIDC); "" in requests stored before there was a choice,
	// which meant TOTP.
	Factor string `json:"factor,omitempty"`
	// Approval is where the owner approves: "" Slack, policy.ApprovalCIBA
	// their phone alone.
	Approval string `json:"approval,omitempty"`
}

// SecondFactor is the second factor the request's step-up asks for.
func (d StoredDecision) SecondFactor() string {
	if d.Factor == "" {
		return policy.FactorTOTP
	}
	return d.Factor
}

// Request is a stored authorization for one step, and the rest of the plan
// it belongs to.
type Request struct {
	V         int             `json:"v"`
	ID        string          `json:"id"`
	Principal Principal       `json:"principal"`
	Traits    Traits          `json:"traits,omitzero"` // the owner's, when they asked
	Step      Step            `json:"step"`
	ArgsHash  string          `json:"args_sha256"`
	Service   string          `json:"service"`
	Scopes    []string        `json:"scopes,omitempty"`
	Resource  policy.Resource `json:"resource"`
	Decision  StoredDecision  `json:"decision"`
	// Approvers are the Slack user IDs of whom one must also approve
	// (effect second_approver); SecondBy is the principal who did.
	Approvers []string        `json:"approvers,omitempty"`
	SecondBy  Principal       `json:"second_by,omitzero"`
	DeniedBy  Principal       `json:"denied_by,omitzero"` // who denied it: the owner or a second approver
	Status    Status          `json:"status"`
	Lifetime  policy.Lifetime `json:"lifetime"` // the owner's choice, once decided
	// Grant is the owner's grant that stood in for an approval when the
	// request's connection landed ("" when a person approved it).
	Grant string `json:"grant,omitempty"`
	// Rest are the steps of the plan after this one, taken in order once
	// this one has succeeded, and dropped if it ends any other way.
	Rest []Step `json:"rest,omitempty"`
	// Revoked are the owner's revocation marks when the plan began: the
	// request is canceled rather than resumed or run once they changed
	// for its service (revocation.go).
	Revoked map[string]string `json:"revoked,omitempty"`
	// Conversation is the one its plan is of (Message.Conversation): a
	// Stop on it cancels the request and drops the rest of the plan.
	Conversation string `json:"conversation,omitempty"`
	// Report: its planner writes the reply once it has run (and the rest
	// of its plan), from what became of them (planner.Plan.Report).
	Report bool `json:"report,omitempty"`
	// PlanPrivate, PlanByRule: its plan drew on something not public (or
	// public to the channel by a rule only), so its report is too.
	PlanPrivate bool      `json:"plan_private,omitempty"`
	PlanByRule  bool      `json:"plan_by_rule,omitempty"`
	Created     time.Time `json:"created"`
	Expires     time.Time `json:"expires"`
	Decided     time.Time `json:"decided,omitzero"`
	Updated     time.Time `json:"updated,omitzero"` // the last change of state (zero in records from before it was kept)
	Result      string    `json:"result,omitempty"` // summary or safe error, once finished
	// Unrecorded are audit events of a move that are not in the trail yet:
	// the request's outbox (see move).
	Unrecorded []pending `json:"unrecorded,omitempty"`
}

// pending is an audit event in a request's outbox, named so that whoever
// records it takes out exactly it, and no other process's.
type pending struct {
	ID    string      `json:"id"`
	Event audit.Event `json:"event"`
}

// Grant is a principal's consent that one action may run on one resource
// without asking, until Expires.
type Grant struct {
	V         int             `json:"v"`
	ID        string          `json:"id"`
	Principal Principal       `json:"principal"`
	Action    string          `json:"action"`
	Agent     string          `json:"agent"`
	Service   string          `json:"service"`
	Resource  string          `json:"resource"`
	Lifetime  policy.Lifetime `json:"lifetime"`
	RequestID string          `json:"request_id"` // the approval that created it
	Created   time.Time       `json:"created"`
	Expires   time.Time       `json:"expires"`
}

// canonicalHash is the SHA-256 of the step's canonical JSON: encoding/json
// sorts map keys and Validate has made every number int64 or float64, so
// equal steps hash equally and any change to an argument changes the hash.
func canonicalHash(action string, args agent.Args) (string, json.RawMessage, error) {
	raw, err := json.Marshal(args)
	if err != nil {
		return "", nil, fmt.Errorf("broker: encode args: %w", err)
	}
	h := sha256.New()
	h.Write([]byte(action))
	h.Write([]byte{0})
	h.Write(raw)
	return hex.EncodeToString(h.Sum(nil)), raw, nil
}

// decodeArgs reads stored arguments back, keeping numbers exact.
func decodeArgs(raw json.RawMessage) (map[string]any, error) {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber()
	var m map[string]any
	if err := d.Decode(&m); err != nil {
		return nil, fmt.Errorf("broker: decode args: %w", err)
	}
	return m, nil
}

func requestKey(principal Principal, id string) store.Key {
	return store.Key{Scope: principal.String(), Kind: requestKind, ID: id}
}

func ownerKey(id string) store.Key { return store.Key{Kind: ownerKind, ID: id} }

func grantKey(principal Principal, id string) store.Key {
	return store.Key{Scope: principal.String(), Kind: grantKind, ID: id}
}

// grantID names the grant for an action on a resource, so a new grant for
// the same pair replaces the old one and a step finds its grant by Get.
func grantID(action, resource string) string {
	h := sha256.Sum256([]byte(action + "\x00" + resource))
	return hex.EncodeToString(h[:16])
}

// ErrNoRequest means the request does not exist or its record has expired.
var ErrNoRequest = errors.New("broker: no such request")

// loadRequest finds a request by ID alone, through its owner pointer, and
// returns it with the exact bytes read, for compare-and-swap.
func (b *Broker) loadRequest(ctx context.Context, id string) (Request, []byte, error) {
	if err := (store.Key{Kind: ownerKind, ID: id}).Validate(); err != nil {
		return Request{}, nil, ErrNoRequest
	}
	it, err := b.store.Get(ctx, ownerKey(id))
	if errors.Is(err, store.ErrNotFound) {
		return Request{}, nil, ErrNoRequest
	}
	if err != nil {
		return Request{}, nil, fmt.Errorf("broker: read request owner: %w", err)
	}
	principal, err := ParsePrincipal(string(it.Value))
	if err != nil {
		return Request{}, nil, fmt.Errorf("broker: request owner of %s: %w", id, err)
	}
	return b.loadOwned(ctx, principal, id)
}

// Lookup returns the request with this ID, whoever owns it, as stored. The
// Slack adapter uses it to show a request's outcome; deciding still goes
// through Decide and StepUp, which check who is asking.
func (b *Broker) Lookup(ctx context.Context, id string) (Request, error) {
	r, _, err := b.loadRequest(ctx, id)
	return r, err
}

func (b *Broker) loadOwned(ctx context.Context, principal Principal, id string) (Request, []byte, error) {
	it, err := b.store.Get(ctx, requestKey(principal, id))
	if errors.Is(err, store.ErrNotFound) {
		return Request{}, nil, ErrNoRequest
	}
	if err != nil {
		return Request{}, nil, fmt.Errorf("broker: read request: %w", err)
	}
	r, err := decodeRequest(principal, id, it.Value)
	return r, it.Value, err
}

func decodeRequest(principal Principal, id string, raw []byte) (Request, error) {
	var r Request
	if err := json.Unmarshal(raw, &r); err != nil {
		return Request{}, fmt.Errorf("broker: decode request %s: %w", id, err)
	}
	if r.ID != id || r.Principal != principal {
		return Request{}, fmt.Errorf("broker: request %s names another id or owner", id)
	}
	return r, nil
}

// errUnrecorded means a request moved but the audit event its move asks
// for could not be stored: the move authorizes nothing, and move has
// failed the request if it could still go on.
var errUnrecorded = errors.New("broker: the move could not be recorded")

// errOutbox stops a move that would take a request on while audit events
// of an earlier move are still waiting in its outbox.
var errOutbox = errors.New("broker: the request's last move is not recorded yet")

// move is how a stored request changes: it applies event e to r (raw: the
// bytes r was read from) and stores the result by compare-and-swap. When
// another writer changed the request first, e is applied again to the
// request as it is now, so that of any number of concurrent deciders, in
// any number of processes, exactly one moves a request out of a state (a
// second approver recording their approval does not void the owner's
// click; the owner's decision voids a second one).
//
// The audit events the move asks for are stored with the request, in the
// same write (its outbox, Request.Unrecorded, each event named), then
// recorded with args, then taken out by name. So a process that dies
// between the move and the trail leaves them in the request, and no later
// move takes the request on (to step-up, to a start, to a run) before they
// are recorded: a move that finds them stale records them first (flush); a
// fresh outbox is its own process's to record, and is waited for. A move
// that ends the request carries an outbox along and records only its own
// events; Recover records stale ones. If this move's events cannot be
// recorded, the request is failed, unless another process has recorded
// them meanwhile (then the move stands, and the request as it now is comes
// back), and the error wraps errUnrecorded. It returns the request as
// stored and its bytes.
func (b *Broker) move(ctx context.Context, r Request, raw []byte, e Event, args agent.Args) (Request, []byte, error) {
	for attempt, flushed := 1, false; ; attempt++ {
		moved, next, own, err := b.moveOnce(ctx, r, raw, e)
		if errors.Is(err, errOutbox) && !flushed {
			if !b.outboxStale(moved) {
				// The process that made the move is recording it now:
				// wait for it, rather than record it a second time.
				if attempt >= outboxWaits {
					return r, raw, fmt.Errorf("broker: request %s: %w", r.ID, err)
				}
				if err := store.Pause(ctx, attempt); err != nil {
					return r, raw, err
				}
				r, raw = moved, next
				continue
			}
			// A move whose process stopped before the trail had it:
			// record it, then go on.
			if r, raw, err = b.flush(ctx, moved, next); err != nil {
				return r, raw, fmt.Errorf("%w: %w", errUnrecorded, err)
			}
			flushed = true
			continue
		}
		if err != nil {
			return r, raw, err
		}
		if len(own) == 0 {
			return moved, next, nil
		}
		done, dnext, ferr := b.flushWith(ctx, moved, next, args, own)
		if ferr == nil {
			return done, dnext, nil
		}
		if moved.Status.Terminal() || moved.Status == StatusExecuting {
			return moved, next, fmt.Errorf("%w: %w", errUnrecorded, ferr)
		}
		// Unrecorded, the move authorizes nothing: end the request, as it
		// stands, while this move's events are still waiting in it.
		cur, cnext, failed, xerr := b.failUnrecorded(ctx, moved, next, own)
		switch {
		case xerr != nil:
			b.log.ErrorContext(ctx, "could not fail an unrecorded request", "request_id", r.ID, "err", xerr)
		case !failed:
			// Another process recorded this move meanwhile: it stands.
			return cur, cnext, nil
		}
		return moved, next, fmt.Errorf("%w: %w", errUnrecorded, ferr)
	}
}

// moveOnce applies e and stores the result with its audit events, named,
// in the outbox; own are their names. A move into a state that is not an
// end refuses, with errOutbox and the request as read, while the outbox
// holds an earlier move's events.
func (b *Broker) moveOnce(ctx context.Context, r Request, raw []byte, e Event) (Request, []byte, []string, error) {
	var (
		moved, read Request
		readRaw     []byte
		own         []string
		applyErr    error
	)
	next, err := store.UpdateFrom(ctx, b.store, requestKey(r.Principal, r.ID), raw, store.KeepTTL, func(cur []byte) ([]byte, error) {
		own = nil
		if cur == nil {
			applyErr = ErrNoRequest
			return nil, applyErr
		}
		c, err := decodeRequest(r.Principal, r.ID, cur)
		if err != nil {
			applyErr = err
			return nil, err
		}
		var evs []audit.Event
		moved, evs, applyErr = c.apply(e, b.now())
		if applyErr != nil {
			return nil, applyErr
		}
		if len(c.Unrecorded) > 0 && !moved.Status.Terminal() {
			read, readRaw, applyErr = c, cur, errOutbox
			return nil, applyErr
		}
		moved.Unrecorded = slices.Clone(c.Unrecorded)
		if own, applyErr = b.enqueue(&moved, evs); applyErr != nil {
			return nil, applyErr
		}
		return json.Marshal(moved)
	})
	switch {
	case errors.Is(applyErr, errOutbox):
		return read, readRaw, nil, applyErr
	case applyErr != nil:
		return r, raw, nil, applyErr
	case err != nil:
		return r, raw, nil, fmt.Errorf("broker: request %s: %s: %w", r.ID, e.Type, err)
	}
	return moved, next, own, nil
}

// enqueue puts evs in r's outbox, each under a fresh ID, and returns the
// IDs: the events the move that made them owns.
func (b *Broker) enqueue(r *Request, evs []audit.Event) ([]string, error) {
	ids := make([]string, 0, len(evs))
	for _, ev := range evs {
		id, err := b.newID()
		if err != nil {
			return nil, err
		}
		ids = append(ids, id)
		r.Unrecorded = append(r.Unrecorded, pending{ID: id, Event: ev})
	}
	return ids, nil
}

// failUnrecorded ends request r, whose move's events own could not be
// recorded, if they are still waiting in it: then nothing has built on the
// move. When they are not (another process recorded them, and may have
// taken the request on), it leaves the request alone and returns it as it
// is, with failed false.
func (b *Broker) failUnrecorded(ctx context.Context, r Request, raw []byte, own []string) (Request, []byte, bool, error) {
	var (
		cur    Request
		failed bool
	)
	next, err := store.UpdateFrom(ctx, b.store, requestKey(r.Principal, r.ID), raw, store.KeepTTL, func(raw []byte) ([]byte, error) {
		failed = false
		if raw == nil {
			return nil, ErrNoRequest
		}
		c, err := decodeRequest(r.Principal, r.ID, raw)
		if err != nil {
			return nil, err
		}
		cur = c
		if !slices.ContainsFunc(c.Unrecorded, func(p pending) bool { return slices.Contains(own, p.ID) }) {
			return nil, store.Keep
		}
		moved, evs, err := c.apply(Event{Type: EventFail, Result: "the approval could not be recorded"}, b.now())
		if err != nil {
			return nil, store.Keep
		}
		if _, err := b.enqueue(&moved, evs); err != nil {
			return nil, err
		}
		cur, failed = moved, true
		return json.Marshal(moved)
	})
	return cur, next, failed, err
}

// A move's own process records its outbox within moments of the move; one
// older than outboxGrace was left by a process that stopped, and whoever
// finds it records it. A move that finds a fresh one waits for it, up to
// outboxWaits tries (about a tenth of a second), then gives up.
const (
	outboxGrace = 30 * time.Second
	outboxWaits = 40
)

// outboxStale reports whether r's outbox was left by a process that
// stopped.
func (b *Broker) outboxStale(r Request) bool {
	return len(r.Unrecorded) > 0 && b.now().Sub(r.Updated) >= outboxGrace
}

// flush records all that r's outbox holds, with the step's arguments when
// they still validate, and takes it out.
func (b *Broker) flush(ctx context.Context, r Request, raw []byte) (Request, []byte, error) {
	var args agent.Args
	if _, a, err := b.stepOf(r); err == nil {
		args = a
	}
	return b.flushWith(ctx, r, raw, args, nil)
}

// flushWith records the events of r's outbox named in only (nil: all of
// them) with args, then takes those out of the request by name, by
// compare-and-swap (a later move may have added more). A process that
// dies between the two leaves them to be recorded once more when the
// outbox is next flushed: a trail with an event twice beats one without
// it.
func (b *Broker) flushWith(ctx context.Context, r Request, raw []byte, args agent.Args, only []string) (Request, []byte, error) {
	var done []string
	for _, p := range r.Unrecorded {
		if only != nil && !slices.Contains(only, p.ID) {
			continue
		}
		ev := p.Event
		ev.Args = args
		if err := b.record(ctx, ev); err != nil {
			return r, raw, err
		}
		done = append(done, p.ID)
	}
	var cleared Request
	next, err := store.UpdateFrom(ctx, b.store, requestKey(r.Principal, r.ID), raw, store.KeepTTL, func(cur []byte) ([]byte, error) {
		if cur == nil {
			return nil, ErrNoRequest
		}
		c, err := decodeRequest(r.Principal, r.ID, cur)
		if err != nil {
			return nil, err
		}
		cleared = c
		kept := slices.DeleteFunc(slices.Clone(c.Unrecorded), func(p pending) bool { return slices.Contains(done, p.ID) })
		if len(kept) == len(c.Unrecorded) {
			return nil, store.Keep // taken out meanwhile
		}
		if len(kept) == 0 {
			kept = nil
		}
		cleared.Unrecorded = kept
		return json.Marshal(cleared)
	})
	if err != nil {
		return r, raw, fmt.Errorf("broker: clear the outbox of %s: %w", r.ID, err)
	}
	return cleared, next, nil
}
