// Package config reads AgentHub's settings from the environment into one
// Config, validated once at start.
//
// Every secret may be given either directly (NAME) or as a path to a file
// holding it (NAME_FILE), the convention of Docker and Kubernetes secrets.
// Validation reports every missing or malformed setting at once, by name,
// and never echoes a secret's value.
package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"slices"
	"strings"

	"github.com/agenthub/agenthub/internal/loopback"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/store"
)

// DefaultStore is the embedded store used when AGENTHUB_STORE is unset.
const DefaultStore = "bolt:agenthub.db"

// DefaultRedisPrefix starts every Redis key when AGENTHUB_REDIS_PREFIX is
// unset.
const DefaultRedisPrefix = "agenthub"

// Need says which groups of settings a command requires; settings outside
// them are still checked when present, but may be missing.
type Need uint

// The groups of settings.
const (
	NeedSlack Need = 1 << iota // SLACK_APP_TOKEN, SLACK_BOT_TOKEN
	NeedVault                  // AGENTHUB_VAULT_KEY
	NeedAudit                  // AGENTHUB_AUDIT_KEY
)

// Config is every setting AgentHub reads.
type Config struct {
	// Slack (Socket Mode).
	SlackAppToken secret.Secret // SLACK_APP_TOKEN, xapp-…
	SlackBotToken secret.Secret // SLACK_BOT_TOKEN, xoxb-…
	SlackAPIURL   string        // SLACK_API_URL, for tests against a fake Slack
	AuditChannel  string        // AGENTHUB_AUDIT_CHANNEL

	// State.
	Store       string // AGENTHUB_STORE: bolt:PATH, redis://…, rediss://…
	RedisPrefix string // AGENTHUB_REDIS_PREFIX

	// Keys.
	VaultKey     secret.Secret   // AGENTHUB_VAULT_KEY: base64 of 32 bytes
	VaultOldKeys []secret.Secret // AGENTHUB_VAULT_OLD_KEYS: comma-separated, for rotation
	AuditKey     secret.Secret   // AGENTHUB_AUDIT_KEY: base64 of at least 32 bytes

	// Demo runs the Slack app against the simulated providers of
	// internal/sim (AGENTHUB_DEMO=1), so a team can try it in a real
	// workspace without any GitHub or Google setup.
	Demo bool // AGENTHUB_DEMO
	// SimURL, in demo mode, is the base URL of simulated providers served
	// by "bot sim" (AGENTHUB_SIM_URL), so that several replicas share one
	// simulated world; "" simulates them inside the process. Loopback
	// only: tokens go to it over plain HTTP.
	SimURL string
	// Policy is a policy file (AGENTHUB_POLICY); "" is the embedded default.
	Policy string

	// PublicURL is where people's browsers reach the bot's public
	// listener, for the OAuth connect flow (AGENTHUB_PUBLIC_URL): https, or
	// http on a loopback address. PublicAddr is the address that listener
	// binds (AGENTHUB_PUBLIC_ADDR). Both or neither; without them,
	// connecting through OAuth is off.
	PublicURL  string
	PublicAddr string

	// The real providers' OAuth clients: a service is on when its client
	// ID and secret are both set (without AGENTHUB_DEMO).
	GitHubApp    OAuthClient // GITHUB_APP_CLIENT_ID, GITHUB_APP_CLIENT_SECRET: a GitHub App
	GitHubAPIURL string      // GITHUB_API_URL: GitHub Enterprise Server's REST API, https://HOST/api/v3/
	GitHubWebURL string      // GITHUB_WEB_URL: where its people sign in, https://HOST
	Google       OAuthClient // GOOGLE_CLIENT_ID, GOOGLE_CLIENT_SECRET
	SlackClient  OAuthClient // SLACK_CLIENT_ID, SLACK_CLIENT_SECRET: the Slack app's, for user tokens
	// GitHubWebhookSecret checks the GitHub App's webhook deliveries
	// (GITHUB_WEBHOOK_SECRET); unset, none are accepted.
	GitHubWebhookSecret secret.Secret

	// The identity provider (OpenID Connect): people link their Slack user
	// to their identity there, and risky actions ask that identity to sign
	// in again. On when all three are set (and AGENTHUB_PUBLIC_URL).
	OIDCIssuer string      // OIDC_ISSUER: https (or loopback http), discovery under it
	OIDC       OAuthClient // OIDC_CLIENT_ID, OIDC_CLIENT_SECRET
	// OIDCACRValues is sent as acr_values (OIDC_ACR_VALUES; default
	// Auth0's multi-factor policy, "-" for none); OIDCAMR is what the
	// id_token's amr must contain (OIDC_AMR; default mfa, "-" for no check).
	OIDCACRValues string
	OIDCAMR       string
	// LLM is the model the LLM planner asks; off (the rules planner
	// plans) without OPENAI_API_KEY.
	LLM LLM

	// Auth0 is Auth0 Token Vault as the vault's backend
	// (AGENTHUB_VAULT=auth0); off (the vault keeps provider tokens
	// itself) by default.
	Auth0 Auth0

	// Admins are AgentHub's administrators, Slack user IDs
	// (AGENTHUB_ADMINS, comma-separated): without an identity provider,
	// one of them (never the person) approves each enrolment and reset of
	// an authenticator.
	Admins []string

	// Operations.
	HTTPAddr  string     // AGENTHUB_HTTP_ADDR
	LogLevel  slog.Level // AGENTHUB_LOG_LEVEL: debug, info, warn, error
	LogFormat string     // AGENTHUB_LOG_FORMAT: json or text
}

