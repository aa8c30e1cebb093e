package certificates

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"fmt"
	"github.com/keyward/keyward/internal/vault"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/keys"
)

// Certificate contacts and issuers (AZURE-API.md §1.4), and Keyward's
// built-in private CA.
//
// The built-in CA is an issuer whose provider is "Keyward". Its key is an
// ordinary key of the vault, named by the issuer's credentials.account_id
// (default "{issuer}-ca", created as EC P-384 when it does not exist); the
// issuer pins the key version it certified. Its self-signed CA certificate
// (ten years) is kept in the issuer and returned in every chain it issues.

// CertificateContact is a vault's certificate contact.
type CertificateContact struct {
	Email string `json:"email,omitempty"`
	Name  string `json:"name,omitempty"`
	Phone string `json:"phone,omitempty"`
}

func contactsKey() string          { return "cert/contacts" }
func issuerPrefix() string         { return "cert/issuers/" }
func issuerKey(name string) string { return issuerPrefix() + strings.ToLower(name) }

func contactsNotFound(v *vault.Vault) error {
	return &vault.Error{Kind: vault.NotFound, Type: vault.Certificates, Inner: "ContactsNotFound", Msg: "Contacts not found for vault " + v.Name + "."}
}

func issuerNotFound(name string) error {
	return &vault.Error{Kind: vault.NotFound, Type: vault.Certificates, Name: name, Inner: "IssuerNotFound", Msg: fmt.Sprintf("Issuer not found: %s", clip(name))}
}

func issuerProviderIs(p, want string) bool { return strings.EqualFold(p, want) }

func (r *issuerRecord) out() *CertificateIssuer { c := r.CertificateIssuer; return &c }

// GetCertificateContacts returns the vault's certificate contacts.
func (s *Service) GetCertificateContacts(ctx context.Context, v *vault.Vault) ([]CertificateContact, error) {
	var out []CertificateContact
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		ok, err := vault.GetJSON(tx, contactsKey(), &out)
		if err == nil && !ok {
			return contactsNotFound(v)
		}
		return err
	})
	return out, err
}

// SetCertificateContacts replaces the vault's certificate contacts.
func (s *Service) SetCertificateContacts(ctx context.Context, v *vault.Vault, contacts []CertificateContact) ([]CertificateContact, error) {
	if len(contacts) > 100 {
		return nil, badParameter("A vault may have at most 100 certificate contacts.")
	}
	for _, c := range contacts {
		if c.Email == "" && c.Name == "" && c.Phone == "" {
			return nil, badParameter("A contact needs an e-mail address, a name or a phone number.")
		}
		if c.Email != "" && (!strings.Contains(c.Email, "@") || strings.ContainsAny(c.Email, " \r\n<>,") || len(c.Email) > 320) {
			return nil, badParameter("The contact e-mail address %q is not valid.", clip(c.Email))
		}
		if len(c.Name) > 256 || len(c.Phone) > 64 || strings.ContainsAny(c.Name+c.Phone, "\r\n") {
			return nil, badParameter("Contact names are at most 256 and phone numbers 64 characters, on one line.")
		}
	}
	if contacts == nil {
		contacts = []CertificateContact{}
	}
	err := s.in(v).Update(ctx, func(tx barrier.Tx) error { return vault.PutJSON(tx, contactsKey(), contacts) })
	return contacts, err
}

// DeleteCertificateContacts removes the vault's contacts and returns them.
func (s *Service) DeleteCertificateContacts(ctx context.Context, v *vault.Vault) ([]CertificateContact, error) {
	var out []CertificateContact
	err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
		ok, err := vault.GetJSON(tx, contactsKey(), &out)
		if err != nil {
			return err
		}
		if !ok {
			return contactsNotFound(v)
		}
		return tx.Delete(contactsKey())
	})
	return out, err
}

// AdminContact is an issuer's organization administrator.
type AdminContact struct {
	FirstName string `json:"firstName,omitempty"`
	LastName  string `json:"lastName,omitempty"`
	Email     string `json:"email,omitempty"`
	Phone     string `json:"phone,omitempty"`
}

