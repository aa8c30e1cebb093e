package certificates

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"github.com/keyward/keyward/internal/vault"
	"slices"
	"strings"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/keys"
)

// Certificates (AZURE-API.md §1.4). Every certificate version is backed by
// a key version and a secret version with the same name and version, both
// managed (vault.Record.Managed): the key signs and decrypts like any key but
// is deleted, recovered, purged and backed up only with its certificate;
// the secret holds the certificate chain, and the private key when the
// policy makes it exportable.
//
// Storage, besides the generic object layout ({c} = "c"):
//
//	c/p/{name}            the certificate's policy
//	c/o/{name}            its pending (or last) certificate operation
//	cert/contacts         the vault's certificate contacts
//	cert/issuers/{name}   issuers
//
// A pending operation holds the new version's private key (sealed like
// every value) until the certificate is issued, merged or the operation
// is deleted; only then do the key and secret versions appear.

// Operation statuses, as Key Vault reports them.
const (
	StatusInProgress = "inProgress"
	StatusCompleted  = "completed"
	StatusCancelled  = "cancelled"
	StatusFailed     = "failed"
)

// reservedCertNames cannot name a certificate: they are paths under
// /certificates/ (AZURE-API.md §1.4).
var reservedCertNames = map[string]bool{"contacts": true, "issuers": true, "restore": true}

func checkCertName(name string) error {
	if err := vault.CheckName(vault.Certificates, name); err != nil {
		return err
	}
	if reservedCertNames[strings.ToLower(name)] {
		return badParameter("%s is a reserved name and cannot name a certificate.", name)
	}
	return nil
}

// certPayload is what a certificate version stores.
type certPayload struct {
	CER         []byte   `json:"cer"`
	Chain       [][]byte `json:"chain,omitempty"` // as in the secret, leaf included
	ContentType string   `json:"contentType"`
	Preserve    bool     `json:"preserveCertOrder,omitempty"`
}

// Certificate is one certificate version as the domain returns it.
type Certificate struct {
	Name              string
	Version           string
	CER               []byte // DER of the leaf; nil for a pending-only item
	ContentType       string
	Attributes        vault.Attributes
	Tags              map[string]string
	Policy            *CertificatePolicy // nil in listings
	PreserveCertOrder bool
	Pending           bool // listed with includePending, not yet issued
	Deleted           *vault.DeletedInfo
}

func certFrom(rec *vault.Record, ver *vault.Version[certPayload]) *Certificate {
	return &Certificate{Name: rec.Name, Version: ver.Version, CER: ver.Payload.CER,
		ContentType: ver.Payload.ContentType, Attributes: ver.Attributes, Tags: ver.Tags,
		PreserveCertOrder: ver.Payload.Preserve}
}

// OperationError is the error of a failed certificate operation.
type OperationError struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

// CertificateOperation is a certificate's pending (or last) operation.
type CertificateOperation struct {
	Name                  string
	Issuer                IssuerParameters
	CSR                   []byte
	CancellationRequested bool
	Status                string
	StatusDetails         string
	Error                 *OperationError
	RequestID             string
	PreserveCertOrder     bool
}

// certOpRecord is a stored certificate operation.
type certOpRecord struct {
	Name          string                 `json:"name"`
	RequestID     string                 `json:"requestId"`
	Version       string                 `json:"version"`
	Issuer        IssuerParameters       `json:"issuer"`
	Provider      string                 `json:"provider"`
	CSR           []byte                 `json:"csr"`
	Status        string                 `json:"status"`
	StatusDetails string                 `json:"statusDetails"`
	Error         *OperationError        `json:"error,omitempty"`
	Cancel        bool                   `json:"cancellationRequested"`
	Preserve      bool                   `json:"preserveCertOrder,omitempty"`
	Created       int64                  `json:"created"`
	Attributes    *vault.AttributesPatch `json:"attributes,omitempty"`
	Tags          map[string]string      `json:"tags,omitempty"`
	DNSNames      []string               `json:"dnsNames,omitempty"` // for ACME orders
	Key           certKey                `json:"key"`
}

// certKey is the key of a certificate version before it is stored as a
// key version. Handle is the protector's private key handle.
type certKey = vault.ManagedKey

func (op *certOpRecord) out() *CertificateOperation {
	return &CertificateOperation{Name: op.Name, Issuer: op.Issuer, CSR: op.CSR,
		CancellationRequested: op.Cancel, Status: op.Status, StatusDetails: op.StatusDetails,
		Error: op.Error, RequestID: op.RequestID, PreserveCertOrder: op.Preserve}
}

func newRequestID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Service) certObjs(v *vault.Vault) (c, k, sec vault.Objects) {
	return s.objs(v, vault.Certificates), s.objs(v, vault.Keys), s.objs(v, vault.Secrets)
}

func getPolicy(tx barrier.Tx, o vault.Objects, name string) (*CertificatePolicy, error) {
	pol := new(CertificatePolicy)
	ok, err := vault.GetJSON(tx, o.PolicyKey(name), pol)
	if err != nil || !ok {
		return nil, err
	}
	return pol, nil
}

