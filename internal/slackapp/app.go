package slackapp

import (
	"context"
	"errors"
	"log/slog"
	"runtime"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/slack-go/slack"
	"github.com/slack-go/slack/slackevents"
	"github.com/slack-go/slack/socketmode"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/stepup"
	"github.com/agenthub/agenthub/internal/store"
)

// Broker is what the Slack app asks of the broker; *broker.Broker is one.
type Broker interface {
	Handle(ctx context.Context, m broker.Message) ([]broker.Output, error)
	Decide(ctx context.Context, d broker.Decision) ([]broker.Output, error)
	StepUp(ctx context.Context, requestID string, actor broker.Principal, code string) ([]broker.Output, error)
	SignedIn(ctx context.Context, requestID string, actor broker.Principal) ([]broker.Output, error)
	Cancel(ctx context.Context, requestID string, actor broker.Principal, reason string) ([]broker.Output, error)
	StopConversation(ctx context.Context, principal broker.Principal, conversation string) error
	Revoke(ctx context.Context, principal broker.Principal, service string) ([]broker.Output, error)
	RevokeAll(ctx context.Context, principal broker.Principal) ([]broker.Output, error)
	RevokeGrant(ctx context.Context, principal broker.Principal, grantID string) ([]broker.Output, error)
	Pending(ctx context.Context, principal broker.Principal) ([]broker.Request, error)
	Grants(ctx context.Context, principal broker.Principal) ([]broker.Grant, error)
	Lookup(ctx context.Context, requestID string) (broker.Request, error)
	Recover(ctx context.Context, requestID string) ([]broker.Output, error)
	Connected(ctx context.Context, principal broker.Principal, service string) ([]broker.Output, error)
	Refuse(ctx context.Context, r broker.Refusal) error
	FlushRefusals(ctx context.Context) error
}

// Enroller enrols people in TOTP step-up; *stepup.Service is one.
type Enroller interface {
	Enroll(ctx context.Context, principal, accountName string) (stepup.Enrolment, error)
	Confirm(ctx context.Context, principal, code string) error
	Enrolled(ctx context.Context, principal string) (bool, error)
	// EnrollAfterGate enrols principal (reset: in place of a confirmed
	// enrolment) once they passed the enrolment gate; by says how.
	EnrollAfterGate(ctx context.Context, principal, by string, reset bool) (stepup.Enrolment, error)
}

// Options configure an App. Broker, Store and API are required.
type Options struct {
	Broker Broker
	// Store holds the app's own records: dedupe keys of envelopes, events
	// and clicks, and the approval messages shown for each request.
	Store store.Store
	// API is the Web API client, with the bot token (xoxb-) and, for Socket
	// Mode, the app-level token (slack.OptionAppLevelToken); its base URL is
	// SLACK_API_URL in tests.
	API *slack.Client

	Enroller Enroller // nil: step-up enrolment is not offered
	// Connections lists a person's connections for App Home and whoami.
	Connections func(ctx context.Context, principal broker.Principal) ([]HomeConnection, error)
	// History returns the person's last n audit events for App Home and
	// "/agenthub audit"; Tail the whole trail's (nil: not offered).
	History func(ctx context.Context, principal broker.Principal, n int) ([]audit.Event, error)
	// Connect links principal to service at once (AGENTHUB_DEMO=1: the
	// simulated provider issues tokens). nil outside the demo: connecting
	// needs the OAuth flow of a later issue, and the app says so.
	Connect func(ctx context.Context, principal broker.Principal, service string) error
	// ConnectLink returns a link that starts the OAuth flow connecting
	// principal's account at service (internal/connect): signed, for them
	// alone, single-use, good for 10 minutes. When set, Connect buttons and
	// "/agenthub connect" answer with a fresh one, and Connect is not used.
	// scopes are what the action that waits for it needs ("" for a plain
	// connect): the link asks the provider for them as well.
	ConnectLink func(principal broker.Principal, service string, scopes []string) (string, error)
	// SignInLink returns a link to sign in at the identity provider for
	// purpose (internal/identity: link, unlink, or the step-up of one
	// request): signed, for principal alone, single-use, good for 10
	// minutes. nil: no identity provider is set up; /agenthub link says
	// so, and step-up asks for codes.
	SignInLink func(principal broker.Principal, purpose string) (string, error)
	// Forget clears what the LLM planner remembers of principal's
	// conversations and says how many (nil: no memory here).
	Forget func(ctx context.Context, principal broker.Principal) (int, error)
	// Admins are the Slack user IDs of AgentHub's administrators
	// (AGENTHUB_ADMINS): without an identity provider, one of them, never
	// the person, approves each enrolment and reset of an authenticator,
	// and gets an enrolment link (EnrolLink) to hand over out of band.
	Admins []string
	// EnrolLink issues, on the record, a single-use link that lets
	// principal set up an authenticator (reset: replace theirs) and shows
	// its key on the page it opens; by says who issued it. nil: the
	// administrators' path is off.
	EnrolLink func(ctx context.Context, principal broker.Principal, by string, reset bool) (string, error)
	// Demo marks the app as running against simulated providers: each
	// person is connected to every service on first contact (with Connect).
	Demo     bool
	Services []string // the service names Connect or ConnectLink accept (and the demo connects on first contact)
	// Uninstalled is told that the app was uninstalled from team (Slack
	// revoked all its tokens there): it revokes the Slack connections of
	// that team's people. nil: nothing more is done.
	Uninstalled func(ctx context.Context, team string)
	// Off are the services AgentHub knows that this install has not set
	// up (no OAuth client): asking to connect one says so, and App Home
	// lists them.
	Off []string

	Logger     *slog.Logger          // default: discard
	Registerer prometheus.Registerer // the app's metrics; nil: not registered
	Now        func() time.Time      // default time.Now

	// Workers run the handlers (default 16×GOMAXPROCS, at least 32: a
	// handler mostly waits on the store, the providers and Slack); Queue
	// bounds the envelopes waiting for a worker (default 10,000).
	Workers int
	Queue   int
	// PingInterval is the watchdog: with no ping from Slack for this long
	// the connection is considered dead and reopened (default 30 s).
	PingInterval time.Duration
	// DedupeTTL is how long an event ID or envelope ID is remembered
	// (default 1 hour; Slack retries for about 5 minutes).
	DedupeTTL time.Duration
}

