package mgmt

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/alerts"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/vault"
)

// Alert rules as management-plane resources (docs/CONFIG.md "Alert rules
// on the management plane"):
//
//	PUT|GET|DELETE {vault}/providers/Microsoft.Insights/alertRules/{name}
//	GET            {vault}/providers/Microsoft.Insights/alertRules
//
// authorized by Microsoft.Insights/alertRules/{write,read,delete} on the
// vault. A rule is confined to its vault: the engine gets it with the
// filter's vaults forced to the vault and the vault's tenant checked on
// every event. Its destinations name destinations of the config, never an
// address the caller gives. Records live in the system namespace under
// sys/alerts/rules/{vault ID}/{name}; every node loads those of live vaults into its alert
// engine (the server's refresh job), and the node that wrote one at once.

// The actions of the alert rule routes.
const (
	AlertRulesRead   authz.Action = "Microsoft.Insights/alertRules/read"
	AlertRulesWrite  authz.Action = "Microsoft.Insights/alertRules/write"
	AlertRulesDelete authz.Action = "Microsoft.Insights/alertRules/delete"
)

const (
	alertRulesPrefix   = "sys/alerts/rules/"
	alertRuleType      = "Microsoft.Insights/alertRules"
	maxAlertRules      = 100 // per vault
	maxAlertList       = 32  // entries of one filter list
	maxAlertString     = 256
	maxAlertThreshold  = 100000
	maxAlertWindow     = 24 * time.Hour
	maxAlertCooldown   = 7 * 24 * time.Hour
	maxAlertDescLength = 512
)

// AlertRuleProps are a rule's ARM properties, as stored (canonical: the
// parser's output reads back the same).
type AlertRuleProps struct {
	Description  string          `json:"description,omitempty"`
	Severity     string          `json:"severity"`
	Filter       AlertRuleFilter `json:"filter"`
	Threshold    int             `json:"threshold"`
	Window       string          `json:"window"`
	GroupBy      string          `json:"groupBy,omitempty"`
	Cooldown     string          `json:"cooldown,omitempty"`
	Destinations []string        `json:"destinations"`
}

// AlertRuleFilter is alerts.Filter without vaults (forced to the rule's).
type AlertRuleFilter struct {
	Operations []string `json:"operations,omitempty"`
	Results    []string `json:"results,omitempty"`
	Statuses   []int    `json:"statuses,omitempty"`
	Callers    []string `json:"callers,omitempty"`
	Objects    []string `json:"objects,omitempty"`
	IPs        []string `json:"ips,omitempty"`
	Services   []string `json:"services,omitempty"`
}

// AlertRuleRecord is a stored alert rule.
type AlertRuleRecord struct {
	ID             string         `json:"id"`
	Name           string         `json:"name"`
	VaultID        string         `json:"vaultId"`
	Vault          string         `json:"vault"`
	TenantID       string         `json:"tenantId"`
	Properties     AlertRuleProps `json:"properties"`
	CreatedBy      string         `json:"createdBy,omitempty"`
	Created        time.Time      `json:"created"`
	LastModifiedBy string         `json:"lastModifiedBy,omitempty"`
	LastModified   time.Time      `json:"lastModified"`
}

// SetAlerts enables the alert rule API: dests are the config's destination
// names a rule may name, apply installs the stored rules in this node's
// engine (after every change). Without it the routes answer 404.
func (s *Service) SetAlerts(dests []string, apply func([]alerts.Rule)) {
	s.alertDests, s.alertApply = dests, apply
}

// AlertRules are the stored rules the engine runs: those whose vault is
// live under its name. A rule of a deleted vault rests (and runs again if
// the vault is recovered); a vault made anew under a purged vault's name
// (another ID) does not inherit its rules.
func (s *Service) AlertRules(ctx context.Context) ([]alerts.Rule, error) {
	var recs []*AlertRuleRecord
	err := s.sys.View(ctx, func(tx barrier.Tx) error {
		return scanJSON(tx, alertRulesPrefix, func(r *AlertRuleRecord) { recs = append(recs, r) })
	})
	var out []alerts.Rule
	for _, r := range recs {
		if v, verr := s.vaults.Vault(r.Vault); verr == nil && v.ID == r.VaultID {
			out = append(out, r.engineRule())
		}
	}
	return out, err
}

