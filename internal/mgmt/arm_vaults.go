package mgmt

import (
	"context"
	"errors"
	"net/http"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/vault"
)

// --- wire types (AZURE-API.md §6; checked against armkeyvault v2) ---

type skuWire struct {
	Family string `json:"family"`
	Name   string `json:"name"`
}

type permWire struct {
	Keys         []string `json:"keys,omitempty"`
	Secrets      []string `json:"secrets,omitempty"`
	Certificates []string `json:"certificates,omitempty"`
	Storage      []string `json:"storage,omitempty"`
}

type apWire struct {
	TenantID      string   `json:"tenantId"`
	ObjectID      string   `json:"objectId"`
	ApplicationID *string  `json:"applicationId"`
	Permissions   permWire `json:"permissions"`
}

type ipRuleWire struct {
	Value string `json:"value"`
}

type networkWire struct {
	Bypass              string       `json:"bypass,omitempty"`
	DefaultAction       string       `json:"defaultAction,omitempty"`
	IPRules             []ipRuleWire `json:"ipRules"`
	VirtualNetworkRules []any        `json:"virtualNetworkRules"`
}

type systemData struct {
	CreatedBy          string `json:"createdBy,omitempty"`
	CreatedByType      string `json:"createdByType,omitempty"`
	CreatedAt          string `json:"createdAt,omitempty"`
	LastModifiedBy     string `json:"lastModifiedBy,omitempty"`
	LastModifiedByType string `json:"lastModifiedByType,omitempty"`
	LastModifiedAt     string `json:"lastModifiedAt,omitempty"`
}

type vaultPropsWire struct {
	TenantID                     string       `json:"tenantId"`
	SKU                          skuWire      `json:"sku"`
	AccessPolicies               []apWire     `json:"accessPolicies"`
	VaultURI                     string       `json:"vaultUri"`
	EnabledForDeployment         bool         `json:"enabledForDeployment"`
	EnabledForDiskEncryption     bool         `json:"enabledForDiskEncryption"`
	EnabledForTemplateDeployment bool         `json:"enabledForTemplateDeployment"`
	EnableSoftDelete             bool         `json:"enableSoftDelete"`
	SoftDeleteRetentionInDays    int          `json:"softDeleteRetentionInDays"`
	EnableRbacAuthorization      bool         `json:"enableRbacAuthorization"`
	EnablePurgeProtection        *bool        `json:"enablePurgeProtection,omitempty"`
	NetworkACLs                  *networkWire `json:"networkAcls"`
	PublicNetworkAccess          string       `json:"publicNetworkAccess"`
	ProvisioningState            string       `json:"provisioningState"`
	PrivateEndpointConnections   []any        `json:"privateEndpointConnections"`
	HsmPoolResourceID            *string      `json:"hsmPoolResourceId"`
}

type vaultWire struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags"`
	SystemData *systemData       `json:"systemData,omitempty"`
	Properties vaultPropsWire    `json:"properties"`
}

// vaultRequest is the body of PUT and PATCH on a vault. Pointers tell an
// absent property from a zero one.
type vaultRequest struct {
	Location   *string            `json:"location"`
	Tags       map[string]string  `json:"tags"`
	Properties *vaultRequestProps `json:"properties"`
}

// vaultRequestProps are the properties of a vault request.
type vaultRequestProps struct {
	TenantID                     *string      `json:"tenantId"`
	SKU                          *skuWire     `json:"sku"`
	AccessPolicies               *[]apWire    `json:"accessPolicies"`
	CreateMode                   *string      `json:"createMode"`
	EnablePurgeProtection        *bool        `json:"enablePurgeProtection"`
	EnableRbacAuthorization      *bool        `json:"enableRbacAuthorization"`
	EnableSoftDelete             *bool        `json:"enableSoftDelete"`
	EnabledForDeployment         *bool        `json:"enabledForDeployment"`
	EnabledForDiskEncryption     *bool        `json:"enabledForDiskEncryption"`
	EnabledForTemplateDeployment *bool        `json:"enabledForTemplateDeployment"`
	NetworkACLs                  *networkWire `json:"networkAcls"`
	PublicNetworkAccess          *string      `json:"publicNetworkAccess"`
	SoftDeleteRetentionInDays    *int         `json:"softDeleteRetentionInDays"`
}

func fmtTime(t time.Time) string { return t.UTC().Format("2006-01-02T15:04:05.000Z") }

func vaultID(v *vault.Vault) string {
	return "/subscriptions/" + v.SubscriptionID + "/resourceGroups/" + v.ResourceGroup + "/providers/Microsoft.KeyVault/vaults/" + v.Name
}

