package api

import (
	"encoding/base64"
	"github.com/keyward/keyward/internal/certificates"
	"net/http"
	"net/url"

	"github.com/keyward/keyward/internal/vault"
)

// The Certificates API (AZURE-API.md §1.4). Success codes are exact
// (§0.8): create 202, merge 201, purge 204, everything else 200.

type createCertBody struct {
	Policy            *certPolicyWire   `json:"policy"`
	Attributes        *attributesWire   `json:"attributes"`
	Tags              map[string]string `json:"tags"`
	PreserveCertOrder *bool             `json:"preserveCertOrder"`
}

func createCertificate(rq *request) error {
	var b createCertBody
	if err := rq.decode(&b); err != nil {
		return err
	}
	pol, err := b.Policy.toDomain()
	if err != nil {
		return err
	}
	op, err := rq.h.certs.CreateCertificate(rq.r.Context(), rq.vault, certificates.CreateCertificateParams{
		Name: rq.params["name"], Policy: pol, Attributes: b.Attributes.patch(), Tags: b.Tags,
		PreserveCertOrder: b.PreserveCertOrder,
	})
	if err != nil {
		return err
	}
	return rq.reply(http.StatusAccepted, rq.createdOpOut(op))
}

// pendingDetails is Azure's status_details for a new pending certificate.
const pendingDetails = "Pending certificate created. Certificate request is in progress. This may take some time based on the issuer provider. Please check again later."

// createdOpOut is the answer to a create: as Azure answers, the operation
// is "inProgress" with a request_id, and Location names the pending
// operation to poll. Self-signed and built-in CA certificates are already
// issued when the request returns, so the first GET of the pending
// operation finds it completed. A client that polls only while the first
// answer is not final (azure-core's synchronous LROPoller, the Python
// CertificateClient.begin_create_certificate) needs this first answer.
func (rq *request) createdOpOut(op *certificates.CertificateOperation) *certOpWire {
	w := rq.opOut(op)
	if op.Status == certificates.StatusCompleted {
		w.Status, w.StatusDetails, w.Target = certificates.StatusInProgress, pendingDetails, ""
	}
	if w.Status == certificates.StatusInProgress {
		q := url.Values{"api-version": {rq.apiVersion}, "request_id": {op.RequestID}}
		rq.w.Header().Set("Location", rq.objectURL("certificates", op.Name, "pending")+"?"+q.Encode())
	}
	return w
}

type importCertBody struct {
	Value             *string           `json:"value"`
	Password          *string           `json:"pwd"`
	Policy            *certPolicyWire   `json:"policy"`
	Attributes        *attributesWire   `json:"attributes"`
	Tags              map[string]string `json:"tags"`
	PreserveCertOrder *bool             `json:"preserveCertOrder"`
}

func importCertificate(rq *request) error {
	var b importCertBody
	if err := rq.decode(&b); err != nil {
		return err
	}
	if b.Value == nil || *b.Value == "" {
		return badParam("The request body must contain the certificate to import ('value').")
	}
	pol, err := b.Policy.toDomain()
	if err != nil {
		return err
	}
	p := certificates.ImportCertificateParams{Value: vault.NewSecretValue([]byte(*b.Value)),
		CreateCertificateParams: certificates.CreateCertificateParams{Name: rq.params["name"], Policy: pol,
			Attributes: b.Attributes.patch(), Tags: b.Tags, PreserveCertOrder: b.PreserveCertOrder}}
	if b.Password != nil {
		p.Password = vault.NewSecretValue([]byte(*b.Password))
	}
	c, err := rq.h.certs.ImportCertificate(rq.r.Context(), rq.vault, p)
	if err != nil {
		return err
	}
	rq.ev.ObjectID = rq.objectURL("certificates", c.Name, c.Version)
	return rq.reply(http.StatusOK, rq.certOut(c, false, true))
}

func getCertificate(rq *request) error {
	c, err := rq.h.certs.GetCertificate(rq.r.Context(), rq.vault, rq.params["name"], rq.params["version"])
	if err != nil {
		return err
	}
	rq.ev.ObjectID = rq.objectURL("certificates", c.Name, c.Version)
	return rq.reply(http.StatusOK, rq.certOut(c, false, true))
}

