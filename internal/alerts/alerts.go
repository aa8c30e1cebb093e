// Package alerts evaluates alert rules over the audit events as they are
// recorded and delivers the alerts they raise: to a signed webhook, as an
// Event Grid event, or by mail (the server's SMTP mailer).
//
// A rule is a filter on event fields (operation, result, status, caller,
// object, IP, vault, service), a threshold of matching events within a
// window, an optional grouping (per caller, IP, vault or object: each group
// counts and cools down on its own), and a cooldown after it fires. Rules
// run on the injected clock: windows are measured in event time, which the
// pipeline stamps with the server's clock, and cooldowns in clock time.
//
// The built-in rules (Builtin) are enabled unless the config disables them
// by name.
package alerts

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"log/slog"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/clock"
)

// Filter selects events; every non-empty list must match (OR within a
// list). Operations match Azure's operationName or Keyward's operation;
// a trailing * matches a prefix. Objects match as prefixes of the object
// ID (object URL without version for vault objects).
type Filter struct {
	Operations []string `json:"operations,omitempty" toml:"operations"`
	Results    []string `json:"results,omitempty" toml:"results"` // allowed, denied, failed, unauthenticated
	Statuses   []int    `json:"statuses,omitempty" toml:"statuses"`
	Callers    []string `json:"callers,omitempty" toml:"callers"` // object or application IDs
	Objects    []string `json:"objects,omitempty" toml:"objects"`
	IPs        []string `json:"ips,omitempty" toml:"ips"`
	Vaults     []string `json:"vaults,omitempty" toml:"vaults"`
	Services   []string `json:"services,omitempty" toml:"services"`
}

// Rule is one alert rule.
type Rule struct {
	Name        string `json:"name" toml:"name"`
	Description string `json:"description,omitempty" toml:"description"`
	Filter      Filter `json:"filter" toml:"filter"`
	// Threshold events within Window fire the rule (default 1 in 1 minute).
	Threshold int           `json:"threshold,omitempty" toml:"threshold"`
	Window    time.Duration `json:"window,omitempty" toml:"-"`
	// GroupBy: "" (one group), "caller", "ip", "vault", "object",
	// "operation", "caller+object" or "caller+ip".
	GroupBy string `json:"groupBy,omitempty" toml:"group_by"`
	// Cooldown: after firing, a group does not fire again for this long.
	Cooldown time.Duration `json:"cooldown,omitempty" toml:"-"`
	// FirstTime: fire only the first time a group is seen (the
	// "principal reads an object it never read before" rule).
	FirstTime bool `json:"firstTime,omitempty" toml:"first_time"`
	// Severity is copied to the alert: "high", "medium" or "low".
	Severity string `json:"severity,omitempty" toml:"severity"`
	// Destinations names where the alert goes; empty: every destination.
	Destinations []string `json:"destinations,omitempty" toml:"destinations"`
	// Tenant confines the rule to events whose caller is of this tenant
	// (rules made on the management plane, with Filter.Vaults forced to
	// their vault); empty: every tenant.
	Tenant string `json:"tenant,omitempty" toml:"-"`
}

// Alert is what a rule raised.
type Alert struct {
	ID          string    `json:"id"`
	Rule        string    `json:"rule"`
	Description string    `json:"description,omitempty"`
	Severity    string    `json:"severity"`
	Group       string    `json:"group,omitempty"`
	Count       int       `json:"count"`
	Window      string    `json:"window,omitempty"`
	Time        time.Time `json:"time"`
	// The event that fired it: IDs and names only, as the audit log has them.
	Operation string `json:"operationName,omitempty"`
	Vault     string `json:"vault,omitempty"`
	Object    string `json:"objectId,omitempty"`
	CallerOID string `json:"callerObjectId,omitempty"`
	CallerIP  string `json:"callerIpAddress,omitempty"`
	Status    int    `json:"httpStatusCode,omitempty"`
	RequestID string `json:"requestId,omitempty"`
	// Expires is the object's expiry (near-expiry alerts).
	Expires *time.Time `json:"expires,omitempty"`
}

// Deliverer sends an alert somewhere. An error is retried.
type Deliverer interface {
	Deliver(ctx context.Context, a *Alert) error
}

// Destination is a named Deliverer.
type Destination struct {
	Name string
	Deliverer
}

// Engine evaluates rules and delivers alerts.
type Engine struct {
	clock clock.Clock
	log   *slog.Logger
	dests []Destination

	mu    sync.RWMutex
	rules []*ruleState // replaced, never changed in place; also in live
	// live is rules for Observe, which matches every audit event against
	// them without taking mu (a rule's definition never changes; its
	// counters, changed by hit, stay under mu).
	live  atomic.Pointer[[]*ruleState]
	fired []Alert // the last alerts, newest last (Recent)

	wg sync.WaitGroup
}

