// Command bot is AgentHub: a Slack bot that lets AI agents act in GitHub,
// Google Calendar and Slack for people without ever holding their
// credentials. This package only wires the parts together.
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/signal"
	"syscall"

	"github.com/agenthub/agenthub/internal/store/redisstore"
)

func main() {
	// go-redis would otherwise print its pool's dial retries to stderr,
	// beside the one clear error the command reports.
	redisstore.RouteClientLogs(slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelWarn})))
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	err := run(ctx, os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr)
	stop()
	os.Exit(exitCode(err, os.Stderr))
}

// exitError carries a process exit status. Its message, if any, has
// already been shown to the person or is shown by exitCode.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }

// usageError marks a command-line mistake: exit status 2.
func usageError(format string, args ...any) error {
	return &exitError{code: 2, msg: fmt.Sprintf(format, args...)}
}

// exitCode prints err (if it has anything to say) and returns the status.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	var ee *exitError
	if errors.As(err, &ee) {
		if ee.msg != "" {
			fmt.Fprintln(stderr, "bot:", ee.msg)
		}
		return ee.code
	}
	fmt.Fprintln(stderr, "bot:", err)
	return 1
}