// CertificateIssuer is an issuer as the domain returns it. The credential
// password is never returned.
type CertificateIssuer struct {
	Name      string         `json:"name"`
	Provider  string         `json:"provider"`
	AccountID string         `json:"accountId,omitempty"`
	OrgID     string         `json:"orgId,omitempty"`
	Admins    []AdminContact `json:"admins,omitempty"`
	HasOrg    bool           `json:"hasOrg,omitempty"`
	Enabled   bool           `json:"enabled"`
	Created   int64          `json:"created"`
	Updated   int64          `json:"updated"`
	CA        *IssuerCA      `json:"ca,omitempty"`
}

// IssuerCA is the certificate authority of a built-in (Keyward) issuer.
type IssuerCA struct {
	KeyName    string `json:"keyName"`
	KeyVersion string `json:"keyVersion"`
	Cert       []byte `json:"cert"` // DER
}

type issuerRecord struct {
	CertificateIssuer
	Password []byte `json:"password,omitempty"` // sealed by the barrier like every value
}

// SetIssuerParams is a SetIssuer (PUT) or UpdateIssuer (PATCH) request;
// on PATCH nil fields stay as they are.
type SetIssuerParams struct {
	Name      string
	Provider  *string
	AccountID *string
	Password  *vault.SecretValue
	OrgID     *string
	Admins    []AdminContact
	HasOrg    bool // org_details was sent
	Enabled   *bool
}

// SetCertificateIssuer creates or replaces (replace, PUT) or updates
// (PATCH) an issuer. A Keyward issuer gets its CA here.
func (s *Service) SetCertificateIssuer(ctx context.Context, v *vault.Vault, p SetIssuerParams, replace bool) (*CertificateIssuer, error) {
	if !vault.ValidName(p.Name) || strings.EqualFold(p.Name, IssuerSelf) || strings.EqualFold(p.Name, IssuerUnknown) {
		return nil, badParameter("The issuer name %q is invalid or reserved.", clip(p.Name))
	}
	var old *issuerRecord
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		r := new(issuerRecord)
		ok, err := vault.GetJSON(tx, issuerKey(p.Name), r)
		if ok {
			old = r
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	now := s.clock.Now().Unix()
	rec := &issuerRecord{CertificateIssuer: CertificateIssuer{Name: p.Name, Enabled: true, Created: now}}
	if old != nil {
		rec.Created, rec.Name = old.Created, old.Name
		if !replace {
			*rec = *old
		}
	} else if !replace {
		return nil, issuerNotFound(p.Name)
	}
	rec.Updated = now
	if p.Provider != nil {
		rec.Provider = *p.Provider
	}
	if rec.Provider == "" {
		return nil, badParameter("The issuer provider is required.")
	}
	if len(rec.Provider) > 64 {
		return nil, badParameter("The issuer provider name is too long.")
	}
	setVal(&rec.AccountID, p.AccountID)
	if p.Password != nil {
		rec.Password = p.Password.Reveal()
	}
	if p.HasOrg || replace {
		rec.HasOrg = p.HasOrg
		rec.OrgID = ""
		rec.Admins = p.Admins
		setVal(&rec.OrgID, p.OrgID)
	}
	if p.Enabled != nil {
		rec.Enabled = *p.Enabled
	}
	switch {
	case issuerProviderIs(rec.Provider, ProviderKeyward):
		keyName := rec.AccountID
		if keyName == "" {
			keyName = rec.Name + "-ca"
		}
		if !vault.ValidName(keyName) {
			return nil, badParameter("The CA key name %q is invalid.", clip(keyName))
		}
		if old == nil || old.CA == nil || !strings.EqualFold(old.CA.KeyName, keyName) || old.OrgID != rec.OrgID {
			ca, err := s.makeCA(ctx, v, rec.Name, keyName, rec.OrgID)
			if err != nil {
				return nil, err
			}
			rec.CA = ca
		} else {
			rec.CA = old.CA
		}
	case issuerProviderIs(rec.Provider, ProviderACME):
		rec.CA = nil
		if s.certs.external == nil {
			return nil, badParameter("ACME is not configured on this Keyward (see docs/CERTIFICATES.md).")
		}
		if err := s.certs.external.Validate(rec.OrgID); err != nil {
			return nil, badParameter("ACME issuer %s: %v", rec.Name, err)
		}
	default:
		rec.CA = nil
	}
	err = s.in(v).Update(ctx, func(tx barrier.Tx) error { return vault.PutJSON(tx, issuerKey(p.Name), rec) })
	if err != nil {
		return nil, err
	}
	return rec.out(), nil
}

func setVal(dst *string, v *string) {
	if v != nil {
		*dst = *v
	}
}

func (s *Service) issuer(tx barrier.Tx, v *vault.Vault, name string) (*issuerRecord, error) {
	r := new(issuerRecord)
	ok, err := vault.GetJSON(tx, issuerKey(name), r)
	if err != nil {
		return nil, err
	}
	if !ok {
		return nil, issuerNotFound(name)
	}
	return r, nil
}

// GetCertificateIssuer returns an issuer.
func (s *Service) GetCertificateIssuer(ctx context.Context, v *vault.Vault, name string) (*CertificateIssuer, error) {
	if !vault.ValidName(name) {
		return nil, issuerNotFound(name)
	}
	var out *CertificateIssuer
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		r, err := s.issuer(tx, v, name)
		if err == nil {
			out = r.out()
		}
		return err
	})
	return out, err
}