func (c *call) vaultOut(v *vault.Vault, p *VaultProps) vaultWire {
	out := vaultWire{ID: vaultID(v), Name: v.Name, Type: "Microsoft.KeyVault/vaults", Location: v.Location, Tags: p.Tags,
		SystemData: &systemData{CreatedBy: p.CreatedBy, CreatedByType: p.CreatedByType, CreatedAt: fmtTime(p.Created),
			LastModifiedBy: p.LastModifiedBy, LastModifiedByType: p.LastModifiedByType, LastModifiedAt: fmtTime(p.LastModified)},
		Properties: vaultPropsWire{TenantID: v.TenantID, SKU: skuWire{Family: "A", Name: v.SKU}, AccessPolicies: apsOut(p.AccessPolicies),
			VaultURI: c.h.vaultURL(v.Name), EnabledForDeployment: p.EnabledForDeployment, EnabledForDiskEncryption: p.EnabledForDiskEncrypt,
			EnabledForTemplateDeployment: p.EnabledForTemplateDepl, EnableSoftDelete: true, SoftDeleteRetentionInDays: v.RetentionDays,
			EnableRbacAuthorization: p.RBAC, NetworkACLs: &networkWire{Bypass: p.Bypass, DefaultAction: p.DefaultAction,
				IPRules: []ipRuleWire{}, VirtualNetworkRules: []any{}},
			PublicNetworkAccess: p.PublicNetworkAccess, ProvisioningState: "Succeeded", PrivateEndpointConnections: []any{}}}
	if out.Tags == nil {
		out.Tags = map[string]string{}
	}
	if v.PurgeProtected {
		t := true
		out.Properties.EnablePurgeProtection = &t
	}
	for _, r := range p.IPRules {
		out.Properties.NetworkACLs.IPRules = append(out.Properties.NetworkACLs.IPRules, ipRuleWire{Value: r})
	}
	return out
}

func apsOut(aps []authz.AccessPolicy) []apWire {
	out := make([]apWire, 0, len(aps))
	for _, a := range aps {
		w := apWire{TenantID: a.TenantID, ObjectID: a.ObjectID,
			Permissions: permWire{Keys: nonNil(a.Keys), Secrets: nonNil(a.Secrets), Certificates: nonNil(a.Certificates), Storage: a.Storage}}
		if a.ApplicationID != "" {
			id := a.ApplicationID
			w.ApplicationID = &id
		}
		out = append(out, w)
	}
	return out
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// parseAccessPolicies validates access-policy entries (AZURE-API.md §6:
// GUIDs, known permission names, at most 1024 entries).
func parseAccessPolicies(in []apWire) ([]authz.AccessPolicy, error) {
	if len(in) > maxAccessPolicies {
		return nil, errBad("AccessPolicyLimitExceeded", "A vault has at most %d access policies.", maxAccessPolicies)
	}
	out := make([]authz.AccessPolicy, 0, len(in))
	for i, w := range in {
		if _, err := uuid.Parse(w.TenantID); err != nil {
			return nil, errBad("BadRequest", "accessPolicies[%d].tenantId must be a GUID.", i)
		}
		if _, err := uuid.Parse(w.ObjectID); err != nil {
			return nil, errBad("BadRequest", "accessPolicies[%d].objectId must be a GUID.", i)
		}
		ap := authz.AccessPolicy{TenantID: strings.ToLower(w.TenantID), ObjectID: strings.ToLower(w.ObjectID)}
		if w.ApplicationID != nil && *w.ApplicationID != "" {
			if _, err := uuid.Parse(*w.ApplicationID); err != nil {
				return nil, errBad("BadRequest", "accessPolicies[%d].applicationId must be a GUID.", i)
			}
			ap.ApplicationID = strings.ToLower(*w.ApplicationID)
		}
		for _, f := range []struct {
			coll string
			in   []string
			out  *[]string
		}{{"keys", w.Permissions.Keys, &ap.Keys}, {"secrets", w.Permissions.Secrets, &ap.Secrets},
			{"certificates", w.Permissions.Certificates, &ap.Certificates}, {"storage", w.Permissions.Storage, &ap.Storage}} {
			if len(f.in) > 64 {
				return nil, errBad("BadRequest", "accessPolicies[%d].permissions.%s has too many entries.", i, f.coll)
			}
			for _, p := range f.in {
				if !authz.ValidPolicyPermission(f.coll, p) {
					return nil, errBad("BadRequest", "Invalid value found at accessPolicies[%d].permissions.%s: %s", i, f.coll, clip(p))
				}
				*f.out = appendUniqueFold(*f.out, p)
			}
		}
		out = append(out, ap)
	}
	return out, nil
}

func appendUniqueFold(list []string, s string) []string {
	for _, x := range list {
		if strings.EqualFold(x, s) {
			return list
		}
	}
	return append(list, s)
}

// parseNetwork validates networkAcls. Virtual network rules have no
// meaning without Azure virtual networks: use ipRules or private listeners.
func parseNetwork(n *networkWire, p *VaultProps) error {
	switch strings.ToLower(n.DefaultAction) {
	case "":
	case "allow":
		p.DefaultAction = "Allow"
	case "deny":
		p.DefaultAction = "Deny"
	default:
		return errBad("BadRequest", "networkAcls.defaultAction must be Allow or Deny.")
	}
	switch strings.ToLower(n.Bypass) {
	case "":
	case "azureservices":
		p.Bypass = "AzureServices"
	case "none":
		p.Bypass = "None"
	default:
		return errBad("BadRequest", "networkAcls.bypass must be AzureServices or None.")
	}
	if len(n.VirtualNetworkRules) > 0 {
		return errBad("BadRequest", "networkAcls.virtualNetworkRules are not supported by Keyward: use ipRules, or a private listener with publicNetworkAccess Disabled.")
	}
	if len(n.IPRules) > 1000 {
		return errBad("BadRequest", "networkAcls.ipRules has at most 1000 entries.")
	}
	p.IPRules = nil
	for i, r := range n.IPRules {
		pr, err := authz.ParseIPRule(r.Value)
		if err != nil {
			return errBad("BadRequest", "networkAcls.ipRules[%d].value '%s' is not an IPv4/IPv6 address or CIDR range.", i, clip(r.Value))
		}
		p.IPRules = appendUniqueFold(p.IPRules, pr.String())
	}
	return nil
}

func parseTags(tags map[string]string) error {
	if len(tags) > 50 {
		return errBad("InvalidTag", "A resource has at most 50 tags.")
	}
	for k, v := range tags {
		if k == "" || len(k) > 512 || len(v) > 256 {
			return errBad("InvalidTag", "Tag names are 1-512 characters and values at most 256.")
		}
	}
	return nil
}

// --- subscriptions and resource groups ---

// subscription loads sub and checks it belongs to the caller's tenant.
func (c *call) subscription(id string) (*Subscription, error) {
	sub, err := c.h.svc.Subscription(c.r.Context(), id)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, errNotFound("SubscriptionNotFound", "The subscription '%s' could not be found.", clip(id))
	}
	if err != nil {
		return nil, err
	}
	if !strings.EqualFold(sub.TenantID, c.p.TenantID) {
		c.ev.Reason = "token for another tenant"
		c.ev.Result = audit.Denied
		c.challenge() // every 401 carries the challenge (issue 12.5)
		return nil, &armError{status: http.StatusUnauthorized, code: "InvalidAuthenticationTokenTenant",
			message: "The access token is from the wrong issuer. It must match the tenant associated with this subscription."}
	}
	return sub, nil
}

