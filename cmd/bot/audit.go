package main

import (
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"

	"github.com/agenthub/agenthub/internal/audit"
)

const auditUsage = `Usage:
  bot audit export [-store URL] [-since SEQ]        write events as JSON Lines to stdout
  bot audit verify [-store URL | -file audit.jsonl [-since SEQ]]
                                                    check the hash chain

verify exits 0 and prints the event count and the head hash when the chain is
intact, and exits 1 naming the first bad sequence number otherwise. It works
offline on an export: an auditor needs only this binary and the file. An
export must start at seq 1, or at the -since it was made with.

A chain proves the order and content of what it holds, not that nothing was
cut from its end: compare the printed head hash with one recorded elsewhere
(an earlier verify, the audit channel) to know the trail is complete.
`

func (h hooks) runAudit(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stderr, auditUsage)
		return usageError("audit: missing subcommand")
	}
	switch args[0] {
	case "export":
		return h.auditExport(ctx, args[1:], getenv, stdout, stderr)
	case "verify":
		return h.auditVerify(ctx, args[1:], getenv, stdin, stdout, stderr)
	case "help", "-h", "-help", "--help":
		fmt.Fprint(stdout, auditUsage)
		return nil
	}
	fmt.Fprint(stderr, auditUsage)
	return usageError("audit: unknown subcommand %q", args[0])
}

func (h hooks) auditExport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	settings, err := loadStoreSettings(getenv)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("audit export", flag.ContinueOnError)
	fs.StringVar(&settings.URL, "store", settings.URL, storeFlagUsage)
	since := fs.Uint64("since", 1, "first sequence number to export")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	s, err := h.openStore(ctx, settings, false, nil)
	if err != nil {
		return err
	}
	defer s.Close()
	w := bufio.NewWriterSize(stdout, 1<<16)
	n, err := audit.Export(ctx, s, audit.DefaultLog, *since, w)
	if err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	if err := w.Flush(); err != nil {
		return fmt.Errorf("audit export: %w", err)
	}
	fmt.Fprintf(stderr, "exported %d events\n", n)
	return nil
}

func (h hooks) auditVerify(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	settings, err := loadStoreSettings(getenv)
	if err != nil {
		return err
	}
	fs := flag.NewFlagSet("audit verify", flag.ContinueOnError)
	fs.StringVar(&settings.URL, "store", settings.URL, storeFlagUsage)
	file := fs.String("file", "", "verify an export (JSON Lines; - for stdin) instead of the store")
	since := fs.Uint64("since", 1, "with -file: the sequence number the export must start at")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	storeSet := false
	fs.Visit(func(f *flag.Flag) { storeSet = storeSet || f.Name == "store" })
	if storeSet && *file != "" {
		return usageError("audit verify: use -store or -file, not both")
	}

	var sum audit.Summary
	if *file != "" {
		var r io.Reader = stdin
		if *file != "-" {
			f, oerr := os.Open(*file)
			if oerr != nil {
				return fmt.Errorf("audit verify: %w", oerr)
			}
			defer f.Close()
			r = f
		}
		sum, err = audit.Verify(r)
	} else {
		s, oerr := h.openStore(ctx, settings, false, nil)
		if oerr != nil {
			return oerr
		}
		defer s.Close()
		sum, err = audit.VerifyStore(ctx, s, audit.DefaultLog)
	}
	var ce *audit.ChainError
	if errors.As(err, &ce) {
		fmt.Fprintf(stdout, "FAILED: the audit chain is broken at seq %d: %s\n", ce.Seq, ce.Reason)
		return &exitError{code: 1}
	}
	if err != nil {
		return fmt.Errorf("audit verify: %w", err)
	}
	if sum.Count > 0 && sum.First != *since {
		fmt.Fprintf(stdout, "FAILED: the trail starts at seq %d, not %d: the events before it are missing\n", sum.First, *since)
		if *file != "" {
			fmt.Fprintf(stdout, "(to check a partial export made with -since %d, pass -since %d)\n", sum.First, sum.First)
		}
		return &exitError{code: 1}
	}
	if sum.Count == 0 {
		fmt.Fprintln(stdout, "OK: the audit trail is empty")
		return nil
	}
	fmt.Fprintf(stdout, "OK: %d events (seq %d to %d), head %s\n", sum.Count, sum.First, sum.First+sum.Count-1, sum.Head)
	if sum.First > 1 {
		fmt.Fprintf(stdout, "note: the export starts at seq %d; its link to seq %d (prev %s) was not checked\n", sum.First, sum.First-1, sum.Prev)
	}
	return nil
}
