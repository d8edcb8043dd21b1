package main

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"maps"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/secret"
	"github.com/agenthub/agenthub/internal/sim"
	"github.com/agenthub/agenthub/internal/simenv"
	"github.com/agenthub/agenthub/internal/slackapp/slacktest"
	"github.com/agenthub/agenthub/internal/vault"
)

// newKey returns a fresh base64 key, as openssl rand -base64 32 makes one.
func newKey(tb testing.TB) string {
	tb.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		tb.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// keyForms are the encodings in which a careless line would show a key:
// as given, and the raw bytes (and the step-up key derived from them) in
// hex and base64.
func keyForms(tb testing.TB, key string) []string {
	tb.Helper()
	raw, err := base64.StdEncoding.DecodeString(key)
	if err != nil {
		tb.Fatal(err)
	}
	derived, err := stepUpKey(raw)
	if err != nil {
		tb.Fatal(err)
	}
	out := []string{key}
	for _, b := range [][]byte{raw, derived} {
		out = append(out, hex.EncodeToString(b), base64.StdEncoding.EncodeToString(b), base64.RawURLEncoding.EncodeToString(b))
	}
	return out
}

// callProvider leases principal's connection to service through v and
// sends one request with it to the simulated providers at base, as an
// agent would: it fails when the sealed token does not open.
func callProvider(ctx context.Context, v *vault.Vault, base, principal, service string) error {
	l, err := v.Lease(ctx, vault.LeaseRequest{Principal: principal, Service: service})
	if err != nil {
		return err
	}
	defer l.Release(ctx)
	prefix := map[string]string{sim.ServiceGitHub: sim.GitHubPrefix, sim.ServiceGoogle: sim.CalendarPrefix, sim.ServiceSlack: sim.SlackPrefix}[service]
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+prefix+"user", nil)
	if err != nil {
		return err
	}
	resp, err := l.Client().Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	return nil
}

