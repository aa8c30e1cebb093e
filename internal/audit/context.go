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
