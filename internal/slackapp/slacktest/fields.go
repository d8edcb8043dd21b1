package slacktest

import "encoding/json"

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

// ResponseURL is the response_url of a click or slash command envelope
// ("" for others): where an answer posted to it is recorded (Responses).
func (e Envelope) ResponseURL() string {
	var p struct {
		ResponseURL string `json:"response_url"`
	}
	_ = json.Unmarshal(e.Payload, &p)
	return p.ResponseURL
}
