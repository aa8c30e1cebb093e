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

	// Node names the Keyward node whose chain the event belongs to; Seq is
	// its place in that chain (from 1) and Prev the SHA-256 of the line
	// before it (hex; 64 zeros for the first). The file sink sets Node and
	// Seq and writes Prev into the line (Prev is filled when a line is read).
	Node string `json:"node,omitempty"`
	Seq  int64  `json:"seq,omitempty"`
	Prev string `json:"prev,omitempty"`
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

// Log fans events out to sinks. Every sink is required: an event counts as
// recorded only when all of them accepted it.
type Log struct {
	sinks []Sink
	// OnError is called when a sink fails; nil ignores failures. It must not
	// log the event's content beyond its request ID.
	OnError func(err error)

	failures  atomic.Uint64 // writes that some sink refused
	unhealthy atomic.Bool   // the last write failed
}

// NewLog returns a Log writing to sinks.
func NewLog(onError func(error), sinks ...Sink) *Log {
	return &Log{sinks: sinks, OnError: onError}
}

// Record writes e to every sink and returns once each has accepted it (the
// file sink: the line is in the file), or an error wrapping ErrUnavailable.
// A nil Log records nothing and succeeds.
func (l *Log) Record(ctx context.Context, e *Event) error {
	if l == nil {
		return nil
	}
	e.Complete()
	var errs []error
	for _, s := range l.sinks {
		if err := s.Write(ctx, e); err != nil {
			errs = append(errs, err)
			if l.OnError != nil {
				l.OnError(err)
			}
		}
	}
	if len(errs) > 0 {
		l.failures.Add(1)
		l.unhealthy.Store(true)
		return fmt.Errorf("%w: %w", ErrUnavailable, errors.Join(errs...))
	}
	if l.unhealthy.Load() {
		l.unhealthy.Store(false)
	}
	return nil
}

// Healthy reports whether the last event was accepted by every sink.
func (l *Log) Healthy() bool { return l == nil || !l.unhealthy.Load() }

// Failures is the number of events some sink refused since start.
func (l *Log) Failures() uint64 {
	if l == nil {
		return 0
	}
	return l.failures.Load()
}

// Close closes every sink.
func (l *Log) Close() error {
	if l == nil {
		return nil
	}
	var errs []error
	for _, s := range l.sinks {
		errs = append(errs, s.Close())
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
