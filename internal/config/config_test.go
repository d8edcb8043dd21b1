package config

import (
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/google/go-cmp/cmp"
)

func env(m map[string]string) func(string) string {
	return func(k string) string { return m[k] }
}

func key32(b byte) string {
	return base64.StdEncoding.EncodeToString([]byte(strings.Repeat(string(rune('a'+b%26)), 32)))
}

func TestLoadDefaults(t *testing.T) {
	c, err := Load(env(nil), os.ReadFile, 0)
	if err != nil {
		t.Fatalf("Load with nothing set and nothing needed: %v", err)
	}
	if c.Store != DefaultStore || c.RedisPrefix != "agenthub" || c.LogLevel != slog.LevelInfo || c.LogFormat != "json" {
		t.Fatalf("defaults = %+v", c)
	}
}

func TestLoadComplete(t *testing.T) {
	dir := t.TempDir()
	botFile := filepath.Join(dir, "bot")
	if err := os.WriteFile(botFile, []byte("xoxb-from-file\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	c, err := Load(env(map[string]string{
		"SLACK_APP_TOKEN":         "xapp-1",
		"SLACK_BOT_TOKEN_FILE":    botFile,
		"SLACK_API_URL":           "http://127.0.0.1:9/api/",
		"AGENTHUB_STORE":          "redis://:pw@127.0.0.1:6379/2",
		"AGENTHUB_VAULT_KEY":      key32(1),
		"AGENTHUB_VAULT_OLD_KEYS": key32(2) + ", " + key32(3),
		"AGENTHUB_AUDIT_KEY":      key32(4),
		"AGENTHUB_LOG_LEVEL":      "debug",
		"AGENTHUB_LOG_FORMAT":     "text",
		"AGENTHUB_DEMO":           "1",
		"AGENTHUB_SIM_URL":        "http://127.0.0.1:8090",
	}), os.ReadFile, NeedSlack|NeedVault|NeedAudit)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Demo || c.SimURL != "http://127.0.0.1:8090" {
		t.Errorf("demo %v, sim URL %q; want AGENTHUB_DEMO=1 to turn the demo mode on, with the simulated providers named", c.Demo, c.SimURL)
	}
	if b, err := KeyBytes(c.AuditKey); err != nil || len(b) != 32 {
		t.Errorf("KeyBytes(audit key) = %d bytes, %v; want 32", len(b), err)
	}
	if got, want := c.SlackBotToken.Reveal(), "xoxb-from-file"; got != want {
		t.Errorf("bot token from file = %q, want %q", got, want)
	}
	if got, want := len(c.VaultOldKeys), 2; got != want {
		t.Errorf("old keys = %d, want %d", got, want)
	}
	if c.LogLevel != slog.LevelDebug || c.LogFormat != "text" || c.Store != "redis://:pw@127.0.0.1:6379/2" {
		t.Errorf("config = %+v", c)
	}
}

func TestSimURLNeedsTheDemo(t *testing.T) {
	_, err := Load(env(map[string]string{"AGENTHUB_SIM_URL": "http://127.0.0.1:8090"}), os.ReadFile, 0)
	var ce *Error
	if !errors.As(err, &ce) || len(ce.Problems) != 1 || ce.Problems[0].Name != "AGENTHUB_SIM_URL" {
		t.Fatalf("Load = %v, want one problem with AGENTHUB_SIM_URL: simulated providers are for the demo", err)
	}
}