// LLM is an OpenAI-compatible chat-completions endpoint: OPENAI_API_KEY
// (or _FILE), OPENAI_BASE_URL (https, or http on loopback, such as a local
// Ollama: the key travels to it) and AGENTHUB_LLM_MODEL.
type LLM struct {
	APIKey  secret.Secret
	BaseURL string // "" is OpenAI's
	Model   string
}

// On reports whether the LLM planner is set up.
func (l LLM) On() bool { return !l.APIKey.IsZero() }

// Auth0 is Auth0 Token Vault as the vault's backend: AGENTHUB_VAULT=auth0,
// AUTH0_DOMAIN, AUTH0_CLIENT_ID, AUTH0_CLIENT_SECRET (or _FILE), and
// AUTH0_CONNECTIONS, which names each service's connection at Auth0.
type Auth0 struct {
	Domain string
	// URL is the tenant's (AUTH0_URL, default https://Domain/): a test
	// points it at a fake on loopback.
	URL    string
	Client OAuthClient
	// Connections: service → Auth0 connection (default
	// DefaultAuth0Connections).
	Connections map[string]string
}

// On reports whether the vault's backend is Auth0 Token Vault.
func (a Auth0) On() bool { return a.Domain != "" }

// DefaultAuth0Connections are Auth0's usual connections of the services.
const DefaultAuth0Connections = "github=github,google=google-oauth2"

