package api

import (
	"crypto/sha1"
	"encoding/base64"
	"encoding/json"
	"errors"
	"github.com/keyward/keyward/internal/certificates"
	"strings"
)

// b64std is a certificate field on the wire (cer, csr, x5c): standard
// base64 WITH padding, unlike every other binary field (AZURE-API.md §0.2).
// Input is accepted padded or not, standard or URL alphabet.
type b64std []byte

func (b b64std) MarshalJSON() ([]byte, error) {
	return json.Marshal(base64.StdEncoding.EncodeToString(b))
}

func (b *b64std) UnmarshalJSON(data []byte) error {
	var s string
	if err := json.Unmarshal(data, &s); err != nil {
		return err
	}
	s = strings.TrimRight(strings.Join(strings.Fields(s), ""), "=")
	raw, err := base64.RawStdEncoding.DecodeString(s)
	if err != nil {
		if raw, err = base64.RawURLEncoding.DecodeString(s); err != nil {
			return errors.New("not base64")
		}
	}
	*b = raw
	return nil
}

// certPolicyWire is CertificatePolicy (AZURE-API.md §1.4).
type certPolicyWire struct {
	ID              string                   `json:"id,omitempty"`
	KeyProps        *keyPropsWire            `json:"key_props,omitempty"`
	SecretProps     *secretPropsWire         `json:"secret_props,omitempty"`
	X509Props       *x509PropsWire           `json:"x509_props,omitempty"`
	LifetimeActions []certLifetimeActionWire `json:"lifetime_actions,omitempty"`
	Issuer          *issuerParamsWire        `json:"issuer,omitempty"`
	Attributes      *policyAttributesWire    `json:"attributes,omitempty"`
}

type keyPropsWire struct {
	Exportable *bool   `json:"exportable,omitempty"`
	Kty        *string `json:"kty,omitempty"`
	KeySize    *int    `json:"key_size,omitempty"`
	Crv        *string `json:"crv,omitempty"`
	ReuseKey   *bool   `json:"reuse_key,omitempty"`
}

type secretPropsWire struct {
	ContentType *string `json:"contentType,omitempty"`
}

type x509PropsWire struct {
	Subject        *string   `json:"subject,omitempty"`
	SANs           *sansWire `json:"sans,omitempty"`
	EKUs           []string  `json:"ekus,omitempty"`
	KeyUsage       []string  `json:"key_usage,omitempty"`
	ValidityMonths *int      `json:"validity_months,omitempty"`
}

type sansWire struct {
	Emails   []string `json:"emails,omitempty"`
	DNSNames []string `json:"dns_names,omitempty"`
	UPNs     []string `json:"upns,omitempty"`
}

type certLifetimeActionWire struct {
	Trigger *certTriggerWire `json:"trigger,omitempty"`
	Action  *certActionWire  `json:"action,omitempty"`
}

type certTriggerWire struct {
	LifetimePercentage *int `json:"lifetime_percentage,omitempty"`
	DaysBeforeExpiry   *int `json:"days_before_expiry,omitempty"`
}

type certActionWire struct {
	ActionType string `json:"action_type"`
}

type issuerParamsWire struct {
	Name             *string `json:"name,omitempty"`
	Cty              *string `json:"cty,omitempty"`
	CertTransparency *bool   `json:"cert_transparency,omitempty"`
}

type policyAttributesWire struct {
	Enabled *bool  `json:"enabled,omitempty"`
	Created *int64 `json:"created,omitempty"`
	Updated *int64 `json:"updated,omitempty"`
}

func (w *certPolicyWire) toDomain() (*certificates.CertificatePolicy, error) {
	if w == nil {
		return nil, nil
	}
	p := &certificates.CertificatePolicy{}
	if k := w.KeyProps; k != nil {
		p.Key = &certificates.CertKeyProperties{Exportable: k.Exportable, Kty: k.Kty, Size: k.KeySize, Curve: k.Crv, ReuseKey: k.ReuseKey}
	}
	if w.SecretProps != nil {
		p.Secret = &certificates.CertSecretProperties{ContentType: w.SecretProps.ContentType}
	}
	if x := w.X509Props; x != nil {
		p.X509 = &certificates.X509Properties{Subject: x.Subject, EKUs: x.EKUs, KeyUsage: x.KeyUsage, ValidityMonths: x.ValidityMonths}
		if x.SANs != nil {
			p.X509.SANs = &certificates.SANs{DNSNames: x.SANs.DNSNames, Emails: x.SANs.Emails, UPNs: x.SANs.UPNs}
		}
	}
	if w.LifetimeActions != nil {
		p.LifetimeActions = []certificates.CertificateLifetimeAction{}
		for _, a := range w.LifetimeActions {
			if a.Action == nil || a.Trigger == nil {
				return nil, badParam("Each lifetime action needs a trigger and an action.")
			}
			p.LifetimeActions = append(p.LifetimeActions, certificates.CertificateLifetimeAction{
				LifetimePercentage: a.Trigger.LifetimePercentage, DaysBeforeExpiry: a.Trigger.DaysBeforeExpiry,
				Action: canonicalAction(a.Action.ActionType)})
		}
	}
	if i := w.Issuer; i != nil {
		p.Issuer = &certificates.IssuerParameters{Name: i.Name, CertificateType: i.Cty, CertTransparency: i.CertTransparency}
	}
	if w.Attributes != nil {
		p.Enabled = w.Attributes.Enabled
	}
	return p, nil
}

