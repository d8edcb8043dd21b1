package slackapp

import (
	"bytes"
	"cmp"
	"encoding/json"
	"fmt"
	"regexp"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/slack-go/slack"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/policy"
)

// Block Kit limits, from Slack's reference. Slack rejects a whole message
// when one of them is exceeded, so every builder below clips to them.
const (
	maxSectionText  = 3000 // section text
	maxFieldText    = 2000 // each section field
	maxFields       = 10   // fields per section
	maxHeaderText   = 150  // header block (plain_text)
	maxContextText  = 3000 // a context element's text object
	maxButtonText   = 75   // button label (plain_text)
	maxButtonValue  = 2000 // button value
	maxActionElems  = 25   // elements per actions block
	maxMessageBlock = 50   // blocks per message
	maxHomeBlocks   = 100  // blocks in an App Home view
	maxReplyText    = 4000 // a threaded reply's text; Slack's own advice
	maxModalTitle   = 24   // modal title, submit and close (plain_text)
	maxModalBlocks  = 100  // blocks in a modal
	maxMetadata     = 3000 // private_metadata
	maxConfirmTitle = 100  // confirm dialog title
	maxConfirmText  = 300  // confirm dialog text
	maxConfirmBtn   = 30   // confirm dialog button labels
)

// Action IDs of the interactive elements. The handlers match on them; the
// value of each element is only an opaque ID.
const (
	// ActionDecidePrefix starts an approval button's action ID; the choice
	// key (broker.ChoiceOnce, …) follows.
	ActionDecidePrefix = "agenthub_decide_"
	// ActionStepUp opens the step-up modal; value is the request ID.
	ActionStepUp = "agenthub_stepup_open"
	// ActionConnect starts connecting a service; value is the service.
	ActionConnect = "agenthub_connect"
	// ActionRevokeService revokes a connection; value is the service.
	ActionRevokeService = "agenthub_revoke_service"
	// ActionRevokeGrant revokes one grant; value is the grant ID.
	ActionRevokeGrant = "agenthub_revoke_grant"
	// ActionRevokeAll revokes everything the person has; value is "all".
	ActionRevokeAll = "agenthub_revoke_all"
	// ActionViewArgs opens a modal with all of a request's arguments;
	// value is the request ID.
	ActionViewArgs = "agenthub_view_args"

	// CallbackStepUp is the step-up modal's callback ID; its private
	// metadata is the request ID and nothing else.
	CallbackStepUp = "agenthub_stepup"
	// StepUpBlockID and StepUpActionID locate the code in the modal's
	// submitted state.
	StepUpBlockID  = "stepup_code"
	StepUpActionID = "code"
)

// Outcomes a DecidedMessage can show; they are the broker's status names.
const (
	OutcomeApproved = string(broker.StatusApproved)
	OutcomeDenied   = string(broker.StatusDenied)
	OutcomeExpired  = string(broker.StatusExpired)
	OutcomeCanceled = string(broker.StatusCanceled)
	// OutcomeConnected: the service a request waited for is connected.
	OutcomeConnected = "connected"
)

const truncatedNote = " _(truncated)_"

// escape makes user-supplied text safe inside mrkdwn: Slack gives &, < and >
// control meaning (links, mentions, @channel), and wants exactly these three
// escaped, nothing else.
func escape(s string) string {
	if !strings.ContainsAny(s, "&<>") {
		return s
	}
	return mrkdwnEscaper.Replace(s)
}

var mrkdwnEscaper = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// code shows s as inline code. A backtick inside would end the code span
// early and let the rest be read as formatting, so it becomes a look-alike
// (U+02CB) that cannot.
func code(s string) string {
	return "`" + escape(strings.ReplaceAll(s, "`", "\u02cb")) + "`"
}

// truncate returns s cut to at most max runes, ending in "…" when cut.
// It counts runes, not bytes, so it never splits a character.
func truncate(s string, max int) string {
	if max <= 0 {
		return ""
	}
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	n := 0
	for i := range s {
		if n == max-1 {
			return s[:i] + "…"
		}
		n++
	}
	return s // unreachable: the count above said s is longer
}

