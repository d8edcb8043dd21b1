package broker

import (
	"errors"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/policy"
)

var update = flag.Bool("update", false, "rewrite docs/ARCHITECTURE.md's lifecycle diagram from the transition table")

// The people of the lifecycle tests: the owner, the release manager the
// second-approver requests name, and someone else.
var (
	owner    = Principal{Team: "T1", User: "U1"}
	manager  = Principal{Team: "T1", User: "U2"}
	stranger = Principal{Team: "T1", User: "U3"}
)

var t0 = time.Date(2026, 12, 2, 10, 0, 0, 0, time.UTC)

// kind of request, by what its policy decision asks for.
type kind int

const (
	plain  kind = iota // approval
	withUp             // approval and step-up
	second             // approval, step-up and a second approver
)

func (k kind) String() string { return [...]string{"plain", "stepup", "second"}[k] }

func (k kind) answer() *Answer {
	switch k {
	case withUp:
		return &Answer{Resource: policy.Resource{Name: "acme/payments:main"},
			Decision: StoredDecision{Effect: policy.StepUp, Rule: "r", StepUp: true, Risk: policy.High}}
	case second:
		return &Answer{Resource: policy.Resource{Name: "acme/payments"}, Approvers: []string{manager.User},
			Decision: StoredDecision{Effect: policy.SecondApprover, Rule: "r", StepUp: true, Risk: policy.Critical}}
	}
	return &Answer{Resource: policy.Resource{Name: "acme/website"},
		Decision: StoredDecision{Effect: policy.Approve, Rule: "r", Risk: policy.Medium, GrantOK: true,
			Lifetimes: []policy.Lifetime{policy.Once, policy.OneHour}}}
}

// newTestRequest is a request of kind k as the broker stores it, before
// its first event.
func newTestRequest(k kind) Request {
	return Request{V: 1, ID: "req-" + k.String(), Principal: owner, Step: Step{Action: "github.comment", Args: []byte(`{}`)},
		Service: "github", Created: t0, Expires: t0.Add(time.Hour)}
}

// mustApply applies events in order, failing the test on the first that
// does not move the request.
func mustApply(t *testing.T, r Request, events ...Event) Request {
	t.Helper()
	for _, e := range events {
		next, _, err := r.apply(e, t0)
		if err != nil {
			t.Fatalf("%s from %s: %v", e.Type, r.Status, err)
		}
		r = next
	}
	return r
}

// at builds a request of kind k in state st by a legal path.
func at(t *testing.T, k kind, st Status) Request {
	t.Helper()
	r := newTestRequest(k)
	ask := Event{Type: EventAskApproval, Answer: k.answer()}
	switch st {
	case StatusNew:
		return r
	case StatusWaitingConnection:
		return mustApply(t, r, Event{Type: EventAskConnection})
	case StatusPending:
		return mustApply(t, r, ask)
	case StatusAwaitingStepUp:
		if k == plain {
			t.Fatalf("a plain request never awaits step-up")
		}
		return mustApply(t, r, ask, Event{Type: EventApprove, By: owner})
	case StatusAwaitingSecond:
		if k != second {
			t.Fatalf("only a second-approver request awaits a second approval")
		}
		return mustApply(t, r, ask, Event{Type: EventApprove, By: owner}, Event{Type: EventStepUpPassed, By: owner})
	}
	r = mustApply(t, r, ask, Event{Type: EventApprove, By: owner})
	switch k {
	case withUp:
		r = mustApply(t, r, Event{Type: EventStepUpPassed, By: owner})
	case second:
		r = mustApply(t, r, Event{Type: EventSecondApprove, By: manager}, Event{Type: EventStepUpPassed, By: owner})
	}
	switch st {
	case StatusApproved:
		return r
	case StatusExecuting:
		return mustApply(t, r, Event{Type: EventStart})
	case StatusSucceeded:
		return mustApply(t, r, Event{Type: EventStart}, Event{Type: EventSucceed})
	case StatusFailed:
		return mustApply(t, r, Event{Type: EventStart}, Event{Type: EventFail})
	case StatusDenied:
		return mustApply(t, newTestRequest(k), ask, Event{Type: EventDeny, By: owner})
	case StatusCanceled:
		return mustApply(t, newTestRequest(k), ask, Event{Type: EventCancel})
	case StatusExpired:
		p := mustApply(t, newTestRequest(k), ask)
		next, _, err := p.apply(Event{Type: EventExpire}, p.Expires)
		if err != nil {
			t.Fatal(err)
		}
		return next
	case StatusInterrupted:
		next, _, err := r.apply(Event{Type: EventInterrupt}, t0.Add(ApprovedStaleAfter))
		if err != nil {
			t.Fatal(err)
		}
		return next
	}
	t.Fatalf("no path to %s", st)
	return r
}