// TestPublicListener: the public URL is https, or http on a loopback
// address, and comes with the address it binds; one without the other is
// a problem named by the setting that is missing.
func TestPublicListener(t *testing.T) {
	tests := []struct {
		name    string
		set     map[string]string
		url     string
		problem string
	}{
		{"https", map[string]string{"AGENTHUB_PUBLIC_URL": "https://agenthub.example.com/", "AGENTHUB_PUBLIC_ADDR": ":8443"}, "https://agenthub.example.com", ""},
		{"http on loopback", map[string]string{"AGENTHUB_PUBLIC_URL": "http://127.0.0.1:8443", "AGENTHUB_PUBLIC_ADDR": "127.0.0.1:8443"}, "http://127.0.0.1:8443", ""},
		{"http elsewhere", map[string]string{"AGENTHUB_PUBLIC_URL": "http://agenthub.example.com", "AGENTHUB_PUBLIC_ADDR": ":80"}, "", "AGENTHUB_PUBLIC_URL"},
		{"a path", map[string]string{"AGENTHUB_PUBLIC_URL": "https://example.com/agenthub", "AGENTHUB_PUBLIC_ADDR": ":8443"}, "", "AGENTHUB_PUBLIC_URL"},
		{"a query", map[string]string{"AGENTHUB_PUBLIC_URL": "https://agenthub.example.com/?next=x", "AGENTHUB_PUBLIC_ADDR": ":8443"}, "", "AGENTHUB_PUBLIC_URL"},
		{"no address", map[string]string{"AGENTHUB_PUBLIC_URL": "https://agenthub.example.com"}, "", "AGENTHUB_PUBLIC_ADDR"},
		{"no URL", map[string]string{"AGENTHUB_PUBLIC_ADDR": ":8443"}, "", "AGENTHUB_PUBLIC_URL"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(env(tt.set), os.ReadFile, 0)
			if tt.problem == "" {
				if err != nil || c.PublicURL != tt.url {
					t.Fatalf("Load = %+v, %v; want public URL %q", c, err, tt.url)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) != 1 || ce.Problems[0].Name != tt.problem {
				t.Fatalf("Load = %v, want one problem with %s", err, tt.problem)
			}
		})
	}
}

