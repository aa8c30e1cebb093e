package mgmt

import (
	"net/http"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/audit"
)

// FuzzAuditQuery: the audit report API's query parameters. A refused query
// is ARM's 400 InvalidQueryParameter; an accepted one is within bounds and
// reads back the same when written out again as parameters.
func FuzzAuditQuery(f *testing.F) {
	for _, s := range []string{"", "api-version=2026-01-01", "$top=5&$skiptoken=42", "from=2026-01-01T00:00:00Z&to=2026-02-01T00:00:00.5%2B02:00",
		"principal=alice%40corp.example&operation=SecretGet&result=Denied", "$top=0", "result=x", "from=2026-02-01T00:00:00Z&to=2026-01-01T00:00:00Z",
		"$skiptoken=007", "x=1", "operation=a&operation=b", "from=0000-01-01T00:00:00Z"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, raw string) {
		vals, err := url.ParseQuery(raw)
		if err != nil {
			return
		}
		q, err := parseAuditQuery(vals)
		if err != nil {
			status, body, known := toARM(err)
			if !known || status != http.StatusBadRequest || body.Error.Code != "InvalidQueryParameter" {
				t.Fatalf("%q: refused with %d %+v", raw, status, body)
			}
			return
		}
		if q.Top < 1 || q.Top > maxAuditTop || q.Before < 0 {
			t.Fatalf("%q: out of bounds %+v", raw, q)
		}
		if !q.From.IsZero() && !q.To.IsZero() && !q.From.Before(q.To) {
			t.Fatalf("%q: from %v not before to %v", raw, q.From, q.To)
		}
		switch q.Result {
		case "", audit.Allowed, audit.Denied, audit.Failed, audit.Unauthenticated:
		default:
			t.Fatalf("%q: result %q", raw, q.Result)
		}
		// Written out and read again: the same query.
		again := url.Values{"$top": {strconv.Itoa(q.Top)}}
		for k, v := range map[string]string{"principal": q.Principal, "operation": q.Operation, "result": string(q.Result),
			"from": timeParam(q.From), "to": timeParam(q.To)} {
			if v != "" {
				again.Set(k, v)
			}
		}
		if q.Before > 0 {
			again.Set("$skiptoken", strconv.FormatInt(q.Before, 10))
		}
		q2, err := parseAuditQuery(again)
		if err != nil || q2 != q {
			t.Fatalf("%q: %+v reads back as %+v (%v)", raw, q, q2, err)
		}
	})
}

func timeParam(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.Format(time.RFC3339Nano)
}
