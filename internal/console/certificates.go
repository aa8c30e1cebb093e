package console

import (
	"encoding/base64"
	"encoding/pem"
	"net/http"
	"sort"
	"strconv"
	"strings"

	"github.com/keyward/keyward/internal/route"
)

// Certificates: list, create with a policy (self-signed, or "Unknown" for
// a CSR signed elsewhere and merged back), import (PFX or PEM), the pending
// CSR and merge, download (.cer or PEM), issuers and contacts.
func init() {
	const get, post = http.MethodGet, http.MethodPost
	Register(&Page{Key: "certificates", Title: "Certificates", Scope: Vault, Order: 40, Routes: []route.Route[handler, string]{
		{Method: get, Pattern: "/ui/vaults/{vault}/certificates", Op: "ConsoleCertificateList", Handle: certList},
		{Method: post, Pattern: "/ui/vaults/{vault}/certificates", Op: "ConsoleCertificateCreate", Handle: certCreate},
		{Method: post, Pattern: "/ui/vaults/{vault}/certificates/import", Op: "ConsoleCertificateImport", Handle: certImport},
		{Method: post, Pattern: "/ui/vaults/{vault}/certificates/issuers", Op: "ConsoleCertificateIssuerSet", Handle: certIssuerSet},
		{Method: post, Pattern: "/ui/vaults/{vault}/certificates/contacts", Op: "ConsoleCertificateContactsSet", Handle: certContactsSet},
		{Method: get, Pattern: "/ui/vaults/{vault}/certificates/{name}", Op: "ConsoleCertificateGet", Handle: certPage},
		{Method: get, Pattern: "/ui/vaults/{vault}/certificates/{name}/download", Op: "ConsoleCertificateDownload", Handle: certDownload},
		{Method: post, Pattern: "/ui/vaults/{vault}/certificates/{name}/merge", Op: "ConsoleCertificateMerge", Handle: certMerge},
		{Method: post, Pattern: "/ui/vaults/{vault}/certificates/{name}/delete", Op: "ConsoleCertificateDelete", Handle: certDelete},
	}})
}

type certListView struct {
	*listView
	Issuers  []string
	Contacts string
	Notices  []string
}

func certList(q *req) error {
	lv, err := q.listObjects("certificates")
	if err != nil {
		return err
	}
	v := &certListView{listView: lv}
	var issuers struct {
		Value []struct {
			ID       string `json:"id"`
			Provider string `json:"provider"`
		} `json:"value"`
	}
	if err := q.data(q.p["vault"], http.MethodGet, "certificates/issuers", nil, &issuers); err != nil {
		v.Notices = append(v.Notices, "Issuers: "+err.(*apiError).Message)
	}
	for _, i := range issuers.Value {
		v.Issuers = append(v.Issuers, funcs["last"].(func(string) string)(i.ID)+" ("+i.Provider+")")
	}
	var contacts struct {
		Contacts []struct {
			Email string `json:"email"`
		} `json:"contacts"`
	}
	if err := q.data(q.p["vault"], http.MethodGet, "certificates/contacts", nil, &contacts); err != nil {
		if e := err.(*apiError); e.Status != http.StatusNotFound {
			v.Notices = append(v.Notices, "Contacts: "+e.Message)
		}
	}
	var mails []string
	for _, c := range contacts.Contacts {
		mails = append(mails, c.Email)
	}
	v.Contacts = strings.Join(mails, ", ")
	return q.render("certificates", http.StatusOK, q.p["vault"]+": certificates", v)
}

func splitList(s string) []string {
	var out []string
	for _, x := range strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\n' || r == '\r' }) {
		out = append(out, x)
	}
	return out
}

func certCreate(q *req) error {
	f := q.r.PostForm
	name := strings.TrimSpace(f.Get("name"))
	if !objectNameRE.MatchString(name) {
		return badName()
	}
	months, _ := strconv.Atoi(cmpOr(f.Get("validity"), "12"))
	keyProps := map[string]any{"kty": cmpOr(f.Get("kty"), "RSA"), "exportable": true, "reuse_key": false}
	if strings.HasPrefix(keyProps["kty"].(string), "EC") {
		keyProps["crv"] = "P-256"
	} else {
		keyProps["key_size"] = 2048
	}
	x509 := map[string]any{"subject": cmpOr(f.Get("subject"), "CN="+name), "validity_months": months}
	if sans := splitList(f.Get("dns_names")); len(sans) > 0 {
		x509["sans"] = map[string]any{"dns_names": sans}
	}
	policy := map[string]any{"key_props": keyProps, "x509_props": x509,
		"secret_props": map[string]any{"contentType": cmpOr(f.Get("content_type"), "application/x-pkcs12")},
		"issuer":       map[string]any{"name": cmpOr(f.Get("issuer"), "Self")}}
	if err := q.data(q.p["vault"], http.MethodPost, "certificates/"+name+"/create", map[string]any{"policy": policy}, nil); err != nil {
		return err
	}
	return q.redirect("/ui/vaults/"+q.p["vault"]+"/certificates/"+name, "Certificate "+name+" requested.")
}

func certImport(q *req) error {
	f := q.r.PostForm
	name := strings.TrimSpace(f.Get("name"))
	if !objectNameRE.MatchString(name) {
		return badName()
	}
	value, ct := strings.TrimSpace(f.Get("value")), "application/x-pkcs12"
	if strings.Contains(value, "-----BEGIN") {
		ct = "application/x-pem-file"
	}
	body := map[string]any{"value": value, "policy": map[string]any{"secret_props": map[string]any{"contentType": ct}}}
	if pw := f.Get("password"); pw != "" {
		body["pwd"] = pw
	}
	if err := q.data(q.p["vault"], http.MethodPost, "certificates/"+name+"/import", body, nil); err != nil {
		return err
	}
	return q.redirect("/ui/vaults/"+q.p["vault"]+"/certificates/"+name, "Certificate "+name+" imported.")
}

