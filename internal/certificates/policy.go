package certificates

import (
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"encoding/asn1"
	"github.com/keyward/keyward/internal/vault"
	"math"
	"slices"
	"strings"

	"github.com/keyward/keyward/internal/keys"
)

// Reserved issuer names.
const (
	IssuerSelf    = "Self"
	IssuerUnknown = "Unknown"
)

// Issuer providers Keyward implements besides Self and Unknown.
const (
	// ProviderKeyward is Keyward's built-in private CA: its key is an
	// ordinary key in the vault.
	ProviderKeyward = "Keyward"
	// ProviderACME obtains certificates from an ACME (RFC 8555) CA.
	ProviderACME = "ACME"
)

// Lifetime action types.
const (
	ActionAutoRenew     = "AutoRenew"
	ActionEmailContacts = "EmailContacts"
)

// CertificatePolicy is a certificate's management policy (AZURE-API.md
// §1.4). Fields a client did not set stay nil, so a GET echoes exactly what
// was set; defaults fill only whole sections that were absent when the
// policy was first given (see withDefaults).
type CertificatePolicy struct {
	Key             *CertKeyProperties          `json:"key,omitempty"`
	Secret          *CertSecretProperties       `json:"secret,omitempty"`
	X509            *X509Properties             `json:"x509,omitempty"`
	LifetimeActions []CertificateLifetimeAction `json:"lifetimeActions,omitempty"`
	Issuer          *IssuerParameters           `json:"issuer,omitempty"`
	Enabled         *bool                       `json:"enabled,omitempty"`
	Created         int64                       `json:"created,omitempty"`
	Updated         int64                       `json:"updated,omitempty"`
}

// CertKeyProperties are the key_props of a policy.
type CertKeyProperties struct {
	Exportable *bool   `json:"exportable,omitempty"`
	Kty        *string `json:"kty,omitempty"`
	Size       *int    `json:"size,omitempty"`
	Curve      *string `json:"crv,omitempty"`
	ReuseKey   *bool   `json:"reuseKey,omitempty"`
}

// CertSecretProperties are the secret_props of a policy.
type CertSecretProperties struct {
	ContentType *string `json:"contentType,omitempty"`
}

// X509Properties are the x509_props of a policy.
type X509Properties struct {
	Subject        *string  `json:"subject,omitempty"`
	SANs           *SANs    `json:"sans,omitempty"`
	EKUs           []string `json:"ekus,omitempty"`
	KeyUsage       []string `json:"keyUsage,omitempty"`
	ValidityMonths *int     `json:"validityMonths,omitempty"`
}

// SANs are subject alternative names.
type SANs struct {
	DNSNames []string `json:"dns,omitempty"`
	Emails   []string `json:"emails,omitempty"`
	UPNs     []string `json:"upns,omitempty"`
}

// CertificateLifetimeAction is one lifetime action: exactly one trigger.
type CertificateLifetimeAction struct {
	LifetimePercentage *int   `json:"lifetimePercentage,omitempty"`
	DaysBeforeExpiry   *int   `json:"daysBeforeExpiry,omitempty"`
	Action             string `json:"action"`
}

// IssuerParameters name the issuer of a policy.
type IssuerParameters struct {
	Name             *string `json:"name,omitempty"`
	CertificateType  *string `json:"cty,omitempty"`
	CertTransparency *bool   `json:"certTransparency,omitempty"`
}

func ptr[T any](v T) *T { return &v }

// issuerName is the policy's issuer, "Unknown" when none is named.
func (p *CertificatePolicy) issuerName() string {
	if p.Issuer != nil && p.Issuer.Name != nil && *p.Issuer.Name != "" {
		return *p.Issuer.Name
	}
	return IssuerUnknown
}

func (p *CertificatePolicy) kty() string {
	if p.Key != nil && p.Key.Kty != nil && *p.Key.Kty != "" {
		return *p.Key.Kty
	}
	if p.Key != nil && p.Key.Curve != nil {
		return "EC"
	}
	return "RSA"
}

func (p *CertificatePolicy) exportable() bool {
	return p.Key == nil || p.Key.Exportable == nil || *p.Key.Exportable
}

func (p *CertificatePolicy) reuseKey() bool {
	return p.Key != nil && p.Key.ReuseKey != nil && *p.Key.ReuseKey
}

func (p *CertificatePolicy) contentType() string {
	if p.Secret != nil && p.Secret.ContentType != nil && *p.Secret.ContentType != "" {
		return *p.Secret.ContentType
	}
	return vault.ContentTypePKCS12
}

func (p *CertificatePolicy) enabled() bool { return p.Enabled == nil || *p.Enabled }