// The real providers' clients: both halves or neither, URLs that tokens
// travel to over TLS (or to a loopback fake), GitHub Enterprise Server's
// two URLs together; no secret in any message.
func TestProviderClients(t *testing.T) {
	const canary = "CANARY-client-secret"
	tests := []struct {
		name     string
		set      map[string]string
		problems []string
	}{
		{"all three", map[string]string{"GITHUB_APP_CLIENT_ID": "Iv1.x", "GITHUB_APP_CLIENT_SECRET": canary, "GOOGLE_CLIENT_ID": "g",
			"GOOGLE_CLIENT_SECRET": canary, "SLACK_CLIENT_ID": "1.2", "SLACK_CLIENT_SECRET": canary}, nil},
		{"none", map[string]string{}, nil},
		{"ID without secret", map[string]string{"GITHUB_APP_CLIENT_ID": "Iv1.x"}, []string{"GITHUB_APP_CLIENT_SECRET"}},
		{"secret without ID", map[string]string{"GOOGLE_CLIENT_SECRET": canary}, []string{"GOOGLE_CLIENT_ID"}},
		{"GHES", map[string]string{"GITHUB_API_URL": "https://ghe.example.com/api/v3/", "GITHUB_WEB_URL": "https://ghe.example.com"}, nil},
		{"GHES half", map[string]string{"GITHUB_API_URL": "https://ghe.example.com/api/v3/"}, []string{"GITHUB_WEB_URL"}},
		{"GHES over http", map[string]string{"GITHUB_API_URL": "http://ghe.example.com/api/v3/", "GITHUB_WEB_URL": "https://ghe.example.com"}, []string{"GITHUB_API_URL"}},
		{"loopback fake", map[string]string{"GITHUB_API_URL": "http://127.0.0.1:9/api/v3/", "GITHUB_WEB_URL": "http://127.0.0.1:9"}, nil},
		{"OIDC", map[string]string{"OIDC_ISSUER": "https://example.eu.auth0.com/", "OIDC_CLIENT_ID": "c", "OIDC_CLIENT_SECRET": canary,
			"AGENTHUB_PUBLIC_URL": "https://agenthub.example.com", "AGENTHUB_PUBLIC_ADDR": ":8443"}, nil},
		{"OIDC without its client", map[string]string{"OIDC_ISSUER": "https://example.eu.auth0.com/",
			"AGENTHUB_PUBLIC_URL": "https://agenthub.example.com", "AGENTHUB_PUBLIC_ADDR": ":8443"}, []string{"OIDC_CLIENT_ID"}},
		{"OIDC client without issuer", map[string]string{"OIDC_CLIENT_ID": "c", "OIDC_CLIENT_SECRET": canary}, []string{"OIDC_ISSUER"}},
		{"OIDC secret missing", map[string]string{"OIDC_ISSUER": "https://example.eu.auth0.com/", "OIDC_CLIENT_ID": "c",
			"AGENTHUB_PUBLIC_URL": "https://agenthub.example.com", "AGENTHUB_PUBLIC_ADDR": ":8443"}, []string{"OIDC_CLIENT_SECRET"}},
		{"OIDC over http", map[string]string{"OIDC_ISSUER": "http://idp.example.com/", "OIDC_CLIENT_ID": "c", "OIDC_CLIENT_SECRET": canary,
			"AGENTHUB_PUBLIC_URL": "https://agenthub.example.com", "AGENTHUB_PUBLIC_ADDR": ":8443"}, []string{"OIDC_ISSUER"}},
		{"OIDC with no word of the factor", map[string]string{"OIDC_ISSUER": "https://example.eu.auth0.com/", "OIDC_CLIENT_ID": "c", "OIDC_CLIENT_SECRET": canary,
			"AGENTHUB_PUBLIC_URL": "https://agenthub.example.com", "AGENTHUB_PUBLIC_ADDR": ":8443", "OIDC_AMR": "-", "OIDC_ACR_VALUES": "-"}, []string{"OIDC_AMR"}},
		{"admins", map[string]string{"AGENTHUB_ADMINS": "U012ABCDEF, W034GHIJKL,U012ABCDEF"}, nil},
		{"admins not user IDs", map[string]string{"AGENTHUB_ADMINS": "U012ABCDEF,@ana"}, []string{"AGENTHUB_ADMINS"}},
		{"OIDC without a public URL", map[string]string{"OIDC_ISSUER": "https://example.eu.auth0.com/", "OIDC_CLIENT_ID": "c", "OIDC_CLIENT_SECRET": canary},
			[]string{"AGENTHUB_PUBLIC_URL"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c, err := Load(env(tt.set), os.ReadFile, 0)
			if len(tt.problems) == 0 {
				if err != nil {
					t.Fatalf("Load: %v", err)
				}
				if tt.set["GITHUB_APP_CLIENT_ID"] != "" && (c.GitHubApp.ID != "Iv1.x" || c.GitHubApp.Secret.Reveal() != canary || c.SlackClient.ID != "1.2") {
					t.Errorf("clients not read")
				}
				if tt.set["AGENTHUB_ADMINS"] != "" && !slices.Equal(c.Admins, []string{"U012ABCDEF", "W034GHIJKL"}) {
					t.Errorf("Admins = %q", c.Admins)
				}
				return
			}
			var ce *Error
			if !errors.As(err, &ce) {
				t.Fatalf("Load = %v, want problems %q", err, tt.problems)
			}
			var names []string
			for _, p := range ce.Problems {
				names = append(names, p.Name)
			}
			if !slices.Equal(names, tt.problems) || strings.Contains(err.Error(), canary) {
				t.Errorf("problems = %q (%v), want %q and no secret", names, err, tt.problems)
			}
		})
	}
}

