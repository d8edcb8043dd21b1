package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"strings"

	"github.com/agenthub/agenthub/internal/config"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/boltstore"
	"github.com/agenthub/agenthub/internal/store/redisstore"
)

// openStore opens the store the settings name; config.Load or
// config.LoadStore produced them, so AGENTHUB_STORE and
// AGENTHUB_REDIS_PREFIX are read in one place. Commands that only read
// (create false) refuse to create a new, empty bolt file where a typo in
// the path would otherwise make an empty audit trail look intact. logger
// receives the embedded store's sweep failures (nil: discarded).
func (h hooks) openStore(ctx context.Context, settings config.StoreSettings, create bool, logger *slog.Logger) (store.Store, error) {
	raw := settings.URL
	if err := config.CheckStoreURL(raw); err != nil {
		return nil, err
	}
	if path, ok := strings.CutPrefix(raw, "bolt:"); ok {
		if !create {
			if _, err := os.Stat(path); err != nil {
				return nil, fmt.Errorf("open store %s: %w", raw, err)
			}
		}
		s, err := boltstore.Open(path, boltstore.Options{Logger: logger, SweepInterval: h.sweepEvery})
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", raw, err)
		}
		return s, nil
	}
	if settings.RedisPrefix == "" {
		// A zero StoreSettings is a wiring mistake; an empty prefix would
		// put AgentHub's keys beside everything else in the database.
		return nil, fmt.Errorf("open store %s: no Redis key prefix", store.RedactURL(raw))
	}
	s, err := redisstore.Open(ctx, redisstore.Options{URL: raw, Prefix: settings.RedisPrefix})
	if err != nil {
		// redisstore's errors already name the URL without its password.
		return nil, err
	}
	return s, nil
}

// sweeper is a store that removes its expired records only while its Run
// runs: the embedded store. Redis expires keys by itself.
type sweeper interface {
	Run(ctx context.Context) error
}

// runStore does the store's own background work until ctx ends: the
// embedded store's sweep of expired records, which would otherwise stay in
// the file for good. For a store with nothing to do it returns nil at once.
func runStore(ctx context.Context, st store.Store) error {
	sw, ok := st.(sweeper)
	if !ok {
		return nil
	}
	if err := sw.Run(ctx); err != nil {
		return fmt.Errorf("store sweeper: %w", err)
	}
	return nil
}

// loadStoreSettings reads the store settings for a command that needs no
// other setting; a malformed one is a settings mistake (exit status 2),
// named by its variable.
func loadStoreSettings(getenv func(string) string) (config.StoreSettings, error) {
	s, err := config.LoadStore(getenv)
	if ce, ok := errors.AsType[*config.Error](err); ok {
		msgs := make([]string, 0, len(ce.Problems))
		for _, p := range ce.Problems {
			msgs = append(msgs, p.Name+": "+p.Message)
		}
		return s, usageError("%s", strings.Join(msgs, "; "))
	}
	return s, err
}
