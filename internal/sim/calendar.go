package sim

import (
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"time"
)

// Google Calendar OAuth scopes the simulated API checks.
const (
	ScopeCalendar               = "https://www.googleapis.com/auth/calendar"
	ScopeCalendarReadonly       = "https://www.googleapis.com/auth/calendar.readonly"
	ScopeCalendarEvents         = "https://www.googleapis.com/auth/calendar.events"
	ScopeCalendarEventsReadonly = "https://www.googleapis.com/auth/calendar.events.readonly"
	ScopeCalendarFreeBusy       = "https://www.googleapis.com/auth/calendar.freebusy"
	ScopeCalendarEventsFreeBusy = "https://www.googleapis.com/auth/calendar.events.freebusy"
)

// Which scopes let a token do what, as Google's discovery document for
// Calendar v3 lists them per method (events.list, events.insert and
// events.delete, freebusy.query): calendar.events does not let a token
// ask free/busy. (events.list also takes the free/busy scopes, for free/busy
// fields only; the simulation refuses them there.)
var (
	calendarReadScopes  = []string{ScopeCalendar, ScopeCalendarReadonly, ScopeCalendarEvents, ScopeCalendarEventsReadonly}
	calendarWriteScopes = []string{ScopeCalendar, ScopeCalendarEvents}
	freeBusyScopes      = []string{ScopeCalendar, ScopeCalendarReadonly, ScopeCalendarFreeBusy, ScopeCalendarEventsFreeBusy}
)

// PrimaryCalendar is the calendar ID of the one simulated calendar; every principal's "primary"
// resolves to it (the sim models one person's calendar).
const PrimaryCalendar = "primary"

// Event is a simulated calendar event.
type Event struct {
	Calendar    string
	ID          string
	Summary     string
	Description string
	Location    string
	Start, End  time.Time
	AllDay      bool
	Attendees   []string // e-mail addresses
	Creator     string
	SendUpdates string // the sendUpdates parameter of the insert or delete that touched it last
	Status      string // confirmed or cancelled
	Created     time.Time
}

type calendarData struct {
	id      string
	summary string
	events  []*Event // insertion order
}

type calendarState struct {
	loc       *time.Location
	calendars map[string]*calendarData
}

func (s *calendarState) init(loc *time.Location) {
	s.loc = loc
	s.calendars = map[string]*calendarData{PrimaryCalendar: {id: PrimaryCalendar, summary: "Demo calendar"}}
}

// seedCalendar puts events today and tomorrow, in Options.Location, around Options.Now.
func (w *World) seedCalendar() {
	now := w.now().In(w.loc)
	day := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, w.loc)
	at := func(d, h, m int) time.Time {
		return day.AddDate(0, 0, d).Add(time.Duration(h)*time.Hour + time.Duration(m)*time.Minute)
	}
	add := func(summary string, start time.Time, minutes int, attendees ...string) {
		w.cal.calendars[PrimaryCalendar].events = append(w.cal.calendars[PrimaryCalendar].events, &Event{
			Calendar: PrimaryCalendar, ID: w.eventID(), Summary: summary, Start: start,
			End: start.Add(time.Duration(minutes) * time.Minute), Attendees: attendees,
			Creator: "demo@acme.test", Status: "confirmed", Created: now.AddDate(0, 0, -7),
		})
	}
	add("Standup", at(0, 9, 30), 15, "bob@example.com", "carol@example.com")
	add("Payments sync", at(0, 11, 0), 60, "bob@example.com")
	add("Standup", at(1, 9, 30), 15, "bob@example.com", "carol@example.com")
	add("1:1 with Bob", at(1, 14, 0), 30, "bob@example.com")
}

// eventID returns a deterministic ID in Google's alphabet (base32hex, lowercase); w.mu must be held
// or the world not yet shared.
func (w *World) eventID() string { return fmt.Sprintf("simevt%04d", w.nextID()) }

// CalendarView reads the simulated calendar for assertions. Its results are copies.
type CalendarView struct{ w *World }

// Calendar returns a read-only view of the simulated Google Calendar.
func (w *World) Calendar() CalendarView { return CalendarView{w} }

// Events returns the calendar's confirmed events ordered by start time.
func (v CalendarView) Events(calendarID string) []Event {
	v.w.mu.Lock()
	defer v.w.mu.Unlock()
	c := v.w.cal.calendars[calendarID]
	if c == nil {
		return nil
	}
	var out []Event
	for _, e := range c.events {
		if e.Status == "confirmed" {
			out = append(out, copyEvent(e))
		}
	}
	slices.SortStableFunc(out, func(a, b Event) int { return a.Start.Compare(b.Start) })
	return out
}

