package identity

import (
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"errors"
	"net/netip"
	"net/url"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/errs"
)

// Managed identities in a self-hosted deployment (IDENTITY.md §3, §9).
//
// Azure knows which VM or App Service a request to its identity endpoint
// comes from. Keyward cannot, so a workload is bound to its managed
// identities by a WorkloadBinding: an administrator creates one for a
// workload, naming the identities it may use, and gets a binding secret
// once. The workload's environment carries
//
//	IDENTITY_ENDPOINT=https://{keyward}/msi/token
//	IDENTITY_HEADER={binding secret}
//
// and an unmodified DefaultAzureCredential (Go, JS, Python, .NET) gets
// tokens from the App Service-shaped endpoint with nothing else. What makes
// the binding hard to steal or misuse:
//
//   - the secret is 256 random bits, shown once; only a salted SHA-256 of it
//     is stored, and it is compared in constant time;
//   - a binding may be pinned to source networks (AllowedSources): the
//     secret is useless from anywhere else (with trusted proxies, the
//     client address is taken from X-Forwarded-For);
//   - a binding names exactly the identities it may act as; a selector
//     (client_id, object_id, mi_res_id) outside that set is refused;
//   - it can expire, and deleting it or rotating its secret takes effect at
//     once; every token it yields is audited with the binding's ID;
//   - tokens are ordinary short-lived access tokens; nothing long-lived
//     reaches the workload beyond the binding secret itself.
//
// The IMDS (GET /metadata/identity/oauth2/token, Metadata: true) and Cloud
// Shell (POST, form resource=) shapes carry no secret: they are served
// only for bindings marked Headerless, by source address alone, which is
// meant for a node-local agent or a network namespace Keyward alone can
// reach (see docs/ACCESS.md).

// WorkloadBinding binds a workload to managed identities.
type WorkloadBinding struct {
	ID             string     `json:"id"`
	TenantID       string     `json:"tenantId"`
	Name           string     `json:"name"`
	Identities     []string   `json:"identities"` // app (client) IDs of managed identities
	Default        string     `json:"default"`    // used when the request names none
	AllowedSources []string   `json:"allowedSources,omitempty"`
	Headerless     bool       `json:"headerless,omitempty"`
	Expires        *time.Time `json:"expires,omitempty"`
	Created        time.Time  `json:"created"`
	Salt           []byte     `json:"salt,omitempty"`
	Hash           []byte     `json:"hash,omitempty"`
}

func bindingKey(tenant, id string) string {
	return "sys/identity/bindings/" + strings.ToLower(tenant) + "/" + strings.ToLower(id)
}

func bindingHash(salt []byte, secret string) []byte {
	h := sha256.New()
	h.Write([]byte("keyward/workload-binding/v1\x00"))
	h.Write(salt)
	h.Write([]byte(secret))
	return h.Sum(nil)
}

// newBindingSecret returns "kwmi.{tenant}.{binding}.{random}": the IDs
// locate the record without a scan; the random part authenticates.
func newBindingSecret(tenant, id string) (secret string, salt, hash []byte) {
	raw := make([]byte, 32)
	rand.Read(raw)
	secret = "kwmi." + tenant + "." + id + "." + base64.RawURLEncoding.EncodeToString(raw)
	salt = make([]byte, 16)
	rand.Read(salt)
	return secret, salt, bindingHash(salt, secret)
}

// CreateBinding creates a workload binding and returns its secret (shown
// once). identities are app IDs of managed identities of tenant; the first
// is the default.
func (d *Directory) CreateBinding(ctx context.Context, b WorkloadBinding, now time.Time) (*WorkloadBinding, string, error) {
	if b.Name == "" || len(b.Name) > 128 {
		return nil, "", invalid("name must be 1-128 characters")
	}
	if len(b.Identities) == 0 || len(b.Identities) > 32 {
		return nil, "", invalid("a binding names 1-32 managed identities")
	}
	for i, id := range b.Identities {
		sp, err := d.ServicePrincipal(ctx, b.TenantID, id)
		if err != nil || !sp.IsManagedIdentity() {
			return nil, "", invalid("identity %s is not a managed identity of this tenant", safe(id))
		}
		b.Identities[i] = strings.ToLower(sp.AppID)
	}
	for _, s := range b.AllowedSources {
		if _, err := parseSource(s); err != nil {
			return nil, "", invalid("allowedSources: %q is not an IP address or CIDR", safe(s))
		}
	}
	if b.Headerless && len(b.AllowedSources) == 0 {
		return nil, "", invalid("a headerless binding must name its allowed sources")
	}
	b.TenantID = strings.ToLower(b.TenantID)
	b.ID = NewID()
	b.Default = b.Identities[0]
	b.Created = now.UTC()
	secret, salt, hash := newBindingSecret(b.TenantID, b.ID)
	b.Salt, b.Hash = salt, hash
	if err := put(ctx, d.store, bindingKey(b.TenantID, b.ID), &b); err != nil {
		return nil, "", err
	}
	out := b
	out.Salt, out.Hash = nil, nil
	return &out, secret, nil
}

