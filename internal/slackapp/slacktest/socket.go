package slacktest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sync"
	"time"

	"github.com/gorilla/websocket"
)

// Envelope is one Socket Mode delivery. Build one with the Server's
// builders (AppMention, SlashCommand, …) and hand it to Push.
type Envelope struct {
	// Type is events_api, interactive or slash_commands.
	Type string `json:"type"`
	// EnvelopeID is what the client must ack; Push fills it when empty.
	EnvelopeID             string          `json:"envelope_id"`
	Payload                json.RawMessage `json:"payload"`
	AcceptsResponsePayload bool            `json:"accepts_response_payload"`
	RetryAttempt           int             `json:"retry_attempt"`
	RetryReason            string          `json:"retry_reason"`
}

// Retry returns the redelivery Slack makes when an envelope was not acked
// in time: the same payload (so the same event_id) under a new envelope ID.
func (e Envelope) Retry(attempt int, reason string) Envelope {
	e.EnvelopeID = ""
	e.RetryAttempt = attempt
	e.RetryReason = reason
	return e
}

// Ack is what a client sent back for an envelope.
type Ack struct {
	EnvelopeID string
	// Payload is the response payload, nil when the ack carried none.
	Payload json.RawMessage
	// At is when the ack arrived, on the server's clock.
	At time.Time
}

type wsConn struct {
	ws   *websocket.Conn
	wmu  sync.Mutex // gorilla allows one writer at a time
	done chan struct{}
	once sync.Once
}

func (c *wsConn) writeJSON(v any) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	_ = c.ws.SetWriteDeadline(time.Now().Add(10 * time.Second))
	return c.ws.WriteJSON(v)
}

func (c *wsConn) close() {
	c.once.Do(func() {
		close(c.done)
		c.wmu.Lock()
		_ = c.ws.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(time.Second))
		c.wmu.Unlock()
		_ = c.ws.Close()
	})
}

func (s *Server) link(w http.ResponseWriter, r *http.Request) {
	ticket := r.URL.Query().Get("ticket")
	s.mu.Lock()
	valid := s.tickets[ticket] && !s.closed
	delete(s.tickets, ticket) // tickets are single use, as Slack's are
	s.mu.Unlock()
	if !valid {
		http.Error(w, "invalid ticket", http.StatusUnauthorized)
		return
	}
	ws, err := s.upgrader.Upgrade(w, r, nil)
	if err != nil {
		return // Upgrade has already answered the client
	}
	c := &wsConn{ws: ws, done: make(chan struct{})}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.close()
		return
	}
	s.hellos++
	n := len(s.conns) + 1
	s.mu.Unlock()

	hello := map[string]any{
		"type":            "hello",
		"num_connections": n,
		"debug_info": map[string]any{
			"host":                        "applink-fake-1",
			"build_number":                1,
			"approximate_connection_time": 18060,
		},
		"connection_info": map[string]any{"app_id": AppID},
	}
	if err := c.writeJSON(hello); err != nil {
		c.close()
		return
	}
	// The connection only takes envelopes once the client has its hello.
	s.mu.Lock()
	s.conns = append(s.conns, c)
	s.notifyLocked()
	s.mu.Unlock()

	go s.ping(c)
	s.readAcks(c)

	s.mu.Lock()
	s.conns = slices.DeleteFunc(s.conns, func(x *wsConn) bool { return x == c })
	s.notifyLocked()
	s.mu.Unlock()
	c.close()
}

// ping keeps slack-go's dead-man timer satisfied until the connection ends.
func (s *Server) ping(c *wsConn) {
	t := time.NewTicker(s.pingEvery)
	defer t.Stop()
	for {
		select {
		case <-c.done:
			return
		case <-t.C:
			c.wmu.Lock()
			err := c.ws.WriteControl(websocket.PingMessage, []byte("ping"), time.Now().Add(5*time.Second))
			c.wmu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

func (s *Server) readAcks(c *wsConn) {
	for {
		var msg struct {
			EnvelopeID string          `json:"envelope_id"`
			Payload    json.RawMessage `json:"payload"`
		}
		if err := c.ws.ReadJSON(&msg); err != nil {
			var syntax *json.SyntaxError
			if errors.As(err, &syntax) {
				continue
			}
			return
		}
		if msg.EnvelopeID == "" {
			continue
		}
		s.mu.Lock()
		s.acks = append(s.acks, Ack{EnvelopeID: msg.EnvelopeID, Payload: msg.Payload, At: s.now()})
		s.notifyLocked()
		s.mu.Unlock()
	}
}

// Push delivers env to one connected client, waiting for a connection if
// none is up yet, and returns its envelope ID. A trigger_id in the payload
// becomes valid for one views.open, as Slack's triggers are.
func (s *Server) Push(ctx context.Context, env Envelope) (string, error) {
	var probe struct {
		TriggerID string `json:"trigger_id"`
	}
	_ = json.Unmarshal(env.Payload, &probe)
	for {
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			return "", errors.New("slacktest: server closed")
		}
		if len(s.conns) > 0 {
			c := s.conns[s.next%len(s.conns)]
			s.next++
			if env.EnvelopeID == "" {
				id := s.nextIDLocked()
				env.EnvelopeID = fmt.Sprintf("%08x-0000-4000-8000-%012x", id, id)
			}
			if probe.TriggerID != "" {
				if _, seen := s.triggers[probe.TriggerID]; !seen {
					s.triggers[probe.TriggerID] = false
				}
			}
			s.mu.Unlock()
			if err := c.writeJSON(env); err != nil {
				return "", fmt.Errorf("push envelope %s: %w", env.EnvelopeID, err)
			}
			return env.EnvelopeID, nil
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return "", fmt.Errorf("push: no client connected: %w", ctx.Err())
		case <-ch:
		}
	}
}

// Acks returns every ack received so far, in arrival order.
func (s *Server) Acks() []Ack {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.acks)
}

// WaitAck waits for the first ack of envelopeID.
func (s *Server) WaitAck(ctx context.Context, envelopeID string) (Ack, error) {
	for {
		s.mu.Lock()
		for _, a := range s.acks {
			if a.EnvelopeID == envelopeID {
				s.mu.Unlock()
				return a, nil
			}
		}
		ch := s.changed
		s.mu.Unlock()
		select {
		case <-ctx.Done():
			return Ack{}, fmt.Errorf("wait for ack of %s: %w", envelopeID, ctx.Err())
		case <-ch:
		}
	}
}

// Hellos counts the websocket connections greeted so far; a reconnect adds one.
func (s *Server) Hellos() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.hellos
}

// WaitHellos waits until at least n connections have been greeted and at
// least one is still up.
func (s *Server) WaitHellos(ctx context.Context, n int) error {
	for {
		s.mu.Lock()
		ok := s.hellos >= n && len(s.conns) > 0
		ch := s.changed
		s.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for %d hellos: %w", n, ctx.Err())
		case <-ch:
		}
	}
}

// Disconnect asks every connected client to reconnect, as Slack does before
// recycling a connection, then closes the connections.
func (s *Server) Disconnect() {
	s.mu.Lock()
	conns := s.conns
	s.conns = nil
	s.notifyLocked()
	s.mu.Unlock()
	msg := map[string]any{
		"type":       "disconnect",
		"reason":     "refresh_requested",
		"debug_info": map[string]any{"host": "applink-fake-1"},
	}
	for _, c := range conns {
		_ = c.writeJSON(msg)
		c.close()
	}
}
