package api

import (
	"encoding/base64"
	"net/http"

	"github.com/keyward/keyward/internal/vault"
)

// secretBundle is SecretBundle, SecretItem and DeletedSecretBundle
// (AZURE-API.md §1.3): listings leave out the value.
type secretBundle struct {
	Value       *string           `json:"value,omitempty"`
	ID          string            `json:"id"`
	ContentType string            `json:"contentType,omitempty"`
	Attributes  attributesWire    `json:"attributes"`
	Tags        map[string]string `json:"tags,omitempty"`
	Kid         string            `json:"kid,omitempty"`
	Managed     *bool             `json:"managed,omitempty"`
	deletedWire
}

func (rq *request) secretOut(s *vault.Secret, withVersion bool) *secretBundle {
	version := ""
	if withVersion {
		version = s.Version
	}
	b := &secretBundle{
		ID:          rq.objectURL("secrets", s.Name, version),
		ContentType: s.ContentType,
		Attributes:  attributesOut(s.Attributes, rq.vault),
		Tags:        s.Tags,
		Kid:         s.Kid,
		deletedWire: rq.deletedOut("secrets", s.Name, s.Deleted),
	}
	if s.Managed {
		t := true
		b.Managed = &t
		if s.Kid != "" { // a certificate's key: same name and version
			b.Kid = rq.objectURL("keys", s.Name, s.Version)
		}
	}
	if v := s.Value.Reveal(); v != nil {
		str := string(v)
		b.Value = &str
	}
	return b
}

type setSecretBody struct {
	Value       *string           `json:"value"`
	ContentType string            `json:"contentType"`
	Attributes  *attributesWire   `json:"attributes"`
	Tags        map[string]string `json:"tags"`
}

func setSecret(rq *request) error {
	var b setSecretBody
	if err := rq.decode(&b); err != nil {
		return err
	}
	if b.Value == nil {
		return badParam("The request body must contain a secret value ('value').")
	}
	s, err := rq.h.vaults.SetSecret(rq.r.Context(), rq.vault, vault.SetSecretParams{
		Name:        rq.params["name"],
		Value:       vault.NewSecretValue([]byte(*b.Value)),
		ContentType: b.ContentType,
		Attributes:  b.Attributes.patch(),
		Tags:        b.Tags,
	})
	if err != nil {
		return err
	}
	out := rq.secretOut(s, true)
	rq.ev.ObjectID = out.ID // objectURL("secrets", s.Name, s.Version)
	return rq.reply(http.StatusOK, out)
}

func getSecret(rq *request) error {
	oct := rq.query.Get("outContentType")
	if oct != "" && oct != "application/x-pem-file" && oct != "application/x-pkcs12" {
		return badParam("outContentType must be application/x-pem-file or application/x-pkcs12.")
	}
	// Conversion applies to certificate-backed secrets only; plain
	// secrets come back as they are.
	s, err := rq.h.certs.GetSecretAs(rq.r.Context(), rq.vault, rq.params["name"], rq.params["version"], oct)
	if err != nil {
		return err
	}
	rq.ev.ObjectID = rq.objectURL("secrets", s.Name, s.Version)
	return rq.reply(http.StatusOK, rq.secretOut(s, true))
}

type updateSecretBody struct {
	ContentType *string           `json:"contentType"`
	Attributes  *attributesWire   `json:"attributes"`
	Tags        map[string]string `json:"tags"`
}

func updateSecret(rq *request) error {
	var b updateSecretBody
	if err := rq.decode(&b); err != nil {
		return err
	}
	s, err := rq.h.vaults.UpdateSecret(rq.r.Context(), rq.vault, vault.UpdateSecretParams{
		Name: rq.params["name"], Version: rq.params["version"],
		ContentType: b.ContentType, Attributes: b.Attributes.patch(), Tags: b.Tags,
	})
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, rq.secretOut(s, true))
}

func backupSecret(rq *request) error {
	blob, err := rq.h.vaults.BackupSecret(rq.r.Context(), rq.vault, rq.params["name"])
	if err != nil {
		return err
	}
	s := base64.RawURLEncoding.EncodeToString(blob)
	return rq.reply(http.StatusOK, backupWire{Value: &s})
}

func restoreSecret(rq *request) error {
	blob, err := rq.backupBlob()
	if err != nil {
		return err
	}
	s, err := rq.h.vaults.RestoreSecret(rq.r.Context(), rq.vault, blob)
	if err != nil {
		return err
	}
	rq.ev.ObjectID = rq.objectURL("secrets", s.Name, "")
	return rq.reply(http.StatusOK, rq.secretOut(s, true))
}

// backupBlob decodes a restore request body.
func (rq *request) backupBlob() ([]byte, error) {
	var b backupWire
	if err := rq.decode(&b); err != nil {
		return nil, err
	}
	if b.Value == nil || *b.Value == "" {
		return nil, badParam("The request body must contain the backup blob ('value').")
	}
	blob, err := base64.RawURLEncoding.DecodeString(*b.Value)
	if err != nil {
		return nil, badParam("The backup blob is not valid base64url.")
	}
	return blob, nil
}
