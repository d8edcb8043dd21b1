package slackapp

import (
	"fmt"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/slack-go/slack/socketmode"
)

// envelopeTypes are the label values of the per-type metrics, set up front
// so every series exists (at zero) from the start.
var envelopeTypes = []socketmode.EventType{
	socketmode.EventTypeEventsAPI,
	socketmode.EventTypeInteractive,
	socketmode.EventTypeSlashCommand,
}

// metrics are the transport's Prometheus collectors. They exist even when
// no Registerer is given, so the transport never checks for nil.
type metrics struct {
	envelopes     *prometheus.CounterVec
	acks          *prometheus.CounterVec
	ackSeconds    prometheus.Histogram
	queueDepth    prometheus.Gauge
	dropped       *prometheus.CounterVec
	duplicates    *prometheus.CounterVec
	handlerErrors *prometheus.CounterVec
	connected     prometheus.Gauge
	reconnects    prometheus.Counter
}

// newMetrics builds the collectors and registers them with reg when reg is
// not nil.
func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	byType := func(name, help string) *prometheus.CounterVec {
		return prometheus.NewCounterVec(prometheus.CounterOpts{Name: name, Help: help}, []string{"type"})
	}
	m := &metrics{
		envelopes: byType("agenthub_slack_envelopes_total",
			"Socket Mode envelopes received, by envelope type."),
		acks: byType("agenthub_slack_acks_total",
			"Socket Mode envelopes acked, by envelope type."),
		ackSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name: "agenthub_slack_ack_seconds",
			Help: "Time from the reader receiving an envelope to its ack being handed to the websocket writer.",
			// Fine around the 2 ms target, coarse up to Slack's 3 s limit.
			Buckets: []float64{
				0.00005, 0.0001, 0.00025, 0.0005, 0.001, 0.002, 0.005,
				0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1,
			},
		}),
		queueDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "agenthub_slack_queue_depth",
			Help: "Envelopes acked and waiting for a worker.",
		}),
		dropped: byType("agenthub_slack_dropped_total",
			"Envelopes not handled because a worker queue was full (events are left unacked for Slack to redeliver) or shutdown's grace ran out."),
		duplicates: byType("agenthub_slack_duplicates_total",
			"Envelopes skipped because their dedupe key was already taken (a retry, a double click, another replica)."),
		handlerErrors: byType("agenthub_slack_handler_errors_total",
			"Envelopes whose handling failed, including dedupe store failures."),
		connected: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "agenthub_slack_connected",
			Help: "1 while a Socket Mode connection is open, 0 otherwise.",
		}),
		reconnects: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "agenthub_slack_reconnects_total",
			Help: "Times the Socket Mode connection was lost or refused and reopened.",
		}),
	}
	for _, typ := range envelopeTypes {
		for _, v := range []*prometheus.CounterVec{m.envelopes, m.acks, m.dropped, m.duplicates, m.handlerErrors} {
			v.WithLabelValues(string(typ))
		}
	}
	if reg == nil {
		return m, nil
	}
	for _, c := range []prometheus.Collector{
		m.envelopes, m.acks, m.ackSeconds, m.queueDepth, m.dropped,
		m.duplicates, m.handlerErrors, m.connected, m.reconnects,
	} {
		if err := reg.Register(c); err != nil {
			return nil, fmt.Errorf("slackapp: register metrics: %w", err)
		}
	}
	return m, nil
}