func getOp(tx barrier.Tx, o vault.Objects, name string) (*certOpRecord, error) {
	op := new(certOpRecord)
	ok, err := vault.GetJSON(tx, opKey(name), op)
	if err != nil || !ok {
		return nil, err
	}
	return op, nil
}

// checkNameFree refuses a certificate name whose certificate, key or
// secret is soft-deleted, and names taken by a key or secret that a
// certificate does not manage.
func (s *Service) checkNameFree(tx barrier.Tx, v *vault.Vault, name string) error {
	for _, o := range []vault.Objects{s.objs(v, vault.Certificates), s.objs(v, vault.Keys), s.objs(v, vault.Secrets)} {
		if ok, err := o.IsDeleted(tx, name); err != nil {
			return err
		} else if ok {
			return vault.DeletedButRecoverable(o.Type(), name)
		}
		if o.Type() == vault.Certificates {
			continue
		}
		if rec, ok, err := o.Lookup(tx, name); err != nil {
			return err
		} else if ok && !rec.Managed {
			return &vault.Error{Kind: vault.Conflict, Type: vault.Certificates, Name: name,
				Msg: fmt.Sprintf("A %s named %s already exists; a certificate's key and secret take the certificate's name.", o.Type().Singular(), rec.Name)}
		}
	}
	return nil
}

// CreateCertificateParams is a CreateCertificate request, and what an
// import has besides its value.
type CreateCertificateParams struct {
	Name              string
	Policy            *CertificatePolicy // nil: the certificate's current policy
	Attributes        *vault.AttributesPatch
	Tags              map[string]string
	PreserveCertOrder *bool
}

// check checks the name, tags and attributes of a new version.
func (p *CreateCertificateParams) check() error {
	return vault.CheckRequest(checkCertName(p.Name), p.Tags, p.Attributes)
}

// preserve reports whether the chain keeps the order it came in.
func (p *CreateCertificateParams) preserve() bool {
	return p.PreserveCertOrder != nil && *p.PreserveCertOrder
}

// CreateCertificate starts a new certificate version (202 on the wire).
// Self-signed and built-in CA certificates are issued at once; Unknown
// issuers wait for a merge; ACME issuers complete in the background.
func (s *Service) CreateCertificate(ctx context.Context, v *vault.Vault, p CreateCertificateParams) (*CertificateOperation, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	c := s.objs(v, vault.Certificates)
	var pol *CertificatePolicy
	var prevVersion string
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		if err := s.checkNameFree(tx, v, p.Name); err != nil {
			return err
		}
		old, err := getPolicy(tx, c, p.Name)
		if err != nil {
			return err
		}
		if old != nil {
			if rec, ok, err := c.Lookup(tx, p.Name); err != nil {
				return err
			} else if ok {
				prevVersion = rec.Latest
			}
		}
		switch {
		case p.Policy != nil:
			pol = p.Policy.withDefaults()
		case old != nil:
			pol = old
		default:
			return badParameter("A certificate policy is required to create a certificate.")
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	if err := pol.validate(); err != nil {
		return nil, err
	}
	return s.startIssuance(ctx, v, p.Name, pol, p.Policy != nil, prevVersion, p.preserve(), p.Attributes, p.Tags)
}

// startIssuance creates a key (or reuses the previous version's), a CSR and
// an operation, and issues at once where the issuer allows. Renewal uses
// it too.
func (s *Service) startIssuance(ctx context.Context, v *vault.Vault, name string, pol *CertificatePolicy, newPolicy bool,
	prevVersion string, preserve bool, attrs *vault.AttributesPatch, tags map[string]string) (*CertificateOperation, error) {
	sp, err := pol.X509.spec()
	if err != nil {
		return nil, err
	}
	iss, err := s.resolveIssuer(ctx, v, pol.issuerName())
	if err != nil {
		return nil, err
	}
	version := vault.NewVersion()
	key, err := s.certificateKey(ctx, v, name, version, pol, prevVersion)
	if err != nil {
		return nil, err
	}
	defer clear(key.Handle)
	signer, err := s.handleSigner(ctx, key)
	if err != nil {
		return nil, err
	}
	op := &certOpRecord{
		Name: name, RequestID: newRequestID(), Version: version, Provider: iss.provider,
		Status: StatusInProgress, Preserve: preserve, Created: s.clock.Now().Unix(),
		Attributes: attrs, Tags: tags, Key: *key,
		StatusDetails: "Pending certificate created. Certificate request is in progress. This may take some time based on the issuer provider. Please check again later.",
	}
	if pol.Issuer != nil {
		op.Issuer = *pol.Issuer
	}
	if iss.provider == ProviderACME {
		op.CSR, err = sp.acmeCSR(signer)
		op.DNSNames = sp.dns
	} else {
		op.CSR, err = sp.csr(signer)
	}
	if err != nil {
		return nil, vault.KeyError(err)
	}
	var chain []*x509.Certificate
	switch iss.provider {
	case IssuerSelf:
		tmpl, err := sp.template(s.clock.Now(), signer.Public())
		if err != nil {
			return nil, err
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, signer.Public(), signer)
		if err != nil {
			return nil, vault.KeyError(fmt.Errorf("self-signing: %w", err))
		}
		leaf, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, err
		}
		chain = []*x509.Certificate{leaf}
	case ProviderKeyward:
		if chain, err = s.caIssue(ctx, v, iss.rec, sp, signer.Public()); err != nil {
			return nil, err
		}
	}
	stored := pol
	if !newPolicy {
		stored = nil
	}
	err = s.in(v).Update(ctx, func(tx barrier.Tx) error {
		if _, err := s.newVersion(tx, v, op, stored, chain, 0, nil, nil); err != nil {
			return err
		}
		return vault.PutJSON(tx, opKey(name), op)
	})
	if err != nil {
		return nil, err
	}
	if op.Status == StatusInProgress && op.Provider == ProviderACME {
		s.startExternal(ctx, v, name, op.RequestID)
	}
	return op.out(), nil
}