func (l *loader) auth0(oidcIssuer string, oidc OAuthClient, publicURL string) Auth0 {
	if l.oneOf("AGENTHUB_VAULT", "local", "local", "auth0") != "auth0" {
		return Auth0{}
	}
	a := Auth0{Domain: strings.ToLower(strings.TrimSpace(l.getenv("AUTH0_DOMAIN"))), Client: l.client("AUTH0_CLIENT_ID", "AUTH0_CLIENT_SECRET"),
		URL: l.providerURL("AUTH0_URL", "https://acme.eu.auth0.com/"), Connections: map[string]string{}}
	if a.URL == "" && a.Domain != "" {
		a.URL = "https://" + a.Domain + "/"
	}
	switch {
	case a.Domain == "":
		l.problems = append(l.problems, Problem{Name: "AUTH0_DOMAIN", Missing: true, Message: "required with AGENTHUB_VAULT=auth0: the tenant's domain, such as acme.eu.auth0.com"})
	case strings.ContainsAny(a.Domain, "/:@?# "):
		l.bad("AUTH0_DOMAIN", "must be a host name alone, such as acme.eu.auth0.com")
	case oidcIssuer == "" || !strings.EqualFold(strings.TrimSuffix(oidcIssuer, "/"), strings.TrimSuffix(a.URL, "/")):
		// The person's Auth0 refresh token comes from their sign-in.
		l.bad("OIDC_ISSUER", "with AGENTHUB_VAULT=auth0 it must be the same tenant: "+a.URL)
	}
	switch {
	case a.Client.ID == "" && !l.reported("AUTH0_CLIENT_ID"):
		l.problems = append(l.problems, Problem{Name: "AUTH0_CLIENT_ID", Missing: true, Message: "required with AGENTHUB_VAULT=auth0"})
	case a.Client.ID != "" && (a.Client.ID != oidc.ID || a.Client.Secret.Reveal() != oidc.Secret.Reveal()):
		// The refresh token Token Vault exchanges is the sign-in's, and
		// Auth0 binds it to the application it was issued to.
		l.bad("AUTH0_CLIENT_ID", "with AGENTHUB_VAULT=auth0 it must be the same application as OIDC_CLIENT_ID, with the same secret: the sign-in's refresh token belongs to it")
	}
	if publicURL == "" && l.getenv("AGENTHUB_PUBLIC_URL") == "" {
		l.bad("AGENTHUB_PUBLIC_URL", "required with AGENTHUB_VAULT=auth0: people connect their accounts through it")
	}
	raw := strings.TrimSpace(l.getenv("AUTH0_CONNECTIONS"))
	if raw == "" {
		raw = DefaultAuth0Connections
	}
	for _, pair := range strings.Split(raw, ",") {
		svc, conn, ok := strings.Cut(strings.TrimSpace(pair), "=")
		svc, conn = strings.TrimSpace(svc), strings.TrimSpace(conn)
		switch {
		case !ok || conn == "" || strings.ContainsAny(conn, "/?# "):
			l.bad("AUTH0_CONNECTIONS", "must be service=connection pairs, comma-separated, such as "+DefaultAuth0Connections)
			return a
		case svc == "slack":
			// AgentHub checks that a Slack user token is the link's Slack
			// user's; through Token Vault it cannot yet, so none is taken.
			l.bad("AUTH0_CONNECTIONS", "names slack: through Token Vault AgentHub cannot yet check that the Slack account connected is the person's own, so connect Slack with SLACK_CLIENT_ID instead")
			return a
		case svc != "github" && svc != "google":
			l.bad("AUTH0_CONNECTIONS", "names "+svc+": the services are github and google")
			return a
		}
		a.Connections[svc] = conn
	}
	return a
}

// DefaultLLMModel is the model asked when AGENTHUB_LLM_MODEL is not set.
const DefaultLLMModel = "gpt-4o-mini"

func (l *loader) llm() LLM {
	c := LLM{APIKey: l.secret("OPENAI_API_KEY", false), BaseURL: l.providerURL("OPENAI_BASE_URL", "https://api.openai.com/v1"),
		Model: strings.TrimSpace(l.getenv("AGENTHUB_LLM_MODEL"))}
	if c.Model == "" {
		c.Model = DefaultLLMModel
	}
	return c
}

// LoadLLM reads the LLM planner's settings alone, for the terminal demo,
// which needs no other.
func LoadLLM(getenv func(string) string, readFile func(string) ([]byte, error)) (LLM, error) {
	l := loader{getenv: getenv, readFile: readFile}
	c := l.llm()
	if len(l.problems) > 0 {
		return LLM{}, &Error{Problems: l.problems}
	}
	return c, nil
}

// OAuthClient is an OAuth client's ID and secret.
type OAuthClient struct {
	ID     string
	Secret secret.Secret
}

// Problem is one missing or malformed setting.
type Problem struct {
	Name    string // the environment variable
	Missing bool
	Message string // safe to show: never holds a secret's value
}

// Error lists every problem found.
type Error struct {
	Problems []Problem
}

func (e *Error) Error() string {
	var b strings.Builder
	b.WriteString("configuration:")
	for _, p := range e.Problems {
		fmt.Fprintf(&b, "\n  %s: %s", p.Name, p.Message)
	}
	return b.String()
}

// Missing returns the names of the required settings that were not set.
func (e *Error) Missing() []string {
	var out []string
	for _, p := range e.Problems {
		if p.Missing {
			out = append(out, p.Name)
		}
	}
	return out
}

