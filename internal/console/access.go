package console

import (
	"net/http"
	"regexp"
	"sort"
	"strings"

	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/route"
)

// Access: role assignments at the vault, its resource group and its
// subscription (with the built-in roles' descriptions), the vault's access
// policies, and PIM eligibility — all ARM Microsoft.Authorization calls,
// authorized by ARM as for any client.
func init() {
	const get, post = http.MethodGet, http.MethodPost
	Register(&Page{Key: "access", Title: "Access", Scope: Vault, Order: 50, Routes: []route.Route[handler, string]{
		{Method: get, Pattern: "/ui/vaults/{vault}/access", Op: "ConsoleAccess", Handle: accessPage},
		{Method: post, Pattern: "/ui/vaults/{vault}/access", Op: "ConsoleRoleAssign", Handle: accessAssign},
		{Method: post, Pattern: "/ui/vaults/{vault}/access/{id}/delete", Op: "ConsoleRoleUnassign", Handle: accessDelete},
		{Method: post, Pattern: "/ui/vaults/{vault}/accesspolicies/{kind}", Op: "ConsoleAccessPolicy", Handle: accessPolicy},
	}})
	Register(&Page{Key: "deleted", Title: "Deleted objects", Scope: Vault, Order: 60, Routes: []route.Route[handler, string]{
		{Method: get, Pattern: "/ui/vaults/{vault}/deleted", Op: "ConsoleDeletedList", Handle: deletedList},
		{Method: post, Pattern: "/ui/vaults/{vault}/deleted/{kind}/{name}/recover", Op: "ConsoleDeletedRecover", Handle: deletedAction(true)},
		{Method: post, Pattern: "/ui/vaults/{vault}/deleted/{kind}/{name}/purge", Op: "ConsoleDeletedPurge", Handle: deletedAction(false)},
	}})
}

type roleRow struct{ ID, GUID, Name, Description string }

type assignmentRow struct {
	ID, Name, Role, Principal, PrincipalType, Scope string
}

type accessView struct {
	ScopeKind string
	Scope     string
	Scopes    []string
	Roles     []roleRow
	Assigned  []assignmentRow
	Policies  []map[string]any
	RBAC      bool
	Notice    string
}

// scopeFor is the ARM scope kind ("vault", "group", "subscription") of v.
func scopeFor(v *vaultRow, kind string) string {
	switch kind {
	case "subscription":
		return "/subscriptions/" + v.Subscription
	case "group":
		return "/subscriptions/" + v.Subscription + "/resourceGroups/" + v.ResourceGroup
	}
	return v.ID
}

func accessPage(q *req) error {
	v, err := q.findVault(q.p["vault"])
	if err != nil {
		return err
	}
	kind := q.r.URL.Query().Get("scope")
	if kind != "group" && kind != "subscription" {
		kind = "vault"
	}
	av := &accessView{ScopeKind: kind, Scope: scopeFor(v, kind), Scopes: []string{"vault", "group", "subscription"}}
	av.RBAC, _ = v.Props["enableRbacAuthorization"].(bool)
	if pols, ok := v.Props["accessPolicies"].([]any); ok {
		for _, p := range pols {
			if m, ok := p.(map[string]any); ok {
				av.Policies = append(av.Policies, m)
			}
		}
	}
	var defs armList
	if err := q.arm(http.MethodGet, av.Scope+"/providers/Microsoft.Authorization/roleDefinitions", authzAPIVersion, nil, &defs); err != nil {
		return err
	}
	names := map[string]string{}
	for _, d := range defs.Value {
		p, _ := d["properties"].(map[string]any)
		r := roleRow{ID: str(d["id"]), GUID: str(d["name"]), Name: str(p["roleName"]), Description: str(p["description"])}
		names[strings.ToLower(r.GUID)] = r.Name
		av.Roles = append(av.Roles, r)
	}
	sort.Slice(av.Roles, func(i, j int) bool { return av.Roles[i].Name < av.Roles[j].Name })
	var as armList
	if err := q.arm(http.MethodGet, av.Scope+"/providers/Microsoft.Authorization/roleAssignments", authzAPIVersion, nil, &as); err != nil {
		av.Notice = err.(*apiError).Message
	}
	for _, a := range as.Value {
		p, _ := a["properties"].(map[string]any)
		rd := str(p["roleDefinitionId"])
		role := names[strings.ToLower(rd[strings.LastIndex(rd, "/")+1:])]
		if role == "" {
			role = rd
		}
		av.Assigned = append(av.Assigned, assignmentRow{ID: str(a["id"]), Name: str(a["name"]), Role: role,
			Principal: str(p["principalId"]), PrincipalType: str(p["principalType"]), Scope: str(p["scope"])})
	}
	return q.render("access", http.StatusOK, q.p["vault"]+": access", av)
}

var guidRE = regexp.MustCompile(`^[0-9a-fA-F]{8}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{4}-[0-9a-fA-F]{12}$`)

