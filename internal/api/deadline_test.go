package api

import (
	"context"
	"errors"
	"testing"
	"time"
)

type ctxKey struct{}

func newLazy(parent context.Context, d time.Duration) *lazyDeadline {
	c := new(lazyDeadline)
	c.init(parent, time.Now().Add(d))
	return c
}

// lazyDeadline answers as context.WithDeadline does, armed or not.
func TestLazyDeadline(t *testing.T) {
	parent := context.WithValue(context.Background(), ctxKey{}, "v")

	t.Run("unarmed: deadline, value, then exceeded", func(t *testing.T) {
		c := newLazy(parent, time.Hour)
		if d, ok := c.Deadline(); !ok || !d.Equal(c.deadline) {
			t.Fatalf("Deadline() = %v, %v", d, ok)
		}
		if c.Value(ctxKey{}) != "v" || c.Err() != nil {
			t.Fatalf("Value %v, Err %v", c.Value(ctxKey{}), c.Err())
		}
		c.stop()
		// A deadline already past: Err says so without a Done (no timer).
		c = newLazy(parent, -time.Millisecond)
		if !errors.Is(c.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err after the deadline = %v", c.Err())
		}
		if c.armed.Load() != nil {
			t.Fatal("armed without a Done")
		}
		select { // arming after the deadline: already done
		case <-c.Done():
		case <-time.After(time.Second):
			t.Fatal("Done not closed after the deadline")
		}
		c.stop()
	})

	t.Run("armed: Done closes at the deadline, children follow", func(t *testing.T) {
		c := newLazy(parent, 30*time.Millisecond)
		child, cancel := context.WithCancel(c)
		defer cancel()
		if c.armed.Load() == nil {
			t.Fatal("WithCancel did not arm")
		}
		if child.Value(ctxKey{}) != "v" {
			t.Fatal("value lost through the armed context")
		}
		select {
		case <-child.Done():
		case <-time.After(5 * time.Second):
			t.Fatal("child not cancelled at the deadline")
		}
		if !errors.Is(c.Err(), context.DeadlineExceeded) || !errors.Is(child.Err(), context.DeadlineExceeded) {
			t.Fatalf("Err = %v, child %v", c.Err(), child.Err())
		}
		c.stop()
	})

	t.Run("parent cancelled, armed or not", func(t *testing.T) {
		for _, armFirst := range []bool{false, true} {
			p, cancel := context.WithCancel(parent)
			c := newLazy(p, time.Hour)
			if armFirst {
				c.Done()
			}
			cancel()
			if !errors.Is(c.Err(), context.Canceled) {
				t.Fatalf("armed %v: Err = %v", armFirst, c.Err())
			}
			select {
			case <-c.Done():
			case <-time.After(5 * time.Second):
				t.Fatalf("armed %v: Done not closed", armFirst)
			}
			c.stop()
		}
	})

	t.Run("stop: cancelled, armed or not, before or after arming", func(t *testing.T) {
		for _, armFirst := range []bool{false, true} {
			c := newLazy(parent, time.Hour)
			var child context.Context
			if armFirst {
				var cancel context.CancelFunc
				child, cancel = context.WithCancel(c)
				defer cancel()
			}
			c.stop()
			if !errors.Is(c.Err(), context.Canceled) {
				t.Fatalf("armed %v: Err after stop = %v", armFirst, c.Err())
			}
			<-c.Done() // closed, whether armed before stop or now
			if child != nil {
				<-child.Done()
			}
		}
	})

	t.Run("an earlier parent deadline wins", func(t *testing.T) {
		p, cancel := context.WithTimeout(parent, time.Minute)
		defer cancel()
		c := newLazy(p, time.Hour)
		want, _ := p.Deadline()
		if d, _ := c.Deadline(); !d.Equal(want) {
			t.Fatalf("Deadline() = %v, want the parent's %v", d, want)
		}
		c.stop()
	})
}

// An unarmed request deadline costs no allocation.
func TestLazyDeadlineAllocs(t *testing.T) {
	c := new(lazyDeadline)
	n := testing.AllocsPerRun(100, func() {
		*c = lazyDeadline{}
		c.init(context.Background(), time.Now().Add(time.Minute))
		_ = c.Err()
		_, _ = c.Deadline()
		c.stop()
	})
	if n != 0 {
		t.Fatalf("%v allocations", n)
	}
}

// BenchmarkRequestDeadline: what a request that never waits on its
// context (a bbolt read: Err only) pays for its deadline.
func BenchmarkRequestDeadline(b *testing.B) {
	parent, cancel := context.WithCancel(context.Background()) // as net/http's request context
	defer cancel()
	b.Run("WithTimeout", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			ctx, cancel := context.WithTimeout(parent, requestTimeout)
			_ = ctx.Err()
			cancel()
		}
	})
	b.Run("lazyDeadline", func(b *testing.B) {
		b.ReportAllocs()
		c := new(lazyDeadline)
		for b.Loop() {
			*c = lazyDeadline{}
			c.init(parent, time.Now().Add(requestTimeout))
			_ = c.Err()
			c.stop()
		}
	})
}
