package simenv

import (
	"context"
	"testing"

	"github.com/agenthub/agenthub/internal/broker"
	"github.com/agenthub/agenthub/internal/store/memstore"
)

func TestStackServesAReadAndAStepUp(t *testing.T) {
	ctx := context.Background()
	st := memstore.New(memstore.Options{})
	defer st.Close()
	env, err := Start(ctx, Options{Store: st})
	if err != nil {
		t.Fatalf("Start: %v", err)
	}
	defer env.Close()
	const p = "T1:U1"
	if err := env.ConnectAll(ctx, p); err != nil {
		t.Fatalf("ConnectAll: %v", err)
	}
	if err := env.EnrollDemo(ctx, p, "@u1"); err != nil {
		t.Fatalf("EnrollDemo: %v", err)
	}
	// A second enrolment replaces the first, as a restarted demo does.
	if err := env.EnrollDemo(ctx, p, "@u1"); err != nil {
		t.Fatalf("EnrollDemo again: %v", err)
	}
	outs, err := env.Broker.Handle(ctx, broker.Message{Principal: p, Text: "list open pull requests in acme/website"})
	if err != nil || len(outs) != 1 || outs[0].Kind != broker.KindResult {
		t.Fatalf("Handle = %+v, %v; want one result", outs, err)
	}
	outs, err = env.Broker.Handle(ctx, broker.Message{Principal: p, Text: "merge PR 7 in acme/payments"})
	if err != nil || len(outs) != 1 || outs[0].Kind != broker.KindApproval {
		t.Fatalf("merge = %+v, %v; want an approval", outs, err)
	}
	outs, err = env.Broker.Decide(ctx, broker.Decision{RequestID: outs[0].RequestID, Actor: p, Choice: broker.ChoiceOnce})
	if err != nil || len(outs) != 1 || outs[0].Kind != broker.KindStepUp {
		t.Fatalf("Decide = %+v, %v; want a step-up", outs, err)
	}
	code, err := env.StepUp.DemoCode(ctx, p)
	if err != nil {
		t.Fatal(err)
	}
	outs, err = env.Broker.StepUp(ctx, outs[0].RequestID, p, code)
	if err != nil || len(outs) != 1 || outs[0].Kind != broker.KindResult {
		t.Fatalf("StepUp = %+v, %v; want a result", outs, err)
	}
	if err := env.Connect(ctx, p, "nope"); err == nil {
		t.Error("Connect to an unknown service succeeded")
	}
}
