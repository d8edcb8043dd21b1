package planner

import (
	"regexp"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Quoted strings are lifted out of the text before any pattern runs and
// replaced by a placeholder "\x00<index>\x00", so that their content keeps
// its case and punctuation, and words inside them ("and then", "the") are
// never mistaken for grammar.
const placeholder = "\x00"

var (
	// Slack writes <mailto:a@b.c|a@b.c>, <#C123|general> and <https://x|x>.
	slackLink = regexp.MustCompile(`<(mailto:|#|https?://)([^>|]*)(?:\|([^>]*))?>`)
	// A leading mention: Slack's <@U123> or <@U123|name>, or a typed @agenthub.
	leadingMention = regexp.MustCompile(`^\s*(?:<@[A-Za-z0-9]+(?:\|[^>]*)?>|@[\w.-]+)[\s:,]*`)
	andThen        = regexp.MustCompile(`(?i)\s+and\s+then\s+`)
	trailingPunct  = regexp.MustCompile(`[\s.!?;,]+$`)
	politeLead     = regexp.MustCompile(`(?i)^(?:(?:please|pls|kindly|(?:can|could|would|will)\s+you|hey|ok|okay)[\s,]+)+`)
	politeTrail    = regexp.MustCompile(`(?i)[\s,]+(?:please|pls|thanks|thank\s+you)$`)
	article        = regexp.MustCompile(`(?i)(^|\s)the\s+`)
	spaces         = regexp.MustCompile(`\s+`)
	// owner/repo#7 is GitHub's own shorthand; rewrite it into the words
	// the patterns read.
	repoHash = regexp.MustCompile(`([A-Za-z0-9][\w.-]*/[\w.-]+)#(\d+)`)
)

var slackEntities = strings.NewReplacer("&lt;", "<", "&gt;", ">", "&amp;", "&")

// prepare undoes Slack's formatting, drops a leading mention and lifts
// quoted strings out of the text.
func prepare(text string) (string, []string) {
	text = slackLink.ReplaceAllStringFunc(text, func(s string) string {
		sub := slackLink.FindStringSubmatch(s)
		kind, target, label := sub[1], sub[2], sub[3]
		switch {
		case kind == "#" && label != "":
			return "#" + label
		case kind == "#":
			return "#" + target
		case label != "":
			return label
		case kind == "mailto:":
			return target
		default:
			return kind + target
		}
	})
	for {
		loc := leadingMention.FindStringIndex(text)
		if loc == nil || loc[1] == 0 {
			break
		}
		text = text[loc[1]:]
	}
	text = slackEntities.Replace(text)
	return extractQuotes(text)
}

// extractQuotes replaces '…', "…", ‘…’ and “…” with placeholders. An
// apostrophe inside a word ("what's") opens nothing: a single quote opens
// only at the start or after a space or ':', '(' or ',', and closes only
// before the end, a space or punctuation. An unterminated quote is left as
// text.
func extractQuotes(text string) (string, []string) {
	var (
		out    strings.Builder
		quotes []string
	)
	prev := rune(' ')
	for i := 0; i < len(text); {
		r, size := utf8.DecodeRuneInString(text[i:])
		closers := openerOf(r, prev)
		if closers != "" {
			if end, next, ok := findCloser(text, i+size, closers, r == '\'' || r == '‘'); ok {
				out.WriteString(placeholder + strconv.Itoa(len(quotes)) + placeholder)
				quotes = append(quotes, text[i+size:end])
				i = next
				prev = 'x'
				continue
			}
		}
		out.WriteRune(r)
		prev = r
		i += size
	}
	return out.String(), quotes
}

// openerOf returns the runes that may close a quote opened by r, or "" if r
// does not open one here.
func openerOf(r, prev rune) string {
	switch r {
	case '"':
		return `"`
	case '“':
		return `”"`
	case '‘':
		return `’'`
	case '\'':
		if unicode.IsSpace(prev) || strings.ContainsRune(":(,[", prev) {
			return `'’`
		}
	}
	return ""
}

// findCloser finds the closing quote from start; single quotes must be
// followed by a boundary so that apostrophes inside the quote survive.
func findCloser(text string, start int, closers string, single bool) (end, next int, ok bool) {
	for j := start; j < len(text); {
		r, size := utf8.DecodeRuneInString(text[j:])
		if strings.ContainsRune(closers, r) {
			after, _ := utf8.DecodeRuneInString(text[j+size:])
			if !single || j+size == len(text) || unicode.IsSpace(after) || strings.ContainsRune(".,!?:;)]", after) {
				return j, j + size, true
			}
		}
		j += size
	}
	return 0, 0, false
}

// splitSteps splits on " and then ", the one connective the rules planner
// reads as a sequence.
func splitSteps(text string) []string {
	return andThen.Split(text, -1)
}

// normalize removes what carries no meaning for the patterns: politeness,
// trailing punctuation, "the", repeated spaces.
func normalize(seg string) string {
	// Quotes are already lifted out, so a ’ left here is an apostrophe.
	seg = strings.TrimSpace(strings.ReplaceAll(seg, "’", "'"))
	seg = trailingPunct.ReplaceAllString(seg, "")
	seg = politeLead.ReplaceAllString(seg, "")
	seg = politeTrail.ReplaceAllString(seg, "")
	seg = trailingPunct.ReplaceAllString(seg, "")
	seg = article.ReplaceAllString(seg, "$1")
	seg = spaces.ReplaceAllString(seg, " ")
	seg = repoHash.ReplaceAllString(seg, "PR $2 in $1")
	return strings.TrimSpace(seg)
}

var placeholderRef = regexp.MustCompile(placeholder + `(\d+)` + placeholder)

// restore puts quoted strings back, for showing a sentence to the person.
func restore(seg string, quotes []string) string {
	return placeholderRef.ReplaceAllStringFunc(seg, func(s string) string {
		i, err := strconv.Atoi(strings.Trim(s, placeholder))
		if err != nil || i >= len(quotes) {
			return s
		}
		return "'" + quotes[i] + "'"
	})
}
