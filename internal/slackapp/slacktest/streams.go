package slacktest

import (
	"encoding/json"
	"slices"
	"strings"
)

// Stream is a message streamed with chat.startStream, chat.appendStream
// and chat.stopStream (Slack's agent progress): its chunks in the order
// they came, and whether it was stopped.
type Stream struct {
	Channel, ThreadTS, TS string
	Recipient, Team       string
	DisplayMode           string
	Chunks                []Chunk
	Stopped               bool
}

// Chunk is one chunk of a streamed message: markdown text, or a task
// update (ID, Title, Status, Details, Output).
type Chunk struct {
	Type, Text                         string
	ID, Title, Status, Details, Output string
}

// Streams are the messages the app streamed, in the order they began.
func (s *Server) Streams() []Stream {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make([]Stream, len(s.streams))
	for i, st := range s.streams {
		out[i] = *st
		out[i].Chunks = slices.Clone(st.Chunks)
	}
	return out
}

// NoStreams makes the workspace one where streamed messages are not
// available: chat.startStream answers unknown_method.
func (s *Server) NoStreams() {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noStreams = true
}

// startStreamLocked checks what Slack requires of chat.startStream: in a
// channel (not a DM) the recipient user and team; well-formed chunks.
func (s *Server) startStreamLocked(f map[string]string) reply {
	if s.noStreams {
		return reply{code: "unknown_method"}
	}
	if f["channel"] == "" {
		return reply{code: "channel_not_found"}
	}
	ch := s.channelLocked(f["channel"])
	if !strings.HasPrefix(ch, "D") && (f["recipient_user_id"] == "" || f["recipient_team_id"] == "") {
		return reply{code: "missing_recipient_user_id"}
	}
	switch f["task_display_mode"] {
	case "", "timeline", "plan":
	default:
		return reply{code: "invalid_arguments"}
	}
	chunks, code := chunksOf(f)
	if code != "" {
		return reply{code: code}
	}
	st := &Stream{Channel: ch, ThreadTS: f["thread_ts"], TS: s.tsLocked(), Recipient: f["recipient_user_id"], Team: f["recipient_team_id"],
		DisplayMode: f["task_display_mode"], Chunks: chunks}
	s.streams = append(s.streams, st)
	return reply{body: map[string]any{"channel": ch, "ts": st.TS}}
}

// moreStreamLocked is chat.appendStream, and chat.stopStream when stop.
func (s *Server) moreStreamLocked(f map[string]string, stop bool) reply {
	ch := s.channelLocked(f["channel"])
	i := slices.IndexFunc(s.streams, func(st *Stream) bool { return st.Channel == ch && st.TS == f["ts"] })
	if i < 0 {
		return reply{code: "message_not_found"}
	}
	st := s.streams[i]
	if st.Stopped {
		return reply{code: "message_not_in_streaming_state"}
	}
	chunks, code := chunksOf(f)
	if code != "" {
		return reply{code: code}
	}
	if !stop && len(chunks) == 0 {
		return reply{code: "no_text"}
	}
	st.Chunks = append(st.Chunks, chunks...)
	st.Stopped = stop
	return reply{body: map[string]any{"channel": ch, "ts": st.TS}}
}

// chunksOf reads the chunks (or markdown_text) of a stream call.
func chunksOf(f map[string]string) ([]Chunk, string) {
	var chunks []Chunk
	if t := f["markdown_text"]; t != "" {
		chunks = append(chunks, Chunk{Type: "markdown_text", Text: t})
	}
	raw, ok := f["chunks"]
	if !ok {
		return chunks, ""
	}
	var in []map[string]any
	if err := json.Unmarshal([]byte(raw), &in); err != nil {
		return nil, "invalid_chunks"
	}
	for _, c := range in {
		str := func(k string) string { v, _ := c[k].(string); return v }
		ch := Chunk{Type: str("type"), Text: str("text"), ID: str("id"), Title: str("title"), Status: str("status"), Details: str("details"), Output: str("output")}
		switch ch.Type {
		case "markdown_text":
			if ch.Text == "" {
				return nil, "invalid_chunks"
			}
		case "task_update":
			switch ch.Status {
			case "pending", "in_progress", "complete", "error":
			default:
				return nil, "invalid_chunks"
			}
			if ch.ID == "" || ch.Title == "" {
				return nil, "invalid_chunks"
			}
		case "plan_update", "blocks":
		default:
			return nil, "invalid_chunks"
		}
		chunks = append(chunks, ch)
	}
	return chunks, ""
}