// Load reads the configuration. getenv is os.Getenv in production and a
// map lookup in tests; readFile reads NAME_FILE secrets (os.ReadFile).
// The error, when not nil, is an *Error.
func Load(getenv func(string) string, readFile func(string) ([]byte, error), need Need) (*Config, error) {
	l := loader{getenv: getenv, readFile: readFile}
	c := &Config{
		SlackAppToken: l.secret("SLACK_APP_TOKEN", need&NeedSlack != 0),
		SlackBotToken: l.secret("SLACK_BOT_TOKEN", need&NeedSlack != 0),
		SlackAPIURL:   l.providerURL("SLACK_API_URL", "https://slack.com/api/"),
		AuditChannel:  getenv("AGENTHUB_AUDIT_CHANNEL"),
		Store:         l.store("AGENTHUB_STORE"),
		RedisPrefix:   l.prefix("AGENTHUB_REDIS_PREFIX"),
		VaultKey:      l.key("AGENTHUB_VAULT_KEY", need&NeedVault != 0, 32, 32),
		AuditKey:      l.key("AGENTHUB_AUDIT_KEY", need&NeedAudit != 0, 32, 1024),
		Demo:          l.oneOf("AGENTHUB_DEMO", "0", "0", "1") == "1",
		SimURL:        l.simURL("AGENTHUB_SIM_URL"),
		Policy:        getenv("AGENTHUB_POLICY"),
		PublicURL:     l.publicURL("AGENTHUB_PUBLIC_URL"),
		PublicAddr:    getenv("AGENTHUB_PUBLIC_ADDR"),
		HTTPAddr:      getenv("AGENTHUB_HTTP_ADDR"),
		LogLevel:      l.level("AGENTHUB_LOG_LEVEL"),
		LogFormat:     l.oneOf("AGENTHUB_LOG_FORMAT", "json", "json", "text"),
		GitHubApp:     l.client("GITHUB_APP_CLIENT_ID", "GITHUB_APP_CLIENT_SECRET"),
		GitHubAPIURL:  l.providerURL("GITHUB_API_URL", "https://ghe.example.com/api/v3/"),
		GitHubWebURL:  l.providerURL("GITHUB_WEB_URL", "https://ghe.example.com"),
		Google:        l.client("GOOGLE_CLIENT_ID", "GOOGLE_CLIENT_SECRET"),
		SlackClient:   l.client("SLACK_CLIENT_ID", "SLACK_CLIENT_SECRET"),
		OIDCIssuer:    l.providerURL("OIDC_ISSUER", "https://example.eu.auth0.com/"),
		OIDC:          l.client("OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET"),
		OIDCACRValues: strings.TrimSpace(getenv("OIDC_ACR_VALUES")),
		OIDCAMR:       strings.TrimSpace(getenv("OIDC_AMR")),
		Admins:        l.slackUsers("AGENTHUB_ADMINS"),
		LLM:           l.llm(),
	}
	c.Auth0 = l.auth0(c.OIDCIssuer, c.OIDC, c.PublicURL)
	switch {
	case c.OIDCIssuer != "" && c.OIDC.ID == "" && !l.reported("OIDC_CLIENT_ID"):
		l.problems = append(l.problems, Problem{Name: "OIDC_CLIENT_ID", Missing: true, Message: "required with OIDC_ISSUER"})
	case c.OIDCIssuer == "" && c.OIDC.ID != "" && !l.reported("OIDC_ISSUER"):
		l.problems = append(l.problems, Problem{Name: "OIDC_ISSUER", Missing: true, Message: "required with OIDC_CLIENT_ID"})
	case c.OIDCIssuer != "" && c.PublicURL == "" && l.getenv("AGENTHUB_PUBLIC_URL") == "":
		l.bad("AGENTHUB_PUBLIC_URL", "required with OIDC_ISSUER: the identity provider sends browsers back to it")
	case c.OIDCAMR == "-" && c.OIDCACRValues == "-":
		l.bad("OIDC_AMR", "with OIDC_ACR_VALUES=- too, nothing would show that a sign-in used a second factor: keep one of them")
	}
	c.GitHubWebhookSecret = l.secret("GITHUB_WEBHOOK_SECRET", false)
	if s := c.GitHubWebhookSecret; !s.IsZero() && len(s.Reveal()) < 16 {
		l.bad("GITHUB_WEBHOOK_SECRET", "must be at least 16 characters (generate one with: openssl rand -hex 32)")
	}
	if (l.getenv("GITHUB_API_URL") == "") != (l.getenv("GITHUB_WEB_URL") == "") {
		l.bad("GITHUB_WEB_URL", "set GITHUB_API_URL and GITHUB_WEB_URL together (GitHub Enterprise Server), or neither (github.com)")
	}
	c.VaultOldKeys = l.keyList("AGENTHUB_VAULT_OLD_KEYS")
	if p := c.SlackAppToken; !p.IsZero() && !strings.HasPrefix(p.Reveal(), "xapp-") {
		l.bad("SLACK_APP_TOKEN", "must be an app-level token (xapp-…) with the connections:write scope")
	}
	if p := c.SlackBotToken; !p.IsZero() && !strings.HasPrefix(p.Reveal(), "xoxb-") {
		l.bad("SLACK_BOT_TOKEN", "must be a bot token (xoxb-…)")
	}
	switch {
	case c.PublicURL != "" && c.PublicAddr == "":
		l.bad("AGENTHUB_PUBLIC_ADDR", "required with AGENTHUB_PUBLIC_URL: the address the public listener binds, such as :8443")
	case c.PublicURL == "" && c.PublicAddr != "" && l.getenv("AGENTHUB_PUBLIC_URL") == "":
		l.bad("AGENTHUB_PUBLIC_URL", "required with AGENTHUB_PUBLIC_ADDR: where browsers reach that listener, such as https://agenthub.example.com")
	}
	if c.SimURL != "" && !c.Demo {
		l.bad("AGENTHUB_SIM_URL", "simulated providers are for the demo: set AGENTHUB_DEMO=1 too, or leave it out")
	}
	if len(l.problems) > 0 {
		return nil, &Error{Problems: l.problems}
	}
	return c, nil
}

