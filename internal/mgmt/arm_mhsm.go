package mgmt

import (
	"net/http"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/mhsm"
	"github.com/keyward/keyward/internal/route"
)

// Microsoft.KeyVault/managedHSMs (armkeyvault ManagedHsmsClient): the pool
// resource. Create and delete complete at once (200, provisioningState
// Succeeded), so the SDK's pollers finish on the first response.

// ARM actions on pools.
const (
	actHSMRead   authz.Action = "Microsoft.KeyVault/managedHSMs/read"
	actHSMWrite  authz.Action = "Microsoft.KeyVault/managedHSMs/write"
	actHSMDelete authz.Action = "Microsoft.KeyVault/managedHSMs/delete"
	actHSMDelRd  authz.Action = "Microsoft.KeyVault/deletedManagedHsms/read"
	actHSMPurge  authz.Action = "Microsoft.KeyVault/locations/deletedManagedHsms/purge/action"
)

// SetPools lets the management plane serve managed HSM pools; poolURL
// names a pool's data-plane URL (properties.hsmUri).
func (s *Service) SetPools(p *mhsm.Service, poolURL func(string) string) {
	s.pools, s.poolURL = p, poolURL
}

func mhsmRoutes() []route.Route[handler, authz.Action] {
	const (
		get, put, patch, del, post = http.MethodGet, http.MethodPut, http.MethodPatch, http.MethodDelete, http.MethodPost
		kv                         = "/subscriptions/{sub}/providers/Microsoft.KeyVault"
		rgKV                       = "/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault"
		hsm                        = rgKV + "/managedHSMs/{hsm}"
	)
	return []route.Route[handler, authz.Action]{
		{Method: get, Pattern: kv + "/managedHSMs", Op: "ManagedHsmList", Action: authz.SubscriptionsRead, Handle: func(c *call, p map[string]string) error { return c.listPools("") }},
		{Method: get, Pattern: kv + "/deletedManagedHSMs", Op: "DeletedManagedHsmList", Action: actHSMDelRd, Handle: func(c *call, p map[string]string) error { return c.listDeletedPools() }},
		{Method: get, Pattern: kv + "/locations/{loc}/deletedManagedHSMs/{name}", Op: "DeletedManagedHsmGet", Action: actHSMDelRd, Handle: func(c *call, p map[string]string) error { return c.getDeletedPool(p["name"]) }},
		{Method: post, Pattern: kv + "/locations/{loc}/deletedManagedHSMs/{name}/purge", Op: "DeletedManagedHsmPurge", Action: actHSMPurge, Handle: func(c *call, p map[string]string) error { return c.purgePool(p["name"]) }},
		{Method: get, Pattern: kv + "/locations/{loc}/managedHsmPurgeResults/{name}", Op: "DeletedManagedHsmPurgeStatus", Action: actHSMDelRd, Handle: func(c *call, p map[string]string) error { return c.purgeStatus(p["name"]) }},
		{Method: get, Pattern: rgKV + "/managedHSMs", Op: "ManagedHsmList", Action: authz.ResourceGroupsRead, Handle: func(c *call, p map[string]string) error { return c.listPools(p["rg"]) }},
		{Method: get, Pattern: hsm, Op: "ManagedHsmGet", Action: actHSMRead, Handle: func(c *call, p map[string]string) error { return c.getPool(p["rg"], p["hsm"]) }},
		{Method: put, Pattern: hsm, Op: "ManagedHsmCreateOrUpdate", Action: actHSMWrite, Handle: func(c *call, p map[string]string) error { return c.putPool(p["rg"], p["hsm"], false) }},
		{Method: patch, Pattern: hsm, Op: "ManagedHsmUpdate", Action: actHSMWrite, Handle: func(c *call, p map[string]string) error { return c.putPool(p["rg"], p["hsm"], true) }},
		{Method: del, Pattern: hsm, Op: "ManagedHsmDelete", Action: actHSMDelete, Handle: func(c *call, p map[string]string) error { return c.deletePool(p["rg"], p["hsm"]) }},
	}
}

type poolSKU struct {
	Family string `json:"family"`
	Name   string `json:"name"`
}