// clip truncates mrkdwn that is already escaped to max runes, visibly: it
// appends a "(truncated)" note and never leaves half an entity (&amp;) or
// half a mention (<@U1>) behind, which Slack would show raw.
func clip(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	body := truncate(s, max-utf8.RuneCountInString(truncatedNote))
	body = strings.TrimSuffix(body, "…")
	if i := strings.LastIndexByte(body, '&'); i >= 0 && !strings.Contains(body[i:], ";") {
		body = body[:i]
	}
	if i := strings.LastIndexByte(body, '<'); i >= 0 && !strings.Contains(body[i:], ">") {
		body = body[:i]
	}
	// A cut inside a code span or fence would swallow the note.
	if strings.Count(body, "`")%2 == 1 {
		body = strings.ReplaceAll(body, "`", "'")
	}
	return body + "…" + truncatedNote
}

// cut shortens an invisible string (a button value, private metadata). It
// adds no ellipsis: the value is an ID, and a cut one simply finds nothing.
func cut(s string, max int) string {
	if utf8.RuneCountInString(s) <= max {
		return s
	}
	return string([]rune(s)[:max])
}

var slackUserID = regexp.MustCompile(`^[UW][A-Z0-9]{2,}$`)

// mention renders a Slack user ID as a mention; anything else is shown as
// escaped text, so a malformed ID can never become a broadcast such as
// <!channel>.
func mention(id string) string {
	if slackUserID.MatchString(id) {
		return "<@" + id + ">"
	}
	return escape(id)
}

// actorMention renders an audit event's actor: a principal as a mention
// of its user, anything else as escaped text.
func actorMention(actor string) string {
	if p, err := broker.ParsePrincipal(actor); err == nil {
		return mention(p.User)
	}
	return escape(actor)
}

func mentions(ids []string) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = mention(id)
	}
	return strings.Join(out, ", ")
}

// date renders t in each reader's own time zone; the fallback, shown where
// Slack cannot format, is UTC. format is a Slack date token string.
func date(t time.Time, format, fallback string) string {
	if t.IsZero() {
		return "never"
	}
	return fmt.Sprintf("<!date^%d^%s|%s>", t.Unix(), format, t.UTC().Format(fallback))
}

func when(t time.Time) string {
	return date(t, "{date_short_pretty} at {time}", "2006-01-02 15:04 UTC")
}

func clock(t time.Time) string { return date(t, "{time}", "15:04 UTC") }

func mrkdwn(s string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, s, false, false)
}

func plain(s string, max int) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, truncate(s, max), false, false)
}

// section is a mrkdwn section; text must already be escaped.
func section(text string) *slack.SectionBlock {
	return slack.NewSectionBlock(mrkdwn(clip(text, maxSectionText)), nil, nil)
}

func header(text string) *slack.HeaderBlock {
	return slack.NewHeaderBlock(plain(text, maxHeaderText))
}

func contextLine(text string) *slack.ContextBlock {
	return slack.NewContextBlock("", mrkdwn(clip(text, maxContextText)))
}

// fields builds a section of label/value pairs (values already escaped).
func fields(pairs ...string) *slack.SectionBlock {
	var fs []*slack.TextBlockObject
	for i := 0; i+1 < len(pairs) && len(fs) < maxFields; i += 2 {
		if pairs[i+1] == "" {
			continue
		}
		fs = append(fs, mrkdwn(clip("*"+pairs[i]+"*\n"+pairs[i+1], maxFieldText)))
	}
	return slack.NewSectionBlock(nil, fs, nil)
}

func button(actionID, label, value string) *slack.ButtonBlockElement {
	return slack.NewButtonBlockElement(actionID, cut(value, maxButtonValue), plain(label, maxButtonText))
}

// actions puts buttons in actions blocks of at most 25 elements each.
func actions(blockID string, buttons []*slack.ButtonBlockElement) []slack.Block {
	var out []slack.Block
	for i := 0; i < len(buttons); i += maxActionElems {
		end := min(i+maxActionElems, len(buttons))
		elems := make([]slack.BlockElement, 0, end-i)
		for _, b := range buttons[i:end] {
			elems = append(elems, b)
		}
		id := blockID
		if i > 0 {
			id = fmt.Sprintf("%s_%d", blockID, i/maxActionElems)
		}
		out = append(out, slack.NewActionBlock(id, elems...))
	}
	return out
}