// keySpec is the key a policy asks for.
func (p *CertificatePolicy) keySpec() (kty string, spec keys.Spec, err error) {
	kty = p.kty()
	base := strings.TrimSuffix(kty, "-HSM")
	spec.Kty = base
	switch base {
	case "RSA":
		spec.Size = 2048
		if p.Key != nil && p.Key.Size != nil {
			spec.Size = *p.Key.Size
		}
		if spec.Size != 2048 && spec.Size != 3072 && spec.Size != 4096 {
			return "", spec, badParameter("RSA key size %d is not supported; use 2048, 3072 or 4096.", spec.Size)
		}
		if p.Key != nil && p.Key.Curve != nil && *p.Key.Curve != "" {
			return "", spec, badParameter("crv does not apply to RSA keys.")
		}
	case "EC":
		bySize := map[int]string{256: keys.CurveP256, 384: keys.CurveP384, 521: keys.CurveP521}
		spec.Curve = keys.CurveP256
		if p.Key != nil && p.Key.Size != nil {
			c, ok := bySize[*p.Key.Size]
			if !ok {
				return "", spec, badParameter("EC key size %d is not supported; use 256, 384 or 521.", *p.Key.Size)
			}
			spec.Curve = c
		}
		if p.Key != nil && p.Key.Curve != nil && *p.Key.Curve != "" {
			spec.Curve = *p.Key.Curve
		}
		switch spec.Curve {
		case keys.CurveP256, keys.CurveP384, keys.CurveP521, keys.CurveP256K:
		default:
			return "", spec, badParameter("Curve %s is not supported; use P-256, P-384 or P-521.", clip(spec.Curve))
		}
		if p.Key != nil && p.Key.Size != nil && bySize[*p.Key.Size] != spec.Curve && spec.Curve != keys.CurveP256K {
			return "", spec, badParameter("key_size %d does not match curve %s.", *p.Key.Size, spec.Curve)
		}
	default:
		return "", spec, badParameter("Key type %s cannot back a certificate; use RSA, RSA-HSM, EC or EC-HSM.", clip(kty))
	}
	return kty, spec, nil
}

// validate checks a whole (merged) policy.
func (p *CertificatePolicy) validate() error {
	if _, _, err := p.keySpec(); err != nil {
		return err
	}
	if strings.HasSuffix(p.kty(), "-HSM") && p.exportable() && p.Key != nil && p.Key.Exportable != nil {
		return badParameter("An HSM-protected certificate key cannot be exportable.")
	}
	switch p.contentType() {
	case vault.ContentTypePKCS12, vault.ContentTypePEM:
	default:
		return badParameter("secret_props.contentType must be %s or %s.", vault.ContentTypePKCS12, vault.ContentTypePEM)
	}
	sp, err := p.X509.spec()
	if err != nil {
		return err
	}
	seen := map[string]bool{}
	for _, a := range p.LifetimeActions {
		switch {
		case strings.EqualFold(a.Action, ActionAutoRenew), strings.EqualFold(a.Action, ActionEmailContacts):
		default:
			return badParameter("Lifetime action %q is not supported; use AutoRenew or EmailContacts.", clip(a.Action))
		}
		if seen[strings.ToLower(a.Action)] {
			return badParameter("A certificate policy may have at most one %s action.", a.Action)
		}
		seen[strings.ToLower(a.Action)] = true
		if (a.LifetimePercentage == nil) == (a.DaysBeforeExpiry == nil) {
			return badParameter("Each lifetime action needs exactly one trigger: lifetime_percentage or days_before_expiry.")
		}
		if a.LifetimePercentage != nil && (*a.LifetimePercentage < 1 || *a.LifetimePercentage > 99) {
			return badParameter("lifetime_percentage must be between 1 and 99.")
		}
		if a.DaysBeforeExpiry != nil && (*a.DaysBeforeExpiry < 1 || *a.DaysBeforeExpiry > sp.months*27) {
			return badParameter("days_before_expiry must be between 1 and %d (validity_months × 27).", sp.months*27)
		}
	}
	name := p.issuerName()
	if !strings.EqualFold(name, IssuerSelf) && !strings.EqualFold(name, IssuerUnknown) && !vault.ValidName(name) {
		return badParameter("The issuer name %q is invalid.", clip(name))
	}
	return nil
}

// withDefaults fills the sections a new policy left out, as Key Vault
// does: an exportable RSA 2048 key, a PKCS #12 secret, 12 months of
// validity, and renewal (or, for an Unknown issuer, mail) at 80% of the
// lifetime. A section that is present is kept exactly as given.
func (p *CertificatePolicy) withDefaults() *CertificatePolicy {
	q := *p
	if q.Key == nil {
		q.Key = &CertKeyProperties{Exportable: ptr(true), Kty: ptr("RSA"), Size: ptr(2048), ReuseKey: ptr(false)}
	}
	if q.Secret == nil {
		q.Secret = &CertSecretProperties{ContentType: ptr(vault.ContentTypePKCS12)}
	}
	if q.X509 != nil && q.X509.ValidityMonths == nil {
		x := *q.X509
		x.ValidityMonths = ptr(12)
		q.X509 = &x
	}
	if q.LifetimeActions == nil {
		action := ActionAutoRenew
		if strings.EqualFold(q.issuerName(), IssuerUnknown) {
			action = ActionEmailContacts
		}
		q.LifetimeActions = []CertificateLifetimeAction{{LifetimePercentage: ptr(80), Action: action}}
	}
	if q.Issuer == nil {
		q.Issuer = &IssuerParameters{Name: ptr(IssuerUnknown)}
	}
	return &q
}

