package stepup

import (
	"context"
	"testing"
)

// BenchmarkVerify measures one successful step-up on memstore and Redis,
// including generating the code (each iteration moves the clock to a fresh
// step) and recording into the in-memory audit double.
func BenchmarkVerify(b *testing.B) {
	for _, be := range backends {
		if be.name == "boltstore" {
			continue // its batched writes wait for company; not the hot path
		}
		b.Run(be.name, func(b *testing.B) {
			c := newClock()
			st, _ := be.open(b, c.Now)
			f := newFixture(b, st, false)
			f.clock = c
			f.svc = f.another(b, st, false)
			secret := f.enrol(b, alice)
			ctx := context.Background()
			b.ReportAllocs()
			for b.Loop() {
				f.clock.Advance(Period)
				if err := f.svc.Verify(ctx, alice, "req", codeAt(b, secret, f.clock.Now())); err != nil {
					b.Fatal(err)
				}
				f.audit.mu.Lock()
				f.audit.events = f.audit.events[:0]
				f.audit.mu.Unlock()
			}
		})
	}
}