// TestLoadReportsEverything checks that one Load reports every problem, each
// by name, and that no secret's value appears in the error.
func TestLoadReportsEverything(t *testing.T) {
	const canary = "CANARY-7f3e-secret-value"
	_, err := Load(env(map[string]string{
		"SLACK_BOT_TOKEN":         canary,                          // wrong kind of token
		"AGENTHUB_VAULT_KEY":      canary,                          // not base64
		"AGENTHUB_AUDIT_KEY":      "c2hvcnQ=",                      // "short": too few bytes
		"AGENTHUB_VAULT_OLD_KEYS": key32(1) + "," + canary,         // second is bad
		"AGENTHUB_STORE":          "mysql://u:" + canary + "@h/db", // unsupported, with a password
		"AGENTHUB_LOG_LEVEL":      "loud",
		"AGENTHUB_LOG_FORMAT":     "xml",
		"AGENTHUB_DEMO":           "yes",
		"AGENTHUB_SIM_URL":        "http://u:" + canary + "@sim.example.com:8090", // loopback only
		"SLACK_API_URL":           "ftp://x",
		"AGENTHUB_REDIS_PREFIX":   "a{b}",
	}), os.ReadFile, NeedSlack|NeedVault|NeedAudit)
	var ce *Error
	if !errors.As(err, &ce) {
		t.Fatalf("Load error = %v, want *Error", err)
	}
	var names []string
	for _, p := range ce.Problems {
		names = append(names, p.Name)
	}
	want := []string{
		"SLACK_APP_TOKEN", "SLACK_API_URL", "AGENTHUB_STORE", "AGENTHUB_REDIS_PREFIX",
		"AGENTHUB_VAULT_KEY", "AGENTHUB_AUDIT_KEY", "AGENTHUB_DEMO", "AGENTHUB_SIM_URL", "AGENTHUB_LOG_LEVEL", "AGENTHUB_LOG_FORMAT",
		"AGENTHUB_VAULT_OLD_KEYS", "SLACK_BOT_TOKEN",
	}
	if diff := cmp.Diff(want, names); diff != "" {
		t.Errorf("problems (-want +got):\n%s", diff)
	}
	if got, want := ce.Missing(), []string{"SLACK_APP_TOKEN"}; !cmp.Equal(got, want) {
		t.Errorf("Missing() = %v, want %v", got, want)
	}
	if msg := err.Error(); strings.Contains(msg, canary) || strings.Contains(msg, "c2hvcnQ") {
		t.Errorf("the error reveals a secret value")
	}
}

func TestSecretFiles(t *testing.T) {
	dir := t.TempDir()
	empty := filepath.Join(dir, "empty")
	os.WriteFile(empty, []byte("  \n"), 0o600)
	tests := []struct {
		name string
		env  map[string]string
		want string
	}{
		{"both set", map[string]string{"AGENTHUB_AUDIT_KEY": key32(1), "AGENTHUB_AUDIT_KEY_FILE": empty}, "not both"},
		{"missing file", map[string]string{"AGENTHUB_AUDIT_KEY_FILE": filepath.Join(dir, "nope")}, "cannot read AGENTHUB_AUDIT_KEY_FILE"},
		{"empty file", map[string]string{"AGENTHUB_AUDIT_KEY_FILE": empty}, "empty file"},
		{"missing", nil, "required but not set"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(env(tt.env), os.ReadFile, NeedAudit)
			var ce *Error
			if !errors.As(err, &ce) || len(ce.Problems) != 1 || ce.Problems[0].Name != "AGENTHUB_AUDIT_KEY" || !strings.Contains(ce.Problems[0].Message, tt.want) {
				t.Fatalf("Load error = %v, want one AGENTHUB_AUDIT_KEY problem mentioning %q", err, tt.want)
			}
		})
	}
}

func TestCheckStoreURL(t *testing.T) {
	tests := []struct {
		url  string
		ok   bool
		hide string
	}{
		{"bolt:agenthub.db", true, ""},
		{"bolt:/var/lib/agenthub/state.db", true, ""},
		{"bolt:", false, ""},
		{"redis://127.0.0.1:6379/0", true, ""},
		{"rediss://user:hunter2@cache.example:6380/1", true, ""},
		{"memcache://user:hunter2@host", false, "hunter2"},
		{"agenthub.db", false, ""},
	}
	for _, tt := range tests {
		t.Run(tt.url, func(t *testing.T) {
			err := CheckStoreURL(tt.url)
			if (err == nil) != tt.ok {
				t.Fatalf("CheckStoreURL(%q) = %v, want ok=%v", tt.url, err, tt.ok)
			}
			if err != nil && tt.hide != "" && strings.Contains(err.Error(), tt.hide) {
				t.Fatalf("error %q shows the password", err)
			}
		})
	}
}