// StoreSettings say where AgentHub's state lives. Load reads them with
// everything else; commands that open a store without needing the rest
// (audit export and verify, the demo's -store) read them alone with
// LoadStore, so that each setting is parsed in one place.
type StoreSettings struct {
	URL         string // AGENTHUB_STORE; DefaultStore when unset
	RedisPrefix string // AGENTHUB_REDIS_PREFIX; DefaultRedisPrefix when unset
}

// StoreSettings returns the store settings Load read.
func (c *Config) StoreSettings() StoreSettings {
	return StoreSettings{URL: c.Store, RedisPrefix: c.RedisPrefix}
}

// LoadStore reads AGENTHUB_STORE and AGENTHUB_REDIS_PREFIX alone, checked
// as Load checks them. The error, when not nil, is an *Error.
func LoadStore(getenv func(string) string) (StoreSettings, error) {
	l := loader{getenv: getenv}
	s := StoreSettings{URL: l.store("AGENTHUB_STORE"), RedisPrefix: l.prefix("AGENTHUB_REDIS_PREFIX")}
	if len(l.problems) > 0 {
		return StoreSettings{}, &Error{Problems: l.problems}
	}
	return s, nil
}

type loader struct {
	getenv   func(string) string
	readFile func(string) ([]byte, error)
	problems []Problem
}

func (l *loader) bad(name, msg string) {
	l.problems = append(l.problems, Problem{Name: name, Message: msg})
}

// raw returns a secret's value from NAME or NAME_FILE.
func (l *loader) raw(name string) (string, bool) {
	direct, file := l.getenv(name), l.getenv(name+"_FILE")
	switch {
	case direct != "" && file != "":
		l.bad(name, fmt.Sprintf("set either %s or %s_FILE, not both", name, name))
		return "", false
	case file != "":
		b, err := l.readFile(file)
		if err != nil {
			// The path is not secret; the error from the file system names
			// only the path.
			l.bad(name, fmt.Sprintf("cannot read %s_FILE: %v", name, err))
			return "", false
		}
		v := strings.TrimSpace(string(b))
		if v == "" {
			l.bad(name, fmt.Sprintf("%s_FILE names an empty file", name))
			return "", false
		}
		return v, true
	case direct != "":
		return strings.TrimSpace(direct), true
	}
	return "", false
}

func (l *loader) secret(name string, required bool) secret.Secret {
	v, ok := l.raw(name)
	if !ok {
		if required && !l.reported(name) {
			l.problems = append(l.problems, Problem{Name: name, Missing: true, Message: "required but not set (set it or " + name + "_FILE)"})
		}
		return secret.Secret{}
	}
	return secret.New(v)
}

func (l *loader) reported(name string) bool {
	for _, p := range l.problems {
		if p.Name == name {
			return true
		}
	}
	return false
}

