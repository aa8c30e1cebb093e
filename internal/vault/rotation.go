package vault

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/barrier"
)

// Duration is an ISO-8601 duration as rotation policies use them (P90D,
// P1Y, P18M, P2W, PT12H).
type Duration struct {
	Years, Months, Days     int
	Hours, Minutes, Seconds int
	text                    string
}

var durationRE = regexp.MustCompile(`^P(?:(\d+)Y)?(?:(\d+)M)?(?:(\d+)W)?(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$`)

// ParseDuration parses an ISO-8601 duration.
func ParseDuration(s string) (Duration, error) {
	m := durationRE.FindStringSubmatch(s)
	if m == nil || s == "P" || strings.HasSuffix(s, "T") {
		return Duration{}, fmt.Errorf("invalid ISO-8601 duration %q", clip(s))
	}
	n := func(i int) int {
		if m[i] == "" {
			return 0
		}
		v, err := strconv.Atoi(m[i])
		if err != nil || v > 100_000 {
			return -1
		}
		return v
	}
	d := Duration{Years: n(1), Months: n(2), Days: n(3)*7 + n(4), Hours: n(5), Minutes: n(6), Seconds: n(7), text: s}
	if d.Years < 0 || d.Months < 0 || d.Days < 0 || d.Hours < 0 || d.Minutes < 0 || d.Seconds < 0 || n(3) < 0 || n(4) < 0 {
		return Duration{}, fmt.Errorf("invalid ISO-8601 duration %q", clip(s))
	}
	return d, nil
}

// AddTo returns t plus d (calendar arithmetic for years, months and days).
func (d Duration) AddTo(t time.Time) time.Time {
	return t.AddDate(d.Years, d.Months, d.Days).Add(time.Duration(d.Hours)*time.Hour +
		time.Duration(d.Minutes)*time.Minute + time.Duration(d.Seconds)*time.Second)
}

// SubFrom returns t minus d.
func (d Duration) SubFrom(t time.Time) time.Time {
	return t.AddDate(-d.Years, -d.Months, -d.Days).Add(-(time.Duration(d.Hours)*time.Hour +
		time.Duration(d.Minutes)*time.Minute + time.Duration(d.Seconds)*time.Second))
}

// approx is d in a fixed reference frame, for comparisons in validation.
func (d Duration) approx() time.Duration {
	ref := time.Date(2000, 1, 1, 0, 0, 0, 0, time.UTC)
	return d.AddTo(ref).Sub(ref)
}

// LifetimeAction is one action of a rotation policy: exactly one of the
// two triggers is set.
type LifetimeAction struct {
	Type             string `json:"type"` // "Rotate" or "Notify"
	TimeAfterCreate  string `json:"timeAfterCreate,omitempty"`
	TimeBeforeExpiry string `json:"timeBeforeExpiry,omitempty"`
}

// RotationPolicy is a key's rotation policy.
type RotationPolicy struct {
	LifetimeActions []LifetimeAction `json:"lifetimeActions"`
	ExpiryTime      string           `json:"expiryTime,omitempty"`
	Created         int64            `json:"created,omitempty"`
	Updated         int64            `json:"updated,omitempty"`
}

// DefaultRotationPolicy is what a key without a policy has: notify 30 days
// before expiry (AZURE-API.md §1.2).
func DefaultRotationPolicy() *RotationPolicy {
	return &RotationPolicy{LifetimeActions: []LifetimeAction{{Type: "Notify", TimeBeforeExpiry: "P30D"}}}
}

const (
	minRotationGap = 7 * 24 * time.Hour  // a trigger at least 7 days after creation and before expiry
	minExpiry      = 28 * 24 * time.Hour // the shortest expiryTime Azure accepts
)

