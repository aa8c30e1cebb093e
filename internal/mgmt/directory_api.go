package mgmt

import (
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/identity"
)

// Keyward's directory API, on the management host under
// /providers/Keyward.Directory/ (api-version 2026-01-01). In Azure these
// are Microsoft Graph's; Keyward keeps them beside ARM, authorized by
// the Keyward Directory Administrator role at the tenant root "/". The
// tenant is always the caller's.
//
//	POST   servicePrincipals                          {displayName}
//	GET    servicePrincipals
//	POST   servicePrincipals/{appId}/secrets          {expiresInDays}  -> secretText (once)
//	POST   servicePrincipals/{appId}/certificates     {certificate: PEM or base64 DER}
//	PUT    servicePrincipals/{appId}/federatedIdentityCredentials/{name} {issuer, subject, audiences}
//	DELETE servicePrincipals/{appId}/federatedIdentityCredentials/{name}
//	PUT    servicePrincipals/{appId}/trustedService   {trusted}
//	POST   managedIdentities                          {name, type, resourceId}
//	POST   users                                      {userPrincipalName, displayName, password}
//	POST   users/{objectId}/totp                      -> secret and otpauth URI (once)
//	POST   groups                                     {displayName}
//	PUT    groups/{objectId}/members/{memberId}
//	DELETE groups/{objectId}/members/{memberId}
//	GET    principals
//	DELETE principals/{objectId}                      (tokens stop working at once)
//	POST   workloadBindings                           {name, identities, allowedSources, headerless, expiresInHours}
//	GET    workloadBindings
//	POST   workloadBindings/{id}/rotate
//	DELETE workloadBindings/{id}
//	PUT    issuers                                    {issuer, jwks}
//	POST   subscriptions                              {displayName}: the caller becomes Owner
func (c *call) routeDirectory(rest []string) error {
	ctx := c.r.Context()
	root := authz.Scope{TenantID: c.p.TenantID}
	low := make([]string, len(rest))
	for i, s := range rest {
		low[i] = strings.ToLower(s)
	}
	is := func(method string, pattern ...string) bool {
		if c.r.Method != method || len(low) != len(pattern) {
			return false
		}
		for i, p := range pattern {
			if p != "*" && low[i] != p {
				return false
			}
		}
		return true
	}
	write := func(op string) error {
		c.ev.Operation = op
		return c.authorize(authz.DirectoryWrite, root)
	}
	dir := c.h.svc.dir
	now := c.h.svc.clock.Now()
	tenant := c.p.TenantID
	switch {
	case is(http.MethodGet, "principals"), is(http.MethodGet, "serviceprincipals"):
		c.ev.Operation = "DirectoryList"
		if err := c.authorize(authz.DirectoryRead, root); err != nil {
			return err
		}
		return c.listPrincipals(low[0] == "serviceprincipals")

	case is(http.MethodPost, "serviceprincipals"):
		if err := write("ServicePrincipalCreate"); err != nil {
			return err
		}
		var b struct {
			DisplayName string `json:"displayName"`
		}
		if err := c.decode(&b); err != nil {
			return err
		}
		if b.DisplayName == "" || len(b.DisplayName) > 256 {
			return errBad("BadRequest", "displayName must be 1-256 characters.")
		}
		sp, err := dir.CreateServicePrincipal(ctx, tenant, b.DisplayName, now)
		if err != nil {
			return err
		}
		c.ev.ObjectID = sp.ObjectID
		return c.changed(http.StatusCreated, map[string]any{"appId": sp.AppID, "objectId": sp.ObjectID, "displayName": sp.DisplayName})

	case is(http.MethodPost, "serviceprincipals", "*", "secrets"):
		if err := write("ClientSecretAdd"); err != nil {
			return err
		}
		var b struct {
			ExpiresInDays int `json:"expiresInDays"`
		}
		if err := c.decode(&b); err != nil {
			return err
		}
		if b.ExpiresInDays < 0 || b.ExpiresInDays > 730 {
			return errBad("BadRequest", "expiresInDays must be 0 (default 180) to 730.")
		}
		if b.ExpiresInDays == 0 {
			b.ExpiresInDays = 180
		}
		if sp, err := dir.ServicePrincipal(ctx, tenant, rest[1]); err != nil || sp.IsManagedIdentity() {
			return errNotFound("ResourceNotFound", "Application '%s' was not found.", clip(rest[1]))
		}
		exp := now.Add(time.Duration(b.ExpiresInDays) * 24 * time.Hour).UTC()
		secret, err := dir.AddClientSecret(ctx, tenant, rest[1], now, &exp)
		if err != nil {
			return err
		}
		c.w.Header().Set("Cache-Control", "no-store")
		c.reply(http.StatusCreated, map[string]any{"secretText": secret, "endDateTime": fmtTime(exp)})
		return nil

	case is(http.MethodPost, "serviceprincipals", "*", "certificates"):
		if err := write("ClientCertificateAdd"); err != nil {
			return err
		}
		var b struct {
			Certificate string `json:"certificate"`
		}
		if err := c.decode(&b); err != nil {
			return err
		}
		der := []byte(nil)
		if blk, _ := pem.Decode([]byte(b.Certificate)); blk != nil && blk.Type == "CERTIFICATE" {
			der = blk.Bytes
		} else if raw, err := base64.StdEncoding.DecodeString(strings.TrimSpace(b.Certificate)); err == nil {
			der = raw
		}
		if _, err := x509.ParseCertificate(der); err != nil {
			return errBad("BadRequest", "certificate must be a PEM or base64 DER X.509 certificate.")
		}
		cc, err := dir.AddCertificate(ctx, tenant, rest[1], der, now)
		if err != nil {
			return err
		}
		c.reply(http.StatusCreated, map[string]any{"id": cc.ID,
			"thumbprintSha256": base64.RawURLEncoding.EncodeToString(cc.ThumbprintSHA256), "endDateTime": fmtTime(cc.NotAfter)})
		return nil

	case len(low) == 4 && low[0] == "serviceprincipals" && low[2] == "federatedidentitycredentials":
		if err := write("FederatedCredential" + titleWord(strings.ToLower(c.r.Method))); err != nil {
			return err
		}
		switch c.r.Method {
		case http.MethodPut:
			var b identity.FederatedCredential
			if err := c.decode(&b); err != nil {
				return err
			}
			b.Name = rest[3]
			if err := dir.SetFederatedCredential(ctx, tenant, rest[1], b); err != nil {
				return err
			}
			c.reply(http.StatusOK, b)
		case http.MethodDelete:
			if err := dir.DeleteFederatedCredential(ctx, tenant, rest[1], rest[3]); err != nil {
				return err
			}
			c.reply(http.StatusNoContent, nil)
		default:
			return errBad("BadRequest", "Use PUT or DELETE.")
		}
		return nil

	case is(http.MethodPut, "serviceprincipals", "*", "trustedservice"):
		c.ev.Operation = "TrustedServiceSet"
		if err := c.authorize(authz.DirectoryTrustServices, root); err != nil {
			return err
		}
		var b struct {
			Trusted bool `json:"trusted"`
		}
		if err := c.decode(&b); err != nil {
			return err
		}
		sp, err := dir.UpdateServicePrincipal(ctx, tenant, rest[1], func(sp *identity.ServicePrincipal) error {
			sp.TrustedService = b.Trusted
			return nil
		})
		if err != nil {
			return err
		}
		c.ev.ObjectID = sp.ObjectID
		return c.changed(http.StatusOK, map[string]any{"appId": sp.AppID, "objectId": sp.ObjectID, "trustedService": sp.TrustedService})

	case is(http.MethodPost, "managedidentities"):
		if err := write("ManagedIdentityCreate"); err != nil {
			return err
		}
		var b struct {
			Name       string `json:"name"`
			Type       string `json:"type"`
			ResourceID string `json:"resourceId"`
		}
		if err := c.decode(&b); err != nil {
			return err
		}
		if b.Type == "" {
			b.Type = "UserAssigned"
		}
		mi, err := dir.CreateManagedIdentity(ctx, tenant, b.Name, b.Type, b.ResourceID, now)
		if err != nil {
			return err
		}
		c.ev.ObjectID = mi.ObjectID
		return c.changed(http.StatusCreated, map[string]any{"clientId": mi.AppID, "principalId": mi.ObjectID,
			"type": mi.MIType, "resourceId": mi.ResourceID, "tenantId": mi.TenantID})

	case is(http.MethodPost, "users"):
		if err := write("UserCreate"); err != nil {
			return err
		}
		var b struct {
			UserPrincipalName string `json:"userPrincipalName"`
			DisplayName       string `json:"displayName"`
			Password          string `json:"password"`
		}
		if err := c.decode(&b); err != nil {
			return err
		}
		u, err := dir.CreateUser(ctx, tenant, b.UserPrincipalName, b.DisplayName, b.Password, now)
		if err != nil {
			return err
		}
		c.ev.ObjectID = u.ObjectID
		return c.changed(http.StatusCreated, map[string]any{"objectId": u.ObjectID, "userPrincipalName": u.UserPrincipalName})

	case is(http.MethodPost, "users", "*", "totp"):
		if err := write("UserTOTPEnroll"); err != nil {
			return err
		}
		u, err := dir.User(ctx, tenant, rest[1])
		if err != nil {
			return err
		}
		secret, b32, uri := identity.NewTOTPSecret("Keyward", u.UserPrincipalName)
		if _, err := dir.UpdateUser(ctx, tenant, u.ObjectID, func(x *identity.User) error {
			x.TOTPSecret, x.LastTOTPStep = secret, 0
			return nil
		}); err != nil {
			return err
		}
		c.w.Header().Set("Cache-Control", "no-store")
		c.reply(http.StatusOK, map[string]any{"secret": b32, "otpauthUri": uri})
		return nil

	case is(http.MethodPost, "groups"):
		if err := write("GroupCreate"); err != nil {
			return err
		}
		var b struct {
			DisplayName string `json:"displayName"`
		}
		if err := c.decode(&b); err != nil {
			return err
		}
		g, err := dir.CreateGroup(ctx, tenant, b.DisplayName, now)
		if err != nil {
			return err
		}
		c.ev.ObjectID = g.ObjectID
		return c.changed(http.StatusCreated, map[string]any{"objectId": g.ObjectID, "displayName": g.DisplayName})

	case len(low) == 4 && low[0] == "groups" && low[2] == "members":
		if err := write("GroupMember" + titleWord(strings.ToLower(c.r.Method))); err != nil {
			return err
		}
		var err error
		switch c.r.Method {
		case http.MethodPut:
			err = dir.AddMember(ctx, tenant, rest[1], rest[3])
		case http.MethodDelete:
			err = dir.RemoveMember(ctx, tenant, rest[1], rest[3])
		default:
			return errBad("BadRequest", "Use PUT or DELETE.")
		}
		if err != nil {
			return err
		}
		return c.changed(http.StatusOK, map[string]any{"groupId": strings.ToLower(rest[1]), "memberId": strings.ToLower(rest[3])})

	case is(http.MethodDelete, "principals", "*"):
		if err := write("PrincipalDelete"); err != nil {
			return err
		}
		c.ev.ObjectID = clip(rest[1])
		if _, err := uuid.Parse(rest[1]); err != nil {
			return errBad("BadRequest", "The object ID must be a GUID.")
		}
		kind, err := dir.DeletePrincipal(ctx, tenant, rest[1])
		if err != nil {
			return err
		}
		return c.changed(http.StatusOK, map[string]any{"objectId": strings.ToLower(rest[1]), "kind": kind, "deleted": true})

	case is(http.MethodPost, "workloadbindings"):
		if err := write("WorkloadBindingCreate"); err != nil {
			return err
		}
		var b struct {
			Name           string   `json:"name"`
			Identities     []string `json:"identities"`
			AllowedSources []string `json:"allowedSources"`
			Headerless     bool     `json:"headerless"`
			ExpiresInHours int      `json:"expiresInHours"`
		}
		if err := c.decode(&b); err != nil {
			return err
		}
		wb := identity.WorkloadBinding{TenantID: tenant, Name: b.Name, Identities: b.Identities,
			AllowedSources: b.AllowedSources, Headerless: b.Headerless}
		if b.ExpiresInHours < 0 || b.ExpiresInHours > 24*366 {
			return errBad("BadRequest", "expiresInHours must be 0 (never) to 8784.")
		}
		if b.ExpiresInHours > 0 {
			e := now.Add(time.Duration(b.ExpiresInHours) * time.Hour).UTC()
			wb.Expires = &e
		}
		out, secret, err := dir.CreateBinding(ctx, wb, now)
		if err != nil {
			return err
		}
		c.ev.ObjectID = "binding/" + out.ID
		c.w.Header().Set("Cache-Control", "no-store")
		c.reply(http.StatusCreated, map[string]any{"binding": out, "identityHeader": secret,
			"identityEndpoint": c.h.authority.BaseURL() + "msi/token"})
		return nil

	case is(http.MethodGet, "workloadbindings"):
		c.ev.Operation = "WorkloadBindingList"
		if err := c.authorize(authz.DirectoryRead, root); err != nil {
			return err
		}
		bs, err := dir.ListBindings(ctx, tenant)
		if err != nil {
			return err
		}
		if bs == nil {
			bs = []*identity.WorkloadBinding{}
		}
		c.reply(http.StatusOK, map[string]any{"value": bs})
		return nil

	case is(http.MethodPost, "workloadbindings", "*", "rotate"):
		if err := write("WorkloadBindingRotate"); err != nil {
			return err
		}
		secret, err := dir.RotateBindingSecret(ctx, tenant, rest[1])
		if err != nil {
			return err
		}
		c.w.Header().Set("Cache-Control", "no-store")
		c.reply(http.StatusOK, map[string]any{"identityHeader": secret})
		return nil

	case is(http.MethodDelete, "workloadbindings", "*"):
		if err := write("WorkloadBindingDelete"); err != nil {
			return err
		}
		if err := dir.DeleteBinding(ctx, tenant, rest[1]); err != nil {
			return err
		}
		c.reply(http.StatusOK, nil)
		return nil

	case is(http.MethodPut, "issuers"):
		if err := write("FederatedIssuerKeysSet"); err != nil {
			return err
		}
		var b struct {
			Issuer string          `json:"issuer"`
			JWKS   json.RawMessage `json:"jwks"`
		}
		if err := c.decode(&b); err != nil {
			return err
		}
		if err := dir.SetIssuerKeys(ctx, tenant, b.Issuer, b.JWKS, now); err != nil {
			return err
		}
		c.reply(http.StatusOK, map[string]any{"issuer": b.Issuer})
		return nil

	case is(http.MethodPost, "subscriptions"):
		if err := write("SubscriptionCreate"); err != nil {
			return err
		}
		var b struct {
			DisplayName string `json:"displayName"`
		}
		if err := c.decode(&b); err != nil {
			return err
		}
		if b.DisplayName == "" || len(b.DisplayName) > 128 {
			return errBad("BadRequest", "displayName must be 1-128 characters.")
		}
		sub, err := c.h.svc.CreateSubscription(ctx, tenant, "", b.DisplayName)
		if err != nil {
			return err
		}
		if _, err := c.h.svc.Assign(ctx, authz.Assignment{TenantID: tenant, Scope: "/subscriptions/" + sub.ID,
			PrincipalID: c.p.ObjectID, PrincipalType: principalType(kindOf(c)), RoleDefinitionID: authz.RoleOwner, CreatedBy: c.p.ObjectID}); err != nil {
			return err
		}
		c.reply(http.StatusCreated, subOut(sub))
		return nil
	}
	return c.notFound()
}