type subWire struct {
	ID             string `json:"id"`
	SubscriptionID string `json:"subscriptionId"`
	TenantID       string `json:"tenantId"`
	DisplayName    string `json:"displayName"`
	State          string `json:"state"`
}

func subOut(s *Subscription) subWire {
	return subWire{ID: "/subscriptions/" + s.ID, SubscriptionID: s.ID, TenantID: s.TenantID, DisplayName: s.DisplayName, State: s.State}
}

func (c *call) listSubscriptions() error {
	c.ev.Operation = "SubscriptionList"
	subs, err := c.h.svc.Subscriptions(c.r.Context(), c.p.TenantID)
	if err != nil {
		return err
	}
	out := []subWire{}
	for _, s := range subs {
		// Only the subscriptions the caller may read are listed.
		if c.h.svc.engine.Authorize(c.p, authz.SubscriptionsRead, authz.Scope{TenantID: s.TenantID, SubscriptionID: s.ID}).Allowed ||
			c.h.svc.engine.Authorize(c.p, authz.VaultsRead, authz.Scope{TenantID: s.TenantID, SubscriptionID: s.ID}).Allowed {
			out = append(out, subOut(s))
		}
	}
	c.reply(http.StatusOK, map[string]any{"value": out})
	return nil
}

func (c *call) getSubscription() error {
	c.reply(http.StatusOK, subOut(c.sub))
	return nil
}

type rgWire struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	Tags       map[string]string `json:"tags,omitempty"`
	Properties map[string]string `json:"properties"`
}

func rgOut(rg *ResourceGroup) rgWire {
	return rgWire{ID: "/subscriptions/" + rg.SubscriptionID + "/resourceGroups/" + rg.Name, Name: rg.Name,
		Type: "Microsoft.Resources/resourceGroups", Location: rg.Location, Tags: rg.Tags,
		Properties: map[string]string{"provisioningState": "Succeeded"}}
}

func (c *call) listResourceGroups(subID string) error {
	c.ev.Operation = "ResourceGroupList"
	sub, err := c.subscription(subID)
	if err != nil {
		return err
	}
	rgs, err := c.h.svc.ResourceGroups(c.r.Context(), sub.ID)
	if err != nil {
		return err
	}
	out := []rgWire{}
	for _, rg := range rgs {
		if c.h.svc.engine.Authorize(c.p, authz.ResourceGroupsRead, authz.Scope{TenantID: sub.TenantID, SubscriptionID: sub.ID, ResourceGroup: rg.Name}).Allowed {
			out = append(out, rgOut(rg))
		}
	}
	c.reply(http.StatusOK, map[string]any{"value": out})
	return nil
}

func validRGName(n string) bool {
	if n == "" || len(n) > 90 || strings.HasSuffix(n, ".") {
		return false
	}
	for _, r := range n {
		if !(r == '-' || r == '_' || r == '.' || r == '(' || r == ')' || r >= '0' && r <= '9' || r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z') {
			return false
		}
	}
	return true
}

func (c *call) getResourceGroup(name string) error {
	rg, err := c.h.svc.ResourceGroup(c.r.Context(), c.sub.ID, name)
	if err != nil {
		return errNotFound("ResourceGroupNotFound", "Resource group '%s' could not be found.", clip(name))
	}
	if c.r.Method == http.MethodHead {
		c.reply(http.StatusNoContent, nil)
		return nil
	}
	c.reply(http.StatusOK, rgOut(rg))
	return nil
}

