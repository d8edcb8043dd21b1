package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"time"

	"github.com/agenthub/agenthub/internal/loopback"
	"github.com/agenthub/agenthub/internal/sim"
)

// runSim serves the simulated providers (GitHub, Calendar, Slack and their
// OAuth endpoints) until ctx ends. Slack bots in demo mode with
// AGENTHUB_SIM_URL set to its address share its world, so that several
// replicas see the same repositories and a merge through one is a merge
// for all.
func runSim(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("sim", flag.ContinueOnError)
	addr := fs.String("addr", "127.0.0.1:8090", "listen address, on a loopback interface (tokens travel over plain HTTP)")
	if err := parseFlags(fs, args, stderr); err != nil {
		return err
	}
	host, _, err := net.SplitHostPort(*addr)
	if err != nil {
		return usageError("sim: -addr %q: %v", *addr, err)
	}
	if !loopback.Is(host) {
		return usageError("sim: -addr %q: the simulated providers listen on loopback only, such as 127.0.0.1:8090", *addr)
	}
	l, err := net.Listen("tcp", *addr)
	if err != nil {
		return fmt.Errorf("sim: %w", err)
	}
	logger := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: slog.LevelWarn}))
	_, port, _ := net.SplitHostPort(l.Addr().String())
	srv := &http.Server{Handler: loopbackHost(port, sim.New(sim.Options{Logger: logger}).Handler()), ReadHeaderTimeout: 10 * time.Second}
	fmt.Fprintf(stdout, "simulated providers at http://%s: set AGENTHUB_SIM_URL to it\n", l.Addr())

	done := make(chan error, 1)
	go func() { done <- srv.Serve(l) }()
	select {
	case err := <-done:
		return fmt.Errorf("sim: %w", err)
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil {
		return fmt.Errorf("sim: shutdown: %w", err)
	}
	if err := <-done; !errors.Is(err, http.ErrServerClosed) {
		return fmt.Errorf("sim: %w", err)
	}
	return nil
}

// loopbackHost refuses requests whose Host is not a loopback name for the
// port served: a web page in a browser on this machine could otherwise
// reach the simulated providers through a DNS name rebound to 127.0.0.1
// (its requests carry that name), and their consent page consents for
// whoever login_hint names.
func loopbackHost(port string, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		host, p, err := net.SplitHostPort(r.Host)
		if err != nil || p != port || !loopback.Is(host) {
			http.Error(w, "this server answers only to a loopback address", http.StatusMisdirectedRequest)
			return
		}
		next.ServeHTTP(w, r)
	})
}