// changed rebuilds the authorization index after a directory change (a
// deleted principal's tokens stop working here) and replies.
func (c *call) changed(status int, v any) error {
	if err := c.h.svc.Reload(c.r.Context()); err != nil {
		return err
	}
	c.reply(status, v)
	return nil
}

func (c *call) listPrincipals(spOnly bool) error {
	ps, err := c.h.svc.dir.Principals(c.r.Context())
	if err != nil {
		return err
	}
	type pw struct {
		ObjectID       string   `json:"objectId"`
		AppID          string   `json:"appId,omitempty"`
		Kind           string   `json:"kind"`
		DisplayName    string   `json:"displayName"`
		TrustedService bool     `json:"trustedService,omitempty"`
		MemberOf       []string `json:"memberOf,omitempty"`
	}
	out := []pw{}
	for _, p := range ps {
		if !strings.EqualFold(p.TenantID, c.p.TenantID) {
			continue
		}
		if spOnly && p.Kind != identity.KindServicePrincipal && p.Kind != identity.KindManagedIdentity {
			continue
		}
		out = append(out, pw{ObjectID: p.ObjectID, AppID: p.AppID, Kind: p.Kind, DisplayName: p.DisplayName, TrustedService: p.Trusted, MemberOf: p.Groups})
	}
	c.reply(http.StatusOK, map[string]any{"value": out})
	return nil
}
