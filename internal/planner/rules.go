package planner

import (
	"regexp"
	"strconv"
	"strings"
	"time"
)

// pattern is one way of saying one action. build returns the arguments, or
// nil and a hint for the person when the sentence has the right shape but
// cannot be planned.
type pattern struct {
	action string
	re     *regexp.Regexp
	build  func(m match) (map[string]any, string)
}

// match gives builders named access to a pattern's groups.
type match struct {
	re     *regexp.Regexp
	sub    []string
	quotes []string
	req    Request
}

// get returns the first non-empty group among names.
func (m match) get(names ...string) string {
	for _, n := range names {
		if i := m.re.SubexpIndex(n); i > 0 && m.sub[i] != "" {
			return m.sub[i]
		}
	}
	return ""
}

// quote returns the quoted string a placeholder group refers to.
func (m match) quote(names ...string) string {
	i, err := strconv.Atoi(m.get(names...))
	if err != nil || i >= len(m.quotes) {
		return ""
	}
	return strings.TrimSpace(m.quotes[i])
}

func (m match) repo() string { return strings.ToLower(m.get("repo")) }

func (m match) number() int {
	n, _ := strconv.Atoi(m.get("number"))
	return n
}

// channel normalizes "#deploys", "deploys channel" and "channel deploys"
// to "#deploys" (Slack channel names are lower case).
func (m match) channel() string {
	c := strings.ToLower(m.get("channel"))
	c = strings.TrimSpace(strings.ReplaceAll(c, "channel", ""))
	return "#" + strings.TrimPrefix(c, "#")
}

// Fragments the patterns are written with. Every pattern is matched against
// a normalized sentence (see normalize) without its article "the".
const (
	repoF = `(?P<repo>[A-Za-z0-9][\w.-]*/[\w.-]+)`
	prF   = `(?:(?:pr|pull[\s-]?request)\s*#?\s*|#)(?P<number>\d+)`
	inF   = `\s+(?:in|on|of|from|for)\s+`
	chanF = `(?P<channel>#[\w-]+|[\w-]+\s+channel|channel\s+#?[\w-]+)`
)

// q is a quoted string's placeholder, captured under name.
func q(name string) string { return placeholder + `(?P<` + name + `>\d+)` + placeholder }

func p(action, expr string, build func(match) (map[string]any, string)) pattern {
	return pattern{action: action, re: regexp.MustCompile(`(?i)^` + expr + `$`), build: build}
}

