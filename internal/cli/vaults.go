package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault/v2"
	"github.com/spf13/cobra"
)

var vaultProps = []string{"accessPolicies", "createMode", "enablePurgeProtection", "enableRbacAuthorization", "enableSoftDelete",
	"enabledForDeployment", "enabledForDiskEncryption", "enabledForTemplateDeployment", "hsmPoolResourceId", "networkAcls",
	"privateEndpointConnections", "provisioningState", "publicNetworkAccess", "sku", "softDeleteRetentionInDays", "tenantId", "vaultUri"}

// resourceGroupOf is segment 4 of an ARM ID.
func resourceGroupOf(id any) any {
	s, _ := id.(string)
	parts := strings.Split(s, "/")
	if len(parts) > 4 && strings.EqualFold(parts[3], "resourceGroups") {
		return parts[4]
	}
	return nil
}

// pyTime is Python's isoformat() of an RFC 3339 time (microseconds when
// there is a fraction, +00:00 for UTC).
func pyTime(s string) string {
	t, err := time.Parse(time.RFC3339Nano, s)
	if err != nil {
		return s
	}
	t = t.UTC()
	if t.Nanosecond() != 0 {
		return t.Format("2006-01-02T15:04:05.000000+00:00")
	}
	return t.Format("2006-01-02T15:04:05+00:00")
}

var hsmProps = []string{"createMode", "enablePurgeProtection", "enableSoftDelete", "hsmUri", "initialAdminObjectIds", "networkAcls",
	"privateEndpointConnections", "provisioningState", "publicNetworkAccess", "scheduledPurgeDate", "securityDomainProperties",
	"softDeleteRetentionInDays", "statusMessage", "tenantId"}

// azManagedHSM: a managed HSM as az keyvault list prints it (the fields
// of az's ManagedHsmProperties model, no others).
func azManagedHSM(v any) map[string]any {
	m := wire(v)
	if p, ok := m["properties"].(map[string]any); ok {
		keep := map[string]any{}
		for _, k := range hsmProps {
			keep[k] = p[k]
		}
		if t, ok := keep["scheduledPurgeDate"].(string); ok {
			keep["scheduledPurgeDate"] = pyTime(t)
		}
		m["properties"] = keep
	}
	if sd, ok := m["systemData"].(map[string]any); ok {
		for _, k := range []string{"createdAt", "lastModifiedAt"} {
			if t, ok := sd[k].(string); ok {
				sd[k] = pyTime(t)
			}
		}
		ensure(sd, "createdAt", "createdBy", "createdByType", "lastModifiedAt", "lastModifiedBy", "lastModifiedByType")
	}
	ensure(m, "id", "location", "name", "properties", "sku", "systemData", "tags", "type")
	m["resourceGroup"] = resourceGroupOf(m["id"])
	return m
}

// azVault: az keyvault show|create|update.
func azVault(v any) map[string]any {
	m := wire(v)
	if p, ok := m["properties"].(map[string]any); ok {
		ensure(p, vaultProps...)
	}
	if sd, ok := m["systemData"].(map[string]any); ok {
		for _, k := range []string{"createdAt", "lastModifiedAt"} {
			if t, ok := sd[k].(string); ok {
				sd[k] = pyTime(t)
			}
		}
		ensure(sd, "createdAt", "createdBy", "createdByType", "lastModifiedAt", "lastModifiedBy", "lastModifiedByType")
	}
	ensure(m, "id", "location", "name", "properties", "systemData", "tags", "type")
	m["resourceGroup"] = resourceGroupOf(m["id"])
	return m
}

func (s *session) vaultsClient() (*armkeyvault.VaultsClient, error) {
	opts, err := s.armOptions()
	if err != nil {
		return nil, err
	}
	if s.p.SubscriptionID == "" {
		return nil, errors.New("no subscription: pass --subscription or log in with one")
	}
	return armkeyvault.NewVaultsClient(s.p.SubscriptionID, s.cred, opts)
}

