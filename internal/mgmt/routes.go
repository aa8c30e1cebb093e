package mgmt

import (
	"net/http"
	"strings"

	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/route"
)

// handler serves one ARM operation; p holds the pattern's parameters
// (unescaped, as sent).
type handler = func(c *call, p map[string]string) error

// armRoutes is the whole ARM surface Keyward serves on management.{suffix}
// (AZURE-API.md §6), matched by internal/route. A route without a method
// serves every method and dispatches on it; here only the fallbacks that
// answer a method the resource does not serve. A method the surface does
// not serve at all is ARM's 404 InvalidResourceType, not a 405.
//
// A route with an Action is authorized before its handler runs, by one
// step (call.authorizeRoute, then authorizeGrants, which also throttles):
// the action on the scope its path names ({sub}, {rg}, {vault}). Routes
// without one are lists that show what the caller may read, item by item,
// and the directory (authorized on the tenant root). Role-based access
// (Microsoft.Authorization, served at any scope) is found before this
// table and has its own (authorizationRoutes), authorized by the same
// step. An Op may name a
// path parameter in braces: the audit event names it (VaultAccessPolicyAdd).
func armRoutes() route.Table[handler, authz.Action] {
	const (
		get, put, post, patch, del, head = http.MethodGet, http.MethodPut, http.MethodPost, http.MethodPatch, http.MethodDelete, http.MethodHead
		kv                               = "/subscriptions/{sub}/providers/Microsoft.KeyVault"
		rgKV                             = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault"
		rg                               = "/subscriptions/{sub}/resourceGroups/{rg}"
		vault                            = rgKV + "/vaults/{vault}"
	)
	return route.Compile(append(mhsmRoutes(), []route.Route[handler, authz.Action]{
		{Pattern: "/providers/Keyward.Directory/{rest...}", Op: "Directory", Handle: func(c *call, _ map[string]string) error { return c.routeDirectory(c.segs[2:]) }},
		{Method: get, Pattern: "/subscriptions", Op: "SubscriptionList", Handle: func(c *call, _ map[string]string) error { return c.listSubscriptions() }},
		{Method: get, Pattern: "/subscriptions/{sub}", Op: "SubscriptionGet", Action: authz.SubscriptionsRead, Handle: func(c *call, _ map[string]string) error { return c.getSubscription() }},
		{Method: get, Pattern: "/subscriptions/{sub}/resourceGroups", Op: "ResourceGroupList", Handle: func(c *call, p map[string]string) error { return c.listResourceGroups(p["sub"]) }},
		{Method: get, Pattern: rg, Op: "ResourceGroupGet", Action: authz.ResourceGroupsRead, Handle: func(c *call, p map[string]string) error { return c.getResourceGroup(p["rg"]) }},
		{Method: head, Pattern: rg, Op: "ResourceGroupGet", Action: authz.ResourceGroupsRead, Handle: func(c *call, p map[string]string) error { return c.getResourceGroup(p["rg"]) }},
		{Method: put, Pattern: rg, Op: "ResourceGroupCreateOrUpdate", Action: authz.ResourceGroupsWrite, Handle: func(c *call, p map[string]string) error { return c.putResourceGroup(p["rg"]) }},
		{Method: del, Pattern: rg, Op: "ResourceGroupDelete", Action: authz.ResourceGroupsDel, Handle: func(c *call, p map[string]string) error { return c.deleteResourceGroup(p["rg"]) }},
		{Pattern: rg, Op: "ResourceGroup", Handle: func(c *call, p map[string]string) error { return c.otherMethod(p["sub"]) }},
		{Method: get, Pattern: "/subscriptions/{sub}/resources", Op: "ResourceList", Handle: func(c *call, p map[string]string) error { return c.listResources(p["sub"]) }},
		{Method: get, Pattern: kv + "/vaults", Op: "VaultList", Handle: func(c *call, p map[string]string) error { return c.listVaults(p["sub"], "") }},
		{Method: get, Pattern: kv + "/deletedVaults", Op: "DeletedVaultList", Action: authz.DeletedVaultsRead, Handle: func(c *call, _ map[string]string) error { return c.listDeletedVaults() }},
		{Method: get, Pattern: kv + "/locations/{loc}/deletedVaults/{name}", Op: "DeletedVaultGet", Action: authz.DeletedVaultsLocRead, Handle: func(c *call, p map[string]string) error { return c.getDeletedVault(p["loc"], p["name"]) }},
		{Method: post, Pattern: kv + "/locations/{loc}/deletedVaults/{name}/purge", Op: "DeletedVaultPurge", Action: authz.DeletedVaultsPurge, Handle: func(c *call, p map[string]string) error { return c.purgeDeletedVault(p["loc"], p["name"]) }},
		{Method: post, Pattern: kv + "/checkNameAvailability", Op: "VaultCheckNameAvailability", Action: authz.VaultsCheckName, Handle: func(c *call, _ map[string]string) error { return c.checkName() }},
		{Method: get, Pattern: rgKV + "/vaults", Op: "VaultList", Handle: func(c *call, p map[string]string) error { return c.listVaults(p["sub"], p["rg"]) }},
		{Method: get, Pattern: vault, Op: "VaultGet", Action: authz.VaultsRead, Handle: func(c *call, p map[string]string) error { return c.getVault(p["rg"], p["vault"]) }},
		{Method: put, Pattern: vault, Op: "VaultCreateOrUpdate", Action: authz.VaultsWrite, Handle: func(c *call, p map[string]string) error { return c.writeVault(p["rg"], p["vault"], false) }},
		{Method: patch, Pattern: vault, Op: "VaultUpdate", Action: authz.VaultsWrite, Handle: func(c *call, p map[string]string) error { return c.writeVault(p["rg"], p["vault"], true) }},
		{Method: del, Pattern: vault, Op: "VaultDelete", Action: authz.VaultsDelete, Handle: func(c *call, p map[string]string) error { return c.deleteVault(p["rg"], p["vault"]) }},
		{Method: get, Pattern: vault + "/providers/Keyward.Audit/events", Op: "AuditEventList", Action: AuditLogsRead, Handle: func(c *call, p map[string]string) error { return c.auditEvents(p["rg"], p["vault"]) }},
		{Method: get, Pattern: vault + "/providers/Keyward.Audit/usage", Op: "AuditUsageReport", Action: AuditLogsRead, Handle: func(c *call, p map[string]string) error { return c.auditUsage(p["rg"], p["vault"]) }},
		{Method: get, Pattern: vault + "/providers/Microsoft.Insights/alertRules", Op: "AlertRuleList", Action: AlertRulesRead, Handle: func(c *call, p map[string]string) error { return c.listAlertRules(p["rg"], p["vault"]) }},
		{Method: get, Pattern: vault + "/providers/Microsoft.Insights/alertRules/{rule}", Op: "AlertRuleGet", Action: AlertRulesRead, Handle: func(c *call, p map[string]string) error { return c.getAlertRule(p["rg"], p["vault"], p["rule"]) }},
		{Method: put, Pattern: vault + "/providers/Microsoft.Insights/alertRules/{rule}", Op: "AlertRuleCreateOrUpdate", Action: AlertRulesWrite, Handle: func(c *call, p map[string]string) error { return c.putAlertRule(p["rg"], p["vault"], p["rule"]) }},
		{Method: del, Pattern: vault + "/providers/Microsoft.Insights/alertRules/{rule}", Op: "AlertRuleDelete", Action: AlertRulesDelete, Handle: func(c *call, p map[string]string) error { return c.deleteAlertRule(p["rg"], p["vault"], p["rule"]) }},
		{Pattern: vault, Op: "Vault", Handle: func(c *call, p map[string]string) error { return c.otherMethod(p["sub"]) }},
		{Method: put, Pattern: vault + "/accessPolicies/{kind}", Op: "VaultAccessPolicy{kind}", Action: authz.VaultsAccessPolicies, Handle: func(c *call, p map[string]string) error {
			return c.updateAccessPolicies(p["rg"], p["vault"], strings.ToLower(p["kind"]))
		}},
	}...))
}

// opName is a route's audit operation: Op with a {param} in it replaced
// by that parameter, first letter upper-cased (lower-cased otherwise).
func opName(op string, p map[string]string) string {
	pre, rest, ok := strings.Cut(op, "{")
	if !ok {
		return op
	}
	name, post, _ := strings.Cut(rest, "}")
	return pre + titleWord(strings.ToLower(p[name])) + post
}