// limitBlocks keeps a message within max blocks; what it drops is
// announced in a last context line.
func limitBlocks(blocks []slack.Block, max int) []slack.Block {
	if len(blocks) <= max {
		return blocks
	}
	dropped := len(blocks) - (max - 1)
	out := append(blocks[:max-1:max-1], contextLine(fmt.Sprintf("… and %d more blocks _(truncated)_", dropped)))
	return out
}

// ApprovalMessage asks owner (a Slack user ID) to decide an approval
// output: who asks, what would run with which arguments, on what, how risky,
// by which rule, until when, and one button per choice. Every button's value
// is the request ID and nothing more.
func ApprovalMessage(o broker.Output, owner string, expires time.Time) []slack.Block {
	intro := fmt.Sprintf("%s, an agent asks to run *%s* on %s.", mention(owner), escape(o.Action), code(o.Resource))
	return approvalBlocks("Approval needed", intro, o, owner, expires, o.Choices)
}

// SecondApprovalMessage asks one of the policy's second approvers to
// approve or deny someone else's request. They answer for the step alone:
// how long a grant lasts is the owner's choice, so their buttons are
// approve once and deny, the only answers the broker takes from them.
func SecondApprovalMessage(o broker.Output, owner string, expires time.Time) []slack.Block {
	intro := fmt.Sprintf("%s asks to run *%s* on %s, and the policy wants a second approval from one of: %s",
		mention(owner), escape(o.Action), code(o.Resource), mentions(o.Approvers))
	o.Approvers = nil // said above
	return approvalBlocks("Second approval needed", intro, o, owner, expires,
		[]broker.Choice{{Key: broker.ChoiceOnce, Label: "Approve"}, {Key: broker.ChoiceDeny, Label: "Deny"}})
}

func approvalBlocks(title, intro string, o broker.Output, owner string, expires time.Time, choices []broker.Choice) []slack.Block {
	blocks := []slack.Block{header(title), section(intro)}
	blocks = append(blocks, argsBlocks(o)...)
	blocks = append(blocks, section(quote(escape(cmp.Or(o.Reason, o.Text)))),
		fields(
			"Action", code(o.Action),
			"Resource", code(o.Resource),
			"Risk", riskLabel(o.Risk),
			"Policy rule", code(o.Rule),
			"Expires", when(expires),
			"Requested by", mention(owner),
		),
	)
	if len(o.Approvers) > 0 {
		blocks = append(blocks, contextLine("Also needs the approval of one of: "+mentions(o.Approvers)))
	}
	var buttons []*slack.ButtonBlockElement
	for _, c := range choices {
		b := button(ActionDecidePrefix+c.Key, c.Label, o.RequestID)
		switch c.Key {
		case broker.ChoiceOnce:
			b = b.WithStyle(slack.StylePrimary)
		case broker.ChoiceDeny:
			b = b.WithStyle(slack.StyleDanger)
		}
		buttons = append(buttons, b)
	}
	blocks = append(blocks, actions("agenthub_decide", buttons)...)
	return limitBlocks(blocks, maxMessageBlock)
}

// maxShownArgs is how long a step's arguments may be, pretty-printed, for
// an approval card to show them whole. Longer ones are never cut: the card
// says how long they are, shows their digest, and a button opens them all
// (ArgsModal).
const maxShownArgs = 2500

// argsBlocks shows an approval's arguments: whole, as plain text (nothing
// in them can become formatting, a link or a mention), or, when too long
// for a message, their size and digest with a View all button.
func argsBlocks(o broker.Output) []slack.Block {
	if len(o.Args) == 0 {
		return nil
	}
	pretty := prettyArgs(o.Args)
	if utf8.RuneCountInString(pretty) <= maxShownArgs {
		return []slack.Block{slack.NewSectionBlock(slack.NewTextBlockObject(slack.PlainTextType, pretty, false, false), nil, nil)}
	}
	note := fmt.Sprintf("*Arguments:* %d characters, more than a message can show, so none of them is shown here. Digest %s. "+
		"*View all* shows every one of them before you decide.", utf8.RuneCountInString(pretty), code(shortDigest(o.ArgsHash)))
	view := button(ActionViewArgs, "View all", o.RequestID)
	return []slack.Block{slack.NewSectionBlock(mrkdwn(note), nil, slack.NewAccessory(view))}
}

