package vault

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"slices"
	"strings"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/keys"
)

// Certificates (AZURE-API.md §1.4). Every certificate version is backed by
// a key version and a secret version with the same name and version, both
// managed (nameRecord.Managed): the key signs and decrypts like any key but
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
	if err := checkName(Certificates, name); err != nil {
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
	Attributes        Attributes
	Tags              map[string]string
	Policy            *CertificatePolicy // nil in listings
	PreserveCertOrder bool
	Pending           bool // listed with includePending, not yet issued
	Deleted           *DeletedInfo
}

func certFrom(rec *nameRecord, ver *Version[certPayload]) *Certificate {
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
	Name          string            `json:"name"`
	RequestID     string            `json:"requestId"`
	Version       string            `json:"version"`
	Issuer        IssuerParameters  `json:"issuer"`
	Provider      string            `json:"provider"`
	CSR           []byte            `json:"csr"`
	Status        string            `json:"status"`
	StatusDetails string            `json:"statusDetails"`
	Error         *OperationError   `json:"error,omitempty"`
	Cancel        bool              `json:"cancellationRequested"`
	Preserve      bool              `json:"preserveCertOrder,omitempty"`
	Created       int64             `json:"created"`
	Attributes    *AttributesPatch  `json:"attributes,omitempty"`
	Tags          map[string]string `json:"tags,omitempty"`
	DNSNames      []string          `json:"dnsNames,omitempty"` // for ACME orders
	Key           certKey           `json:"key"`
}

// certKey is the key of a certificate version before it is stored as a
// key version. Handle is the protector's private key handle.
type certKey struct {
	Kty        string   `json:"kty"`
	Public     keys.JWK `json:"public"`
	Protector  string   `json:"protector"`
	Platform   string   `json:"platform"`
	Handle     []byte   `json:"handle,omitempty"`
	Exportable bool     `json:"exportable"`
}

func (op *certOpRecord) out() *CertificateOperation {
	return &CertificateOperation{Name: op.Name, Issuer: op.Issuer, CSR: op.CSR,
		CancellationRequested: op.Cancel, Status: op.Status, StatusDetails: op.StatusDetails,
		Error: op.Error, RequestID: op.RequestID, PreserveCertOrder: op.Preserve}
}

func (o objects) opKey(name string) string { return o.base() + "/o/" + strings.ToLower(name) }