// RotateBindingSecret replaces a binding's secret; the old one stops
// working at once.
func (d *Directory) RotateBindingSecret(ctx context.Context, tenant, id string) (string, error) {
	var secret string
	err := d.store.Update(ctx, func(tx barrier.Tx) error {
		b := new(WorkloadBinding)
		if err := getTx(tx, bindingKey(tenant, id), b); err != nil {
			return err
		}
		var salt, hash []byte
		secret, salt, hash = newBindingSecret(b.TenantID, b.ID)
		b.Salt, b.Hash = salt, hash
		return putTx(tx, bindingKey(tenant, id), b)
	})
	return secret, err
}

// DeleteBinding deletes a binding.
func (d *Directory) DeleteBinding(ctx context.Context, tenant, id string) error {
	return d.store.Update(ctx, func(tx barrier.Tx) error {
		if _, err := tx.Get(bindingKey(tenant, id)); err != nil {
			return ErrNotFound
		}
		return tx.Delete(bindingKey(tenant, id))
	})
}

// ListBindings lists a tenant's bindings, without secrets.
func (d *Directory) ListBindings(ctx context.Context, tenant string) ([]*WorkloadBinding, error) {
	return listRecords(ctx, d.store, "sys/identity/bindings/"+strings.ToLower(tenant)+"/", func(b *WorkloadBinding) { b.Salt, b.Hash = nil, nil })
}

