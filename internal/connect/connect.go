package connect

import (
	"cmp"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"golang.org/x/oauth2"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/loopback"
	"github.com/agenthub/agenthub/internal/store"
)

// Provider is one service a person can connect.
type Provider struct {
	// Name is what pages call it: "GitHub".
	Name string
	// Config is the OAuth client: its ID and secret, the provider's
	// authorization and token URLs, and the scopes asked for. Its
	// RedirectURL is ignored: the callback is always this service's own
	// under Options.PublicURL.
	Config *oauth2.Config
	// AuthOptions are further parameters of the authorization request
	// (Google's access_type=offline, Slack's user_scope, …).
	AuthOptions []oauth2.AuthCodeOption
	// LoginHint sends login_hint with the person's principal: the
	// simulated providers consent at once for whoever it names.
	LoginHint bool
	// Exchange turns the callback's code into a grant; nil is the
	// standard exchange (golang.org/x/oauth2), with the scopes the token
	// response names and no account.
	Exchange Exchanger
	// OptionalScopes are scopes Config does not ask for, which a link may
	// ask for as well (ScopesPurpose): an action that needs more than the
	// first connection granted (Google's calendar.events for a write).
	OptionalScopes []string
	// PurposeScopes, when set, are further scopes a flow asks for its
	// link's purpose (offline_access for a sign-in whose refresh token is
	// kept, and for no other).
	PurposeScopes func(purpose string) []string

	// A sign-in at an identity provider (internal/identity) rather than
	// a connection: Nonce sends an OpenID Connect nonce, fresh for each
	// flow, and Finish is given it with the code. Finish then does what
	// the flow was for (the link's purpose) instead of storing a
	// connection; it returns the page to show, or an error wrapping a
	// *Refused, which is refused with its page and reason (any other
	// error is a fault of AgentHub's). Describe is what the start page
	// says for a purpose.
	Nonce  bool
	Finish func(ctx context.Context, x Exchange) (Done, error)
	// SignInFirst makes the person sign in at the identity provider
	// (Options.SignIn) as the identity linked to the link's Slack user
	// before the provider is asked: a link forwarded to, or opened by,
	// someone else connects nothing.
	SignInFirst bool
	Describe    func(ctx context.Context, p broker.Principal, purpose string) Done

	// Authorize, when set, is asked where to send the browser in place of
	// Config's authorization URL, with the flow's state and PKCE
	// challenge: a consent page that needs a call first (Auth0's
	// connected accounts, whose ticket it returns). The callback then
	// carries connect_code in place of code, and the Exchange gets the
	// ticket's Session. Config.Endpoint.AuthURL still names the consent
	// page's origin (the start page's form may go there).
	Authorize func(ctx context.Context, a Authorization) (Ticket, error)
}

// Authorization is what Provider.Authorize is given.
type Authorization struct {
	Principal   broker.Principal
	RedirectURI string
	State       string
	Challenge   string // PKCE S256
	Scopes      []string
}

// Ticket is where Provider.Authorize sends the browser, and the session
// the callback completes.
type Ticket struct {
	URL     string
	Session string
}

// scopesPrefix starts the purpose of a link that asks for optional scopes.
const scopesPrefix = "scopes:"

// ScopesPurpose is the purpose of a connect link that asks for scopes
// beyond the provider's first ones (its OptionalScopes).
func ScopesPurpose(scopes []string) string { return scopesPrefix + strings.Join(scopes, " ") }

// scopesFor are the scopes a connect flow for purpose asks prov for: its
// own, and those of its optional scopes the purpose names (others are
// ignored: a link asks for nothing the provider does not offer).
func scopesFor(prov Provider, purpose string) []string {
	scopes := slices.Clone(prov.Config.Scopes)
	if prov.PurposeScopes != nil {
		for _, s := range prov.PurposeScopes(purpose) {
			if !slices.Contains(scopes, s) {
				scopes = append(scopes, s)
			}
		}
	}
	extra, ok := strings.CutPrefix(purpose, scopesPrefix)
	if !ok {
		return scopes
	}
	for _, s := range strings.Fields(extra) {
		if slices.Contains(prov.OptionalScopes, s) && !slices.Contains(scopes, s) {
			scopes = append(scopes, s)
		}
	}
	return scopes
}

// Done is a page to show when a flow ends, or begins (Describe). Secret
// is something the person is shown once, set apart (an authenticator's
// key); After follows it.
type Done struct {
	Title  string
	Lines  []string
	Secret []string
	After  []string
}

// page is the page that shows d.
func (d Done) page() page {
	return page{Title: d.Title, Lines: d.Lines, Secret: d.Secret, After: d.After}
}

// Action is something a link does on this side alone, with no provider:
// Continue on its start page spends the link and calls Do (setting up an
// authenticator with a link the operator handed over). Do's *Refused is
// refused like a callback's.
type Action struct {
	Name     string // for the Continue button: "the set-up"
	Describe func(ctx context.Context, p broker.Principal, purpose string) Done
	Do       func(ctx context.Context, p broker.Principal, purpose string) (Done, error)
}

// Refused is a sign-in that does not count, and why: Reason is the audit
// record's, Kind its kind (default audit.ConnectRefused), RequestID the
// request it was for, if any; Status and the page are what the browser
// gets.
type Refused struct {
	Reason    string
	Kind      audit.Kind
	RequestID string
	Status    int
	Page      Done
}