// certificateKey generates the key of a new certificate version (named
// version in the protector: an HSM's CKA_ID is the key version ID, as for
// every other key), or copies the previous version's when the policy says
// reuse_key.
func (s *Service) certificateKey(ctx context.Context, v *vault.Vault, name, version string, pol *CertificatePolicy, prevVersion string) (*certKey, error) {
	kty, spec, err := pol.keySpec()
	if err != nil {
		return nil, err
	}
	if spec.Curve == keys.CurveP256K {
		return nil, badParameter("Certificates cannot use curve P-256K (secp256k1): X.509 libraries do not support it. Use P-256, P-384 or P-521.")
	}
	if pol.reuseKey() && prevVersion != "" {
		var key *certKey
		err := s.in(v).View(ctx, func(tx barrier.Tx) (err error) {
			key, err = s.vaults.ReadManagedKey(tx, v, name, prevVersion)
			return err
		})
		if err == nil {
			key.Exportable = pol.exportable()
			return key, nil
		}
		if vault.KindOf(err) != vault.NotFound {
			return nil, err
		}
	}
	spec.ID = version
	return s.vaults.GenerateKey(ctx, v, kty, spec, pol.exportable())
}

// handleSigner loads a certificate key for signing (CSRs, self-signing).
func (s *Service) handleSigner(ctx context.Context, key *certKey) (opSigner, error) {
	op, err := s.vaults.Signer(ctx, key, "")
	if err != nil {
		return opSigner{}, err
	}
	return newOpSigner(ctx, op)
}

// privateKey returns the private key of a software certificate key for the
// secret, or nil when it must not leave Keyward.
func privateKey(key *certKey) crypto.PrivateKey {
	if !key.Exportable || key.Protector != (keys.Software{}).Name() {
		return nil
	}
	k, err := x509.ParsePKCS8PrivateKey(key.Handle)
	if err != nil {
		return nil
	}
	return k
}

// newVersion is the step create, import and merge share, inside their
// transaction: the name must still be free; a new policy (pol, nil to keep
// the stored one) is stored, keeping the old one's creation time; and,
// with a chain, the version is completed (completeCert). Without a chain
// (an issuer that answers later) it returns nil.
func (s *Service) newVersion(tx barrier.Tx, v *vault.Vault, op *certOpRecord, pol *CertificatePolicy,
	chain []*x509.Certificate, leaf int, attrs *vault.AttributesPatch, tags map[string]string) (*Certificate, error) {
	if err := s.checkNameFree(tx, v, op.Name); err != nil {
		return nil, err
	}
	if pol != nil {
		c := s.objs(v, vault.Certificates)
		now := s.clock.Now().Unix()
		stored := *pol
		stored.Created, stored.Updated = now, now
		if old, err := getPolicy(tx, c, op.Name); err != nil {
			return nil, err
		} else if old != nil && old.Created != 0 {
			stored.Created = old.Created
		}
		if err := vault.PutJSON(tx, c.PolicyKey(op.Name), &stored); err != nil {
			return nil, err
		}
	}
	if chain == nil {
		return nil, nil
	}
	return s.completeCert(tx, v, op, chain, leaf, attrs, tags)
}