func parseSource(s string) (netip.Prefix, error) {
	if strings.Contains(s, "/") {
		p, err := netip.ParsePrefix(s)
		return p.Masked(), err
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func (b *WorkloadBinding) allows(ip netip.Addr) bool {
	if len(b.AllowedSources) == 0 {
		return true
	}
	ip = ip.Unmap()
	for _, s := range b.AllowedSources {
		if p, err := parseSource(s); err == nil && p.Contains(ip) {
			return true
		}
	}
	return false
}

// bindingBySecret finds and authenticates the binding of secret.
func (d *Directory) bindingBySecret(ctx context.Context, secret string) (*WorkloadBinding, error) {
	parts := strings.Split(secret, ".")
	if len(parts) != 4 || parts[0] != "kwmi" || len(secret) > 256 {
		return nil, ErrInvalidCredential
	}
	if _, err := uuid.Parse(parts[1]); err != nil {
		return nil, ErrInvalidCredential
	}
	if _, err := uuid.Parse(parts[2]); err != nil {
		return nil, ErrInvalidCredential
	}
	b := new(WorkloadBinding)
	if err := get(ctx, d.store, bindingKey(parts[1], parts[2]), b); err != nil {
		if errors.Is(err, ErrNotFound) {
			return nil, ErrInvalidCredential
		}
		return nil, err
	}
	if subtle.ConstantTimeCompare(bindingHash(b.Salt, secret), b.Hash) != 1 {
		return nil, ErrInvalidCredential
	}
	return b, nil
}

// headerlessBinding finds the headerless binding whose sources contain ip.
func (d *Directory) headerlessBinding(ctx context.Context, ip netip.Addr) (*WorkloadBinding, error) {
	b, err := findRecord(ctx, d.store, "sys/identity/bindings/", func(b *WorkloadBinding) bool { return b.Headerless && b.allows(ip) })
	if errors.Is(err, ErrNotFound) {
		return nil, ErrInvalidCredential
	}
	return b, err
}

// msiRequest is what a managed-identity token request carries, whatever
// its shape: its parameters (query and, for Cloud Shell, form), the
// binding secret from its identity header, and whether it sent Metadata:
// true (http_msi.go reads them off the wire).
type msiRequest struct {
	q        url.Values
	secret   string
	metadata bool
}

// msiToken is an issued managed-identity token.
type msiToken struct {
	token    string
	identity *ServicePrincipal
	audience string
	expires  time.Time
}

func msiErr(kind errs.Kind, code, desc string) *tokenError { return terr(kind, code, 0, desc) }

var errMSITransient = msiErr(errs.Unavailable, "temporarily_unavailable", "A transient error has occurred. Please try again.")

// msiIssue checks a managed-identity request's binding and issues a token
// for the identity and resource it asks for.
func (a *Authority) msiIssue(ctx context.Context, mr msiRequest, resources []string) (*msiToken, error) {
	ev := audit.EventFrom(ctx)
	if mr.secret == "" && !mr.metadata {
		ev.Reason = "no identity header"
		return nil, msiErr(errs.BadParameter, "invalid_request", "Required metadata header not specified")
	}
	resource := mr.q.Get("resource")
	if resource == "" {
		ev.Reason = "no resource"
		return nil, msiErr(errs.BadParameter, "invalid_request", "Required query variable 'resource' is missing")
	}
	ip, _ := netip.ParseAddr(ev.Caller.IP)
	var b *WorkloadBinding
	var err error
	if mr.secret != "" {
		b, err = a.dir.bindingBySecret(ctx, mr.secret)
	} else {
		b, err = a.dir.headerlessBinding(ctx, ip)
	}
	switch {
	case errors.Is(err, ErrInvalidCredential):
		ev.Reason = "invalid workload binding"
		return nil, msiErr(errs.Unauthorized, "invalid_client", "The identity header is not valid for this endpoint.")
	case err != nil:
		return nil, errMSITransient
	}
	ev.Caller.TenantID = b.TenantID
	ev.Reason = "binding " + b.ID
	if b.Expires != nil && !a.clock.Now().Before(*b.Expires) {
		ev.Reason = "binding " + b.ID + " expired"
		return nil, msiErr(errs.Unauthorized, "invalid_client", "The workload binding has expired.")
	}
	if !b.allows(ip) {
		ev.Reason = "binding " + b.ID + " used from a source it is not pinned to"
		return nil, msiErr(errs.Forbidden, "invalid_client", "The workload binding may not be used from this address.")
	}
	mi, err := a.selectIdentity(ctx, b, mr.q)
	if err != nil {
		ev.Reason = "binding " + b.ID + ": " + err.Error()
		return nil, msiErr(errs.BadParameter, "invalid_request", "Identity not found")
	}
	aud, err := a.resolveResource(ctx, b.TenantID, strings.TrimSuffix(resource, "/.default"), resources)
	if err != nil {
		return nil, msiErr(errs.BadParameter, "invalid_resource", "The resource is not known to this token service.")
	}
	ev.Caller.ObjectID, ev.Caller.AppID, ev.ObjectID = mi.ObjectID, mi.AppID, mi.ObjectID
	tok, exp, err := a.issue(appClaims(mi, aud, "2"))
	if err != nil {
		return nil, errMSITransient
	}
	return &msiToken{token: tok, identity: mi, audience: aud, expires: exp}, nil
}

func firstOf(q map[string][]string, names ...string) string {
	for _, n := range names {
		if v := q[n]; len(v) > 0 && v[0] != "" {
			return v[0]
		}
	}
	return ""
}

// selectIdentity picks the managed identity a request asks for, among the
// binding's: by client ID, object ID or resource ID, else the default.
func (a *Authority) selectIdentity(ctx context.Context, b *WorkloadBinding, q map[string][]string) (*ServicePrincipal, error) {
	clientID := firstOf(q, "client_id", "clientid")
	objectID := firstOf(q, "object_id", "principal_id")
	resID := firstOf(q, "mi_res_id", "msi_res_id")
	if clientID == "" && objectID == "" && resID == "" {
		clientID = b.Default
	}
	for _, id := range b.Identities {
		sp, err := a.dir.ServicePrincipal(ctx, b.TenantID, id)
		if err != nil || !sp.IsManagedIdentity() {
			continue // deleted since the binding was made
		}
		if (clientID != "" && strings.EqualFold(sp.AppID, clientID)) ||
			(objectID != "" && strings.EqualFold(sp.ObjectID, objectID)) ||
			(resID != "" && strings.EqualFold(sp.ResourceID, resID)) {
			return sp, nil
		}
	}
	return nil, errors.New("identity not in binding")
}