// modalArgs shows a request's arguments in the step-up modal, so that the
// person verifies this request and not a look-alike: whole when they fit,
// else their digest, the one on the approval card, whose View all shows
// them.
func modalArgs(r broker.Request) slack.Block {
	pretty := prettyArgs(r.Step.Args)
	if utf8.RuneCountInString(pretty) <= maxShownArgs {
		return slack.NewSectionBlock(slack.NewTextBlockObject(slack.PlainTextType, pretty, false, false), nil, nil)
	}
	return contextLine(fmt.Sprintf("Arguments: %d characters, digest %s: *View all* on the approval card shows them.",
		utf8.RuneCountInString(pretty), code(shortDigest(r.ArgsHash))))
}

// prettyArgs indents canonical JSON arguments for people, with <, > and &
// as themselves rather than the \u003c escapes encoding/json writes: the
// text is shown as plain text, where nothing has a meaning to escape.
func prettyArgs(raw []byte) string {
	d := json.NewDecoder(bytes.NewReader(raw))
	d.UseNumber() // numbers exactly as they will run
	var v any
	if err := d.Decode(&v); err != nil {
		return string(raw)
	}
	var b bytes.Buffer
	e := json.NewEncoder(&b)
	e.SetEscapeHTML(false)
	e.SetIndent("", "  ")
	if err := e.Encode(v); err != nil {
		return string(raw)
	}
	return strings.TrimSuffix(b.String(), "\n")
}

// shortDigest is the first 16 hex digits of an argument digest, in groups
// of four: enough to tell two sets of arguments apart at a glance.
func shortDigest(h string) string {
	if len(h) > 16 {
		h = h[:16]
	}
	var parts []string
	for len(h) > 4 {
		parts, h = append(parts, h[:4]), h[4:]
	}
	return strings.Join(append(parts, h), " ")
}

// ArgsModal shows all of a request's arguments, split into plain-text
// blocks a modal can hold. What cannot fit in a modal's blocks (arguments
// far longer than any action's schema allows) is said, never dropped
// silently.
func ArgsModal(r broker.Request) slack.ModalViewRequest {
	pretty := prettyArgs(r.Step.Args)
	blocks := []slack.Block{
		section(fmt.Sprintf("*%s* on %s", escape(r.Step.Action), code(r.Resource.Name))),
		contextLine(fmt.Sprintf("%d characters. Digest %s, as on the approval card.", utf8.RuneCountInString(pretty), code(shortDigest(r.ArgsHash)))),
	}
	chunks := splitRunes(pretty, maxSectionText)
	room := maxModalBlocks - len(blocks) - 1
	for i, c := range chunks {
		if i == room {
			blocks = append(blocks, contextLine(fmt.Sprintf("%d more part(s) do not fit in a Slack window: do not approve what you cannot read.", len(chunks)-room)))
			break
		}
		blocks = append(blocks, slack.NewSectionBlock(slack.NewTextBlockObject(slack.PlainTextType, c, false, false), nil, nil))
	}
	return slack.ModalViewRequest{
		Type:   slack.VTModal,
		Title:  plain("Arguments", maxModalTitle),
		Close:  plain("Close", maxModalTitle),
		Blocks: slack.Blocks{BlockSet: blocks},
	}
}

// splitRunes cuts s into pieces of at most max runes, never inside a
// character.
func splitRunes(s string, max int) []string {
	var out []string
	for s != "" {
		n, i := 0, 0
		for i < len(s) && n < max {
			_, size := utf8.DecodeRuneInString(s[i:])
			i += size
			n++
		}
		out = append(out, s[:i])
		s = s[i:]
	}
	return out
}

// quote renders text as a mrkdwn block quote, line by line.
func quote(s string) string {
	if s == "" {
		return ""
	}
	return "> " + strings.ReplaceAll(s, "\n", "\n> ")
}

func riskLabel(risk string) string {
	switch risk {
	case "high", "critical":
		return ":warning: *" + escape(risk) + "*"
	case "":
		return ""
	}
	return escape(risk)
}