type ruleState struct {
	Rule
	extra    bool                   // set by SetExtra (the management plane's rules)
	hits     map[string][]time.Time // per group: event times within the window
	lastFire map[string]time.Time
	seen     map[string]bool // FirstTime rules
}

// New returns an engine with rules, delivering to dests.
func New(clk clock.Clock, log *slog.Logger, rules []Rule, dests []Destination) *Engine {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	e := &Engine{clock: clk, log: log, dests: dests}
	for _, r := range rules {
		e.rules = append(e.rules, newState(normalize(r)))
	}
	// live gets its own slice header: SetExtra assigns e.rules under the
	// mutex while Observe reads *live without it.
	rules0 := e.rules
	e.live.Store(&rules0)
	return e
}

func normalize(r Rule) Rule {
	if r.Threshold <= 0 {
		r.Threshold = 1
	}
	if r.Window <= 0 {
		r.Window = time.Minute
	}
	if r.Severity == "" {
		r.Severity = "medium"
	}
	return r
}

func newState(r Rule) *ruleState {
	return &ruleState{Rule: r, hits: map[string][]time.Time{}, lastFire: map[string]time.Time{}, seen: map[string]bool{}}
}

// SetExtra replaces the rules added at run time (the management plane's
// alert rules, reloaded on every node by the refresh job); the rules given
// to New stay. A rule whose definition did not change keeps its state:
// the events counted in its window, its cooldowns and the groups a
// first-time rule has seen. Names must not repeat those of New's rules.
func (en *Engine) SetExtra(rules []Rule) {
	en.mu.Lock()
	defer en.mu.Unlock()
	old := map[string]*ruleState{}
	var keep []*ruleState
	for _, r := range en.rules {
		if r.extra {
			old[r.Name] = r
		} else {
			keep = append(keep, r)
		}
	}
	for _, r := range rules {
		r = normalize(r)
		st := old[r.Name]
		if st == nil || !reflect.DeepEqual(st.Rule, r) {
			st = newState(r)
			st.extra = true
		}
		delete(old, r.Name)
		keep = append(keep, st)
	}
	en.rules = keep
	en.live.Store(&keep)
}

// Destinations names the engine's destinations, in config order.
func (en *Engine) Destinations() []string {
	out := make([]string, len(en.dests))
	for i, d := range en.dests {
		out[i] = d.Name
	}
	return out
}

// Observe evaluates e against every rule (audit.Log.Observe). It is
// quick: deliveries happen on their own goroutines.
func (en *Engine) Observe(e *audit.Event) {
	var out []Alert
	var buf [256]byte
	for _, r := range *en.live.Load() {
		if !r.match(e) {
			continue
		}
		g := appendGroup(buf[:0], r.GroupBy, e)
		if r.FirstTime {
			// Nearly every matching event is a repeat (first-read sees
			// every secret get): answer it under the read lock, without
			// making the group's string.
			en.mu.RLock()
			seen := r.seen[string(g)]
			en.mu.RUnlock()
			if seen {
				continue
			}
		}
		group := string(g)
		en.mu.Lock()
		a := en.hit(r, group, e.Time, e)
		en.mu.Unlock()
		if a != nil {
			out = append(out, *a)
		}
	}
	for i := range out {
		en.deliver(&out[i])
	}
}

// Raise fires rule name for group now, as an event would (for conditions
// that are not events: a failing audit sink, a key near expiry). It
// reports whether the rule fired (not cooling down).
func (en *Engine) Raise(name, group string, a Alert) bool {
	en.mu.Lock()
	var fired *Alert
	for _, r := range en.rules {
		if r.Name == name {
			fired = en.hit(r, group, en.clock.Now(), nil)
			if fired != nil {
				fired.Operation, fired.Vault, fired.Object, fired.Expires = a.Operation, a.Vault, a.Object, a.Expires
			}
		}
	}
	en.mu.Unlock()
	if fired == nil {
		return false
	}
	en.deliver(fired)
	return true
}

