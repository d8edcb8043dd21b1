package audit

import (
	"context"
	"sync/atomic"
	"time"

	"github.com/agenthub/agenthub/internal/store"
)

// The wrappers below add to any store.Store the behaviour a recorder test
// needs to observe or provoke; failing writes come from memstore.FailWrites.

// countingStore counts the Append calls that reach the store it wraps.
type countingStore struct {
	store.Store
	appends atomic.Int64
}

func (c *countingStore) Append(ctx context.Context, log string, after uint64, values [][]byte) error {
	c.appends.Add(1)
	return c.Store.Append(ctx, log, after, values)
}

// blockingStore reports each Append on entered and holds it until the test
// sends on release.
type blockingStore struct {
	store.Store
	entered chan struct{}
	release chan struct{}
}

func (b *blockingStore) Append(ctx context.Context, log string, after uint64, values [][]byte) error {
	b.entered <- struct{}{}
	<-b.release
	return b.Store.Append(ctx, log, after, values)
}

// slowStore makes every Append take at least delay, as a network round trip
// or an fsync does, so that concurrent callers have something to batch.
type slowStore struct {
	store.Store
	delay time.Duration
}

func (s slowStore) Append(ctx context.Context, log string, after uint64, values [][]byte) error {
	time.Sleep(s.delay)
	return s.Store.Append(ctx, log, after, values)
}