func (c *call) putResourceGroup(name string) error {
	if !validRGName(name) {
		return errBad("InvalidResourceGroup", "The provided resource group name '%s' has these invalid characters or is too long.", clip(name))
	}
	var body struct {
		Location string            `json:"location"`
		Tags     map[string]string `json:"tags"`
	}
	if err := c.decode(&body); err != nil {
		return err
	}
	if body.Location == "" {
		return errBad("LocationRequired", "The location property is required for this definition.")
	}
	if err := parseTags(body.Tags); err != nil {
		return err
	}
	rg, created, err := c.h.svc.PutResourceGroup(c.r.Context(), ResourceGroup{SubscriptionID: c.sub.ID, Name: name,
		Location: strings.ToLower(body.Location), Tags: body.Tags})
	if err != nil {
		return err
	}
	status := http.StatusOK
	if created {
		status = http.StatusCreated
	}
	c.reply(status, rgOut(rg))
	return nil
}

func (c *call) deleteResourceGroup(name string) error {
	err := c.h.svc.DeleteResourceGroup(c.r.Context(), c.sub.ID, name)
	if errors.Is(err, storage.ErrNotFound) {
		c.reply(http.StatusNoContent, nil)
		return nil
	}
	if err != nil {
		return err
	}
	c.reply(http.StatusOK, nil)
	return nil
}

// otherMethod answers a method a resource group or vault does not serve,
// once the subscription is known to be the caller's.
func (c *call) otherMethod(subID string) error {
	if _, err := c.subscription(subID); err != nil {
		return err
	}
	return &armError{status: http.StatusMethodNotAllowed, code: "MethodNotAllowed", message: "The method is not allowed on this resource."}
}

// --- vaults ---

// vaultIn finds vault name in the addressed subscription and group.
func (c *call) vaultIn(sub *Subscription, rg, name string) (*vault.Vault, error) {
	v, err := c.h.svc.vaults.Vault(name)
	if err != nil || !strings.EqualFold(v.SubscriptionID, sub.ID) || !strings.EqualFold(v.ResourceGroup, rg) {
		return nil, errNotFound("ResourceNotFound", "The Resource 'Microsoft.KeyVault/vaults/%s' under resource group '%s' was not found. For more details please go to https://aka.ms/ARMResourceNotFoundFix", clip(name), clip(rg))
	}
	return v, nil
}

func (c *call) listVaults(subID, rg string) error {
	c.ev.Operation = "VaultList"
	sub, err := c.subscription(subID)
	if err != nil {
		return err
	}
	out := []vaultWire{}
	for _, v := range c.h.svc.vaults.Vaults() {
		if !strings.EqualFold(v.SubscriptionID, sub.ID) || (rg != "" && !strings.EqualFold(v.ResourceGroup, rg)) {
			continue
		}
		s := authz.Scope{TenantID: v.TenantID, SubscriptionID: v.SubscriptionID, ResourceGroup: v.ResourceGroup, Vault: v.Name}
		if !c.h.svc.engine.Authorize(c.p, authz.VaultsRead, s).Allowed {
			continue
		}
		p, err := c.h.svc.Props(c.r.Context(), v)
		if err != nil {
			return err
		}
		out = append(out, c.vaultOut(v, p))
	}
	c.reply(http.StatusOK, map[string]any{"value": out})
	return nil
}

// listResources is the generic resource list armkeyvault's NewListPager
// uses (resourceType filter).
func (c *call) listResources(subID string) error {
	c.ev.Operation = "ResourceList"
	sub, err := c.subscription(subID)
	if err != nil {
		return err
	}
	f := strings.ToLower(c.q.Get("$filter"))
	type res struct {
		ID       string            `json:"id"`
		Name     string            `json:"name"`
		Type     string            `json:"type"`
		Location string            `json:"location"`
		Tags     map[string]string `json:"tags"`
	}
	out := []res{}
	if f == "" || strings.Contains(f, "microsoft.keyvault/vaults") {
		for _, v := range c.h.svc.vaults.Vaults() {
			s := authz.Scope{TenantID: v.TenantID, SubscriptionID: v.SubscriptionID, ResourceGroup: v.ResourceGroup, Vault: v.Name}
			if !strings.EqualFold(v.SubscriptionID, sub.ID) || !c.h.svc.engine.Authorize(c.p, authz.VaultsRead, s).Allowed {
				continue
			}
			p, err := c.h.svc.Props(c.r.Context(), v)
			if err != nil {
				return err
			}
			tags := p.Tags
			if tags == nil {
				tags = map[string]string{}
			}
			out = append(out, res{ID: vaultID(v), Name: v.Name, Type: "Microsoft.KeyVault/vaults", Location: v.Location, Tags: tags})
		}
	}
	c.reply(http.StatusOK, map[string]any{"value": out})
	return nil
}

func (c *call) getVault(rg, name string) error {
	v, err := c.vaultIn(c.sub, rg, name)
	if err != nil {
		return err
	}
	p, err := c.h.svc.Props(c.r.Context(), v)
	if err != nil {
		return err
	}
	c.reply(http.StatusOK, c.vaultOut(v, p))
	return nil
}

// writeVault creates or updates (patch) a vault.
func (c *call) writeVault(rg, name string, patch bool) error {
	var body vaultRequest
	if err := c.decode(&body); err != nil {
		return err
	}
	return c.putVault(c.r.Context(), c.sub, rg, name, &body, patch)
}