type updateCertBody struct {
	Attributes *attributesWire   `json:"attributes"`
	Policy     *certPolicyWire   `json:"policy"`
	Tags       map[string]string `json:"tags"`
}

func updateCertificate(rq *request) error {
	var b updateCertBody
	if err := rq.decode(&b); err != nil {
		return err
	}
	pol, err := b.Policy.toDomain()
	if err != nil {
		return err
	}
	c, err := rq.h.certs.UpdateCertificate(rq.r.Context(), rq.vault, certificates.UpdateCertificateParams{
		Name: rq.params["name"], Version: rq.params["version"], Attributes: b.Attributes.patch(), Policy: pol, Tags: b.Tags,
	})
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, rq.certOut(c, false, true))
}

func listCertificates(rq *request) error {
	after, limit, err := rq.paging()
	if err != nil {
		return err
	}
	includePending := false
	switch rq.query.Get("includePending") {
	case "", "false", "False":
	case "true", "True":
		includePending = true
	default:
		return badParam("includePending must be true or false.")
	}
	p, err := rq.h.certs.ListCertificates(rq.r.Context(), rq.vault, after, limit, includePending)
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, pageOf(rq, p, certItem))
}

func backupCertificate(rq *request) error {
	blob, err := rq.h.certs.BackupCertificate(rq.r.Context(), rq.vault, rq.params["name"])
	if err != nil {
		return err
	}
	s := base64.RawURLEncoding.EncodeToString(blob)
	return rq.reply(http.StatusOK, backupWire{Value: &s})
}

func restoreCertificate(rq *request) error {
	blob, err := rq.backupBlob()
	if err != nil {
		return err
	}
	c, err := rq.h.certs.RestoreCertificate(rq.r.Context(), rq.vault, blob)
	if err != nil {
		return err
	}
	rq.ev.ObjectID = rq.objectURL("certificates", c.Name, c.Version)
	return rq.reply(http.StatusOK, rq.certOut(c, false, true))
}

func getCertificatePolicy(rq *request) error {
	p, err := rq.h.certs.GetCertificatePolicy(rq.r.Context(), rq.vault, rq.params["name"])
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, rq.certPolicyOut(rq.params["name"], p))
}

func updateCertificatePolicy(rq *request) error {
	var b certPolicyWire
	if err := rq.decode(&b); err != nil {
		return err
	}
	patch, err := b.toDomain()
	if err != nil {
		return err
	}
	p, err := rq.h.certs.UpdateCertificatePolicy(rq.r.Context(), rq.vault, rq.params["name"], patch)
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, rq.certPolicyOut(rq.params["name"], p))
}

func getCertificateOperation(rq *request) error {
	op, err := rq.h.certs.GetCertificateOperation(rq.r.Context(), rq.vault, rq.params["name"])
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, rq.opOut(op))
}

type updateOpBody struct {
	CancellationRequested *bool `json:"cancellation_requested"`
}

func updateCertificateOperation(rq *request) error {
	var b updateOpBody
	if err := rq.decode(&b); err != nil {
		return err
	}
	if b.CancellationRequested == nil {
		return badParam("The request body must contain 'cancellation_requested'.")
	}
	var (
		op  *certificates.CertificateOperation
		err error
	)
	if *b.CancellationRequested {
		op, err = rq.h.certs.CancelCertificateOperation(rq.r.Context(), rq.vault, rq.params["name"])
	} else {
		op, err = rq.h.certs.GetCertificateOperation(rq.r.Context(), rq.vault, rq.params["name"])
	}
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, rq.opOut(op))
}

func deleteCertificateOperation(rq *request) error {
	op, err := rq.h.certs.DeleteCertificateOperation(rq.r.Context(), rq.vault, rq.params["name"])
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, rq.opOut(op))
}

type mergeCertBody struct {
	X5C        []b64std          `json:"x5c"`
	Attributes *attributesWire   `json:"attributes"`
	Tags       map[string]string `json:"tags"`
}