// TestLifecycle is the transition table's table test: named cases of a
// state, an event and its circumstances, with the state it must lead to or
// the error it must meet.
func TestLifecycle(t *testing.T) {
	late := t0.Add(2 * time.Hour) // after expiry
	allow := &Answer{Resource: policy.Resource{Name: "acme/website"}, Decision: StoredDecision{Effect: policy.Allow, Rule: "public-reads"}}
	deny := &Answer{Resource: policy.Resource{Name: "acme/website"}, Decision: StoredDecision{Effect: policy.Deny, Rule: "no"}}
	granted := &Answer{Resource: policy.Resource{Name: "acme/website"}, Grant: "g1",
		Decision: StoredDecision{Effect: policy.Approve, Rule: "w", GrantOK: true}}
	tests := []struct {
		name    string
		kind    kind
		from    Status
		event   Event
		now     time.Time
		want    Status
		wantErr error
	}{
		{"a step that needs a person is asked", plain, StatusNew, Event{Type: EventAskApproval, Answer: plain.answer()}, t0, StatusPending, nil},
		{"an allowed step is never stored as a request", plain, StatusNew, Event{Type: EventAskApproval, Answer: allow}, t0, "", ErrIllegal},
		{"a step waits for its connection", plain, StatusNew, Event{Type: EventAskConnection}, t0, StatusWaitingConnection, nil},
		{"connected, the policy asks for approval", plain, StatusWaitingConnection, Event{Type: EventConnected, Answer: plain.answer()}, t0, StatusPending, nil},
		{"connected, the policy allows", plain, StatusWaitingConnection, Event{Type: EventConnected, Answer: allow}, t0, StatusApproved, nil},
		{"connected, a grant stands in", plain, StatusWaitingConnection, Event{Type: EventConnected, Answer: granted}, t0, StatusApproved, nil},
		{"connected, the policy refuses", plain, StatusWaitingConnection, Event{Type: EventConnected, Answer: deny}, t0, StatusDenied, nil},
		{"connected too late", plain, StatusWaitingConnection, Event{Type: EventConnected, Answer: allow}, late, "", ErrExpired},
		{"connected twice", plain, StatusPending, Event{Type: EventConnected, Answer: allow}, t0, "", ErrIllegal},

		{"the owner approves", plain, StatusPending, Event{Type: EventApprove, By: owner}, t0, StatusApproved, nil},
		{"the owner approves a step-up request", withUp, StatusPending, Event{Type: EventApprove, By: owner}, t0, StatusAwaitingStepUp, nil},
		{"the owner approves a two-person request", second, StatusPending, Event{Type: EventApprove, By: owner}, t0, StatusAwaitingStepUp, nil},
		{"someone else approves", plain, StatusPending, Event{Type: EventApprove, By: stranger}, t0, "", ErrNotAllowed},
		{"the manager cannot approve for the owner", second, StatusPending, Event{Type: EventApprove, By: manager}, t0, "", ErrNotAllowed},
		{"the owner approves too late", plain, StatusPending, Event{Type: EventApprove, By: owner}, late, "", ErrExpired},
		{"the owner approves twice", plain, StatusApproved, Event{Type: EventApprove, By: owner}, t0, "", ErrIllegal},
		{"the owner denies", plain, StatusPending, Event{Type: EventDeny, By: owner}, t0, StatusDenied, nil},
		{"someone else denies", plain, StatusPending, Event{Type: EventDeny, By: stranger}, t0, "", ErrNotAllowed},
		{"the owner denies after approving", withUp, StatusAwaitingStepUp, Event{Type: EventDeny, By: owner}, t0, "", ErrIllegal},

		{"step-up passes", withUp, StatusAwaitingStepUp, Event{Type: EventStepUpPassed, By: owner}, t0, StatusApproved, nil},
		{"step-up passes, the manager not yet", second, StatusAwaitingStepUp, Event{Type: EventStepUpPassed, By: owner}, t0, StatusAwaitingSecond, nil},
		{"step-up by someone else", withUp, StatusAwaitingStepUp, Event{Type: EventStepUpPassed, By: manager}, t0, "", ErrNotAllowed},
		{"step-up before approval", withUp, StatusPending, Event{Type: EventStepUpPassed, By: owner}, t0, "", ErrIllegal},
		{"step-up too late", withUp, StatusAwaitingStepUp, Event{Type: EventStepUpPassed, By: owner}, late, "", ErrExpired},

		{"the manager approves first: recorded only", second, StatusPending, Event{Type: EventSecondApprove, By: manager}, t0, StatusPending, nil},
		{"the manager approves during step-up: recorded only", second, StatusAwaitingStepUp, Event{Type: EventSecondApprove, By: manager}, t0, StatusAwaitingStepUp, nil},
		{"the manager approves last", second, StatusAwaitingSecond, Event{Type: EventSecondApprove, By: manager}, t0, StatusApproved, nil},
		{"the owner is not their own second", second, StatusAwaitingSecond, Event{Type: EventSecondApprove, By: owner}, t0, "", ErrNotAllowed},
		{"a stranger is no second", second, StatusAwaitingSecond, Event{Type: EventSecondApprove, By: stranger}, t0, "", ErrNotAllowed},
		{"the manager's namesake elsewhere is no second", second, StatusAwaitingSecond, Event{Type: EventSecondApprove, By: Principal{Team: "T2", User: manager.User}}, t0, "", ErrNotAllowed},
		{"no second approver on a plain request", plain, StatusPending, Event{Type: EventSecondApprove, By: manager}, t0, "", ErrNotAllowed},
		{"the manager denies", second, StatusAwaitingSecond, Event{Type: EventSecondDeny, By: manager}, t0, StatusDenied, nil},

		{"an approved request starts", plain, StatusApproved, Event{Type: EventStart}, t0, StatusExecuting, nil},
		{"a pending request cannot start", plain, StatusPending, Event{Type: EventStart}, t0, "", ErrIllegal},
		{"a step-up request cannot start before step-up", withUp, StatusAwaitingStepUp, Event{Type: EventStart}, t0, "", ErrIllegal},
		{"a two-person request cannot start on one", second, StatusAwaitingSecond, Event{Type: EventStart}, t0, "", ErrIllegal},
		{"it starts once only", plain, StatusExecuting, Event{Type: EventStart}, t0, "", ErrIllegal},
		{"it succeeds", plain, StatusExecuting, Event{Type: EventSucceed}, t0, StatusSucceeded, nil},
		{"it fails", plain, StatusExecuting, Event{Type: EventFail}, t0, StatusFailed, nil},
		{"an unrecorded approval fails it", plain, StatusApproved, Event{Type: EventFail}, t0, StatusFailed, nil},
		{"a request that never ran cannot succeed", plain, StatusApproved, Event{Type: EventSucceed}, t0, "", ErrIllegal},

		{"it expires", plain, StatusPending, Event{Type: EventExpire}, late, StatusExpired, nil},
		{"it does not expire early", plain, StatusPending, Event{Type: EventExpire}, t0, "", ErrIllegal},
		{"an approved request does not expire", plain, StatusApproved, Event{Type: EventExpire}, late, "", ErrIllegal},
		{"revocation cancels a waiting request", plain, StatusWaitingConnection, Event{Type: EventCancel}, t0, StatusCanceled, nil},
		{"revocation cancels an approved request", plain, StatusApproved, Event{Type: EventCancel}, t0, StatusCanceled, nil},
		{"revocation cancels the rest of a running step's plan", plain, StatusExecuting, Event{Type: EventCancel}, t0, StatusExecuting, nil},
		{"a stale approval is interrupted", plain, StatusApproved, Event{Type: EventInterrupt}, t0.Add(ApprovedStaleAfter), StatusInterrupted, nil},
		{"a fresh approval is not", plain, StatusApproved, Event{Type: EventInterrupt}, t0.Add(ApprovedStaleAfter - time.Second), "", ErrIllegal},
		{"a stale execution is interrupted", plain, StatusExecuting, Event{Type: EventInterrupt}, t0.Add(ExecutingStaleAfter), StatusInterrupted, nil},
		{"a fresh execution is not", plain, StatusExecuting, Event{Type: EventInterrupt}, t0.Add(ApprovedStaleAfter), "", ErrIllegal},
		{"nothing comes after succeeded", plain, StatusSucceeded, Event{Type: EventFail}, t0, "", ErrIllegal},
		{"nothing comes after denied", plain, StatusDenied, Event{Type: EventApprove, By: owner}, t0, "", ErrIllegal},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := at(t, tt.kind, tt.from)
			got, evs, err := r.apply(tt.event, tt.now)
			if tt.wantErr != nil {
				if !errors.Is(err, tt.wantErr) {
					t.Fatalf("apply = %s, %v; want %v", got.Status, err, tt.wantErr)
				}
				if evs != nil || !cmp.Equal(got, r) {
					t.Errorf("a refused event changed the request or asked for audit events: %+v, %v", got, evs)
				}
				return
			}
			if err != nil || got.Status != tt.want {
				t.Fatalf("apply = %s, %v; want %s", got.Status, err, tt.want)
			}
			if !got.Updated.Equal(tt.now) {
				t.Errorf("Updated = %v, want %v", got.Updated, tt.now)
			}
		})
	}
}

