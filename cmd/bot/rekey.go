package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"os"
	"slices"
	"strings"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/config"
	"github.com/agenthub/agenthub/internal/stepup"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/vault"
)

const rekeyUsage = `Usage:
  bot rekey [-store URL]

Reseals every vault connection and every step-up enrolment under the current
key, AGENTHUB_VAULT_KEY, so that the keys listed in AGENTHUB_VAULT_OLD_KEYS
can be dropped. It reads AGENTHUB_VAULT_KEY, AGENTHUB_VAULT_OLD_KEYS,
AGENTHUB_AUDIT_KEY (or their _FILE forms), AGENTHUB_STORE and
AGENTHUB_REDIS_PREFIX as the bot does, and refuses to run without old keys:
then there is nothing to do.

It prints its progress (counts only) on stdout and records a vault.rekey_started
and a vault.rekeyed audit event. Records already under the current key are not
rewritten, so a run that was interrupted is finished by running it again. On
Redis it may run beside the bot (each record is rewritten with compare-and-swap);
the embedded store's file is the bot's alone, so stop the bot first.

Exit status: 0 when nothing needs an old key any more; 1 when a record could
not be resealed (each is named by principal and service) or the run was
interrupted; 2 for a usage or settings mistake, or no old keys.
`

// botSettings loads the settings a command shares with the bot (the
// vault and audit keys, the store); a setting missing or malformed is named
// on stderr, with exit status 2.
func botSettings(getenv func(string) string, stderr io.Writer, command string) (*config.Config, error) {
	cfg, err := config.Load(getenv, os.ReadFile, config.NeedVault|config.NeedAudit)
	if ce, ok := errors.AsType[*config.Error](err); ok {
		fmt.Fprintf(stderr, "%s needs these settings, as the bot has them:\n", command)
		for _, p := range ce.Problems {
			fmt.Fprintf(stderr, "  %-26s %s\n", p.Name, p.Message)
		}
		return nil, &exitError{code: 2}
	}
	return cfg, err
}

// offlineCore opens the store and wires the core the bot wires, on no
// providers, for a command that opens and seals records (and records what
// it did) but never calls a provider. The caller closes the store.
func (h hooks) offlineCore(ctx context.Context, settings config.StoreSettings, k keys, logger *slog.Logger) (*core, store.Store, error) {
	st, err := h.openStore(ctx, settings, false, logger)
	if err != nil {
		return nil, nil, err
	}
	c, err := wire(&providers{close: func() error { return nil }}, wiring{store: st, keys: k.stack(), logger: logger})
	if err != nil {
		st.Close()
		return nil, nil, err
	}
	return c, st, nil
}

// rekeyActor is the audit actor of a rekey run: an operator at a terminal,
// not a Slack user.
const rekeyActor = "operator:bot-rekey"