// Event returns one event, cancelled (deleted) ones included.
func (v CalendarView) Event(calendarID, eventID string) (Event, bool) {
	v.w.mu.Lock()
	defer v.w.mu.Unlock()
	if e := v.w.cal.find(calendarID, eventID); e != nil {
		return copyEvent(e), true
	}
	return Event{}, false
}

func (s *calendarState) find(calendarID, eventID string) *Event {
	c := s.calendars[calendarID]
	if c == nil {
		return nil
	}
	for _, e := range c.events {
		if e.ID == eventID {
			return e
		}
	}
	return nil
}

func copyEvent(e *Event) Event {
	c := *e
	c.Attendees = slices.Clone(e.Attendees)
	return c
}

// googleError is the Google APIs error body that googleapi.CheckResponse decodes.
type googleError struct {
	Error googleErrorBody `json:"error"`
}

type googleErrorBody struct {
	Code    int               `json:"code"`
	Message string            `json:"message"`
	Errors  []googleErrorItem `json:"errors"`
	Status  string            `json:"status"`
}

type googleErrorItem struct {
	Message      string `json:"message"`
	Domain       string `json:"domain"`
	Reason       string `json:"reason"`
	Location     string `json:"location,omitempty"`
	LocationType string `json:"locationType,omitempty"`
}

func gFail(rw http.ResponseWriter, n *note, code int, status, reason, msg string) {
	n.err = reason
	writeJSON(rw, code, googleError{Error: googleErrorBody{
		Code: code, Message: msg, Status: status,
		Errors: []googleErrorItem{{Message: msg, Domain: "global", Reason: reason}},
	}})
}

func gBadRequest(rw http.ResponseWriter, n *note, msg string) {
	gFail(rw, n, http.StatusBadRequest, "INVALID_ARGUMENT", "badRequest", msg)
}

func gNotFound(rw http.ResponseWriter, n *note) {
	gFail(rw, n, http.StatusNotFound, "NOT_FOUND", "notFound", "Not Found")
}

// calendarRoute authenticates a Calendar request and checks its scopes, answering as Google does
// (401 UNAUTHENTICATED, 403 insufficientPermissions). The handler runs with w.mu held.
func (w *World) calendarRoute(scopes []string, h func(rw http.ResponseWriter, r *http.Request, n *note, g *grant)) noteHandler {
	return func(rw http.ResponseWriter, r *http.Request, n *note) {
		w.mu.Lock()
		defer w.mu.Unlock()
		g, why := w.authenticate(ServiceGoogle, bearer(r))
		if why != "" {
			rw.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/", error="invalid_token"`)
			n.err = "authError"
			msg := "Request had invalid authentication credentials. Expected OAuth 2 access token, login cookie or other valid authentication credential."
			if why == authMissing {
				msg = "Request is missing required authentication credential. Expected OAuth 2 access token, login cookie or other valid authentication credential."
			}
			writeJSON(rw, http.StatusUnauthorized, googleError{Error: googleErrorBody{
				Code: http.StatusUnauthorized, Message: msg, Status: "UNAUTHENTICATED",
				Errors: []googleErrorItem{{Message: "Invalid Credentials", Domain: "global", Reason: "authError",
					Location: "Authorization", LocationType: "header"}},
			}})
			return
		}
		n.principal = g.Principal
		if !hasScope(g.Scopes, scopes...) {
			rw.Header().Set("WWW-Authenticate", `Bearer realm="https://accounts.google.com/", error="insufficient_scope", scope="`+strings.Join(scopes, " ")+`"`)
			n.err = "insufficientPermissions"
			writeJSON(rw, http.StatusForbidden, googleError{Error: googleErrorBody{
				Code: http.StatusForbidden, Message: "Request had insufficient authentication scopes.", Status: "PERMISSION_DENIED",
				Errors: []googleErrorItem{{Message: "Insufficient Permission", Domain: "global", Reason: "insufficientPermissions"}},
			}})
			return
		}
		h(rw, r, n, g)
	}
}

func (w *World) routeCalendar(mux *http.ServeMux) {
	const base = "/calendar/v3"
	handle := func(pattern string, h noteHandler) { mux.Handle(pattern, w.recorded(ServiceGoogle, h)) }
	handle("GET "+base+"/calendars/{calendarId}/events", w.calendarRoute(calendarReadScopes, w.calListEvents))
	handle("POST "+base+"/calendars/{calendarId}/events", w.calendarRoute(calendarWriteScopes, w.calInsertEvent))
	handle("DELETE "+base+"/calendars/{calendarId}/events/{eventId}", w.calendarRoute(calendarWriteScopes, w.calDeleteEvent))
	handle("POST "+base+"/freeBusy", w.calendarRoute(freeBusyScopes, w.calFreeBusy))
	handle(base+"/", func(rw http.ResponseWriter, r *http.Request, n *note) { gNotFound(rw, n) })
}

