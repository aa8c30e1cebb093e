package console

import (
	"encoding/json"
	"net/http"
	"regexp"
	"strconv"
	"strings"

	"github.com/keyward/keyward/internal/route"
)

// Vaults: the list (home), create, and a vault's properties (SKU, soft
// delete, purge protection, access model, network rules), all through ARM.
func init() {
	const get, post = http.MethodGet, http.MethodPost
	Register(&Page{Key: "vaults", Title: "Vaults", Scope: Global, Order: 10, Routes: []route.Route[handler, string]{
		{Method: get, Pattern: "/ui/", Op: "ConsoleVaultList", Handle: vaultList},
		{Method: get, Pattern: "/ui/vaults/open", Op: "ConsoleVaultOpen", Handle: vaultOpen},
		{Method: post, Pattern: "/ui/vaults", Op: "ConsoleVaultCreate", Handle: vaultCreate},
	}})
	Register(&Page{Key: "properties", Title: "Properties", Scope: Vault, Order: 10, Routes: []route.Route[handler, string]{
		{Method: get, Pattern: "/ui/vaults/{vault}", Op: "ConsoleVaultHome", Handle: func(q *req) error {
			http.Redirect(q.w, q.r, "/ui/vaults/"+q.p["vault"]+"/secrets", http.StatusSeeOther)
			return nil
		}},
		{Method: get, Pattern: "/ui/vaults/{vault}/properties", Op: "ConsoleVaultProperties", Handle: vaultProperties},
		{Method: post, Pattern: "/ui/vaults/{vault}/properties", Op: "ConsoleVaultUpdate", Handle: vaultUpdate},
	}})
}

type armList struct {
	Value    []map[string]any `json:"value"`
	NextLink string           `json:"nextLink"`
}

type vaultRow struct {
	Name, ID, Location, SKU, Subscription, ResourceGroup string
	Props                                                map[string]any
	IPRules                                              string
	DefaultAction                                        string
}

func toVault(v map[string]any) vaultRow {
	r := vaultRow{ID: str(v["id"]), Name: str(v["name"]), Location: str(v["location"])}
	parts := strings.Split(r.ID, "/")
	if len(parts) > 4 {
		r.Subscription, r.ResourceGroup = parts[2], parts[4]
	}
	r.Props, _ = v["properties"].(map[string]any)
	if sku, ok := r.Props["sku"].(map[string]any); ok {
		r.SKU = str(sku["name"])
	}
	if acl, ok := r.Props["networkAcls"].(map[string]any); ok {
		r.DefaultAction = str(acl["defaultAction"])
		var ips []string
		rules, _ := acl["ipRules"].([]any)
		for _, x := range rules {
			if m, ok := x.(map[string]any); ok {
				ips = append(ips, str(m["value"]))
			}
		}
		r.IPRules = strings.Join(ips, ", ")
	}
	if r.DefaultAction == "" {
		r.DefaultAction = "Allow"
	}
	return r
}

func str(v any) string {
	s, _ := v.(string)
	return s
}

type vaultListView struct {
	Vaults []vaultRow
	Subs   []map[string]any
	Groups []string
	Notice string
}

// vaults lists the vaults the user may see through ARM.
func (q *req) vaults() (*vaultListView, error) {
	var subs armList
	if err := q.arm(http.MethodGet, "/subscriptions", armAPIVersion, nil, &subs); err != nil {
		return nil, err
	}
	v := &vaultListView{Subs: subs.Value}
	for _, s := range subs.Value {
		var vs armList
		if err := q.arm(http.MethodGet, "/subscriptions/"+str(s["subscriptionId"])+"/providers/Microsoft.KeyVault/vaults", armAPIVersion, nil, &vs); err != nil {
			v.Notice = "Some vaults could not be listed: " + err.(*apiError).Message
			continue
		}
		for _, x := range vs.Value {
			v.Vaults = append(v.Vaults, toVault(x))
		}
		var rgs armList
		if q.arm(http.MethodGet, "/subscriptions/"+str(s["subscriptionId"])+"/resourceGroups", armAPIVersion, nil, &rgs) == nil {
			for _, g := range rgs.Value {
				v.Groups = append(v.Groups, str(s["subscriptionId"])+"/"+str(g["name"]))
			}
		}
	}
	return v, nil
}

func vaultList(q *req) error {
	v, err := q.vaults()
	if err != nil {
		return err
	}
	return q.render("vaults", http.StatusOK, "Vaults", v)
}

