package audit

import "context"

type eventKey struct{}

// WithEvent returns a context carrying the event of the current request, so
// that the handler that serves it can fill in the operation and object.
func WithEvent(ctx context.Context, e *Event) context.Context {
	return context.WithValue(ctx, eventKey{}, e)
}

// EventFrom returns the event of the current request, or a throwaway event
// when there is none, so callers never need a nil check.
func EventFrom(ctx context.Context) *Event {
	if e, ok := ctx.Value(eventKey{}).(*Event); ok {
		return e
	}
	return new(Event)
}

type lingerKey struct{}

// WithLinger marks ctx's request as one whose goroutine may yield once
// before it writes a batch of one event (FileSink.linger), so that other
// requests' events join the batch. The HTTP/2 front door sets it: there a
// request has its own goroutine and nothing else waits to run on its
// behalf. On HTTP/1.1 yielding costs more than it saves: net/http's
// background read of the connection (started before the handler) then
// runs early and must be woken again to abort it.
func WithLinger(ctx context.Context) context.Context {
	return context.WithValue(ctx, lingerKey{}, true)
}

func mayLinger(ctx context.Context) bool {
	v, _ := ctx.Value(lingerKey{}).(bool)
	return v
}