// JSON shapes of calendar/v3.

type eventTimeJSON struct {
	Date     string `json:"date,omitempty"`
	DateTime string `json:"dateTime,omitempty"`
	TimeZone string `json:"timeZone,omitempty"`
}

type personJSON struct {
	Email          string `json:"email"`
	ResponseStatus string `json:"responseStatus,omitempty"`
	Self           bool   `json:"self,omitempty"`
}

type eventJSON struct {
	Kind        string        `json:"kind"`
	ID          string        `json:"id"`
	Etag        string        `json:"etag"`
	Status      string        `json:"status"`
	HTMLLink    string        `json:"htmlLink"`
	ICalUID     string        `json:"iCalUID"`
	Created     string        `json:"created"`
	Updated     string        `json:"updated"`
	Summary     string        `json:"summary,omitempty"`
	Description string        `json:"description,omitempty"`
	Location    string        `json:"location,omitempty"`
	Creator     personJSON    `json:"creator"`
	Organizer   personJSON    `json:"organizer"`
	Start       eventTimeJSON `json:"start"`
	End         eventTimeJSON `json:"end"`
	Attendees   []personJSON  `json:"attendees,omitempty"`
	EventType   string        `json:"eventType"`
}

func (w *World) eventJSON(e *Event) eventJSON {
	tm := func(t time.Time) eventTimeJSON {
		if e.AllDay {
			return eventTimeJSON{Date: t.In(w.loc).Format(time.DateOnly)}
		}
		return eventTimeJSON{DateTime: t.In(w.loc).Format(time.RFC3339), TimeZone: w.loc.String()}
	}
	out := eventJSON{
		Kind: "calendar#event", ID: e.ID, Etag: fmt.Sprintf(`"%d"`, e.Created.UnixMilli()), Status: e.Status,
		HTMLLink: "https://www.google.com/calendar/event?eid=" + e.ID, ICalUID: e.ID + "@google.com",
		Created: e.Created.UTC().Format(time.RFC3339Nano), Updated: e.Created.UTC().Format(time.RFC3339Nano),
		Summary: e.Summary, Description: e.Description, Location: e.Location,
		Creator:   personJSON{Email: e.Creator, Self: true},
		Organizer: personJSON{Email: e.Creator, Self: true},
		Start:     tm(e.Start), End: tm(e.End), EventType: "default",
	}
	for _, a := range e.Attendees {
		out.Attendees = append(out.Attendees, personJSON{Email: a, ResponseStatus: "needsAction"})
	}
	return out
}

// googleEmail is the address the sim shows for a principal: the principal itself when it looks
// like one, otherwise a made-up address in the demo domain.
func googleEmail(principal string) string {
	if strings.Contains(principal, "@") {
		return principal
	}
	local := strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '-' {
			return r
		}
		if r >= 'A' && r <= 'Z' {
			return r + 'a' - 'A'
		}
		return '.'
	}, principal)
	return local + "@acme.test"
}

func parseRFC3339(s string) (time.Time, error) { return time.Parse(time.RFC3339, s) }

