package audit

import (
	"context"
	"errors"
	"syscall"
	"testing"
)

type failingSink struct {
	MemorySink
	err error
}

func (s *failingSink) Write(ctx context.Context, e *Event) error {
	if s.err != nil {
		return s.err
	}
	return s.MemorySink.Write(ctx, e)
}

// TestLogFailsClosed: Record reports a refused event as ErrUnavailable,
// counts it and marks the log unhealthy until an event is accepted again.
func TestLogFailsClosed(t *testing.T) {
	s := &failingSink{}
	var reported int
	l := NewLog(func(error) { reported++ }, s)
	ctx := context.Background()
	if err := l.Record(ctx, &Event{RequestID: "a"}); err != nil || !l.Healthy() || l.Failures() != 0 {
		t.Fatalf("healthy write: %v healthy=%v failures=%d", err, l.Healthy(), l.Failures())
	}
	s.err = syscall.ENOSPC
	err := l.Record(ctx, &Event{RequestID: "b"})
	if !errors.Is(err, ErrUnavailable) || !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("refused write: %v", err)
	}
	if l.Healthy() || l.Failures() != 1 || reported != 1 {
		t.Fatalf("after a refused write: healthy=%v failures=%d reported=%d", l.Healthy(), l.Failures(), reported)
	}
	s.err = nil
	if err := l.Record(ctx, &Event{RequestID: "c"}); err != nil || !l.Healthy() || l.Failures() != 1 {
		t.Fatalf("after recovery: %v healthy=%v failures=%d", err, l.Healthy(), l.Failures())
	}
	if n := len(s.Events()); n != 2 {
		t.Fatalf("%d events accepted, want 2", n)
	}
	var nilLog *Log
	if err := nilLog.Record(ctx, &Event{}); err != nil || !nilLog.Healthy() {
		t.Fatal("a nil Log records nothing and succeeds")
	}
}