// patterns lists every sentence shape; the first that matches decides, so
// a more specific shape comes before a looser one of the same verb.
func patterns() []pattern {
	return []pattern{
		// GitHub.
		p("github.list_pull_requests",
			`(?:(?:list|show|get|find|what\s+are)(?:\s+me)?(?:\s+all)?\s+)?(?:(?P<state>open|closed|all)\s+)?(?:pull[\s-]?requests|prs|pulls)`+inF+repoF,
			func(m match) (map[string]any, string) {
				state := strings.ToLower(m.get("state"))
				if state == "" {
					state = "open"
				}
				return map[string]any{"repo": m.repo(), "state": state}, ""
			}),
		p("github.get_pull_request",
			`(?:show|get|view|describe|display|open|details\s+(?:of|for)|what's|what\s+is)(?:\s+me)?\s+`+prF+inF+repoF,
			func(m match) (map[string]any, string) {
				return map[string]any{"repo": m.repo(), "number": m.number()}, ""
			}),
		p("github.comment",
			`(?:comment|add\s+(?:a\s+)?comment|post\s+(?:a\s+)?comment|write\s+(?:a\s+)?comment)\s+`+q("body")+`\s+(?:on|to)\s+`+prF+inF+repoF,
			commentArgs),
		p("github.comment",
			`(?:comment|add\s+(?:a\s+)?comment|post\s+(?:a\s+)?comment)\s+(?:on|to)\s+`+prF+inF+repoF+`:?\s+(?:saying\s+)?`+q("body"),
			commentArgs),
		p("github.review",
			`approve\s+`+prF+inF+repoF+`(?::?\s+(?:with\s+|saying\s+)?`+q("body")+`)?`,
			reviewArgs("APPROVE")),
		p("github.review",
			`request\s+changes\s+(?:on|to|for|in)\s+`+prF+inF+repoF+`:?\s+(?:with\s+|saying\s+)?`+q("body"),
			reviewArgs("REQUEST_CHANGES")),
		p("github.review",
			`request\s+changes\s+`+q("body")+`\s+(?:on|to|for|in)\s+`+prF+inF+repoF,
			reviewArgs("REQUEST_CHANGES")),
		p("github.review",
			`request\s+changes\s+(?:on|to|for|in)\s+`+prF+inF+repoF,
			func(match) (map[string]any, string) {
				return nil, "Say what needs to change, e.g. \"request changes on PR 12 in acme/website: 'needs tests'\"."
			}),
		p("github.review",
			`review\s+`+prF+inF+repoF+`:?\s+(?:with\s+|saying\s+)?`+q("body"),
			reviewArgs("COMMENT")),
		p("github.create_issue",
			`(?:create|open|file|raise|add|new)(?:\s+(?:an?|new))*\s+issue:?\s+(?:called\s+|titled\s+|named\s+)?`+q("title")+`\s+(?:in|on|for)\s+`+repoF+`(?::?\s+(?:with\s+body\s+|saying\s+|body:?\s+)?`+q("body")+`)?`,
			issueArgs),
		p("github.create_issue",
			`(?:create|open|file|raise|add|new)(?:\s+(?:an?|new))*\s+issue\s+(?:in|on|for)\s+`+repoF+`:?\s+(?:called\s+|titled\s+|named\s+)?`+q("title")+`(?::?\s+(?:with\s+body\s+|saying\s+|body:?\s+)?`+q("body")+`)?`,
			issueArgs),
		p("github.merge_pull_request",
			`(?:(?P<method>squash|rebase)(?:\s+and)?\s+)?merge\s+`+prF+inF+repoF+`(?:\s+(?:with|using|by|via)\s+(?:a\s+)?(?P<method2>squash|rebase|merge)(?:\s+(?:commit|merge))?)?`,
			func(m match) (map[string]any, string) {
				method := strings.ToLower(m.get("method", "method2"))
				if method == "" {
					method = "merge"
				}
				return map[string]any{"repo": m.repo(), "number": m.number(), "method": method}, ""
			}),
		p("github.delete_branch",
			`(?:delete|remove)\s+branch\s+(?P<branch>[\w./-]+)`+inF+repoF,
			branchArgs),
		p("github.delete_branch",
			`(?:delete|remove)\s+(?P<branch>[\w./-]+)\s+branch`+inF+repoF,
			branchArgs),
		p("github.dispatch_workflow",
			`deploy\s+`+repoF+`(?:\s+(?:from|at)\s+(?P<ref>[\w./-]+))?\s+(?:to|on|in)\s+(?P<env>[\w-]+)(?:\s+(?:environment|env))?(?:\s+(?:from|at)\s+(?P<ref2>[\w./-]+))?`,
			func(m match) (map[string]any, string) {
				env := strings.ToLower(m.get("env"))
				switch env {
				case "prod", "prd", "live":
					env = "production"
				case "stage", "stg":
					env = "staging"
				}
				ref := m.get("ref", "ref2")
				if ref == "" {
					ref = "main"
				}
				return map[string]any{"repo": m.repo(), "workflow": "deploy.yml", "ref": ref, "environment": env}, ""
			}),

		// Calendar.
		p("calendar.list_events",
			`(?:what's|whats|what\s+is|what\s+have\s+i\s+got|what\s+do\s+i\s+have)(?:\s+on)?\s+(?:my\s+)?(?:calendar|schedule|agenda)(?P<rest>.*)`,
			listEventsArgs),
		p("calendar.list_events",
			`what\s+(?:meetings|events)\s+(?:do\s+i\s+have|have\s+i\s+got)(?P<rest>.*)`,
			listEventsArgs),
		p("calendar.list_events",
			`(?:(?:show|list|get|check)(?:\s+me)?\s+)?(?:my\s+)?(?:calendar|meetings|events|schedule|agenda)(?P<rest>(?:\s+(?:for|on))?(?:\s+(?:today|tonight|tomorrow|this\s+\w+|next\s+\w+|\w+day|mon|tue|tues|wed|thu|thur|thurs|fri|sat|sun))?)`,
			listEventsArgs),
		p("calendar.find_free_time",
			`find\s+(?:me\s+)?(?:a\s+)?(?:free\s+)?(?P<dur>`+durationExpr+`)(?:\s+(?:free\s+slot|free\s+time|of\s+free\s+time|free|slot|window|meeting\s+slot))?(?P<rest>.*)`,
			freeTimeArgs),
		p("calendar.find_free_time",
			`(?:find|when\s+am\s+i)\s+(?:me\s+)?(?:a\s+)?(?:free\s+(?:time|slot)|time\s+to\s+meet|free)(?P<rest>.*)`,
			freeTimeArgs),
		p("calendar.create_event",
			`(?:schedule|create|add|book|set\s+up|put)(?:\s+(?:an?|new))*(?:\s+(?:event|meeting|call))?:?\s+(?:called\s+|titled\s+)?`+q("summary")+`(?P<rest>.*)`,
			createEventArgs),
		p("calendar.delete_event",
			`(?:cancel|delete|remove)\s+(?:event|meeting)\s+(?:id\s+)?(?:(?P<id>[\w@.-]+)|`+q("qid")+`)`,
			func(m match) (map[string]any, string) {
				id := m.get("id")
				if id == "" {
					id = m.quote("qid")
				}
				if id == "" {
					return nil, ""
				}
				return map[string]any{"event_id": id}, ""
			}),

		// Slack.
		p("slack.list_channels",
			`(?:(?:list|show|get)(?:\s+me)?(?:\s+all)?(?:\s+(?:my|slack))?\s+channels|what\s+channels\s+(?:are\s+there|do\s+we\s+have|exist)|channels)`,
			func(match) (map[string]any, string) { return map[string]any{}, "" }),
		p("slack.post_message",
			`(?:post|send|say|write|tell)(?:\s+(?:a\s+)?message)?\s+`+q("text")+`\s+(?:to|in|on)\s+`+chanF,
			postArgs),
		p("slack.post_message",
			`(?:post|send|say|write)(?:\s+(?:a\s+)?message)?\s+(?:to|in|on)\s+`+chanF+`:?\s+`+q("text"),
			postArgs),
		p("slack.post_message",
			`tell\s+`+chanF+`:?\s+`+q("text"),
			postArgs),
		p("slack.archive_channel",
			`archive\s+`+chanF,
			func(m match) (map[string]any, string) {
				return map[string]any{"channel": m.channel()}, ""
			}),
	}
}

