// Package command is the grammar of the /agenthub command and its help,
// shared by every adapter that takes the command: the Slack app's slash
// command and the console's lines that start with /agenthub.
//
// The grammar is data: a list of forms (verb, argument, what it does).
// Parse reads text by that list and Help prints it, so what the help offers
// is what the parser accepts, and the Slack app and the terminal demo teach
// the same words. An adapter does the work each command asks for and
// chooses how the words look (a Style: mrkdwn in Slack, aligned plain text
// on a terminal); it keeps no verbs of its own.
//
// What people type is echoed back only clipped: at most one line of
// printable characters, cut short (Error.Typed).
package command

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Name is the command as people type it.
const Name = "/agenthub"

// Verb names what a command does. A verb of two words is typed as it is
// spelled: "revoke all".
type Verb string

// The verbs.
const (
	Help      Verb = "help"
	Connect   Verb = "connect"
	Grants    Verb = "grants"
	Revoke    Verb = "revoke"
	RevokeAll Verb = "revoke all" // the panic button
	Pending   Verb = "pending"
	Audit     Verb = "audit"
	Whoami    Verb = "whoami"
	// Link and Unlink link the person's Slack user to their identity at
	// the identity provider, and undo it; only an adapter where people
	// sign in there (the Slack app) offers them.
	Link   Verb = "link"
	Unlink Verb = "unlink"
	// Reset replaces a lost authenticator, through the same gate as the
	// first enrolment; only an adapter where people have one offers it.
	Reset Verb = "reset"
	// Forget clears what the LLM planner remembers of the person's
	// conversations; only an adapter with conversations offers it.
	Forget Verb = "forget"
	// Code shows the demo authenticator's next code. Only the terminal
	// demo has such an authenticator; an adapter without one answers Code
	// with Unknown, as it would any verb it does not know.
	Code Verb = "code"
)

// The count audit takes: how many of the person's own events it shows.
const (
	DefaultCount = 10
	MaxCount     = 1000
)

// Arg is what a form takes after its verb.
type Arg int

// The arguments.
const (
	NoArg      Arg = iota
	ServiceArg     // one service name, such as github; read in lower case
	CountArg       // optionally a count from 1 to MaxCount (default DefaultCount)
)

// Form is one way to use the command, and one line of its help.
type Form struct {
	Verb Verb
	Arg  Arg
	Does string // what it does, for the help
	Demo bool   // only where there is a demo authenticator (Code)
	// SignIn: only where people sign in at an identity provider (Link).
	SignIn bool
	// Memory: only where conversations are remembered (Forget).
	Memory bool
}

// Usage is the form as the help shows it: "/agenthub connect <service>".
func (f Form) Usage() string {
	u := Name + " " + string(f.Verb)
	switch f.Arg {
	case ServiceArg:
		u += " <service>"
	case CountArg:
		u += " [n]"
	}
	return u
}

// forms is the grammar, in the help's order.
var forms = []Form{
	{Verb: Help, Does: "this text"},
	{Verb: Connect, Arg: ServiceArg, Does: "connect github, google or slack"},
	{Verb: Grants, Does: "what agents may do without asking, until when"},
	{Verb: Revoke, Arg: ServiceArg, Does: "revoke a service: tokens, grants, pending requests"},
	{Verb: RevokeAll, Does: "the panic button: revoke everything"},
	{Verb: Pending, Does: "requests waiting for you"},
	{Verb: Audit, Arg: CountArg, Does: fmt.Sprintf("your last n audit events (default %d)", DefaultCount)},
	{Verb: Whoami, Does: "who you are and what you have connected"},
	{Verb: Link, Does: "link your identity at your identity provider, which risky actions ask to sign in", SignIn: true},
	{Verb: Unlink, Does: "undo that link (the linked identity signs in to do it)", SignIn: true},
	{Verb: Reset, Does: "lost your authenticator? set up a new one (a sign-in or an administrator's approval first)", SignIn: true},
	{Verb: Forget, Does: "forget what I remember of our conversations", Memory: true},
	{Verb: Code, Does: "show the demo authenticator's next code", Demo: true},
}

// Forms returns the grammar, in the help's order.
func Forms() []Form { return slices.Clone(forms) }

// byLength is forms with the verbs of more words first, so that Parse
// reads "revoke all" as the panic button, not as revoking a service
// called all.
var byLength = func() []Form {
	fs := slices.Clone(forms)
	slices.SortStableFunc(fs, func(a, b Form) int { return len(strings.Fields(string(b.Verb))) - len(strings.Fields(string(a.Verb))) })
	return fs
}()

// Command is a parsed command.
type Command struct {
	Verb    Verb
	Service string // Connect and Revoke: the service, in lower case
	Count   int    // Audit: how many events, 1 to MaxCount
}