// completeCert stores the certificate version of op with chain (leaf at
// index leaf, in the order the secret keeps), and its key and secret
// versions, inside tx. attrs and tags (from a merge) override the
// operation's.
func (s *Service) completeCert(tx barrier.Tx, v *vault.Vault, op *certOpRecord, chain []*x509.Certificate, leaf int,
	attrs *vault.AttributesPatch, tags map[string]string) (*Certificate, error) {
	c, _, sec := s.certObjs(v)
	name := op.Name
	pol, err := getPolicy(tx, c, name)
	if err != nil {
		return nil, err
	}
	if pol == nil {
		return nil, notFound(vault.Certificates, name)
	}
	lc := chain[leaf]
	pub, err := publicKey(op.Key.Public)
	if err != nil {
		return nil, err
	}
	if !samePublic(pub, lc.PublicKey) {
		return nil, errKeyMismatch
	}
	now := s.clock.Now().Unix()
	nbf, exp := lc.NotBefore.Unix(), lc.NotAfter.Unix()
	a := vault.Attributes{Enabled: pol.enabled(), Created: now, Updated: now, NotBefore: &nbf, Expires: &exp}
	if op.Attributes != nil && op.Attributes.Enabled != nil {
		a.Enabled = *op.Attributes.Enabled
	}
	if attrs != nil && attrs.Enabled != nil {
		a.Enabled = *attrs.Enabled
	}
	if tags == nil {
		tags = op.Tags
	}

	// The key version.
	if err := s.vaults.AddManagedKeyVersion(tx, v, name, op.Version, a, &op.Key); err != nil {
		return nil, err
	}

	// The secret version.
	ct := pol.contentType()
	priv := privateKey(&op.Key)
	value, err := encodeCertSecret(ct, priv, chain, leaf)
	if err != nil {
		return nil, err
	}
	defer clear(value)
	sv := &vault.Version[vault.SecretPayload]{Version: op.Version, Attributes: a,
		Payload: vault.SecretPayload{Value: value, ContentType: ct, Kid: "keys/" + name + "/" + op.Version}}
	if _, err := vault.AddVersion(tx, sec, name, sv, true); err != nil {
		return nil, err
	}

	// The certificate version.
	cp := certPayload{CER: lc.Raw, ContentType: ct, Preserve: op.Preserve}
	for _, x := range chain {
		cp.Chain = append(cp.Chain, x.Raw)
	}
	cv := &vault.Version[certPayload]{Version: op.Version, Attributes: a, Tags: tags, Payload: cp}
	rec, err := vault.AddVersion(tx, c, name, cv, false)
	if err != nil {
		return nil, err
	}
	if err := s.indexCertActions(tx, v, name, op.Version, &a, pol); err != nil {
		return nil, err
	}
	op.Status, op.StatusDetails, op.Error = StatusCompleted, "The certificate was issued.", nil
	op.Key.Handle = nil
	out := certFrom(rec, cv)
	out.Policy = pol
	return out, nil
}

// GetCertificate returns a certificate version ("" for the latest).
func (s *Service) GetCertificate(ctx context.Context, v *vault.Vault, name, version string) (*Certificate, error) {
	if err := vault.CheckName(vault.Certificates, name); err != nil {
		return nil, err
	}
	var out *Certificate
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		c := s.objs(v, vault.Certificates)
		rec, ver, err := vault.GetVersion[certPayload](tx, c, name, version)
		if err != nil {
			return err
		}
		out = certFrom(rec, ver)
		out.Policy, err = getPolicy(tx, c, name)
		return err
	})
	return out, err
}

// UpdateCertificateParams is an UpdateCertificate request.
type UpdateCertificateParams struct {
	Name, Version string
	Attributes    *vault.AttributesPatch
	Policy        *CertificatePolicy
	Tags          map[string]string
}

// UpdateCertificate changes a version's attributes and tags (enabled also
// applies to its key and secret) and, with a policy, the policy.
func (s *Service) UpdateCertificate(ctx context.Context, v *vault.Vault, p UpdateCertificateParams) (*Certificate, error) {
	if err := vault.CheckRequest(vault.CheckName(vault.Certificates, p.Name), p.Tags, p.Attributes); err != nil {
		return nil, err
	}
	var out *Certificate
	err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
		c, _, sec := s.certObjs(v)
		rec, ver, err := vault.GetVersion[certPayload](tx, c, p.Name, p.Version)
		if err != nil {
			return err
		}
		now := s.clock.Now().Unix()
		if p.Attributes != nil {
			ver.Attributes.Apply(&vault.AttributesPatch{Enabled: p.Attributes.Enabled, NotBefore: p.Attributes.NotBefore, Expires: p.Attributes.Expires})
			if err := vault.CheckAttributes(&vault.AttributesPatch{NotBefore: ver.Attributes.NotBefore, Expires: ver.Attributes.Expires}); err != nil {
				return err
			}
			if p.Attributes.Enabled != nil {
				if err := s.vaults.SetKeyEnabled(tx, v, p.Name, ver.Version, *p.Attributes.Enabled, now); err != nil {
					return err
				}
				if err := vault.SetEnabled[vault.SecretPayload](tx, sec, p.Name, ver.Version, *p.Attributes.Enabled, now); err != nil {
					return err
				}
			}
		}
		if p.Tags != nil {
			ver.Tags = p.Tags
		}
		ver.Attributes.Updated = now
		if err := vault.PutVersion(tx, c, p.Name, ver); err != nil {
			return err
		}
		pol, err := getPolicy(tx, c, p.Name)
		if err != nil {
			return err
		}
		if p.Policy != nil {
			if pol, err = s.putPolicy(tx, v, rec, pol, p.Policy); err != nil {
				return err
			}
		}
		out = certFrom(rec, ver)
		out.Policy = pol
		return nil
	})
	if err == nil && p.Attributes != nil && p.Attributes.Enabled != nil {
		s.vaults.ForgetKey(v, p.Name)
	}
	return out, err
}