func commentArgs(m match) (map[string]any, string) {
	body := m.quote("body")
	if body == "" {
		return nil, "The comment is empty."
	}
	return map[string]any{"repo": m.repo(), "number": m.number(), "body": body}, ""
}

func reviewArgs(event string) func(match) (map[string]any, string) {
	return func(m match) (map[string]any, string) {
		args := map[string]any{"repo": m.repo(), "number": m.number(), "event": event}
		if body := m.quote("body"); body != "" {
			args["body"] = body
		} else if event != "APPROVE" {
			return nil, "The review needs a text."
		}
		return args, ""
	}
}

func issueArgs(m match) (map[string]any, string) {
	title := m.quote("title")
	if title == "" {
		return nil, "The issue needs a title."
	}
	args := map[string]any{"repo": m.repo(), "title": title}
	if body := m.quote("body"); body != "" {
		args["body"] = body
	}
	return args, ""
}

func branchArgs(m match) (map[string]any, string) {
	return map[string]any{"repo": m.repo(), "branch": m.get("branch")}, ""
}

func postArgs(m match) (map[string]any, string) {
	text := m.quote("text")
	if text == "" {
		return nil, "The message is empty."
	}
	return map[string]any{"channel": m.channel(), "text": text}, ""
}

func listEventsArgs(m match) (map[string]any, string) {
	s := parseSlots(m.get("rest"), m.req, "day")
	if s.leftover != "" {
		return nil, ""
	}
	return map[string]any{
		"calendar": "primary",
		"from":     rfc3339(s.day),
		"to":       rfc3339(s.day.AddDate(0, 0, 1)),
	}, ""
}

func freeTimeArgs(m match) (map[string]any, string) {
	s := parseSlots(m.get("rest"), m.req, "day", "duration", "with")
	if s.leftover != "" || s.hint != "" {
		return nil, s.hint
	}
	if d := m.get("dur"); d != "" {
		s.minutes, _ = parseDuration(d)
	}
	if s.minutes == 0 {
		return nil, "Say how long, e.g. \"find 30 minutes free tomorrow with bob@example.com\"."
	}
	from, to := s.day, s.day.AddDate(0, 0, 1)
	// Free time earlier today is of no use: search from now, to the minute.
	if now := m.req.Now.In(m.req.Location); now.After(from) && now.Before(to) {
		from = now.Add(time.Minute - 1).Truncate(time.Minute)
	}
	args := map[string]any{"from": rfc3339(from), "to": rfc3339(to), "duration_minutes": s.minutes}
	if len(s.emails) > 0 {
		args["attendees"] = s.emails
	}
	return args, ""
}

func createEventArgs(m match) (map[string]any, string) {
	summary := m.quote("summary")
	s := parseSlots(m.get("rest"), m.req, "day", "time", "duration", "with")
	switch {
	case s.hint != "":
		return nil, s.hint
	case s.leftover != "" || summary == "":
		return nil, ""
	case !s.hasTime:
		return nil, "Say when, e.g. \"schedule 'Design review' tomorrow at 3pm for 30 minutes with bob@example.com\"."
	}
	if s.minutes == 0 {
		s.minutes = 30
	}
	// time.Date in the person's zone: a wall-clock time, right on both
	// sides of a daylight-saving change.
	start := time.Date(s.day.Year(), s.day.Month(), s.day.Day(), s.hour, s.minute, 0, 0, s.day.Location())
	args := map[string]any{
		"summary": summary,
		"start":   rfc3339(start),
		"end":     rfc3339(start.Add(time.Duration(s.minutes) * time.Minute)),
	}
	if len(s.emails) > 0 {
		args["attendees"] = s.emails
	}
	return args, ""
}