// DecidedMessage replaces an approval message once it is settled: the
// request recapped, no buttons, and a context line saying what happened,
// by whom and when. outcome is one of the Outcome constants; by is the
// deciding Slack user (unused for an expiry).
func DecidedMessage(req broker.Request, by string, at time.Time, outcome string) []slack.Block {
	var line string
	switch outcome {
	case OutcomeApproved:
		line = fmt.Sprintf(":white_check_mark: Approved by %s at %s", mention(by), clock(at))
		if req.Lifetime != policy.Once {
			line += " (" + lifetimeLabel(req.Lifetime) + ")"
		}
	case OutcomeDenied:
		line = fmt.Sprintf(":no_entry: Denied by %s at %s", mention(by), clock(at))
	case OutcomeExpired:
		line = fmt.Sprintf(":hourglass: Expired at %s", clock(at))
	case OutcomeCanceled:
		if req.Service != "" {
			line = fmt.Sprintf(":heavy_multiplication_x: Canceled: %s was revoked", escape(req.Service))
		} else {
			line = ":heavy_multiplication_x: Canceled"
		}
	default:
		line = "Closed: " + escape(outcome)
	}
	blocks := []slack.Block{
		header("Approval request"),
		section(fmt.Sprintf("%s asked to run *%s* with:\n%s",
			mention(req.Principal.User), escape(req.Step.Action), quote(escape(string(req.Step.Args))))),
		fields(
			"Action", code(req.Step.Action),
			"Resource", code(req.Resource.Name),
			"Risk", riskLabel(req.Decision.Risk.String()),
			"Policy rule", code(req.Decision.Rule),
		),
		contextLine(line),
	}
	return limitBlocks(blocks, maxMessageBlock)
}

func lifetimeLabel(l policy.Lifetime) string {
	switch l {
	case policy.OneHour:
		return "for 1 hour"
	case policy.Standing:
		return "until revoked"
	}
	return "once"
}

// StepUpMessage asks the owner to prove it is them before a high-risk step
// runs; the button opens StepUpModal.
func StepUpMessage(o broker.Output) []slack.Block {
	blocks := []slack.Block{
		header("Verify it's you"),
		section(escape(o.Text)),
	}
	// Two requests of one action on one resource (a merge of PR 7 and one
	// of PR 8) must not look alike: the arguments say which this is.
	blocks = append(blocks, argsBlocks(o)...)
	blocks = append(blocks,
		fields(
			"Action", code(o.Action),
			"Resource", code(o.Resource),
			"Risk", riskLabel(o.Risk),
			"Policy rule", code(o.Rule),
		),
	)
	if len(o.Approvers) > 0 {
		blocks = append(blocks, contextLine("Also needs the approval of one of: "+mentions(o.Approvers)))
	}
	b := button(ActionStepUp, "Verify it's you", o.RequestID).WithStyle(slack.StylePrimary)
	blocks = append(blocks, actions("agenthub_stepup", []*slack.ButtonBlockElement{b})...)
	return limitBlocks(blocks, maxMessageBlock)
}

// StepUpModal asks for a 6-digit code from the person's authenticator. Its
// private metadata is the request ID alone: the handler loads everything
// else from the store.
func StepUpModal(r broker.Request) slack.ModalViewRequest {
	input := slack.NewPlainTextInputBlockElement(plain("123456", 150), StepUpActionID).
		WithMinLength(6).WithMaxLength(6)
	return slack.ModalViewRequest{
		Type:            slack.VTModal,
		Title:           plain("Verify it's you", maxModalTitle),
		Submit:          plain("Verify", maxModalTitle),
		Close:           plain("Cancel", maxModalTitle),
		CallbackID:      CallbackStepUp,
		PrivateMetadata: cut(r.ID, maxMetadata),
		Blocks: slack.Blocks{BlockSet: []slack.Block{
			section(fmt.Sprintf("You are verifying *%s* on %s, asked %s.", escape(r.Step.Action), code(r.Resource.Name), when(r.Created))),
			modalArgs(r),
			section("This action needs a fresh code from your authenticator app. A click in Slack alone is not enough."),
			slack.NewInputBlock(StepUpBlockID, plain("6-digit code", 2000),
				plain("The code is used once, for this request only.", 2000), input),
		}},
	}
}

// ConnectMessage asks the person to connect a service. The button's value
// is the service name: a click answers with a fresh connect link for the
// clicker alone (or, in the demo without a public URL, connects at once).
func ConnectMessage(o broker.Output) []slack.Block {
	label := "Connect "
	if o.Reconnect {
		label = "Reconnect "
	}
	// The value names the scopes the action needs, so that the link asks
	// the provider for them (those it offers later, as Google's writes).
	b := button(ActionConnect, label+o.Service, strings.Join(append([]string{o.Service}, o.Scopes...), " ")).WithStyle(slack.StylePrimary)
	blocks := []slack.Block{section(escape(o.Text))}
	blocks = append(blocks, actions("agenthub_connect", []*slack.ButtonBlockElement{b})...)
	return blocks
}