type poolProps struct {
	TenantID                  string   `json:"tenantId,omitempty"`
	InitialAdminObjectIDs     []string `json:"initialAdminObjectIds,omitempty"`
	HSMURI                    string   `json:"hsmUri,omitempty"`
	EnableSoftDelete          *bool    `json:"enableSoftDelete,omitempty"`
	SoftDeleteRetentionInDays *int     `json:"softDeleteRetentionInDays,omitempty"`
	EnablePurgeProtection     *bool    `json:"enablePurgeProtection,omitempty"`
	ProvisioningState         string   `json:"provisioningState,omitempty"`
	StatusMessage             string   `json:"statusMessage,omitempty"`
	PublicNetworkAccess       string   `json:"publicNetworkAccess,omitempty"`
	ScheduledPurgeDate        string   `json:"scheduledPurgeDate,omitempty"`
	SecurityDomainProperties  *struct {
		ActivationStatus        string `json:"activationStatus"`
		ActivationStatusMessage string `json:"activationStatusMessage"`
	} `json:"securityDomainProperties,omitempty"`
}

type poolWire struct {
	ID         string            `json:"id"`
	Name       string            `json:"name"`
	Type       string            `json:"type"`
	Location   string            `json:"location"`
	SKU        *poolSKU          `json:"sku,omitempty"`
	Tags       map[string]string `json:"tags"`
	Properties *poolProps        `json:"properties"`
}

func poolID(p *mhsm.Pool) string {
	return "/subscriptions/" + p.SubscriptionID + "/resourceGroups/" + p.ResourceGroup + "/providers/Microsoft.KeyVault/managedHSMs/" + p.Name
}

func (c *call) poolOut(p *mhsm.Pool) poolWire {
	t, ret, pp := true, p.RetentionDays, p.PurgeProtection
	pr := &poolProps{TenantID: p.TenantID, InitialAdminObjectIDs: p.InitialAdmins, EnableSoftDelete: &t,
		SoftDeleteRetentionInDays: &ret, EnablePurgeProtection: &pp, ProvisioningState: "Succeeded",
		StatusMessage: "The Managed HSM is provisioned and ready to use.", PublicNetworkAccess: p.PublicNetworkAccess}
	if c.h.svc.poolURL != nil {
		pr.HSMURI = c.h.svc.poolURL(p.Name)
	}
	pr.SecurityDomainProperties = &struct {
		ActivationStatus        string `json:"activationStatus"`
		ActivationStatusMessage string `json:"activationStatusMessage"`
	}{p.Status, p.StatusMessage}
	tags := p.Tags
	if tags == nil {
		tags = map[string]string{}
	}
	return poolWire{ID: poolID(p), Name: p.Name, Type: "Microsoft.KeyVault/managedHSMs", Location: p.Location,
		SKU: &poolSKU{Family: "B", Name: p.SKU}, Tags: tags, Properties: pr}
}

func (c *call) pools() (*mhsm.Service, error) {
	if c.h.svc.pools == nil {
		return nil, errBad("InvalidResourceType", "Managed HSM pools are not available on this Keyward instance.")
	}
	return c.h.svc.pools, nil
}

func (c *call) poolIn(rg, name string) (*mhsm.Pool, error) {
	ps, err := c.pools()
	if err != nil {
		return nil, err
	}
	p, err := ps.Get(name)
	if err != nil || !strings.EqualFold(p.SubscriptionID, c.sub.ID) || !strings.EqualFold(p.ResourceGroup, rg) {
		return nil, errNotFound("ResourceNotFound", "The Resource 'Microsoft.KeyVault/managedHSMs/%s' under resource group '%s' was not found.", clip(name), clip(rg))
	}
	return p, nil
}

func (c *call) listPools(rg string) error {
	ps, err := c.pools()
	if err != nil {
		return err
	}
	out := []poolWire{}
	for _, p := range ps.List(false) {
		if strings.EqualFold(p.SubscriptionID, c.sub.ID) && (rg == "" || strings.EqualFold(p.ResourceGroup, rg)) {
			out = append(out, c.poolOut(p))
		}
	}
	c.reply(http.StatusOK, map[string]any{"value": out})
	return nil
}

