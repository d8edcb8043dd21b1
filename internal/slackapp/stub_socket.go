package slackapp

import (
	"context"
	"errors"
)

// Placeholders until the transport lands; the transport's author deletes
// this file.

type transport struct{}

func (t *transport) init(a *App) error { return nil }

// Run connects to Slack and serves until ctx ends.
func (a *App) Run(ctx context.Context) error { return errors.New("slackapp: not built yet") }

// Connected reports whether a Socket Mode connection is open.
func (a *App) Connected() bool { return false }