func ExampleError() {
	_, err := Load(env(nil), os.ReadFile, NeedSlack)
	fmt.Println(err)
	// Output:
	// configuration:
	//   SLACK_APP_TOKEN: required but not set (set it or SLACK_APP_TOKEN_FILE)
	//   SLACK_BOT_TOKEN: required but not set (set it or SLACK_BOT_TOKEN_FILE)
}

func TestConfigPrintsNoSecret(t *testing.T) {
	const pw = "CANARY-store-pw"
	c, err := Load(env(map[string]string{
		"SLACK_APP_TOKEN":    "xapp-CANARY-app",
		"SLACK_BOT_TOKEN":    "xoxb-CANARY-bot",
		"AGENTHUB_STORE":     "redis://:" + pw + "@127.0.0.1:6379/0",
		"AGENTHUB_VAULT_KEY": key32(1),
		"AGENTHUB_AUDIT_KEY": key32(2),
	}), os.ReadFile, NeedSlack|NeedVault|NeedAudit)
	if err != nil {
		t.Fatal(err)
	}
	var buf strings.Builder
	slog.New(slog.NewJSONHandler(&buf, nil)).Info("start", "config", c)
	for _, out := range []string{buf.String(), fmt.Sprint(c), fmt.Sprintf("%+v", c)} {
		for _, secret := range []string{"CANARY", key32(1), key32(2)} {
			if strings.Contains(out, secret) {
				t.Fatalf("printed config shows a secret: %s", out)
			}
		}
	}
	if !strings.Contains(buf.String(), `"store":"redis://:xxxxx@127.0.0.1:6379/0"`) {
		t.Fatalf("log line lacks the redacted store: %s", buf.String())
	}
}

// TestLoadStore: the commands that open a store without the rest of the
// configuration read the same two settings the same way Load does.
func TestLoadStore(t *testing.T) {
	const pw = "CANARY-store-pw"
	tests := []struct {
		name      string
		env       map[string]string
		want      StoreSettings
		wantProbs []string
	}{
		{"defaults", nil, StoreSettings{URL: DefaultStore, RedisPrefix: DefaultRedisPrefix}, nil},
		{"both set", map[string]string{"AGENTHUB_STORE": "redis://127.0.0.1:6379/3", "AGENTHUB_REDIS_PREFIX": "team-a"},
			StoreSettings{URL: "redis://127.0.0.1:6379/3", RedisPrefix: "team-a"}, nil},
		{"the rest is not read", map[string]string{"AGENTHUB_VAULT_KEY": "not a key", "AGENTHUB_LOG_LEVEL": "loud"},
			StoreSettings{URL: DefaultStore, RedisPrefix: DefaultRedisPrefix}, nil},
		{"bad prefix and store", map[string]string{"AGENTHUB_STORE": "mysql://u:" + pw + "@h/db", "AGENTHUB_REDIS_PREFIX": "a:b"},
			StoreSettings{}, []string{"AGENTHUB_STORE", "AGENTHUB_REDIS_PREFIX"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := LoadStore(env(tt.env))
			var probs []string
			if ce, ok := errors.AsType[*Error](err); ok {
				for _, p := range ce.Problems {
					probs = append(probs, p.Name)
				}
				if strings.Contains(err.Error(), pw) {
					t.Error("the error shows the store's password")
				}
			} else if err != nil {
				t.Fatalf("LoadStore error = %v, want an *Error", err)
			}
			if diff := cmp.Diff(tt.wantProbs, probs); diff != "" {
				t.Errorf("problems (-want +got):\n%s", diff)
			}
			if diff := cmp.Diff(tt.want, got); diff != "" {
				t.Errorf("LoadStore (-want +got):\n%s", diff)
			}
			if tt.wantProbs != nil {
				return
			}
			// Load agrees.
			c, err := Load(env(tt.env), os.ReadFile, 0)
			if err != nil && tt.name != "the rest is not read" {
				t.Fatal(err)
			}
			if err == nil {
				if diff := cmp.Diff(got, c.StoreSettings()); diff != "" {
					t.Errorf("Load's store settings differ from LoadStore's (-LoadStore +Load):\n%s", diff)
				}
			}
		})
	}
}

