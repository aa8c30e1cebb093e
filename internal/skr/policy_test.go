package skr

import (
	"encoding/json"
	"errors"
	"testing"
)

const maa = "https://sharedeus.eus.attest.azure.net"

func claims(t *testing.T, s string) map[string]any {
	t.Helper()
	var m map[string]any
	if err := json.Unmarshal([]byte(s), &m); err != nil {
		t.Fatal(err)
	}
	return m
}

func TestEvaluate(t *testing.T) {
	pol := `{"version":"1.0.0","anyOf":[{"authority":"` + maa + `/","allOf":[
		{"claim":"x-ms-isolation-tee.x-ms-attestation-type","equals":"sevsnpvm"},
		{"claim":"x-ms-isolation-tee.x-ms-compliance-status","equals":"azure-compliant-cvm"},
		{"anyOf":[{"claim":"svn","greaterOrEquals":3},{"claim":"debug","equals":true}]},
		{"claim":"x-ms-ver","exists":true},
		{"claim":"secureboot","notEquals":false}]}]}`
	p, err := ParsePolicy([]byte(pol))
	if err != nil {
		t.Fatal(err)
	}
	good := `{"x-ms-isolation-tee":{"x-ms-attestation-type":"sevsnpvm","x-ms-compliance-status":"azure-compliant-cvm"},"svn":3,"x-ms-ver":"1.0","secureboot":true}`
	if d := p.Evaluate(maa, claims(t, good)); !d.Allowed {
		t.Fatalf("good claims denied: %s", d.Reason)
	}
	for name, c := range map[string]string{
		"wrong type":   `{"x-ms-isolation-tee":{"x-ms-attestation-type":"tdxvm","x-ms-compliance-status":"azure-compliant-cvm"},"svn":3,"x-ms-ver":"1","secureboot":true}`,
		"low svn":      `{"x-ms-isolation-tee":{"x-ms-attestation-type":"sevsnpvm","x-ms-compliance-status":"azure-compliant-cvm"},"svn":2,"x-ms-ver":"1","secureboot":true}`,
		"svn a string": `{"x-ms-isolation-tee":{"x-ms-attestation-type":"sevsnpvm","x-ms-compliance-status":"azure-compliant-cvm"},"svn":"9","x-ms-ver":"1","secureboot":true}`,
		"no ver":       `{"x-ms-isolation-tee":{"x-ms-attestation-type":"sevsnpvm","x-ms-compliance-status":"azure-compliant-cvm"},"svn":3,"secureboot":true}`,
		"secureboot":   `{"x-ms-isolation-tee":{"x-ms-attestation-type":"sevsnpvm","x-ms-compliance-status":"azure-compliant-cvm"},"svn":3,"x-ms-ver":"1","secureboot":false}`,
	} {
		if d := p.Evaluate(maa, claims(t, c)); d.Allowed || d.Reason == "" {
			t.Fatalf("%s: allowed (%q)", name, d.Reason)
		}
	}
	if d := p.Evaluate("https://evil.example", claims(t, good)); d.Allowed {
		t.Fatal("another issuer allowed")
	}
	// debug=true satisfies the inner anyOf despite a low svn.
	dbg := `{"x-ms-isolation-tee":{"x-ms-attestation-type":"sevsnpvm","x-ms-compliance-status":"azure-compliant-cvm"},"svn":1,"debug":true,"x-ms-ver":"1","secureboot":true}`
	if d := p.Evaluate(maa, claims(t, dbg)); !d.Allowed {
		t.Fatal(d.Reason)
	}
	// A literal dotted claim name wins over the path.
	p2, _ := ParsePolicy([]byte(`{"version":"1.0.0","anyOf":[{"authority":"a","anyOf":[{"claim":"a.b","less":10},{"claim":"n","lessOrEquals":-1.5}]}]}`))
	if !p2.Evaluate("a", claims(t, `{"a.b":9,"a":{"b":11}}`)).Allowed || p2.Evaluate("a", claims(t, `{"a":{"b":11},"n":0}`)).Allowed ||
		!p2.Evaluate("a", claims(t, `{"n":-2}`)).Allowed {
		t.Fatal("less/lessOrEquals")
	}
}