// sample is one circumstance an event may meet: a kind of request, the
// time, and the event's own details.
type sample struct {
	kind kind
	now  time.Time
	e    Event
}

// samples are the circumstances TestEveryPair tries for each event.
func samples(e EventType) []sample {
	var out []sample
	answers := []*Answer{nil, plain.answer(), withUp.answer(), second.answer(),
		{Decision: StoredDecision{Effect: policy.Allow}}, {Decision: StoredDecision{Effect: policy.Deny}},
		{Decision: StoredDecision{Effect: policy.Approve, GrantOK: true}, Grant: "g"}}
	for _, k := range []kind{plain, withUp, second} {
		for _, now := range []time.Time{t0, t0.Add(ApprovedStaleAfter), t0.Add(ExecutingStaleAfter), t0.Add(2 * time.Hour)} {
			for _, by := range []Principal{{}, owner, manager, stranger} {
				for _, a := range answers {
					out = append(out, sample{k, now, Event{Type: e, By: by, Answer: a, Lifetime: policy.Once}})
				}
			}
		}
	}
	return out
}

// reachableRequests returns, for each state, requests of every kind that a
// legal path leads to.
func reachableRequests(t *testing.T) map[Status][]Request {
	t.Helper()
	out := map[Status][]Request{}
	for _, st := range append([]Status{StatusNew}, Statuses...) {
		for _, k := range []kind{plain, withUp, second} {
			if st == StatusAwaitingStepUp && k == plain || st == StatusAwaitingSecond && k != second {
				continue
			}
			r := at(t, k, st)
			out[st] = append(out[st], r)
			if st == StatusPending && k == second {
				// The manager's approval may come before the owner's.
				out[st] = append(out[st], mustApply(t, r, Event{Type: EventSecondApprove, By: manager}))
			}
		}
	}
	return out
}

