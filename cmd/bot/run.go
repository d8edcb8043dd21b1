package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"runtime/debug"
	"strings"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

const usage = `AgentHub: AI agents act in GitHub, Google Calendar and Slack for you,
without ever holding your credentials.

Usage:
  bot                    run the Slack bot in Socket Mode (AGENTHUB_DEMO=1: against
                         simulated providers; settings in docs/INSTALL.md)
  bot demo               an offline session in the terminal (no keys, no network);
                         flags: -json, -store URL, -policy FILE
  bot sim                serve the simulated providers for Slack bots in demo mode
                         (AGENTHUB_SIM_URL), so that replicas share them; flag: -addr
  bot version            print the version
  bot audit export       write the audit trail as JSON Lines
  bot audit verify       check the audit trail's hash chain
  bot rekey              reseal every connection and step-up enrolment under
                         AGENTHUB_VAULT_KEY, after which AGENTHUB_VAULT_OLD_KEYS
                         can be dropped (key rotation: docs/INSTALL.md); flag: -store
  bot stepup enrol-link  print a single-use link that lets one person set up (or,
                         with -reset, replace) their authenticator, to hand over
                         out of band; flags: -reset, -valid, -store
  bot help               this text

Commands that touch state take -store URL: bolt:PATH (embedded, the default
bolt:agenthub.db, or $AGENTHUB_STORE), redis://HOST:PORT/DB or rediss://… (TLS).
`

// run is the whole program; main calls it, and the tests call it with
// their hooks (hooks.run).
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	return hooks{}.run(ctx, args, getenv, stdin, stdout, stderr)
}

func (h hooks) run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		return h.runBot(ctx, getenv, stdout, stderr)
	}
	switch cmd, rest := args[1], args[2:]; cmd {
	case "version", "-version", "--version":
		fmt.Fprintln(stdout, versionString())
		return nil
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	case "audit":
		return h.runAudit(ctx, rest, getenv, stdin, stdout, stderr)
	case "demo":
		return h.runDemo(ctx, rest, getenv, stdin, stdout, stderr)
	case "sim":
		return runSim(ctx, rest, stdout, stderr)
	case "rekey":
		return h.runRekey(ctx, rest, getenv, stdout, stderr)
	case "stepup":
		return h.runStepUp(ctx, rest, getenv, stdout, stderr)
	default:
		fmt.Fprint(stderr, usage)
		return usageError("unknown command %q", cmd)
	}
}

func versionString() string {
	v := "agenthub " + version
	if bi, ok := debug.ReadBuildInfo(); ok {
		for _, s := range bi.Settings {
			if s.Key == "vcs.revision" && len(s.Value) >= 12 {
				v += " (" + s.Value[:12] + ")"
			}
		}
		v += " " + bi.GoVersion
	}
	return v
}

// storeFlagUsage describes the common -store flag, which overrides the URL
// of the config.StoreSettings a command loaded (AGENTHUB_STORE, else
// config.DefaultStore).
const storeFlagUsage = "state store: bolt:PATH, redis://… or rediss://… (default: $AGENTHUB_STORE)"

// parseFlags parses a subcommand's flags; -h prints its usage and succeeds.
func parseFlags(fs *flag.FlagSet, args []string, stderr io.Writer) error {
	fs.SetOutput(stderr)
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return &exitError{code: 0}
		}
		return &exitError{code: 2}
	}
	if fs.NArg() > 0 {
		return usageError("%s: unexpected argument %q", fs.Name(), strings.Join(fs.Args(), " "))
	}
	return nil
}
