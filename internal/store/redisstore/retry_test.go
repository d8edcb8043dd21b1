package redisstore_test

import (
	"bytes"
	"context"
	"errors"
	"net"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/alicebob/miniredis/v2"

	"github.com/agenthub/agenthub/internal/store"
	"github.com/agenthub/agenthub/internal/store/redisstore"
)

// replyDropper is a TCP proxy in front of a Redis. Once armed, the first
// command containing marker reaches Redis and runs, but its reply is
// dropped and the connection closed: what a network blip or a read timeout
// looks like to the client.
type replyDropper struct {
	ln      net.Listener
	target  string
	marker  []byte
	armed   atomic.Bool
	dropped atomic.Int32
}

func startReplyDropper(t *testing.T, target, marker string) *replyDropper {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &replyDropper{ln: ln, target: target, marker: []byte(marker)}
	var wg sync.WaitGroup
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() { defer wg.Done(); p.serve(c) }()
		}
	}()
	return p
}

func (p *replyDropper) serve(client net.Conn) {
	server, err := net.Dial("tcp", p.target)
	if err != nil {
		client.Close()
		return
	}
	var (
		dropNext  atomic.Bool
		once      sync.Once
		closeBoth = func() { once.Do(func() { client.Close(); server.Close() }) }
		done      = make(chan struct{})
	)
	go func() {
		defer close(done)
		buf := make([]byte, 1<<16)
		for {
			n, err := client.Read(buf)
			if n > 0 {
				if bytes.Contains(buf[:n], p.marker) && p.armed.CompareAndSwap(true, false) {
					dropNext.Store(true)
				}
				server.Write(buf[:n])
			}
			if err != nil {
				closeBoth()
				return
			}
		}
	}()
	buf := make([]byte, 1<<16)
	for {
		n, err := server.Read(buf)
		if n > 0 {
			if dropNext.Load() {
				p.dropped.Add(1)
				closeBoth()
				break
			}
			client.Write(buf[:n])
		}
		if err != nil {
			closeBoth()
			break
		}
	}
	<-done
}

// TestLostReplyIsNotRetried pins that a state-changing script whose reply
// was lost is not sent again: a resent compare-and-swap would tell the one
// winning decider that it lost, and a resent append would store an audit
// batch twice.
func TestLostReplyIsNotRetried(t *testing.T) {
	ctx := context.Background()
	open := func(t *testing.T, marker string) (*redisstore.Store, *replyDropper) {
		t.Helper()
		mr := miniredis.RunT(t)
		p := startReplyDropper(t, mr.Addr(), marker)
		s, err := redisstore.Open(ctx, redisstore.Options{URL: "redis://" + p.ln.Addr().String(), Prefix: "retrytest"})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.Close() })
		return s, p
	}

	t.Run("CompareAndSwap", func(t *testing.T) {
		s, p := open(t, "approved")
		k := store.Key{Scope: "T1:U1", Kind: "request", ID: "r1"}
		if err := s.Put(ctx, k, []byte("pending"), 0); err != nil {
			t.Fatal(err)
		}
		// Load the script, so that the armed command is the one that runs.
		if err := s.CompareAndSwap(ctx, k, []byte("other"), []byte("x"), store.KeepTTL); !errors.Is(err, store.ErrConflict) {
			t.Fatal(err)
		}
		p.armed.Store(true)
		err := s.CompareAndSwap(ctx, k, []byte("pending"), []byte("approved"), store.KeepTTL)
		if p.dropped.Load() != 1 {
			t.Fatalf("the proxy dropped %d replies, want 1", p.dropped.Load())
		}
		if err == nil || errors.Is(err, store.ErrConflict) {
			t.Fatalf("CompareAndSwap with a lost reply = %v, want a connection error (not a lost race)", err)
		}
		it, err := s.Get(ctx, k)
		if err != nil || string(it.Value) != "approved" {
			t.Fatalf("after the lost reply: %q, %v", it.Value, err)
		}
	})

	t.Run("Append", func(t *testing.T) {
		s, p := open(t, "event-two")
		if err := s.Append(ctx, "audit", 0, [][]byte{[]byte("event-one")}); err != nil {
			t.Fatal(err)
		}
		p.armed.Store(true)
		// Resent, the append would find its own entry at the head and report
		// a conflict, and the audit recorder would re-chain and store the
		// batch a second time.
		if err := s.Append(ctx, "audit", 1, [][]byte{[]byte("event-two")}); err == nil || errors.Is(err, store.ErrConflict) {
			t.Fatalf("Append with a lost reply = %v, want a connection error (not a conflict)", err)
		}
		if p.dropped.Load() != 1 {
			t.Fatalf("the proxy dropped %d replies, want 1", p.dropped.Load())
		}
		head, err := s.Head(ctx, "audit")
		if err != nil {
			t.Fatal(err)
		}
		if head.Seq != 2 {
			t.Fatalf("one Append of one entry left the log at seq %d, want 2", head.Seq)
		}
	})
}