// TestEveryPair walks every (state, event) pair, the illegal ones
// included, under every sample circumstance: at most one row applies, a
// refusal changes nothing and is an ErrIllegal, ErrNotAllowed or
// ErrExpired, a pair that is not in the table is always ErrIllegal, the
// ends have no way out, and what a move asks to record names the request.
func TestEveryPair(t *testing.T) {
	inTable := map[[2]string]bool{}
	for _, tr := range transitions {
		inTable[[2]string{string(tr.From), string(tr.On)}] = true
	}
	moves := 0
	for st, rs := range reachableRequests(t) {
		for _, et := range Events() {
			for _, r := range rs {
				for _, s := range samples(et) {
					if r.Decision.Rule == "" && s.kind != plain {
						continue // a request not yet asked has no decision of its own: one kind is enough
					}
					var matched []transition
					for _, tr := range transitions {
						if tr.From != r.Status || tr.On != et {
							continue
						}
						ok := true
						for _, g := range tr.When {
							ok = ok && g.ok(r, s.e, s.now)
						}
						if ok {
							matched = append(matched, tr)
						}
					}
					if len(matched) > 1 {
						t.Fatalf("%s from %s matches %d rows: %+v", et, st, len(matched), matched)
					}
					before := fmt.Sprintf("%+v", r)
					got, evs, err := r.apply(s.e, s.now)
					if after := fmt.Sprintf("%+v", r); after != before {
						t.Fatalf("apply changed its receiver")
					}
					if err != nil {
						if len(matched) != 0 {
							t.Fatalf("%s from %s: a row matched but apply refused: %v", et, st, err)
						}
						if !errors.Is(err, ErrIllegal) && !errors.Is(err, ErrNotAllowed) && !errors.Is(err, ErrExpired) {
							t.Fatalf("%s from %s: error %v is none of the lifecycle's", et, st, err)
						}
						if !inTable[[2]string{string(st), string(et)}] && !errors.Is(err, ErrIllegal) {
							t.Fatalf("%s from %s is not in the table but was refused with %v", et, st, err)
						}
						if got.Status != r.Status || evs != nil {
							t.Fatalf("a refused %s from %s moved the request to %s", et, st, got.Status)
						}
						continue
					}
					moves++
					if len(matched) != 1 || got.Status != matched[0].To {
						t.Fatalf("%s from %s went to %s, not by its row", et, st, got.Status)
					}
					if st.Terminal() {
						t.Fatalf("%s moved a request out of %s", et, st)
					}
					if want := matched[0].Record; want == "" && len(evs) != 0 || want != "" && (len(evs) != 1 || evs[0].Kind != want || evs[0].RequestID != r.ID) {
						t.Fatalf("%s from %s recorded %+v, want one %q about the request", et, st, evs, want)
					}
				}
			}
		}
	}
	if moves == 0 {
		t.Fatal("no sample moved any request")
	}
}