func (c *call) deleteVault(rg, name string) error {
	ctx := c.r.Context()
	v, err := c.vaultIn(c.sub, rg, name)
	if err != nil {
		c.reply(http.StatusNoContent, nil)
		return nil
	}
	if _, err := c.h.svc.vaults.SoftDeleteVault(ctx, v.Name); err != nil {
		return err
	}
	if err := c.h.svc.Reload(ctx); err != nil {
		return err
	}
	c.reply(http.StatusOK, nil)
	return nil
}

// createdAfter2026 reports whether an api-version is 2026-02-01 or later:
// from then enableRbacAuthorization defaults to true on create
// (AZURE-API.md §6).
func createdAfter2026(apiVersion string) bool { return apiVersion >= "2026-02-01" }

func (c *call) putVault(ctx context.Context, sub *Subscription, rg, name string, body *vaultRequest, patch bool) error {
	if body.Properties == nil {
		if !patch {
			return errBad("BadRequest", "The 'properties' property is required.")
		}
		body.Properties = &vaultRequestProps{}
	}
	pr := body.Properties
	if pr.TenantID != nil && !strings.EqualFold(*pr.TenantID, sub.TenantID) {
		return errBad("BadRequest", "properties.tenantId must be the tenant of the subscription (%s).", sub.TenantID)
	}
	if pr.EnableSoftDelete != nil && !*pr.EnableSoftDelete {
		return errBad("BadRequest", "Soft delete cannot be disabled: it is always on for Keyward vaults.")
	}
	if err := parseTags(body.Tags); err != nil {
		return err
	}
	var skuName string
	if pr.SKU != nil {
		skuName = strings.ToLower(pr.SKU.Name)
		if skuName != "standard" && skuName != "premium" || (pr.SKU.Family != "" && pr.SKU.Family != "A") {
			return errBad("BadRequest", "sku must be {family: A, name: standard|premium}.")
		}
	}
	props := &VaultProps{}
	var aps []authz.AccessPolicy
	if pr.AccessPolicies != nil {
		var err error
		if aps, err = parseAccessPolicies(*pr.AccessPolicies); err != nil {
			return err
		}
	}
	if pr.NetworkACLs != nil {
		if err := parseNetwork(pr.NetworkACLs, props); err != nil {
			return err
		}
	}
	if pr.PublicNetworkAccess != nil {
		switch strings.ToLower(*pr.PublicNetworkAccess) {
		case "enabled", "disabled":
		default:
			return errBad("BadRequest", "publicNetworkAccess must be Enabled or Disabled.")
		}
	}
	if pr.SoftDeleteRetentionInDays != nil && (*pr.SoftDeleteRetentionInDays < 7 || *pr.SoftDeleteRetentionInDays > 90) {
		return errBad("BadRequest", "softDeleteRetentionInDays must be between 7 and 90.")
	}

	existing, err := c.vaultIn(sub, rg, name)
	if err != nil {
		existing = nil
	}
	if existing == nil && patch {
		return err
	}
	if _, taken := c.h.svc.vaults.Vault(name); existing == nil && taken == nil {
		return errConflict("VaultAlreadyExists", "The vault name '%s' is already in use.", clip(name))
	}
	if existing == nil && pr.CreateMode != nil && strings.EqualFold(*pr.CreateMode, "recover") {
		return c.recoverVault(ctx, sub, rg, name)
	}
	if existing == nil {
		// Create.
		if body.Location == nil || *body.Location == "" {
			return errBad("LocationRequired", "The location property is required for this definition.")
		}
		if pr.TenantID == nil || pr.SKU == nil {
			return errBad("BadRequest", "properties.tenantId and properties.sku are required.")
		}
		if _, err := c.h.svc.ResourceGroup(ctx, sub.ID, rg); err != nil {
			return errNotFound("ResourceGroupNotFound", "Resource group '%s' could not be found.", clip(rg))
		}
		if !vault.ValidVaultName(name) {
			return errBad("VaultNameNotValid", "The vault name '%s' is invalid. A vault's name must be between 3-24 alphanumeric characters. The name must begin with a letter, end with a letter or digit, and not contain consecutive hyphens.", clip(name))
		}
		if _, err := c.h.svc.vaults.DeletedVault(ctx, name); err == nil {
			return errConflict("ConflictError", "A vault with the same name already exists in deleted state. You need to either recover or purge existing key vault.")
		}
		props.RBAC = createdAfter2026(c.q.Get("api-version"))
		if pr.EnableRbacAuthorization != nil {
			props.RBAC = *pr.EnableRbacAuthorization
		}
		props.AccessPolicies = aps
		if pr.PublicNetworkAccess != nil {
			props.PublicNetworkAccess = titleCase(*pr.PublicNetworkAccess)
		}
		props.Tags = body.Tags
		setFlags(props, pr.EnabledForDeployment, pr.EnabledForDiskEncryption, pr.EnabledForTemplateDeployment)
		props.CreatedBy, props.CreatedByType = c.p.ObjectID, c.principalType()
		props.LastModifiedBy, props.LastModifiedByType = props.CreatedBy, props.CreatedByType
		retention := 90
		if pr.SoftDeleteRetentionInDays != nil {
			retention = *pr.SoftDeleteRetentionInDays
		}
		v, err := c.h.svc.CreateVault(ctx, vault.Vault{Name: name, TenantID: sub.TenantID, SubscriptionID: sub.ID,
			ResourceGroup: rg, Location: strings.ToLower(*body.Location), SKU: skuName, RetentionDays: retention,
			PurgeProtected: pr.EnablePurgeProtection != nil && *pr.EnablePurgeProtection}, *props)
		if err != nil {
			return err
		}
		c.noteSelfGrant(v, nil, aps)
		p, err := c.h.svc.Props(ctx, v)
		if err != nil {
			return err
		}
		c.reply(http.StatusCreated, c.vaultOut(v, p))
		return nil
	}

	// Update (PUT replaces what it names; PATCH changes only what it names).
	v := existing
	if pr.SoftDeleteRetentionInDays != nil && *pr.SoftDeleteRetentionInDays != v.RetentionDays {
		return errBad("BadRequest", "softDeleteRetentionInDays cannot be changed after the vault is created.")
	}
	if pr.EnablePurgeProtection != nil && !*pr.EnablePurgeProtection && v.PurgeProtected {
		return errBad("BadRequest", "Purge protection cannot be disabled once it is enabled.")
	}
	if (pr.EnablePurgeProtection != nil && *pr.EnablePurgeProtection && !v.PurgeProtected) || (skuName != "" && skuName != v.SKU) ||
		(body.Location != nil && *body.Location != "" && !strings.EqualFold(*body.Location, v.Location)) {
		if body.Location != nil && *body.Location != "" && !strings.EqualFold(*body.Location, v.Location) {
			return errBad("LocationNotAvailableForResourceType", "The location of an existing vault cannot be changed.")
		}
		if v, err = c.h.svc.vaults.UpdateVault(ctx, v.Name, func(nv *vault.Vault) error {
			if pr.EnablePurgeProtection != nil && *pr.EnablePurgeProtection {
				nv.PurgeProtected = true
			}
			if skuName != "" {
				nv.SKU = skuName
			}
			return nil
		}); err != nil {
			return err
		}
	}
	var old []authz.AccessPolicy
	p, err := c.h.svc.SetVaultProps(ctx, v, func(p *VaultProps) error {
		old = p.AccessPolicies
		if pr.EnableRbacAuthorization != nil {
			p.RBAC = *pr.EnableRbacAuthorization
		}
		if pr.AccessPolicies != nil {
			p.AccessPolicies = aps
		} else if !patch {
			p.AccessPolicies = []authz.AccessPolicy{}
		}
		if pr.NetworkACLs != nil {
			if props.DefaultAction != "" {
				p.DefaultAction = props.DefaultAction
			}
			if props.Bypass != "" {
				p.Bypass = props.Bypass
			}
			if pr.NetworkACLs.IPRules != nil {
				p.IPRules = props.IPRules
			}
		}
		if pr.PublicNetworkAccess != nil {
			p.PublicNetworkAccess = titleCase(*pr.PublicNetworkAccess)
		}
		if body.Tags != nil || !patch {
			p.Tags = body.Tags
		}
		setFlags(p, pr.EnabledForDeployment, pr.EnabledForDiskEncryption, pr.EnabledForTemplateDeployment)
		p.LastModifiedBy, p.LastModifiedByType = c.p.ObjectID, c.principalType()
		return nil
	})
	if err != nil {
		return err
	}
	if pr.AccessPolicies != nil {
		c.noteSelfGrant(v, old, p.AccessPolicies)
	}
	c.reply(http.StatusOK, c.vaultOut(v, p))
	return nil
}