func (w *World) calListEvents(rw http.ResponseWriter, r *http.Request, n *note, g *grant) {
	c := w.cal.calendars[r.PathValue("calendarId")]
	if c == nil {
		gNotFound(rw, n)
		return
	}
	q := r.URL.Query()
	var tmin, tmax time.Time
	var err error
	if s := q.Get("timeMin"); s != "" {
		if tmin, err = parseRFC3339(s); err != nil {
			gBadRequest(rw, n, "Bad Request")
			return
		}
	}
	if s := q.Get("timeMax"); s != "" {
		if tmax, err = parseRFC3339(s); err != nil {
			gBadRequest(rw, n, "Bad Request")
			return
		}
	}
	if !tmin.IsZero() && !tmax.IsZero() && !tmax.After(tmin) {
		gBadRequest(rw, n, "The specified time range is empty.")
		return
	}
	orderBy := q.Get("orderBy")
	if orderBy == "startTime" && q.Get("singleEvents") != "true" {
		gFail(rw, n, http.StatusBadRequest, "INVALID_ARGUMENT", "invalid",
			"The requested ordering is not available for the particular query.")
		return
	}
	if orderBy != "" && orderBy != "startTime" && orderBy != "updated" {
		gBadRequest(rw, n, "Invalid value for orderBy")
		return
	}
	limit := 250
	if s := q.Get("maxResults"); s != "" {
		if limit, err = strconv.Atoi(s); err != nil || limit < 1 {
			gBadRequest(rw, n, "Invalid value for maxResults")
			return
		}
	}
	showDeleted := q.Get("showDeleted") == "true"
	text := strings.ToLower(q.Get("q"))
	var hits []*Event
	for _, e := range c.events {
		switch {
		case e.Status == "cancelled" && !showDeleted,
			!tmin.IsZero() && !e.End.After(tmin), // timeMin bounds the end, as Google does
			!tmax.IsZero() && !e.Start.Before(tmax),
			text != "" && !strings.Contains(strings.ToLower(e.Summary+" "+e.Description), text):
			continue
		}
		hits = append(hits, e)
	}
	if orderBy == "startTime" {
		slices.SortStableFunc(hits, func(a, b *Event) int { return a.Start.Compare(b.Start) })
	}
	if len(hits) > limit {
		hits = hits[:limit]
	}
	items := make([]eventJSON, 0, len(hits))
	for _, e := range hits {
		items = append(items, w.eventJSON(e))
	}
	writeJSON(rw, http.StatusOK, map[string]any{
		"kind":             "calendar#events",
		"etag":             fmt.Sprintf(`"p%d"`, len(c.events)),
		"summary":          googleEmail(g.Principal),
		"updated":          w.now().UTC().Format(time.RFC3339Nano),
		"timeZone":         w.loc.String(),
		"accessRole":       "owner",
		"defaultReminders": []any{},
		"items":            items,
	})
}

// parseEventTime reads an event start or end: a dateTime with offset, a dateTime without one plus
// a timeZone, or an all-day date.
func (w *World) parseEventTime(t eventTimeJSON) (time.Time, bool, error) {
	switch {
	case t.DateTime != "":
		if v, err := time.Parse(time.RFC3339, t.DateTime); err == nil {
			return v, false, nil
		}
		if t.TimeZone == "" {
			return time.Time{}, false, fmt.Errorf("dateTime without offset needs a timeZone")
		}
		loc, err := time.LoadLocation(t.TimeZone)
		if err != nil {
			return time.Time{}, false, fmt.Errorf("invalid timeZone: %w", err)
		}
		v, err := time.ParseInLocation("2006-01-02T15:04:05", t.DateTime, loc)
		return v, false, err
	case t.Date != "":
		v, err := time.ParseInLocation(time.DateOnly, t.Date, w.loc)
		return v, true, err
	}
	return time.Time{}, false, fmt.Errorf("missing time")
}

func (w *World) calInsertEvent(rw http.ResponseWriter, r *http.Request, n *note, g *grant) {
	c := w.cal.calendars[r.PathValue("calendarId")]
	if c == nil {
		gNotFound(rw, n)
		return
	}
	var in struct {
		Summary     string         `json:"summary"`
		Description string         `json:"description"`
		Location    string         `json:"location"`
		Start       *eventTimeJSON `json:"start"`
		End         *eventTimeJSON `json:"end"`
		Attendees   []personJSON   `json:"attendees"`
	}
	if err := decodeJSON(r, &in); err != nil {
		gFail(rw, n, http.StatusBadRequest, "INVALID_ARGUMENT", "parseError", "Parse Error")
		return
	}
	if in.Start == nil {
		gFail(rw, n, http.StatusBadRequest, "INVALID_ARGUMENT", "required", "Missing start time.")
		return
	}
	if in.End == nil {
		gFail(rw, n, http.StatusBadRequest, "INVALID_ARGUMENT", "required", "Missing end time.")
		return
	}
	start, allDay, err1 := w.parseEventTime(*in.Start)
	end, allDayEnd, err2 := w.parseEventTime(*in.End)
	switch {
	case err1 != nil || err2 != nil || allDay != allDayEnd:
		gBadRequest(rw, n, "Invalid start or end time.")
		return
	case !end.After(start):
		gFail(rw, n, http.StatusBadRequest, "INVALID_ARGUMENT", "timeRangeEmpty", "The specified time range is empty.")
		return
	}
	sendUpdates := r.URL.Query().Get("sendUpdates")
	if sendUpdates != "" && sendUpdates != "all" && sendUpdates != "externalOnly" && sendUpdates != "none" {
		gBadRequest(rw, n, "Invalid value for sendUpdates")
		return
	}
	e := &Event{
		Calendar: c.id, ID: w.eventID(), Summary: in.Summary, Description: in.Description,
		Location: in.Location, Start: start, End: end, AllDay: allDay, Creator: googleEmail(g.Principal),
		SendUpdates: sendUpdates, Status: "confirmed", Created: w.now(),
	}
	for _, a := range in.Attendees {
		if !strings.Contains(a.Email, "@") {
			gFail(rw, n, http.StatusBadRequest, "INVALID_ARGUMENT", "invalid", "Invalid attendee email.")
			return
		}
		e.Attendees = append(e.Attendees, a.Email)
	}
	c.events = append(c.events, e)
	writeJSON(rw, http.StatusOK, w.eventJSON(e))
}

