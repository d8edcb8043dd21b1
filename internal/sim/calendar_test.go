package sim_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	"google.golang.org/api/calendar/v3"

	"github.com/agenthub/agenthub/internal/sim"
)

func day(d, h, m int) time.Time {
	return time.Date(start.Year(), start.Month(), start.Day()+d, h, m, 0, 0, time.UTC)
}

func summaries(items []*calendar.Event) []string {
	var out []string
	for _, it := range items {
		out = append(out, it.Summary+"@"+it.Start.DateTime)
	}
	return out
}

func TestCalendarListEvents(t *testing.T) {
	e := newEnv(t)
	cal := e.calendar(t, e.connect(t, sim.ServiceGoogle, "alice@example.com", sim.ScopeCalendarEventsReadonly))
	for _, tc := range []struct {
		name       string
		tmin, tmax time.Time
		want       []string
	}{
		{"today", day(0, 0, 0), day(1, 0, 0), []string{"Standup@2026-03-10T09:30:00Z", "Payments sync@2026-03-10T11:00:00Z"}},
		{"tomorrow", day(1, 0, 0), day(2, 0, 0), []string{"Standup@2026-03-11T09:30:00Z", "1:1 with Bob@2026-03-11T14:00:00Z"}},
		{"rest of today", start, day(1, 0, 0), []string{"Payments sync@2026-03-10T11:00:00Z"}},
		{"overlapping the start", day(0, 9, 40), day(0, 10, 0), []string{"Standup@2026-03-10T09:30:00Z"}},
		{"the day after", day(2, 0, 0), day(3, 0, 0), nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			got, err := cal.Events.List("primary").TimeMin(tc.tmin.Format(time.RFC3339)).
				TimeMax(tc.tmax.Format(time.RFC3339)).SingleEvents(true).OrderBy("startTime").Do()
			if err != nil {
				t.Fatalf("List: %v", err)
			}
			if diff := cmp.Diff(tc.want, summaries(got.Items)); diff != "" {
				t.Errorf("events (-want +got):\n%s", diff)
			}
		})
	}
	t.Run("orderBy startTime needs singleEvents", func(t *testing.T) {
		_, err := cal.Events.List("primary").OrderBy("startTime").Do()
		if got, want := googleCode(t, err), http.StatusBadRequest; got != want {
			t.Errorf("code = %d, want %d", got, want)
		}
	})
	t.Run("unknown calendar", func(t *testing.T) {
		_, err := cal.Events.List("nobody@example.com").Do()
		if got, want := googleCode(t, err), http.StatusNotFound; got != want {
			t.Errorf("code = %d, want %d", got, want)
		}
	})
	t.Run("attendees", func(t *testing.T) {
		got, err := cal.Events.List("primary").Q("1:1").Do()
		if err != nil || len(got.Items) != 1 {
			t.Fatalf("List q=1:1: %d items, err %v", len(got.Items), err)
		}
		if len(got.Items[0].Attendees) != 1 || got.Items[0].Attendees[0].Email != "bob@example.com" {
			t.Errorf("attendees = %+v, want bob@example.com", got.Items[0].Attendees)
		}
	})
}

