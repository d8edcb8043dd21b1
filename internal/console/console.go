package console

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"strconv"
	"strings"
	"unicode"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/command"
)

// Broker is what the console asks of the broker for messages, approvals
// and step-up codes.
type Broker interface {
	Handle(ctx context.Context, m broker.Message) ([]broker.Output, error)
	Decide(ctx context.Context, d broker.Decision) ([]broker.Output, error)
	StepUp(ctx context.Context, requestID string, actor broker.Principal, code string) ([]broker.Output, error)
}

// Commands is what the /agenthub commands ask of the broker; *broker.Broker
// is one.
type Commands interface {
	Revoke(ctx context.Context, principal broker.Principal, service string) ([]broker.Output, error)
	RevokeAll(ctx context.Context, principal broker.Principal) ([]broker.Output, error)
	Pending(ctx context.Context, principal broker.Principal) ([]broker.Request, error)
	Grants(ctx context.Context, principal broker.Principal) ([]broker.Grant, error)
	Connected(ctx context.Context, principal broker.Principal, service string) ([]broker.Output, error)
}

// Connection is what whoami shows of one of the person's connections, as
// the Slack app's HomeConnection is what App Home shows: the console's own
// view, so that it needs nothing of the vault.
type Connection struct {
	Service string
	Status  string // active, expired or revoked
	Scopes  []string
}

// Options configure Run.
type Options struct {
	Broker    Broker // required
	Commands  Commands
	Principal broker.Principal // required: who is typing
	Name      string           // how to show the principal, "@demo"; default the principal
	In        io.Reader
	Out       io.Writer
	JSON      bool // one JSON object per output line instead of text

	// Connections, History and Connect serve whoami, audit and connect; a
	// nil one makes its command say it is not available here.
	// Connections lists the principal's connections.
	Connections func(ctx context.Context, principal broker.Principal) ([]Connection, error)
	// History returns the principal's own last n audit events, as the
	// Slack app's Options.History does for its "/agenthub audit".
	History func(ctx context.Context, principal broker.Principal, n int) ([]audit.Event, error)
	// Connect links the principal to service again (in the demo: new tokens
	// from the simulated provider, sealed in the vault).
	Connect func(ctx context.Context, principal broker.Principal, service string) error
	// DemoCode returns the demo authenticator's current code; nil outside
	// the demo.
	DemoCode func(ctx context.Context) (string, error)
	// Logger receives the operator-side errors the broker returns beside
	// its outputs. Default: discard.
	Logger *slog.Logger
	// Others are other people the person at the keyboard may speak as, by
	// name ("@bob") to principal: a line that starts with "@bob " is typed
	// by @bob. The demo uses it to show that a click by someone other than
	// the request's owner is refused.
	Others map[string]broker.Principal
}

// session is the state one Run keeps between lines: the approval whose
// choices the person may type and the request whose step-up code is awaited.
type session struct {
	opts     Options
	out      io.Writer
	echo     bool // piped text input: show each line, so the output reads as a transcript
	approval *broker.Output
	stepUp   string
	// second is the approval a second approver (one of opts.Others) may
	// still answer after the owner has decided.
	second *broker.Output
}

