package main

import (
	"context"
	"log/slog"

	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/config"
	"github.com/agenthub/agenthub/internal/connect"
	"github.com/agenthub/agenthub/internal/store"
)

// connectFlows returns the OAuth connect flow on the providers' OAuth
// clients, which the public listener serves; nil when AGENTHUB_PUBLIC_URL
// is not set. landed is told of each connection the flow stores.
func connectFlows(cfg *config.Config, provs *providers, c *core, st store.Store, k keys, logger *slog.Logger,
	landed func(ctx context.Context, p broker.Principal, service, account string)) (*connect.Flows, error) {
	if cfg.PublicURL == "" {
		return nil, nil
	}
	return connect.New(connect.Options{
		PublicURL: cfg.PublicURL, Key: k.links, Store: st, Vault: c.Vault, Audit: c.Audit, Refuser: c.Broker,
		Providers: provs.oauth, Connected: landed, HTTPClient: provs.stack.Client, Logger: logger,
	})
}