// putPolicy merges patch into the stored policy of a live certificate and
// re-schedules the latest version's lifetime actions and notifications.
func (s *Service) putPolicy(tx barrier.Tx, v *vault.Vault, rec *vault.Record, old, patch *CertificatePolicy) (*CertificatePolicy, error) {
	c := s.objs(v, vault.Certificates)
	base := old
	if base == nil {
		base = &CertificatePolicy{}
	}
	pol := base.merge(patch)
	if err := pol.validate(); err != nil {
		return nil, err
	}
	pol.Updated = s.clock.Now().Unix()
	if pol.Created == 0 {
		pol.Created = pol.Updated
	}
	if err := vault.PutJSON(tx, c.PolicyKey(rec.Name), pol); err != nil {
		return nil, err
	}
	if err := c.Reindex(tx, rec); err != nil {
		return nil, err
	}
	_, ver, err := vault.GetVersion[certPayload](tx, c, rec.Name, rec.Latest)
	if err != nil {
		return nil, err
	}
	return pol, s.indexCertActions(tx, v, rec.Name, ver.Version, &ver.Attributes, pol)
}

// GetCertificatePolicy returns a certificate's policy.
func (s *Service) GetCertificatePolicy(ctx context.Context, v *vault.Vault, name string) (*CertificatePolicy, error) {
	if err := vault.CheckName(vault.Certificates, name); err != nil {
		return nil, err
	}
	var pol *CertificatePolicy
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		c := s.objs(v, vault.Certificates)
		var err error
		if pol, err = getPolicy(tx, c, name); err != nil {
			return err
		}
		if pol == nil {
			return notFound(vault.Certificates, name)
		}
		if _, err := c.Live(tx, name); err != nil {
			if op, err2 := getOp(tx, c, name); err2 != nil || op == nil {
				return err
			}
		}
		return nil
	})
	return pol, err
}

// UpdateCertificatePolicy merges patch into a certificate's policy.
func (s *Service) UpdateCertificatePolicy(ctx context.Context, v *vault.Vault, name string, patch *CertificatePolicy) (*CertificatePolicy, error) {
	if err := vault.CheckName(vault.Certificates, name); err != nil {
		return nil, err
	}
	var pol *CertificatePolicy
	err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
		c := s.objs(v, vault.Certificates)
		old, err := getPolicy(tx, c, name)
		if err != nil {
			return err
		}
		rec, err := c.Live(tx, name)
		if err != nil {
			// A certificate whose first version is still pending has a
			// policy but no versions yet.
			op, err2 := getOp(tx, c, name)
			if err2 != nil || op == nil || old == nil {
				return err
			}
			pol = old.merge(patch)
			if err := pol.validate(); err != nil {
				return err
			}
			pol.Updated = s.clock.Now().Unix()
			return vault.PutJSON(tx, c.PolicyKey(name), pol)
		}
		pol, err = s.putPolicy(tx, v, rec, old, patch)
		return err
	})
	return pol, err
}

// ListCertificates lists live certificates (latest versions) and, with
// includePending, certificates whose first version is still pending.
func (s *Service) ListCertificates(ctx context.Context, v *vault.Vault, after string, limit int, includePending bool) (*vault.Page[*Certificate], error) {
	page := &vault.Page[*Certificate]{}
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		c := s.objs(v, vault.Certificates)
		recs, vers, _, err := vault.ListLatest[certPayload](tx, c, after, limit+1)
		if err != nil {
			return err
		}
		type entry struct {
			key  string
			cert *Certificate
		}
		var all []entry
		for i := range recs {
			all = append(all, entry{strings.ToLower(recs[i].Name), certFrom(recs[i], vers[i])})
		}
		if includePending {
			pending, err := pendingOnly(tx, c, after, limit+1)
			if err != nil {
				return err
			}
			for _, op := range pending {
				all = append(all, entry{strings.ToLower(op.Name), &Certificate{Name: op.Name, Pending: true,
					Attributes: vault.Attributes{Enabled: true, Created: op.Created, Updated: op.Created}, Tags: op.Tags}})
			}
		}
		slices.SortFunc(all, func(a, b entry) int { return strings.Compare(a.key, b.key) })
		for i, e := range all {
			if i == limit {
				page.Next = all[i-1].cert.Name
				break
			}
			page.Items = append(page.Items, e.cert)
		}
		return nil
	})
	return page, err
}

// pendingOnly returns operations of names that have no live certificate.
func pendingOnly(tx barrier.Tx, c vault.Objects, after string, limit int) ([]*certOpRecord, error) {
	prefix := opPrefix
	start := ""
	if after != "" {
		start = prefix + strings.ToLower(after)
	}
	var out []*certOpRecord
	var inner error
	err := tx.Scan(prefix, start, func(key string, val []byte) bool {
		op := new(certOpRecord)
		if inner = json.Unmarshal(val, op); inner != nil {
			return false
		}
		if op.Status != StatusInProgress {
			return true
		}
		if _, ok, err := c.Lookup(tx, op.Name); err != nil {
			inner = err
			return false
		} else if !ok {
			out = append(out, op)
		}
		return len(out) < limit
	})
	if err == nil {
		err = inner
	}
	return out, err
}

