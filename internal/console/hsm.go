package console

import (
	"encoding/json"
	"net/http"
	"net/url"
	"regexp"
	"sort"
	"strings"

	"github.com/keyward/keyward/internal/route"
)

// Managed HSMs and key distribution, read-only: the pools the user may
// list through ARM (Microsoft.KeyVault/managedHSMs) with each pool's
// properties and keys (its data plane, with the user's token for the
// managed HSM audience, authorized by the pool's local RBAC); and the Key
// Management engine's keys, their distributions and the KMS providers
// (Vault's keymgmt API, with the user's management token). Changes stay
// with the CLI and the APIs.
func init() {
	const get = http.MethodGet
	Register(&Page{Key: "hsms", Title: "Managed HSMs", Scope: Global, Order: 20, Routes: []route.Route[handler, string]{
		{Method: get, Pattern: "/ui/hsms", Op: "ConsoleHSMList", Handle: hsmList},
		{Method: get, Pattern: "/ui/hsms/{pool}", Op: "ConsoleHSM", Handle: hsmPage},
	}})
	Register(&Page{Key: "keymgmt", Title: "Key distribution", Scope: Global, Order: 30, Routes: []route.Route[handler, string]{
		{Method: get, Pattern: "/ui/keymgmt", Op: "ConsoleKeyMgmt", Handle: keymgmtPage},
	}})
}

var poolNameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$`)

type poolRow struct {
	Name, ResourceGroup, SKU, Location, State, URI string
	PurgeProtection                                bool
	Admins                                         []string
}

type hsmListView struct {
	Pools  []poolRow
	Notice string
}

func (q *req) pools() (*hsmListView, error) {
	var subs armList
	if err := q.arm(http.MethodGet, "/subscriptions", armAPIVersion, nil, &subs); err != nil {
		return nil, err
	}
	v := &hsmListView{}
	for _, s := range subs.Value {
		var ps armList
		if err := q.arm(http.MethodGet, "/subscriptions/"+str(s["subscriptionId"])+"/providers/Microsoft.KeyVault/managedHSMs", armAPIVersion, nil, &ps); err != nil {
			v.Notice = "Some managed HSMs could not be listed: " + err.(*apiError).Message
			continue
		}
		for _, p := range ps.Value {
			props, _ := p["properties"].(map[string]any)
			sku, _ := p["sku"].(map[string]any)
			id := str(p["id"])
			row := poolRow{Name: str(p["name"]), Location: str(p["location"]), SKU: str(sku["name"]),
				State: str(props["provisioningState"]), URI: str(props["hsmUri"])}
			if i := strings.Index(strings.ToLower(id), "/resourcegroups/"); i >= 0 {
				row.ResourceGroup, _, _ = strings.Cut(id[i+len("/resourcegroups/"):], "/")
			}
			row.PurgeProtection, _ = props["enablePurgeProtection"].(bool)
			if admins, ok := props["initialAdminObjectIds"].([]any); ok {
				for _, a := range admins {
					row.Admins = append(row.Admins, str(a))
				}
			}
			v.Pools = append(v.Pools, row)
		}
	}
	sort.Slice(v.Pools, func(i, j int) bool { return v.Pools[i].Name < v.Pools[j].Name })
	return v, nil
}

func hsmList(q *req) error {
	v, err := q.pools()
	if err != nil {
		return err
	}
	return q.render("hsms", http.StatusOK, "Managed HSMs", v)
}

type hsmView struct {
	Pool   poolRow
	Keys   []map[string]any
	Notice string
}

func hsmPage(q *req) error {
	name := q.p["pool"]
	if !poolNameRE.MatchString(name) || q.c.cfg.PoolURL == nil {
		return &apiError{Status: http.StatusNotFound, Code: "ManagedHsmNotFound", Message: "There is no managed HSM by that name."}
	}
	v, err := q.pools()
	if err != nil {
		return err
	}
	hv := &hsmView{}
	found := false
	for _, p := range v.Pools {
		if strings.EqualFold(p.Name, name) {
			hv.Pool, found = p, true
		}
	}
	if !found {
		return &apiError{Status: http.StatusNotFound, Code: "ManagedHsmNotFound",
			Message: "Managed HSM " + name + " is not among the managed HSMs you may read through the management plane."}
	}
	var keys armList
	err = q.call(q.c.cfg.PoolResource, http.MethodGet, q.c.cfg.PoolURL(hv.Pool.Name)+"keys?api-version="+dataAPIVersion, nil, &keys)
	if err != nil {
		// The pool's local RBAC decides: say why, keep the properties.
		hv.Notice = "The keys could not be listed: " + err.(*apiError).Message
	}
	for _, k := range keys.Value {
		hv.Keys = append(hv.Keys, k)
	}
	return q.render("hsm", http.StatusOK, "Managed HSM "+hv.Pool.Name, hv)
}

type kmsKeyRow struct {
	Name, Type   string
	Latest       any
	Distribution []string
}

type keymgmtView struct {
	Keys   []kmsKeyRow
	KMS    []string
	Notice string
}

// vault calls the Key Management engine (Vault's API shape): a list with
// LIST semantics as GET ?list=true. A refusal is an *apiError with
// Vault's first error message.
func (q *req) vault(method, path string, out any) error {
	if q.c.cfg.KeymgmtURL == "" {
		return &apiError{Status: http.StatusNotFound, Code: "NotFound", Message: "This server has no Key Management engine."}
	}
	tok, err := q.token(q.c.cfg.ManagementResource)
	if err != nil {
		return err
	}
	res, err := q.send(method, strings.TrimSuffix(q.c.cfg.KeymgmtURL, "/")+path, tok, "", nil)
	if err != nil {
		return err
	}
	if res.status == http.StatusNotFound && strings.Contains(path, "list=true") {
		return nil // Vault answers an empty list with 404
	}
	if res.status >= 300 {
		var e struct {
			Errors []string `json:"errors"`
		}
		json.Unmarshal(res.body.Bytes(), &e)
		msg := http.StatusText(res.status)
		if len(e.Errors) > 0 {
			msg = e.Errors[0]
		}
		return &apiError{Status: res.status, Code: http.StatusText(res.status), Message: msg}
	}
	return json.Unmarshal(res.body.Bytes(), out)
}

func keymgmtPage(q *req) error {
	kv := &keymgmtView{}
	var keys struct {
		Data struct {
			Keys []string `json:"keys"`
		} `json:"data"`
	}
	if err := q.vault(http.MethodGet, "/v1/keymgmt/key?list=true", &keys); err != nil {
		return err
	}
	for _, name := range keys.Data.Keys {
		row := kmsKeyRow{Name: name}
		var k struct {
			Data map[string]any `json:"data"`
		}
		if err := q.vault(http.MethodGet, "/v1/keymgmt/key/"+url.PathEscape(name), &k); err == nil {
			row.Type, row.Latest = str(k.Data["type"]), k.Data["latest_version"]
		}
		var d struct {
			Data struct {
				Keys []string `json:"keys"`
			} `json:"data"`
		}
		if err := q.vault(http.MethodGet, "/v1/keymgmt/key/"+url.PathEscape(name)+"/kms?list=true", &d); err != nil {
			kv.Notice = "Some distributions could not be read: " + err.(*apiError).Message
		}
		row.Distribution = d.Data.Keys
		kv.Keys = append(kv.Keys, row)
	}
	var kms struct {
		Data struct {
			Keys []string `json:"keys"`
		} `json:"data"`
	}
	if err := q.vault(http.MethodGet, "/v1/keymgmt/kms?list=true", &kms); err != nil {
		kv.Notice = "The KMS providers could not be listed: " + err.(*apiError).Message
	}
	kv.KMS = kms.Data.Keys
	return q.render("keymgmt", http.StatusOK, "Key distribution", kv)
}