func (r *AlertRuleRecord) engineRule() alerts.Rule {
	p := &r.Properties
	w, _ := time.ParseDuration(p.Window)
	var cd time.Duration
	if p.Cooldown != "" {
		cd, _ = time.ParseDuration(p.Cooldown)
	}
	f := p.Filter
	return alerts.Rule{Name: r.ID, Description: p.Description, Severity: p.Severity, Threshold: p.Threshold, Window: w,
		GroupBy: p.GroupBy, Cooldown: cd, Destinations: p.Destinations, Tenant: r.TenantID,
		Filter: alerts.Filter{Operations: f.Operations, Results: f.Results, Statuses: f.Statuses, Callers: f.Callers,
			Objects: f.Objects, IPs: f.IPs, Services: f.Services, Vaults: []string{r.Vault}}}
}

func (s *Service) applyAlertRules(ctx context.Context) {
	rules, err := s.AlertRules(ctx)
	if err == nil && s.alertApply != nil {
		s.alertApply(rules)
	}
}

func alertRuleKey(v *vault.Vault, name string) string {
	return alertRulesPrefix + v.ID + "/" + strings.ToLower(name)
}

// checkAlertRuleName: 1 to 64 letters, digits, '-', '_' and '.', starting
// with a letter or digit.
func checkAlertRuleName(name string) error {
	ok := len(name) >= 1 && len(name) <= 64
	for i := 0; ok && i < len(name); i++ {
		c := name[i]
		ok = c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || i > 0 && (c == '-' || c == '_' || c == '.')
	}
	if !ok {
		return errBad("InvalidResourceName", "The alert rule name '%s' is invalid: 1 to 64 letters, digits, '-', '_' or '.', starting with a letter or digit.", clip(name))
	}
	return nil
}