// App is the Slack adapter: the Socket Mode connection (socket.go: Run,
// acks, the worker pool, dedupe, reconnects) and the handlers behind it
// (handlers: what each event, click and command does).
type App struct {
	opts Options
	log  *slog.Logger
	now  func() time.Time
	// botUser is the bot's own user ID (from auth.test, set by Run before
	// any handler runs), so the handlers can ignore the bot's own messages
	// and strip its mention.
	botUser string
	// botTeam is the workspace the app is installed in (auth.test): the
	// app acts only for its members, never for a Slack Connect guest from
	// another workspace, whose principal would otherwise borrow this
	// workspace's team ID.
	botTeam string
	// noAgents is set once the workspace said it has no agent sessions.
	noAgents atomic.Bool
	// noStreams is set once the workspace said it streams no messages.
	noStreams atomic.Bool

	// ackPayload is what an envelope is acked with (nil: a bare ack); it
	// runs on the reader, so it does no I/O. handle does the work on a
	// worker; an error makes the dedupe key be forgotten, so a redelivery
	// or a second click may try again. Tests of the transport replace them.
	ackPayload func(w *work) any
	handle     func(ctx context.Context, w work) error
	// background runs beside the connection until ctx ends (the sweeper
	// that updates approval messages of expired requests).
	background func(ctx context.Context) error

	tr transport // socket.go

	contacted contactCache // events.go
}

// New checks opts and builds an App; Run connects it.
func New(opts Options) (*App, error) {
	if opts.Broker == nil || opts.Store == nil || opts.API == nil {
		return nil, errors.New("slackapp: Broker, Store and API are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Workers <= 0 {
		opts.Workers = max(32, 16*runtime.GOMAXPROCS(0))
	}
	if opts.Queue <= 0 {
		opts.Queue = 10_000
	}
	if opts.PingInterval <= 0 {
		opts.PingInterval = 30 * time.Second
	}
	if opts.DedupeTTL <= 0 {
		opts.DedupeTTL = time.Hour
	}
	a := &App{opts: opts, log: opts.Logger, now: opts.Now}
	a.ackPayload, a.handle, a.background = a.ackFor, a.handleWork, a.sweep
	if err := a.tr.init(a); err != nil {
		return nil, err
	}
	return a, nil
}

// ErrFatalAuth is returned by Run when Slack refuses the tokens
// (invalid_auth, token_revoked, account_inactive, not_authed): retrying
// cannot help, and the operator must fix the configuration.
var ErrFatalAuth = errors.New("slackapp: Slack refused the app's tokens")

// work is one acked envelope waiting for, or running on, a worker.
type work struct {
	typ        socketmode.EventType // EventTypeEventsAPI, EventTypeInteractive or EventTypeSlashCommand
	envelopeID string
	// dedupe is the store key that makes this envelope's work happen once
	// across replicas ("" for none); order routes work with the same key
	// to the same worker, so it runs in arrival order.
	dedupe string
	order  string
	acked  time.Time

	event       slackevents.EventsAPIEvent // typ == EventTypeEventsAPI
	interaction slack.InteractionCallback  // typ == EventTypeInteractive
	command     slack.SlashCommand         // typ == EventTypeSlashCommand
}