// hit counts one matching event for group; en.mu is held.
func (en *Engine) hit(r *ruleState, group string, at time.Time, e *audit.Event) *Alert {
	now := en.clock.Now()
	if r.FirstTime {
		if r.seen[group] {
			return nil
		}
		r.seen[group] = true
	} else {
		ts := append(r.hits[group], at)
		cut := 0
		for cut < len(ts) && at.Sub(ts[cut]) >= r.Window {
			cut++
		}
		ts = ts[cut:]
		r.hits[group] = ts
		if len(ts) < r.Threshold {
			return nil
		}
	}
	if last, ok := r.lastFire[group]; ok && now.Sub(last) < r.Cooldown {
		return nil
	}
	r.lastFire[group] = now
	count := len(r.hits[group])
	if r.FirstTime {
		count = 1
	}
	delete(r.hits, group) // the next alert needs a fresh threshold
	a := &Alert{ID: newID(), Rule: r.Name, Description: r.Description, Severity: r.Severity, Group: group,
		Count: count, Time: now.UTC()}
	if !r.FirstTime && r.Threshold > 1 {
		a.Window = r.Window.String()
	}
	if e != nil {
		a.Operation, a.Vault, a.Object, a.CallerOID, a.CallerIP, a.Status, a.RequestID =
			e.OperationName, e.Vault, e.ObjectID, e.Caller.ObjectID, e.Caller.IP, e.Status, e.RequestID
	}
	en.fired = append(en.fired, *a)
	if len(en.fired) > 200 {
		en.fired = en.fired[len(en.fired)-200:]
	}
	return a
}

// deliver sends a to its rule's destinations, each on its own goroutine,
// retrying a failed delivery three times.
func (en *Engine) deliver(a *Alert) {
	var names []string
	en.mu.Lock()
	for _, r := range en.rules {
		if r.Name == a.Rule {
			names = r.Destinations
		}
	}
	en.mu.Unlock()
	for _, d := range en.dests {
		if len(names) > 0 && !contains(names, d.Name) {
			continue
		}
		en.wg.Add(1)
		go func(d Destination, a Alert) {
			defer en.wg.Done()
			var err error
			for attempt := range 3 {
				ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
				err = d.Deliver(ctx, &a)
				cancel()
				if err == nil {
					return
				}
				time.Sleep(time.Duration(attempt+1) * 200 * time.Millisecond)
			}
			en.log.Error("alert delivery failed", "rule", a.Rule, "destination", d.Name, "error", err)
		}(d, *a)
	}
}

// Has reports whether the engine has rule name (it may be disabled).
func (en *Engine) Has(name string) bool {
	en.mu.Lock()
	defer en.mu.Unlock()
	for _, r := range en.rules {
		if r.Name == name {
			return true
		}
	}
	return false
}

// Wait waits for the deliveries under way.
func (en *Engine) Wait() { en.wg.Wait() }

// Recent returns the last alerts raised, newest last.
func (en *Engine) Recent() []Alert {
	en.mu.Lock()
	defer en.mu.Unlock()
	return append([]Alert(nil), en.fired...)
}

// appendGroup appends the group of e under by to dst.
func appendGroup(dst []byte, by string, e *audit.Event) []byte {
	caller := e.Caller.ObjectID
	if caller == "" {
		caller = e.Caller.AppID
	}
	switch by {
	case "caller":
		return append(dst, caller...)
	case "ip":
		return append(dst, e.Caller.IP...)
	case "vault":
		return append(dst, e.Vault...)
	case "object":
		return append(dst, objectBase(e.ObjectID)...)
	case "caller+object":
		return append(append(append(dst, caller...), ' '), objectBase(e.ObjectID)...)
	case "operation":
		return append(dst, e.OperationName...)
	case "caller+ip":
		return append(append(append(dst, caller...), ' '), e.Caller.IP...)
	}
	return dst
}

// objectBase is an object URL without its version: .../secrets/{name}.
func objectBase(id string) string {
	for _, kind := range []string{"/secrets/", "/keys/", "/certificates/"} {
		if i := strings.Index(id, kind); i >= 0 {
			rest := id[i+len(kind):]
			if j := strings.IndexByte(rest, '/'); j >= 0 {
				return id[:i+len(kind)+j]
			}
			return id
		}
	}
	return id
}

func (r *ruleState) match(e *audit.Event) bool {
	if r.Tenant != "" && !strings.EqualFold(r.Tenant, e.Caller.TenantID) {
		return false
	}
	return r.Filter.match(e)
}

// resultOf is the result a rule's filter sees: a request that quorum
// approval diverted (answered 202 ApprovalRequired, its approval outcome
// "pending") did not run, so it is "pending", not "allowed"; the operation
// is matched when it is executed, by the event that names every approver.
func resultOf(e *audit.Event) audit.Result {
	if e.Approval != nil && e.Approval.Outcome == "pending" {
		return "pending"
	}
	return e.Result
}

