package calendaragent_test

import (
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/agenthub/agenthub/internal/agent"
	"github.com/agenthub/agenthub/internal/agent/agenttest"
	"github.com/agenthub/agenthub/internal/agent/calendaragent"
	"github.com/agenthub/agenthub/internal/policy"
	"github.com/agenthub/agenthub/internal/sim"
	"github.com/google/go-cmp/cmp"
)

// now is a Monday morning; the sim seeds today's and tomorrow's events around it.
var now = time.Date(2025, 3, 10, 8, 0, 0, 0, time.UTC)

func setup(t *testing.T) (*sim.World, *agent.Registry, *http.Client) {
	t.Helper()
	return agenttest.Setup(t, sim.Options{Now: func() time.Time { return now }}, calendaragent.Register, sim.ServiceGoogle, calendaragent.Scopes...)
}

type call struct{ Method, Path string }

func calls(w *sim.World) []call {
	var out []call
	for _, c := range w.CallsFor(sim.ServiceGoogle) {
		out = append(out, call{c.Method, c.Path})
	}
	return out
}

func at(h, m int) time.Time {
	return now.Truncate(24 * time.Hour).Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
}

func TestListEvents(t *testing.T) {
	tests := []struct {
		name string
		args map[string]any
		want []string
	}{
		{"today", map[string]any{"day": "2025-03-10"}, []string{"Standup", "Payments sync"}},
		{"tomorrow", map[string]any{"day": "2025-03-11"}, []string{"Standup", "1:1 with Bob"}},
		{"range", map[string]any{"from": "2025-03-10T10:00:00Z", "to": "2025-03-11T10:00:00Z"}, []string{"Payments sync", "Standup"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			w, r, c := setup(t)
			res, err := agenttest.Run(t, r, c, "calendar.list_events", tt.args)
			if err != nil {
				t.Fatalf("list: %v", err)
			}
			var got []string
			for _, e := range res.Data.([]calendaragent.Event) {
				got = append(got, e.Summary)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff([]call{{"GET", "/calendar/v3/calendars/primary/events"}}, calls(w)); diff != "" {
				t.Errorf("calls (-want +got):\n%s", diff)
			}
		})
	}
}

func TestFindFreeTime(t *testing.T) {
	w, r, c := setup(t)
	res, err := agenttest.Run(t, r, c, "calendar.find_free_time", map[string]any{
		"from": "2025-03-10T09:00:00Z", "to": "2025-03-10T12:30:00Z", "attendees": []any{"bob@example.com"},
	})
	if err != nil {
		t.Fatalf("find: %v", err)
	}
	want := calendaragent.FreeTime{
		Slots:   []calendaragent.Slot{{Start: at(9, 0), End: at(9, 30)}, {Start: at(9, 45), End: at(11, 0)}, {Start: at(12, 0), End: at(12, 30)}},
		Unknown: []string{"bob@example.com"},
	}
	if diff := cmp.Diff(want, res.Data); diff != "" {
		t.Errorf("free time (-want +got):\n%s", diff)
	}
	if diff := cmp.Diff([]call{{"POST", "/calendar/v3/freeBusy"}}, calls(w)); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}
}

func TestCreateAndDeleteEvent(t *testing.T) {
	w, r, c := setup(t)
	res, err := agenttest.Run(t, r, c, "calendar.create_event", map[string]any{
		"summary": "Design review", "start": "2025-03-11T15:00:00Z", "end": "2025-03-11T15:30:00Z",
		"attendees": []string{"bob@example.com"},
	})
	if err != nil {
		t.Fatalf("create: %v", err)
	}
	if got, want := res.Summary, `Created "Design review" on Tue 11 Mar 15:00 UTC with bob@example.com`; got != want {
		t.Errorf("summary = %q, want %q", got, want)
	}
	id := res.Data.(calendaragent.Event).ID
	ev, ok := w.Calendar().Event("primary", id)
	if !ok {
		t.Fatalf("event %s not in the calendar", id)
	}
	if ev.Summary != "Design review" || !ev.Start.Equal(time.Date(2025, 3, 11, 15, 0, 0, 0, time.UTC)) ||
		!cmp.Equal(ev.Attendees, []string{"bob@example.com"}) || ev.SendUpdates != "all" {
		t.Errorf("stored event = %+v", ev)
	}

	if _, err := agenttest.Run(t, r, c, "calendar.delete_event", map[string]any{"event_id": id}); err != nil {
		t.Fatalf("delete: %v", err)
	}
	if ev, _ := w.Calendar().Event("primary", id); ev.Status != "cancelled" {
		t.Errorf("status after delete = %q, want cancelled", ev.Status)
	}
	want := []call{{"POST", "/calendar/v3/calendars/primary/events"}, {"DELETE", "/calendar/v3/calendars/primary/events/" + id}}
	if diff := cmp.Diff(want, calls(w)); diff != "" {
		t.Errorf("calls (-want +got):\n%s", diff)
	}

	_, err = agenttest.Run(t, r, c, "calendar.delete_event", map[string]any{"event_id": id})
	var pe *agent.ProviderError
	if !errors.As(err, &pe) || pe.Kind != agent.NotFound {
		t.Fatalf("second delete error = %v, want a not_found *agent.ProviderError", err)
	}
	if got, want := err.Error(), "google: delete event "+id+": Resource has been deleted (HTTP 410)"; got != want {
		t.Errorf("error = %q, want %q", got, want)
	}
}