// node is a request in the security walk, with what happened to it.
type node struct {
	r                                   Request
	ownerApproved, steppedUp, secondGot bool
}

// TestNoShortcut walks every sequence of events from a freshly asked
// request of each kind (a breadth-first search of the states and their
// histories) and checks the promises the lifecycle carries: a request runs
// only after its owner approved it, a step-up request only after the
// owner's step-up, a two-person request only after a second approval by
// someone the policy names; and nothing is ever done by a stranger.
func TestNoShortcut(t *testing.T) {
	var alphabet []Event
	for _, et := range Events() {
		for _, by := range []Principal{owner, manager, stranger} {
			alphabet = append(alphabet, Event{Type: et, By: by, Lifetime: policy.Once})
		}
	}
	times := []time.Time{t0, t0.Add(ExecutingStaleAfter), t0.Add(2 * time.Hour)}
	// The events of people; the others are the broker's own (By is
	// ignored).
	personal := map[EventType]bool{EventApprove: true, EventDeny: true, EventStepUpPassed: true, EventSecondApprove: true, EventSecondDeny: true}
	for _, k := range []kind{plain, withUp, second} {
		t.Run(k.String(), func(t *testing.T) {
			start := node{r: mustApply(t, newTestRequest(k), Event{Type: EventAskApproval, Answer: k.answer()})}
			key := func(n node) string {
				return fmt.Sprintf("%s %v %v %v %v", n.r.Status, n.r.SecondBy, n.ownerApproved, n.steppedUp, n.secondGot)
			}
			seen := map[string]bool{key(start): true}
			queue := []node{start}
			reached := map[Status]bool{}
			for len(queue) > 0 {
				n := queue[0]
				queue = queue[1:]
				reached[n.r.Status] = true
				for _, e := range alphabet {
					for _, now := range times {
						next, _, err := n.r.apply(e, now)
						if err != nil {
							continue
						}
						if e.By == stranger && personal[e.Type] {
							t.Fatalf("%s by a stranger moved %s to %s", e.Type, n.r.Status, next.Status)
						}
						m := node{r: next, ownerApproved: n.ownerApproved, steppedUp: n.steppedUp, secondGot: n.secondGot}
						switch e.Type {
						case EventApprove:
							m.ownerApproved = e.By == owner
						case EventStepUpPassed:
							m.steppedUp = e.By == owner
						case EventSecondApprove:
							m.secondGot = e.By == manager
						}
						if next.Status == StatusApproved || next.Status == StatusExecuting || next.Status == StatusSucceeded {
							if !m.ownerApproved || k != plain && !m.steppedUp || k == second && !m.secondGot {
								t.Fatalf("%s request reached %s by %s without its checks: %+v", k, next.Status, e.Type, m)
							}
						}
						// The clock only moves forward in this walk's
						// requests: keep Updated from making a node new.
						next.Updated = time.Time{}
						m.r = next
						if !seen[key(m)] {
							seen[key(m)] = true
							queue = append(queue, m)
						}
					}
				}
			}
			for _, st := range []Status{StatusSucceeded, StatusFailed, StatusDenied, StatusExpired, StatusCanceled} {
				if !reached[st] {
					t.Errorf("%s request never reached %s", k, st)
				}
			}
		})
	}
}