func (w *World) calDeleteEvent(rw http.ResponseWriter, r *http.Request, n *note, g *grant) {
	e := w.cal.find(r.PathValue("calendarId"), r.PathValue("eventId"))
	switch {
	case e == nil:
		gNotFound(rw, n)
		return
	case e.Status == "cancelled":
		gFail(rw, n, http.StatusGone, "NOT_FOUND", "deleted", "Resource has been deleted")
		return
	}
	e.Status = "cancelled"
	e.SendUpdates = r.URL.Query().Get("sendUpdates")
	rw.WriteHeader(http.StatusNoContent)
}

type busyJSON struct {
	Start string `json:"start"`
	End   string `json:"end"`
}

func (w *World) calFreeBusy(rw http.ResponseWriter, r *http.Request, n *note, g *grant) {
	var in struct {
		TimeMin string `json:"timeMin"`
		TimeMax string `json:"timeMax"`
		Items   []struct {
			ID string `json:"id"`
		} `json:"items"`
	}
	if err := decodeJSON(r, &in); err != nil {
		gFail(rw, n, http.StatusBadRequest, "INVALID_ARGUMENT", "parseError", "Parse Error")
		return
	}
	if in.TimeMin == "" || in.TimeMax == "" {
		gFail(rw, n, http.StatusBadRequest, "INVALID_ARGUMENT", "required", "Required")
		return
	}
	tmin, err1 := parseRFC3339(in.TimeMin)
	tmax, err2 := parseRFC3339(in.TimeMax)
	if err1 != nil || err2 != nil {
		gBadRequest(rw, n, "Bad Request")
		return
	}
	if !tmax.After(tmin) {
		gBadRequest(rw, n, "The specified time range is empty.")
		return
	}
	cals := map[string]any{}
	for _, item := range in.Items {
		c := w.cal.calendars[item.ID]
		if c == nil {
			cals[item.ID] = map[string]any{
				"busy":   []busyJSON{},
				"errors": []map[string]string{{"domain": "global", "reason": "notFound"}},
			}
			continue
		}
		cals[item.ID] = map[string]any{"busy": busyIntervals(c.events, tmin, tmax)}
	}
	writeJSON(rw, http.StatusOK, map[string]any{
		"kind":      "calendar#freeBusy",
		"timeMin":   tmin.UTC().Format(time.RFC3339),
		"timeMax":   tmax.UTC().Format(time.RFC3339),
		"calendars": cals,
	})
}

// busyIntervals clips the confirmed events to [tmin, tmax) and merges overlaps, like Google's
// free/busy answer (in UTC).
func busyIntervals(events []*Event, tmin, tmax time.Time) []busyJSON {
	type span struct{ s, e time.Time }
	var spans []span
	for _, e := range events {
		if e.Status != "confirmed" || !e.End.After(tmin) || !e.Start.Before(tmax) {
			continue
		}
		spans = append(spans, span{s: later(e.Start, tmin), e: earlier(e.End, tmax)})
	}
	slices.SortFunc(spans, func(a, b span) int { return a.s.Compare(b.s) })
	var merged []span
	for _, s := range spans {
		if k := len(merged) - 1; k >= 0 && !s.s.After(merged[k].e) {
			merged[k].e = later(merged[k].e, s.e)
			continue
		}
		merged = append(merged, s)
	}
	out := make([]busyJSON, 0, len(merged))
	for _, s := range merged {
		out = append(out, busyJSON{Start: s.s.UTC().Format(time.RFC3339), End: s.e.UTC().Format(time.RFC3339)})
	}
	return out
}

func later(a, b time.Time) time.Time {
	if a.After(b) {
		return a
	}
	return b
}

func earlier(a, b time.Time) time.Time {
	if a.Before(b) {
		return a
	}
	return b
}
