package planner

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Slots are the order-free parts of a calendar sentence: a day, a clock
// time, a duration and attendees. Each is cut out of the remainder of the
// sentence; whatever is left must be empty, so that words the planner does
// not understand ("every week") are never silently dropped.
var (
	daySlot  = regexp.MustCompile(`(?i)(?:^|\s)(?:(?:for|on)\s+)?(?:(today|tonight|tomorrow)|(?:(?:this|next)\s+)?(monday|tuesday|wednesday|thursday|friday|saturday|sunday|mon|tues|tue|wed|thurs|thur|thu|fri|sat|sun))(?:\s|$)`)
	timeSlot = regexp.MustCompile(`(?i)(?:^|\s)at\s+(?:(noon|midday|midnight)|(\d{1,2})(?::(\d{2}))?\s*(am|pm|a\.m|p\.m)?\.?)(?:\s|$)`)
	durSlot  = regexp.MustCompile(`(?i)(?:^|\s)for\s+(` + durationExpr + `)(?:\s|$)`)
	withSlot = regexp.MustCompile(`(?i)(?:^|\s)with\s+(` + emailExpr + `(?:\s*(?:,\s*and|,|and)\s*` + emailExpr + `)*)(?:\s|$)`)
	emailRe  = regexp.MustCompile(emailExpr)
	durRe    = regexp.MustCompile(`(?i)^(?:(\d+)\s*(minutes?|mins?|m|hours?|hrs?|h)|(an?|one)\s+hour|(half\s+an?)\s+hour|(an?\s+)?hour\s+and\s+a\s+half)$`)
)

const (
	emailExpr = `[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}`
	// The longest phrase comes first: alternation takes the first that fits.
	durationExpr = `(?:an?\s+)?hour\s+and\s+a\s+half|\d+\s*(?:minutes?|mins?|m|hours?|hrs?|h)|(?:an?|one)\s+hour|half\s+an?\s+hour`
)

var weekdays = map[string]time.Weekday{
	"sunday": time.Sunday, "sun": time.Sunday,
	"monday": time.Monday, "mon": time.Monday,
	"tuesday": time.Tuesday, "tues": time.Tuesday, "tue": time.Tuesday,
	"wednesday": time.Wednesday, "wed": time.Wednesday,
	"thursday": time.Thursday, "thurs": time.Thursday, "thur": time.Thursday, "thu": time.Thursday,
	"friday": time.Friday, "fri": time.Friday,
	"saturday": time.Saturday, "sat": time.Saturday,
}

// slots is what parseSlots found; a zero field means "not said".
type slots struct {
	day      time.Time // midnight of the day, in the person's zone
	hasDay   bool
	hour     int
	minute   int
	hasTime  bool
	minutes  int
	emails   []string
	leftover string
	hint     string // why the sentence was refused, when it was
}

// parseSlots cuts the slots out of rest. allow lists the ones the caller
// accepts ("day", "time", "duration", "with").
func parseSlots(rest string, req Request, allow ...string) slots {
	var s slots
	has := func(name string) bool {
		for _, a := range allow {
			if a == name {
				return true
			}
		}
		return false
	}
	cut := func(re *regexp.Regexp) []string {
		loc := re.FindStringSubmatchIndex(rest)
		if loc == nil {
			return nil
		}
		sub := make([]string, len(loc)/2)
		for i := range sub {
			if loc[2*i] >= 0 {
				sub[i] = rest[loc[2*i]:loc[2*i+1]]
			}
		}
		rest = rest[:loc[0]] + " " + rest[loc[1]:]
		return sub
	}
	if has("with") {
		if sub := cut(withSlot); sub != nil {
			for _, e := range emailRe.FindAllString(sub[1], -1) {
				s.emails = append(s.emails, strings.ToLower(e))
			}
		}
	}
	if has("duration") {
		if sub := cut(durSlot); sub != nil {
			s.minutes, _ = parseDuration(sub[1])
		}
	}
	if has("time") {
		if sub := cut(timeSlot); sub != nil {
			h, m, ok := clock(sub[1], sub[2], sub[3], sub[4])
			if !ok {
				s.hint = "Say the time with am/pm or as 24-hour hh:mm, e.g. \"at 3pm\" or \"at 15:00\"."
				return s
			}
			s.hour, s.minute, s.hasTime = h, m, true
		}
	}
	if has("day") {
		if sub := cut(daySlot); sub != nil {
			s.day, s.hasDay = resolveDay(req, strings.ToLower(sub[1]), strings.ToLower(sub[2])), true
		}
	}
	if !s.hasDay {
		s.day = resolveDay(req, "today", "")
	}
	s.leftover = strings.TrimSpace(rest)
	return s
}

// resolveDay returns midnight of the named day in the person's zone.
func resolveDay(req Request, rel, weekday string) time.Time {
	now := req.Now.In(req.Location)
	today := time.Date(now.Year(), now.Month(), now.Day(), 0, 0, 0, 0, req.Location)
	switch rel {
	case "today", "tonight":
		return today
	case "tomorrow":
		return today.AddDate(0, 0, 1)
	}
	// The next such day strictly after today (see the package doc).
	ahead := (int(weekdays[weekday]) - int(today.Weekday()) + 7) % 7
	if ahead == 0 {
		ahead = 7
	}
	return today.AddDate(0, 0, ahead)
}

// clock reads the parts of timeSlot. A bare hour without am/pm and without
// minutes is refused: "at 3" is more likely 15:00 than 03:00, and guessing
// wrong books a meeting in the night.
func clock(named, hour, minute, ampm string) (int, int, bool) {
	switch strings.ToLower(named) {
	case "noon", "midday":
		return 12, 0, true
	case "midnight":
		return 0, 0, true
	}
	h, err := strconv.Atoi(hour)
	if err != nil {
		return 0, 0, false
	}
	m := 0
	if minute != "" {
		if m, err = strconv.Atoi(minute); err != nil || m > 59 {
			return 0, 0, false
		}
	}
	switch strings.ToLower(strings.ReplaceAll(ampm, ".", "")) {
	case "am":
		if h < 1 || h > 12 {
			return 0, 0, false
		}
		return h % 12, m, true
	case "pm":
		if h < 1 || h > 12 {
			return 0, 0, false
		}
		return h%12 + 12, m, true
	}
	if minute == "" || h > 23 {
		return 0, 0, false
	}
	return h, m, true
}

// parseDuration reads "30 minutes", "1 hour", "2h", "an hour", "half an
// hour", "an hour and a half" as minutes.
func parseDuration(s string) (int, bool) {
	sub := durRe.FindStringSubmatch(strings.TrimSpace(s))
	switch {
	case sub == nil:
		return 0, false
	case sub[1] != "":
		n, err := strconv.Atoi(sub[1])
		if err != nil || n <= 0 || n > 24*60 {
			return 0, false
		}
		if strings.HasPrefix(strings.ToLower(sub[2]), "h") {
			n *= 60
		}
		if n > 24*60 {
			return 0, false
		}
		return n, true
	case sub[3] != "":
		return 60, true
	case sub[4] != "":
		return 30, true
	default:
		return 90, true
	}
}

func rfc3339(t time.Time) string { return t.Format(time.RFC3339) }