func canonicalAction(a string) string {
	switch {
	case strings.EqualFold(a, certificates.ActionAutoRenew):
		return certificates.ActionAutoRenew
	case strings.EqualFold(a, certificates.ActionEmailContacts):
		return certificates.ActionEmailContacts
	}
	return a
}

func (rq *request) certPolicyOut(name string, p *certificates.CertificatePolicy) *certPolicyWire {
	if p == nil {
		return nil
	}
	w := &certPolicyWire{ID: rq.objectURL("certificates", name, "policy")}
	if k := p.Key; k != nil {
		w.KeyProps = &keyPropsWire{Exportable: k.Exportable, Kty: k.Kty, KeySize: k.Size, Crv: k.Curve, ReuseKey: k.ReuseKey}
	}
	if p.Secret != nil {
		w.SecretProps = &secretPropsWire{ContentType: p.Secret.ContentType}
	}
	if x := p.X509; x != nil {
		w.X509Props = &x509PropsWire{Subject: x.Subject, EKUs: x.EKUs, KeyUsage: x.KeyUsage, ValidityMonths: x.ValidityMonths}
		if x.SANs != nil {
			w.X509Props.SANs = &sansWire{DNSNames: x.SANs.DNSNames, Emails: x.SANs.Emails, UPNs: x.SANs.UPNs}
		}
	}
	for _, a := range p.LifetimeActions {
		w.LifetimeActions = append(w.LifetimeActions, certLifetimeActionWire{
			Trigger: &certTriggerWire{LifetimePercentage: a.LifetimePercentage, DaysBeforeExpiry: a.DaysBeforeExpiry},
			Action:  &certActionWire{ActionType: a.Action}})
	}
	if i := p.Issuer; i != nil {
		w.Issuer = &issuerParamsWire{Name: i.Name, Cty: i.CertificateType, CertTransparency: i.CertTransparency}
	}
	enabled, created, updated := p.Enabled == nil || *p.Enabled, p.Created, p.Updated
	w.Attributes = &policyAttributesWire{Enabled: &enabled, Created: &created, Updated: &updated}
	return w
}

// certBundleWire is CertificateBundle, CertificateItem and
// DeletedCertificateBundle (AZURE-API.md §1.4).
type certBundleWire struct {
	ID                string            `json:"id"`
	Kid               string            `json:"kid,omitempty"`
	Sid               string            `json:"sid,omitempty"`
	X5T               b64url            `json:"x5t,omitempty"`
	Cer               b64std            `json:"cer,omitempty"`
	ContentType       string            `json:"contentType,omitempty"`
	Attributes        attributesWire    `json:"attributes"`
	Policy            *certPolicyWire   `json:"policy,omitempty"`
	Tags              map[string]string `json:"tags,omitempty"`
	PreserveCertOrder *bool             `json:"preserveCertOrder,omitempty"`
	deletedWire
}

// certOut renders a certificate; item leaves out what listings omit
// (and the version in the id of a listing of latest versions).
func (rq *request) certOut(c *certificates.Certificate, item, withVersion bool) *certBundleWire {
	version := ""
	if withVersion {
		version = c.Version
	}
	b := &certBundleWire{
		ID:          rq.objectURL("certificates", c.Name, version),
		Attributes:  attributesOut(c.Attributes, rq.vault),
		Tags:        c.Tags,
		deletedWire: rq.deletedOut("certificates", c.Name, c.Deleted),
	}
	b.Attributes.Exportable = nil
	if len(c.CER) > 0 {
		sum := sha1.Sum(c.CER)
		b.X5T = sum[:]
	}
	if item {
		return b
	}
	preserve := c.PreserveCertOrder
	b.Kid = rq.objectURL("keys", c.Name, c.Version)
	b.Sid = rq.objectURL("secrets", c.Name, c.Version)
	b.Cer = c.CER
	b.ContentType = c.ContentType
	b.Policy = rq.certPolicyOut(c.Name, c.Policy)
	b.PreserveCertOrder = &preserve
	return b
}

