package slackapp

import "context"

// Placeholders until the handlers land; the handlers' author deletes this
// file.

func (a *App) ackFor(w *work) any                           { return nil }
func (a *App) handleWork(ctx context.Context, w work) error { return nil }
func (a *App) sweep(ctx context.Context) error              { <-ctx.Done(); return nil }