// TestEveryStateReachableAndEnds: every state can be reached from a new
// request, and from every state that is not an end an end can be reached.
func TestEveryStateReachableAndEnds(t *testing.T) {
	next := map[Status][]Status{}
	for _, tr := range transitions {
		next[tr.From] = append(next[tr.From], tr.To)
	}
	reach := func(from Status) map[Status]bool {
		seen := map[Status]bool{from: true}
		stack := []Status{from}
		for len(stack) > 0 {
			s := stack[len(stack)-1]
			stack = stack[:len(stack)-1]
			for _, n := range next[s] {
				if !seen[n] {
					seen[n] = true
					stack = append(stack, n)
				}
			}
		}
		return seen
	}
	fromNew := reach(StatusNew)
	for _, st := range Statuses {
		if !fromNew[st] {
			t.Errorf("%s cannot be reached", st)
		}
		if st.Terminal() {
			if len(next[st]) > 0 {
				t.Errorf("the end %s has a way out", st)
			}
			continue
		}
		ends := false
		for s := range reach(st) {
			ends = ends || s.Terminal()
		}
		if !ends {
			t.Errorf("%s leads to no end", st)
		}
	}
	for _, tr := range transitions {
		if !slices.Contains(append([]Status{StatusNew}, Statuses...), tr.From) || !slices.Contains(Statuses, tr.To) {
			t.Errorf("row %s --%s--> %s names a state Statuses does not list", tr.From, tr.On, tr.To)
		}
	}
}

// TestMovesAreRecorded: what a move leaves in the audit trail names who
// did it and how.
func TestMovesAreRecorded(t *testing.T) {
	r := at(t, second, StatusPending)
	_, evs, err := r.apply(Event{Type: EventSecondApprove, By: manager}, t0)
	if err != nil || len(evs) != 1 {
		t.Fatalf("second approval: %v, %v", evs, err)
	}
	want := audit.Event{Kind: audit.ApprovalGranted, Actor: manager.String(), Agent: "github", Action: "github.comment",
		Resource: "acme/payments", RequestID: r.ID, Rule: "r", Detail: map[string]string{"role": "second_approver", "owner": owner.String()}}
	if diff := cmp.Diff(want, evs[0]); diff != "" {
		t.Errorf("second approval's event (-want +got):\n%s", diff)
	}
	_, evs, _ = at(t, plain, StatusPending).apply(Event{Type: EventApprove, By: owner, Lifetime: policy.OneHour}, t0)
	if len(evs) != 1 || evs[0].Decision != "1h" || evs[0].Actor != owner.String() {
		t.Errorf("approval's events = %+v, want one with decision 1h by the owner", evs)
	}
	_, evs, _ = at(t, plain, StatusExecuting).apply(Event{Type: EventInterrupt}, t0.Add(ExecutingStaleAfter))
	if len(evs) != 1 || evs[0].Kind != audit.ActionFailed || evs[0].Result != "interrupted" || evs[0].Detail["status"] != "executing" {
		t.Errorf("interruption's events = %+v, want action.failed interrupted while executing", evs)
	}
}

// TestDiagramInArchitecture keeps the lifecycle diagram in
// docs/ARCHITECTURE.md in step with the table (go test -run Diagram
// -update rewrites it).
func TestDiagramInArchitecture(t *testing.T) {
	const path = "../../docs/ARCHITECTURE.md"
	const begin, end = "<!-- lifecycle diagram: generated from internal/broker/lifecycle.go, do not edit -->\n```mermaid\n", "```\n"
	doc, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	i := strings.Index(string(doc), begin)
	if i < 0 {
		t.Fatalf("%s has no lifecycle diagram block (%q)", path, begin)
	}
	rest := string(doc)[i+len(begin):]
	j := strings.Index(rest, end)
	if j < 0 {
		t.Fatalf("%s: the lifecycle diagram block does not end", path)
	}
	if got := rest[:j]; got != Diagram() {
		if *update {
			out := string(doc)[:i+len(begin)] + Diagram() + rest[j:]
			if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
				t.Fatal(err)
			}
			return
		}
		t.Errorf("%s's lifecycle diagram differs from the transition table; rerun with -update:\n%s", path, cmp.Diff(got, Diagram()))
	}
}