// findGroup is the resource group of a vault, looked up when -g is not
// given (as az does).
func (s *session) findGroup(ctx context.Context, c *armkeyvault.VaultsClient, name string) (string, error) {
	for pg := c.NewListBySubscriptionPager(nil); pg.More(); {
		page, err := pg.NextPage(ctx)
		if err != nil {
			return "", err
		}
		for _, v := range page.Value {
			if v.Name != nil && strings.EqualFold(*v.Name, name) {
				rg, _ := resourceGroupOf(*v.ID).(string)
				return rg, nil
			}
		}
	}
	return "", fmt.Errorf("(ResourceNotFound) The Resource 'Microsoft.KeyVault/vaults/%s' under the subscription was not found", name)
}

func (k *kv) vaultCommands() []*cobra.Command {
	var name, group, location, sku, subscription, defaultAction, publicAccess, resourceType string
	var retention int
	var purgeProtection, rbac, noRBAC bool
	pre := func(ctx context.Context, s *session, needName bool) (*armkeyvault.VaultsClient, string, error) {
		if subscription != "" {
			s.p.SubscriptionID = subscription
		}
		c, err := s.vaultsClient()
		if err != nil {
			return nil, "", err
		}
		if !needName {
			return c, group, nil
		}
		if name == "" {
			return nil, "", errors.New("--name is required")
		}
		if group != "" {
			return c, group, nil
		}
		rg, err := s.findGroup(ctx, c, name)
		return c, rg, err
	}
	create := &cobra.Command{Use: "create", Short: "Create a vault", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, s *session) (any, error) {
			c, _, err := pre(ctx, s, false)
			if err != nil {
				return nil, err
			}
			if name == "" || !validName(name) || len(name) < 3 || len(name) > 24 {
				return nil, fmt.Errorf("--name %q is not a vault name (3-24 letters, digits and hyphens)", name)
			}
			rg := group
			if rg == "" {
				rg = s.p.ResourceGroup
			}
			if rg == "" {
				return nil, errors.New("--resource-group is required")
			}
			loc := location
			if loc == "" {
				loc = s.p.Location
			}
			skuName := armkeyvault.SKUName(strings.ToLower(sku))
			if skuName != armkeyvault.SKUNameStandard && skuName != armkeyvault.SKUNamePremium {
				return nil, fmt.Errorf("--sku %q is not standard or premium", sku)
			}
			props := &armkeyvault.VaultProperties{TenantID: &s.p.TenantID, SKU: &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: &skuName},
				EnableRbacAuthorization: to.Ptr(!noRBAC), EnableSoftDelete: to.Ptr(true)}
			if retention > 0 {
				props.SoftDeleteRetentionInDays = to.Ptr(int32(retention))
			}
			if purgeProtection {
				props.EnablePurgeProtection = to.Ptr(true)
			}
			poller, err := c.BeginCreateOrUpdate(ctx, rg, name, armkeyvault.VaultCreateOrUpdateParameters{Location: &loc, Properties: props}, nil)
			if err != nil {
				return nil, err
			}
			r, err := poller.PollUntilDone(ctx, nil)
			if err != nil {
				return nil, err
			}
			return azVault(r.Vault), nil
		})}
	show := &cobra.Command{Use: "show", Short: "Show a vault", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, s *session) (any, error) {
			c, rg, err := pre(ctx, s, true)
			if err != nil {
				return nil, err
			}
			r, err := c.Get(ctx, rg, name, nil)
			if err != nil {
				return nil, err
			}
			return azVault(r.Vault), nil
		})}
	list := &cobra.Command{Use: "list", Short: "List vaults", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, s *session) (any, error) {
			c, _, err := pre(ctx, s, false)
			if err != nil {
				return nil, err
			}
			out := []any{}
			add := func(vs []*armkeyvault.Vault) {
				for _, v := range vs {
					m := wire(v)
					item := map[string]any{"id": m["id"], "location": m["location"], "name": m["name"], "tags": m["tags"], "type": m["type"],
						"resourceGroup": resourceGroupOf(m["id"])}
					out = append(out, item)
				}
			}
			switch resourceType {
			case "", "vault", "hsm":
			default:
				return nil, fmt.Errorf("--resource-type %q is not vault or hsm", resourceType)
			}
			if resourceType != "hsm" {
				if group != "" {
					for pg := c.NewListByResourceGroupPager(group, nil); pg.More(); {
						page, err := pg.NextPage(ctx)
						if err != nil {
							return nil, err
						}
						add(page.Value)
					}
				} else {
					for pg := c.NewListBySubscriptionPager(nil); pg.More(); {
						page, err := pg.NextPage(ctx)
						if err != nil {
							return nil, err
						}
						add(page.Value)
					}
				}
			}
			if resourceType == "vault" {
				return out, nil
			}
			// az lists managed HSMs after the vaults (list_vault_or_hsm);
			// a server without them leaves them out.
			opts, _ := s.armOptions()
			hc, err := armkeyvault.NewManagedHsmsClient(s.p.SubscriptionID, s.cred, opts)
			if err != nil {
				return nil, err
			}
			addHSM := func(hs []*armkeyvault.ManagedHsm) {
				for _, h := range hs {
					out = append(out, azManagedHSM(h))
				}
			}
			if group != "" {
				for pg := hc.NewListByResourceGroupPager(group, nil); pg.More(); {
					page, err := pg.NextPage(ctx)
					if err != nil {
						if resourceType == "hsm" {
							return nil, err
						}
						break
					}
					addHSM(page.Value)
				}
			} else {
				for pg := hc.NewListBySubscriptionPager(nil); pg.More(); {
					page, err := pg.NextPage(ctx)
					if err != nil {
						if resourceType == "hsm" {
							return nil, err
						}
						break
					}
					addHSM(page.Value)
				}
			}
			return out, nil
		})}
	del := &cobra.Command{Use: "delete", Short: "Delete a vault", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, s *session) (any, error) {
			c, rg, err := pre(ctx, s, true)
			if err != nil {
				return nil, err
			}
			_, err = c.Delete(ctx, rg, name, nil)
			return nil, err
		})}
	update := &cobra.Command{Use: "update", Short: "Change a vault's properties", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, s *session) (any, error) {
			c, rg, err := pre(ctx, s, true)
			if err != nil {
				return nil, err
			}
			p := &armkeyvault.VaultPatchProperties{}
			if retention > 0 {
				p.SoftDeleteRetentionInDays = to.Ptr(int32(retention))
			}
			if purgeProtection {
				p.EnablePurgeProtection = to.Ptr(true)
			}
			if rbac || noRBAC {
				p.EnableRbacAuthorization = to.Ptr(rbac)
			}
			if publicAccess != "" {
				p.PublicNetworkAccess = &publicAccess
			}
			if defaultAction != "" {
				if defaultAction != "Allow" && defaultAction != "Deny" {
					return nil, fmt.Errorf("--default-action %q is not Allow or Deny", defaultAction)
				}
				p.NetworkACLs = &armkeyvault.NetworkRuleSet{DefaultAction: to.Ptr(armkeyvault.NetworkRuleAction(defaultAction))}
			}
			r, err := c.Update(ctx, rg, name, armkeyvault.VaultPatchParameters{Properties: p}, nil)
			if err != nil {
				return nil, err
			}
			return azVault(r.Vault), nil
		})}
	for _, cmd := range []*cobra.Command{create, show, list, del, update} {
		f := cmd.Flags()
		if cmd != list {
			f.StringVarP(&name, "name", "n", "", "name of the vault")
		}
		f.StringVarP(&group, "resource-group", "g", "", "resource group (default: found by name; create: the dev resource group)")
		f.StringVar(&subscription, "subscription", "", "subscription ID (default: the profile's)")
	}
	list.Flags().StringVar(&resourceType, "resource-type", "", "vault or hsm (default: both, vaults first)")
	create.Flags().StringVarP(&location, "location", "l", "", "location (default: the profile's)")
	create.Flags().StringVar(&sku, "sku", "standard", "standard or premium")
	create.Flags().BoolVar(&noRBAC, "enable-rbac-authorization-false", false, "use access policies instead of RBAC")
	for _, cmd := range []*cobra.Command{create, update} {
		cmd.Flags().IntVar(&retention, "retention-days", 0, "soft-delete retention in days (7-90)")
		cmd.Flags().BoolVar(&purgeProtection, "enable-purge-protection", false, "turn purge protection on (it cannot be turned off)")
	}
	update.Flags().BoolVar(&rbac, "enable-rbac-authorization", false, "use RBAC")
	update.Flags().BoolVar(&noRBAC, "disable-rbac-authorization", false, "use access policies")
	update.Flags().StringVar(&defaultAction, "default-action", "", "network rules' default action: Allow or Deny")
	update.Flags().StringVar(&publicAccess, "public-network-access", "", "Enabled or Disabled")
	return []*cobra.Command{create, show, list, del, update}
}