// ListCertificateVersions lists the versions of a certificate.
func (s *Service) ListCertificateVersions(ctx context.Context, v *vault.Vault, name, after string, limit int) (*vault.Page[*Certificate], error) {
	return vault.VersionsPage(ctx, s.objs(v, vault.Certificates), name, after, limit, certItem)
}

// certItem is a certificate version with its deletion metadata.
func certItem(rec *vault.Record, ver *vault.Version[certPayload], del *vault.DeletedInfo) *Certificate {
	c := certFrom(rec, ver)
	c.Deleted = del
	return c
}

// withPolicy completes a certificate with its policy.
func withPolicy(c vault.Objects) vault.Cascade[*Certificate] {
	return func(tx barrier.Tx, name string, out *Certificate) (err error) {
		out.Policy, err = getPolicy(tx, c, name)
		return err
	}
}

// DeleteCertificate soft-deletes a certificate with its key, secret and
// pending operation.
func (s *Service) DeleteCertificate(ctx context.Context, v *vault.Vault, name string) (*Certificate, error) {
	c, k, sec := s.certObjs(v)
	return vault.DeleteObject(ctx, s.objs(v, vault.Certificates), name, certItem, func(tx barrier.Tx, name string, out *Certificate) error {
		for _, o := range []vault.Objects{k, sec} {
			if r, err := o.Live(tx, name); err == nil && r.Managed {
				if _, err := o.SoftDelete(tx, name, out.Deleted.DeletedDate); err != nil {
					return err
				}
			}
		}
		if err := tx.Delete(opKey(name)); err != nil {
			return err
		}
		if err := s.unindexCertActions(tx, v, name); err != nil {
			return err
		}
		return withPolicy(c)(tx, name, out)
	})
}

// GetDeletedCertificate returns a soft-deleted certificate's latest version.
func (s *Service) GetDeletedCertificate(ctx context.Context, v *vault.Vault, name string) (*Certificate, error) {
	return vault.GetDeletedObject(ctx, s.objs(v, vault.Certificates), name, certItem, withPolicy(s.objs(v, vault.Certificates)))
}

// ListDeletedCertificates pages through soft-deleted certificates.
func (s *Service) ListDeletedCertificates(ctx context.Context, v *vault.Vault, after string, limit int) (*vault.Page[*Certificate], error) {
	return vault.ListDeletedPage(ctx, s.objs(v, vault.Certificates), after, limit, certItem)
}

// RecoverCertificate undoes a soft delete of a certificate, its key and
// its secret.
func (s *Service) RecoverCertificate(ctx context.Context, v *vault.Vault, name string) (*Certificate, error) {
	c, k, sec := s.certObjs(v)
	return vault.RecoverObject(ctx, s.objs(v, vault.Certificates), name, certItem, func(tx barrier.Tx, name string, out *Certificate) error {
		for _, o := range []vault.Objects{k, sec} {
			if d, err := o.Deleted(tx, name); err == nil && d.Managed {
				if _, err := o.Recover(tx, name); err != nil {
					return err
				}
			}
		}
		if err := withPolicy(c)(tx, name, out); err != nil || out.Policy == nil {
			return err
		}
		return s.indexCertActions(tx, v, name, out.Version, &out.Attributes, out.Policy)
	})
}

// PurgeCertificate removes a soft-deleted certificate, its key and its
// secret for good.
func (s *Service) PurgeCertificate(ctx context.Context, v *vault.Vault, name string) error {
	_, k, sec := s.certObjs(v)
	return vault.PurgeObject(ctx, s.objs(v, vault.Certificates), name, func(tx barrier.Tx, name string, _ struct{}) error {
		for _, o := range []vault.Objects{k, sec} {
			if d, err := o.Deleted(tx, name); err == nil && d.Managed {
				if err := o.Purge(tx, name); err != nil {
					return err
				}
			}
		}
		return tx.Delete(opKey(name))
	})
}

// --- pending operations ---

// GetCertificateOperation returns a certificate's pending (or last)
// operation.
func (s *Service) GetCertificateOperation(ctx context.Context, v *vault.Vault, name string) (*CertificateOperation, error) {
	return s.withOperation(ctx, v, name, false, nil)
}

func pendingNotFound(name string) error {
	return &vault.Error{Kind: vault.NotFound, Type: vault.Certificates, Name: name, Inner: "PendingCertificateNotFound"}
}

