// Package quorum is multi-person approval for destructive and
// high-privilege operations (issue 20 item 4, docs/QUORUM.md): policies,
// each naming the operations it protects, its approvers and how many
// approvals it requires, and approval requests, stored through the barrier
// in the system namespace so that every node of a cluster shares them.
//
// The pipeline (internal/api) asks Match whether a request's operation is
// protected where it lands; if so it stores the request with Submit and
// answers that an approval is required instead of acting. Approvers Decide;
// the Decide that meets the quorum is the one (and only one, whatever the
// concurrency or the node) told to run the operation, which then reports
// its outcome with Finish. Time comes from the injected clock: a request
// past its expiry can no longer be approved.
package quorum

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/storage"
)

// Operations that a policy may protect today: the operation names of the
// routes tables (the audit log's "operation"). QuorumPolicySet and
// QuorumPolicyDelete are protected by any vault policy whether listed or
// not: a policy cannot be removed by one person to get around it.
var protectable = map[string]bool{
	"KeyPurge": true, "SecretPurge": true, "CertificatePurge": true,
	"QuorumPolicySet": true, "QuorumPolicyDelete": true,
	// ARM (mgmt routes): deleting a vault, changing its access policies.
	"VaultDelete": true, "VaultAccessPolicyAdd": true, "VaultAccessPolicyReplace": true, "VaultAccessPolicyRemove": true,
	"RoleAssignmentCreate": true, // at any scope
	// PIM's admin requests: an eligibility (AdminAssign/AdminUpdate) and a
	// time-bound assignment; protected by RoleAssignmentCreate too.
	"RoleEligibilityRequest": true, "RoleAssignmentScheduleRequest": true,
	// Operations whose answer is for the requester alone (resultOps).
	"KeyRelease": true, "HSMSecurityDomainDownload": true,
	// Tenant-level (the tenant's policy; decided on the management host):
	// a keymgmt KMS provider write that carries credentials.
	"KeyMgmtKMSCredentialsChange": true,
	// ARM's purge of a deleted vault (the tenant's policy; a vault's own
	// policy is gone with its vault's data plane).
	"DeletedVaultPurge": true,
	// ARM's delete and purge of a managed HSM pool (the tenant's policy).
	"ManagedHsmDelete": true, "DeletedManagedHsmPurge": true,
	// The tenant policy itself (replace, delete): opt-in, by naming these
	// in the tenant's policy; decided on the management host.
	"QuorumTenantPolicySet": true, "QuorumTenantPolicyDelete": true,
	// Sealing the instance (POST /sys/seal): the operator tenant's policy;
	// decided on the management host, finished before it runs (the
	// storage is unwritable once sealed).
	"Seal": true,
	// Removing an audit sink from the configuration (the operator tenant's
	// policy): the approved request is a permission the next unseal
	// without that sink consumes (ConsumeExecuted).
	"AuditSinkRemove": true,
}

// resultOps are the operations whose successful answer only the requester
// may see: the runner stores it sealed with the request (FinishResult) and
// the requester takes it once (TakeResult).
var resultOps = map[string]bool{"KeyRelease": true, "HSMSecurityDomainDownload": true}

// KeepsResult reports whether op's successful answer is stored for its
// requester.
func KeepsResult(op string) bool { return resultOps[op] }

// ResultTTL is how long a stored result waits for its requester after the
// operation ran; past it, it is deleted when next touched and never shown.
const ResultTTL = 24 * time.Hour

// Protectable reports whether op is an operation a policy can protect.
func Protectable(op string) bool { return protectable[op] }

// Operations lists the operations a policy can protect, sorted.
func Operations() []string {
	out := make([]string, 0, len(protectable))
	for op := range protectable {
		out = append(out, op)
	}
	sort.Strings(out)
	return out
}

