// Package audit records one event for every request Keyward answers.
//
// An Event is a typed struct with no field that can hold a secret value, key
// material, a token or a password (DESIGN.md invariant 3): callers fill in
// who asked for what and how it ended, never what was exchanged. Events go to
// Sinks; the file sink writes one JSON line per event. Hash chaining and
// further sinks are added as Sinks wrapping or beside the file sink, without
// touching the handlers that produce events.
package audit

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"time"
)

// Result classifies how a request ended.
type Result string

const (
	Allowed         Result = "allowed"         // authorized and succeeded
	Denied          Result = "denied"          // authenticated but not authorized (or blocked by network rules)
	Failed          Result = "failed"          // authorized but failed (bad input, not found, conflict, server error)
	Unauthenticated Result = "unauthenticated" // no or invalid credentials
)

// Caller identifies who made a request. IDs only: never a token.
type Caller struct {
	TenantID string `json:"tenant_id,omitempty"`
	ObjectID string `json:"oid,omitempty"`
	AppID    string `json:"appid,omitempty"`
	UPN      string `json:"upn,omitempty"`
	IP       string `json:"ip,omitempty"`
}

// Event is one audited request.
//
// The first fields are those of Azure Key Vault's AuditEvent diagnostic
// log (azure.go), so that queries written for Azure Monitor carry over;
// Complete derives them from Keyward's own fields, which follow. The last
// three chain the events of one node (chain.go).
type Event struct {
	Time time.Time `json:"time"`

	ResourceID        string     `json:"resourceId"`
	OperationName     string     `json:"operationName"`
	OperationVersion  string     `json:"operationVersion"`
	Category          string     `json:"category"`
	ResultType        string     `json:"resultType"`
	ResultSignature   string     `json:"resultSignature"`
	ResultDescription string     `json:"resultDescription"`
	DurationMS        int64      `json:"durationMs"`
	CallerIPAddress   string     `json:"callerIpAddress"`
	CorrelationID     string     `json:"correlationId"`
	Identity          Identity   `json:"identity"`
	Properties        Properties `json:"properties"`

	RequestID  string  `json:"request_id"`
	Caller     Caller  `json:"caller"`
	Service    string  `json:"service"`             // "vault", "identity", "sys", ...
	Vault      string  `json:"vault,omitempty"`     // vault name for data-plane requests
	Operation  string  `json:"operation"`           // e.g. "SecretGet", "TokenIssue"
	ObjectID   string  `json:"object_id,omitempty"` // full object URL or principal ID
	Method     string  `json:"method"`
	Path       string  `json:"path"`
	APIVersion string  `json:"api_version,omitempty"`
	Status     int     `json:"status"`
	Result     Result  `json:"result"`
	ErrorCode  string  `json:"error_code,omitempty"` // Azure error code, never a message with data in it
	Reason     string  `json:"reason,omitempty"`     // why denied (missing action), fixed vocabulary
	LatencyMS  float64 `json:"latency_ms"`
	UserAgent  string  `json:"user_agent,omitempty"`
	// Authz is how an authorized data-plane request was allowed: "rbac"
	// or "policy"; empty when it was not (yet) authorized.
	Authz string `json:"authz,omitempty"`
	// Approval is set on events of quorum approval (docs/QUORUM.md): the
	// diverted request, each decision, and the operation run once the
	// quorum was met. Rare: such events are encoded by encoding/json.
	Approval *Approval `json:"approval,omitempty"`
	// Algorithm and Protection label a successful key operation for the
	// metrics (internal/metrics): the algorithm it ran and where the key
	// lives ("hsm", "software"). Not part of the logged event.
	Algorithm  string `json:"-"`
	Protection string `json:"-"`

	// Node names the Keyward node whose chain the event belongs to; Seq is
	// its place in that chain (from 1) and Prev the SHA-256 of the line
	// before it (hex; 64 zeros for the first). The file sink sets Node and
	// Seq and writes Prev into the line (Prev is filled when a line is read).
	Node string `json:"node,omitempty"`
	Seq  int64  `json:"seq,omitempty"`
	Prev string `json:"prev,omitempty"`
}

// Approval describes an event's part in a quorum approval.
type Approval struct {
	ID        string   `json:"id"`
	Operation string   `json:"operation,omitempty"`
	Requester string   `json:"requester,omitempty"`
	Approvers []string `json:"approvers,omitempty"`
	Rejecters []string `json:"rejecters,omitempty"`
	// Outcome: "pending", "approved" (a vote), "rejected", "expired",
	// "executed", "failed", "breakglass".
	Outcome string `json:"outcome"`
}

// Identity is Azure's identity field: the caller's claims, IDs only.
type Identity struct {
	Claim Claims `json:"claim"`
}

// Claims are the caller's token claims Azure's AuditEvent carries, under
// the claim-type URIs Azure uses.
type Claims struct {
	ObjectID string `json:"http://schemas.microsoft.com/identity/claims/objectidentifier,omitempty"`
	AppID    string `json:"appid,omitempty"`
	UPN      string `json:"http://schemas.xmlsoap.org/ws/2005/05/identity/claims/upn,omitempty"`
	TenantID string `json:"http://schemas.microsoft.com/identity/claims/tenantid,omitempty"`
}

// Properties are Azure's AuditEvent properties.
type Properties struct {
	ID                  string `json:"id"`
	RequestURI          string `json:"requestUri"`
	HTTPStatusCode      int    `json:"httpStatusCode"`
	ClientInfo          string `json:"clientInfo"`
	IsRbacAuthorized    bool   `json:"isRbacAuthorized"`
	IsAccessPolicyMatch bool   `json:"isAccessPolicyMatch"`
	TLSVersion          string `json:"tlsVersion"`
}