func newRequestID() string {
	b := make([]byte, 16)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func (s *Service) certObjs(v *Vault) (c, k, sec objects) {
	return s.objs(v, Certificates), s.objs(v, Keys), s.objs(v, Secrets)
}

func getPolicy(tx barrier.Tx, o objects, name string) (*CertificatePolicy, error) {
	pol := new(CertificatePolicy)
	ok, err := getJSON(tx, o.policyKey(name), pol)
	if err != nil || !ok {
		return nil, err
	}
	return pol, nil
}

func getOp(tx barrier.Tx, o objects, name string) (*certOpRecord, error) {
	op := new(certOpRecord)
	ok, err := getJSON(tx, o.opKey(name), op)
	if err != nil || !ok {
		return nil, err
	}
	return op, nil
}

// checkNameFree refuses a certificate name whose certificate, key or
// secret is soft-deleted, and names taken by a key or secret that a
// certificate does not manage.
func (s *Service) checkNameFree(tx barrier.Tx, v *Vault, name string) error {
	for _, o := range []objects{s.objs(v, Certificates), s.objs(v, Keys), s.objs(v, Secrets)} {
		if ok, err := getJSON(tx, o.deletedKey(name), new(deletedRecord)); err != nil {
			return err
		} else if ok {
			return deletedButRecoverable(o.t, name)
		}
		if o.t == Certificates {
			continue
		}
		rec := new(nameRecord)
		if ok, err := getJSON(tx, o.nameKey(name), rec); err != nil {
			return err
		} else if ok && !rec.Managed {
			return &Error{Kind: Conflict, Type: Certificates, Name: name,
				Msg: fmt.Sprintf("A %s named %s already exists; a certificate's key and secret take the certificate's name.", o.t.singular(), rec.Name)}
		}
	}
	return nil
}

// CreateCertificateParams is a CreateCertificate request.
type CreateCertificateParams struct {
	Name              string
	Policy            *CertificatePolicy // nil: the certificate's current policy
	Attributes        *AttributesPatch
	Tags              map[string]string
	PreserveCertOrder *bool
}

// CreateCertificate starts a new certificate version (202 on the wire).
// Self-signed and built-in CA certificates are issued at once; Unknown
// issuers wait for a merge; ACME issuers complete in the background.
func (s *Service) CreateCertificate(ctx context.Context, v *Vault, p CreateCertificateParams) (*CertificateOperation, error) {
	if err := checkRequest(checkCertName(p.Name), p.Tags, p.Attributes); err != nil {
		return nil, err
	}
	c := s.objs(v, Certificates)
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
		if rec := new(nameRecord); old != nil {
			if ok, err := getJSON(tx, c.nameKey(p.Name), rec); err != nil {
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
	preserve := p.PreserveCertOrder != nil && *p.PreserveCertOrder
	return s.startIssuance(ctx, v, p.Name, pol, p.Policy != nil, prevVersion, preserve, p.Attributes, p.Tags)
}

// startIssuance creates a key (or reuses the previous version's), a CSR and
// an operation, and issues at once where the issuer allows. Renewal uses
// it too.
func (s *Service) startIssuance(ctx context.Context, v *Vault, name string, pol *CertificatePolicy, newPolicy bool,
	prevVersion string, preserve bool, attrs *AttributesPatch, tags map[string]string) (*CertificateOperation, error) {
	sp, err := pol.X509.spec()
	if err != nil {
		return nil, err
	}
	iss, err := s.resolveIssuer(ctx, v, pol.issuerName())
	if err != nil {
		return nil, err
	}
	key, err := s.certificateKey(ctx, v, name, pol, prevVersion)
	if err != nil {
		return nil, err
	}
	defer clear(key.Handle)
	signer, err := s.handleSigner(ctx, key)
	if err != nil {
		return nil, err
	}
	op := &certOpRecord{
		Name: name, RequestID: newRequestID(), Version: NewVersion(), Provider: iss.provider,
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
		return nil, keyError(err)
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
			return nil, keyError(fmt.Errorf("self-signing: %w", err))
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
	c := s.objs(v, Certificates)
	err = s.in(v).Update(ctx, func(tx barrier.Tx) error {
		if err := s.checkNameFree(tx, v, name); err != nil {
			return err
		}
		now := s.clock.Now().Unix()
		if newPolicy {
			stored := *pol
			stored.Created, stored.Updated = now, now
			if old, err := getPolicy(tx, c, name); err != nil {
				return err
			} else if old != nil && old.Created != 0 {
				stored.Created = old.Created
			}
			if err := putJSON(tx, c.policyKey(name), &stored); err != nil {
				return err
			}
		}
		if chain != nil {
			if _, err := s.completeCert(tx, v, op, chain, 0, nil, nil); err != nil {
				return err
			}
		}
		return putJSON(tx, c.opKey(name), op)
	})
	if err != nil {
		return nil, err
	}
	if op.Status == StatusInProgress && op.Provider == ProviderACME {
		s.startExternal(ctx, v, name, op.RequestID)
	}
	return op.out(), nil
}

// certificateKey generates the key of a new certificate version, or copies
// the previous version's when the policy says reuse_key.
func (s *Service) certificateKey(ctx context.Context, v *Vault, name string, pol *CertificatePolicy, prevVersion string) (*certKey, error) {
	kty, spec, err := pol.keySpec()
	if err != nil {
		return nil, err
	}
	if spec.Curve == keys.CurveP256K {
		return nil, badParameter("Certificates cannot use curve P-256K (secp256k1): X.509 libraries do not support it. Use P-256, P-384 or P-521.")
	}
	if pol.reuseKey() && prevVersion != "" {
		var key *certKey
		err := s.in(v).View(ctx, func(tx barrier.Tx) error {
			k := s.objs(v, Keys)
			_, ver, err := getVersion[keyPayload](tx, k, name, prevVersion)
			if err != nil {
				return err
			}
			h, err := tx.Get(k.materialKey(name, prevVersion))
			if err != nil {
				return err
			}
			key = &certKey{Kty: ver.Payload.Kty, Public: ver.Payload.Public, Protector: ver.Payload.Protector,
				Platform: ver.Payload.Platform, Handle: h, Exportable: pol.exportable()}
			return nil
		})
		if err == nil {
			return key, nil
		}
		if KindOf(err) != NotFound {
			return nil, err
		}
	}
	prot, _, err := s.protector(v, kty)
	if err != nil {
		return nil, err
	}
	exportable := pol.exportable()
	if prot.Name() != s.software.Name() && exportable {
		exportable = false // an HSM key never leaves the HSM
	}
	handle, pub, err := prot.Generate(ctx, spec)
	if err != nil {
		return nil, keyError(err)
	}
	return &certKey{Kty: kty, Public: pub, Protector: prot.Name(), Platform: prot.Platform(), Handle: handle, Exportable: exportable}, nil
}

// protectorByName returns the protector that made a handle of the key
// keyName. Only the software protector exists today.
func (s *Service) protectorByName(name, keyName string) (keys.Protector, error) {
	if name == s.software.Name() {
		return s.software, nil
	}
	return nil, &Error{Kind: Forbidden, Type: Keys, Name: keyName,
		Msg: "The key is held by a key protector (" + name + ") that is not configured on this Keyward."}
}

// handleSigner loads a certificate key for signing (CSRs, self-signing).
func (s *Service) handleSigner(ctx context.Context, key *certKey) (opSigner, error) {
	prot, err := s.protectorByName(key.Protector, "")
	if err != nil {
		return opSigner{}, err
	}
	op, err := prot.Load(ctx, key.Handle)
	if err != nil {
		return opSigner{}, keyError(err)
	}
	return newOpSigner(ctx, op)
}

// privateKey returns the private key of a software certificate key for the
// secret, or nil when it must not leave Keyward.
func (key *certKey) privateKey() crypto.PrivateKey {
	if !key.Exportable || key.Protector != (keys.Software{}).Name() {
		return nil
	}
	k, err := x509.ParsePKCS8PrivateKey(key.Handle)
	if err != nil {
		return nil
	}
	return k
}

// completeCert stores the certificate version of op with chain (leaf at
// index leaf, in the order the secret keeps), and its key and secret
// versions, inside tx. attrs and tags (from a merge) override the
// operation's.
func (s *Service) completeCert(tx barrier.Tx, v *Vault, op *certOpRecord, chain []*x509.Certificate, leaf int,
	attrs *AttributesPatch, tags map[string]string) (*Certificate, error) {
	c, k, sec := s.certObjs(v)
	name := op.Name
	pol, err := getPolicy(tx, c, name)
	if err != nil {
		return nil, err
	}
	if pol == nil {
		return nil, notFound(Certificates, name)
	}
	lc := chain[leaf]
	pub, err := publicKey(op.Key.Public)
	if err != nil {
		return nil, err
	}
	if !samePublic(pub, lc.PublicKey) {
		return nil, certBad("Public key from x509 certificate and key of this instance doesn't match.")
	}
	now := s.clock.Now().Unix()
	nbf, exp := lc.NotBefore.Unix(), lc.NotAfter.Unix()
	a := Attributes{Enabled: pol.enabled(), Created: now, Updated: now, NotBefore: &nbf, Expires: &exp}
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
	f := false
	base := strings.TrimSuffix(op.Key.Kty, "-HSM")
	kv := &Version[keyPayload]{Version: op.Version, Attributes: a,
		Payload: keyPayload{Kty: op.Key.Kty, KeyOps: defaultKeyOps(base), Public: op.Key.Public,
			Protector: op.Key.Protector, Platform: op.Key.Platform}}
	kv.Attributes.Exportable = &f
	if _, err := addVersion(tx, k, name, kv, true); err != nil {
		return nil, err
	}
	if err := tx.Put(k.materialKey(name, op.Version), op.Key.Handle); err != nil {
		return nil, err
	}

	// The secret version.
	ct := pol.contentType()
	priv := op.Key.privateKey()
	value, err := encodeCertSecret(ct, priv, chain, leaf)
	if err != nil {
		return nil, err
	}
	defer clear(value)
	sv := &Version[secretPayload]{Version: op.Version, Attributes: a,
		Payload: secretPayload{Value: value, ContentType: ct, Kid: "keys/" + name + "/" + op.Version}}
	if _, err := addVersion(tx, sec, name, sv, true); err != nil {
		return nil, err
	}

	// The certificate version.
	cp := certPayload{CER: lc.Raw, ContentType: ct, Preserve: op.Preserve}
	for _, x := range chain {
		cp.Chain = append(cp.Chain, x.Raw)
	}
	cv := &Version[certPayload]{Version: op.Version, Attributes: a, Tags: tags, Payload: cp}
	rec, err := addVersion(tx, c, name, cv, false)
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
func (s *Service) GetCertificate(ctx context.Context, v *Vault, name, version string) (*Certificate, error) {
	if err := checkName(Certificates, name); err != nil {
		return nil, err
	}
	var out *Certificate
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		c := s.objs(v, Certificates)
		rec, ver, err := getVersion[certPayload](tx, c, name, version)
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
	Attributes    *AttributesPatch
	Policy        *CertificatePolicy
	Tags          map[string]string
}

// UpdateCertificate changes a version's attributes and tags (enabled also
// applies to its key and secret) and, with a policy, the policy.
func (s *Service) UpdateCertificate(ctx context.Context, v *Vault, p UpdateCertificateParams) (*Certificate, error) {
	if err := checkRequest(checkName(Certificates, p.Name), p.Tags, p.Attributes); err != nil {
		return nil, err
	}
	var out *Certificate
	err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
		c, k, sec := s.certObjs(v)
		rec, ver, err := getVersion[certPayload](tx, c, p.Name, p.Version)
		if err != nil {
			return err
		}
		now := s.clock.Now().Unix()
		if p.Attributes != nil {
			ver.Attributes.apply(&AttributesPatch{Enabled: p.Attributes.Enabled, NotBefore: p.Attributes.NotBefore, Expires: p.Attributes.Expires})
			if err := checkAttributes(&AttributesPatch{NotBefore: ver.Attributes.NotBefore, Expires: ver.Attributes.Expires}); err != nil {
				return err
			}
			if p.Attributes.Enabled != nil {
				if err := setEnabled[keyPayload](tx, k, p.Name, ver.Version, *p.Attributes.Enabled, now); err != nil {
					return err
				}
				if err := setEnabled[secretPayload](tx, sec, p.Name, ver.Version, *p.Attributes.Enabled, now); err != nil {
					return err
				}
			}
		}
		if p.Tags != nil {
			ver.Tags = p.Tags
		}
		ver.Attributes.Updated = now
		if err := putVersion(tx, c, p.Name, ver); err != nil {
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
		s.ops.evict(v, p.Name)
	}
	return out, err
}

func setEnabled[P any](tx barrier.Tx, o objects, name, version string, enabled bool, now int64) error {
	_, ver, err := getVersion[P](tx, o, name, version)
	if KindOf(err) == NotFound {
		return nil
	}
	if err != nil {
		return err
	}
	ver.Attributes.Enabled, ver.Attributes.Updated = enabled, now
	return putVersion(tx, o, name, ver)
}

// putPolicy merges patch into the stored policy of a live certificate and
// re-schedules the latest version's lifetime actions and notifications.
func (s *Service) putPolicy(tx barrier.Tx, v *Vault, rec *nameRecord, old, patch *CertificatePolicy) (*CertificatePolicy, error) {
	c := s.objs(v, Certificates)
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
	if err := putJSON(tx, c.policyKey(rec.Name), pol); err != nil {
		return nil, err
	}
	if err := c.reindexLatest(tx, rec); err != nil {
		return nil, err
	}
	_, ver, err := getVersion[certPayload](tx, c, rec.Name, rec.Latest)
	if err != nil {
		return nil, err
	}
	return pol, s.indexCertActions(tx, v, rec.Name, ver.Version, &ver.Attributes, pol)
}

// GetCertificatePolicy returns a certificate's policy.
func (s *Service) GetCertificatePolicy(ctx context.Context, v *Vault, name string) (*CertificatePolicy, error) {
	if err := checkName(Certificates, name); err != nil {
		return nil, err
	}
	var pol *CertificatePolicy
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		c := s.objs(v, Certificates)
		var err error
		if pol, err = getPolicy(tx, c, name); err != nil {
			return err
		}
		if pol == nil {
			return notFound(Certificates, name)
		}
		if _, err := c.live(tx, name); err != nil {
			if op, err2 := getOp(tx, c, name); err2 != nil || op == nil {
				return err
			}
		}
		return nil
	})
	return pol, err
}

// UpdateCertificatePolicy merges patch into a certificate's policy.
func (s *Service) UpdateCertificatePolicy(ctx context.Context, v *Vault, name string, patch *CertificatePolicy) (*CertificatePolicy, error) {
	if err := checkName(Certificates, name); err != nil {
		return nil, err
	}
	var pol *CertificatePolicy
	err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
		c := s.objs(v, Certificates)
		old, err := getPolicy(tx, c, name)
		if err != nil {
			return err
		}
		rec, err := c.live(tx, name)
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
			return putJSON(tx, c.policyKey(name), pol)
		}
		pol, err = s.putPolicy(tx, v, rec, old, patch)
		return err
	})
	return pol, err
}