// ConnectedMessage replaces a Connect DM once the request it was for no
// longer waits for the connection: connected (and the request went on),
// or expired.
func ConnectedMessage(r broker.Request, outcome string) []slack.Block {
	line := fmt.Sprintf(":white_check_mark: %s is connected: I went on with *%s*.", escape(r.Service), escape(r.Step.Action))
	if outcome != OutcomeConnected {
		line = fmt.Sprintf(":hourglass: *%s* waited for %s and is closed: %s.", escape(r.Step.Action), escape(r.Service), escape(outcome))
	}
	return []slack.Block{section(line)}
}

// ResultText is the threaded reply for a step that ran.
func ResultText(o broker.Output) string {
	return clip(":white_check_mark: "+escape(o.Text), maxReplyText)
}

// ErrorText is the threaded reply for a step that was refused or failed.
func ErrorText(o broker.Output) string {
	return clip(":warning: "+escape(o.Text), maxReplyText)
}

// HomeConnection is what App Home shows of one connected service. It is a
// view of the vault's record, so this package need not import the vault.
type HomeConnection struct {
	Service string
	Account string // the provider's name of the account; "" if not known
	// Off marks a service this install has not set up: listed so people
	// know it exists, with nothing to revoke.
	Off      bool
	Status   string // "connected", "expired", "revoked"
	Scopes   []string
	LastUsed time.Time
}

// Per-list caps for App Home, chosen so that the fixed blocks plus every
// list at its cap stay within Slack's 100 blocks.
const (
	homeMaxConnections = 10
	homeMaxGrants      = 45
	homeMaxPending     = 25
	homeAuditLines     = 10
)

// appendList adds one App Home list: a divider, its header, a line when it
// is empty, at most limit items, and an "and N more" line for the rest.
func appendList[T any](blocks []slack.Block, title, empty, noun string, items []T, limit int, render func(T) slack.Block) []slack.Block {
	blocks = append(blocks, slack.NewDividerBlock(), header(title))
	if len(items) == 0 {
		return append(blocks, contextLine(empty))
	}
	for i, it := range items {
		if i == limit {
			return append(blocks, more(len(items)-i, noun))
		}
		blocks = append(blocks, render(it))
	}
	return blocks
}

