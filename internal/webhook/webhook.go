// Package webhook hears what people do at a provider that AgentHub must
// follow: today GitHub's github_app_authorization, sent when a person
// revokes the GitHub App's authorization in their GitHub settings, after
// which AgentHub revokes their GitHub connection here too, cancels what
// waited for it and tells them.
//
// (Slack's counterparts, tokens_revoked and app_uninstalled, arrive over
// the Socket Mode connection the app already trusts: internal/slackapp
// handles them.)
//
// A delivery is believed only when its X-Hub-Signature-256 is the
// HMAC-SHA256 of its body under the webhook secret; a missing or wrong
// signature is refused and on the record (webhook.refused, counted per
// reason). A delivery already handled (its X-GitHub-Delivery ID seen) is
// answered without acting again: GitHub redelivers, and a captured
// delivery replayed can only ask for a revocation that already happened.
package webhook

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/agenthub/agenthub/internal/audit"
	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/store"
)

// Path is where GitHub delivers, under the public URL.
const Path = "/webhooks/github"

// maxBody bounds a delivery: GitHub caps payloads at 25 MB, but the
// events AgentHub reads are a few kilobytes.
const maxBody = 1 << 20

// deliveryKind marks deliveries handled, for a day (GitHub redelivers
// within three).
const deliveryKind = "webhook-delivery"

// deliveryTTL is how long a handled delivery is remembered.
const deliveryTTL = 72 * time.Hour

// Refuser records refusals, counted; *broker.Broker is one.
type Refuser interface {
	Refuse(ctx context.Context, r broker.Refusal) error
}

// Options configure GitHub. All but Logger are required.
type Options struct {
	// Secret is the GitHub App's webhook secret.
	Secret  []byte
	Store   store.Store
	Refuser Refuser
	// Revoked is told that the GitHub user login revoked the app's
	// authorization: it revokes every connection of that account.
	Revoked func(ctx context.Context, login string) error
	Logger  *slog.Logger
}

// GitHub returns the handler of GitHub App webhooks.
func GitHub(opts Options) (http.Handler, error) {
	switch {
	case len(opts.Secret) < 16:
		return nil, errors.New("webhook: the secret must be at least 16 bytes")
	case opts.Store == nil || opts.Refuser == nil || opts.Revoked == nil:
		return nil, errors.New("webhook: Store, Refuser and Revoked are required")
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	return &gitHub{opts: opts}, nil
}

type gitHub struct{ opts Options }

func (g *gitHub) refuse(w http.ResponseWriter, r *http.Request, reason string, status int) {
	if err := g.opts.Refuser.Refuse(context.WithoutCancel(r.Context()), broker.Refusal{
		Actor: "anonymous", Kind: audit.WebhookRefused, Reason: reason, Op: "github_webhook", Resource: "github",
	}); err != nil {
		g.opts.Logger.WarnContext(r.Context(), "webhook refusal not recorded", "reason", reason, "error", err)
	}
	http.Error(w, http.StatusText(status), status)
}

// valid reports whether sig ("sha256=" and hex) is body's HMAC under the
// secret, in constant time.
func valid(secret, body []byte, sig string) bool {
	hexSig, ok := strings.CutPrefix(sig, "sha256=")
	if !ok {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, secret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

func (g *gitHub) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	ctx := r.Context()
	if r.Method != http.MethodPost {
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBody))
	if err != nil {
		g.refuse(w, r, "too_large", http.StatusRequestEntityTooLarge)
		return
	}
	sig := r.Header.Get("X-Hub-Signature-256")
	switch {
	case sig == "":
		g.refuse(w, r, "signature_missing", http.StatusUnauthorized)
		return
	case !valid(g.opts.Secret, body, sig):
		g.refuse(w, r, "signature_wrong", http.StatusUnauthorized)
		return
	}
	delivery := r.Header.Get("X-GitHub-Delivery")
	if delivery == "" || len(delivery) > 100 {
		g.refuse(w, r, "delivery_missing", http.StatusBadRequest)
		return
	}
	key := store.Key{Kind: deliveryKind, ID: "github:" + delivery}
	switch _, err := g.opts.Store.Get(ctx, key); {
	case err == nil:
		w.WriteHeader(http.StatusOK) // handled already: a redelivery, or a replay
		return
	case !errors.Is(err, store.ErrNotFound):
		g.opts.Logger.ErrorContext(ctx, "webhook delivery not checked", "error", err)
		http.Error(w, "try again", http.StatusServiceUnavailable)
		return
	}
	if r.Header.Get("X-GitHub-Event") == "github_app_authorization" {
		var ev struct {
			Action string `json:"action"`
			Sender struct {
				Login string `json:"login"`
			} `json:"sender"`
		}
		if err := json.Unmarshal(body, &ev); err != nil || ev.Sender.Login == "" {
			g.refuse(w, r, "payload_invalid", http.StatusBadRequest)
			return
		}
		if ev.Action == "revoked" {
			if err := g.opts.Revoked(context.WithoutCancel(ctx), ev.Sender.Login); err != nil {
				// Not marked handled: GitHub's redelivery tries again.
				g.opts.Logger.ErrorContext(ctx, "revocation at GitHub not followed", "github_login", ev.Sender.Login, "error", err)
				http.Error(w, "try again", http.StatusServiceUnavailable)
				return
			}
		}
	}
	if err := g.opts.Store.Put(ctx, key, []byte("1"), deliveryTTL); err != nil {
		g.opts.Logger.WarnContext(ctx, "webhook delivery not marked handled", "error", fmt.Errorf("mark: %w", err))
	}
	w.WriteHeader(http.StatusNoContent)
}