func (r *Refused) Error() string { return "connect: refused: " + r.Reason }

// Exchanger turns an authorization code into a grant: it calls the
// provider's token endpoint, and may ask the provider whose account it is.
// It returns an error wrapping ErrWrongAccount when the account cannot be
// the person's, after revoking what it obtained.
type Exchanger func(ctx context.Context, x Exchange) (Grant, error)

// Exchange is what an Exchanger is given.
type Exchange struct {
	// Config is the provider's OAuth client, with the callback's
	// RedirectURL.
	Config   *oauth2.Config
	Code     string
	Verifier string // the PKCE code verifier
	// Principal is the person the flow connects.
	Principal broker.Principal
	// Purpose is what the link was made for (LinkFor); Nonce the flow's
	// OpenID Connect nonce (Provider.Nonce); Session the one
	// Provider.Authorize began.
	Purpose, Nonce, Session string
	// Client is the HTTP client for the provider (no redirects).
	Client *http.Client
}

// Grant is what a code was exchanged for.
type Grant struct {
	Token  *oauth2.Token
	Scopes []string // as the provider granted them
	// Account is the provider's name of the account ("octocat",
	// "ana@example.com"), shown to the person and kept with the
	// connection; "" when not known.
	Account string
	// AccountID is the provider's stable ID of the account (GitHub's user
	// ID, Google's sub, Slack's user ID): a renamed account is the same
	// one. "" when not known.
	AccountID string
	// Via, with no Token, names the person's connection the new one is
	// made through (Auth0's, with Token Vault): Vault.ConnectVia.
	Via string
}

// ErrWrongAccount means the provider account is not the person's (at
// Slack, a Slack user other than the one the link was for).
var ErrWrongAccount = errors.New("connect: the account is not the person's")

// StandardExchange is the authorization-code exchange of
// golang.org/x/oauth2 with the PKCE verifier: the scopes are those the
// token response names, or those asked for when it names none.
func StandardExchange(ctx context.Context, x Exchange) (Grant, error) {
	tok, err := x.Config.Exchange(context.WithValue(ctx, oauth2.HTTPClient, x.Client), x.Code, oauth2.VerifierOption(x.Verifier))
	if err != nil {
		return Grant{}, err
	}
	return Grant{Token: tok, Scopes: granted(tok, x.Config.Scopes)}, nil
}

// Vault keeps what a flow obtains; *vault.Vault is one. ConnectAccount
// returns the account of the connection it replaced, if it knows one; an
// error that comes with a replaced account means the new connection is
// stored, but the replaced account's tokens could not be revoked at the
// provider.
type Vault interface {
	ConnectAccount(ctx context.Context, principal, service, accountName, accountID string, scopes []string, tok *oauth2.Token) (replaced string, err error)
	ConnectVia(ctx context.Context, principal, service, via, accountName, accountID string, scopes []string) (replaced string, err error)
}

// Recorder is the audit trail; *audit.Recorder is one.
type Recorder interface {
	Record(ctx context.Context, e audit.Event) (audit.Event, error)
}

// Refuser records refusals, counted; *broker.Broker is one.
type Refuser interface {
	Refuse(ctx context.Context, r broker.Refusal) error
}

// Options configure Flows. All but Connected, HTTPClient, Now, Rand and
// Logger are required.
type Options struct {
	// PublicURL is where people's browsers reach Handler: https, or http
	// on a loopback address (a laptop).
	PublicURL string
	// Key signs links: at least 32 bytes, secret.
	Key       []byte
	Store     store.Store
	Vault     Vault
	Audit     Recorder
	Refuser   Refuser
	Providers map[string]Provider // by service name: "github", "google", "slack"
	// Actions are what links may do with no provider, by name.
	Actions map[string]Action
	// SignIn names the identity provider among Providers, for providers
	// with SignInFirst.
	SignIn string
	// Connected runs after a connection is stored, before the browser's
	// page is finished, with a context the browser leaving does not end;
	// account is the provider's name of the account ("" if not known).
	Connected func(ctx context.Context, p broker.Principal, service, account string)
	// HTTPClient exchanges codes (default: 30 s timeout, no redirects, so
	// that a redirect never carries the client secret elsewhere).
	HTTPClient *http.Client
	Now        func() time.Time
	Rand       io.Reader
	Logger     *slog.Logger
}

// Flows runs connect flows.
type Flows struct {
	opts   Options
	public *url.URL
	secure bool // PublicURL is https: the cookie is Secure and __Host-
}

// Paths of Handler.
const (
	StartPath    = "/connect"
	CallbackPath = "/oauth/callback/" // + service
)

// StateTTL is how long a started flow waits for its callback.
const StateTTL = 10 * time.Minute

// Store kinds: the spent links, and the flows waiting for their callback.
const (
	spentKind = "connect-link-spent"
	stateKind = "connect-state"
)