// String is the command as a person would type it, "/agenthub connect
// github"; Parse reads it back as c.
func (c Command) String() string {
	s := Name + " " + string(c.Verb)
	switch {
	case c.Service != "":
		s += " " + c.Service
	case c.Verb == Audit && c.Count != 0:
		s += " " + strconv.Itoa(c.Count)
	}
	return s
}

// Parse reads text, the words after "/agenthub". No words at all ask for
// help. Verbs and "all" may be in any case; a service is read in lower
// case. Parse accepts every verb, Code included; text that is no command
// gets an *Error, whose Text says what to type instead.
func Parse(text string) (Command, error) {
	words := strings.Fields(text)
	if len(words) == 0 {
		return Command{Verb: Help}, nil
	}
	known := false // a form has the first word as its verb's
	for _, f := range byLength {
		verb := strings.Fields(string(f.Verb))
		if !strings.EqualFold(verb[0], words[0]) {
			continue
		}
		known = true
		if len(words) < len(verb) || !equalFold(verb[1:], words[1:len(verb)]) {
			continue
		}
		c, ok, err := f.read(words[len(verb):])
		if err != nil {
			return Command{}, &Error{Problem: BadCount, Typed: typed(words), Verb: f.Verb}
		}
		if ok {
			return c, nil
		}
	}
	if known {
		return Command{}, &Error{Problem: WrongArgs, Typed: typed(words), Verb: Verb(strings.ToLower(words[0]))}
	}
	return Command{}, &Error{Problem: UnknownVerb, Typed: typed(words)}
}

// read reads the words after f's verb as f's argument. ok is false when
// there are too many or too few of them; err is set when the count is no
// count.
func (f Form) read(rest []string) (c Command, ok bool, err error) {
	c.Verb = f.Verb
	switch f.Arg {
	case ServiceArg:
		if len(rest) != 1 {
			return Command{}, false, nil
		}
		c.Service = strings.ToLower(rest[0])
		return c, true, nil
	case CountArg:
		if len(rest) > 1 {
			return Command{}, false, nil
		}
		c.Count = DefaultCount
		if len(rest) == 1 {
			n, err := strconv.Atoi(rest[0])
			if err != nil || n < 1 || n > MaxCount {
				return Command{}, false, fmt.Errorf("command: bad count %q", rest[0])
			}
			c.Count = n
		}
		return c, true, nil
	}
	return c, len(rest) == 0, nil
}

func equalFold(a, b []string) bool {
	return slices.EqualFunc(a, b, strings.EqualFold)
}

// Cut reports whether line is a command, "/agenthub" (in any case) and
// then nothing or a space, and returns the text after the name.
func Cut(line string) (text string, ok bool) {
	line = strings.TrimSpace(line)
	if len(line) < len(Name) || !strings.EqualFold(line[:len(Name)], Name) {
		return "", false
	}
	rest := line[len(Name):]
	if r, _ := utf8.DecodeRuneInString(rest); rest != "" && !unicode.IsSpace(r) {
		return "", false // "/agenthubs" is a word of its own
	}
	return strings.TrimSpace(rest), true
}

// Problem is what is wrong with text that Parse refuses.
type Problem int

// The problems.
const (
	UnknownVerb Problem = iota + 1 // no form has the verb
	WrongArgs                      // the verb is known; the words after it fit none of its forms
	BadCount                       // audit's count is not a number from 1 to MaxCount
)

// Error is the answer to text that is no command. Every field is safe to
// show: Typed is clipped.
type Error struct {
	Problem Problem
	// Typed is what was typed, "/agenthub" and the words after it, clipped
	// to one line of at most maxTyped printable characters.
	Typed string
	// Verb is the verb used wrongly (WrongArgs: its first word; BadCount:
	// Audit).
	Verb Verb
}

func (e *Error) Error() string {
	switch e.Problem {
	case WrongArgs:
		return fmt.Sprintf("command: wrong arguments to %s in %q", e.Verb, e.Typed)
	case BadCount:
		return fmt.Sprintf("command: bad count in %q", e.Typed)
	}
	return fmt.Sprintf("command: unknown command %q", e.Typed)
}

// Unknown returns the error Parse returns for a verb it does not know, for
// an adapter to answer a command it does not offer (Code outside the
// demo) in the same words.
func Unknown(text string) error {
	return &Error{Problem: UnknownVerb, Typed: typed(strings.Fields(text))}
}

// maxTyped is how many characters of what was typed an Error keeps.
const maxTyped = 100

// typed is words as typed after the command's name, clipped.
func typed(words []string) string {
	rs := []rune(strings.Join(append([]string{Name}, words...), " "))
	for i, r := range rs {
		if !unicode.IsPrint(r) {
			rs[i] = '?' // a control character, or one that reorders the line
		}
	}
	if len(rs) > maxTyped {
		rs = append(rs[:maxTyped-1], '…')
	}
	return string(rs)
}