// validate checks p as Azure Key Vault does.
func (p *RotationPolicy) validate() error {
	var expiry time.Duration
	if p.ExpiryTime != "" {
		d, err := ParseDuration(p.ExpiryTime)
		if err != nil {
			return badParameter("expiryTime: %v.", err)
		}
		if expiry = d.approx(); expiry < minExpiry {
			return badParameter("expiryTime must be at least 28 days (P28D).")
		}
	}
	seen := map[string]bool{}
	for _, a := range p.LifetimeActions {
		t := strings.ToLower(a.Type)
		switch t {
		case "rotate":
			a.Type = "Rotate"
		case "notify":
			a.Type = "Notify"
		default:
			return badParameter("Lifetime action type %q is not supported; use Rotate or Notify.", clip(a.Type))
		}
		if seen[t] {
			return badParameter("A rotation policy may have at most one %s action.", a.Type)
		}
		seen[t] = true
		if (a.TimeAfterCreate == "") == (a.TimeBeforeExpiry == "") {
			return badParameter("Each lifetime action needs exactly one trigger: timeAfterCreate or timeBeforeExpiry.")
		}
		if t == "notify" && a.TimeAfterCreate != "" {
			return badParameter("A Notify action can only be triggered by timeBeforeExpiry.")
		}
		trig := a.TimeAfterCreate
		if trig == "" {
			trig = a.TimeBeforeExpiry
		}
		d, err := ParseDuration(trig)
		if err != nil {
			return badParameter("Lifetime action trigger: %v.", err)
		}
		if d.approx() < minRotationGap {
			return badParameter("A lifetime action trigger must be at least 7 days (P7D).")
		}
		if a.TimeBeforeExpiry != "" && expiry == 0 {
			return badParameter("timeBeforeExpiry needs the policy's expiryTime to be set.")
		}
		if expiry != 0 && d.approx() > expiry-minRotationGap {
			return badParameter("A lifetime action must trigger at least 7 days before the expiry time (expiryTime %s, trigger %s).", p.ExpiryTime, trig)
		}
	}
	return nil
}

func (o objects) policyKey(name string) string { return o.base() + "/p/" + strings.ToLower(name) }

// GetRotationPolicy returns the rotation policy of a live key, or the
// default policy when none was set.
func (s *Service) GetRotationPolicy(ctx context.Context, v *Vault, name string) (*RotationPolicy, error) {
	if err := checkName(Keys, name); err != nil {
		return nil, err
	}
	pol := new(RotationPolicy)
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		o := s.objs(v, Keys)
		if _, err := o.live(tx, name); err != nil {
			return err
		}
		ok, err := barrier.GetJSON(tx, o.policyKey(name), pol)
		if err == nil && !ok {
			pol = DefaultRotationPolicy()
		}
		return err
	})
	return pol, err
}

// SetRotationPolicy validates and stores a rotation policy.
func (s *Service) SetRotationPolicy(ctx context.Context, v *Vault, name string, p *RotationPolicy) (*RotationPolicy, error) {
	if err := checkName(Keys, name); err != nil {
		return nil, err
	}
	for i := range p.LifetimeActions {
		switch strings.ToLower(p.LifetimeActions[i].Type) {
		case "rotate":
			p.LifetimeActions[i].Type = "Rotate"
		case "notify":
			p.LifetimeActions[i].Type = "Notify"
		}
	}
	if err := p.validate(); err != nil {
		return nil, err
	}
	now := s.clock.Now().Unix()
	err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
		o := s.objs(v, Keys)
		if _, err := o.live(tx, name); err != nil {
			return err
		}
		old := new(RotationPolicy)
		ok, err := barrier.GetJSON(tx, o.policyKey(name), old)
		if err != nil {
			return err
		}
		p.Created = now
		if ok && old.Created != 0 {
			p.Created = old.Created
		}
		p.Updated = now
		if err := barrier.PutJSON(tx, o.policyKey(name), p); err != nil {
			return err
		}
		rec, err := o.live(tx, name)
		if err != nil {
			return err
		}
		return o.reindexLatest(tx, rec) // the Notify lead may have changed
	})
	if err != nil {
		return nil, err
	}
	return p, nil
}
