package mgmt

import (
	"encoding/json"
	"net/http"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"
)

var testAlertDests = []string{"soc", "Grid"}

// TestParseAlertRuleBody: what the alert rule parser accepts, how it
// canonicalizes, and that it refuses addresses, vaults and unknown
// destinations with ARM's 400.
func TestParseAlertRuleBody(t *testing.T) {
	p, err := parseAlertRuleBody([]byte(`{"id":"x","name":"r","type":"t","location":"l","properties":{"severity":"HIGH","threshold":2,"window":"60s","groupBy":"Caller",
		"cooldown":"0s","destinations":["SOC","grid"],"filter":{"operations":["SecretGet"],"results":["Denied"],"statuses":[403]}}}`), testAlertDests)
	if err != nil {
		t.Fatal(err)
	}
	want := &AlertRuleProps{Severity: "high", Threshold: 2, Window: "1m0s", GroupBy: "caller", Destinations: []string{"soc", "Grid"},
		Filter: AlertRuleFilter{Operations: []string{"SecretGet"}, Results: []string{"denied"}, Statuses: []int{403}}}
	if !reflect.DeepEqual(p, want) {
		t.Fatalf("got %+v, want %+v", p, want)
	}
	p, err = parseAlertRuleBody([]byte(`{"properties":{"destinations":["soc"]}}`), testAlertDests)
	if err != nil || p.Threshold != 1 || p.Window != "1m0s" || p.Severity != "medium" {
		t.Fatalf("defaults: %+v %v", p, err)
	}
	for _, bad := range []string{
		``, `null`, `{}`, `{"properties":null}`, `[]`, `{"properties":{}}`,
		`{"properties":{"destinations":["https://10.0.0.1/hook"]}}`,
		`{"properties":{"destinations":["nope"]}}`,
		`{"properties":{"destinations":["soc"],"url":"https://10.0.0.1/"}}`,
		`{"properties":{"destinations":["soc"],"filter":{"vaults":["other"]}}}`,
		`{"properties":{"destinations":["soc"],"threshold":-1}}`,
		`{"properties":{"destinations":["soc"],"threshold":1.5}}`,
		`{"properties":{"destinations":["soc"],"window":"0s"}}`,
		`{"properties":{"destinations":["soc"],"window":"25h"}}`,
		`{"properties":{"destinations":["soc"],"cooldown":"-1s"}}`,
		`{"properties":{"destinations":["soc"],"groupBy":"tenant"}}`,
		`{"properties":{"destinations":["soc"],"severity":"critical"}}`,
		`{"properties":{"destinations":["soc"],"filter":{"results":["maybe"]}}}`,
		`{"properties":{"destinations":["soc"],"filter":{"statuses":[99]}}}`,
		`{"properties":{"destinations":["soc"],"filter":{"operations":[""]}}}`,
		`{"properties":{"destinations":["soc"]}} x`,
	} {
		_, err := parseAlertRuleBody([]byte(bad), testAlertDests)
		status, body, known := toARM(err)
		if err == nil || !known || status != http.StatusBadRequest || body.Error.Code == "" || body.Error.Message == "" {
			t.Errorf("%s: want an ARM 400, got %v (%d %+v)", bad, err, status, body)
		}
	}
	for _, name := range []string{"", "-a", "a/b", "a b", strings.Repeat("a", 65)} {
		if checkAlertRuleName(name) == nil {
			t.Errorf("name %q accepted", name)
		}
	}
	if checkAlertRuleName("Secret-get_denied.2") != nil {
		t.Error("a good name refused")
	}
}

// FuzzAlertRuleBody: the alert rule parser. A refused body is ARM's 400;
// an accepted one is within bounds, names only configured destinations
// (in the config's spelling), and is canonical: written out as a body and
// parsed again, it reads back the same.
func FuzzAlertRuleBody(f *testing.F) {
	for _, s := range []string{`{"properties":{"destinations":["soc"]}}`,
		`{"properties":{"severity":"Low","threshold":3,"window":"90s","groupBy":"caller+ip","cooldown":"10m","destinations":["GRID"],
		"filter":{"operations":["Secret*"],"results":["allowed"],"statuses":[401,403],"callers":["c"],"objects":["https://v/secrets/"],"ips":["1.2.3.4"],"services":["vault"]}}}`,
		`{"properties":{"destinations":["x"]}}`, `{"properties":{"destinations":["soc"],"filter":{"vaults":["v"]}}}`, `{}`, `"x"`,
		`{"properties":{"destinations":[],"filter":{"results":[]}}}`, `{"properties":{"description":"\xff","destinations":["soc"]}}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, raw []byte) {
		p, err := parseAlertRuleBody(raw, testAlertDests)
		if err != nil {
			status, body, known := toARM(err)
			if !known || status != http.StatusBadRequest || body.Error.Code == "" {
				t.Fatalf("%q: refused with %d %+v", raw, status, body)
			}
			return
		}
		w, werr := time.ParseDuration(p.Window)
		if p.Threshold < 1 || p.Threshold > maxAlertThreshold || werr != nil || w < time.Second || w > maxAlertWindow ||
			!slices.Contains([]string{"high", "medium", "low"}, p.Severity) || len(p.Destinations) == 0 {
			t.Fatalf("%q: out of bounds %+v", raw, p)
		}
		for _, d := range p.Destinations {
			if !slices.Contains(testAlertDests, d) {
				t.Fatalf("%q: destination %q is not configured", raw, d)
			}
		}
		again, err := json.Marshal(map[string]any{"properties": p})
		if err != nil {
			t.Fatal(err)
		}
		p2, err := parseAlertRuleBody(again, testAlertDests)
		if err != nil || !reflect.DeepEqual(p, p2) {
			t.Fatalf("%q: %+v reads back as %+v (%v)", raw, p, p2, err)
		}
	})
}