func certIssuerSet(q *req) error {
	f := q.r.PostForm
	name := strings.TrimSpace(f.Get("name"))
	if !objectNameRE.MatchString(name) {
		return badName()
	}
	if err := q.data(q.p["vault"], http.MethodPut, "certificates/issuers/"+name, map[string]any{"provider": f.Get("provider")}, nil); err != nil {
		return err
	}
	return q.redirect("/ui/vaults/"+q.p["vault"]+"/certificates", "Issuer "+name+" saved.")
}

func certContactsSet(q *req) error {
	var contacts []map[string]string
	for _, m := range splitList(q.r.PostForm.Get("emails")) {
		contacts = append(contacts, map[string]string{"email": m})
	}
	var err error
	if len(contacts) == 0 {
		err = q.data(q.p["vault"], http.MethodDelete, "certificates/contacts", nil, nil)
	} else {
		err = q.data(q.p["vault"], http.MethodPut, "certificates/contacts", map[string]any{"contacts": contacts}, nil)
	}
	if err != nil {
		return err
	}
	return q.redirect("/ui/vaults/"+q.p["vault"]+"/certificates", "Contacts saved.")
}

type certBundle struct {
	ID         string         `json:"id"`
	CER        string         `json:"cer"`
	X5T        string         `json:"x5t"`
	Attributes map[string]any `json:"attributes"`
	Policy     struct {
		X509 struct {
			Subject  string `json:"subject"`
			Validity int    `json:"validity_months"`
		} `json:"x509_props"`
		Issuer struct {
			Name string `json:"name"`
		} `json:"issuer"`
	} `json:"policy"`
}

type certView struct {
	Name     string
	Cert     certBundle
	Versions []item
	Pending  struct {
		CSR    string `json:"csr"`
		Status string `json:"status"`
		Detail string `json:"status_details"`
	}
	CSRPEM string
}

func certPage(q *req) error {
	name := q.p["name"]
	if !objectNameRE.MatchString(name) {
		return badName()
	}
	v := certView{Name: name}
	if err := q.data(q.p["vault"], http.MethodGet, "certificates/"+name, nil, &v.Cert); err != nil {
		return err
	}
	var l itemList
	if err := q.data(q.p["vault"], http.MethodGet, "certificates/"+name+"/versions?maxresults=25", nil, &l); err != nil {
		return err
	}
	sort.Slice(l.Value, func(i, j int) bool { return l.Value[i].Attributes.Created > l.Value[j].Attributes.Created })
	v.Versions = l.Value
	if q.data(q.p["vault"], http.MethodGet, "certificates/"+name+"/pending", nil, &v.Pending) == nil && v.Pending.CSR != "" {
		if der, err := base64.StdEncoding.DecodeString(v.Pending.CSR); err == nil {
			v.CSRPEM = string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE REQUEST", Bytes: der}))
		}
	}
	return q.render("certificate", http.StatusOK, name, &v)
}

func certDownload(q *req) error {
	name := q.p["name"]
	if !objectNameRE.MatchString(name) {
		return badName()
	}
	var c certBundle
	if err := q.data(q.p["vault"], http.MethodGet, "certificates/"+name, nil, &c); err != nil {
		return err
	}
	der, err := base64.StdEncoding.DecodeString(c.CER)
	if err != nil || len(der) == 0 {
		return &apiError{Status: http.StatusNotFound, Code: "NoCertificate", Message: "The certificate has not been issued yet."}
	}
	h := q.w.Header()
	if q.r.URL.Query().Get("format") == "pem" {
		h.Set("Content-Type", "application/x-pem-file")
		h.Set("Content-Disposition", `attachment; filename="`+name+`.pem"`)
		pem.Encode(q.w, &pem.Block{Type: "CERTIFICATE", Bytes: der})
		return nil
	}
	h.Set("Content-Type", "application/pkix-cert")
	h.Set("Content-Disposition", `attachment; filename="`+name+`.cer"`)
	q.w.Write(der)
	return nil
}

func certMerge(q *req) error {
	name := q.p["name"]
	if !objectNameRE.MatchString(name) {
		return badName()
	}
	var x5c []string
	rest := []byte(q.r.PostForm.Get("chain"))
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			x5c = append(x5c, base64.StdEncoding.EncodeToString(b.Bytes))
		}
	}
	if len(x5c) == 0 {
		return &apiError{Status: http.StatusBadRequest, Code: "BadParameter", Message: "Paste the signed certificate (and its chain) in PEM."}
	}
	if err := q.data(q.p["vault"], http.MethodPost, "certificates/"+name+"/pending/merge", map[string]any{"x5c": x5c}, nil); err != nil {
		return err
	}
	return q.redirect("/ui/vaults/"+q.p["vault"]+"/certificates/"+name, "Certificate "+name+" merged.")
}

func certDelete(q *req) error {
	name := q.p["name"]
	if !objectNameRE.MatchString(name) {
		return badName()
	}
	if err := q.data(q.p["vault"], http.MethodDelete, "certificates/"+name, nil, nil); err != nil {
		return err
	}
	return q.redirect("/ui/vaults/"+q.p["vault"]+"/deleted", "Certificate "+name+" deleted.")
}