// Auth0 Token Vault as the vault's backend: the tenant, its client, the
// identity provider the same tenant (the person's refresh token comes from
// signing in there), the public listener, and each service's connection.
func TestAuth0(t *testing.T) {
	base := map[string]string{
		"AGENTHUB_VAULT": "auth0", "AUTH0_DOMAIN": "acme.eu.auth0.com", "AUTH0_CLIENT_ID": "cid", "AUTH0_CLIENT_SECRET": "csecret",
		"OIDC_ISSUER": "https://acme.eu.auth0.com/", "OIDC_CLIENT_ID": "cid", "OIDC_CLIENT_SECRET": "csecret",
		"AGENTHUB_PUBLIC_URL": "https://agenthub.example.com", "AGENTHUB_PUBLIC_ADDR": ":8443",
	}
	with := func(k, v string) map[string]string {
		m := maps.Clone(base)
		if v == "" {
			delete(m, k)
		} else {
			m[k] = v
		}
		return m
	}
	c, err := Load(env(base), os.ReadFile, 0)
	if err != nil {
		t.Fatal(err)
	}
	if !c.Auth0.On() || c.Auth0.URL != "https://acme.eu.auth0.com/" || c.Auth0.Connections["google"] != "google-oauth2" || len(c.Auth0.Connections) != 2 {
		t.Errorf("Auth0 = %+v", c.Auth0)
	}
	c, err = Load(env(with("AUTH0_CONNECTIONS", "github=github-enterprise")), os.ReadFile, 0)
	if err != nil || len(c.Auth0.Connections) != 1 || c.Auth0.Connections["github"] != "github-enterprise" {
		t.Errorf("AUTH0_CONNECTIONS = %+v, %v", c.Auth0.Connections, err)
	}
	if c, err := Load(env(with("AGENTHUB_VAULT", "")), os.ReadFile, 0); err != nil || c.Auth0.On() {
		t.Errorf("without AGENTHUB_VAULT: %+v, %v; want the local vault", c.Auth0, err)
	}
	for _, tt := range []struct {
		name, key, value, problem string
	}{
		{"no domain", "AUTH0_DOMAIN", "", "AUTH0_DOMAIN"},
		{"a URL as domain", "AUTH0_DOMAIN", "https://acme.eu.auth0.com", "AUTH0_DOMAIN"},
		{"another issuer", "OIDC_ISSUER", "https://login.example.com/", "OIDC_ISSUER"},
		{"no client", "AUTH0_CLIENT_ID", "", "AUTH0_CLIENT_ID"},
		{"no secret", "AUTH0_CLIENT_SECRET", "", "AUTH0_CLIENT_SECRET"},
		{"another application than the sign-in's", "AUTH0_CLIENT_ID", "another-app", "AUTH0_CLIENT_ID"},
		{"another secret than the sign-in's", "AUTH0_CLIENT_SECRET", "other-secret", "AUTH0_CLIENT_ID"},
		{"an unknown service", "AUTH0_CONNECTIONS", "gitlab=gitlab", "AUTH0_CONNECTIONS"},
		{"slack, whose account cannot be checked", "AUTH0_CONNECTIONS", "github=github,slack=sign-in-with-slack", "AUTH0_CONNECTIONS"},
		{"not pairs", "AUTH0_CONNECTIONS", "github", "AUTH0_CONNECTIONS"},
		{"an unknown backend", "AGENTHUB_VAULT", "hashicorp", "AGENTHUB_VAULT"},
		{"plain http off loopback", "AUTH0_URL", "http://acme.eu.auth0.com/", "AUTH0_URL"},
	} {
		t.Run(tt.name, func(t *testing.T) {
			_, err := Load(env(with(tt.key, tt.value)), os.ReadFile, 0)
			var ce *Error
			if !errors.As(err, &ce) || !slices.ContainsFunc(ce.Problems, func(p Problem) bool { return p.Name == tt.problem }) {
				t.Fatalf("Load = %v, want a problem with %s", err, tt.problem)
			}
			if strings.Contains(err.Error(), "csecret") {
				t.Errorf("the error quotes the secret: %v", err)
			}
		})
	}
}
