package api

import (
	"bytes"
	"context"
	"net/http"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/storage"
)

// The audit log fails closed (DESIGN.md invariant 3, issue 12.1): no
// response leaves Keyward before its audit event is durably accepted by the
// sink, and no change is committed before then either.
//
//   - Every response is buffered (bufferedResponse). When the handler is
//     done the pipeline completes the event and records it; concurrent
//     requests share one write(2) through the file sink's group commit. Only
//     then is the buffered response released. If the sink refuses the event,
//     the buffer is dropped and the client gets 503 with Retry-After: a read
//     returns no value.
//   - A write cannot be undone after it committed, so for requests that
//     change something the event is recorded earlier, inside the storage
//     transaction after its function succeeded and before it commits
//     (storage.WithPreCommit → auditGate.PreCommit). If the sink refuses it, the
//     transaction rolls back, the handler's error is audit.ErrUnavailable and
//     the answer is 503: nothing changed. The event written at commit time
//     holds what is known then and the outcome "allowed" with status 200
//     (or the status the handler set before committing); fields the handler
//     fills in after the commit (the new version in the object ID) are not in
//     it. Only when the request then ends differently (another status,
//     result, error code or reason, e.g. a failed commit, a 201, a note
//     on what the change means) is a second event
//     with the same request ID written, so the log never claims an outcome
//     that did not happen.
//
// Requests with no change to commit write exactly one event, after the
// handler. /healthz and /readyz are audited but not held back by a failing
// sink: /readyz is how an operator learns that the sink is failing.

// bufferedResponse holds a response until its audit event is recorded.
// Headers go straight to the underlying writer's map (nothing is sent
// before WriteHeader is called on it).
type bufferedResponse struct {
	w      http.ResponseWriter
	status int
	body   bytes.Buffer
}

var responsePool = sync.Pool{New: func() any { return new(bufferedResponse) }}

func (b *bufferedResponse) Header() http.Header { return b.w.Header() }

func (b *bufferedResponse) WriteHeader(code int) {
	if b.status == 0 {
		b.status = code
	}
}

func (b *bufferedResponse) Write(p []byte) (int, error) {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	return b.body.Write(p)
}

// release sends the buffered response.
func (b *bufferedResponse) release() {
	if b.status == 0 {
		b.status = http.StatusOK
	}
	b.w.WriteHeader(b.status)
	if b.body.Len() > 0 {
		b.w.Write(b.body.Bytes())
	}
}

// reset clears b for reuse; a body that may have held a secret is zeroed.
func (b *bufferedResponse) reset() {
	clear(b.body.Bytes())
	if b.body.Cap() > 64<<10 {
		b.body = bytes.Buffer{}
	}
	b.body.Reset()
	b.w, b.status = nil, 0
}

// auditGate records a request's event before its first commit.
type auditGate struct {
	mu      sync.Mutex
	h       *Handler
	ev      *audit.Event // &state.event
	start   time.Time
	ctx     context.Context
	closed  bool // the request is done: commits from now on are not its own
	written bool // the event was written at commit time
	err     error
	// The outcome the commit-time event recorded.
	status    int
	result    audit.Result
	errorCode string
	reason    string
}

// PreCommit records the request's event before a transaction commits.
func (g *auditGate) PreCommit() error {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.closed || g.written || g.err != nil {
		return g.err
	}
	ev := g.ev
	status, result := ev.Status, ev.Result // preset by the handler, or zero
	if ev.Status == 0 {
		ev.Status = http.StatusOK
	}
	if ev.Result == "" {
		ev.Result = resultFor(ev)
	}
	ev.LatencyMS = float64(time.Since(g.start).Microseconds()) / 1000
	err := g.h.audit.Record(g.ctx, ev)
	g.status, g.result, g.errorCode, g.reason = ev.Status, ev.Result, ev.ErrorCode, ev.Reason
	// The pipeline completes the event afresh when the request ends.
	ev.Status, ev.Result = status, result
	if err != nil {
		g.err = err
		return err
	}
	g.written = true
	return nil
}

// close ends the gate once ev holds the request's final outcome; it reports
// whether the event written at commit time already says so.
func (g *auditGate) close() (recorded bool) {
	g.mu.Lock()
	defer g.mu.Unlock()
	g.closed = true
	ev := g.ev
	return g.written && ev.Status == g.status && ev.Result == g.result && ev.ErrorCode == g.errorCode && ev.Reason == g.reason
}

// requestState is what one request allocates for its audit event, in one
// allocation.
type requestState struct {
	event audit.Event
	gate  auditGate
	// hv backs the values of the headers every request sets (request ID,
	// client request ID, region, network info): allocated with the state
	// instead of one slice each (setHeader).
	hv  [4]string
	nhv int
	// deadline bounds the request (requestTimeout; deadline.go).
	deadline lazyDeadline
}

// setHeader is setHeader(h, key, v) with the value's slice taken from
// st.hv while it lasts. Each slice has len == cap, so that an Add appends
// to a copy; net/http clones the map before it writes it out.
func (st *requestState) setHeader(h http.Header, key, v string) {
	if st.nhv == len(st.hv) {
		setHeader(h, key, v)
		return
	}
	i := st.nhv
	st.nhv++
	st.hv[i] = v
	h[key] = st.hv[i : i+1 : i+1]
}

var _ storage.PreCommitter = (*auditGate)(nil)

func resultFor(ev *audit.Event) audit.Result {
	switch {
	case ev.Status == http.StatusUnauthorized:
		return audit.Unauthenticated
	case ev.Status == http.StatusForbidden && ev.Reason != "":
		return audit.Denied
	case ev.Status >= 400:
		return audit.Failed
	}
	return audit.Allowed
}