// merge returns p with the fields set in patch replacing its own.
func (p *CertificatePolicy) merge(patch *CertificatePolicy) *CertificatePolicy {
	q := *p
	if k := patch.Key; k != nil {
		n := CertKeyProperties{}
		if q.Key != nil {
			n = *q.Key
		}
		if k.Kty != nil && !strings.EqualFold(strings.TrimSuffix(*k.Kty, "-HSM"), strings.TrimSuffix(q.kty(), "-HSM")) {
			n.Size, n.Curve = nil, nil // another key type: its size and curve start over
		}
		setIf(&n.Exportable, k.Exportable)
		setIf(&n.Kty, k.Kty)
		setIf(&n.Size, k.Size)
		setIf(&n.Curve, k.Curve)
		setIf(&n.ReuseKey, k.ReuseKey)
		q.Key = &n
	}
	if patch.Secret != nil && patch.Secret.ContentType != nil {
		q.Secret = &CertSecretProperties{ContentType: patch.Secret.ContentType}
	}
	if x := patch.X509; x != nil {
		n := X509Properties{}
		if q.X509 != nil {
			n = *q.X509
		}
		setIf(&n.Subject, x.Subject)
		setIf(&n.ValidityMonths, x.ValidityMonths)
		if x.SANs != nil {
			n.SANs = x.SANs
		}
		if x.EKUs != nil {
			n.EKUs = x.EKUs
		}
		if x.KeyUsage != nil {
			n.KeyUsage = x.KeyUsage
		}
		q.X509 = &n
	}
	if patch.LifetimeActions != nil {
		q.LifetimeActions = patch.LifetimeActions
	}
	if i := patch.Issuer; i != nil {
		n := IssuerParameters{}
		if q.Issuer != nil {
			n = *q.Issuer
		}
		setIf(&n.Name, i.Name)
		setIf(&n.CertificateType, i.CertificateType)
		setIf(&n.CertTransparency, i.CertTransparency)
		q.Issuer = &n
	}
	setIf(&q.Enabled, patch.Enabled)
	return &q
}

func setIf[T any](dst **T, v *T) {
	if v != nil {
		*dst = v
	}
}

func (p *CertificatePolicy) hasAction(action string) bool {
	return slices.ContainsFunc(p.LifetimeActions, func(a CertificateLifetimeAction) bool {
		return strings.EqualFold(a.Action, action)
	})
}

// policyFromCertificate describes an imported certificate as a policy:
// what Key Vault shows for an import without a policy.
func policyFromCertificate(leaf *x509.Certificate, contentType string) *CertificatePolicy {
	p := &CertificatePolicy{
		Key:     &CertKeyProperties{Exportable: ptr(true), ReuseKey: ptr(false)},
		Secret:  &CertSecretProperties{ContentType: ptr(contentType)},
		Issuer:  &IssuerParameters{Name: ptr(IssuerUnknown)},
		Enabled: ptr(true),
	}
	switch pub := leaf.PublicKey.(type) {
	case *rsa.PublicKey:
		p.Key.Kty, p.Key.Size = ptr("RSA"), ptr(pub.N.BitLen())
	case *ecdsa.PublicKey:
		crv := map[string]string{"P-256": keys.CurveP256, "P-384": keys.CurveP384, "P-521": keys.CurveP521}[pub.Curve.Params().Name]
		p.Key.Kty, p.Key.Curve, p.Key.Size = ptr("EC"), ptr(crv), ptr(pub.Curve.Params().BitSize)
	}
	x := &X509Properties{Subject: ptr(leaf.Subject.String())}
	if len(leaf.DNSNames)+len(leaf.EmailAddresses) > 0 || len(vault.ParseUPNs(leaf)) > 0 {
		x.SANs = &SANs{DNSNames: leaf.DNSNames, Emails: leaf.EmailAddresses, UPNs: vault.ParseUPNs(leaf)}
	}
	for _, ext := range leaf.Extensions {
		if ext.Id.Equal(oidExtExtKeyUsage) {
			var oids []asn1.ObjectIdentifier
			if _, err := asn1.Unmarshal(ext.Value, &oids); err == nil {
				for _, o := range oids {
					x.EKUs = append(x.EKUs, o.String())
				}
			}
		}
	}
	for bit := x509.KeyUsageDigitalSignature; bit <= x509.KeyUsageDecipherOnly; bit <<= 1 {
		if leaf.KeyUsage&bit != 0 {
			x.KeyUsage = append(x.KeyUsage, KeyUsageNames[bit])
		}
	}
	months := int(math.Round(leaf.NotAfter.Sub(leaf.NotBefore).Hours() / (24 * 30.436875)))
	x.ValidityMonths = ptr(min(max(months, 1), 1200))
	p.X509 = x
	p.LifetimeActions = []CertificateLifetimeAction{{LifetimePercentage: ptr(80), Action: ActionEmailContacts}}
	return p
}