func TestParsePolicyRefuses(t *testing.T) {
	for _, bad := range []string{
		``, `[]`, `{}`, `{"version":"2.0","anyOf":[{"authority":"a","anyOf":[{"claim":"c","equals":"x"}]}]}`,
		`{"version":"1.0.0"}`,
		`{"version":"1.0.0","anyOf":[]}`,
		`{"version":"1.0.0","anyOf":[{"authority":"a","anyOf":[{"claim":"c","equals":"x"}]}],"allOf":[]}`,
		`{"version":"1.0.0","anyOf":[{"anyOf":[{"claim":"c","equals":"x"}]}]}`,
		`{"version":"1.0.0","anyOf":[{"authority":"a","anyOf":[{"claim":"c","like":"x"}]}]}`,
		`{"version":"1.0.0","anyOf":[{"authority":"a","anyOf":[{"claim":"c","equals":"x","exists":true}]}]}`,
		`{"version":"1.0.0","anyOf":[{"authority":"a","anyOf":[{"claim":"c","exists":"yes"}]}]}`,
		`{"version":"1.0.0","anyOf":[{"authority":"a","anyOf":[{"claim":"c","greater":true}]}]}`,
		`{"version":"1.0.0","anyOf":[{"authority":"a","anyOf":[{"claim":"c","equals":{"x":1}}]}]}`,
		`{"version":"1.0.0","anyOf":[{"authority":"a","anyOf":[{"claim":"c","equals":1e999}]}]}`,
		`{"version":"1.0.0","anyOf":[{"authority":"a","anyOf":[{"claim":"","equals":"x"}]}]}`,
		`{"version":"1.0.0","anyOf":[{"authority":"a","anyOf":[{"anyOf":[{"anyOf":[{"anyOf":[{"anyOf":[{"anyOf":[{"anyOf":[{"anyOf":[{"anyOf":[{"claim":"c","equals":1}]}]}]}]}]}]}]}]}]}]}`,
		`{"version":"1.0.0","anyOf":[{"authority":"a","anyOf":[{"claim":"c","equals":"x"}]}]} {}`,
	} {
		if _, err := ParsePolicy([]byte(bad)); !errors.Is(err, ErrPolicy) {
			t.Fatalf("%s: %v", bad, err)
		}
	}
}

// FuzzPolicy: ParsePolicy never panics and only fails with ErrPolicy; an
// accepted policy's canonical form parses to the same canonical form, and
// evaluating it over claims built from the same input decides the same
// way for the original and the re-parsed policy.
func FuzzPolicy(f *testing.F) {
	f.Add([]byte(`{"version":"1.0.0","anyOf":[{"authority":"a","allOf":[{"claim":"x.y","equals":"s"},{"anyOf":[{"claim":"n","greater":1},{"claim":"b","exists":false}]}]}]}`), []byte(`{"x":{"y":"s"},"n":2}`))
	f.Add([]byte(`{"version":"1.0.2","allOf":[{"authority":"a","anyOf":[{"claim":"n","lessOrEquals":-0.5},{"claim":"t","notEquals":true}]}]}`), []byte(`{"n":-1,"t":true}`))
	f.Fuzz(func(t *testing.T, pol, cl []byte) {
		p, err := ParsePolicy(pol)
		if err != nil {
			if !errors.Is(err, ErrPolicy) {
				t.Fatalf("error %v does not wrap ErrPolicy", err)
			}
			return
		}
		c1, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		p2, err := ParsePolicy(c1)
		if err != nil {
			t.Fatalf("canonical form does not parse: %v\n%s", err, c1)
		}
		c2, _ := json.Marshal(p2)
		if string(c1) != string(c2) {
			t.Fatalf("canonical form changed:\n%s\n%s", c1, c2)
		}
		var claims map[string]any
		if json.Unmarshal(cl, &claims) != nil {
			return
		}
		for _, g := range p.Groups {
			if p.Evaluate(g.Authority, claims).Allowed != p2.Evaluate(g.Authority, claims).Allowed {
				t.Fatal("re-parsed policy decides differently")
			}
		}
	})
}