// Scopes a policy is set at. Names are case-insensitive; scope strings are
// stored lower-case.
func VaultScope(name string) string { return "vault/" + strings.ToLower(name) }
func PoolScope(name string) string  { return "pool/" + strings.ToLower(name) }
func TenantScope(id string) string  { return "tenant/" + strings.ToLower(id) }
func selfProtected(op string) bool  { return op == "QuorumPolicySet" || op == "QuorumPolicyDelete" }
func validScope(scope string) bool {
	kind, name, ok := strings.Cut(scope, "/")
	if !ok || name == "" || len(name) > 128 || name != strings.ToLower(name) {
		return false
	}
	for _, c := range name {
		if !(c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return kind == "vault" || kind == "pool" || kind == "tenant"
}

// Limits of a policy.
const (
	DefaultTTL   = 24 * time.Hour
	MinTTL       = time.Minute
	MaxTTL       = 30 * 24 * time.Hour
	maxApprovers = 64
	maxIDLen     = 64
)

// Policy protects Operations at Scope: a protected request needs Required
// approvals from Approvers (object IDs) or members of Group, never counting
// the requester.
type Policy struct {
	Scope      string   `json:"scope"`
	Operations []string `json:"operations"`
	Approvers  []string `json:"approvers,omitempty"`
	Group      string   `json:"approverGroup,omitempty"`
	Required   int      `json:"approvalsRequired"`
	// TTLSeconds is how long a request waits for its approvals (0: DefaultTTL).
	TTLSeconds int64 `json:"expirySeconds,omitempty"`
}

// TTL is the policy's request lifetime.
func (p *Policy) TTL() time.Duration {
	if p.TTLSeconds == 0 {
		return DefaultTTL
	}
	return time.Duration(p.TTLSeconds) * time.Second
}

// Protects reports whether p protects op.
func (p *Policy) Protects(op string) bool {
	return selfProtected(op) && (strings.HasPrefix(p.Scope, "vault/") || strings.HasPrefix(p.Scope, "pool/")) || slices.Contains(p.Operations, op) ||
		grantsRole(op) && slices.Contains(p.Operations, "RoleAssignmentCreate")
}

// grantsRole reports whether op grants a role the way a role assignment
// does (PIM's admin requests): a policy on RoleAssignmentCreate protects it.
func grantsRole(op string) bool {
	return op == "RoleEligibilityRequest" || op == "RoleAssignmentScheduleRequest"
}

func validID(s string) bool {
	if s == "" || len(s) > maxIDLen {
		return false
	}
	for _, c := range s {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// Validate checks p and puts it in canonical form (lower-case IDs, sorted,
// no duplicates). Its errors are BadParameter *Error values.
func (p *Policy) Validate() error {
	if !validScope(p.Scope) {
		return bad("The policy scope is not valid.")
	}
	if len(p.Operations) == 0 {
		return bad("A policy must protect at least one operation.")
	}
	for _, op := range p.Operations {
		if !protectable[op] {
			return bad(fmt.Sprintf("Operation '%s' cannot be protected; protectable operations: %s.", clip(op), strings.Join(Operations(), ", ")))
		}
	}
	if len(p.Approvers) > maxApprovers {
		return bad(fmt.Sprintf("A policy has at most %d approvers.", maxApprovers))
	}
	for i, a := range p.Approvers {
		if !validID(a) {
			return bad("Approver IDs must be object IDs (letters, digits and '-').")
		}
		p.Approvers[i] = strings.ToLower(a)
	}
	if p.Group != "" {
		if !validID(p.Group) {
			return bad("The approver group must be a group object ID.")
		}
		p.Group = strings.ToLower(p.Group)
	}
	slices.Sort(p.Operations)
	p.Operations = slices.Compact(p.Operations)
	slices.Sort(p.Approvers)
	p.Approvers = slices.Compact(p.Approvers)
	if len(p.Approvers) == 0 && p.Group == "" {
		return bad("A policy needs approvers or an approver group.")
	}
	if p.Required < 1 || p.Required > maxApprovers {
		return bad(fmt.Sprintf("approvalsRequired must be from 1 to %d.", maxApprovers))
	}
	if p.Group == "" && p.Required > len(p.Approvers) {
		return bad("approvalsRequired is more than the number of approvers: no request could ever be approved.")
	}
	if p.TTLSeconds != 0 && (p.TTLSeconds < int64(MinTTL/time.Second) || p.TTLSeconds > int64(MaxTTL/time.Second)) {
		return bad(fmt.Sprintf("expirySeconds must be from %d to %d.", int64(MinTTL/time.Second), int64(MaxTTL/time.Second)))
	}
	return nil
}

// ParsePolicy reads a policy body (JSON) for scope and validates it.
func ParsePolicy(scope string, raw []byte) (*Policy, error) {
	var w struct {
		Operations []string `json:"operations"`
		Approvers  []string `json:"approvers"`
		Group      string   `json:"approverGroup"`
		Required   int      `json:"approvalsRequired"`
		TTLSeconds int64    `json:"expirySeconds"`
	}
	if err := json.Unmarshal(raw, &w); err != nil {
		return nil, bad("The request body is not a valid policy (JSON object with operations, approvers or approverGroup, approvalsRequired).")
	}
	p := &Policy{Scope: scope, Operations: w.Operations, Approvers: w.Approvers, Group: w.Group, Required: w.Required, TTLSeconds: w.TTLSeconds}
	if err := p.Validate(); err != nil {
		return nil, err
	}
	return p, nil
}

// State of an approval request.
type State string

const (
	Pending   State = "Pending"
	Rejected  State = "Rejected"
	Expired   State = "Expired"
	Executing State = "Executing" // the quorum was met; the operation is running (or its node died: never re-run)
	Executed  State = "Executed"
	Failed    State = "Failed" // the operation ran and failed (e.g. the requester lost the permission)
	Overruled State = "BreakGlass"
)

// Vote is one approver's decision.
type Vote struct {
	ObjectID string    `json:"objectId"`
	At       time.Time `json:"at"`
}

// Replay is what is needed to run the request's operation later, as the
// requester. It is stored sealed by the barrier and never shown.
type Replay struct {
	// Surface is "vault" (the data plane) or "management" (ARM).
	Surface   string `json:"surface,omitempty"`
	Method    string `json:"method"`
	Path      string `json:"path"` // escaped
	RawQuery  string `json:"query"`
	Host      string `json:"host"`
	Body      []byte `json:"body,omitempty"`
	AppID     string `json:"appId,omitempty"`
	Delegated bool   `json:"delegated,omitempty"`
	IP        string `json:"ip,omitempty"`
}

// Request is an approval request.
type Request struct {
	ID          string    `json:"id"`
	Scope       string    `json:"scope"` // the policy's
	Vault       string    `json:"vault,omitempty"`
	Pool        string    `json:"pool,omitempty"` // a managed HSM pool's request (Vault is then empty)
	TenantID    string    `json:"tenantId"`
	Requester   string    `json:"requester"`
	Operation   string    `json:"operation"`
	Target      string    `json:"target"`
	Fingerprint string    `json:"fingerprint"`
	Created     time.Time `json:"created"`
	Expires     time.Time `json:"expires"`
	Required    int       `json:"approvalsRequired"`
	Approvers   []string  `json:"approvers,omitempty"`
	Group       string    `json:"approverGroup,omitempty"`
	Approvals   []Vote    `json:"approvals"`
	Rejections  []Vote    `json:"rejections"`
	State       State     `json:"state"`
	Status      int       `json:"resultStatus,omitempty"` // the operation's status once run
	// BreakGlass names the operator who overrode the quorum with the
	// recovery shares (Override).
	BreakGlass string    `json:"breakGlass,omitempty"`
	Finished   time.Time `json:"finished,omitzero"`
	Replay     Replay    `json:"replay"`
	// Result is the state of the operation's stored answer (KeepsResult):
	// "" (none), ResultAvailable or ResultDelivered; a result past
	// ResultExpires reads as ResultExpired.
	Result        string    `json:"result,omitempty"`
	ResultExpires time.Time `json:"resultExpires,omitzero"`
	// Consumed is when an executed request that is a permission (an
	// AuditSinkRemove) was used; it cannot be used again.
	Consumed time.Time `json:"consumed,omitzero"`
}

// States of a stored result.
const (
	ResultAvailable = "Available"
	ResultDelivered = "Delivered"
	ResultExpired   = "Expired"
)

// ResultState is r's result state at now.
func (r *Request) ResultState(now time.Time) string {
	if r.Result == ResultAvailable && !now.Before(r.ResultExpires) {
		return ResultExpired
	}
	return r.Result
}

// Result is an operation's stored answer.
type Result struct {
	Status      int    `json:"status"`
	ContentType string `json:"contentType,omitempty"`
	Body        []byte `json:"body"`
}

// Effective returns r's state at now: a pending request past its expiry
// is Expired even before anyone writes it so.
func (r *Request) Effective(now time.Time) State {
	if r.State == Pending && !now.Before(r.Expires) {
		return Expired
	}
	return r.State
}

// ApproverIDs are the object IDs whose votes counted, in order.
func (r *Request) ApproverIDs() []string {
	out := make([]string, len(r.Approvals))
	for i, v := range r.Approvals {
		out[i] = v.ObjectID
	}
	return out
}

// mayApprove reports whether a voter with groups is one of r's approvers.
func (r *Request) mayApprove(voter string, groups []string) bool {
	if slices.Contains(r.Approvers, voter) {
		return true
	}
	if r.Group == "" {
		return false
	}
	for _, g := range groups {
		if strings.EqualFold(g, r.Group) {
			return true
		}
	}
	return false
}

// Involves reports whether oid requested or may decide r (who may see it).
func (r *Request) Involves(oid string, groups []string) bool {
	oid = strings.ToLower(oid)
	return strings.EqualFold(r.Requester, oid) || r.mayApprove(oid, groups)
}

// Fingerprint is the SHA-256 of the request's method, path, query and body.
func Fingerprint(rp *Replay) string {
	h := sha256.New()
	fmt.Fprintf(h, "%s\n%s\n%s\n%d\n", rp.Method, rp.Path, rp.RawQuery, len(rp.Body))
	h.Write(rp.Body)
	return hex.EncodeToString(h.Sum(nil))
}

// NewID returns a fresh approval request ID (a random UUID-shaped string).
func NewID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	x := hex.EncodeToString(b[:])
	return x[:8] + "-" + x[8:12] + "-" + x[12:16] + "-" + x[16:20] + "-" + x[20:]
}

// Reasons of quorum errors (the surfaces word them).
const (
	ReasonNotFound     = "ApprovalNotFound"
	ReasonSelfApproval = "SelfApprovalForbidden"
	ReasonNotApprover  = "NotAnApprover"
	ReasonNotPending   = "ApprovalNotPending"
	ReasonExpired      = "ApprovalExpired"
	ReasonVoted        = "AlreadyDecided"
	ReasonBadPolicy    = "InvalidPolicy"
	ReasonNoPolicy     = "PolicyNotFound"
	ReasonNoResult     = "ResultNotAvailable"
	// ReasonSinkRemovalNotApproved: an unseal found a known audit sink
	// missing from the configuration without an approved removal.
	ReasonSinkRemovalNotApproved = "AuditSinkRemovalNotApproved"
)

// Error is a quorum error: a kind, a reason from the list above, and a
// message that explains Keyward's own rule.
type Error struct {
	Kind   errs.Kind
	Reason string
	Msg    string
}

func (e *Error) Error() string      { return "quorum: " + e.Reason + ": " + e.Msg }
func (e *Error) ErrKind() errs.Kind { return e.Kind }
func bad(msg string) *Error {
	return &Error{Kind: errs.BadParameter, Reason: ReasonBadPolicy, Msg: msg}
}
func clip(s string) string {
	if len(s) > 64 {
		return s[:64]
	}
	return s
}

// Service stores policies and requests.
type Service struct {
	view  *barrier.View
	clock clock.Clock
	// retention overrides Retention when > 0 (a time.Duration).
	retention atomic.Int64
}

// New returns a Service over the system view of the barrier.
func New(view *barrier.View, clk clock.Clock) *Service {
	return &Service{view: view, clock: clk}
}

const (
	policyPrefix  = "quorum/policies/"
	requestPrefix = "quorum/requests/"
	// resultPrefix holds stored results (sealed by the barrier like every
	// record), apart from the request so that listing requests never reads them.
	resultPrefix = "quorum/results/"
)

// SetPolicy creates or replaces the policy at p.Scope.
func (s *Service) SetPolicy(ctx context.Context, p *Policy) error {
	if err := p.Validate(); err != nil {
		return err
	}
	return s.view.Update(ctx, func(tx barrier.Tx) error { return barrier.PutJSON(tx, policyPrefix+p.Scope, p) })
}

// Policy returns the policy at scope, or nil.
func (s *Service) Policy(ctx context.Context, scope string) (*Policy, error) {
	var p *Policy
	err := s.view.View(ctx, func(tx barrier.Tx) error {
		var q Policy
		ok, err := barrier.GetJSON(tx, policyPrefix+scope, &q)
		if ok {
			p = &q
		}
		return err
	})
	return p, err
}

// DeletePolicy removes the policy at scope.
func (s *Service) DeletePolicy(ctx context.Context, scope string) error {
	return s.view.Update(ctx, func(tx barrier.Tx) error {
		ok, err := barrier.GetJSON(tx, policyPrefix+scope, new(Policy))
		if err != nil {
			return err
		}
		if !ok {
			return &Error{Kind: errs.NotFound, Reason: ReasonNoPolicy, Msg: "No quorum policy is set here."}
		}
		return tx.Delete(policyPrefix + scope)
	})
}

// Match returns the first policy among scopes (most specific first) that
// protects op, or nil.
func (s *Service) Match(ctx context.Context, op string, scopes ...string) (*Policy, error) {
	if !protectable[op] {
		return nil, nil
	}
	var found *Policy
	err := s.view.View(ctx, func(tx barrier.Tx) error {
		for _, sc := range scopes {
			var p Policy
			ok, err := barrier.GetJSON(tx, policyPrefix+sc, &p)
			if err != nil {
				return err
			}
			if ok && p.Protects(op) {
				found = &p
				return nil
			}
		}
		return nil
	})
	return found, err
}

// Submit stores a new pending request under p. r carries ID, Vault,
// TenantID, Requester, Operation, Target and Replay; Submit fills in the
// rest from p and the clock.
func (s *Service) Submit(ctx context.Context, p *Policy, r *Request) error {
	if !validID(r.ID) {
		return errors.New("quorum: invalid request ID")
	}
	now := s.clock.Now().UTC()
	r.Scope, r.Required, r.Group = p.Scope, p.Required, p.Group
	r.Approvers = slices.Clone(p.Approvers)
	r.Requester = strings.ToLower(r.Requester)
	r.Created, r.Expires = now, now.Add(p.TTL())
	r.State = Pending
	r.Approvals, r.Rejections = []Vote{}, []Vote{}
	r.Fingerprint = Fingerprint(&r.Replay)
	return s.view.Update(ctx, func(tx barrier.Tx) error { return barrier.PutJSON(tx, requestPrefix+r.ID, r) })
}

func notFound(id string) *Error {
	return &Error{Kind: errs.NotFound, Reason: ReasonNotFound, Msg: fmt.Sprintf("Approval request %s was not found.", clip(id))}
}

// Get returns request id.
func (s *Service) Get(ctx context.Context, id string) (*Request, error) {
	if !validID(id) {
		return nil, notFound(id)
	}
	var r Request
	var ok bool
	err := s.view.View(ctx, func(tx barrier.Tx) error {
		var err error
		ok, err = barrier.GetJSON(tx, requestPrefix+id, &r)
		return err
	})
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, notFound(id)
	}
	return &r, nil
}

// List returns the requests keep accepts, oldest first.
func (s *Service) List(ctx context.Context, keep func(*Request) bool) ([]*Request, error) {
	var out []*Request
	err := s.view.View(ctx, func(tx barrier.Tx) error {
		out = out[:0]
		var inner error
		err := tx.Scan(requestPrefix, "", func(_ string, val []byte) bool {
			r := new(Request)
			if inner = json.Unmarshal(val, r); inner != nil {
				return false
			}
			if keep(r) {
				out = append(out, r)
			}
			return true
		})
		if err == nil {
			err = inner
		}
		return err
	})
	sort.SliceStable(out, func(i, j int) bool { return out[i].Created.Before(out[j].Created) })
	return out, err
}

// Decide records voter's approval or rejection of request id. run is true
// for exactly one call: the one whose approval met the quorum; the request
// is then Executing, and the caller must run the operation and Finish it.
// A rejection by any approver rejects the request.
func (s *Service) Decide(ctx context.Context, id, voter string, groups []string, approve bool) (r *Request, run bool, err error) {
	if !validID(id) {
		return nil, false, notFound(id)
	}
	voter = strings.ToLower(voter)
	var expired bool
	err = s.view.Update(ctx, func(tx barrier.Tx) error {
		run, expired = false, false
		r = new(Request)
		ok, err := barrier.GetJSON(tx, requestPrefix+id, r)
		if err != nil {
			return err
		}
		if !ok {
			return notFound(id)
		}
		now := s.clock.Now().UTC()
		switch st := r.Effective(now); {
		case st == Expired:
			// Nothing is written: the stored state stays Pending and every
			// reader sees Expired (Effective).
			expired = true
			return errExpired
		case st != Pending:
			return &Error{Kind: errs.Conflict, Reason: ReasonNotPending, Msg: fmt.Sprintf("Approval request %s is %s; it can no longer be decided.", id, st)}
		}
		if voter == r.Requester {
			return &Error{Kind: errs.Forbidden, Reason: ReasonSelfApproval, Msg: fmt.Sprintf("The requester of approval request %s cannot approve or reject it.", id)}
		}
		if !r.mayApprove(voter, groups) {
			return &Error{Kind: errs.Forbidden, Reason: ReasonNotApprover, Msg: fmt.Sprintf("The caller is not an approver of approval request %s.", id)}
		}
		for _, v := range append(slices.Clone(r.Approvals), r.Rejections...) {
			if v.ObjectID == voter {
				return &Error{Kind: errs.Conflict, Reason: ReasonVoted, Msg: fmt.Sprintf("The caller has already decided approval request %s.", id)}
			}
		}
		vote := Vote{ObjectID: voter, At: now}
		if !approve {
			r.Rejections = append(r.Rejections, vote)
			r.State, r.Finished = Rejected, now
		} else {
			r.Approvals = append(r.Approvals, vote)
			if len(r.Approvals) >= r.Required {
				r.State = Executing
				run = true
			}
		}
		return barrier.PutJSON(tx, requestPrefix+id, r)
	})
	if err != nil && !expired {
		return nil, false, err
	}
	if expired {
		return r, false, &Error{Kind: errs.Conflict, Reason: ReasonExpired, Msg: fmt.Sprintf("Approval request %s expired at %s; it can no longer be approved.", id, r.Expires.Format(time.RFC3339))}
	}
	return r, run, nil
}

var errExpired = errors.New("quorum: expired")

// Override is break-glass: operator, having proved the recovery (unseal)
// shares to the caller, runs pending request id without its approvals.
// Like the approval that meets a quorum, it moves the request to Executing
// in one transaction, so the operation still runs at most once.
func (s *Service) Override(ctx context.Context, id, operator string) (*Request, error) {
	if !validID(id) {
		return nil, notFound(id)
	}
	var r Request
	err := s.view.Update(ctx, func(tx barrier.Tx) error {
		ok, err := barrier.GetJSON(tx, requestPrefix+id, &r)
		if err != nil {
			return err
		}
		if !ok {
			return notFound(id)
		}
		if st := r.Effective(s.clock.Now()); st != Pending {
			return &Error{Kind: errs.Conflict, Reason: ReasonNotPending, Msg: fmt.Sprintf("Approval request %s is %s; it can no longer be run.", id, st)}
		}
		r.State, r.BreakGlass = Executing, strings.ToLower(operator)
		return barrier.PutJSON(tx, requestPrefix+id, &r)
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// Finish records the outcome of request id's operation (status is the
// HTTP status it answered; ok whether it succeeded).
func (s *Service) Finish(ctx context.Context, id string, status int, ok bool) (*Request, error) {
	return s.FinishResult(ctx, id, status, ok, nil)
}

// FinishResult is Finish that also stores res, the operation's answer, for
// the requester alone (when res is not nil, ok, and the operation
// KeepsResult), in the same transaction.
func (s *Service) FinishResult(ctx context.Context, id string, status int, ok bool, res *Result) (*Request, error) {
	var r Request
	err := s.view.Update(ctx, func(tx barrier.Tx) error {
		found, err := barrier.GetJSON(tx, requestPrefix+id, &r)
		if err != nil {
			return err
		}
		if !found {
			return notFound(id)
		}
		if r.State != Executing {
			return &Error{Kind: errs.Conflict, Reason: ReasonNotPending, Msg: fmt.Sprintf("Approval request %s is %s.", id, r.State)}
		}
		r.State, r.Status, r.Finished = Executed, status, s.clock.Now().UTC()
		if !ok {
			r.State = Failed
		}
		if ok && res != nil && resultOps[r.Operation] {
			r.Result, r.ResultExpires = ResultAvailable, r.Finished.Add(ResultTTL)
			if err := barrier.PutJSON(tx, resultPrefix+id, res); err != nil {
				return err
			}
		}
		return barrier.PutJSON(tx, requestPrefix+id, &r)
	})
	if err != nil {
		return nil, err
	}
	return &r, nil
}

// TakeResult returns the stored result of request id to its requester and
// deletes it, in one transaction: a result is delivered at most once. Any
// caller other than the requester, a request without a result, a result
// already taken or past ResultTTL (deleted then) is ResultNotAvailable or
// ApprovalNotFound, never the result.
func (s *Service) TakeResult(ctx context.Context, id, requester string) (*Result, error) {
	if !validID(id) {
		return nil, notFound(id)
	}
	var res *Result
	var gone bool
	err := s.view.Update(ctx, func(tx barrier.Tx) error {
		res, gone = nil, false
		var r Request
		ok, err := barrier.GetJSON(tx, requestPrefix+id, &r)
		if err != nil {
			return err
		}
		if !ok || r.Requester != strings.ToLower(requester) {
			return notFound(id)
		}
		switch r.ResultState(s.clock.Now()) {
		case ResultAvailable:
		case ResultExpired:
			gone = true
			r.Result = ResultExpired
			if err := tx.Delete(resultPrefix + id); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			return barrier.PutJSON(tx, requestPrefix+id, &r)
		default:
			return &Error{Kind: errs.NotFound, Reason: ReasonNoResult, Msg: fmt.Sprintf("Approval request %s has no result to deliver (state %s, result %s).", id, r.State, orNone(r.Result))}
		}
		res = new(Result)
		found, err := barrier.GetJSON(tx, resultPrefix+id, res)
		if err != nil {
			return err
		}
		if !found {
			res = nil
			return &Error{Kind: errs.NotFound, Reason: ReasonNoResult, Msg: fmt.Sprintf("Approval request %s has no result to deliver.", id)}
		}
		r.Result = ResultDelivered
		if err := tx.Delete(resultPrefix + id); err != nil {
			return err
		}
		return barrier.PutJSON(tx, requestPrefix+id, &r)
	})
	if err != nil {
		return nil, err
	}
	if gone {
		return nil, &Error{Kind: errs.NotFound, Reason: ReasonNoResult, Msg: fmt.Sprintf("The result of approval request %s expired %s after the operation ran and was deleted.", id, ResultTTL)}
	}
	return res, nil
}

func orNone(s string) string {
	if s == "" {
		return "none"
	}
	return s
}

// SinkRemovalTarget is the target of an AuditSinkRemove request for the
// audit sink whose identity is id.
func SinkRemovalTarget(id string) string { return "sys/audit/sinks/" + id }

// PermissionLifetime is how long an executed request that is a permission
// (an approved AuditSinkRemove) can be used: an approval given for a change
// made a week later is still the approvers' decision; one left unused for
// longer is not, and the change must be asked for again.
const PermissionLifetime = 7 * 24 * time.Hour

// consumable reports whether r is a permission ConsumeExecuted could still
// hand out at now: a tenant-level request, Executed, not consumed, finished
// less than PermissionLifetime ago.
func (r *Request) consumable(now time.Time) bool {
	return r.State == Executed && r.Consumed.IsZero() && now.Before(r.Finished.Add(PermissionLifetime)) &&
		r.Vault == "" && r.Pool == ""
}

// ConsumeExecuted, inside tx (a transaction of the system view the
// Service uses), finds the oldest request of tenant (tenant-level: no
// vault, no pool) for op on target that is Executed, not yet consumed and
// finished less than PermissionLifetime before now, marks it consumed at
// now and returns it; nil when there is none. An approved AuditSinkRemove
// is such a permission: used once, by the unseal that finds the sink gone.
func ConsumeExecuted(tx barrier.Tx, tenant, op, target string, now time.Time) (*Request, error) {
	var found *Request
	var inner error
	err := tx.Scan(requestPrefix, "", func(_ string, val []byte) bool {
		r := new(Request)
		if inner = json.Unmarshal(val, r); inner != nil {
			return false
		}
		if r.Operation == op && r.Target == target && r.consumable(now) && strings.EqualFold(r.TenantID, tenant) &&
			(found == nil || r.Created.Before(found.Created)) {
			found = r
		}
		return true
	})
	if err == nil {
		err = inner
	}
	if err != nil || found == nil {
		return nil, err
	}
	found.Consumed = now.UTC()
	if err := barrier.PutJSON(tx, requestPrefix+found.ID, found); err != nil {
		return nil, err
	}
	return found, nil
}

// What Sweep did to a request (the record callback's what).
const (
	SweptExpired       = "expired"        // a pending request past its expiry is now Expired
	SweptResultExpired = "result-expired" // a stored result past ResultTTL was deleted
)

// Sweep is the housekeeping of the sweep job: each pending request past its
// expiry is written Expired, and each stored result past ResultTTL is
// deleted (the request then reads result Expired). Each change is its own
// transaction, which checks the condition again (a concurrent Decide or
// TakeResult wins or loses cleanly) and calls record(r, what) before it
// commits: record writes the audit event, and its error rolls the change
// back. It returns how many requests expired and results were deleted.
func (s *Service) Sweep(ctx context.Context, record func(r *Request, what string) error) (expired, results int, err error) {
	now := s.clock.Now().UTC()
	ids, err := s.requestIDs(ctx, func(r *Request) bool {
		return r.Effective(now) == Expired && r.State == Pending || r.ResultState(now) == ResultExpired && r.Result == ResultAvailable
	})
	if err != nil {
		return 0, 0, err
	}
	for _, id := range ids {
		var exp, res bool
		err := s.view.Update(ctx, func(tx barrier.Tx) error {
			exp, res = false, false
			var r Request
			ok, err := barrier.GetJSON(tx, requestPrefix+id, &r)
			if err != nil || !ok {
				return err
			}
			now := s.clock.Now().UTC()
			if r.State == Pending && !now.Before(r.Expires) {
				r.State, r.Finished, exp = Expired, now, true
			}
			if r.Result == ResultAvailable && !now.Before(r.ResultExpires) {
				if err := tx.Delete(resultPrefix + id); err != nil && !errors.Is(err, storage.ErrNotFound) {
					return err
				}
				r.Result, res = ResultExpired, true
			}
			if !exp && !res {
				return nil
			}
			if exp {
				if err := record(&r, SweptExpired); err != nil {
					return err
				}
			}
			if res {
				if err := record(&r, SweptResultExpired); err != nil {
					return err
				}
			}
			return barrier.PutJSON(tx, requestPrefix+id, &r)
		})
		if err != nil {
			return expired, results, err
		}
		if exp {
			expired++
		}
		if res {
			results++
		}
	}
	return expired, results, nil
}

// requestIDs returns the IDs of the stored requests match accepts, read
// in one view; the sweep then changes each in a transaction of its own
// that checks it again.
func (s *Service) requestIDs(ctx context.Context, match func(*Request) bool) ([]string, error) {
	var ids []string
	err := s.view.View(ctx, func(tx barrier.Tx) error {
		ids = ids[:0]
		var inner error
		err := tx.Scan(requestPrefix, "", func(_ string, val []byte) bool {
			var r Request
			if inner = json.Unmarshal(val, &r); inner != nil {
				return false
			}
			if match(&r) {
				ids = append(ids, r.ID)
			}
			return true
		})
		if err == nil {
			err = inner
		}
		return err
	})
	return ids, err
}

// Retention is how long a request in a final state (Executed, Failed,
// Rejected, Expired, BreakGlass) is kept after it finished; the sweep
// then deletes it (Prune). The audit log keeps the history: every vote,
// the execution and the deletion are audited.
const Retention = 90 * 24 * time.Hour

// SweptDeleted is what Prune tells record: a request in a final state
// older than the retention period was deleted.
const SweptDeleted = "deleted"

// SetRetention replaces Retention for s ([quorum] retention, or a
// test); d <= 0 restores the default. Whatever it is, an
// executed permission that can still be used and a result that can still
// be fetched are kept.
func (s *Service) SetRetention(d time.Duration) {
	if d <= 0 {
		d = 0
	}
	s.retention.Store(int64(d))
}

// RetentionPeriod is how long s keeps a request in a final state:
// SetRetention's value, or Retention.
func (s *Service) RetentionPeriod() time.Duration { return s.retentionPeriod() }

func (s *Service) retentionPeriod() time.Duration {
	if d := time.Duration(s.retention.Load()); d > 0 {
		return d
	}
	return Retention
}

// retired reports whether r may be deleted at now: a final state reached
// more than keep ago, no result still to be fetched, and not an executed
// permission (an approved AuditSinkRemove) that ConsumeExecuted could
// still hand out.
func (r *Request) retired(now time.Time, keep time.Duration) bool {
	switch r.State {
	case Executed, Failed, Rejected, Expired, Overruled:
	default: // Pending, Executing: never
		return false
	}
	end := r.Finished
	if end.IsZero() {
		end = r.Created
	}
	if now.Before(end.Add(keep)) {
		return false
	}
	if r.Result == ResultAvailable && now.Before(r.ResultExpires) {
		return false
	}
	return !r.consumable(now)
}

// Prune is the retention half of the sweep: each request in a final state
// that finished more than the retention period ago is deleted, with its
// stored result if one is left. Each deletion is its own transaction,
// which checks the condition again and calls record(r, SweptDeleted)
// before it commits (record writes the audit event; its error keeps the
// request). It returns how many requests were deleted.
func (s *Service) Prune(ctx context.Context, record func(r *Request, what string) error) (deleted int, err error) {
	keep := s.retentionPeriod()
	now := s.clock.Now().UTC()
	ids, err := s.requestIDs(ctx, func(r *Request) bool { return r.retired(now, keep) })
	if err != nil {
		return 0, err
	}
	for _, id := range ids {
		var del bool
		err := s.view.Update(ctx, func(tx barrier.Tx) error {
			del = false
			var r Request
			ok, err := barrier.GetJSON(tx, requestPrefix+id, &r)
			if err != nil || !ok || !r.retired(s.clock.Now().UTC(), keep) {
				return err
			}
			if err := tx.Delete(resultPrefix + id); err != nil && !errors.Is(err, storage.ErrNotFound) {
				return err
			}
			if err := record(&r, SweptDeleted); err != nil {
				return err
			}
			if err := tx.Delete(requestPrefix + id); err != nil {
				return err
			}
			del = true
			return nil
		})
		if err != nil {
			return deleted, err
		}
		if del {
			deleted++
		}
	}
	return deleted, nil
}

// StoredResult reports whether request id has a stored result record
// (whatever its expiry): for tests and diagnostics, never its content.
func (s *Service) StoredResult(ctx context.Context, id string) (bool, error) {
	var ok bool
	err := s.view.View(ctx, func(tx barrier.Tx) error {
		var res Result
		var err error
		ok, err = barrier.GetJSON(tx, resultPrefix+id, &res)
		clear(res.Body)
		return err
	})
	return ok, err
}
