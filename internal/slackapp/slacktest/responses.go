package slacktest

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"slices"
	"time"
)

// Response is one message posted to an interaction's or a slash command's
// response_url.
type Response struct {
	// URL is the response_url it was posted to; each envelope built by the
	// server has its own, so a test can tell whose answer it is.
	URL string
	// ResponseType is "ephemeral" or "in_channel" ("" when not given; Slack
	// then treats it as ephemeral).
	ResponseType    string
	Text            string
	Blocks          json.RawMessage
	ReplaceOriginal bool
	DeleteOriginal  bool
	At              time.Time
}

// responseURL makes a fresh response_url for an envelope of kind
// ("commands" or "actions").
func (s *Server) responseURL(kind string) string {
	return fmt.Sprintf("%s/%s/response/%d", s.URL, kind, s.nextID())
}

// response answers a POST to a response_url the way Slack does: 200 "ok"
// for a JSON message with text or blocks, 400 otherwise.
func (s *Server) response(w http.ResponseWriter, r *http.Request) {
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	var msg struct {
		ResponseType    string          `json:"response_type"`
		Text            string          `json:"text"`
		Blocks          json.RawMessage `json:"blocks"`
		ReplaceOriginal bool            `json:"replace_original"`
		DeleteOriginal  bool            `json:"delete_original"`
	}
	if json.Unmarshal(body, &msg) != nil || (msg.Text == "" && len(msg.Blocks) == 0 && !msg.DeleteOriginal) {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	if string(msg.Blocks) == "null" {
		msg.Blocks = nil
	}
	s.mu.Lock()
	s.responses = append(s.responses, Response{
		URL: s.URL + r.URL.Path, ResponseType: msg.ResponseType, Text: msg.Text, Blocks: msg.Blocks,
		ReplaceOriginal: msg.ReplaceOriginal, DeleteOriginal: msg.DeleteOriginal, At: s.now(),
	})
	s.notifyLocked()
	s.mu.Unlock()
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, "ok")
}

// Responses returns the messages posted to response_urls, oldest first.
func (s *Server) Responses() []Response {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.responses)
}
