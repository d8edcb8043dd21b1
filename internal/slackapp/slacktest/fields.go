package slacktest

import (
	"encoding/json"
	"testing"
)

// EventTS is the ts of the message an events_api envelope carries ("" for
// other envelopes): the thread a reply to it belongs in.
func (e Envelope) EventTS() string {
	var p struct {
		Event struct {
			TS string `json:"ts"`
		} `json:"event"`
	}
	_ = json.Unmarshal(e.Payload, &p)
	return p.Event.TS
}

// MustEventTS is EventTS for tests: an envelope without one fails tb.
func (e Envelope) MustEventTS(tb testing.TB) string {
	tb.Helper()
	ts := e.EventTS()
	if ts == "" {
		tb.Fatal("no event ts in the envelope")
	}
	return ts
}

// ResponseURL is the response_url of a click or slash command envelope
// ("" for others): where an answer posted to it is recorded (Responses).
func (e Envelope) ResponseURL() string {
	var p struct {
		ResponseURL string `json:"response_url"`
	}
	_ = json.Unmarshal(e.Payload, &p)
	return p.ResponseURL
}