// Run reads lines from opts.In until EOF (then it returns nil) or until ctx
// ends (then it returns ctx's error), handling each to completion before
// reading the next. It returns an error only when it cannot read or write.
func Run(ctx context.Context, opts Options) error {
	if opts.Broker == nil || opts.In == nil || opts.Out == nil {
		return errors.New("console: Broker, In and Out are required")
	}
	if err := opts.Principal.Validate(); err != nil {
		return fmt.Errorf("console: %w", err)
	}
	if opts.Name == "" {
		opts.Name = opts.Principal.String()
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	s := &session{opts: opts, out: opts.Out, echo: !opts.JSON && !interactive(opts.In)}

	// A read from a terminal cannot be interrupted, so the reads happen in
	// a goroutine that Run asks for one line at a time: nothing is read
	// before the previous line is handled, and a cancelled Run need not
	// wait for the person to press Enter. The goroutine ends at the next
	// line or EOF; lines has room for its last send.
	type line struct {
		text string
		err  error
		eof  bool
	}
	lines := make(chan line, 1)
	next := make(chan struct{})
	defer close(next)
	go func() {
		sc := bufio.NewScanner(opts.In)
		sc.Buffer(make([]byte, 0, 4096), 1<<20)
		for range next {
			if !sc.Scan() {
				lines <- line{err: sc.Err(), eof: true}
				return
			}
			lines <- line{text: sc.Text()}
		}
	}()

	for {
		if !opts.JSON && !s.echo {
			if _, err := fmt.Fprint(s.out, "you> "); err != nil {
				return fmt.Errorf("console: write: %w", err)
			}
		}
		select {
		case next <- struct{}{}:
		case <-ctx.Done():
			return ctx.Err()
		}
		var l line
		select {
		case l = <-lines:
		case <-ctx.Done():
			return ctx.Err()
		}
		if l.eof {
			if l.err != nil {
				return fmt.Errorf("console: read: %w", l.err)
			}
			return nil
		}
		if err := s.line(ctx, l.text); err != nil {
			return err
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
}

// interactive reports whether in is a terminal.
func interactive(in io.Reader) bool {
	f, ok := in.(*os.File)
	if !ok {
		return false
	}
	fi, err := f.Stat()
	return err == nil && fi.Mode()&os.ModeCharDevice != 0
}

// line handles one input line and prints what came of it.
func (s *session) line(ctx context.Context, text string) error {
	text = strings.TrimSpace(text)
	if text == "" {
		return nil
	}
	if s.echo {
		if _, err := fmt.Fprintf(s.out, "you> %s\n", text); err != nil {
			return fmt.Errorf("console: write: %w", err)
		}
	}
	outs, other, err := s.dispatch(ctx, text)
	if err != nil {
		// The outputs already tell the person that nothing was done; the
		// cause is for the operator.
		s.opts.Logger.WarnContext(ctx, "console: handling a line failed", "err", err)
	}
	if !other {
		// What is offered to the person at the keyboard stays offered
		// whatever a colleague typed.
		s.track(outs)
	}
	for _, o := range outs {
		if err := s.print(ctx, o); err != nil {
			return err
		}
	}
	return nil
}

// dispatch decides what a line is (see the package documentation) and
// passes it on. other reports that a colleague (opts.Others) typed it.
func (s *session) dispatch(ctx context.Context, text string) (outs []broker.Output, other bool, err error) {
	p := s.opts.Principal
	if by, rest, ok := s.other(text); ok {
		p, text, other = by, rest, true
	} else if rest, ok := command.Cut(text); ok {
		outs, err = s.command(ctx, rest)
		return outs, false, err
	}
	offer := s.approval
	if other && s.second != nil {
		offer = s.second
	}
	if offer != nil {
		if key, ok := matchChoice(offer.Choices, text); ok {
			id := offer.RequestID
			if !other {
				s.approval = nil
			}
			outs, err = s.opts.Broker.Decide(ctx, broker.Decision{RequestID: id, Actor: p, Choice: key})
			return outs, other, err
		}
	}
	if s.stepUp != "" {
		if code, ok := sixDigits(text); ok {
			outs, err = s.opts.Broker.StepUp(ctx, s.stepUp, p, code)
			return outs, other, err
		}
	}
	outs, err = s.opts.Broker.Handle(ctx, broker.Message{Principal: p, Text: text, Progress: s.progress})
	return outs, other, err
}

// progress shows a read the planner runs as it starts (text mode only:
// -json prints outputs alone).
func (s *session) progress(_ context.Context, pr broker.Progress) {
	if s.opts.JSON || pr.Status != broker.ProgressRunning {
		return
	}
	_, _ = fmt.Fprintf(s.out, "  … %s\n", pr.Title) // best effort: the outputs that follow report a broken terminal
}

// other reports whether text is typed by one of opts.Others, and returns
// that person's principal and the rest of the line.
func (s *session) other(text string) (principal broker.Principal, rest string, ok bool) {
	name, rest, found := strings.Cut(text, " ")
	if !found {
		return broker.Principal{}, "", false
	}
	principal, ok = s.opts.Others[strings.ToLower(strings.TrimSuffix(name, ":"))]
	return principal, strings.TrimSpace(rest), ok && strings.TrimSpace(rest) != ""
}

// track remembers the approval and the step-up the outputs ask for, and
// forgets them once an output about their request says something else.
func (s *session) track(outs []broker.Output) {
	for i := range outs {
		o := outs[i]
		if s.second != nil && s.second.RequestID == o.RequestID && (o.Kind == broker.KindResult || o.Kind == broker.KindError) {
			s.second = nil
		}
		switch o.Kind {
		case broker.KindApproval:
			s.approval = &o
			if len(o.Approvers) > 0 {
				s.second = &o
			}
			if o.RequestID == s.stepUp {
				s.stepUp = ""
			}
		case broker.KindStepUp:
			s.stepUp = o.RequestID
			if s.approval != nil && s.approval.RequestID == o.RequestID {
				s.approval = nil
			}
		default:
			if o.RequestID == "" {
				continue
			}
			if s.approval != nil && s.approval.RequestID == o.RequestID {
				s.approval = nil
			}
			if s.stepUp == o.RequestID {
				s.stepUp = ""
			}
		}
	}
}

// matchChoice finds the choice text names by its number (1-based, as
// printed), key or label, ignoring case.
func matchChoice(choices []broker.Choice, text string) (string, bool) {
	if n, err := strconv.Atoi(text); err == nil && n >= 1 && n <= len(choices) {
		return choices[n-1].Key, true
	}
	for _, c := range choices {
		if strings.EqualFold(text, c.Key) || strings.EqualFold(text, c.Label) {
			return c.Key, true
		}
	}
	return "", false
}

// sixDigits accepts "123456" and "123 456".
func sixDigits(text string) (string, bool) {
	code := strings.ReplaceAll(text, " ", "")
	if len(code) != 6 {
		return "", false
	}
	for _, r := range code {
		if !unicode.IsDigit(r) || r > '9' {
			return "", false
		}
	}
	return code, true
}

// jsonOutput is one -json line. Choices and request_id are always present,
// so a script need not tell a missing field from an empty one.
type jsonOutput struct {
	Kind      broker.Kind     `json:"kind"`
	Text      string          `json:"text"`
	Choices   []broker.Choice `json:"choices"`
	RequestID string          `json:"request_id"`
	Action    string          `json:"action,omitempty"`
	Resource  string          `json:"resource,omitempty"`
	Service   string          `json:"service,omitempty"`
	Rule      string          `json:"rule,omitempty"`
	Risk      string          `json:"risk,omitempty"`
	Approvers []string        `json:"approvers,omitempty"`
	Data      any             `json:"data,omitempty"`
	DemoCode  string          `json:"demo_code,omitempty"`
}

// noFreshCode is what the demo says when its authenticator has no code
// that is not used already.
var noFreshCode = "the authenticator has no fresh code yet; wait up to 30 seconds, then type " +
	command.Command{Verb: command.Code}.String() + "."

// print renders one output.
func (s *session) print(ctx context.Context, o broker.Output) error {
	var demoCode, demoNote string
	if o.Kind == broker.KindStepUp && s.opts.DemoCode != nil {
		code, err := s.opts.DemoCode(ctx)
		if err != nil {
			demoNote = "demo: " + noFreshCode
		} else {
			demoCode = code
		}
	}
	if s.opts.JSON {
		j := jsonOutput{Kind: o.Kind, Text: o.Text, Choices: o.Choices, RequestID: o.RequestID, Action: o.Action,
			Resource: o.Resource, Service: o.Service, Rule: o.Rule, Risk: o.Risk, Approvers: o.Approvers, Data: o.Data, DemoCode: demoCode}
		if j.Choices == nil {
			j.Choices = []broker.Choice{}
		}
		b, err := json.Marshal(j)
		if err != nil {
			return fmt.Errorf("console: encode output: %w", err)
		}
		if _, err := fmt.Fprintf(s.out, "%s\n", b); err != nil {
			return fmt.Errorf("console: write: %w", err)
		}
		return nil
	}
	var b strings.Builder
	prefix := "bot> "
	if o.Kind == broker.KindError {
		prefix = "bot> [!] "
	}
	b.WriteString(indent(prefix, o.Text))
	switch o.Kind {
	case broker.KindApproval:
		for i, c := range o.Choices {
			fmt.Fprintf(&b, "     %d) %s [%s]\n", i+1, c.Label, c.Key)
		}
		b.WriteString("     Type a number, key or label.\n")
	case broker.KindStepUp:
		switch {
		case demoCode != "":
			fmt.Fprintf(&b, "     demo: your authenticator shows %s\n", demoCode)
		case demoNote != "":
			fmt.Fprintf(&b, "     %s\n", demoNote)
		}
		b.WriteString("     Type the 6-digit code from your authenticator.\n")
	case broker.KindConnect:
		if hint := (command.Command{Verb: command.Connect, Service: o.Service}).String(); o.Service != "" && !strings.Contains(o.Text, hint) {
			fmt.Fprintf(&b, "     Type %s\n", hint)
		}
	}
	if _, err := io.WriteString(s.out, b.String()); err != nil {
		return fmt.Errorf("console: write: %w", err)
	}
	return nil
}

// indent prefixes the first line of text and aligns the rest under it.
func indent(prefix, text string) string {
	pad := strings.Repeat(" ", len(prefix))
	lines := strings.Split(strings.TrimRight(text, "\n"), "\n")
	var b strings.Builder
	for i, l := range lines {
		if i == 0 {
			b.WriteString(prefix)
		} else {
			b.WriteString(pad)
		}
		b.WriteString(l)
		b.WriteByte('\n')
	}
	return b.String()
}