// New returns Flows.
func New(opts Options) (*Flows, error) {
	switch {
	case len(opts.Key) < 32:
		return nil, errors.New("connect: Key must be at least 32 bytes")
	case opts.Store == nil || opts.Vault == nil || opts.Audit == nil || opts.Refuser == nil:
		return nil, errors.New("connect: Store, Vault, Audit and Refuser are required")
	case len(opts.Providers) == 0 && len(opts.Actions) == 0:
		return nil, errors.New("connect: no providers")
	}
	if !loopback.SecureOrigin(opts.PublicURL) {
		return nil, errors.New("connect: PublicURL must be an https origin with no path (or http on a loopback address), such as https://agenthub.example.com")
	}
	u, _ := url.Parse(strings.TrimSuffix(opts.PublicURL, "/"))
	for name, p := range opts.Providers {
		if sp, ok := opts.Providers[opts.SignIn]; p.SignInFirst && (!ok || sp.Finish == nil || sp.SignInFirst) {
			return nil, fmt.Errorf("connect: provider %s signs in first, and Options.SignIn names no identity provider", name)
		}
	}
	for name := range opts.Actions {
		if _, clash := opts.Providers[name]; clash || (store.Key{Kind: stateKind, ID: name}).Validate() != nil || strings.ContainsAny(name, "/?#") {
			return nil, fmt.Errorf("connect: invalid action name %q", name)
		}
	}
	for name, p := range opts.Providers {
		switch {
		case p.Config == nil || p.Config.Endpoint.AuthURL == "":
			return nil, fmt.Errorf("connect: provider %s needs its consent page's URL", name)
		case p.Authorize != nil && p.Exchange == nil:
			return nil, fmt.Errorf("connect: provider %s asks for tickets and needs its own Exchange", name)
		case p.Authorize == nil && (p.Config.ClientID == "" || p.Config.Endpoint.TokenURL == ""):
			return nil, fmt.Errorf("connect: provider %s needs a client ID and authorization and token URLs", name)
		}
		if (store.Key{Kind: stateKind, ID: name}).Validate() != nil || strings.ContainsAny(name, "/?#") {
			return nil, fmt.Errorf("connect: invalid service name %q", name)
		}
	}
	if opts.HTTPClient == nil {
		opts.HTTPClient = &http.Client{
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Rand == nil {
		opts.Rand = rand.Reader
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Connected == nil {
		opts.Connected = func(context.Context, broker.Principal, string, string) {}
	}
	return &Flows{opts: opts, public: u, secure: u.Scheme == "https"}, nil
}

// Services lists the services Flows can connect, sorted.
func (f *Flows) Services() []string {
	names := make([]string, 0, len(f.opts.Providers))
	for name := range f.opts.Providers {
		names = append(names, name)
	}
	slices.Sort(names)
	return names
}

// Link returns a link that connects p's account at service: good for
// LinkTTL and one use. Give it to p alone (a DM, an ephemeral reply).
func (f *Flows) Link(p broker.Principal, service string) (string, error) {
	return f.LinkFor(p, service, "")
}

// LinkFor is Link for a purpose, which the flow's Finish is given: what a
// sign-in at an identity provider is for.
func (f *Flows) LinkFor(p broker.Principal, service, purpose string) (string, error) {
	// Providers only: an action's links (an authenticator's set-up) are
	// made by whoever may hand them over (NewLink), never on a Slack
	// user's word.
	if _, ok := f.opts.Providers[service]; !ok {
		return "", fmt.Errorf("connect: unknown service %q", service)
	}
	return NewLink(f.opts.Key, f.public.String(), p, service, purpose, f.opts.Now().Add(LinkTTL), f.opts.Rand)
}

// NewLink signs a link under key, for the Flows at publicURL, that makes
// p do service (a provider's or an action's name) for purpose, until
// expires, once. Flows.LinkFor makes them for LinkTTL; an operator's
// command makes longer ones to hand over out of band.
func NewLink(key []byte, publicURL string, p broker.Principal, service, purpose string, expires time.Time, random io.Reader) (string, error) {
	if err := p.Validate(); err != nil {
		return "", err
	}
	var b [32]byte
	if _, err := io.ReadFull(random, b[:]); err != nil {
		return "", fmt.Errorf("connect: random: %w", err)
	}
	token, err := sign(key, link{Principal: p, Service: service, Purpose: purpose, Nonce: base64.RawURLEncoding.EncodeToString(b[:]), Expires: expires.Unix()})
	if err != nil {
		return "", err
	}
	return strings.TrimSuffix(publicURL, "/") + StartPath + "?" + url.Values{"t": {token}}.Encode(), nil
}

// Handler serves the start page, its Continue, and the callbacks.
func (f *Flows) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET "+StartPath, f.startPage)
	mux.HandleFunc("POST "+StartPath, f.start)
	mux.HandleFunc("GET "+CallbackPath+"{service}", f.callback)
	return mux
}

func (f *Flows) random() (string, error) {
	var b [32]byte
	if _, err := io.ReadFull(f.opts.Rand, b[:]); err != nil {
		return "", fmt.Errorf("connect: random: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b[:]), nil
}

func (f *Flows) redirectURL(service string) string {
	return f.public.String() + CallbackPath + service
}

// cookieName is the cookie that binds the flow of state to the browser
// that started it: one per flow, so that two flows at once in one browser
// (GitHub, then Google) do not undo each other. __Host- makes browsers
// keep it to this host, Secure, path /.
func (f *Flows) cookieName(state string) string {
	name := "agenthub-connect-" + digest(state)[:16]
	if f.secure {
		return "__Host-" + name
	}
	return name
}

// refuse records a refusal and shows its page.
func (f *Flows) refuse(w http.ResponseWriter, r *http.Request, actor, service, reason, op string, status int, p page) {
	if actor == "" {
		actor = "anonymous"
	}
	if err := f.opts.Refuser.Refuse(context.WithoutCancel(r.Context()), broker.Refusal{
		Actor: actor, Kind: audit.ConnectRefused, Reason: reason, Op: op, Resource: service,
	}); err != nil {
		f.opts.Logger.WarnContext(r.Context(), "connect refusal not recorded", "reason", reason, "error", err)
	}
	show(w, status, p)
}

// linkRefusal is the page for a link that cannot be used.
func linkRefusal(err error) page {
	if errors.Is(err, errLinkExpired) {
		return page{Title: "This link has expired", Lines: []string{
			"AgentHub's links work for a short while only. Ask again where you got it (in Slack: the button, or the /agenthub command) for a new one."}}
	}
	return page{Title: "This link is not valid", Lines: []string{
		"Ask again where you got it (in Slack: the button, or the /agenthub command) for a new one."}}
}

// checkLink verifies a link's token for op, and refuses it (on the record,
// with its page) when it is not valid, has expired or names a service not
// offered. It does not look at whether the link was spent.
func (f *Flows) checkLink(w http.ResponseWriter, r *http.Request, token, op string) (link, Provider, bool) {
	l, err := verify(f.opts.Key, token, f.opts.Now())
	reason := ""
	if err != nil {
		reason = err.Error()
	}
	prov, known := f.opts.Providers[l.Service]
	if act, ok := f.opts.Actions[l.Service]; ok {
		prov, known = Provider{Name: act.Name, Describe: act.Describe}, true
	}
	if err == nil && !known {
		reason, err = "unknown_service", errLinkInvalid
	}
	if err == nil {
		return l, prov, true
	}
	actor := "" // a link whose MAC fails names nobody
	if !l.Principal.IsZero() {
		actor = l.Principal.String()
	}
	f.refuse(w, r, actor, l.Service, reason, op, http.StatusBadRequest, linkRefusal(err))
	return link{}, Provider{}, false
}

// startPage says what Continue will connect for whom. It spends nothing.
func (f *Flows) startPage(w http.ResponseWriter, r *http.Request) {
	token := r.URL.Query().Get("t")
	l, prov, ok := f.checkLink(w, r, token, "connect_link")
	if !ok {
		return
	}
	d := Done{
		Title: "Connect " + prov.Name + " to AgentHub",
		Lines: []string{
			fmt.Sprintf("This connects your %s account for Slack user %s in workspace %s, as asked in Slack.", prov.Name, l.Principal.User, l.Principal.Team),
			fmt.Sprintf("%s will ask you to allow it. AgentHub keeps the access %s gives in its vault; agents act through it only as your policy and your approvals allow, and you can revoke it any time with /agenthub revoke %s.", prov.Name, prov.Name, l.Service),
		},
	}
	authURL := ""
	if prov.Config != nil {
		authURL = prov.Config.Endpoint.AuthURL
	}
	if prov.SignInFirst {
		// Continue goes to the identity provider first: the form may post
		// to where that redirect leads, and the person is told.
		idp := f.opts.Providers[f.opts.SignIn]
		authURL = idp.Config.Endpoint.AuthURL
		d.Lines = append(d.Lines, fmt.Sprintf("You sign in at %s first, as the identity linked to your Slack user (/agenthub link, once): only then does %s ask you.", idp.Name, prov.Name))
	}
	if prov.Config != nil {
		extra := slices.DeleteFunc(scopesFor(prov, l.Purpose)[len(prov.Config.Scopes):], func(s string) bool { return !slices.Contains(prov.OptionalScopes, s) })
		if len(extra) > 0 {
			d.Lines = append(d.Lines, fmt.Sprintf("This time it also asks %s for what the action you asked for needs: %s.", prov.Name, strings.Join(extra, ", ")))
		}
	}
	if prov.Describe != nil {
		d = prov.Describe(r.Context(), l.Principal, l.Purpose)
	}
	showStart(w, page{Title: d.Title, Lines: d.Lines, Service: prov.Name, Token: token, Action: StartPath}, origin(authURL))
}

// flowState is a started flow, waiting for its callback.
type flowState struct {
	Principal broker.Principal `json:"p"`
	Service   string           `json:"s"`
	Purpose   string           `json:"f,omitempty"`
	Verifier  string           `json:"v"`
	Nonce     string           `json:"n,omitempty"`  // OpenID Connect
	Session   string           `json:"as,omitempty"` // Provider.Authorize's
	Binding   string           `json:"b"`            // SHA-256 of the cookie's value, hex
	// AwaitSignIn: the flow waits for the sign-in before it
	// (Provider.SignInFirst); its callback is refused until then.
	AwaitSignIn bool      `json:"await_sign_in,omitempty"`
	Expires     time.Time `json:"e"`
	Spent       bool      `json:"spent,omitempty"`
}

func stateKey(state string) store.Key { return store.Key{Kind: stateKind, ID: digest(state)} }

func digest(s string) string {
	sum := sha256.Sum256([]byte(s))
	return hex.EncodeToString(sum[:])
}

// sameOrigin reports whether a POST came from a page of this origin: the
// browser says so in Sec-Fetch-Site or Origin. One that says neither (an
// old browser) is let through: the link itself is still needed.
func (f *Flows) sameOrigin(r *http.Request) bool {
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" {
		return site == "same-origin"
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		return origin == f.public.Scheme+"://"+f.public.Host
	}
	return true
}

// start spends the link and sends the browser to the provider.
func (f *Flows) start(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if !f.sameOrigin(r) {
		f.refuse(w, r, "", "", "cross_site_post", "connect_start", http.StatusForbidden, page{Title: "This did not come from AgentHub's page",
			Lines: []string{"Open the link AgentHub sent you in Slack, and press Continue there."}})
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, 4096)
	l, prov, ok := f.checkLink(w, r, r.PostFormValue("t"), "connect_start")
	if !ok {
		return
	}
	ttl := time.Unix(l.Expires, 0).Sub(f.opts.Now()) + time.Minute
	switch err := f.opts.Store.Create(ctx, store.Key{Kind: spentKind, ID: digest(l.Nonce)}, []byte("1"), max(ttl, time.Minute)); {
	case errors.Is(err, store.ErrExists):
		f.refuse(w, r, l.Principal.String(), l.Service, "link_spent", "connect_start", http.StatusBadRequest, page{Title: "This link was already used",
			Lines: []string{"Each connect link works once. Ask again in Slack (the Connect button, or /agenthub connect) for a new one."}})
		return
	case err != nil:
		f.unavailable(w, r, "spend link", err)
		return
	}
	if act, ok := f.opts.Actions[l.Service]; ok {
		d, err := act.Do(context.WithoutCancel(ctx), l.Principal, l.Purpose)
		f.done(w, r, l.Principal, l.Service, "link_action", d, err)
		return
	}
	state, fs, ok := f.begin(w, r, l.Principal, l.Service, l.Purpose, prov, prov.SignInFirst)
	if !ok {
		return
	}
	if prov.SignInFirst {
		// The person signs in at the identity provider first, as the
		// identity linked to the link's Slack user; only then does this
		// flow go on to the provider (finish).
		idp := f.opts.Providers[f.opts.SignIn]
		state1, fs1, ok := f.begin(w, r, l.Principal, f.opts.SignIn, signInPrefix+state, idp, false)
		if !ok {
			return
		}
		f.redirect(w, r, f.authURL(idp, f.opts.SignIn, state1, fs1))
		return
	}
	f.consent(w, r, prov, l.Service, state, fs)
}

// consent sends the browser to prov's consent page for the flow of
// state: its authorization URL, or the ticket its Authorize gets, whose
// session is kept with the flow.
func (f *Flows) consent(w http.ResponseWriter, r *http.Request, prov Provider, service, state string, fs flowState) {
	if prov.Authorize == nil {
		f.redirect(w, r, f.authURL(prov, service, state, fs))
		return
	}
	ctx := r.Context()
	t, err := prov.Authorize(ctx, Authorization{Principal: fs.Principal, RedirectURI: f.redirectURL(service), State: state,
		Challenge: oauth2.S256ChallengeFromVerifier(fs.Verifier), Scopes: scopesFor(prov, fs.Purpose)})
	if err != nil {
		f.logExchange(ctx, service, err)
		f.refuse(w, r, fs.Principal.String(), service, "authorize_failed", "connect_start", http.StatusBadGateway, page{Title: prov.Name + " could not be asked",
			Lines: []string{"Nothing was connected. Ask again in Slack (the Connect button, or /agenthub connect) for a new link."}})
		return
	}
	_, err = store.Update(ctx, f.opts.Store, stateKey(state), store.KeepTTL, func(cur []byte) ([]byte, error) {
		var cur2 flowState
		if cur == nil || json.Unmarshal(cur, &cur2) != nil || cur2.Spent {
			return nil, errors.New("connect: the flow ended before its consent")
		}
		cur2.Session = t.Session
		return json.Marshal(cur2)
	})
	if err != nil {
		f.unavailable(w, r, "keep the consent's session", err)
		return
	}
	f.redirect(w, r, t.URL)
}

// signInPrefix starts the purpose of the sign-in that a provider's flow
// (its state after the prefix) waits for (Provider.SignInFirst).
const signInPrefix = "connect:"

// SignInPurpose reports whether purpose is that of a sign-in before a
// connection (Provider.SignInFirst): its Finish checks the identity and
// does nothing else; the flow then goes on to the provider.
func SignInPurpose(purpose string) bool { return strings.HasPrefix(purpose, signInPrefix) }

// begin starts a flow of p at prov (service) for purpose: a single-use
// state, kept with a PKCE verifier (and a nonce, for a sign-in), bound to
// this browser by a cookie, and on the record. awaitSignIn keeps the flow
// from finishing until the sign-in before it passed. It writes the fault's
// page and returns false when it cannot.
func (f *Flows) begin(w http.ResponseWriter, r *http.Request, p broker.Principal, service, purpose string, prov Provider, awaitSignIn bool) (string, flowState, bool) {
	ctx := r.Context()
	state, err1 := f.random()
	binding, err2 := f.random()
	nonce, err3 := f.random()
	if err := errors.Join(err1, err2, err3); err != nil {
		f.unavailable(w, r, "random", err)
		return "", flowState{}, false
	}
	if !prov.Nonce {
		nonce = ""
	}
	fs := flowState{Principal: p, Service: service, Purpose: purpose, Verifier: oauth2.GenerateVerifier(), Nonce: nonce,
		Binding: digest(binding), Expires: f.opts.Now().Add(StateTTL), AwaitSignIn: awaitSignIn}
	value, err := json.Marshal(fs)
	if err != nil {
		f.unavailable(w, r, "encode state", err)
		return "", flowState{}, false
	}
	// Started is on the record before the browser leaves: a flow the
	// trail does not know of is not started.
	detail := map[string]string{"service": service}
	if purpose != "" && !SignInPurpose(purpose) {
		detail["purpose"] = purpose
	}
	if _, err := f.opts.Audit.Record(ctx, audit.Event{Kind: audit.ConnectStarted, Actor: p.String(), Detail: detail}); err != nil {
		f.unavailable(w, r, "record connect.started", err)
		return "", flowState{}, false
	}
	if err := f.opts.Store.Create(ctx, stateKey(state), value, StateTTL+time.Minute); err != nil {
		f.unavailable(w, r, "store state", err)
		return "", flowState{}, false
	}
	http.SetCookie(w, &http.Cookie{
		Name: f.cookieName(state), Value: binding, Path: "/", MaxAge: int(StateTTL / time.Second),
		Secure: f.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode,
	})
	return state, fs, true
}

// authURL is where the browser goes to consent (or sign in) for the flow
// of state.
func (f *Flows) authURL(prov Provider, service, state string, fs flowState) string {
	conf := *prov.Config
	conf.RedirectURL = f.redirectURL(service)
	conf.Scopes = scopesFor(prov, fs.Purpose)
	opts := append([]oauth2.AuthCodeOption{oauth2.S256ChallengeOption(fs.Verifier)}, prov.AuthOptions...)
	if prov.LoginHint {
		opts = append(opts, oauth2.SetAuthURLParam("login_hint", fs.Principal.String()))
	}
	if fs.Nonce != "" {
		opts = append(opts, oauth2.SetAuthURLParam("nonce", fs.Nonce))
	}
	return conf.AuthCodeURL(state, opts...)
}

// redirect sends the browser on to a provider, leaving no referrer.
func (f *Flows) redirect(w http.ResponseWriter, r *http.Request, to string) {
	w.Header().Set("Referrer-Policy", "no-referrer")
	w.Header().Set("Cache-Control", "no-store")
	http.Redirect(w, r, to, http.StatusSeeOther)
}

// unavailable is the page for a fault of AgentHub's own (the store or the
// audit trail): nothing was connected, and trying again is safe.
func (f *Flows) unavailable(w http.ResponseWriter, r *http.Request, what string, err error) {
	f.opts.Logger.ErrorContext(r.Context(), "connect flow failed", "step", what, "error", err)
	show(w, http.StatusServiceUnavailable, page{Title: "Nothing was connected",
		Lines: []string{"AgentHub could not finish this just now. Ask again in Slack in a moment for a new link."}})
}

// spend reads the flow a callback's state names and marks it spent in the
// same compare-and-swap: whatever follows, the state works once.
func (f *Flows) spend(ctx context.Context, state string) (flowState, string, error) {
	var fs flowState
	reason := ""
	_, err := store.Update(ctx, f.opts.Store, stateKey(state), store.KeepTTL, func(cur []byte) ([]byte, error) {
		fs, reason = flowState{}, ""
		if cur == nil {
			reason = "state_unknown"
			return nil, store.Keep
		}
		if err := json.Unmarshal(cur, &fs); err != nil {
			return nil, fmt.Errorf("connect: decode state: %w", err)
		}
		if fs.Spent {
			reason = "state_spent"
			return nil, store.Keep
		}
		spent := fs
		spent.Spent, spent.Verifier, spent.Nonce = true, "", ""
		return json.Marshal(spent)
	})
	return fs, reason, err
}

// callback finishes a flow: the provider sent the browser back.
func (f *Flows) callback(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	service := r.PathValue("service")
	q := r.URL.Query()
	state := q.Get("state")
	again := []string{"Nothing was connected. Ask again in Slack (the Connect button, or /agenthub connect) for a new link."}
	if state == "" || len(state) > 256 {
		f.refuse(w, r, "", service, "state_missing", "oauth_callback", http.StatusBadRequest, page{Title: "This is not a connect flow AgentHub started", Lines: again})
		return
	}
	fs, reason, err := f.spend(ctx, state)
	if err != nil {
		f.unavailable(w, r, "spend state", err)
		return
	}
	actor := fs.Principal.String()
	if fs.Principal.IsZero() {
		actor = ""
	}
	cookie, _ := r.Cookie(f.cookieName(state))
	switch {
	case reason == "state_unknown":
		f.refuse(w, r, "", service, reason, "oauth_callback", http.StatusBadRequest, page{Title: "This is not a connect flow AgentHub started, or it has expired", Lines: again})
		return
	case reason == "state_spent":
		f.refuse(w, r, actor, service, reason, "oauth_callback", http.StatusBadRequest, page{Title: "This connect flow was already finished", Lines: again})
		return
	case fs.Service != service:
		f.refuse(w, r, actor, service, "wrong_service", "oauth_callback", http.StatusBadRequest, page{Title: "This answer came back from the wrong service", Lines: again})
		return
	case !f.opts.Now().Before(fs.Expires):
		f.refuse(w, r, actor, service, "state_expired", "oauth_callback", http.StatusBadRequest, page{Title: "This connect flow took too long", Lines: again})
		return
	case fs.AwaitSignIn:
		f.refuse(w, r, actor, service, "sign_in_missing", "oauth_callback", http.StatusForbidden, page{Title: "You did not sign in first",
			Lines: []string{"Connecting this service needs a sign-in at your identity provider first. Nothing was connected."}})
		return
	case cookie == nil || subtle.ConstantTimeCompare([]byte(digest(cookie.Value)), []byte(fs.Binding)) != 1:
		f.refuse(w, r, actor, service, "other_browser", "oauth_callback", http.StatusForbidden, page{Title: "This connect flow was started in another browser",
			Lines: []string{"Open the link AgentHub sent you in Slack in this browser, or ask again for a new one. Nothing was connected."}})
		return
	}
	// The flow is over, whatever comes next: the cookie goes.
	http.SetCookie(w, &http.Cookie{Name: f.cookieName(state), Value: "", Path: "/", MaxAge: -1, Secure: f.secure, HttpOnly: true, SameSite: http.SameSiteLaxMode})
	prov := f.opts.Providers[service]
	if e := q.Get("error"); e != "" {
		reason := "provider_error"
		if e == "access_denied" {
			reason = "consent_denied"
		}
		f.refuse(w, r, actor, service, reason, "oauth_callback", http.StatusOK, page{Title: prov.Name + " was not connected",
			Lines: []string{fmt.Sprintf("%s did not give AgentHub access (you may have declined). Nothing was connected; you can ask again in Slack any time.", prov.Name)}})
		return
	}
	code := q.Get("code")
	if prov.Authorize != nil {
		code = q.Get("connect_code")
	}
	if code == "" {
		f.refuse(w, r, actor, service, "code_missing", "oauth_callback", http.StatusBadRequest, page{Title: prov.Name + " sent no authorization", Lines: again})
		return
	}
	conf := *prov.Config
	conf.RedirectURL = f.redirectURL(service)
	conf.Scopes = scopesFor(prov, fs.Purpose)
	x := Exchange{Config: &conf, Code: code, Verifier: fs.Verifier, Principal: fs.Principal, Client: f.opts.HTTPClient, Purpose: fs.Purpose, Nonce: fs.Nonce,
		Session: fs.Session}
	if prov.Finish != nil {
		f.finish(w, r, prov, x)
		return
	}
	exchange := prov.Exchange
	if exchange == nil {
		exchange = StandardExchange
	}
	g, err := exchange(ctx, x)
	switch {
	case errors.Is(err, ErrWrongAccount):
		f.refuse(w, r, actor, service, "wrong_account", "oauth_callback", http.StatusForbidden, page{Title: "That is not your " + prov.Name + " account",
			Lines: []string{fmt.Sprintf("This link was for Slack user %s, and %s says you signed in as someone else. Nothing was connected, and what %s gave was revoked.",
				fs.Principal.User, prov.Name, prov.Name)}})
		return
	case err == nil && g.Via == "" && (g.Token == nil || (g.Token.AccessToken == "" && g.Token.RefreshToken == "")):
		err = errors.New("no token in the response")
	}
	if err != nil {
		f.logExchange(ctx, service, err)
		f.refuse(w, r, actor, service, "exchange_failed", "oauth_callback", http.StatusBadGateway, page{Title: prov.Name + " did not complete the connection", Lines: again})
		return
	}
	cctx := context.WithoutCancel(ctx)
	var replaced string
	if g.Via != "" {
		replaced, err = f.opts.Vault.ConnectVia(cctx, fs.Principal.String(), service, g.Via, g.Account, g.AccountID, g.Scopes)
	} else {
		replaced, err = f.opts.Vault.ConnectAccount(cctx, fs.Principal.String(), service, g.Account, g.AccountID, g.Scopes, g.Token)
	}
	if err != nil && replaced == "" {
		f.unavailable(w, r, "store connection", err)
		return
	}
	if err != nil {
		// Stored, but the replaced account's tokens are not revoked at the
		// provider: the vault's error says so without any token.
		f.opts.Logger.WarnContext(ctx, "replaced connection not revoked at the provider", "service", service, "error", err)
	}
	show(w, http.StatusOK, page{Title: prov.Name + " is connected", Lines: connectedLines(prov.Name, g.Account, replaced, err == nil)})
	if fl, ok := w.(http.Flusher); ok {
		fl.Flush()
	}
	f.opts.Connected(cctx, fs.Principal, service, g.Account)
}

// finish ends a sign-in flow with the provider's Finish.
func (f *Flows) finish(w http.ResponseWriter, r *http.Request, prov Provider, x Exchange) {
	service := r.PathValue("service")
	d, err := prov.Finish(context.WithoutCancel(r.Context()), x)
	if err == nil && SignInPurpose(x.Purpose) {
		f.afterSignIn(w, r, x.Principal, strings.TrimPrefix(x.Purpose, signInPrefix))
		return
	}
	f.done(w, r, x.Principal, service, "oidc_callback", d, err)
}

// afterSignIn goes on with the flow of state, which waited for p's
// sign-in: it may now finish, and the browser goes to its provider.
func (f *Flows) afterSignIn(w http.ResponseWriter, r *http.Request, p broker.Principal, state string) {
	var fs flowState
	reason := ""
	_, err := store.Update(r.Context(), f.opts.Store, stateKey(state), store.KeepTTL, func(cur []byte) ([]byte, error) {
		fs, reason = flowState{}, ""
		if cur == nil {
			reason = "state_unknown"
			return nil, store.Keep
		}
		if err := json.Unmarshal(cur, &fs); err != nil {
			return nil, fmt.Errorf("connect: decode state: %w", err)
		}
		switch {
		case fs.Spent || !fs.AwaitSignIn || fs.Principal != p:
			reason = "state_spent"
			return nil, store.Keep
		case !f.opts.Now().Before(fs.Expires):
			reason = "state_expired"
			return nil, store.Keep
		}
		fs.AwaitSignIn = false
		return json.Marshal(fs)
	})
	if err != nil {
		f.unavailable(w, r, "resume after sign-in", err)
		return
	}
	prov, ok := f.opts.Providers[fs.Service]
	if reason != "" || !ok {
		f.refuse(w, r, p.String(), fs.Service, cmp.Or(reason, "unknown_service"), "oidc_callback", http.StatusBadRequest, page{Title: "This connect flow cannot go on",
			Lines: []string{"Nothing was connected. Ask again in Slack (the Connect button, or /agenthub connect) for a new link."}})
		return
	}
	f.consent(w, r, prov, fs.Service, state, fs)
}

// done shows the end of a sign-in or an action: its page, or its refusal
// (recorded), or a fault's page.
func (f *Flows) done(w http.ResponseWriter, r *http.Request, p broker.Principal, service, op string, d Done, err error) {
	if ref, ok := errors.AsType[*Refused](err); ok {
		kind := cmp.Or(ref.Kind, audit.ConnectRefused)
		if rerr := f.opts.Refuser.Refuse(context.WithoutCancel(r.Context()), broker.Refusal{
			Actor: p.String(), Kind: kind, Reason: ref.Reason, Op: op, Resource: service, RequestID: ref.RequestID,
		}); rerr != nil {
			f.opts.Logger.WarnContext(r.Context(), "refusal not recorded", "reason", ref.Reason, "error", rerr)
		}
		show(w, cmp.Or(ref.Status, http.StatusForbidden), ref.Page.page())
		return
	}
	if err != nil {
		f.logExchange(r.Context(), service, err)
		show(w, http.StatusBadGateway, page{Title: "This could not be finished",
			Lines: []string{"Nothing was changed, and this link is used up. Ask again where you got it for a new one."}})
		return
	}
	show(w, http.StatusOK, d.page())
}

// logExchange logs a failed exchange. oauth2's errors carry the provider's
// response body: only the status and error code are logged.
func (f *Flows) logExchange(ctx context.Context, service string, err error) {
	attrs := []any{"service", service}
	if re, ok := errors.AsType[*oauth2.RetrieveError](err); ok {
		attrs = append(attrs, "status", re.Response.StatusCode, "error_code", re.ErrorCode)
	} else {
		// Not the provider's answer (whose body oauth2 quotes): a fault
		// of the store, the trail or the network, which names no token.
		attrs = append(attrs, "error_type", fmt.Sprintf("%T", err), "error", err)
	}
	f.opts.Logger.WarnContext(ctx, "code exchange failed", attrs...)
}

// connectedLines say what was connected, and what it replaced (and
// whether the provider confirmed taking the replaced account's access
// back).
func connectedLines(name, account, replaced string, confirmed bool) []string {
	var lines []string
	if account != "" {
		lines = append(lines, fmt.Sprintf("AgentHub now acts, as you approve, through the %s account %s.", name, account))
		switch {
		case replaced == "" || replaced == account:
		case confirmed:
			lines = append(lines, fmt.Sprintf("This replaces the %s account %s, whose access AgentHub gave back to %s.", name, replaced, name))
		default:
			lines = append(lines, fmt.Sprintf("This replaces the %s account %s. %s did not confirm taking its access back yet; AgentHub keeps asking until it does.", name, replaced, name))
		}
	}
	return append(lines, "AgentHub goes on in Slack with anything that waited for this connection.", "You can close this tab.")
}

// origin is the scheme and host of an absolute URL, for a CSP source.
func origin(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme == "" || u.Host == "" {
		return ""
	}
	return u.Scheme + "://" + u.Host
}

// granted is the scopes the provider says it granted (the token response's
// scope, space- or comma-separated), or those asked for when it says none.
func granted(tok *oauth2.Token, asked []string) []string {
	s, _ := tok.Extra("scope").(string)
	if strings.TrimSpace(s) == "" {
		return slices.Clone(asked)
	}
	return strings.FieldsFunc(s, func(r rune) bool { return r == ' ' || r == ',' })
}