func accessAssign(q *req) error {
	v, err := q.findVault(q.p["vault"])
	if err != nil {
		return err
	}
	f := q.r.PostForm
	kind := f.Get("scope")
	principal, role := strings.TrimSpace(f.Get("principal")), f.Get("role")
	if !guidRE.MatchString(principal) {
		return &apiError{Status: http.StatusBadRequest, Code: "InvalidPrincipalId", Message: "Give the principal's object ID (a GUID)."}
	}
	if !guidRE.MatchString(role) {
		return &apiError{Status: http.StatusBadRequest, Code: "InvalidRoleDefinitionId", Message: "Choose a role."}
	}
	scope := scopeFor(v, kind)
	props := map[string]any{"principalId": principal, "roleDefinitionId": scope + "/providers/Microsoft.Authorization/roleDefinitions/" + role}
	if pt := f.Get("principal_type"); pt != "" {
		props["principalType"] = pt
	}
	if f.Get("eligible") == "on" {
		// PIM: an eligible assignment the principal activates when needed.
		props["requestType"] = "AdminAssign"
		props["scheduleInfo"] = map[string]any{"expiration": map[string]any{"type": "NoExpiration"}}
		delete(props, "principalType")
		if err := q.arm(http.MethodPut, scope+"/providers/Microsoft.Authorization/roleEligibilityScheduleRequests/"+uuid.NewString(), authzAPIVersion, map[string]any{"properties": props}, nil); err != nil {
			return err
		}
		return q.redirect("/ui/vaults/"+q.p["vault"]+"/access?scope="+kind, "Eligibility added.")
	}
	if err := q.arm(http.MethodPut, scope+"/providers/Microsoft.Authorization/roleAssignments/"+uuid.NewString(), authzAPIVersion, map[string]any{"properties": props}, nil); err != nil {
		return err
	}
	return q.redirect("/ui/vaults/"+q.p["vault"]+"/access?scope="+kind, "Role assigned.")
}

func accessDelete(q *req) error {
	v, err := q.findVault(q.p["vault"])
	if err != nil {
		return err
	}
	id := q.p["id"]
	kind := q.r.PostForm.Get("scope")
	if !guidRE.MatchString(id) {
		return &apiError{Status: http.StatusBadRequest, Code: "InvalidRoleAssignmentId", Message: "Not a role assignment."}
	}
	if err := q.arm(http.MethodDelete, scopeFor(v, kind)+"/providers/Microsoft.Authorization/roleAssignments/"+id, authzAPIVersion, nil, nil); err != nil {
		return err
	}
	return q.redirect("/ui/vaults/"+q.p["vault"]+"/access?scope="+kind, "Role assignment removed.")
}

type deletedView struct {
	Secrets, Keys, Certificates []item
	Notices                     []string
}

func deletedList(q *req) error {
	v := &deletedView{}
	for _, c := range []struct {
		path string
		into *[]item
	}{{"deletedsecrets", &v.Secrets}, {"deletedkeys", &v.Keys}, {"deletedcertificates", &v.Certificates}} {
		var l itemList
		if err := q.data(q.p["vault"], http.MethodGet, c.path+"?maxresults=25", nil, &l); err != nil {
			v.Notices = append(v.Notices, c.path+": "+err.(*apiError).Message)
			continue
		}
		*c.into = l.Value
	}
	return q.render("deleted", http.StatusOK, q.p["vault"]+": deleted objects", v)
}

func deletedAction(recover bool) handler {
	return func(q *req) error {
		kind, name := q.p["kind"], q.p["name"]
		if kind != "secrets" && kind != "keys" && kind != "certificates" {
			return &apiError{Status: http.StatusNotFound, Code: "NotFound", Message: "No such collection."}
		}
		if !objectNameRE.MatchString(name) {
			return badName()
		}
		var err error
		msg := name + " recovered."
		if recover {
			err = q.data(q.p["vault"], http.MethodPost, "deleted"+kind+"/"+name+"/recover", nil, nil)
		} else {
			err = q.data(q.p["vault"], http.MethodDelete, "deleted"+kind+"/"+name, nil, nil)
			msg = name + " purged."
		}
		if err != nil {
			return err
		}
		return q.redirect("/ui/vaults/"+q.p["vault"]+"/deleted", msg)
	}
}

// accessPolicy adds (merging permissions) or removes a vault access
// policy entry through ARM's accessPolicies/{add|remove}.
func accessPolicy(q *req) error {
	v, err := q.findVault(q.p["vault"])
	if err != nil {
		return err
	}
	kind := q.p["kind"]
	if kind != "add" && kind != "remove" {
		return &apiError{Status: http.StatusNotFound, Code: "NotFound", Message: "No such operation."}
	}
	f := q.r.PostForm
	oid := strings.TrimSpace(f.Get("object_id"))
	if !guidRE.MatchString(oid) {
		return &apiError{Status: http.StatusBadRequest, Code: "InvalidPrincipalId", Message: "Give the principal's object ID (a GUID)."}
	}
	perms := map[string][]string{}
	for _, k := range []string{"keys", "secrets", "certificates"} {
		perms[k] = splitList(f.Get(k))
		if perms[k] == nil {
			perms[k] = []string{}
		}
	}
	entry := map[string]any{"tenantId": q.s.tenant, "objectId": oid, "permissions": perms}
	if app := strings.TrimSpace(f.Get("application_id")); app != "" {
		entry["applicationId"] = app
	}
	if err := q.arm(http.MethodPut, v.ID+"/accessPolicies/"+kind, armAPIVersion, map[string]any{"properties": map[string]any{"accessPolicies": []any{entry}}}, nil); err != nil {
		return err
	}
	return q.redirect("/ui/vaults/"+q.p["vault"]+"/access", "Access policies saved.")
}