// ListCertificates lists live certificates (latest versions) and, with
// includePending, certificates whose first version is still pending.
func (s *Service) ListCertificates(ctx context.Context, v *Vault, after string, limit int, includePending bool) (*Page[*Certificate], error) {
	page := &Page[*Certificate]{}
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		c := s.objs(v, Certificates)
		recs, vers, _, err := listLatest[certPayload](tx, c, after, limit+1, nil)
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
					Attributes: Attributes{Enabled: true, Created: op.Created, Updated: op.Created}, Tags: op.Tags}})
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
func pendingOnly(tx barrier.Tx, c objects, after string, limit int) ([]*certOpRecord, error) {
	prefix := c.base() + "/o/"
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
		if ok, err := getJSON(tx, c.nameKey(op.Name), new(nameRecord)); err != nil {
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
func (s *Service) ListCertificateVersions(ctx context.Context, v *Vault, name, after string, limit int) (*Page[*Certificate], error) {
	return versionsPage(ctx, s, v, Certificates, name, after, limit, certItem)
}

// certItem is a certificate version with its deletion metadata.
func certItem(rec *nameRecord, ver *Version[certPayload], del *DeletedInfo) *Certificate {
	c := certFrom(rec, ver)
	c.Deleted = del
	return c
}

// withPolicy completes a certificate with its policy.
func withPolicy(c objects) cascade[*Certificate] {
	return func(tx barrier.Tx, name string, out *Certificate) (err error) {
		out.Policy, err = getPolicy(tx, c, name)
		return err
	}
}

// DeleteCertificate soft-deletes a certificate with its key, secret and
// pending operation.
func (s *Service) DeleteCertificate(ctx context.Context, v *Vault, name string) (*Certificate, error) {
	c, k, sec := s.certObjs(v)
	return deleteObject(ctx, s, v, Certificates, name, certItem, func(tx barrier.Tx, name string, out *Certificate) error {
		for _, o := range []objects{k, sec} {
			if r, err := o.live(tx, name); err == nil && r.Managed {
				if _, err := softDelete(tx, o, name, out.Deleted.DeletedDate, int64(v.RetentionDays)); err != nil {
					return err
				}
			}
		}
		if err := tx.Delete(c.opKey(name)); err != nil {
			return err
		}
		if err := s.unindexCertActions(tx, v, name); err != nil {
			return err
		}
		return withPolicy(c)(tx, name, out)
	})
}

// GetDeletedCertificate returns a soft-deleted certificate's latest version.
func (s *Service) GetDeletedCertificate(ctx context.Context, v *Vault, name string) (*Certificate, error) {
	return getDeletedObject(ctx, s, v, Certificates, name, certItem, withPolicy(s.objs(v, Certificates)))
}

// ListDeletedCertificates pages through soft-deleted certificates.
func (s *Service) ListDeletedCertificates(ctx context.Context, v *Vault, after string, limit int) (*Page[*Certificate], error) {
	return listDeletedPage(ctx, s, v, Certificates, after, limit, certItem)
}

// RecoverCertificate undoes a soft delete of a certificate, its key and
// its secret.
func (s *Service) RecoverCertificate(ctx context.Context, v *Vault, name string) (*Certificate, error) {
	c, k, sec := s.certObjs(v)
	return recoverObject(ctx, s, v, Certificates, name, certItem, func(tx barrier.Tx, name string, out *Certificate) error {
		for _, o := range []objects{k, sec} {
			if d, err := deleted(tx, o, name); err == nil && d.Managed {
				if _, err := recoverDeleted(tx, o, name); err != nil {
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
func (s *Service) PurgeCertificate(ctx context.Context, v *Vault, name string) error {
	c, k, sec := s.certObjs(v)
	return purgeObject(ctx, s, v, Certificates, name, func(tx barrier.Tx, name string, _ struct{}) error {
		for _, o := range []objects{k, sec} {
			if d, err := deleted(tx, o, name); err == nil && d.Managed {
				if err := purge(tx, o, name); err != nil {
					return err
				}
			}
		}
		return tx.Delete(c.opKey(name))
	})
}

// --- pending operations ---

// GetCertificateOperation returns a certificate's pending (or last)
// operation.
func (s *Service) GetCertificateOperation(ctx context.Context, v *Vault, name string) (*CertificateOperation, error) {
	return s.withOperation(ctx, v, name, false, nil)
}

func pendingNotFound(name string) error {
	return &Error{Kind: NotFound, Type: Certificates, Name: name, Inner: "PendingCertificateNotFound",
		Msg: fmt.Sprintf("Pending certificate not found: %s", name)}
}

// withOperation runs fn (when not nil) on the operation of certificate
// name, in a read-write transaction when write is set, and returns the
// operation as fn left it.
func (s *Service) withOperation(ctx context.Context, v *Vault, name string, write bool,
	fn func(tx barrier.Tx, c objects, op *certOpRecord) error) (*CertificateOperation, error) {
	if err := checkName(Certificates, name); err != nil {
		return nil, err
	}
	run := s.in(v).View
	if write {
		run = s.in(v).Update
	}
	var out *CertificateOperation
	err := run(ctx, func(tx barrier.Tx) error {
		c := s.objs(v, Certificates)
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
func (s *Service) CancelCertificateOperation(ctx context.Context, v *Vault, name string) (*CertificateOperation, error) {
	return s.withOperation(ctx, v, name, true, func(tx barrier.Tx, c objects, op *certOpRecord) error {
		op.Cancel = true
		if op.Status == StatusInProgress {
			op.Status, op.StatusDetails = StatusCancelled, "The certificate operation was cancelled."
			op.Key.Handle = nil
		}
		return putJSON(tx, c.opKey(name), op)
	})
}

// DeleteCertificateOperation removes a certificate's operation (and the
// key of a pending one).
func (s *Service) DeleteCertificateOperation(ctx context.Context, v *Vault, name string) (*CertificateOperation, error) {
	return s.withOperation(ctx, v, name, true, func(tx barrier.Tx, c objects, _ *certOpRecord) error {
		if err := tx.Delete(c.opKey(name)); err != nil {
			return err
		}
		// A certificate that never got a version keeps nothing but its
		// policy; drop that too.
		if _, err := c.live(tx, name); KindOf(err) == NotFound {
			if ok, err := getJSON(tx, c.deletedKey(name), new(deletedRecord)); err != nil {
				return err
			} else if !ok {
				return tx.Delete(c.policyKey(name))
			}
		}
		return nil
	})
}

// MergeCertificateParams is a MergeCertificate request.
type MergeCertificateParams struct {
	Name       string
	X5C        [][]byte
	Attributes *AttributesPatch
	Tags       map[string]string
}

// MergeCertificate completes a pending operation with a chain signed
// outside (AZURE-API.md §1.4: 201). The leaf must carry the pending key.
func (s *Service) MergeCertificate(ctx context.Context, v *Vault, p MergeCertificateParams) (*Certificate, error) {
	if err := checkName(Certificates, p.Name); err != nil {
		return nil, err
	}
	if err := checkTags(p.Tags); err != nil {
		return nil, err
	}
	chain, err := parseMergeChain(p.X5C)
	if err != nil {
		return nil, err
	}
	var out *Certificate
	err = s.in(v).Update(ctx, func(tx barrier.Tx) error {
		c := s.objs(v, Certificates)
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
			return certBad("Public key from x509 certificate and key of this instance doesn't match.")
		}
		ordered, leaf := b.ordered(op.Preserve)
		if err := s.checkNameFree(tx, v, p.Name); err != nil {
			return err
		}
		if out, err = s.completeCert(tx, v, op, ordered, leaf, p.Attributes, p.Tags); err != nil {
			return err
		}
		return putJSON(tx, c.opKey(p.Name), op)
	})
	return out, err
}

// --- import ---

// ImportCertificateParams is an ImportCertificate request.
type ImportCertificateParams struct {
	Name              string
	Value             SecretValue // base64 PFX or PEM text
	Password          SecretValue
	Policy            *CertificatePolicy
	Attributes        *AttributesPatch
	Tags              map[string]string
	PreserveCertOrder *bool
}

// ImportCertificate imports a certificate with its private key from a PFX
// (the password is stripped: the secret is re-encoded) or a PEM bundle.
func (s *Service) ImportCertificate(ctx context.Context, v *Vault, p ImportCertificateParams) (*Certificate, error) {
	if err := checkRequest(checkCertName(p.Name), p.Tags, p.Attributes); err != nil {
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
		return nil, keyError(err)
	}
	kty := parsed.Kty()
	if k := pol.kty(); strings.TrimSuffix(k, "-HSM") != kty {
		return nil, badParameter("The policy's key type %s does not match the imported key (%s).", k, kty)
	}
	preserve := p.PreserveCertOrder != nil && *p.PreserveCertOrder
	chain, leaf := b.ordered(preserve)
	op := &certOpRecord{Name: p.Name, Version: NewVersion(), Preserve: preserve, Attributes: p.Attributes, Tags: p.Tags,
		Key: certKey{Kty: kty, Public: parsed.Public(), Protector: s.software.Name(), Platform: s.software.Platform(),
			Handle: handle, Exportable: pol.exportable()}}
	var out *Certificate
	err = s.in(v).Update(ctx, func(tx barrier.Tx) error {
		if err := s.checkNameFree(tx, v, p.Name); err != nil {
			return err
		}
		c := s.objs(v, Certificates)
		now := s.clock.Now().Unix()
		stored := *pol
		stored.Created, stored.Updated = now, now
		if old, err := getPolicy(tx, c, p.Name); err != nil {
			return err
		} else if old != nil && old.Created != 0 {
			stored.Created = old.Created
		}
		if err := putJSON(tx, c.policyKey(p.Name), &stored); err != nil {
			return err
		}
		var err error
		out, err = s.completeCert(tx, v, op, chain, leaf, nil, nil)
		return err
	})
	return out, err
}

// --- backup and restore ---

// certBackup is the plaintext of a certificate backup: the certificate,
// its policy, and its key and secret, restored together.
type certBackup struct {
	Type   ObjectType                `json:"type"`
	Tenant string                    `json:"tenant"`
	Cert   backup[certPayload]       `json:"certificate"`
	Policy *CertificatePolicy        `json:"policy"`
	Key    *backup[keyBackupVersion] `json:"key,omitempty"`
	Secret *backup[secretPayload]    `json:"secret,omitempty"`
}

// BackupCertificate returns an encrypted blob with every version of a
// certificate, its key (with material) and its secret.
func (s *Service) BackupCertificate(ctx context.Context, v *Vault, name string) ([]byte, error) {
	if err := checkName(Certificates, name); err != nil {
		return nil, err
	}
	var b certBackup
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		c, k, sec := s.certObjs(v)
		cb, err := backupOf[certPayload](tx, c, name, false)
		if err != nil {
			return err
		}
		b = certBackup{Type: Certificates, Tenant: v.TenantID, Cert: *cb}
		if b.Policy, err = getPolicy(tx, c, name); err != nil {
			return err
		}
		// The key and secret go with the certificate when it manages them.
		b.Key, err = s.keyBackupOf(tx, k, name, true, "Backup of certificates with HSM-protected keys is not supported yet.")
		if err != nil && KindOf(err) != NotFound {
			return err
		}
		b.Secret, err = backupOf[secretPayload](tx, sec, name, true)
		if err != nil && KindOf(err) != NotFound {
			return err
		}
		return nil
	})
	defer wipeMaterial(b.Key)
	if err != nil {
		return nil, err
	}
	return s.sealBackup(ctx, v, Certificates, &b)
}

// RestoreCertificate restores a certificate backup (certificate, policy,
// key and secret) into v. Every name must be free.
func (s *Service) RestoreCertificate(ctx context.Context, v *Vault, blob []byte) (*Certificate, error) {
	var b certBackup
	if err := s.openBackup(ctx, v, Certificates, blob, &b); err != nil {
		return nil, err
	}
	defer wipeMaterial(b.Key)
	invalid := invalidBackup(Certificates)
	latest := latestIn(&b.Cert, nil)
	if b.Type != Certificates || latest == nil {
		return nil, invalid
	}
	name := b.Cert.Record.Name
	var keyVers []*Version[keyPayload]
	if b.Key != nil {
		var keyLatest *Version[keyPayload]
		keyVers, keyLatest = keyVersionsIn(b.Key)
		if keyLatest == nil || !strings.EqualFold(b.Key.Record.Name, name) || !b.Key.Record.Managed {
			return nil, invalid
		}
	}
	if b.Secret != nil {
		if latestIn(b.Secret, nil) == nil || !strings.EqualFold(b.Secret.Record.Name, name) || !b.Secret.Record.Managed {
			return nil, invalid
		}
	}
	out := certFrom(&b.Cert.Record, latest)
	out.Policy = b.Policy
	err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
		c, k, sec := s.certObjs(v)
		if b.Policy != nil {
			if err := putJSON(tx, c.policyKey(name), b.Policy); err != nil {
				return err
			}
		}
		if err := restoreObject(tx, c, &b.Cert.Record, b.Cert.Versions); err != nil {
			return err
		}
		if b.Key != nil {
			if err := restoreKeyObject(tx, k, b.Key, keyVers); err != nil {
				return err
			}
		}
		if b.Secret != nil {
			if err := restoreObject(tx, sec, &b.Secret.Record, b.Secret.Versions); err != nil {
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