var vaultNameRE = regexp.MustCompile(`^[a-zA-Z][a-zA-Z0-9-]{1,22}[a-zA-Z0-9]$`)

func vaultOpen(q *req) error {
	name := strings.ToLower(strings.TrimSpace(q.r.URL.Query().Get("name")))
	if !vaultNameRE.MatchString(name) {
		return &apiError{Status: http.StatusBadRequest, Code: "VaultNameInvalid", Message: "A vault name is 3-24 letters, digits and hyphens."}
	}
	http.Redirect(q.w, q.r, "/ui/vaults/"+name+"/secrets", http.StatusSeeOther)
	return nil
}

func vaultCreate(q *req) error {
	f := q.r.PostForm
	name := strings.TrimSpace(f.Get("name"))
	if !vaultNameRE.MatchString(name) {
		return &apiError{Status: http.StatusBadRequest, Code: "VaultNameInvalid", Message: "A vault name is 3-24 letters, digits and hyphens."}
	}
	sub, rg, ok := strings.Cut(f.Get("group"), "/")
	if !ok {
		return &apiError{Status: http.StatusBadRequest, Code: "ResourceGroupRequired", Message: "Choose a resource group."}
	}
	retention, _ := strconv.Atoi(cmpOr(f.Get("retention"), "90"))
	body := map[string]any{"location": cmpOr(f.Get("location"), "local"), "properties": map[string]any{
		"tenantId": q.s.tenant, "sku": map[string]any{"family": "A", "name": cmpOr(f.Get("sku"), "standard")},
		"enableRbacAuthorization": f.Get("rbac") == "on", "enableSoftDelete": true,
		"softDeleteRetentionInDays": retention, "accessPolicies": []any{},
	}}
	if f.Get("purge_protection") == "on" {
		body["properties"].(map[string]any)["enablePurgeProtection"] = true
	}
	if err := q.arm(http.MethodPut, "/subscriptions/"+sub+"/resourceGroups/"+rg+"/providers/Microsoft.KeyVault/vaults/"+name, armAPIVersion, body, nil); err != nil {
		return err
	}
	return q.redirect("/ui/vaults/"+strings.ToLower(name)+"/properties", "Vault "+name+" created.")
}

func cmpOr(a, b string) string {
	if a != "" {
		return a
	}
	return b
}

// findVault finds a vault's ARM resource by name among those the user may
// list.
func (q *req) findVault(name string) (*vaultRow, error) {
	v, err := q.vaults()
	if err != nil {
		return nil, err
	}
	for i := range v.Vaults {
		if strings.EqualFold(v.Vaults[i].Name, name) {
			return &v.Vaults[i], nil
		}
	}
	return nil, &apiError{Status: http.StatusNotFound, Code: "VaultNotFound",
		Message: "Vault " + name + " is not among the vaults you may read through the management plane. Its objects may still be open to you: use the tabs above."}
}

func vaultProperties(q *req) error {
	v, err := q.findVault(q.p["vault"])
	if err != nil {
		return err
	}
	raw, _ := json.MarshalIndent(v.Props, "", "  ")
	return q.render("properties", http.StatusOK, v.Name+": properties", map[string]any{"Vault": v, "JSON": string(raw)})
}

func vaultUpdate(q *req) error {
	v, err := q.findVault(q.p["vault"])
	if err != nil {
		return err
	}
	f := q.r.PostForm
	props := map[string]any{
		"sku":                     map[string]any{"family": "A", "name": cmpOr(f.Get("sku"), v.SKU)},
		"enableRbacAuthorization": f.Get("rbac") == "on",
	}
	if f.Get("purge_protection") == "on" {
		props["enablePurgeProtection"] = true
	}
	var ips []map[string]string
	for _, ip := range strings.FieldsFunc(f.Get("ip_rules"), func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' }) {
		ips = append(ips, map[string]string{"value": ip})
	}
	props["networkAcls"] = map[string]any{"defaultAction": cmpOr(f.Get("default_action"), "Allow"), "bypass": "AzureServices", "ipRules": ips}
	if err := q.arm(http.MethodPatch, v.ID, armAPIVersion, map[string]any{"properties": props}, nil); err != nil {
		return err
	}
	return q.redirect("/ui/vaults/"+q.p["vault"]+"/properties", "Properties saved.")
}