func TestCalendarInsertAndDelete(t *testing.T) {
	e := newEnv(t)
	cal := e.calendar(t, e.connect(t, sim.ServiceGoogle, "alice@example.com", sim.ScopeCalendarEvents))

	ev, err := cal.Events.Insert("primary", &calendar.Event{
		Summary:   "Design review",
		Start:     &calendar.EventDateTime{DateTime: day(1, 15, 0).Format(time.RFC3339)},
		End:       &calendar.EventDateTime{DateTime: day(1, 15, 30).Format(time.RFC3339)},
		Attendees: []*calendar.EventAttendee{{Email: "bob@example.com"}},
	}).SendUpdates("all").Do()
	if err != nil {
		t.Fatalf("Insert: %v", err)
	}
	if ev.Id == "" || ev.Status != "confirmed" || ev.Creator.Email != "alice@example.com" {
		t.Errorf("inserted event id=%q status=%q creator=%q", ev.Id, ev.Status, ev.Creator.Email)
	}
	got, ok := e.w.Calendar().Event("primary", ev.Id)
	want := sim.Event{
		Calendar: "primary", ID: ev.Id, Summary: "Design review", Start: day(1, 15, 0), End: day(1, 15, 30),
		Attendees: []string{"bob@example.com"}, Creator: "alice@example.com", SendUpdates: "all",
		Status: "confirmed", Created: start,
	}
	if diff := cmp.Diff(want, got); !ok || diff != "" {
		t.Errorf("recorded event (-want +got):\n%s", diff)
	}

	for _, tc := range []struct {
		name string
		ev   *calendar.Event
	}{
		{"no end", &calendar.Event{Summary: "x", Start: &calendar.EventDateTime{DateTime: day(1, 8, 0).Format(time.RFC3339)}}},
		{"end before start", &calendar.Event{Summary: "x",
			Start: &calendar.EventDateTime{DateTime: day(1, 9, 0).Format(time.RFC3339)},
			End:   &calendar.EventDateTime{DateTime: day(1, 8, 0).Format(time.RFC3339)}}},
		{"bad attendee", &calendar.Event{Summary: "x",
			Start:     &calendar.EventDateTime{DateTime: day(1, 8, 0).Format(time.RFC3339)},
			End:       &calendar.EventDateTime{DateTime: day(1, 9, 0).Format(time.RFC3339)},
			Attendees: []*calendar.EventAttendee{{Email: "bob"}}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, err := cal.Events.Insert("primary", tc.ev).Do()
			if got, want := googleCode(t, err), http.StatusBadRequest; got != want {
				t.Errorf("code = %d, want %d", got, want)
			}
		})
	}
	if got, want := len(e.w.Calendar().Events("primary")), 5; got != want {
		t.Errorf("events after inserts = %d, want %d (4 seeded + 1)", got, want)
	}

	for _, tc := range []struct {
		name, id string
		want     int
	}{
		{"delete", ev.Id, 0},
		{"delete again", ev.Id, http.StatusGone},
		{"unknown", "nope", http.StatusNotFound},
	} {
		t.Run(tc.name, func(t *testing.T) {
			err := cal.Events.Delete("primary", tc.id).SendUpdates("all").Do()
			if got := googleCode(t, err); got != tc.want {
				t.Errorf("code = %d, want %d", got, tc.want)
			}
		})
	}
	if ev, _ := e.w.Calendar().Event("primary", ev.Id); ev.Status != "cancelled" {
		t.Errorf("deleted event status = %q, want cancelled", ev.Status)
	}
	if got, want := len(e.w.Calendar().Events("primary")), 4; got != want {
		t.Errorf("events after delete = %d, want %d", got, want)
	}
}

func TestCalendarFreeBusy(t *testing.T) {
	e := newEnv(t)
	cal := e.calendar(t, e.connect(t, sim.ServiceGoogle, "alice@example.com", sim.ScopeCalendarReadonly))
	// An overlapping event shows that busy periods are merged.
	writer := e.calendar(t, e.connect(t, sim.ServiceGoogle, "alice@example.com", sim.ScopeCalendar))
	if _, err := writer.Events.Insert("primary", &calendar.Event{
		Summary: "Overlap",
		Start:   &calendar.EventDateTime{DateTime: day(1, 14, 15).Format(time.RFC3339)},
		End:     &calendar.EventDateTime{DateTime: day(1, 15, 0).Format(time.RFC3339)},
	}).Do(); err != nil {
		t.Fatalf("Insert: %v", err)
	}
	got, err := cal.Freebusy.Query(&calendar.FreeBusyRequest{
		TimeMin: day(1, 9, 35).Format(time.RFC3339),
		TimeMax: day(1, 18, 0).Format(time.RFC3339),
		Items:   []*calendar.FreeBusyRequestItem{{Id: "primary"}, {Id: "ghost@example.com"}},
	}).Do()
	if err != nil {
		t.Fatalf("Query: %v", err)
	}
	var busy []string
	for _, b := range got.Calendars["primary"].Busy {
		busy = append(busy, b.Start+"/"+b.End)
	}
	want := []string{"2026-03-11T09:35:00Z/2026-03-11T09:45:00Z", "2026-03-11T14:00:00Z/2026-03-11T15:00:00Z"}
	if diff := cmp.Diff(want, busy); diff != "" {
		t.Errorf("busy (-want +got):\n%s", diff)
	}
	if errs := got.Calendars["ghost@example.com"].Errors; len(errs) != 1 || errs[0].Reason != "notFound" {
		t.Errorf("unknown calendar errors = %+v, want notFound", errs)
	}
}

