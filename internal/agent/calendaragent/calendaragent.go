// Package calendaragent is the Google Calendar agent: listing events, finding free time with
// freebusy, and creating and deleting events, on google.golang.org/api/calendar/v3 with the
// client of a vault lease.
//
// Scopes: each action declares the narrowest scope Google's discovery document accepts for the
// methods it calls: list_events calendar.events.readonly, find_free_time calendar.events.freebusy
// (freebusy.query does not take calendar.events), create_event and delete_event calendar.events.
// A person connects the read scopes first and grants calendar.events only when a write needs it
// (include_granted_scopes adds it to what they granted).
package calendaragent

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"time"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/policy"
	"google.golang.org/api/calendar/v3"
	"google.golang.org/api/googleapi"
	"google.golang.org/api/option"
)

// Agent and Service name the calendar agent and the vault service it needs.
const (
	Agent   = "calendar"
	Service = "google"
)

// primary is the person's own calendar, which find_free_time always consults.
const primary = "primary"

// The OAuth scopes the calendar actions declare.
const (
	ScopeRead     = calendar.CalendarEventsReadonlyScope // list_events
	ScopeFreeBusy = calendar.CalendarEventsFreebusyScope // find_free_time
	ScopeWrite    = calendar.CalendarEventsScope         // create_event, delete_event
)

// Scopes are every scope the calendar actions declare.
var Scopes = []string{ScopeRead, ScopeFreeBusy, ScopeWrite}

// Register adds the calendar actions to r.
func Register(r *agent.Registry, e agent.Endpoints) error { return r.Register(Actions(e)...) }

// Schema fragments.
const (
	calendarProp  = `{"type":"string","minLength":1,"maxLength":256,"default":"primary","description":"The calendar ID; primary is the person's own."}`
	timeProp      = `{"type":"string","format":"date-time","description":"An RFC 3339 time with offset, e.g. 2025-01-31T15:00:00Z."}`
	attendeesProp = `{"type":"array","items":{"type":"string","format":"email"},"maxItems":50,"uniqueItems":true,"default":[],"description":"Attendees' e-mail addresses."}`
)

// Actions returns the calendar actions, calling the API at e.Calendar.
func Actions(e agent.Endpoints) []agent.Action {
	g := gcal{endpoint: e.Calendar}
	act := func(name, desc, schema string, risk policy.Risk, write bool, check func(agent.Args) error,
		res func(agent.Args) policy.Resource, exec agent.Exec) agent.Action {
		scope := ScopeWrite
		switch name {
		case "list_events":
			scope = ScopeRead
		case "find_free_time":
			scope = ScopeFreeBusy
		}
		return agent.Action{
			Name: Agent + "." + name, Agent: Agent, Service: Service, Description: desc, Schema: schema,
			Scopes: []string{scope}, Risk: risk, Write: write, Check: check, ResourceFromArgs: res, Execute: exec,
		}
	}
	return []agent.Action{
		act("list_events", "List the events in a calendar between two times, or on one day (UTC).",
			agent.ObjectSchema(agent.Props{"calendar": calendarProp, "from": timeProp, "to": timeProp,
				"day": `{"type":"string","format":"date","description":"A day as YYYY-MM-DD, instead of from and to."}`}),
			policy.Low, false, checkRange, calendarResource, g.listEvents),
		act("find_free_time", "Find times between from and to when the person and the attendees are all free.",
			agent.ObjectSchema(agent.Props{"from": timeProp, "to": timeProp, "attendees": attendeesProp,
				"duration_minutes": `{"type":"integer","minimum":5,"maximum":480,"default":30,"description":"How long the free slot must be."}`},
				"from", "to"),
			policy.Low, false, checkFromTo, func(agent.Args) policy.Resource {
				return policy.Resource{Kind: "calendar", Name: primary, Attrs: map[string]any{"private": true}}
			}, g.findFreeTime),
		act("create_event", "Create an event and invite the attendees.",
			agent.ObjectSchema(agent.Props{"calendar": calendarProp,
				"summary":     `{"type":"string","minLength":1,"maxLength":256,"description":"The event's title."}`,
				"description": `{"type":"string","maxLength":8192,"default":"","description":"The event's description."}`,
				"start":       timeProp, "end": timeProp, "attendees": attendeesProp},
				"summary", "start", "end"),
			policy.Medium, true, checkStartEnd, func(a agent.Args) policy.Resource {
				r := calendarResource(a)
				r.Attrs["attendees"] = int64(len(a.Strings("attendees")))
				return r
			}, g.createEvent),
		act("delete_event", "Delete (cancel) an event, notifying its attendees.",
			agent.ObjectSchema(agent.Props{"calendar": calendarProp,
				"event_id": `{"type":"string","minLength":1,"maxLength":1024,"pattern":"^[A-Za-z0-9_-]+$","description":"The event's ID."}`},
				"event_id"),
			policy.High, true, nil, calendarResource, g.deleteEvent),
	}
}

