package mgmt

import (
	"net/http"
	"strings"

	"github.com/keyward/keyward/internal/route"
)

// handler serves one ARM operation; p holds the pattern's parameters
// (unescaped, as sent).
type handler = func(c *call, p map[string]string) error

// armRoutes is the whole ARM surface Keyward serves on management.{suffix}
// (AZURE-API.md §6), matched by internal/route. A route without a method
// serves every method and dispatches on it (resource groups, vaults). A
// method the surface does not serve is ARM's 404 InvalidResourceType, not a
// 405. Role-based access (Microsoft.Authorization) is served at any scope
// and so is found before this table (routeAuthorization); each handler
// authorizes itself, because its scope comes from the path.
func armRoutes() route.Table[handler, string] {
	const (
		get, put, post = http.MethodGet, http.MethodPut, http.MethodPost
		kv             = "/subscriptions/{sub}/providers/Microsoft.KeyVault"
		rgKV           = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault"
	)
	return route.Compile([]route.Route[handler, string]{
		{Pattern: "/providers/Keyward.Directory/{rest...}", Op: "Directory", Handle: func(c *call, _ map[string]string) error { return c.routeDirectory(c.segs[2:]) }},
		{Method: get, Pattern: "/subscriptions", Op: "SubscriptionList", Handle: func(c *call, _ map[string]string) error { return c.listSubscriptions() }},
		{Method: get, Pattern: "/subscriptions/{sub}", Op: "SubscriptionGet", Handle: func(c *call, p map[string]string) error { return c.getSubscription(p["sub"]) }},
		{Method: get, Pattern: "/subscriptions/{sub}/resourceGroups", Op: "ResourceGroupList", Handle: func(c *call, p map[string]string) error { return c.listResourceGroups(p["sub"]) }},
		{Pattern: "/subscriptions/{sub}/resourceGroups/{rg}", Op: "ResourceGroup", Handle: func(c *call, p map[string]string) error { return c.resourceGroup(p["sub"], p["rg"]) }},
		{Method: get, Pattern: "/subscriptions/{sub}/resources", Op: "ResourceList", Handle: func(c *call, p map[string]string) error { return c.listResources(p["sub"]) }},
		{Method: get, Pattern: kv + "/vaults", Op: "VaultList", Handle: func(c *call, p map[string]string) error { return c.listVaults(p["sub"], "") }},
		{Method: get, Pattern: kv + "/deletedVaults", Op: "DeletedVaultList", Handle: func(c *call, p map[string]string) error { return c.listDeletedVaults(p["sub"]) }},
		{Method: get, Pattern: kv + "/locations/{loc}/deletedVaults/{name}", Op: "DeletedVaultGet", Handle: func(c *call, p map[string]string) error { return c.getDeletedVault(p["sub"], p["loc"], p["name"]) }},
		{Method: post, Pattern: kv + "/locations/{loc}/deletedVaults/{name}/purge", Op: "DeletedVaultPurge", Handle: func(c *call, p map[string]string) error { return c.purgeDeletedVault(p["sub"], p["loc"], p["name"]) }},
		{Method: post, Pattern: kv + "/checkNameAvailability", Op: "VaultCheckName", Handle: func(c *call, p map[string]string) error { return c.checkName(p["sub"]) }},
		{Method: get, Pattern: rgKV + "/vaults", Op: "VaultList", Handle: func(c *call, p map[string]string) error { return c.listVaults(p["sub"], p["rg"]) }},
		{Pattern: rgKV + "/vaults/{name}", Op: "Vault", Handle: func(c *call, p map[string]string) error { return c.vault(p["sub"], p["rg"], p["name"]) }},
		{Method: put, Pattern: rgKV + "/vaults/{name}/accessPolicies/{kind}", Op: "VaultAccessPolicy", Handle: func(c *call, p map[string]string) error {
			return c.updateAccessPolicies(p["sub"], p["rg"], p["name"], strings.ToLower(p["kind"]))
		}},
	})
}