func titleCase(s string) string {
	if strings.EqualFold(s, "disabled") {
		return "Disabled"
	}
	return "Enabled"
}

func setFlags(p *VaultProps, dep, disk, tmpl *bool) {
	if dep != nil {
		p.EnabledForDeployment = *dep
	}
	if disk != nil {
		p.EnabledForDiskEncrypt = *disk
	}
	if tmpl != nil {
		p.EnabledForTemplateDepl = *tmpl
	}
}

func (c *call) principalType() string {
	if c.p.Delegated {
		return "User"
	}
	return "Application"
}

// noteSelfGrant makes the seed's warning visible in the audit log: a
// management-plane caller (e.g. Key Vault Contributor) that writes an
// access policy granting itself, or a group it is in, data-plane access.
func (c *call) noteSelfGrant(v *vault.Vault, before, after []authz.AccessPolicy) {
	ids := map[string]bool{strings.ToLower(c.p.ObjectID): true}
	if rec, ok := c.h.svc.engine.Index().Principal(c.p.TenantID, c.p.ObjectID); ok {
		for _, g := range rec.Groups {
			ids[strings.ToLower(g)] = true
		}
	}
	had := map[string]bool{}
	for _, a := range before {
		had[a.ObjectID+"|"+a.ApplicationID+"|"+strings.Join(a.Keys, ",")+"|"+strings.Join(a.Secrets, ",")+"|"+strings.Join(a.Certificates, ",")] = true
	}
	for _, a := range after {
		k := a.ObjectID + "|" + a.ApplicationID + "|" + strings.Join(a.Keys, ",") + "|" + strings.Join(a.Secrets, ",") + "|" + strings.Join(a.Certificates, ",")
		if ids[a.ObjectID] && !had[k] && (len(a.Keys)+len(a.Secrets)+len(a.Certificates)) > 0 {
			mode := "access-policy"
			if p, err := c.h.svc.Props(c.r.Context(), v); err == nil && p.RBAC {
				mode = "RBAC (inactive until the vault returns to access policies)"
			}
			c.ev.Reason = "self-grant: the caller gave itself data-plane access through an access policy on a " + mode + " vault (management-plane escalation path)"
			return
		}
	}
}