// runRekey is "bot rekey": see rekeyUsage.
func (h hooks) runRekey(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("rekey", flag.ContinueOnError)
	fs.Usage = func() { fmt.Fprint(fs.Output(), rekeyUsage) }
	storeURL := fs.String("store", "", storeFlagUsage)
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	cfg, err := botSettings(getenv, stderr, "bot rekey")
	if err != nil {
		return err
	}
	settings := cfg.StoreSettings()
	if *storeURL != "" {
		settings.URL = *storeURL
	}
	k, err := loadKeys(cfg)
	if err != nil {
		return err
	}
	keyring, err := k.vaultKeyring()
	if err != nil {
		return fmt.Errorf("rekey: %w", err)
	}
	// Listing the current key among the old ones lists nothing.
	oldKeys := len(keyring.KeyIDs()) - 1
	if oldKeys == 0 {
		return &exitError{code: 2, msg: "rekey: AGENTHUB_VAULT_OLD_KEYS lists no old key, so there is nothing to do: " +
			"every record this process can open is sealed under AGENTHUB_VAULT_KEY already. " +
			"To rotate the key, set the new one as AGENTHUB_VAULT_KEY and list the old one in AGENTHUB_VAULT_OLD_KEYS (docs/INSTALL.md)"}
	}
	logger := newLogger(cfg, stderr)

	c, st, err := h.offlineCore(ctx, settings, k, logger)
	if err != nil {
		return fmt.Errorf("rekey: %w", err)
	}
	defer st.Close()
	rec, v, su := c.Audit, c.Vault, c.StepUp
	// Never reseal under a key the bot does not hold: everything would be
	// sealed where the bot cannot open it.
	botKey, err := botSealingKey(ctx, st)
	if err != nil {
		return fmt.Errorf("rekey: %w", err)
	}
	if botKey != "" && botKey != keyring.CurrentKeyID() {
		return &exitError{code: 2, msg: fmt.Sprintf("rekey: the bot last started sealing under key %s, but this rekey would reseal under key %s, "+
			"which the bot does not hold: nothing was resealed. Run it with the AGENTHUB_VAULT_KEY the bot runs with (and the old keys "+
			"in AGENTHUB_VAULT_OLD_KEYS), or restart the bot with the new key first", botKey, keyring.CurrentKeyID())}
	}

	fmt.Fprintf(stdout, "rekey: resealing under the current key %s; %d old %s listed\n", keyring.CurrentKeyID(), oldKeys, plural(oldKeys, "key", "keys"))
	// The start is on the record before anything is rewritten: if it
	// cannot be stored, nothing is.
	if _, err := rec.Record(ctx, audit.Event{
		Kind: audit.VaultRekeyStarted, Actor: rekeyActor, Result: "started",
		Detail: map[string]string{"key": keyring.CurrentKeyID(), "old_keys": fmt.Sprint(oldKeys)},
	}); err != nil {
		return fmt.Errorf("rekey: nothing was resealed: %w", err)
	}

	var r rekeyRun
	r.connections, r.connErrs = rekeyConnections(ctx, v, stdout)
	if ctx.Err() == nil {
		r.enrolments, r.enrolErrs = resealEnrolments(ctx, v, su, stdout)
	}
	if ctx.Err() != nil {
		// What the interruption stopped is not a failure of its own: the
		// next run does it.
		r.interrupted = true
		r.connErrs, r.enrolErrs = notCanceled(r.connErrs), notCanceled(r.enrolErrs)
	}

	if !r.interrupted {
		r.leftOver = leftOver(ctx, v, su, keyring.CurrentKeyID())
	}

	// The end is recorded even when the run was interrupted, with what it
	// did by then.
	_, auditErr := rec.Record(context.WithoutCancel(ctx), audit.Event{
		Kind: audit.VaultRekeyed, Actor: rekeyActor, Result: r.result(),
		Detail: map[string]string{
			"key":                  keyring.CurrentKeyID(),
			"connections_resealed": fmt.Sprint(r.connections),
			"connections_failed":   fmt.Sprint(len(r.connErrs)),
			"enrolments_resealed":  fmt.Sprint(r.enrolments),
			"enrolments_failed":    fmt.Sprint(len(r.enrolErrs)),
		},
	})
	fmt.Fprintf(stdout, "rekey: %d %s and %d step-up %s resealed\n",
		r.connections, plural(r.connections, "connection", "connections"), r.enrolments, plural(r.enrolments, "enrolment", "enrolments"))
	if auditErr != nil {
		r.auditErr = fmt.Errorf("the end of the run is not on the audit record: %w", auditErr)
	}
	if err := r.err(); err != nil {
		return err
	}
	fmt.Fprintln(stdout, "rekey: done: nothing needs an old key any more; remove AGENTHUB_VAULT_OLD_KEYS and restart the bot")
	return nil
}

// rekeyRun is what one run did.
type rekeyRun struct {
	connections, enrolments int
	connErrs, enrolErrs     []error // one per record, each naming principal and service
	interrupted             bool
	auditErr                error
	// leftOver says what the last look found still sealed under another
	// key (a replica still running with the old key wrote it meanwhile).
	leftOver error
}

// leftOver looks again, after the run, for connections sealed under a key
// other than current, and step-up enrolments under one other than step-up's.
func leftOver(ctx context.Context, v *vault.Vault, su *stepup.Service, current string) error {
	counts, err := v.SealedByKey(ctx)
	if err != nil {
		return fmt.Errorf("the last look could not count the connections by key: %w", err)
	}
	var left []string
	for _, id := range slices.Sorted(maps.Keys(counts)) {
		if id != current && counts[id] > 0 {
			left = append(left, fmt.Sprintf("%d %s under key %s", counts[id], plural(counts[id], "connection", "connections"), id))
		}
	}
	queued, err := v.QueuedByKey(ctx)
	if err != nil {
		return fmt.Errorf("the last look could not count the queued revocations by key: %w", err)
	}
	for _, id := range slices.Sorted(maps.Keys(queued)) {
		if id != current {
			left = append(left, fmt.Sprintf("%d queued %s under key %s", queued[id], plural(queued[id], "revocation", "revocations"), id))
		}
	}
	enrolled, err := enrolmentsByKey(ctx, v, su)
	if err != nil {
		return fmt.Errorf("the last look could not count the step-up enrolments by key: %w", err)
	}
	// Step-up seals under a key of its own, drawn from the same secret.
	for _, id := range slices.Sorted(maps.Keys(enrolled)) {
		if id != su.CurrentKeyID() {
			left = append(left, fmt.Sprintf("%d step-up %s under key %s", enrolled[id], plural(enrolled[id], "enrolment", "enrolments"), id))
		}
	}
	if len(left) == 0 {
		return nil
	}
	return fmt.Errorf("records are still sealed under another key (%s): a process still running with it wrote them meanwhile; "+
		"run bot rekey again once every replica runs with the current key", strings.Join(left, ", "))
}

// enrollable is everyone who may have a step-up enrolment: those the
// step-up index names, and the rest the vault's index names (they enrolled
// before the step-up index existed).
func enrollable(ctx context.Context, v *vault.Vault, su *stepup.Service) (indexed, rest []string, err error) {
	indexed, err = su.Principals(ctx)
	if err != nil {
		return nil, nil, err
	}
	connected, err := v.Principals(ctx)
	if err != nil {
		return nil, nil, err
	}
	inIndex := make(map[string]bool, len(indexed))
	for _, p := range indexed {
		inIndex[p] = true
	}
	for _, p := range connected {
		if !inIndex[p] {
			rest = append(rest, p)
		}
	}
	return indexed, rest, nil
}