// DeleteCertificateIssuer removes an issuer (a built-in CA's key stays: it
// is an ordinary key).
func (s *Service) DeleteCertificateIssuer(ctx context.Context, v *vault.Vault, name string) (*CertificateIssuer, error) {
	if !vault.ValidName(name) {
		return nil, issuerNotFound(name)
	}
	var out *CertificateIssuer
	err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
		r, err := s.issuer(tx, v, name)
		if err != nil {
			return err
		}
		out = r.out()
		return tx.Delete(issuerKey(name))
	})
	return out, err
}

// ListCertificateIssuers pages through issuers.
func (s *Service) ListCertificateIssuers(ctx context.Context, v *vault.Vault, after string, limit int) (*vault.Page[*CertificateIssuer], error) {
	page := &vault.Page[*CertificateIssuer]{}
	start := ""
	if after != "" {
		start = issuerKey(after)
	}
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		var inner error
		err := tx.Scan(issuerPrefix(), start, func(_ string, val []byte) bool {
			if len(page.Items) == limit {
				page.Next = page.Items[limit-1].Name
				return false
			}
			r := new(issuerRecord)
			if inner = json.Unmarshal(val, r); inner != nil {
				return false
			}
			page.Items = append(page.Items, r.out())
			return true
		})
		if err == nil {
			err = inner
		}
		return err
	})
	return page, err
}

// resolvedIssuer is the issuer a policy names.
type resolvedIssuer struct {
	provider string // Self, Unknown, Keyward or ACME
	rec      *issuerRecord
}

func (s *Service) resolveIssuer(ctx context.Context, v *vault.Vault, name string) (*resolvedIssuer, error) {
	switch {
	case strings.EqualFold(name, IssuerSelf):
		return &resolvedIssuer{provider: IssuerSelf}, nil
	case strings.EqualFold(name, IssuerUnknown):
		return &resolvedIssuer{provider: IssuerUnknown}, nil
	}
	var rec *issuerRecord
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		var err error
		rec, err = s.issuer(tx, v, name)
		return err
	})
	if vault.KindOf(err) == vault.NotFound {
		return nil, badParameter("The issuer %s named by the certificate policy does not exist in this vault.", clip(name))
	}
	if err != nil {
		return nil, err
	}
	if !rec.Enabled {
		return nil, badParameter("The issuer %s is disabled.", rec.Name)
	}
	switch {
	case issuerProviderIs(rec.Provider, ProviderKeyward) && rec.CA != nil:
		return &resolvedIssuer{provider: ProviderKeyward, rec: rec}, nil
	case issuerProviderIs(rec.Provider, ProviderACME):
		if s.certs.external == nil {
			return nil, badParameter("ACME is not configured on this Keyward.")
		}
		return &resolvedIssuer{provider: ProviderACME, rec: rec}, nil
	}
	return nil, badParameter("The issuer provider %s is not supported by Keyward; use Self, Unknown, an issuer with provider %s (built-in CA) or %s.", clip(rec.Provider), ProviderKeyward, ProviderACME)
}