func (c *call) recoverVault(ctx context.Context, sub *Subscription, rg, name string) error {
	c.ev.Operation = "VaultRecover"
	dv, err := c.h.svc.vaults.DeletedVault(ctx, name)
	if err != nil || !strings.EqualFold(dv.Vault.SubscriptionID, sub.ID) || !strings.EqualFold(dv.Vault.ResourceGroup, rg) {
		return errNotFound("ResourceNotFound", "Deleted vault '%s' was not found in this resource group.", clip(name))
	}
	v, err := c.h.svc.vaults.RecoverVault(ctx, name)
	if err != nil {
		return err
	}
	if err := c.h.svc.Reload(ctx); err != nil {
		return err
	}
	p, err := c.h.svc.Props(ctx, v)
	if err != nil {
		return err
	}
	c.reply(http.StatusOK, c.vaultOut(v, p))
	return nil
}

func (c *call) updateAccessPolicies(rg, name, kind string) error {
	sub := c.sub
	if kind != "add" && kind != "replace" && kind != "remove" {
		return errBad("BadRequest", "The access policy operation must be add, replace or remove.")
	}
	v, err := c.vaultIn(sub, rg, name)
	if err != nil {
		return err
	}
	var body struct {
		Properties *struct {
			AccessPolicies []apWire `json:"accessPolicies"`
		} `json:"properties"`
	}
	if err := c.decode(&body); err != nil {
		return err
	}
	if body.Properties == nil {
		return errBad("BadRequest", "The 'properties.accessPolicies' property is required.")
	}
	in, err := parseAccessPolicies(body.Properties.AccessPolicies)
	if err != nil {
		return err
	}
	var before []authz.AccessPolicy
	p, err := c.h.svc.SetVaultProps(c.r.Context(), v, func(p *VaultProps) error {
		before = append([]authz.AccessPolicy(nil), p.AccessPolicies...)
		p.AccessPolicies = mergePolicies(p.AccessPolicies, in, kind)
		if len(p.AccessPolicies) > maxAccessPolicies {
			return errBad("AccessPolicyLimitExceeded", "A vault has at most %d access policies.", maxAccessPolicies)
		}
		return nil
	})
	if err != nil {
		return err
	}
	c.noteSelfGrant(v, before, p.AccessPolicies)
	c.reply(http.StatusOK, map[string]any{
		"id": vaultID(v) + "/accessPolicies/" + kind, "name": kind, "type": "Microsoft.KeyVault/vaults/accessPolicies",
		"location": v.Location, "properties": map[string]any{"accessPolicies": apsOut(p.AccessPolicies)},
	})
	return nil
}

func titleWord(s string) string {
	if s == "" {
		return s
	}
	return strings.ToUpper(s[:1]) + s[1:]
}

// mergePolicies applies an access-policy operation: add unions the
// permissions into the matching entry (tenant, object, application) or
// appends it; replace sets the matching entry's permissions; remove takes
// the named permissions away and drops entries left empty (or the whole
// entry when none are named).
func mergePolicies(cur, in []authz.AccessPolicy, kind string) []authz.AccessPolicy {
	out := append([]authz.AccessPolicy(nil), cur...)
	same := func(a, b authz.AccessPolicy) bool {
		return a.TenantID == b.TenantID && a.ObjectID == b.ObjectID && a.ApplicationID == b.ApplicationID
	}
	for _, e := range in {
		idx := -1
		for i := range out {
			if same(out[i], e) {
				idx = i
				break
			}
		}
		switch kind {
		case "add":
			if idx < 0 {
				out = append(out, e)
				continue
			}
			for _, p := range e.Keys {
				out[idx].Keys = appendUniqueFold(out[idx].Keys, p)
			}
			for _, p := range e.Secrets {
				out[idx].Secrets = appendUniqueFold(out[idx].Secrets, p)
			}
			for _, p := range e.Certificates {
				out[idx].Certificates = appendUniqueFold(out[idx].Certificates, p)
			}
			for _, p := range e.Storage {
				out[idx].Storage = appendUniqueFold(out[idx].Storage, p)
			}
		case "replace":
			if idx < 0 {
				out = append(out, e)
			} else {
				out[idx] = e
			}
		case "remove":
			if idx < 0 {
				continue
			}
			if len(e.Keys)+len(e.Secrets)+len(e.Certificates)+len(e.Storage) == 0 {
				out = append(out[:idx], out[idx+1:]...)
				continue
			}
			out[idx].Keys = removeFold(out[idx].Keys, e.Keys)
			out[idx].Secrets = removeFold(out[idx].Secrets, e.Secrets)
			out[idx].Certificates = removeFold(out[idx].Certificates, e.Certificates)
			out[idx].Storage = removeFold(out[idx].Storage, e.Storage)
			if len(out[idx].Keys)+len(out[idx].Secrets)+len(out[idx].Certificates)+len(out[idx].Storage) == 0 {
				out = append(out[:idx], out[idx+1:]...)
			}
		}
	}
	return out
}