// withOperation runs fn (when not nil) on the operation of certificate
// name, in a read-write transaction when write is set, and returns the
// operation as fn left it.
func (s *Service) withOperation(ctx context.Context, v *vault.Vault, name string, write bool,
	fn func(tx barrier.Tx, c vault.Objects, op *certOpRecord) error) (*CertificateOperation, error) {
	if err := vault.CheckName(vault.Certificates, name); err != nil {
		return nil, err
	}
	run := s.in(v).View
	if write {
		run = s.in(v).Update
	}
	var out *CertificateOperation
	err := run(ctx, func(tx barrier.Tx) error {
		c := s.objs(v, vault.Certificates)
		op, err := getOp(tx, c, name)
		if err != nil {
			return err
		}
		if op == nil {
			return pendingNotFound(name)
		}
		if fn != nil {
			if err := fn(tx, c, op); err != nil {
				return err
			}
		}
		out = op.out()
		return nil
	})
	return out, err
}

// CancelCertificateOperation requests cancellation: an operation still in
// progress is cancelled and its key discarded.
func (s *Service) CancelCertificateOperation(ctx context.Context, v *vault.Vault, name string) (*CertificateOperation, error) {
	return s.withOperation(ctx, v, name, true, func(tx barrier.Tx, c vault.Objects, op *certOpRecord) error {
		op.Cancel = true
		if op.Status == StatusInProgress {
			op.Status, op.StatusDetails = StatusCancelled, "The certificate operation was cancelled."
			op.Key.Handle = nil
		}
		return vault.PutJSON(tx, opKey(name), op)
	})
}

// DeleteCertificateOperation removes a certificate's operation (and the
// key of a pending one).
func (s *Service) DeleteCertificateOperation(ctx context.Context, v *vault.Vault, name string) (*CertificateOperation, error) {
	return s.withOperation(ctx, v, name, true, func(tx barrier.Tx, c vault.Objects, _ *certOpRecord) error {
		if err := tx.Delete(opKey(name)); err != nil {
			return err
		}
		// A certificate that never got a version keeps nothing but its
		// policy; drop that too.
		if _, err := c.Live(tx, name); vault.KindOf(err) == vault.NotFound {
			if ok, err := c.IsDeleted(tx, name); err != nil {
				return err
			} else if !ok {
				return tx.Delete(c.PolicyKey(name))
			}
		}
		return nil
	})
}

// MergeCertificateParams is a MergeCertificate request.
type MergeCertificateParams struct {
	Name       string
	X5C        [][]byte
	Attributes *vault.AttributesPatch
	Tags       map[string]string
}

// MergeCertificate completes a pending operation with a chain signed
// outside (AZURE-API.md §1.4: 201). The leaf must carry the pending key.
func (s *Service) MergeCertificate(ctx context.Context, v *vault.Vault, p MergeCertificateParams) (*Certificate, error) {
	if err := vault.CheckName(vault.Certificates, p.Name); err != nil {
		return nil, err
	}
	if err := vault.CheckTags(p.Tags); err != nil {
		return nil, err
	}
	chain, err := parseMergeChain(p.X5C)
	if err != nil {
		return nil, err
	}
	var out *Certificate
	err = s.in(v).Update(ctx, func(tx barrier.Tx) error {
		c := s.objs(v, vault.Certificates)
		op, err := getOp(tx, c, p.Name)
		if err != nil {
			return err
		}
		if op == nil {
			return pendingNotFound(p.Name)
		}
		if op.Status != StatusInProgress || len(op.Key.Handle) == 0 {
			return certBad("The certificate %s has no pending request to merge (its operation is %s).", p.Name, op.Status)
		}
		pub, err := publicKey(op.Key.Public)
		if err != nil {
			return err
		}
		b := &certBundle{chain: chain, leaf: -1}
		for i, x := range chain {
			if samePublic(pub, x.PublicKey) {
				b.leaf = i
				break
			}
		}
		if b.leaf < 0 {
			return errKeyMismatch
		}
		ordered, leaf := b.ordered(op.Preserve)
		if out, err = s.newVersion(tx, v, op, nil, ordered, leaf, p.Attributes, p.Tags); err != nil {
			return err
		}
		return vault.PutJSON(tx, opKey(p.Name), op)
	})
	return out, err
}

// --- import ---

// ImportCertificateParams is an ImportCertificate request.
type ImportCertificateParams struct {
	CreateCertificateParams                   // Policy nil: made from the certificate
	Value                   vault.SecretValue // base64 PFX or PEM text
	Password                vault.SecretValue
}