func TestCalendarAuth(t *testing.T) {
	insert := func(cal *calendar.Service) error {
		_, err := cal.Events.Insert("primary", &calendar.Event{Summary: "x",
			Start: &calendar.EventDateTime{DateTime: day(1, 8, 0).Format(time.RFC3339)},
			End:   &calendar.EventDateTime{DateTime: day(1, 9, 0).Format(time.RFC3339)}}).Do()
		return err
	}
	list := func(cal *calendar.Service) error {
		_, err := cal.Events.List("primary").Do()
		return err
	}
	freeBusy := func(cal *calendar.Service) error {
		_, err := cal.Freebusy.Query(&calendar.FreeBusyRequest{TimeMin: day(1, 8, 0).Format(time.RFC3339), TimeMax: day(1, 18, 0).Format(time.RFC3339),
			Items: []*calendar.FreeBusyRequestItem{{Id: "primary"}}}).Do()
		return err
	}
	for _, tc := range []struct {
		name       string
		token      func(tb testing.TB, e *env) string
		op         func(*calendar.Service) error
		want       int
		wantReason string
	}{
		{"no token", func(tb testing.TB, e *env) string { return "" }, list, http.StatusUnauthorized, "authError"},
		{"github token", func(tb testing.TB, e *env) string { return e.connect(tb, sim.ServiceGitHub, "alice", sim.ScopeRepo) }, list, http.StatusUnauthorized, "authError"},
		{"expired", func(tb testing.TB, e *env) string {
			tok := e.connect(tb, sim.ServiceGoogle, "alice", sim.ScopeCalendar)
			e.clock.Advance(sim.DefaultAccessTTL + time.Minute)
			return tok
		}, list, http.StatusUnauthorized, "authError"},
		{"readonly cannot insert", func(tb testing.TB, e *env) string {
			return e.connect(tb, sim.ServiceGoogle, "alice", sim.ScopeCalendarEventsReadonly)
		}, insert, http.StatusForbidden, "insufficientPermissions"},
		{"freebusy scope cannot list", func(tb testing.TB, e *env) string {
			return e.connect(tb, sim.ServiceGoogle, "alice", sim.ScopeCalendarFreeBusy)
		}, list, http.StatusForbidden, "insufficientPermissions"},
		{"events scope inserts", func(tb testing.TB, e *env) string {
			return e.connect(tb, sim.ServiceGoogle, "alice", sim.ScopeCalendarEvents)
		}, insert, 0, ""},
		{"events scope cannot ask free/busy", func(tb testing.TB, e *env) string {
			return e.connect(tb, sim.ServiceGoogle, "alice", sim.ScopeCalendarEvents)
		}, freeBusy, http.StatusForbidden, "insufficientPermissions"},
		{"events free/busy scope asks free/busy", func(tb testing.TB, e *env) string {
			return e.connect(tb, sim.ServiceGoogle, "alice", sim.ScopeCalendarEventsFreeBusy)
		}, freeBusy, 0, ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e := newEnv(t)
			err := tc.op(e.calendar(t, tc.token(t, e)))
			if got := googleCode(t, err); got != tc.want {
				t.Fatalf("code = %d, want %d (%v)", got, tc.want, err)
			}
			if got := lastCall(t, e.w).Error; got != tc.wantReason {
				t.Errorf("recorded error = %q, want %q", got, tc.wantReason)
			}
			if got, want := len(e.w.Calendar().Events("primary")), 4; tc.want != 0 && got != want {
				t.Errorf("events = %d, want the %d seeded ones untouched", got, want)
			}
		})
	}
}

func TestCalendarErrors(t *testing.T) {
	e := newEnv(t)
	tok := e.connect(t, sim.ServiceGoogle, "alice", sim.ScopeCalendar)
	for _, tc := range []struct {
		name, method, path, body string
		want                     int
		wantBody                 string
	}{
		{"unknown route", "GET", "/calendar/v3/users/me/calendarList", "", http.StatusNotFound, `"reason":"notFound"`},
		{"bad json", "POST", "/calendar/v3/calendars/primary/events", "{", http.StatusBadRequest, `"reason":"parseError"`},
		{"bad timeMin", "GET", "/calendar/v3/calendars/primary/events?timeMin=tomorrow", "", http.StatusBadRequest, `"code":400`},
		{"freebusy without range", "POST", "/calendar/v3/freeBusy", "{}", http.StatusBadRequest, `"reason":"required"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			status, body := rawCall(t, e, tc.method, tc.path, tc.body, tok)
			if status != tc.want || !strings.Contains(body, tc.wantBody) {
				t.Errorf("got %d %s, want %d with %s", status, body, tc.want, tc.wantBody)
			}
		})
	}
}

func TestCalendarSeedFollowsLocation(t *testing.T) {
	loc := time.FixedZone("UTC+2", 2*60*60)
	now := time.Date(2026, time.March, 10, 23, 30, 0, 0, time.UTC) // already the 11th in loc
	w := sim.New(sim.Options{Now: func() time.Time { return now }, Location: loc})
	events := w.Calendar().Events("primary")
	if len(events) == 0 {
		t.Fatal("no seeded events")
	}
	if got, want := events[0].Start, time.Date(2026, time.March, 11, 9, 30, 0, 0, loc); !got.Equal(want) {
		t.Errorf("first event starts %v, want %v (today in the world's zone)", got, want)
	}
}