// certOpWire is CertificateOperation.
type certOpWire struct {
	ID                    string            `json:"id"`
	Issuer                *issuerParamsWire `json:"issuer,omitempty"`
	CSR                   b64std            `json:"csr,omitempty"`
	CancellationRequested bool              `json:"cancellation_requested"`
	Status                string            `json:"status"`
	StatusDetails         string            `json:"status_details,omitempty"`
	Error                 *opErrorWire      `json:"error,omitempty"`
	Target                string            `json:"target,omitempty"`
	RequestID             string            `json:"request_id,omitempty"`
	PreserveCertOrder     *bool             `json:"preserveCertOrder,omitempty"`
}

type opErrorWire struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func (rq *request) opOut(op *certificates.CertificateOperation) *certOpWire {
	preserve := op.PreserveCertOrder
	w := &certOpWire{
		ID:  rq.objectURL("certificates", op.Name, "pending"),
		CSR: op.CSR, CancellationRequested: op.CancellationRequested, Status: op.Status,
		StatusDetails: op.StatusDetails, RequestID: op.RequestID, PreserveCertOrder: &preserve,
		Issuer: &issuerParamsWire{Name: op.Issuer.Name, Cty: op.Issuer.CertificateType, CertTransparency: op.Issuer.CertTransparency},
	}
	if op.Error != nil {
		w.Error = &opErrorWire{Code: op.Error.Code, Message: op.Error.Message}
	}
	if op.Status == certificates.StatusCompleted {
		w.Target = rq.objectURL("certificates", op.Name, "")
	}
	return w
}

// contactsWire is Contacts.
type contactsWire struct {
	ID       string        `json:"id,omitempty"`
	Contacts []contactWire `json:"contacts"`
}

type contactWire struct {
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
	Phone string `json:"phone,omitempty"`
}

// issuerWire is IssuerBundle; ca is Keyward's addition for built-in CAs.
type issuerWire struct {
	ID          string           `json:"id,omitempty"`
	Provider    *string          `json:"provider,omitempty"`
	Credentials *credentialsWire `json:"credentials,omitempty"`
	OrgDetails  *orgDetailsWire  `json:"org_details,omitempty"`
	Attributes  *issuerAttrsWire `json:"attributes,omitempty"`
	CA          *issuerCAWire    `json:"keyward_ca,omitempty"`
}

type credentialsWire struct {
	AccountID *string `json:"account_id,omitempty"`
	Password  *string `json:"pwd,omitempty"` // input only: never returned
}

type orgDetailsWire struct {
	ID           *string     `json:"id,omitempty"`
	AdminDetails []adminWire `json:"admin_details,omitempty"`
}

type adminWire struct {
	FirstName string `json:"first_name,omitempty"`
	LastName  string `json:"last_name,omitempty"`
	Email     string `json:"email,omitempty"`
	Phone     string `json:"phone,omitempty"`
}

type issuerAttrsWire struct {
	Enabled *bool  `json:"enabled,omitempty"`
	Created *int64 `json:"created,omitempty"`
	Updated *int64 `json:"updated,omitempty"`
}

// issuerCAWire shows a built-in CA: its key and its certificate.
type issuerCAWire struct {
	Kid string `json:"kid"`
	Cer b64std `json:"cer"`
}

func (rq *request) issuerOut(i *certificates.CertificateIssuer) *issuerWire {
	provider := i.Provider
	enabled, created, updated := i.Enabled, i.Created, i.Updated
	w := &issuerWire{ID: rq.objectURL("certificates", "issuers", i.Name), Provider: &provider,
		Attributes: &issuerAttrsWire{Enabled: &enabled, Created: &created, Updated: &updated}}
	if i.AccountID != "" {
		id := i.AccountID
		w.Credentials = &credentialsWire{AccountID: &id}
	}
	if i.HasOrg || i.OrgID != "" || len(i.Admins) > 0 {
		w.OrgDetails = &orgDetailsWire{}
		if i.OrgID != "" {
			id := i.OrgID
			w.OrgDetails.ID = &id
		}
		for _, a := range i.Admins {
			w.OrgDetails.AdminDetails = append(w.OrgDetails.AdminDetails, adminWire(a))
		}
	}
	if i.CA != nil {
		w.CA = &issuerCAWire{Kid: rq.objectURL("keys", i.CA.KeyName, i.CA.KeyVersion), Cer: i.CA.Cert}
	}
	return w
}
