package broker

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/store"
)

// Status is where a request is in its life; see the package documentation.
type Status string

// The request states.
const (
	StatusPending        Status = "pending"
	StatusAwaitingStepUp Status = "awaiting_stepup"
	StatusAwaitingSecond Status = "awaiting_second" // the owner is done; a second approver is not
	StatusApproved       Status = "approved"
	StatusDenied         Status = "denied"
	StatusExpired        Status = "expired"
	StatusCanceled       Status = "canceled"
	StatusExecuting      Status = "executing"
	StatusSucceeded      Status = "succeeded"
	StatusFailed         Status = "failed"
)

// open reports whether a request in this state may still run.
func (s Status) open() bool {
	return s == StatusPending || s == StatusAwaitingStepUp || s == StatusAwaitingSecond || s == StatusApproved
}

// Step is one proposed action invocation with canonical arguments, as
// stored. Args stays raw JSON so that numbers come back exactly.
type Step struct {
	Action string          `json:"action"`
	Args   json.RawMessage `json:"args"`
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
}

// Request is a stored authorization for one step.
type Request struct {
	V         int             `json:"v"`
	ID        string          `json:"id"`
	Principal string          `json:"principal"`
	Step      Step            `json:"step"`
	ArgsHash  string          `json:"args_sha256"`
	Service   string          `json:"service"`
	Scopes    []string        `json:"scopes,omitempty"`
	Resource  policy.Resource `json:"resource"`
	Decision  StoredDecision  `json:"decision"`
	// Approvers are the Slack user IDs of whom one must also approve
	// (effect second_approver); SecondBy is the principal who did.
	Approvers []string        `json:"approvers,omitempty"`
	SecondBy  string          `json:"second_by,omitempty"`
	DeniedBy  string          `json:"denied_by,omitempty"` // who denied it: the owner or a second approver
	Status    Status          `json:"status"`
	Lifetime  policy.Lifetime `json:"lifetime"` // the owner's choice, once decided
	Created   time.Time       `json:"created"`
	Expires   time.Time       `json:"expires"`
	Decided   time.Time       `json:"decided,omitzero"`
	Updated   time.Time       `json:"updated,omitzero"` // the last change of state (zero in records from before it was kept)
	Result    string          `json:"result,omitempty"` // summary or safe error, once finished
}

// Grant is a principal's consent that one action may run on one resource
// without asking, until Expires.
type Grant struct {
	V         int             `json:"v"`
	ID        string          `json:"id"`
	Principal string          `json:"principal"`
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

func requestKey(principal, id string) store.Key {
	return store.Key{Scope: principal, Kind: requestKind, ID: id}
}

func ownerKey(id string) store.Key { return store.Key{Kind: ownerKind, ID: id} }

func grantKey(principal, id string) store.Key {
	return store.Key{Scope: principal, Kind: grantKind, ID: id}
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
	principal := string(it.Value)
	return b.loadOwned(ctx, principal, id)
}

// Lookup returns the request with this ID, whoever owns it, as stored. The
// Slack adapter uses it to show a request's outcome; deciding still goes
// through Decide and StepUp, which check who is asking.
func (b *Broker) Lookup(ctx context.Context, id string) (Request, error) {
	r, _, err := b.loadRequest(ctx, id)
	return r, err
}

func (b *Broker) loadOwned(ctx context.Context, principal, id string) (Request, []byte, error) {
	it, err := b.store.Get(ctx, requestKey(principal, id))
	if errors.Is(err, store.ErrNotFound) {
		return Request{}, nil, ErrNoRequest
	}
	if err != nil {
		return Request{}, nil, fmt.Errorf("broker: read request: %w", err)
	}
	var r Request
	if err := json.Unmarshal(it.Value, &r); err != nil {
		return Request{}, nil, fmt.Errorf("broker: decode request %s: %w", id, err)
	}
	if r.ID != id || r.Principal != principal {
		return Request{}, nil, fmt.Errorf("broker: request %s names another id or owner", id)
	}
	return r, it.Value, nil
}

// transition moves a request from the state in old (the exact bytes read)
// to r, by compare-and-swap. It returns store.ErrConflict (wrapped) when
// another decider moved it first.
func (b *Broker) transition(ctx context.Context, r Request, old []byte) ([]byte, error) {
	r.Updated = b.now()
	next, err := json.Marshal(r)
	if err != nil {
		return nil, fmt.Errorf("broker: encode request: %w", err)
	}
	if err := b.store.CompareAndSwap(ctx, requestKey(r.Principal, r.ID), old, next, store.KeepTTL); err != nil {
		return nil, fmt.Errorf("broker: request %s to %s: %w", r.ID, r.Status, err)
	}
	return next, nil
}