// azAssignment is az role assignment's shape (properties flattened).
func azAssignment(v any) map[string]any {
	m := wire(v)
	out := map[string]any{"id": m["id"], "name": m["name"], "type": m["type"]}
	if p, ok := m["properties"].(map[string]any); ok {
		for k, e := range p {
			out[k] = e
		}
	}
	return ensure(out, "condition", "conditionVersion", "createdBy", "createdOn", "delegatedManagedIdentityResourceId",
		"description", "principalId", "principalType", "roleDefinitionId", "scope", "updatedBy", "updatedOn")
}

func (k *kv) roleCmd() *cobra.Command {
	role := &cobra.Command{Use: "role", Short: "Role assignments (ARM RBAC) at any scope"}
	g := &cobra.Command{Use: "assignment", Short: "Manage role assignments"}
	role.AddCommand(g)
	var scope, roleArg, assignee, vaultName, ids string
	clients := func(ctx context.Context, s *session) (*armauthorization.RoleAssignmentsClient, *armauthorization.RoleDefinitionsClient, string, error) {
		opts, err := s.armOptions()
		if err != nil {
			return nil, nil, "", err
		}
		sc := scope
		if sc == "" && vaultName != "" {
			vc, err := s.vaultsClient()
			if err != nil {
				return nil, nil, "", err
			}
			rg, err := s.findGroup(ctx, vc, vaultName)
			if err != nil {
				return nil, nil, "", err
			}
			sc = "/subscriptions/" + s.p.SubscriptionID + "/resourceGroups/" + rg + "/providers/Microsoft.KeyVault/vaults/" + vaultName
		}
		if sc == "" {
			return nil, nil, "", errors.New("--scope (or --vault-name) is required")
		}
		ra, err := armauthorization.NewRoleAssignmentsClient(s.p.SubscriptionID, s.cred, opts)
		if err != nil {
			return nil, nil, "", err
		}
		rd, err := armauthorization.NewRoleDefinitionsClient(s.cred, opts)
		return ra, rd, sc, err
	}
	roleID := func(ctx context.Context, rd *armauthorization.RoleDefinitionsClient, sc string) (string, error) {
		if roleArg == "" {
			return "", errors.New("--role is required")
		}
		if len(roleArg) == 36 && strings.Count(roleArg, "-") == 4 {
			return "/providers/Microsoft.Authorization/roleDefinitions/" + roleArg, nil
		}
		if strings.HasPrefix(roleArg, "/") {
			return roleArg, nil
		}
		filter := "roleName eq '" + strings.ReplaceAll(roleArg, "'", "") + "'"
		for pg := rd.NewListPager(sc, &armauthorization.RoleDefinitionsClientListOptions{Filter: &filter}); pg.More(); {
			page, err := pg.NextPage(ctx)
			if err != nil {
				return "", err
			}
			for _, d := range page.Value {
				if d.Properties != nil && d.Properties.RoleName != nil && strings.EqualFold(*d.Properties.RoleName, roleArg) {
					return *d.ID, nil
				}
			}
		}
		return "", fmt.Errorf("--role %q is not a role definition name or ID", roleArg)
	}
	create := &cobra.Command{Use: "create", Short: "Assign a role to a principal at a scope", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, s *session) (any, error) {
			ra, rd, sc, err := clients(ctx, s)
			if err != nil {
				return nil, err
			}
			if assignee == "" {
				return nil, errors.New("--assignee (the principal's object ID) is required")
			}
			id, err := roleID(ctx, rd, sc)
			if err != nil {
				return nil, err
			}
			r, err := ra.Create(ctx, sc, newGUID(), armauthorization.RoleAssignmentCreateParameters{Properties: &armauthorization.RoleAssignmentProperties{
				PrincipalID: &assignee, RoleDefinitionID: &id}}, nil)
			if err != nil {
				return nil, err
			}
			return azAssignment(r.RoleAssignment), nil
		})}
	list := &cobra.Command{Use: "list", Short: "List the role assignments that apply at a scope", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, s *session) (any, error) {
			ra, rd, sc, err := clients(ctx, s)
			if err != nil {
				return nil, err
			}
			want := ""
			if roleArg != "" {
				if want, err = roleID(ctx, rd, sc); err != nil {
					return nil, err
				}
			}
			out := []any{}
			for pg := ra.NewListForScopePager(sc, nil); pg.More(); {
				page, err := pg.NextPage(ctx)
				if err != nil {
					return nil, err
				}
				for _, a := range page.Value {
					m := azAssignment(a)
					if assignee != "" && !strings.EqualFold(fmt.Sprint(m["principalId"]), assignee) {
						continue
					}
					if want != "" && !strings.HasSuffix(strings.ToLower(fmt.Sprint(m["roleDefinitionId"])), strings.ToLower(want[strings.LastIndexByte(want, '/'):])) {
						continue
					}
					out = append(out, m)
				}
			}
			return out, nil
		}, [2]string{"Principal", "principalId"}, [2]string{"Role", "roleDefinitionId"}, [2]string{"Scope", "scope"})}
	del := &cobra.Command{Use: "delete", Short: "Delete role assignments (--ids, or --scope with --assignee and/or --role)", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, s *session) (any, error) {
			if ids != "" {
				opts, err := s.armOptions()
				if err != nil {
					return nil, err
				}
				ra, err := armauthorization.NewRoleAssignmentsClient(s.p.SubscriptionID, s.cred, opts)
				if err != nil {
					return nil, err
				}
				for _, id := range strings.Fields(ids) {
					if _, err := ra.DeleteByID(ctx, id, nil); err != nil {
						return nil, err
					}
				}
				return nil, nil
			}
			if assignee == "" && roleArg == "" {
				return nil, errors.New("--ids, or --assignee and/or --role with --scope, is required")
			}
			ra, rd, sc, err := clients(ctx, s)
			if err != nil {
				return nil, err
			}
			want := ""
			if roleArg != "" {
				if want, err = roleID(ctx, rd, sc); err != nil {
					return nil, err
				}
			}
			n := 0
			for pg := ra.NewListForScopePager(sc, nil); pg.More(); {
				page, err := pg.NextPage(ctx)
				if err != nil {
					return nil, err
				}
				for _, a := range page.Value {
					p := a.Properties
					if p == nil || p.Scope == nil || !strings.EqualFold(*p.Scope, sc) {
						continue
					}
					if assignee != "" && !strings.EqualFold(*p.PrincipalID, assignee) {
						continue
					}
					if want != "" && !strings.HasSuffix(strings.ToLower(*p.RoleDefinitionID), strings.ToLower(want[strings.LastIndexByte(want, '/'):])) {
						continue
					}
					if _, err := ra.DeleteByID(ctx, *a.ID, nil); err != nil {
						return nil, err
					}
					n++
				}
			}
			if n == 0 {
				return nil, errors.New("no matched assignments were found to delete")
			}
			return nil, nil
		})}
	for _, cmd := range []*cobra.Command{create, list, del} {
		f := cmd.Flags()
		f.StringVar(&scope, "scope", "", "ARM scope: /subscriptions/{id}[/resourceGroups/{rg}[/providers/Microsoft.KeyVault/vaults/{name}[/{kind}/{object}]]]")
		f.StringVar(&vaultName, "vault-name", "", "the vault's scope (instead of --scope)")
		f.StringVar(&roleArg, "role", "", "role name (e.g. \"Key Vault Secrets User\") or role definition ID")
		f.StringVar(&assignee, "assignee", "", "the principal's object ID")
	}
	del.Flags().StringVar(&ids, "ids", "", "space-separated role assignment IDs")
	g.AddCommand(create, list, del)
	return role
}
