package command

import (
	"fmt"
	"strings"
	"unicode/utf8"
)

// Style is how an adapter writes the help and the answers to mistakes: the
// words are this package's, the look is the adapter's. A nil func leaves
// its text as it is.
type Style struct {
	// Heading writes the help's heading, "Commands:".
	Heading func(string) string
	// Usage writes a command in the help's first column, "/agenthub
	// connect <service>", and a command the answers suggest.
	Usage func(string) string
	// Typed writes back what a person typed (Error.Typed, clipped
	// already). It is their input: quote or escape it for the medium.
	Typed func(string) string
	// Example writes the help's example of a message to the bot.
	Example func(string) string
	// Reach says how a message gets to the bot, "mention me or DM me";
	// empty where typing it is enough.
	Reach string
	// Indent goes before each form's line. With Align the descriptions
	// start in one column (for a terminal's fixed-width font); without it
	// two spaces follow each usage.
	Indent string
	Align  bool
	// Demo includes the forms only the demo offers (Code).
	Demo bool
	// SignIn includes the forms of signing in at an identity provider
	// (Link, Unlink).
	SignIn bool
	// Memory includes the forms about remembered conversations (Forget).
	Memory bool
}

// example is the message to the bot the help suggests.
const example = "list open pull requests in acme/website"

// Help is the help text in style s: a heading, a line for each form s
// offers, and what else one may say. It has no final newline.
func (s Style) Help() string {
	reach := ""
	if s.Reach != "" {
		reach = " (" + s.Reach + ")"
	}
	return apply(s.Heading, "Commands:") + "\n" + s.list(s.offered("")) +
		fmt.Sprintf("Anything else is a message to the bot%s, such as %s.", reach, apply(s.Example, example))
}

// Text is the answer to a person whose text Parse refused, in style s:
// what was wrong and what to type instead.
func (e *Error) Text(s Style) string {
	switch e.Problem {
	case BadCount:
		return fmt.Sprintf("%s takes a number of events from 1 to %d, such as %s.",
			Audit, MaxCount, apply(s.Usage, Command{Verb: Audit, Count: 50}.String()))
	case WrongArgs:
		if fs := s.offered(e.Verb); len(fs) > 0 {
			return "I don't know " + apply(s.Typed, e.Typed) + ". Try:\n" + strings.TrimSuffix(s.list(fs), "\n")
		}
	}
	// A verb s does not offer is as unknown as one nobody offers.
	return "I don't know " + apply(s.Typed, e.Typed) + ".\n" + s.Help()
}

// offered returns the forms s offers, all of them or those whose verb
// starts with the word first.
func (s Style) offered(first Verb) []Form {
	var fs []Form
	for _, f := range forms {
		word, _, _ := strings.Cut(string(f.Verb), " ")
		if (s.Demo || !f.Demo) && (s.SignIn || !f.SignIn) && (s.Memory || !f.Memory) && (first == "" || Verb(word) == first) {
			fs = append(fs, f)
		}
	}
	return fs
}

// list writes one line for each form, each ending in a newline.
func (s Style) list(fs []Form) string {
	usages := make([]string, len(fs))
	width := 0
	for i, f := range fs {
		usages[i] = apply(s.Usage, f.Usage())
		width = max(width, utf8.RuneCountInString(usages[i]))
	}
	var b strings.Builder
	for i, f := range fs {
		pad := ""
		if s.Align {
			pad = strings.Repeat(" ", width-utf8.RuneCountInString(usages[i]))
		}
		fmt.Fprintf(&b, "%s%s%s  %s\n", s.Indent, usages[i], pad, f.Does)
	}
	return b.String()
}

func apply(f func(string) string, s string) string {
	if f == nil {
		return s
	}
	return f(s)
}
