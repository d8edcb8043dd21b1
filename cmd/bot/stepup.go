package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/agenthub/agenthub/internal/broker"
)

const stepupUsage = `Usage:
  bot stepup enrol-link [-reset] [-valid 24h] [-store URL] TEAM:USER

Prints a link that lets the Slack user USER of workspace TEAM (their member
ID, such as T0123ABCD:U0456EFGH) set up an authenticator for step-up codes,
or with -reset replace a lost one. Hand it to them out of band (in person, a
call, a message outside Slack): whoever opens it first, within -valid (at
most 72h), sees the key, on the page and nowhere else, and the person then
confirms it in Slack. It works once.

It is the enrolment gate's way for a team with neither an identity
provider (OIDC_ISSUER) nor administrators (AGENTHUB_ADMINS). It reads the
bot's settings (AGENTHUB_VAULT_KEY, AGENTHUB_AUDIT_KEY, AGENTHUB_PUBLIC_URL,
AGENTHUB_STORE, …) and records stepup.enrol_link_issued in the audit trail
before it prints the link.
`

// enrolAction is the connect action of an enrol link.
const enrolAction = "enrol"

// maxEnrolLink is how long an enrol link may be valid at most.
const maxEnrolLink = 72 * time.Hour

// runStepUp is "bot stepup": see stepupUsage.
func (h hooks) runStepUp(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "enrol-link" {
		fmt.Fprint(stderr, stepupUsage)
		return usageError("stepup: want enrol-link")
	}
	fs := flag.NewFlagSet("stepup enrol-link", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), stepupUsage) }
	reset := fs.Bool("reset", false, "replace a confirmed authenticator (a lost one)")
	valid := fs.Duration("valid", 24*time.Hour, "how long the link works, at most 72h")
	storeURL := fs.String("store", "", storeFlagUsage)
	rest := args[1:]
	var who string
	if n := len(rest); n > 0 && !strings.HasPrefix(rest[n-1], "-") {
		who, rest = rest[n-1], rest[:n-1]
	}
	if err := parseFlags(fs, rest, stderr); err != nil {
		return err
	}
	p, err := broker.ParsePrincipal(who)
	if err != nil {
		return usageError("stepup enrol-link: want the Slack user as TEAM:USER, such as T0123ABCD:U0456EFGH")
	}
	if *valid <= 0 || *valid > maxEnrolLink {
		return usageError("stepup enrol-link: -valid must be more than 0 and at most 72h")
	}
	cfg, err := botSettings(getenv, stderr, "bot stepup enrol-link")
	if err != nil {
		return err
	}
	if cfg.PublicURL == "" {
		return &exitError{code: 2, msg: "stepup enrol-link: AGENTHUB_PUBLIC_URL is not set: the link opens the bot's public listener"}
	}
	settings := cfg.StoreSettings()
	if *storeURL != "" {
		settings.URL = *storeURL
	}
	k, err := loadKeys(cfg)
	if err != nil {
		return err
	}
	logger := newLogger(cfg, stderr)
	c, st, err := h.offlineCore(ctx, settings, k, logger)
	if err != nil {
		return fmt.Errorf("stepup: %w", err)
	}
	defer st.Close()
	link, err := issueEnrolLink(ctx, c.Audit, k.links, cfg.PublicURL, p, "operator", *reset, *valid)
	if err != nil {
		return fmt.Errorf("stepup: %w", err)
	}
	fmt.Fprintf(stdout, "%s\n", link)
	fmt.Fprintf(stderr, "Hand this link to %s out of band. It works once, for %s.\n", p, *valid)
	return nil
}

// adminEnrolLinkTTL is how long an enrol link an administrator got in
// Slack works: long enough to reach the person out of band.
const adminEnrolLinkTTL = 24 * time.Hour