// TestVaultOldKeysReachTheVaultAndStepUp: a person connected and enrolled
// under one vault key keeps both when the bot restarts with a new key and
// the old one in AGENTHUB_VAULT_OLD_KEYS (run() wires the old keys into the
// vault's keyring and derives the old step-up keys from them); without the
// old key the bot fails closed, naming the key by its ID only.
func TestVaultOldKeysReachTheVaultAndStepUp(t *testing.T) {
	ctx := context.Background()
	srv := slacktest.New(t)
	// One simulated world across the restarts, as the real providers are:
	// the tokens it issued stay valid.
	providers := simenv.StartProviders(nil, nil)
	defer providers.Server.Close()
	vars := e2eEnv(t, srv, "bolt:"+filepath.Join(t.TempDir(), "bot.db"), "")
	oldKey := vars["AGENTHUB_VAULT_KEY"]
	oldKeyring, err := secret.ParseKeys(oldKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	oldID := oldKeyring.CurrentKeyID()
	p := broker.Principal{Team: slacktest.TeamID, User: alice}
	// read asks the bot for a read in the channel, as alice, and returns
	// the bot's reply in the thread.
	read := func(t *testing.T) string {
		t.Helper()
		m := srv.AppMention(slacktest.Msg{User: alice, Channel: e2eChannel, Text: "<@" + slacktest.BotUserID + "> list open pull requests in acme/website"})
		push(t, srv, m)
		var reply string
		eventually(t, "the read's reply", func() bool {
			rs := threadReplies(srv, e2eChannel, m.MustEventTS(t))
			if len(rs) > 0 {
				reply = rs[0].Text
			}
			return len(rs) > 0
		})
		return reply
	}
	const result = "open pull requests in acme/website"

	// Alice's first message connects her to every simulated service (the
	// demo's first contact); then she enrols in step-up.
	bot := startBot(t, srv, vars, hooks{providers: providers})
	if got := read(t); !strings.Contains(got, result) {
		t.Fatalf("the read before the rotation answered %q, want its result", got)
	}
	enr, err := bot.env.core.StepUp.Enroll(ctx, p.String(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	code := func(at time.Time) string {
		t.Helper()
		c, err := totp.GenerateCode(enr.Secret.Reveal(), at)
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	if err := bot.env.core.StepUp.Confirm(ctx, p.String(), code(now)); err != nil {
		t.Fatal(err)
	}
	bot.stop(t)

	newKeyVars := maps.Clone(vars)
	newKeyVars["AGENTHUB_VAULT_KEY"] = newKey(t)
	t.Run("a new key with the old one listed", func(t *testing.T) {
		vars := maps.Clone(newKeyVars)
		vars["AGENTHUB_VAULT_OLD_KEYS"] = oldKey
		bot := startBot(t, srv, vars, hooks{providers: providers})
		defer bot.stop(t)
		for _, service := range simenv.Services {
			if err := callProvider(ctx, bot.env.core.Vault, bot.env.core.providers.sim.URL, p.String(), service); err != nil {
				t.Errorf("%s connection after the rotation: %v", service, err)
			}
		}
		if got := read(t); !strings.Contains(got, result) {
			t.Errorf("the read after the rotation answered %q, want its result", got)
		}
		if err := bot.env.core.StepUp.Verify(ctx, p.String(), "req-rotated", code(now.Add(30*time.Second))); err != nil {
			t.Errorf("TOTP code after the rotation: %v", err)
		}
		eventually(t, "the start-up report on sealing keys", func() bool {
			return strings.Contains(bot.stderr.String(), `"msg":"connections are still sealed under an old key: run 'bot rekey', then drop it from AGENTHUB_VAULT_OLD_KEYS","key_id":"`+oldID+`"`)
		})
	})

	t.Run("a new key without the old one", func(t *testing.T) {
		bot := startBot(t, srv, newKeyVars, hooks{providers: providers})
		eventually(t, "the start-up report on sealing keys", func() bool { return strings.Contains(bot.stderr.String(), `"key_id":"`+oldID+`"`) })
		for _, service := range simenv.Services {
			err := callProvider(ctx, bot.env.core.Vault, bot.env.core.providers.sim.URL, p.String(), service)
			if !errors.Is(err, vault.ErrUnknownKey) || !strings.Contains(err.Error(), "neither the current key nor an old key") {
				t.Errorf("%s connection without the old key: error %v, want ErrUnknownKey saying the key is neither current nor old", service, err)
			}
		}
		reply := read(t)
		if strings.Contains(reply, result) {
			t.Errorf("the read without the old key answered %q, want no result", reply)
		}
		err := bot.env.core.StepUp.Verify(ctx, p.String(), "req-unkeyed", code(now.Add(60*time.Second)))
		if err == nil || !strings.Contains(err.Error(), "neither Key nor one of OldKeys") {
			t.Errorf("TOTP code without the old key: error %v, want a refusal naming the missing key", err)
		}
		bot.stop(t)
		surfaces := map[string]string{"stderr": bot.stderr.String(), "stdout": bot.stdout.String(), "slack": sentToSlack(srv)}
		if !strings.Contains(surfaces["stderr"], `"level":"ERROR","msg":"connections are sealed under a key that is neither AGENTHUB_VAULT_KEY nor in AGENTHUB_VAULT_OLD_KEYS`) ||
			!strings.Contains(surfaces["stderr"], `"key_id":"`+oldID+`","connections":3`) {
			t.Error("the log does not say that three connections are sealed under a key the bot lacks, naming its ID")
		}
		for name, text := range surfaces {
			for i, s := range append(keyForms(t, oldKey), keyForms(t, newKeyVars["AGENTHUB_VAULT_KEY"])...) {
				if strings.Contains(text, s) {
					t.Errorf("%s holds key form #%d", name, i) // which, never what
				}
			}
			if loc := tokenShape.FindStringIndex(text); loc != nil {
				t.Errorf("%s holds a provider token at byte %d", name, loc[0])
			}
		}
	})
}