// calendarResource: calendars are always private, and finding out more would cost a read the
// policy has no use for.
func calendarResource(a agent.Args) policy.Resource {
	return policy.Resource{Kind: "calendar", Name: a.String("calendar"), Attrs: map[string]any{"private": true}}
}

func checkRange(a agent.Args) error {
	_, hasDay := a["day"]
	_, hasFrom := a["from"]
	_, hasTo := a["to"]
	switch {
	case hasDay && (hasFrom || hasTo):
		return errors.New("give either day or from and to, not both")
	case hasDay:
		return nil
	case !hasFrom || !hasTo:
		return errors.New("give a day, or both from and to")
	}
	return checkFromTo(a)
}

func checkFromTo(a agent.Args) error { return before(a, "from", "to") }

func checkStartEnd(a agent.Args) error { return before(a, "start", "end") }

func before(a agent.Args, from, to string) error {
	f, err1 := time.Parse(time.RFC3339, a.String(from))
	t, err2 := time.Parse(time.RFC3339, a.String(to))
	if err1 != nil || err2 != nil {
		return fmt.Errorf("%s and %s must be RFC 3339 times", from, to)
	}
	if !t.After(f) {
		return fmt.Errorf("%s must be after %s", to, from)
	}
	return nil
}

// span returns the time range of list_events' arguments.
func span(a agent.Args) (from, to time.Time) {
	if d := a.String("day"); d != "" {
		from, _ = time.Parse(time.DateOnly, d)
		return from, from.AddDate(0, 0, 1)
	}
	from, _ = time.Parse(time.RFC3339, a.String("from"))
	to, _ = time.Parse(time.RFC3339, a.String("to"))
	return from, to
}

// gcal builds a calendar service per call from the lease's client, which must not outlive it.
type gcal struct{ endpoint string }

func (g gcal) service(ctx context.Context, c *http.Client) (*calendar.Service, error) {
	s, err := calendar.NewService(ctx, option.WithHTTPClient(c), option.WithEndpoint(g.endpoint))
	if err != nil {
		return nil, fmt.Errorf("calendar service: %w", err)
	}
	return s, nil
}

// fail turns a Google API error into an *agent.ProviderError with the provider's own message.
func fail(op string, err error) error {
	pe := &agent.ProviderError{Service: Service, Op: op, Kind: agent.Failed, Message: "request failed", Err: err}
	var ge *googleapi.Error
	switch {
	case errors.As(err, &ge):
		pe.Status = ge.Code
		pe.Kind = agent.KindForStatus(ge.Code)
		pe.Message = ge.Message
		if pe.Message == "" {
			pe.Message = http.StatusText(ge.Code)
		}
	case errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded):
		pe.Message = err.Error()
	}
	return pe
}

// Event is the JSON-able summary of an event in results.
type Event struct {
	ID        string    `json:"id"`
	Summary   string    `json:"summary"`
	Start     time.Time `json:"start"`
	End       time.Time `json:"end"`
	AllDay    bool      `json:"all_day,omitempty"`
	Attendees []string  `json:"attendees,omitempty"`
	URL       string    `json:"url,omitempty"`
}

func summarize(e *calendar.Event) Event {
	out := Event{ID: e.Id, Summary: e.Summary, URL: e.HtmlLink}
	out.Start, out.AllDay = eventTime(e.Start)
	out.End, _ = eventTime(e.End)
	for _, a := range e.Attendees {
		out.Attendees = append(out.Attendees, a.Email)
	}
	return out
}

func eventTime(t *calendar.EventDateTime) (time.Time, bool) {
	if t == nil {
		return time.Time{}, false
	}
	if t.DateTime != "" {
		v, _ := time.Parse(time.RFC3339, t.DateTime)
		return v, false
	}
	v, _ := time.Parse(time.DateOnly, t.Date)
	return v, true
}

func (g gcal) listEvents(ctx context.Context, c *http.Client, args agent.Args, _ policy.Resource) (agent.Result, error) {
	cal := args.String("calendar")
	from, to := span(args)
	s, err := g.service(ctx, c)
	if err != nil {
		return agent.Result{}, err
	}
	list, err := s.Events.List(cal).TimeMin(from.Format(time.RFC3339)).TimeMax(to.Format(time.RFC3339)).
		SingleEvents(true).OrderBy("startTime").MaxResults(100).Context(ctx).Do()
	if err != nil {
		return agent.Result{}, fail("list events in "+cal, err)
	}
	out := make([]Event, 0, len(list.Items))
	parts := make([]string, 0, len(list.Items))
	for _, e := range list.Items {
		ev := summarize(e)
		out = append(out, ev)
		if ev.AllDay {
			parts = append(parts, ev.Summary+" (all day)")
		} else {
			parts = append(parts, fmt.Sprintf("%s %s", ev.Start.Format("Mon 15:04"), ev.Summary))
		}
	}
	summary := fmt.Sprintf("%d events", len(out))
	if len(parts) > 0 {
		summary += ": " + strings.Join(parts, "; ")
	}
	return agent.Result{Summary: summary, Data: out}, nil
}