func (f *Filter) match(e *audit.Event) bool {
	if len(f.Operations) > 0 && !matchAny(f.Operations, e.OperationName) && !matchAny(f.Operations, e.Operation) {
		return false
	}
	if len(f.Results) > 0 && !contains(f.Results, string(resultOf(e))) {
		return false
	}
	if len(f.Statuses) > 0 {
		ok := false
		for _, s := range f.Statuses {
			ok = ok || s == e.Status
		}
		if !ok {
			return false
		}
	}
	if len(f.Callers) > 0 && !contains(f.Callers, e.Caller.ObjectID) && !contains(f.Callers, e.Caller.AppID) {
		return false
	}
	if len(f.IPs) > 0 && !contains(f.IPs, e.Caller.IP) {
		return false
	}
	if len(f.Vaults) > 0 && !contains(f.Vaults, e.Vault) {
		return false
	}
	if len(f.Services) > 0 && !contains(f.Services, e.Service) {
		return false
	}
	if len(f.Objects) > 0 {
		ok := false
		for _, o := range f.Objects {
			ok = ok || (o != "" && strings.HasPrefix(e.ObjectID, o))
		}
		if !ok {
			return false
		}
	}
	return true
}

func matchAny(pats []string, s string) bool {
	for _, p := range pats {
		if pre, ok := strings.CutSuffix(p, "*"); ok {
			if strings.HasPrefix(s, pre) {
				return true
			}
		} else if p == s {
			return true
		}
	}
	return false
}

func contains(list []string, s string) bool {
	for _, v := range list {
		if strings.EqualFold(v, s) {
			return true
		}
	}
	return false
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// Builtin are the built-in rules, enabled by default (issue #17): a burst
// of 401/403 from one IP, a secret or key read by a principal that never
// read it before, a purge or vault delete, a role-assignment or
// access-policy change, a vault (network-rule) change, seal and unseal,
// a failing audit sink and a key, secret or certificate near expiry (the
// last two raised by the server's jobs, not by an event).
func Builtin() []Rule {
	return []Rule{
		{Name: "auth-failure-burst", Severity: "high", Description: "10 or more 401/403 answers to one IP address within a minute",
			Filter: Filter{Statuses: []int{401, 403}}, Threshold: 10, Window: time.Minute, GroupBy: "ip", Cooldown: 15 * time.Minute},
		{Name: "first-read", Severity: "low", Description: "a principal read a secret or key it never read before",
			Filter:    Filter{Operations: []string{"SecretGet", "KeyGet"}, Results: []string{"allowed"}},
			FirstTime: true, GroupBy: "caller+object"},
		{Name: "purge-or-vault-delete", Severity: "high", Description: "an object was purged or a vault deleted or purged",
			Filter:  Filter{Operations: []string{"SecretPurge", "KeyPurge", "CertificatePurge", "VaultPurge", "VaultDelete"}, Results: []string{"allowed"}},
			GroupBy: "vault", Cooldown: time.Minute},
		{Name: "access-change", Severity: "high", Description: "a role assignment, role definition or access policy changed",
			Filter: Filter{Operations: []string{"RoleAssignmentCreate", "RoleAssignmentDelete", "RoleDefinitionCreateOrUpdate",
				"RoleDefinitionDelete", "VaultAccessPolicy*", "RoleActivation"}, Results: []string{"allowed"}},
			Cooldown: time.Minute},
		{Name: "network-rule-change", Severity: "medium", Description: "a vault's properties (network rules among them) were written",
			Filter: Filter{Operations: []string{"VaultPut", "VaultPatch"}, Results: []string{"allowed"}}, Cooldown: time.Minute},
		{Name: "seal-change", Severity: "high", Description: "the instance was sealed or unsealed",
			Filter: Filter{Services: []string{"sys"}, Operations: []string{"Seal", "Unseal"}, Results: []string{"allowed"}}, GroupBy: "operation", Cooldown: time.Minute},
		{Name: "audit-sink-failing", Severity: "high", Description: "an audit sink refuses events", GroupBy: "", Cooldown: 15 * time.Minute,
			Filter: Filter{Operations: []string{"-"}}}, // never matched by an event; raised by the server
		{Name: NearExpiry, Severity: "medium", Description: "a key, secret or certificate expires within a threshold (30, 7 and 1 days by default)",
			GroupBy: "object", Filter: Filter{Operations: []string{"-"}}}, // raised by the server once per object version and threshold
	}
}

// NearExpiry is the built-in rule the server raises for an object whose
// latest version expires within a threshold.
const NearExpiry = "near-expiry"

// Filtered returns rules without those named in disabled.
func Filtered(rules []Rule, disabled []string) []Rule {
	var out []Rule
	for _, r := range rules {
		if !contains(disabled, r.Name) {
			out = append(out, r)
		}
	}
	return out
}

// String names an alert for mail subjects.
func (a *Alert) String() string {
	s := fmt.Sprintf("[%s] %s", a.Severity, a.Rule)
	if a.Group != "" {
		s += " (" + a.Group + ")"
	}
	return s
}