// key reads a base64-encoded key of min to max bytes.
func (l *loader) key(name string, required bool, min, max int) secret.Secret {
	s := l.secret(name, required)
	if s.IsZero() {
		return s
	}
	b, err := decodeKey(s.Reveal())
	switch {
	case err != nil:
		l.bad(name, "is not valid base64 (generate one with: openssl rand -base64 32)")
		return secret.Secret{}
	case len(b) < min || len(b) > max:
		if min == max {
			l.bad(name, fmt.Sprintf("must decode to exactly %d bytes, got %d (generate one with: openssl rand -base64 32)", min, len(b)))
		} else {
			l.bad(name, fmt.Sprintf("must decode to at least %d bytes, got %d (generate one with: openssl rand -base64 32)", min, len(b)))
		}
		return secret.Secret{}
	}
	return s
}

func (l *loader) keyList(name string) []secret.Secret {
	s := l.secret(name, false)
	if s.IsZero() {
		return nil
	}
	var out []secret.Secret
	for i, part := range strings.Split(s.Reveal(), ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if b, err := decodeKey(part); err != nil || len(b) != 32 {
			l.bad(name, fmt.Sprintf("key %d of the list is not base64 of 32 bytes", i+1))
			continue
		}
		out = append(out, secret.New(part))
	}
	return out
}

// KeyBytes decodes a key setting that Load has checked (standard or URL
// base64, padded or not).
func KeyBytes(s secret.Secret) ([]byte, error) { return decodeKey(s.Reveal()) }

func decodeKey(s string) ([]byte, error) {
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.URLEncoding, base64.RawStdEncoding, base64.RawURLEncoding} {
		if b, err := enc.DecodeString(s); err == nil {
			return b, nil
		}
	}
	return nil, errors.New("not base64")
}

func (l *loader) url(name string) string {
	v := l.getenv(name)
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		l.bad(name, "must be an http(s) URL such as https://slack.com/api/")
		return ""
	}
	return v
}

// slackUsers reads a comma-separated list of Slack user IDs (U… or W…).
func (l *loader) slackUsers(name string) []string {
	var out []string
	for _, f := range strings.Split(l.getenv(name), ",") {
		id := strings.TrimSpace(f)
		if id == "" {
			continue
		}
		valid := len(id) >= 3 && len(id) <= 32 && (id[0] == 'U' || id[0] == 'W') && !strings.ContainsFunc(id, func(r rune) bool {
			return (r < 'A' || r > 'Z') && (r < '0' || r > '9')
		})
		if !valid {
			l.bad(name, "must be Slack user IDs separated by commas, such as U012ABCDEF,U034GHIJKL (a profile's ⋮ menu → Copy member ID)")
			return nil
		}
		if !slices.Contains(out, id) {
			out = append(out, id)
		}
	}
	return out
}

// client reads an OAuth client: both halves, or neither.
func (l *loader) client(idName, secretName string) OAuthClient {
	c := OAuthClient{ID: strings.TrimSpace(l.getenv(idName)), Secret: l.secret(secretName, false)}
	switch {
	case c.ID != "" && c.Secret.IsZero() && !l.reported(secretName):
		l.problems = append(l.problems, Problem{Name: secretName, Missing: true, Message: "required with " + idName + " (set it or " + secretName + "_FILE)"})
	case c.ID == "" && !c.Secret.IsZero():
		l.problems = append(l.problems, Problem{Name: idName, Missing: true, Message: "required with " + secretName})
	}
	return c
}

// providerURL accepts https, or http on a loopback address (a test's
// fake): tokens and client secrets travel to it.
func (l *loader) providerURL(name, example string) string {
	v := l.getenv(name)
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" ||
		(u.Scheme != "https" && (u.Scheme != "http" || !loopback.Is(u.Hostname()))) {
		l.bad(name, "must be an https:// URL such as "+example)
		return ""
	}
	return v
}

// publicURL accepts https, or http on a loopback address (a laptop): OAuth
// codes and the flow's cookie travel to it.
func (l *loader) publicURL(name string) string {
	v := strings.TrimSuffix(l.getenv(name), "/")
	if v == "" {
		return ""
	}
	if !loopback.SecureOrigin(v) {
		l.bad(name, "must be an https:// origin with no path (or http:// on a loopback address), such as https://agenthub.example.com")
		return ""
	}
	return v
}