func mergeCertificate(rq *request) error {
	var b mergeCertBody
	if err := rq.decode(&b); err != nil {
		return err
	}
	if len(b.X5C) == 0 {
		return badParam("The request body must contain the certificate chain to merge ('x5c').")
	}
	x5c := make([][]byte, len(b.X5C))
	for i, c := range b.X5C {
		x5c[i] = c
	}
	c, err := rq.h.certs.MergeCertificate(rq.r.Context(), rq.vault, certificates.MergeCertificateParams{
		Name: rq.params["name"], X5C: x5c, Attributes: b.Attributes.patch(), Tags: b.Tags,
	})
	if err != nil {
		return err
	}
	rq.ev.ObjectID = rq.objectURL("certificates", c.Name, c.Version)
	return rq.reply(http.StatusCreated, rq.certOut(c, false, true))
}

// --- contacts ---

func (rq *request) contactsOut(cs []certificates.CertificateContact) *contactsWire {
	w := &contactsWire{ID: rq.objectURL("certificates", "contacts", ""), Contacts: []contactWire{}}
	for _, c := range cs {
		w.Contacts = append(w.Contacts, contactWire(c))
	}
	return w
}

func getContacts(rq *request) error {
	cs, err := rq.h.certs.GetCertificateContacts(rq.r.Context(), rq.vault)
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, rq.contactsOut(cs))
}

func setContacts(rq *request) error {
	var b contactsWire
	if err := rq.decode(&b); err != nil {
		return err
	}
	in := make([]certificates.CertificateContact, 0, len(b.Contacts))
	for _, c := range b.Contacts {
		in = append(in, certificates.CertificateContact(c))
	}
	cs, err := rq.h.certs.SetCertificateContacts(rq.r.Context(), rq.vault, in)
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, rq.contactsOut(cs))
}

func deleteContacts(rq *request) error {
	cs, err := rq.h.certs.DeleteCertificateContacts(rq.r.Context(), rq.vault)
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, rq.contactsOut(cs))
}

// --- issuers ---

func issuerParams(name string, b *issuerWire) certificates.SetIssuerParams {
	p := certificates.SetIssuerParams{Name: name, Provider: b.Provider}
	if c := b.Credentials; c != nil {
		p.AccountID = c.AccountID
		if c.Password != nil {
			pw := vault.NewSecretValue([]byte(*c.Password))
			p.Password = &pw
		}
	}
	if o := b.OrgDetails; o != nil {
		p.HasOrg = true
		p.OrgID = o.ID
		for _, a := range o.AdminDetails {
			p.Admins = append(p.Admins, certificates.AdminContact(a))
		}
	}
	if b.Attributes != nil {
		p.Enabled = b.Attributes.Enabled
	}
	return p
}

func setIssuer(rq *request, replace bool) error {
	var b issuerWire
	if err := rq.decode(&b); err != nil {
		return err
	}
	if replace && (b.Provider == nil || *b.Provider == "") {
		return badParam("The issuer provider is required.")
	}
	i, err := rq.h.certs.SetCertificateIssuer(rq.r.Context(), rq.vault, issuerParams(rq.params["issuer"], &b), replace)
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, rq.issuerOut(i))
}

func putIssuer(rq *request) error   { return setIssuer(rq, true) }
func patchIssuer(rq *request) error { return setIssuer(rq, false) }

func getIssuer(rq *request) error {
	i, err := rq.h.certs.GetCertificateIssuer(rq.r.Context(), rq.vault, rq.params["issuer"])
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, rq.issuerOut(i))
}

func deleteIssuer(rq *request) error {
	i, err := rq.h.certs.DeleteCertificateIssuer(rq.r.Context(), rq.vault, rq.params["issuer"])
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, rq.issuerOut(i))
}

type issuerItemWire struct {
	ID       string `json:"id"`
	Provider string `json:"provider"`
}

func listIssuers(rq *request) error {
	after, limit, err := rq.paging()
	if err != nil {
		return err
	}
	p, err := rq.h.certs.ListCertificateIssuers(rq.r.Context(), rq.vault, after, limit)
	if err != nil {
		return err
	}
	out := page[issuerItemWire]{Value: []issuerItemWire{}, NextLink: rq.nextLink(p.Next)}
	for _, i := range p.Items {
		out.Value = append(out.Value, issuerItemWire{ID: rq.objectURL("certificates", "issuers", i.Name), Provider: i.Provider})
	}
	return rq.reply(http.StatusOK, out)
}