func TestWriteWithoutScope(t *testing.T) {
	w, r, _ := setup(t)
	c, token := agenttest.ClientToken(t, w, sim.ServiceGoogle, sim.ScopeCalendarReadonly)
	_, err := agenttest.Run(t, r, c, "calendar.create_event", map[string]any{
		"summary": "x", "start": "2025-03-11T15:00:00Z", "end": "2025-03-11T15:30:00Z"})
	var pe *agent.ProviderError
	if !errors.As(err, &pe) || pe.Kind != agent.Forbidden {
		t.Fatalf("error = %v, want a forbidden *agent.ProviderError", err)
	}
	if len(w.Calendar().Events("primary")) != 4 {
		t.Error("an event was created without the write scope")
	}
	if strings.Contains(err.Error(), token) {
		t.Error("the error text contains the access token")
	}
}

func TestResource(t *testing.T) {
	w, r, c := setup(t)
	got, err := agenttest.Resource(t, r, c, "calendar.create_event", map[string]any{
		"summary": "x", "start": "2025-03-11T15:00:00Z", "end": "2025-03-11T15:30:00Z",
		"attendees": []any{"bob@example.com", "carol@example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	want := policy.Resource{Kind: "calendar", Name: "primary", Attrs: map[string]any{"private": true, "attendees": int64(2)}}
	if diff := cmp.Diff(want, got); diff != "" {
		t.Errorf("resource (-want +got):\n%s", diff)
	}
	if n := len(w.Calls()); n != 0 {
		t.Errorf("finding a calendar resource made %d calls, want 0", n)
	}
}

func TestSchemas(t *testing.T) {
	_, r, _ := setup(t)
	tests := []struct {
		name   string
		action string
		raw    map[string]any
		want   agent.Args
		errMsg string
	}{
		{"duration from json.Number", "calendar.find_free_time",
			map[string]any{"from": "2025-03-10T09:00:00Z", "to": "2025-03-10T17:00:00Z", "duration_minutes": json.Number("45")},
			agent.Args{"from": "2025-03-10T09:00:00Z", "to": "2025-03-10T17:00:00Z", "duration_minutes": int64(45), "attendees": []any{}}, ""},
		{"fractional duration", "calendar.find_free_time",
			map[string]any{"from": "2025-03-10T09:00:00Z", "to": "2025-03-10T17:00:00Z", "duration_minutes": 7.5},
			nil, "invalid arguments for calendar.find_free_time: duration_minutes: must be an integer, not a number"},
		{"list needs a range", "calendar.list_events", map[string]any{},
			nil, "invalid arguments for calendar.list_events: give a day, or both from and to"},
		{"list day and range", "calendar.list_events", map[string]any{"day": "2025-03-10", "from": "2025-03-10T09:00:00Z"},
			nil, "invalid arguments for calendar.list_events: give either day or from and to, not both"},
		{"end before start", "calendar.create_event",
			map[string]any{"summary": "x", "start": "2025-03-11T15:00:00Z", "end": "2025-03-11T14:00:00Z"},
			nil, "invalid arguments for calendar.create_event: end must be after start"},
		{"bad time", "calendar.create_event",
			map[string]any{"summary": "x", "start": "tomorrow at 3", "end": "2025-03-11T14:00:00Z"},
			nil, "invalid arguments for calendar.create_event: start: must be a valid date-time"},
		{"bad attendee", "calendar.create_event",
			map[string]any{"summary": "x", "start": "2025-03-11T15:00:00Z", "end": "2025-03-11T16:00:00Z", "attendees": []any{"bob"}},
			nil, "invalid arguments for calendar.create_event: attendees.0: must be a valid email"},
		{"attendees not a list", "calendar.create_event",
			map[string]any{"summary": "x", "start": "2025-03-11T15:00:00Z", "end": "2025-03-11T16:00:00Z", "attendees": "bob@example.com"},
			nil, "invalid arguments for calendar.create_event: attendees: must be an array, not a string"},
		{"defaults", "calendar.delete_event", map[string]any{"event_id": "abc"},
			agent.Args{"event_id": "abc", "calendar": "primary"}, ""},
	}
	for _, tt := range tests {
		agenttest.CheckValidate(t, r, tt.name, tt.action, tt.raw, tt.want, tt.errMsg)
	}
}
