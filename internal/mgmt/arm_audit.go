package mgmt

import (
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
)

// The audit report API (docs/AUDIT-API in docs/CONFIG.md "Audit report
// API"): a Keyward extension resource provider on a vault,
//
//	GET {vault}/providers/Keyward.Audit/events?api-version=2026-01-01
//	    &from=&to=&principal=&operation=&result=&$top=&$skiptoken=
//	GET {vault}/providers/Keyward.Audit/usage?api-version=2026-01-01&from=&to=
//
// over this node's audit log. Both need Microsoft.Insights/logs/read on the
// vault (Azure's action for reading a resource's logs: Owner, Contributor,
// Reader and Monitoring-style roles at the vault, its resource group or
// subscription; not the Key Vault data roles).

// AuditSource opens this node's audit log files, oldest first; done closes
// them.
type AuditSource func() (inputs []audit.Input, done func(), err error)

// SetAuditSource makes the audit report API read src (nil: the API
// answers 404 InvalidResourceType).
func (s *Service) SetAuditSource(src AuditSource) { s.auditSrc = src }

// auditQueryParams are the query parameters the events API takes.
var auditQueryParams = map[string]bool{"api-version": true, "from": true, "to": true, "principal": true,
	"operation": true, "result": true, "$top": true, "$skiptoken": true}

const maxAuditTop = 500

// parseAuditQuery reads the events API's query parameters. Unknown
// parameters, repeated ones, bad times, results and page tokens are
// refused; $top defaults to 100.
func parseAuditQuery(q url.Values) (audit.Query, error) {
	out := audit.Query{Top: 100}
	for k, v := range q {
		if !auditQueryParams[k] {
			return out, errBad("InvalidQueryParameter", "The query parameter '%s' is not supported.", clip(k))
		}
		if len(v) != 1 {
			return out, errBad("InvalidQueryParameter", "The query parameter '%s' must be given once.", clip(k))
		}
		if len(v[0]) > 256 {
			return out, errBad("InvalidQueryParameter", "The query parameter '%s' is too long.", clip(k))
		}
	}
	var err error
	if out.From, err = parseAuditTime(q.Get("from")); err != nil {
		return out, errBad("InvalidQueryParameter", "The 'from' parameter is not an RFC 3339 time.")
	}
	if out.To, err = parseAuditTime(q.Get("to")); err != nil {
		return out, errBad("InvalidQueryParameter", "The 'to' parameter is not an RFC 3339 time.")
	}
	if !out.From.IsZero() && !out.To.IsZero() && !out.From.Before(out.To) {
		return out, errBad("InvalidQueryParameter", "The 'from' time must be before the 'to' time.")
	}
	out.Principal = q.Get("principal")
	out.Operation = q.Get("operation")
	switch r := audit.Result(strings.ToLower(q.Get("result"))); r {
	case "", audit.Allowed, audit.Denied, audit.Failed, audit.Unauthenticated:
		out.Result = r
	default:
		return out, errBad("InvalidQueryParameter", "The 'result' parameter must be allowed, denied, failed or unauthenticated.")
	}
	if v := q.Get("$top"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > maxAuditTop {
			return out, errBad("InvalidQueryParameter", "The '$top' parameter must be a whole number from 1 to %d.", maxAuditTop)
		}
		out.Top = n
	}
	if v := q.Get("$skiptoken"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || strconv.FormatInt(n, 10) != v {
			return out, errBad("InvalidQueryParameter", "The '$skiptoken' parameter is not a page token this API returned.")
		}
		out.Before = n
	}
	return out, nil
}

func parseAuditTime(v string) (time.Time, error) {
	if v == "" {
		return time.Time{}, nil
	}
	t, err := time.Parse(time.RFC3339Nano, v)
	if err != nil || t.Year() < 1 || t.Year() > 9999 {
		return time.Time{}, fmt.Errorf("bad time")
	}
	return t.UTC(), nil
}

// auditEventsWire is the events API's answer.
type auditEventsWire struct {
	Value    []any  `json:"value"`
	NextLink string `json:"nextLink,omitempty"`
}

func (c *call) auditEvents(rg, name string) error {
	v, err := c.vaultIn(c.sub, rg, name)
	if err != nil {
		return err
	}
	src := c.h.svc.auditSrc
	if src == nil {
		return c.notFound()
	}
	q, err := parseAuditQuery(c.q)
	if err != nil {
		return err
	}
	q.Vault, q.ResourceID = v.Name, audit.VaultResourceID(v.SubscriptionID, v.ResourceGroup, v.Name)
	inputs, done, err := src()
	if err != nil {
		return err
	}
	defer done()
	page, err := audit.QueryEvents(inputs, q)
	if err != nil {
		return err
	}
	out := auditEventsWire{Value: make([]any, len(page.Events))}
	for i, e := range page.Events {
		out.Value[i] = e
	}
	if page.Next > 0 {
		next := *c.r.URL
		qs := next.Query()
		qs.Set("$skiptoken", strconv.FormatInt(page.Next, 10))
		next.RawQuery = qs.Encode()
		next.Scheme, next.Host = "https", c.r.Host
		out.NextLink = next.String()
	}
	c.reply(http.StatusOK, out)
	return nil
}

// auditUsage is the key-usage report of one vault: per object, who used
// it, how and how often, first and last use, and denied attempts.
func (c *call) auditUsage(rg, name string) error {
	v, err := c.vaultIn(c.sub, rg, name)
	if err != nil {
		return err
	}
	src := c.h.svc.auditSrc
	if src == nil {
		return c.notFound()
	}
	for k := range c.q {
		if k != "api-version" && k != "from" && k != "to" {
			return errBad("InvalidQueryParameter", "The query parameter '%s' is not supported.", clip(k))
		}
	}
	f := audit.ReportFilter{Vault: v.Name}
	if f.Since, err = parseAuditTime(c.q.Get("from")); err != nil {
		return errBad("InvalidQueryParameter", "The 'from' parameter is not an RFC 3339 time.")
	}
	if f.Until, err = parseAuditTime(c.q.Get("to")); err != nil {
		return errBad("InvalidQueryParameter", "The 'to' parameter is not an RFC 3339 time.")
	}
	inputs, done, err := src()
	if err != nil {
		return err
	}
	defer done()
	rep, err := audit.UsageReport(inputs, f)
	if err != nil {
		return err
	}
	if rep == nil {
		rep = []audit.ObjectUsage{}
	}
	c.reply(http.StatusOK, map[string]any{"value": rep})
	return nil
}

// AuditLogsRead is the action the audit report API requires.
const AuditLogsRead authz.Action = "Microsoft.Insights/logs/read"
