// Package llmtest is an httptest fake of an OpenAI-compatible
// chat-completions endpoint that answers with scripted tool calls, words
// or failures, and keeps what it was sent: for the tests of the LLM
// planner and of the commands that use it.
package llmtest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"sync"
	"testing"
)

// Answer is one scripted response: Status other than 0 or 200 fails with
// that status; otherwise Calls (tool calls) or Words.
type Answer struct {
	Status int
	Calls  []Call
	Words  string
}

// Call is one tool call: the tool's name and its arguments as JSON.
type Call struct{ Tool, Args string }

// Model is the fake.
type Model struct {
	t       testing.TB
	srv     *httptest.Server
	mu      sync.Mutex
	answers []Answer
	bodies  [][]byte
}

// New starts a model that answers with answers, in order.
func New(t testing.TB, answers ...Answer) *Model {
	m := &Model{t: t, answers: answers}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.srv.Close)
	return m
}

// URL is the base URL to set as OPENAI_BASE_URL.
func (m *Model) URL() string { return m.srv.URL + "/v1" }

// Bodies are the request bodies received, in order.
func (m *Model) Bodies() [][]byte {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([][]byte(nil), m.bodies...)
}

// Requests are the requests received, decoded.
func (m *Model) Requests() []map[string]any {
	var out []map[string]any
	for _, b := range m.Bodies() {
		var v map[string]any
		if err := json.Unmarshal(b, &v); err != nil {
			m.t.Fatal(err)
		}
		out = append(out, v)
	}
	return out
}

func (m *Model) serve(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	m.mu.Lock()
	m.bodies = append(m.bodies, body)
	if len(m.answers) == 0 {
		m.mu.Unlock()
		m.t.Errorf("llmtest: the model was asked more often than scripted")
		http.Error(w, "no more answers", http.StatusInternalServerError)
		return
	}
	a := m.answers[0]
	m.answers = m.answers[1:]
	m.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	if a.Status != 0 && a.Status != http.StatusOK {
		w.WriteHeader(a.Status)
		json.NewEncoder(w).Encode(map[string]any{"error": map[string]any{"message": "scripted failure", "type": "server_error"}})
		return
	}
	msg := map[string]any{"role": "assistant", "content": a.Words}
	if len(a.Calls) > 0 {
		var tcs []any
		for i, c := range a.Calls {
			tcs = append(tcs, map[string]any{"id": fmt.Sprintf("call_%d", i), "type": "function",
				"function": map[string]any{"name": c.Tool, "arguments": c.Args}})
		}
		msg["tool_calls"] = tcs
	}
	json.NewEncoder(w).Encode(map[string]any{"id": "chatcmpl-1", "object": "chat.completion", "created": 0, "model": "scripted",
		"choices": []any{map[string]any{"index": 0, "message": msg, "finish_reason": "stop"}},
		"usage":   map[string]any{"prompt_tokens": 10, "completion_tokens": 5, "total_tokens": 15}})
}

// ToolCall is a Call of tool with args.
func ToolCall(tool, args string) Call { return Call{Tool: tool, Args: args} }