func (c *call) getPool(rg, name string) error {
	p, err := c.poolIn(rg, name)
	if err != nil {
		return err
	}
	c.reply(http.StatusOK, c.poolOut(p))
	return nil
}

func (c *call) putPool(rg, name string, patch bool) error {
	ps, err := c.pools()
	if err != nil {
		return err
	}
	var body struct {
		Location   string            `json:"location"`
		SKU        *poolSKU          `json:"sku"`
		Tags       map[string]string `json:"tags"`
		Properties *poolProps        `json:"properties"`
	}
	if err := c.decode(&body); err != nil {
		return err
	}
	if err := parseTags(body.Tags); err != nil {
		return err
	}
	pr := body.Properties
	if pr == nil {
		pr = &poolProps{}
	}
	if pr.PublicNetworkAccess != "" && !strings.EqualFold(pr.PublicNetworkAccess, "Enabled") && !strings.EqualFold(pr.PublicNetworkAccess, "Disabled") {
		return errBad("BadRequest", "publicNetworkAccess must be Enabled or Disabled.")
	}
	if body.SKU != nil && body.SKU.Name != "" && !strings.HasPrefix(body.SKU.Name, "Standard_B") && !strings.HasPrefix(body.SKU.Name, "Custom_B") {
		return errBad("BadRequest", "sku.name must be Standard_B1, Custom_B32 or Custom_B6.")
	}
	if existing, err := c.poolIn(rg, name); err == nil {
		if pr.TenantID != "" && !strings.EqualFold(pr.TenantID, existing.TenantID) {
			return errBad("BadRequest", "The tenant of a managed HSM cannot change.")
		}
		p, err := ps.Update(c.r.Context(), name, func(p *mhsm.Pool) error {
			if body.Tags != nil || !patch {
				p.Tags = body.Tags
			}
			if pr.PublicNetworkAccess != "" {
				p.PublicNetworkAccess = pr.PublicNetworkAccess
			}
			if pr.EnablePurgeProtection != nil {
				if p.PurgeProtection && !*pr.EnablePurgeProtection {
					return errBad("BadRequest", "Purge protection cannot be disabled once enabled.")
				}
				p.PurgeProtection = *pr.EnablePurgeProtection
			}
			return nil
		})
		if err != nil {
			return err
		}
		c.reply(http.StatusOK, c.poolOut(p))
		return nil
	}
	if patch {
		return errNotFound("ResourceNotFound", "The Resource 'Microsoft.KeyVault/managedHSMs/%s' under resource group '%s' was not found.", clip(name), clip(rg))
	}
	if pr.TenantID != "" && !strings.EqualFold(pr.TenantID, c.sub.TenantID) {
		return errBad("BadRequest", "properties.tenantId must be the tenant of the subscription (%s).", c.sub.TenantID)
	}
	if pr.EnableSoftDelete != nil && !*pr.EnableSoftDelete {
		return errBad("BadRequest", "Soft delete cannot be disabled for a managed HSM.")
	}
	if _, err := c.h.svc.ResourceGroup(c.r.Context(), c.sub.ID, rg); err != nil {
		return errNotFound("ResourceGroupNotFound", "Resource group '%s' could not be found.", clip(rg))
	}
	np := mhsm.Pool{Name: name, TenantID: c.sub.TenantID, SubscriptionID: c.sub.ID, ResourceGroup: rg,
		Location: strings.ToLower(body.Location), InitialAdmins: pr.InitialAdminObjectIDs, Tags: body.Tags,
		PublicNetworkAccess: pr.PublicNetworkAccess}
	if body.SKU != nil {
		np.SKU = body.SKU.Name
	}
	if pr.SoftDeleteRetentionInDays != nil {
		np.RetentionDays = *pr.SoftDeleteRetentionInDays
	}
	if pr.EnablePurgeProtection != nil {
		np.PurgeProtection = *pr.EnablePurgeProtection
	}
	p, err := ps.Create(c.r.Context(), np)
	if err != nil {
		return poolErr(err)
	}
	c.reply(http.StatusOK, c.poolOut(p))
	return nil
}