func removeFold(list, drop []string) []string {
	var out []string
	for _, x := range list {
		keep := true
		for _, d := range drop {
			if strings.EqualFold(x, d) {
				keep = false
			}
		}
		if keep {
			out = append(out, x)
		}
	}
	return out
}

// --- deleted vaults and names ---

type deletedWire struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Properties struct {
		VaultID                string            `json:"vaultId"`
		Location               string            `json:"location"`
		DeletionDate           string            `json:"deletionDate"`
		ScheduledPurgeDate     string            `json:"scheduledPurgeDate"`
		Tags                   map[string]string `json:"tags"`
		PurgeProtectionEnabled bool              `json:"purgeProtectionEnabled"`
	} `json:"properties"`
}

// deletedOut is a deleted vault as ARM answers it; tags are the original
// vault's (DeletedVaultProperties.tags, "Tags of the original vault").
func deletedOut(dv *vault.DeletedVault, tags map[string]string) deletedWire {
	v := dv.Vault
	var w deletedWire
	w.ID = "/subscriptions/" + v.SubscriptionID + "/providers/Microsoft.KeyVault/locations/" + v.Location + "/deletedVaults/" + v.Name
	w.Name, w.Type = v.Name, "Microsoft.KeyVault/deletedVaults"
	w.Properties.VaultID = vaultID(&v)
	w.Properties.Location = v.Location
	w.Properties.DeletionDate = fmtTime(dv.DeletionDate)
	w.Properties.ScheduledPurgeDate = fmtTime(dv.ScheduledPurgeDate)
	w.Properties.Tags = tags
	if w.Properties.Tags == nil {
		w.Properties.Tags = map[string]string{}
	}
	w.Properties.PurgeProtectionEnabled = v.PurgeProtected
	return w
}

func (c *call) listDeletedVaults() error {
	sub := c.sub
	dvs, err := c.h.svc.vaults.DeletedVaults(c.r.Context())
	if err != nil {
		return err
	}
	out := []deletedWire{}
	for _, dv := range dvs {
		if strings.EqualFold(dv.Vault.SubscriptionID, sub.ID) {
			p, err := c.h.svc.Props(c.r.Context(), &dv.Vault)
			if err != nil {
				return err
			}
			out = append(out, deletedOut(dv, p.Tags))
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	c.reply(http.StatusOK, map[string]any{"value": out})
	return nil
}

func (c *call) deletedVault(sub *Subscription, loc, name string) (*vault.DeletedVault, error) {
	dv, err := c.h.svc.vaults.DeletedVault(c.r.Context(), name)
	if err != nil || !strings.EqualFold(dv.Vault.SubscriptionID, sub.ID) || !strings.EqualFold(dv.Vault.Location, loc) {
		return nil, errNotFound("ResourceNotFound", "Deleted vault '%s' was not found in location '%s'.", clip(name), clip(loc))
	}
	return dv, nil
}

func (c *call) getDeletedVault(loc, name string) error {
	dv, err := c.deletedVault(c.sub, loc, name)
	if err != nil {
		return err
	}
	p, err := c.h.svc.Props(c.r.Context(), &dv.Vault)
	if err != nil {
		return err
	}
	c.reply(http.StatusOK, deletedOut(dv, p.Tags))
	return nil
}

func (c *call) purgeDeletedVault(loc, name string) error {
	if _, err := c.deletedVault(c.sub, loc, name); err != nil {
		return err
	}
	if err := c.h.svc.PurgeVault(c.r.Context(), name); err != nil {
		return err
	}
	c.reply(http.StatusOK, nil)
	return nil
}

func (c *call) checkName() error {
	var body struct {
		Name string `json:"name"`
		Type string `json:"type"`
	}
	if err := c.decode(&body); err != nil {
		return err
	}
	if !strings.EqualFold(body.Type, "Microsoft.KeyVault/vaults") {
		return errBad("BadRequest", "type must be Microsoft.KeyVault/vaults.")
	}
	res := map[string]any{"nameAvailable": true}
	switch {
	case !vault.ValidVaultName(body.Name):
		res = map[string]any{"nameAvailable": false, "reason": "AccountNameInvalid",
			"message": "Vault name must be between 3-24 alphanumeric characters. The name must begin with a letter, end with a letter or digit, and not contain consecutive hyphens."}
	default:
		if _, err := c.h.svc.vaults.Vault(body.Name); err == nil {
			res = map[string]any{"nameAvailable": false, "reason": "AlreadyExists", "message": "The vault name '" + body.Name + "' is already in use."}
		} else if _, err := c.h.svc.vaults.DeletedVault(c.r.Context(), body.Name); err == nil {
			res = map[string]any{"nameAvailable": false, "reason": "AlreadyExists",
				"message": "The vault name '" + body.Name + "' is in use by a soft-deleted vault: recover or purge it."}
		}
	}
	c.reply(http.StatusOK, res)
	return nil
}
