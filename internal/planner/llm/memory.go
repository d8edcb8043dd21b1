package llm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	openai "github.com/sashabaranov/go-openai"

	"github.com/agenthub/agenthub/internal/store"
)

// Memory bounds: a conversation keeps its last MemoryTurns turns, at most
// MemoryBytes of them, for MemoryTTL after its last message.
const (
	MemoryTurns = 20
	MemoryBytes = 32 << 10
	MemoryTTL   = 24 * time.Hour
)

// memoryKind holds conversations (scope the principal, ID the
// conversation): the person's messages, and what came of them in words
// (the model's answers and the steps it proposed). Read results are not
// kept, but what they tainted is: Sources names the untrusted content any
// turn came from, and every step proposed in the conversation later is
// tainted with it.
const memoryKind = "llm-memory"

type memory struct {
	Turns   []turn   `json:"turns"`
	Sources []string `json:"sources,omitempty"`
	// Private and ByRule stick once a turn's answer came from results
	// that were not public (or public by a rule only): every later answer
	// in the conversation may repeat them.
	Private bool `json:"private,omitempty"`
	ByRule  bool `json:"by_rule,omitempty"`
}

type turn struct {
	Role    string `json:"role"` // user or assistant
	Content string `json:"content"`
}

func memoryKey(principal, conversation string) store.Key {
	return store.Key{Scope: principal, Kind: memoryKind, ID: conversation}
}

// recall is the conversation so far; a fault reads as none (the planner
// works without memory, and says nothing of what it could not read).
func (l *LLM) recall(ctx context.Context, principal, conversation string) memory {
	if l.opts.Store == nil || conversation == "" {
		return memory{}
	}
	it, err := l.opts.Store.Get(ctx, memoryKey(principal, conversation))
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			l.opts.Logger.WarnContext(ctx, "conversation not read", "error", err)
		}
		return memory{}
	}
	var m memory
	if json.Unmarshal(it.Value, &m) != nil {
		return memory{}
	}
	return m
}

// remember adds turns (a message and its outcome, or a report), and the
// untrusted sources they drew on, within the bounds.
func (l *LLM) remember(ctx context.Context, principal, conversation string, turns []turn, sources []string, private, byRule bool, began time.Time) {
	if l.opts.Store == nil || conversation == "" {
		return
	}
	// A Forget while this turn was planned wins: the person was told
	// everything was forgotten.
	if it, err := l.opts.Store.Get(ctx, forgotKey(principal)); err == nil {
		if at, perr := time.Parse(time.RFC3339Nano, string(it.Value)); perr == nil && !began.After(at) {
			return
		}
	}
	_, err := store.Update(ctx, l.opts.Store, memoryKey(principal, conversation), MemoryTTL, func(cur []byte) ([]byte, error) {
		var m memory
		if cur != nil {
			_ = json.Unmarshal(cur, &m)
		}
		for _, t := range turns {
			m.Turns = append(m.Turns, turn{Role: t.Role, Content: clip(t.Content, MemoryBytes/4)})
		}
		m.Private, m.ByRule = m.Private || private, m.ByRule || byRule
		for _, s := range sources {
			if !slices.Contains(m.Sources, s) {
				m.Sources = append(m.Sources, s)
			}
		}
		for len(m.Turns) > MemoryTurns || size(m.Turns) > MemoryBytes {
			// The oldest message and what came of it: a conversation
			// starts with the person.
			m.Turns = m.Turns[1:]
			for len(m.Turns) > 0 && m.Turns[0].Role != openai.ChatMessageRoleUser {
				m.Turns = m.Turns[1:]
			}
		}
		return json.Marshal(m)
	})
	if err != nil {
		l.opts.Logger.WarnContext(ctx, "conversation not kept", "error", err)
	}
}

func size(turns []turn) int {
	n := 0
	for _, t := range turns {
		n += len(t.Content)
	}
	return n
}

// forgotKey holds when principal last asked to forget, so that a turn
// planned meanwhile is not kept after it.
func forgotKey(principal string) store.Key {
	return store.Key{Scope: principal, Kind: memoryKind + "-forgot", ID: "at"}
}

// Forget clears every conversation principal has had with the planner
// (/agenthub forget).
func (l *LLM) Forget(ctx context.Context, principal string) (int, error) {
	if l.opts.Store == nil {
		return 0, nil
	}
	if err := l.opts.Store.Put(ctx, forgotKey(principal), []byte(l.opts.Now().UTC().Format(time.RFC3339Nano)), MemoryTTL); err != nil {
		return 0, fmt.Errorf("llm: note the forgetting: %w", err)
	}
	items, err := l.opts.Store.List(ctx, principal, memoryKind)
	if err != nil {
		return 0, fmt.Errorf("llm: list conversations: %w", err)
	}
	var errs []error
	for _, it := range items {
		errs = append(errs, l.opts.Store.Delete(ctx, it.Key))
	}
	return len(items), errors.Join(errs...)
}