// parseAlertRuleBody reads a PUT body, {"properties": {...}} (id, name,
// type and location are ignored, as ARM does), into canonical properties.
// Unknown properties, values out of range and destinations that are not
// among dests are refused with a 400; names of destinations take the
// config's spelling.
func parseAlertRuleBody(raw []byte, dests []string) (*AlertRuleProps, error) {
	var env struct {
		Properties json.RawMessage `json:"properties"`
	}
	if err := decodeBody(raw, &env); err != nil {
		return nil, err
	}
	if len(env.Properties) == 0 || string(env.Properties) == "null" {
		return nil, errBad("InvalidRequestContent", "The request content must have 'properties'.")
	}
	var p AlertRuleProps
	dec := json.NewDecoder(bytes.NewReader(env.Properties))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&p); err != nil {
		var te *json.UnmarshalTypeError
		if errors.As(err, &te) && te.Field != "" {
			return nil, errBad("InvalidRequestContent", "The request content was invalid and could not be deserialized: property '%s' has the wrong type.", clip(te.Field))
		}
		if f, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return nil, errBad("InvalidRequestContent", "The property %s is not an alert rule property (a rule's vault is the vault it is created on).", clip(f))
		}
		return nil, errBad("InvalidRequestContent", "The request content was invalid and could not be deserialized.")
	}
	if len(p.Description) > maxAlertDescLength {
		return nil, errBad("BadRequest", "The description is longer than %d bytes.", maxAlertDescLength)
	}
	p.Severity = strings.ToLower(p.Severity)
	switch p.Severity {
	case "":
		p.Severity = "medium"
	case "high", "medium", "low":
	default:
		return nil, errBad("BadRequest", "The severity must be high, medium or low.")
	}
	if p.Threshold == 0 {
		p.Threshold = 1
	}
	if p.Threshold < 1 || p.Threshold > maxAlertThreshold {
		return nil, errBad("BadRequest", "The threshold must be from 1 to %d.", maxAlertThreshold)
	}
	w := time.Minute
	if p.Window != "" {
		d, err := time.ParseDuration(p.Window)
		if err != nil || d < time.Second || d > maxAlertWindow {
			return nil, errBad("BadRequest", "The window must be a duration (\"90s\", \"5m\") from 1s to 24h.")
		}
		w = d
	}
	p.Window = w.String()
	if p.Cooldown != "" {
		d, err := time.ParseDuration(p.Cooldown)
		if err != nil || d < 0 || d > maxAlertCooldown {
			return nil, errBad("BadRequest", "The cooldown must be a duration (\"10m\") from 0s to 168h.")
		}
		p.Cooldown = ""
		if d > 0 {
			p.Cooldown = d.String()
		}
	}
	p.GroupBy = strings.ToLower(p.GroupBy)
	switch p.GroupBy {
	case "", "caller", "ip", "vault", "object", "operation", "caller+object", "caller+ip":
	default:
		return nil, errBad("BadRequest", "The groupBy must be caller, ip, vault, object, operation, caller+object or caller+ip.")
	}
	f := &p.Filter
	for _, l := range []struct {
		name string
		list *[]string
	}{{"operations", &f.Operations}, {"results", &f.Results}, {"callers", &f.Callers}, {"objects", &f.Objects},
		{"ips", &f.IPs}, {"services", &f.Services}, {"destinations", &p.Destinations}} {
		if len(*l.list) > maxAlertList {
			return nil, errBad("BadRequest", "The list '%s' has more than %d entries.", l.name, maxAlertList)
		}
		for _, s := range *l.list {
			if s == "" || len(s) > maxAlertString {
				return nil, errBad("BadRequest", "An entry of '%s' is empty or longer than %d bytes.", l.name, maxAlertString)
			}
		}
		if len(*l.list) == 0 {
			*l.list = nil
		}
	}
	for i, r := range f.Results {
		f.Results[i] = strings.ToLower(r)
		switch f.Results[i] {
		case "allowed", "denied", "failed", "unauthenticated":
		default:
			return nil, errBad("BadRequest", "A result must be allowed, denied, failed or unauthenticated.")
		}
	}
	if len(f.Statuses) > maxAlertList {
		return nil, errBad("BadRequest", "The list 'statuses' has more than %d entries.", maxAlertList)
	}
	for _, s := range f.Statuses {
		if s < 100 || s > 599 {
			return nil, errBad("BadRequest", "A status must be an HTTP status code from 100 to 599.")
		}
	}
	if len(f.Statuses) == 0 {
		f.Statuses = nil
	}
	if len(p.Destinations) == 0 {
		return nil, errBad("BadRequest", "A rule must name at least one destination of the server's [alerts] configuration.")
	}
	for i, d := range p.Destinations {
		found := false
		for _, known := range dests {
			if strings.EqualFold(d, known) {
				p.Destinations[i], found = known, true
				break
			}
		}
		if !found {
			return nil, errBad("BadRequest", "The destination '%s' is not configured on this server; a rule names destinations of the [alerts] configuration.", clip(d))
		}
	}
	return &p, nil
}

// alertRuleWire is a rule as ARM shows it.
type alertRuleWire struct {
	ID         string          `json:"id"`
	Name       string          `json:"name"`
	Type       string          `json:"type"`
	Properties *AlertRuleProps `json:"properties"`
	SystemData *systemData     `json:"systemData,omitempty"`
}

func alertRuleOut(r *AlertRuleRecord) alertRuleWire {
	return alertRuleWire{ID: r.ID, Name: r.Name, Type: alertRuleType, Properties: &r.Properties,
		SystemData: &systemData{CreatedBy: r.CreatedBy, CreatedAt: fmtTime(r.Created), LastModifiedBy: r.LastModifiedBy, LastModifiedAt: fmtTime(r.LastModified)}}
}

func (c *call) alertVault(rg, name string) (*vault.Vault, error) {
	v, err := c.vaultIn(c.sub, rg, name)
	if err != nil {
		return nil, err
	}
	if c.h.svc.alertApply == nil {
		return nil, c.notFound()
	}
	return v, nil
}