// Slot is a free time range in find_free_time's result.
type Slot struct {
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// FreeTime is find_free_time's result.
type FreeTime struct {
	Slots []Slot `json:"slots"`
	// Unknown lists calendars whose busy times the provider could not tell (e.g. people outside
	// the organisation); the slots ignore them.
	Unknown []string `json:"unknown,omitempty"`
}

func (g gcal) findFreeTime(ctx context.Context, c *http.Client, args agent.Args, _ policy.Resource) (agent.Result, error) {
	from, _ := time.Parse(time.RFC3339, args.String("from"))
	to, _ := time.Parse(time.RFC3339, args.String("to"))
	dur := time.Duration(args.Int("duration_minutes")) * time.Minute
	ids := append([]string{primary}, args.Strings("attendees")...)
	s, err := g.service(ctx, c)
	if err != nil {
		return agent.Result{}, err
	}
	req := &calendar.FreeBusyRequest{TimeMin: from.Format(time.RFC3339), TimeMax: to.Format(time.RFC3339)}
	for _, id := range ids {
		req.Items = append(req.Items, &calendar.FreeBusyRequestItem{Id: id})
	}
	resp, err := s.Freebusy.Query(req).Context(ctx).Do()
	if err != nil {
		return agent.Result{}, fail("query free/busy", err)
	}
	var busy []Slot
	var out FreeTime
	for _, id := range ids {
		fc, ok := resp.Calendars[id]
		if !ok || len(fc.Errors) > 0 {
			out.Unknown = append(out.Unknown, id)
			continue
		}
		for _, p := range fc.Busy {
			s, err1 := time.Parse(time.RFC3339, p.Start)
			e, err2 := time.Parse(time.RFC3339, p.End)
			if err1 == nil && err2 == nil {
				busy = append(busy, Slot{s, e})
			}
		}
	}
	out.Slots = freeSlots(from, to, dur, busy)
	summary := fmt.Sprintf("No free %d-minute slot between %s and %s", int(dur.Minutes()), from.Format(time.RFC3339), to.Format(time.RFC3339))
	if len(out.Slots) > 0 {
		summary = fmt.Sprintf("%d free slots of at least %d minutes; the first is %s–%s", len(out.Slots),
			int(dur.Minutes()), out.Slots[0].Start.Format(time.RFC3339), out.Slots[0].End.Format("15:04"))
	}
	if len(out.Unknown) > 0 {
		summary += " (busy times unknown for " + strings.Join(out.Unknown, ", ") + ")"
	}
	return agent.Result{Summary: summary, Data: out}, nil
}

// freeSlots returns the gaps of at least dur in [from, to) not covered by busy.
func freeSlots(from, to time.Time, dur time.Duration, busy []Slot) []Slot {
	slices.SortFunc(busy, func(a, b Slot) int { return a.Start.Compare(b.Start) })
	slots := []Slot{}
	cur := from
	for _, b := range busy {
		if b.Start.After(cur) && b.Start.Sub(cur) >= dur {
			slots = append(slots, Slot{cur, minTime(b.Start, to)})
		}
		if b.End.After(cur) {
			cur = b.End
		}
		if !cur.Before(to) {
			return slots
		}
	}
	if to.Sub(cur) >= dur {
		slots = append(slots, Slot{cur, to})
	}
	return slots
}

func minTime(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}

func (g gcal) createEvent(ctx context.Context, c *http.Client, args agent.Args, _ policy.Resource) (agent.Result, error) {
	cal := args.String("calendar")
	ev := &calendar.Event{
		Summary:     args.String("summary"),
		Description: args.String("description"),
		Start:       &calendar.EventDateTime{DateTime: args.String("start")},
		End:         &calendar.EventDateTime{DateTime: args.String("end")},
	}
	for _, a := range args.Strings("attendees") {
		ev.Attendees = append(ev.Attendees, &calendar.EventAttendee{Email: a})
	}
	s, err := g.service(ctx, c)
	if err != nil {
		return agent.Result{}, err
	}
	got, err := s.Events.Insert(cal, ev).SendUpdates("all").Context(ctx).Do()
	if err != nil {
		return agent.Result{}, fail("create event in "+cal, err)
	}
	out := summarize(got)
	summary := fmt.Sprintf("Created %q on %s", out.Summary, out.Start.Format("Mon 2 Jan 15:04 MST"))
	if len(out.Attendees) > 0 {
		summary += " with " + strings.Join(out.Attendees, ", ")
	}
	return agent.Result{Summary: summary, Data: out}, nil
}

func (g gcal) deleteEvent(ctx context.Context, c *http.Client, args agent.Args, _ policy.Resource) (agent.Result, error) {
	cal, id := args.String("calendar"), args.String("event_id")
	s, err := g.service(ctx, c)
	if err != nil {
		return agent.Result{}, err
	}
	if err := s.Events.Delete(cal, id).SendUpdates("all").Context(ctx).Do(); err != nil {
		return agent.Result{}, fail("delete event "+id, err)
	}
	return agent.Result{
		Summary: fmt.Sprintf("Deleted event %s", id),
		Data:    map[string]any{"calendar": cal, "event_id": id},
	}, nil
}