// simURL accepts only http:// on a loopback address: the vault sends the
// simulated providers' tokens there in the clear.
func (l *loader) simURL(name string) string {
	v := l.getenv(name)
	if v == "" {
		return ""
	}
	u, err := url.Parse(v)
	if err != nil || u.Scheme != "http" || u.Host == "" || u.User != nil || !loopback.Is(u.Hostname()) {
		l.bad(name, "must be the http:// address of 'bot sim' on a loopback interface, such as http://127.0.0.1:8090")
		return ""
	}
	return v
}

func (l *loader) store(name string) string {
	v := l.getenv(name)
	if v == "" {
		return DefaultStore
	}
	if err := CheckStoreURL(v); err != nil {
		l.bad(name, err.Error())
		return ""
	}
	return v
}

// CheckStoreURL reports whether a store URL has a supported form. Its error
// names the URL without its password.
func CheckStoreURL(v string) error {
	switch {
	case strings.HasPrefix(v, "bolt:"):
		if strings.TrimPrefix(v, "bolt:") == "" {
			return errors.New("bolt: needs a file path, e.g. bolt:agenthub.db")
		}
		return nil
	case strings.HasPrefix(v, "redis://"), strings.HasPrefix(v, "rediss://"):
		if _, err := url.Parse(v); err != nil {
			return fmt.Errorf("%s is not a valid URL", store.RedactURL(v))
		}
		return nil
	}
	return fmt.Errorf("unsupported store %q: use bolt:PATH, redis://HOST:PORT/DB or rediss://…", store.RedactURL(v))
}

func (l *loader) prefix(name string) string {
	v := l.getenv(name)
	if v == "" {
		return DefaultRedisPrefix
	}
	if strings.ContainsAny(v, "{}: \t\r\n") {
		l.bad(name, "must not contain braces, colons or spaces")
		return ""
	}
	return v
}

func (l *loader) level(name string) slog.Level {
	var lv slog.Level
	v := l.getenv(name)
	if v == "" {
		return slog.LevelInfo
	}
	if err := lv.UnmarshalText([]byte(v)); err != nil {
		l.bad(name, "must be debug, info, warn or error")
	}
	return lv
}

func (l *loader) oneOf(name, def string, allowed ...string) string {
	v := l.getenv(name)
	if v == "" {
		return def
	}
	for _, a := range allowed {
		if v == a {
			return v
		}
	}
	l.bad(name, "must be one of "+strings.Join(allowed, ", "))
	return def
}

// LogValue renders the configuration for logs: secrets are REDACTED by
// their type, and the store URL loses its password.
func (c *Config) LogValue() slog.Value {
	return slog.GroupValue(
		slog.Bool("slack_configured", !c.SlackAppToken.IsZero() && !c.SlackBotToken.IsZero()),
		slog.String("slack_api_url", c.SlackAPIURL),
		slog.String("audit_channel", c.AuditChannel),
		slog.String("store", store.RedactURL(c.Store)),
		slog.String("redis_prefix", c.RedisPrefix),
		slog.Int("vault_old_keys", len(c.VaultOldKeys)),
		slog.String("sim_url", c.SimURL),
		slog.String("public_url", c.PublicURL),
		slog.String("public_addr", c.PublicAddr),
		slog.String("http_addr", c.HTTPAddr),
		slog.String("github_app_client_id", c.GitHubApp.ID),
		slog.String("github_api_url", c.GitHubAPIURL),
		slog.String("google_client_id", c.Google.ID),
		slog.String("slack_client_id", c.SlackClient.ID),
		slog.Bool("github_webhook", !c.GitHubWebhookSecret.IsZero()),
		slog.String("oidc_issuer", c.OIDCIssuer),
		slog.String("oidc_client_id", c.OIDC.ID),
		slog.Any("admins", c.Admins),
		slog.Bool("auth0_token_vault", c.Auth0.On()),
		slog.String("auth0_domain", c.Auth0.Domain),
		slog.Bool("llm", c.LLM.On()),
		slog.String("llm_base_url", c.LLM.BaseURL),
		slog.String("llm_model", c.LLM.Model),
		slog.String("log_level", c.LogLevel.String()),
		slog.String("log_format", c.LogFormat),
	)
}

// String is LogValue's text, so that printing a Config with %v shows no
// secret either.
func (c *Config) String() string { return c.LogValue().String() }
