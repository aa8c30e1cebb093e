package console

import (
	"net/http"
	"net/url"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/route"
)

// Audit: the vault's audit events (filterable, newest first, paged), its
// key-usage report, its top callers and denied requests — read through the
// management plane's audit report API (Keyward.Audit, docs/CONFIG.md
// "Audit report API"), which ARM authorizes with the user's own token
// (Microsoft.Insights/logs/read), as for any client. The page only reads:
// its filters are a GET form, so it needs no CSRF token.
func init() {
	Register(&Page{Key: "audit", Title: "Audit", Scope: Vault, Order: 70, Routes: []route.Route[handler, string]{
		{Method: http.MethodGet, Pattern: "/ui/vaults/{vault}/audit", Op: "ConsoleAudit", Handle: auditPage},
	}})
}

const auditAPIVersion = "2026-01-01"

type auditEvent struct {
	Time            time.Time `json:"time"`
	OperationName   string    `json:"operationName"`
	ResultSignature string    `json:"resultSignature"`
	CallerIPAddress string    `json:"callerIpAddress"`
	Status          int       `json:"status"`
	Result          string    `json:"result"`
	Reason          string    `json:"reason"`
	ObjectID        string    `json:"object_id"`
	Caller          struct {
		ObjectID string `json:"oid"`
		AppID    string `json:"appid"`
		UPN      string `json:"upn"`
	} `json:"caller"`
}

type auditUsage struct {
	Object  string `json:"object"`
	Callers []struct {
		ObjectID   string         `json:"callerObjectId"`
		AppID      string         `json:"callerAppId"`
		Operations map[string]int `json:"operations"`
		Count      int            `json:"count"`
		Denied     int            `json:"denied"`
		First      time.Time      `json:"firstUse"`
		Last       time.Time      `json:"lastUse"`
	} `json:"callers"`
}

type usageRow struct {
	Object, Caller, Operations string
	Count, Denied              int
	First, Last                string
}

type callerRow struct {
	Caller        string
	Count, Denied int
}

type auditView struct {
	From, To, Principal, Operation, Result string
	Results                                []string
	Events                                 []auditEvent
	Older                                  string // link to the next page
	Usage                                  []usageRow
	Top                                    []callerRow
	Max                                    int
	Denied                                 int
}

// localTime turns a datetime-local value (taken as UTC) into RFC 3339;
// anything else goes to the API as typed, which refuses what it cannot read.
func localTime(v string) string {
	if t, err := time.Parse("2006-01-02T15:04", v); err == nil {
		return t.UTC().Format(time.RFC3339)
	}
	return v
}

func auditPage(q *req) error {
	v, err := q.findVault(q.p["vault"])
	if err != nil {
		return err
	}
	in := q.r.URL.Query()
	av := &auditView{From: in.Get("from"), To: in.Get("to"), Principal: strings.TrimSpace(in.Get("principal")),
		Operation: strings.TrimSpace(in.Get("operation")), Result: in.Get("result"),
		Results: []string{"", "allowed", "denied", "failed", "unauthenticated"}}
	filters := url.Values{}
	for k, val := range map[string]string{"from": localTime(av.From), "to": localTime(av.To), "principal": av.Principal,
		"operation": av.Operation, "result": av.Result, "$skiptoken": in.Get("before")} {
		if val != "" {
			filters.Set(k, val)
		}
	}
	filters.Set("$top", "50")
	var page struct {
		Value    []auditEvent `json:"value"`
		NextLink string       `json:"nextLink"`
	}
	if err := q.arm(http.MethodGet, v.ID+"/providers/Keyward.Audit/events?"+filters.Encode(), auditAPIVersion, nil, &page); err != nil {
		return err
	}
	av.Events = page.Value
	if page.NextLink != "" {
		if u, err := url.Parse(page.NextLink); err == nil {
			older := url.Values{}
			for _, k := range []string{"from", "to", "principal", "operation", "result"} {
				if in.Get(k) != "" {
					older.Set(k, in.Get(k))
				}
			}
			older.Set("before", u.Query().Get("$skiptoken"))
			av.Older = "?" + older.Encode()
		}
	}
	// The key-usage report over the same time range.
	usageQ := url.Values{}
	for _, k := range []string{"from", "to"} {
		if val := filters.Get(k); val != "" {
			usageQ.Set(k, val)
		}
	}
	var usage struct {
		Value []auditUsage `json:"value"`
	}
	if err := q.arm(http.MethodGet, v.ID+"/providers/Keyward.Audit/usage?"+usageQ.Encode(), auditAPIVersion, nil, &usage); err != nil {
		return err
	}
	callers := map[string]*callerRow{}
	for _, o := range usage.Value {
		for _, c := range o.Callers {
			who := c.ObjectID
			if who == "" {
				who = c.AppID
			}
			if who == "" {
				who = "(unauthenticated)"
			}
			var ops []string
			for op, n := range c.Operations {
				ops = append(ops, op+" ×"+strconv.Itoa(n))
			}
			sort.Strings(ops)
			av.Usage = append(av.Usage, usageRow{Object: o.Object, Caller: who, Operations: strings.Join(ops, ", "), Count: c.Count,
				Denied: c.Denied, First: c.First.UTC().Format("2006-01-02 15:04"), Last: c.Last.UTC().Format("2006-01-02 15:04")})
			cr := callers[who]
			if cr == nil {
				cr = &callerRow{Caller: who}
				callers[who] = cr
			}
			cr.Count += c.Count
			cr.Denied += c.Denied
			av.Denied += c.Denied
		}
	}
	for _, c := range callers {
		av.Top = append(av.Top, *c)
	}
	sort.Slice(av.Top, func(i, j int) bool {
		if av.Top[i].Count != av.Top[j].Count {
			return av.Top[i].Count > av.Top[j].Count
		}
		return av.Top[i].Caller < av.Top[j].Caller
	})
	av.Top = av.Top[:min(len(av.Top), 10)]
	if len(av.Top) > 0 {
		av.Max = av.Top[0].Count
	}
	return q.render("audit", http.StatusOK, q.p["vault"]+": audit", av)
}