// HomeView is the person's App Home: connections, grants and pending
// requests, each with what it needs to act on it, their last ten audit
// events, and a "Revoke everything" button behind a confirm dialog. Long
// lists are cut with an "and N more" line.
func HomeView(conns []HomeConnection, grants []broker.Grant, pending []broker.Request, events []audit.Event) slack.HomeTabViewRequest {
	blocks := []slack.Block{header("AgentHub"),
		contextLine("What agents may do for you, and what they did. Revoking takes effect at once.")}

	blocks = appendList(blocks, "Connections", "No services connected. Use `/agenthub connect <service>`.",
		"connections", conns, homeMaxConnections, func(c HomeConnection) slack.Block {
			if c.Off {
				return contextLine(fmt.Sprintf("*%s* · not set up here: an admin adds its OAuth client first", escape(c.Service)))
			}
			status := escape(c.Status)
			if c.Account != "" {
				status += " as " + escape(c.Account)
			}
			text := fmt.Sprintf("*%s* · %s\nScopes: %s\nLast used: %s",
				escape(c.Service), status, codeList(c.Scopes), when(c.LastUsed))
			b := button(ActionRevokeService, "Revoke", c.Service).WithStyle(slack.StyleDanger)
			return slack.NewSectionBlock(mrkdwn(clip(text, maxSectionText)), nil, slack.NewAccessory(b))
		})
	blocks = appendList(blocks, "Grants", "No grants: every action asks first.",
		"grants", grants, homeMaxGrants, func(g broker.Grant) slack.Block {
			until := "until " + when(g.Expires)
			if g.Lifetime == policy.Standing && g.Expires.IsZero() {
				until = "until revoked"
			}
			text := fmt.Sprintf("*%s* on `%s`\nAgent: %s · %s",
				escape(g.Action), escape(g.Resource), escape(g.Agent), until)
			b := button(ActionRevokeGrant, "Revoke", g.ID).WithStyle(slack.StyleDanger)
			return slack.NewSectionBlock(mrkdwn(clip(text, maxSectionText)), nil, slack.NewAccessory(b))
		})
	blocks = appendList(blocks, "Pending requests", "Nothing is waiting for you.",
		"pending requests", pending, homeMaxPending, func(r broker.Request) slack.Block {
			if r.Status == broker.StatusAwaitingStepUp {
				// Approved already: only the code is missing, and asking
				// for it from here shows nothing the DM did not.
				text := fmt.Sprintf("*%s* on %s · approved, waits for your code\nExpires %s",
					escape(r.Step.Action), code(r.Resource.Name), when(r.Expires))
				b := button(ActionStepUp, "Verify it's you", r.ID).WithStyle(slack.StylePrimary)
				return slack.NewSectionBlock(mrkdwn(clip(text, maxSectionText)), nil, slack.NewAccessory(b))
			}
			return section(fmt.Sprintf("*%s* on %s · %s\nExpires %s · the buttons are in your DMs",
				escape(r.Step.Action), code(r.Resource.Name), escape(string(r.Status)), when(r.Expires)))
		})

	blocks = append(blocks, slack.NewDividerBlock(), header("Recent activity"))
	if len(events) == 0 {
		blocks = append(blocks, contextLine("Nothing recorded yet."))
	} else {
		recent := events[max(0, len(events)-homeAuditLines):]
		lines := make([]string, len(recent))
		for i, e := range recent {
			lines[i] = AuditLine(e)
		}
		blocks = append(blocks, section(strings.Join(lines, "\n")))
	}

	all := button(ActionRevokeAll, "Revoke everything", "all").WithStyle(slack.StyleDanger).
		WithConfirm(slack.NewConfirmationBlockObject(
			plain("Revoke everything?", maxConfirmTitle),
			plain("This disconnects every service and removes every grant. Agents will have to ask again, and you will have to reconnect.", maxConfirmText),
			plain("Revoke everything", maxConfirmBtn),
			plain("Cancel", maxConfirmBtn),
		).WithStyle(slack.StyleDanger))
	// The panic button must survive any cut, so the limit applies to the
	// lists above it.
	footer := append([]slack.Block{slack.NewDividerBlock()},
		actions("agenthub_revoke_all", []*slack.ButtonBlockElement{all})...)
	blocks = append(limitBlocks(blocks, maxHomeBlocks-len(footer)), footer...)

	return slack.HomeTabViewRequest{
		Type:   slack.VTHomeTab,
		Blocks: slack.Blocks{BlockSet: blocks},
	}
}

func more(n int, what string) *slack.ContextBlock {
	return contextLine(fmt.Sprintf("… and %d more %s _(truncated)_", n, what))
}

func codeList(items []string) string {
	if len(items) == 0 {
		return "none"
	}
	out := make([]string, len(items))
	for i, s := range items {
		out[i] = code(s)
	}
	return strings.Join(out, ", ")
}

// AuditLine renders an audit event as one compact mrkdwn line, as App Home
// and "/agenthub audit" show it. It never shows arguments; even the
// recorder's redacted summary is left out, to keep lines short.
func AuditLine(e audit.Event) string { return auditLine(e, true) }

// AuditChannelLine is AuditLine for the audit channel: the actor is shown
// as their principal in code, not as a mention, since a mention in a
// channel message notifies that person of every event of theirs.
func AuditChannelLine(e audit.Event) string { return auditLine(e, false) }

func auditLine(e audit.Event, mentionActor bool) string {
	var b strings.Builder
	fmt.Fprintf(&b, "`#%d` %s %s", e.Seq, clock(e.Time), code(string(e.Kind)))
	switch {
	case e.Actor == "":
	case mentionActor:
		b.WriteString(" " + actorMention(e.Actor))
	default:
		b.WriteString(" " + code(e.Actor))
	}
	if e.Action != "" {
		b.WriteString(" " + escape(e.Action))
	}
	if e.Resource != "" {
		b.WriteString(" on " + code(e.Resource))
	}
	if e.Decision != "" {
		b.WriteString(" → " + escape(e.Decision))
	}
	if e.Result != "" {
		b.WriteString(" → " + escape(e.Result))
	}
	if e.Rule != "" {
		b.WriteString(" (rule " + code(e.Rule) + ")")
	}
	return clip(b.String(), maxContextText)
}