// Sink receives events. Write must be safe for concurrent use.
type Sink interface {
	Write(ctx context.Context, e *Event) error
	Close() error
}

// ErrUnavailable is returned (wrapped) when no sink durably accepted an
// event. The HTTP layer answers it with 503 and Retry-After: a request whose
// event cannot be recorded is refused (DESIGN.md invariant 3).
var ErrUnavailable = errors.New("audit: sink unavailable")

// Target is a sink as the Log uses it: named (for /readyz and metrics)
// and either required or best-effort.
type Target struct {
	Name string
	Sink Sink
	// Required: an event this sink refuses is not recorded, and the
	// request is refused. A best-effort sink's refusal is counted and
	// reported, and the event counts as recorded if another sink took it.
	Required bool
}

// SinkState is what /readyz and the metrics report of one sink.
type SinkState struct {
	Name     string `json:"name"`
	Required bool   `json:"required"`
	Healthy  bool   `json:"healthy"` // the last event it was given, it accepted
	Accepted uint64 `json:"accepted"`
	Failures uint64 `json:"failures"`
}

type target struct {
	Target
	accepted  atomic.Uint64
	failures  atomic.Uint64
	unhealthy atomic.Bool
}

// Log fans events out to sinks. An event is recorded when every required
// sink and at least one sink accepted it (DESIGN.md invariant 3: if no sink
// took it, the request is refused).
type Log struct {
	targets []*target
	// OnError is called when a sink fails; nil ignores failures. It must not
	// log the event's content beyond its request ID.
	OnError func(err error)
	// observers see every recorded event, after the sinks (Observe).
	observers []func(*Event)

	failures  atomic.Uint64 // writes that were not recorded
	unhealthy atomic.Bool   // the last write was not recorded
}

// NewLog returns a Log writing to sinks, every one of them required.
func NewLog(onError func(error), sinks ...Sink) *Log {
	ts := make([]Target, len(sinks))
	for i, s := range sinks {
		ts[i] = Target{Name: fmt.Sprintf("sink%d", i), Sink: s, Required: true}
	}
	return NewLogTargets(onError, ts...)
}

// NewLogTargets returns a Log writing to the given targets in order.
func NewLogTargets(onError func(error), ts ...Target) *Log {
	l := &Log{OnError: onError}
	for _, t := range ts {
		l.targets = append(l.targets, &target{Target: t})
	}
	return l
}

// Observe registers fn to see every recorded event (alert rules, metrics).
// fn runs on the request's goroutine after the sinks and must be quick and
// must not keep e. Call before the first Record.
func (l *Log) Observe(fn func(e *Event)) {
	if l != nil {
		l.observers = append(l.observers, fn)
	}
}

// Record completes e's Azure fields, writes it to every sink and returns
// once it is recorded (the file sink: the line is in the file), or an
// error wrapping ErrUnavailable. A nil Log records nothing and succeeds.
func (l *Log) Record(ctx context.Context, e *Event) error {
	if l == nil {
		return nil
	}
	e.Complete()
	var errs []error
	accepted, refused := 0, false
	for _, t := range l.targets {
		if err := t.Sink.Write(ctx, e); err != nil {
			t.failures.Add(1)
			t.unhealthy.Store(true)
			if l.OnError != nil {
				l.OnError(fmt.Errorf("audit sink %s: %w", t.Name, err))
			}
			if t.Required {
				refused = true
				errs = append(errs, err)
			}
			continue
		}
		accepted++
		t.accepted.Add(1)
		if t.unhealthy.Load() {
			t.unhealthy.Store(false)
		}
	}
	if refused || accepted == 0 {
		l.failures.Add(1)
		l.unhealthy.Store(true)
		if len(errs) == 0 {
			errs = append(errs, errors.New("no sink accepted the event"))
		}
		return fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
	}
	if l.unhealthy.Load() {
		l.unhealthy.Store(false)
	}
	for _, fn := range l.observers {
		fn(e)
	}
	return nil
}

// Healthy reports whether the last event was recorded.
func (l *Log) Healthy() bool { return l == nil || !l.unhealthy.Load() }

// Failures is the number of events not recorded since start.
func (l *Log) Failures() uint64 {
	if l == nil {
		return 0
	}
	return l.failures.Load()
}

// Sinks reports the state of every sink.
func (l *Log) Sinks() []SinkState {
	if l == nil {
		return nil
	}
	out := make([]SinkState, len(l.targets))
	for i, t := range l.targets {
		out[i] = SinkState{Name: t.Name, Required: t.Required, Healthy: !t.unhealthy.Load(),
			Accepted: t.accepted.Load(), Failures: t.failures.Load()}
	}
	return out
}

// Close closes every sink.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	var errs []error
	for _, t := range l.targets {
		errs = append(errs, t.Sink.Close())
	}
	return errors.Join(errs...)
}

// MemorySink keeps events in memory, for tests.
type MemorySink struct {
	mu     sync.Mutex
	events []Event
}

// Write stores a copy of e.
func (m *MemorySink) Write(_ context.Context, e *Event) error {
	m.mu.Lock()
	m.events = append(m.events, *e)
	m.mu.Unlock()
	return nil
}

// Close does nothing.
func (m *MemorySink) Close() error { return nil }

// Events returns a copy of the events written so far.
func (m *MemorySink) Events() []Event {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Event(nil), m.events...)
}