func (c *call) putAlertRule(rg, vname, name string) error {
	v, err := c.alertVault(rg, vname)
	if err != nil {
		return err
	}
	if err := checkAlertRuleName(name); err != nil {
		return err
	}
	var raw json.RawMessage
	if err := c.decode(&raw); err != nil {
		return err
	}
	s := c.h.svc
	props, err := parseAlertRuleBody(raw, s.alertDests)
	if err != nil {
		return err
	}
	ctx := c.r.Context()
	now := s.clock.Now().UTC()
	var rec AlertRuleRecord
	created := false
	s.mu.Lock()
	err = s.sys.Update(ctx, func(tx barrier.Tx) error {
		err := getJSON(tx, alertRuleKey(v, name), &rec)
		switch {
		case errors.Is(err, storage.ErrNotFound):
			n := 0
			if err := scanJSON(tx, alertRulesPrefix+v.ID+"/", func(*AlertRuleRecord) { n++ }); err != nil {
				return err
			}
			if n >= maxAlertRules {
				return errBad("QuotaExceeded", "A vault has at most %d alert rules.", maxAlertRules)
			}
			created = true
			rec = AlertRuleRecord{Name: name, VaultID: v.ID, Created: now, CreatedBy: c.p.ObjectID,
				ID: "/subscriptions/" + v.SubscriptionID + "/resourceGroups/" + v.ResourceGroup + "/providers/Microsoft.KeyVault/vaults/" + v.Name +
					"/providers/" + alertRuleType + "/" + name}
		case err != nil:
			return err
		}
		rec.Vault, rec.TenantID, rec.Properties = v.Name, v.TenantID, *props
		rec.LastModified, rec.LastModifiedBy = now, c.p.ObjectID
		return putJSON(tx, alertRuleKey(v, name), &rec)
	})
	if err == nil {
		s.applyAlertRules(ctx)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.reply(status, alertRuleOut(&rec))
	return nil
}

func (c *call) getAlertRule(rg, vname, name string) error {
	v, err := c.alertVault(rg, vname)
	if err != nil {
		return err
	}
	var rec AlertRuleRecord
	err = c.h.svc.sys.View(c.r.Context(), func(tx barrier.Tx) error { return getJSON(tx, alertRuleKey(v, name), &rec) })
	if errors.Is(err, storage.ErrNotFound) {
		return errAlertRuleNotFound(name)
	}
	if err != nil {
		return err
	}
	c.reply(http.StatusOK, alertRuleOut(&rec))
	return nil
}

func errAlertRuleNotFound(name string) error {
	return errNotFound("ResourceNotFound", "The Resource 'Microsoft.Insights/alertRules/%s' was not found.", clip(name))
}

func (c *call) listAlertRules(rg, vname string) error {
	v, err := c.alertVault(rg, vname)
	if err != nil {
		return err
	}
	out := []alertRuleWire{}
	err = c.h.svc.sys.View(c.r.Context(), func(tx barrier.Tx) error {
		return scanJSON(tx, alertRulesPrefix+v.ID+"/", func(r *AlertRuleRecord) { out = append(out, alertRuleOut(r)) })
	})
	if err != nil {
		return err
	}
	c.reply(http.StatusOK, map[string]any{"value": out})
	return nil
}

func (c *call) deleteAlertRule(rg, vname, name string) error {
	v, err := c.alertVault(rg, vname)
	if err != nil {
		return err
	}
	s := c.h.svc
	ctx := c.r.Context()
	gone := false
	s.mu.Lock()
	err = s.sys.Update(ctx, func(tx barrier.Tx) error {
		if _, err := tx.Get(alertRuleKey(v, name)); errors.Is(err, storage.ErrNotFound) {
			gone = true
			return nil
		} else if err != nil {
			return err
		}
		return tx.Delete(alertRuleKey(v, name))
	})
	if err == nil && !gone {
		s.applyAlertRules(ctx)
	}
	s.mu.Unlock()
	if err != nil {
		return err
	}
	if gone {
		c.reply(http.StatusNoContent, nil)
		return nil
	}
	c.reply(http.StatusOK, nil)
	return nil
}

// ReloadAlertRules installs the stored rules in this node's engine (the
// server's refresh job: a rule written through another node arrives
// within a second). Serialized with the writes, so that an older read
// never replaces a newer write's rules.
func (s *Service) ReloadAlertRules(ctx context.Context) error {
	if s.alertApply == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	rules, err := s.AlertRules(ctx)
	if err != nil {
		return err
	}
	s.alertApply(rules)
	return nil
}
