package mgmt

import (
	"encoding/json"
	"reflect"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/authz"
)

const (
	ten = "11111111-1111-1111-1111-111111111111"
	obj = "22222222-2222-2222-2222-222222222222"
	app = "33333333-3333-3333-3333-333333333333"
)

func TestMergePolicies(t *testing.T) {
	base := []authz.AccessPolicy{{TenantID: ten, ObjectID: obj, Secrets: []string{"get"}}}
	in := []authz.AccessPolicy{{TenantID: ten, ObjectID: obj, Secrets: []string{"list", "GET"}, Keys: []string{"wrapKey"}}}
	added := mergePolicies(base, in, "add")
	if len(added) != 1 || !reflect.DeepEqual(added[0].Secrets, []string{"get", "list"}) || !reflect.DeepEqual(added[0].Keys, []string{"wrapKey"}) {
		t.Fatalf("add: %+v", added)
	}
	if len(base[0].Secrets) != 1 {
		t.Fatal("add changed its input")
	}
	// The compound entry is a different entry.
	compound := []authz.AccessPolicy{{TenantID: ten, ObjectID: obj, ApplicationID: app, Secrets: []string{"get"}}}
	if got := mergePolicies(added, compound, "add"); len(got) != 2 {
		t.Fatalf("compound add: %+v", got)
	}
	replaced := mergePolicies(added, []authz.AccessPolicy{{TenantID: ten, ObjectID: obj, Certificates: []string{"list"}}}, "replace")
	if len(replaced) != 1 || replaced[0].Secrets != nil || !reflect.DeepEqual(replaced[0].Certificates, []string{"list"}) {
		t.Fatalf("replace: %+v", replaced)
	}
	removed := mergePolicies(added, []authz.AccessPolicy{{TenantID: ten, ObjectID: obj, Secrets: []string{"list"}}}, "remove")
	if len(removed) != 1 || !reflect.DeepEqual(removed[0].Secrets, []string{"get"}) {
		t.Fatalf("remove some: %+v", removed)
	}
	if got := mergePolicies(removed, []authz.AccessPolicy{{TenantID: ten, ObjectID: obj, Secrets: []string{"get"}, Keys: []string{"wrapkey"}}}, "remove"); len(got) != 0 {
		t.Fatalf("remove all: %+v", got)
	}
	if got := mergePolicies(added, []authz.AccessPolicy{{TenantID: ten, ObjectID: obj}}, "remove"); len(got) != 0 {
		t.Fatalf("remove entry: %+v", got)
	}
}

func TestParseAccessPolicies(t *testing.T) {
	ok := []apWire{{TenantID: ten, ObjectID: obj, ApplicationID: new(string), Permissions: permWire{Secrets: []string{"Get", "list"}, Keys: []string{"wrapKey"}}}}
	got, err := parseAccessPolicies(ok)
	if err != nil || got[0].ApplicationID != "" || len(got[0].Secrets) != 2 {
		t.Fatalf("%v %+v", err, got)
	}
	for _, bad := range [][]apWire{
		{{TenantID: "x", ObjectID: obj}},
		{{TenantID: ten, ObjectID: "y"}},
		{{TenantID: ten, ObjectID: obj, Permissions: permWire{Secrets: []string{"wrapKey"}}}},
		{{TenantID: ten, ObjectID: obj, Permissions: permWire{Keys: []string{"everything"}}}},
	} {
		if _, err := parseAccessPolicies(bad); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
	many := make([]apWire, maxAccessPolicies+1)
	for i := range many {
		many[i] = apWire{TenantID: ten, ObjectID: obj}
	}
	if _, err := parseAccessPolicies(many); err == nil {
		t.Error("1025 access policies accepted")
	}
}

func TestParseISODuration(t *testing.T) {
	for s, want := range map[string]time.Duration{"PT8H": 8 * time.Hour, "PT30M": 30 * time.Minute, "P1D": 24 * time.Hour,
		"P1DT2H": 26 * time.Hour, "pt90s": 90 * time.Second} {
		if got, err := ParseISODuration(s); err != nil || got != want {
			t.Errorf("%s: %v %v", s, got, err)
		}
	}
	for _, s := range []string{"", "P", "PT", "8H", "PT-1H", "P1Y", "PT0S"} {
		if _, err := ParseISODuration(s); err == nil {
			t.Errorf("%q accepted", s)
		}
	}
}

func TestAPIVersions(t *testing.T) {
	for _, v := range []string{"2025-05-01", "2026-02-01", "2015-11-01", "2022-04-01", "2024-12-01-preview", "2020-10-01-preview.1"} {
		if !apiVersionRE.MatchString(v) {
			t.Errorf("%s refused", v)
		}
	}
	for _, v := range []string{"", "7.4", "2025-13-01", "2025-05-01x", "latest"} {
		if apiVersionRE.MatchString(v) {
			t.Errorf("%s accepted", v)
		}
	}
}

// FuzzVaultRequest feeds arbitrary bodies through the decoder and every
// validator of PUT/PATCH vault and accessPolicies bodies: no panic, and
// whatever validates stays within the limits.
func FuzzVaultRequest(f *testing.F) {
	f.Add([]byte(`{"location":"westus","properties":{"tenantId":"` + ten + `","sku":{"family":"A","name":"standard"},"accessPolicies":[{"tenantId":"` + ten + `","objectId":"` + obj + `","permissions":{"secrets":["get"]}}],"networkAcls":{"defaultAction":"Deny","bypass":"None","ipRules":[{"value":"10.0.0.0/8"}]}}}`))
	f.Add([]byte(`{"properties":{"accessPolicies":null}}`))
	f.Add([]byte(`[]`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var body vaultRequest
		if decodeBody(raw, &body) != nil || body.Properties == nil {
			return
		}
		if body.Properties.AccessPolicies != nil {
			aps, err := parseAccessPolicies(*body.Properties.AccessPolicies)
			if err == nil && len(aps) > maxAccessPolicies {
				t.Fatal("too many access policies accepted")
			}
		}
		if body.Properties.NetworkACLs != nil {
			var p VaultProps
			if parseNetwork(body.Properties.NetworkACLs, &p) == nil {
				for _, r := range p.IPRules {
					if _, err := authz.ParseIPRule(r); err != nil {
						t.Fatalf("accepted IP rule %q does not parse", r)
					}
				}
			}
		}
		parseTags(body.Tags)
		if _, err := json.Marshal(body); err != nil {
			t.Fatal(err)
		}
	})
}

// FuzzScheduleRequest feeds arbitrary PIM schedule request bodies.
func FuzzScheduleRequest(f *testing.F) {
	f.Add([]byte(`{"properties":{"principalId":"` + obj + `","requestType":"SelfActivate","scheduleInfo":{"expiration":{"type":"AfterDuration","duration":"PT1H"}}}}`))
	f.Fuzz(func(t *testing.T, raw []byte) {
		var body scheduleRequestBody
		if decodeBody(raw, &body) != nil || body.Properties == nil {
			return
		}
		now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
		start, end, _, err := window(now, body.Properties.ScheduleInfo)
		if err == nil && end != nil && !end.After(start) && body.Properties.ScheduleInfo.Expiration != nil &&
			body.Properties.ScheduleInfo.Expiration.Type != "" {
			t.Fatalf("window ends before it starts: %v %v", start, end)
		}
	})
}