// keySigner loads an ordinary vault key for signing on the vault's behalf
// (CA keys, ACME account keys), checking that it is enabled, active and
// allowed to sign.
func (s *Service) keySigner(ctx context.Context, v *vault.Vault, name, version string) (opSigner, string, error) {
	key, op, err := s.vaults.KeyOperator(ctx, v, name, version)
	if err != nil {
		if vault.KindOf(err) != 0 {
			return opSigner{}, "", err
		}
		return opSigner{}, "", vault.KeyError(err)
	}
	a, now := key.Attributes, s.clock.Now()
	if !a.Enabled || !a.Active(now) {
		return opSigner{}, "", badParameter("The key %s is disabled, expired or not yet valid.", key.Name)
	}
	if !strings.Contains(strings.Join(key.KeyOps, ","), "sign") {
		return opSigner{}, "", badParameter("The key %s is not allowed to sign (key_ops).", key.Name)
	}
	sg, err := newOpSigner(ctx, op)
	return sg, key.Version, err
}

// ensureKey returns the latest version of an ordinary key, creating it as
// an EC key on curve when it does not exist.
func (s *Service) ensureKey(ctx context.Context, v *vault.Vault, name, curve string) error {
	k, err := s.vaults.GetKey(ctx, v, name, "")
	if err == nil {
		if k.Managed {
			return badParameter("The key %s backs a certificate; choose another key.", name)
		}
		return nil
	}
	if vault.KindOf(err) != vault.NotFound {
		return err
	}
	_, err = s.vaults.CreateKey(ctx, v, vault.CreateKeyParams{Name: name, Kty: "EC", Curve: curve, KeyOps: []string{"sign", "verify"},
		Tags: map[string]string{"keyward-purpose": "certificate-issuer"}})
	return err
}

// makeCA creates (or adopts) the CA key and self-signs a CA certificate.
func (s *Service) makeCA(ctx context.Context, v *vault.Vault, issuer, keyName, org string) (*IssuerCA, error) {
	if err := s.ensureKey(ctx, v, keyName, keys.CurveP384); err != nil {
		return nil, err
	}
	signer, version, err := s.keySigner(ctx, v, keyName, "")
	if err != nil {
		return nil, err
	}
	ski, err := subjectKeyID(signer.Public())
	if err != nil {
		return nil, err
	}
	now := s.clock.Now()
	subj := pkix.Name{CommonName: issuer + " Keyward CA"}
	if org != "" {
		subj.Organization = []string{org}
	}
	tmpl := &x509.Certificate{
		SerialNumber: randomSerial(), Subject: subj,
		NotBefore: now.Add(-5 * time.Minute).UTC().Truncate(time.Second), NotAfter: now.AddDate(10, 0, 0).UTC().Truncate(time.Second),
		KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign | x509.KeyUsageDigitalSignature,
		BasicConstraintsValid: true, IsCA: true, MaxPathLenZero: true, SubjectKeyId: ski,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
	if err != nil {
		return nil, vault.KeyError(fmt.Errorf("signing the CA certificate: %w", err))
	}
	return &IssuerCA{KeyName: keyName, KeyVersion: version, Cert: der}, nil
}

// caIssue signs a leaf for pub with a built-in CA: chain [leaf, CA].
func (s *Service) caIssue(ctx context.Context, v *vault.Vault, rec *issuerRecord, sp *x509Spec, pub crypto.PublicKey) ([]*x509.Certificate, error) {
	ca, err := x509.ParseCertificate(rec.CA.Cert)
	if err != nil {
		return nil, err
	}
	signer, _, err := s.keySigner(ctx, v, rec.CA.KeyName, rec.CA.KeyVersion)
	if err != nil {
		return nil, fmt.Errorf("%w (the CA key of issuer %s)", err, rec.Name)
	}
	now := s.clock.Now()
	if !now.Before(ca.NotAfter) {
		return nil, badParameter("The CA certificate of issuer %s has expired; set the issuer again to renew it.", rec.Name)
	}
	tmpl, err := sp.template(now, pub)
	if err != nil {
		return nil, err
	}
	if tmpl.NotAfter.After(ca.NotAfter) {
		tmpl.NotAfter = ca.NotAfter
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca, pub, signer)
	if err != nil {
		return nil, vault.KeyError(fmt.Errorf("CA signing: %w", err))
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return nil, err
	}
	return []*x509.Certificate{leaf, ca}, nil
}