// poolErr words the pool domain's errors for ARM.
func poolErr(err error) error {
	e, ok := err.(*mhsm.Error)
	if !ok {
		return err
	}
	switch e.Kind {
	case errs.BadParameter:
		return errBad("BadRequest", "%s", e.Msg)
	case errs.Conflict:
		return errConflict("ConflictError", "%s", e.Msg)
	case errs.NotFound:
		return errNotFound("ResourceNotFound", "%s", e.Msg)
	}
	return err
}

func (c *call) deletePool(rg, name string) error {
	p, err := c.poolIn(rg, name)
	if err != nil {
		c.reply(http.StatusNoContent, nil)
		return nil
	}
	if err := c.h.svc.pools.Delete(c.r.Context(), p.Name); err != nil {
		return poolErr(err)
	}
	c.reply(http.StatusOK, nil)
	return nil
}

type deletedPoolWire struct {
	ID         string `json:"id"`
	Name       string `json:"name"`
	Type       string `json:"type"`
	Properties struct {
		MHSMID                 string            `json:"mhsmId"`
		Location               string            `json:"location"`
		DeletionDate           string            `json:"deletionDate"`
		ScheduledPurgeDate     string            `json:"scheduledPurgeDate"`
		PurgeProtectionEnabled bool              `json:"purgeProtectionEnabled"`
		Tags                   map[string]string `json:"tags"`
	} `json:"properties"`
}

func (c *call) deletedPoolOut(p *mhsm.Pool) deletedPoolWire {
	var w deletedPoolWire
	w.ID = "/subscriptions/" + p.SubscriptionID + "/providers/Microsoft.KeyVault/locations/" + p.Location + "/deletedManagedHSMs/" + p.Name
	w.Name, w.Type = p.Name, "Microsoft.KeyVault/deletedManagedHSMs"
	w.Properties.MHSMID, w.Properties.Location = poolID(p), p.Location
	w.Properties.DeletionDate = p.Deleted.UTC().Format(time.RFC3339)
	w.Properties.ScheduledPurgeDate = p.ScheduledPurge.UTC().Format(time.RFC3339)
	w.Properties.PurgeProtectionEnabled, w.Properties.Tags = p.PurgeProtection, p.Tags
	return w
}

func (c *call) listDeletedPools() error {
	ps, err := c.pools()
	if err != nil {
		return err
	}
	out := []deletedPoolWire{}
	for _, p := range ps.List(true) {
		if strings.EqualFold(p.SubscriptionID, c.sub.ID) {
			out = append(out, c.deletedPoolOut(p))
		}
	}
	c.reply(http.StatusOK, map[string]any{"value": out})
	return nil
}

func (c *call) deletedPoolIn(name string) (*mhsm.Pool, error) {
	ps, err := c.pools()
	if err != nil {
		return nil, err
	}
	p, err := ps.GetDeleted(name)
	if err != nil || !strings.EqualFold(p.SubscriptionID, c.sub.ID) {
		return nil, errNotFound("ResourceNotFound", "Deleted managed HSM %s was not found.", clip(name))
	}
	return p, nil
}

func (c *call) getDeletedPool(name string) error {
	p, err := c.deletedPoolIn(name)
	if err != nil {
		return err
	}
	c.reply(http.StatusOK, c.deletedPoolOut(p))
	return nil
}

func (c *call) purgePool(name string) error {
	p, err := c.deletedPoolIn(name)
	if err != nil {
		return err
	}
	if err := c.h.svc.pools.Purge(c.r.Context(), p.Name); err != nil {
		return poolErr(err)
	}
	// armkeyvault accepts only 202 here, which needs a status URL.
	u := "https://" + c.r.Host + "/subscriptions/" + c.sub.ID + "/providers/Microsoft.KeyVault/locations/" + p.Location +
		"/managedHsmPurgeResults/" + p.Name + "?api-version=" + c.q.Get("api-version")
	c.w.Header().Set("Azure-AsyncOperation", u)
	c.reply(http.StatusAccepted, nil)
	return nil
}

// purgeStatus is the status of a pool's purge: Succeeded once the pool is
// gone (a purge completes before its 202).
func (c *call) purgeStatus(name string) error {
	status := "Succeeded"
	if _, err := c.deletedPoolIn(name); err == nil {
		status = "InProgress"
	}
	c.reply(http.StatusOK, map[string]string{"status": status})
	return nil
}