// ImportCertificate imports a certificate with its private key from a PFX
// (the password is stripped: the secret is re-encoded) or a PEM bundle.
func (s *Service) ImportCertificate(ctx context.Context, v *vault.Vault, p ImportCertificateParams) (*Certificate, error) {
	if err := p.check(); err != nil {
		return nil, err
	}
	b, format, err := parseImport(string(p.Value.Reveal()), string(p.Password.Reveal()))
	if err != nil {
		return nil, err
	}
	pol := policyFromCertificate(b.leafCert(), format)
	if p.Policy != nil {
		pol = pol.merge(p.Policy)
		if p.Policy.LifetimeActions == nil && !strings.EqualFold(pol.issuerName(), IssuerUnknown) {
			pol.LifetimeActions = []CertificateLifetimeAction{{LifetimePercentage: ptr(80), Action: ActionAutoRenew}}
		}
	}
	if err := pol.validate(); err != nil {
		return nil, err
	}
	handle, err := x509.MarshalPKCS8PrivateKey(b.key)
	if err != nil {
		return nil, certBad("The private key cannot be imported.")
	}
	defer clear(handle)
	parsed, err := keys.ParsePrivate(handle)
	if err != nil {
		return nil, vault.KeyError(err)
	}
	kty := parsed.Kty()
	if k := pol.kty(); strings.TrimSuffix(k, "-HSM") != kty {
		return nil, badParameter("The policy's key type %s does not match the imported key (%s).", k, kty)
	}
	preserve := p.preserve()
	chain, leaf := b.ordered(preserve)
	op := &certOpRecord{Name: p.Name, Version: vault.NewVersion(), Preserve: preserve, Attributes: p.Attributes, Tags: p.Tags,
		Key: certKey{Kty: kty, Public: parsed.Public(), Protector: s.software.Name(), Platform: s.software.Platform(),
			Handle: handle, Exportable: pol.exportable()}}
	var out *Certificate
	err = s.in(v).Update(ctx, func(tx barrier.Tx) (err error) {
		out, err = s.newVersion(tx, v, op, pol, chain, leaf, nil, nil)
		return err
	})
	return out, err
}

// --- backup and restore ---

// certBackup is the plaintext of a certificate backup: the certificate,
// its policy, and its key and secret, restored together.
type certBackup struct {
	Type   vault.ObjectType                   `json:"type"`
	Tenant string                             `json:"tenant"`
	Cert   vault.Backup[certPayload]          `json:"certificate"`
	Policy *CertificatePolicy                 `json:"policy"`
	Key    *vault.KeyBackup                   `json:"key,omitempty"`
	Secret *vault.Backup[vault.SecretPayload] `json:"secret,omitempty"`
}

// BackupCertificate returns an encrypted blob with every version of a
// certificate, its key (with material) and its secret.
func (s *Service) BackupCertificate(ctx context.Context, v *vault.Vault, name string) ([]byte, error) {
	if err := vault.CheckName(vault.Certificates, name); err != nil {
		return nil, err
	}
	var b certBackup
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		c, _, sec := s.certObjs(v)
		cb, err := vault.BackupOf[certPayload](tx, c, name, false)
		if err != nil {
			return err
		}
		b = certBackup{Type: vault.Certificates, Tenant: v.TenantID, Cert: *cb}
		if b.Policy, err = getPolicy(tx, c, name); err != nil {
			return err
		}
		// The key and secret go with the certificate when it manages them.
		b.Key, err = s.vaults.ManagedKeyBackup(tx, v, name, "Backup of certificates with HSM-protected keys is not supported yet.")
		if err != nil && vault.KindOf(err) != vault.NotFound {
			return err
		}
		b.Secret, err = vault.BackupOf[vault.SecretPayload](tx, sec, name, true)
		if err != nil && vault.KindOf(err) != vault.NotFound {
			return err
		}
		return nil
	})
	defer vault.WipeKeyBackup(b.Key)
	if err != nil {
		return nil, err
	}
	return s.vaults.SealBackup(ctx, v, vault.Certificates, &b)
}

// RestoreCertificate restores a certificate backup (certificate, policy,
// key and secret) into v. Every name must be free.
func (s *Service) RestoreCertificate(ctx context.Context, v *vault.Vault, blob []byte) (*Certificate, error) {
	var b certBackup
	if err := s.vaults.OpenBackup(ctx, v, vault.Certificates, blob, &b); err != nil {
		return nil, err
	}
	defer vault.WipeKeyBackup(b.Key)
	invalid := vault.InvalidBackup(vault.Certificates)
	latest := vault.LatestIn(&b.Cert)
	if b.Type != vault.Certificates || latest == nil {
		return nil, invalid
	}
	name := b.Cert.Record.Name
	if b.Key != nil && !vault.ValidManagedKeyBackup(b.Key, name) {
		return nil, invalid
	}
	if b.Secret != nil {
		if vault.LatestIn(b.Secret) == nil || !strings.EqualFold(b.Secret.Record.Name, name) || !b.Secret.Record.Managed {
			return nil, invalid
		}
	}
	out := certFrom(&b.Cert.Record, latest)
	out.Policy = b.Policy
	err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
		c, _, sec := s.certObjs(v)
		if b.Policy != nil {
			if err := vault.PutJSON(tx, c.PolicyKey(name), b.Policy); err != nil {
				return err
			}
		}
		if err := vault.RestoreObject(tx, c, &b.Cert.Record, b.Cert.Versions); err != nil {
			return err
		}
		if b.Key != nil {
			if err := s.vaults.RestoreManagedKey(tx, v, b.Key); err != nil {
				return err
			}
		}
		if b.Secret != nil {
			if err := vault.RestoreObject(tx, sec, &b.Secret.Record, b.Secret.Versions); err != nil {
				return err
			}
		}
		if b.Policy != nil {
			return s.indexCertActions(tx, v, name, latest.Version, &latest.Attributes, b.Policy)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}