// enrolmentsByKey counts step-up enrolments by the key they are sealed
// under, over everyone either index names.
func enrolmentsByKey(ctx context.Context, v *vault.Vault, su *stepup.Service) (map[string]int, error) {
	indexed, rest, err := enrollable(ctx, v, su)
	if err != nil {
		return nil, err
	}
	counts := map[string]int{}
	for _, p := range append(indexed, rest...) {
		id, ok, err := su.SealedUnder(ctx, p)
		if err != nil {
			return nil, fmt.Errorf("principal %s: %w", p, err)
		}
		if ok {
			counts[id]++
		}
	}
	return counts, nil
}

func (r rekeyRun) result() string {
	switch {
	case r.interrupted:
		return "interrupted"
	case len(r.connErrs)+len(r.enrolErrs) > 0 || r.leftOver != nil:
		return "failed"
	}
	return "ok"
}

// err says what failed, by principal and service, or nil.
func (r rekeyRun) err() error {
	failed := len(r.connErrs) + len(r.enrolErrs)
	if !r.interrupted && failed == 0 && r.auditErr == nil && r.leftOver == nil {
		return nil
	}
	var lines []string
	if r.interrupted {
		lines = append(lines, "rekey: interrupted: run it again to finish (what is done is not done again); keep AGENTHUB_VAULT_OLD_KEYS until then")
	}
	if failed > 0 {
		lines = append(lines, fmt.Sprintf("rekey: %d %s and %d step-up %s could not be resealed; keep AGENTHUB_VAULT_OLD_KEYS until they are:",
			len(r.connErrs), plural(len(r.connErrs), "connection", "connections"), len(r.enrolErrs), plural(len(r.enrolErrs), "enrolment", "enrolments")))
		for _, err := range slices.Concat(r.connErrs, r.enrolErrs) {
			lines = append(lines, "  "+err.Error())
		}
	}
	if r.leftOver != nil {
		lines = append(lines, "rekey: "+r.leftOver.Error())
	}
	if r.auditErr != nil {
		lines = append(lines, "rekey: "+r.auditErr.Error())
	}
	return &exitError{code: 1, msg: strings.Join(lines, "\n")}
}

// rekeyConnections reseals every vault connection, printing progress.
func rekeyConnections(ctx context.Context, v *vault.Vault, stdout io.Writer) (int, []error) {
	n, err := v.RekeyAll(ctx, progress(stdout, "connections"))
	fmt.Fprintf(stdout, "connections: %d resealed\n", n)
	return n, leaves(err)
}

// resealEnrolments reseals every step-up enrolment: the principals in the
// step-up index (ResealAll), then those in the vault's principal index that
// it lacks, since enrolments made before the step-up index existed are not
// in it (and Reseal indexes them, for the next rotation).
func resealEnrolments(ctx context.Context, v *vault.Vault, su *stepup.Service, stdout io.Writer) (int, []error) {
	n, err := su.ResealAll(ctx, progress(stdout, "enrolments"))
	errs := leaves(err)
	if ctx.Err() != nil {
		return n, errs
	}
	_, rest, err := enrollable(ctx, v, su)
	if err != nil {
		return n, append(errs, err)
	}
	if len(rest) > 0 {
		fmt.Fprintf(stdout, "enrolments: %d more %s from the vault's index\n", len(rest), plural(len(rest), "principal", "principals"))
		show := progress(stdout, "enrolments (vault's index)")
		for i, p := range rest {
			if err := ctx.Err(); err != nil {
				errs = append(errs, err)
				break
			}
			ok, err := su.Reseal(ctx, p)
			if err != nil {
				errs = append(errs, fmt.Errorf("principal %s: %w", p, err))
			}
			if ok {
				n++
			}
			show(i+1, len(rest))
		}
	}
	fmt.Fprintf(stdout, "enrolments: %d resealed\n", n)
	return n, errs
}

// notCanceled drops the errors an interruption caused.
func notCanceled(errs []error) []error {
	return slices.DeleteFunc(errs, func(err error) bool {
		return errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded)
	})
}

// progress prints "what: done of total principals" about twenty times in
// a run, and at its end.
func progress(w io.Writer, what string) func(done, total int) {
	return func(done, total int) {
		if done == total || done%max(1, total/20) == 0 {
			fmt.Fprintf(w, "%s: %d of %d %s\n", what, done, total, plural(total, "principal", "principals"))
		}
	}
}

// leaves splits what errors.Join joined into the errors it joined, each of
// which names one principal, or one principal and service.
func leaves(err error) []error {
	if err == nil {
		return nil
	}
	j, ok := err.(interface{ Unwrap() []error })
	if !ok {
		return []error{err}
	}
	var out []error
	for _, e := range j.Unwrap() {
		out = append(out, leaves(e)...)
	}
	return out
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
