package main

import (
	"context"
	"fmt"
	"os"
	"strings"

	"github.com/agenthub/agenthub/internal/config"
	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/boltstore"
	"github.com/agenthub/agenthub/internal/store/redisstore"
)

// openStore opens the store a URL names. Commands that only read (create
// false) refuse to create a new, empty bolt file where a typo in the path
// would otherwise make an empty audit trail look intact.
func openStore(ctx context.Context, raw string, getenv func(string) string, create bool) (store.Store, error) {
	if err := config.CheckStoreURL(raw); err != nil {
		return nil, err
	}
	if path, ok := strings.CutPrefix(raw, "bolt:"); ok {
		if !create {
			if _, err := os.Stat(path); err != nil {
				return nil, fmt.Errorf("open store %s: %w", raw, err)
			}
		}
		s, err := boltstore.Open(path, boltstore.Options{})
		if err != nil {
			return nil, fmt.Errorf("open store %s: %w", raw, err)
		}
		return s, nil
	}
	prefix := getenv("AGENTHUB_REDIS_PREFIX")
	if prefix == "" {
		prefix = "agenthub"
	}
	s, err := redisstore.Open(ctx, redisstore.Options{URL: raw, Prefix: prefix})
	if err != nil {
		// redisstore's errors already name the URL without its password.
		return nil, err
	}
	return s, nil
}
