package api

import (
	"encoding/base64"
	"encoding/json"
	"errors"
	"net/http"
	"strings"

	"github.com/keyward/keyward/internal/keys"
	"github.com/keyward/keyward/internal/vault"
)

// jwkWire is JsonWebKey (AZURE-API.md §4). Responses carry public parts
// only; requests (import) may carry private parts.
type jwkWire struct {
	Kid    string   `json:"kid,omitempty"`
	Kty    string   `json:"kty,omitempty"`
	KeyOps []string `json:"key_ops,omitempty"`
	N      b64url   `json:"n,omitempty"`
	E      b64url   `json:"e,omitempty"`
	D      b64url   `json:"d,omitempty"`
	DP     b64url   `json:"dp,omitempty"`
	DQ     b64url   `json:"dq,omitempty"`
	QI     b64url   `json:"qi,omitempty"`
	P      b64url   `json:"p,omitempty"`
	Q      b64url   `json:"q,omitempty"`
	K      b64url   `json:"k,omitempty"`
	T      b64url   `json:"key_hsm,omitempty"`
	Crv    string   `json:"crv,omitempty"`
	X      b64url   `json:"x,omitempty"`
	Y      b64url   `json:"y,omitempty"`
	// AKP (RFC 9964; docs/POST-QUANTUM.md): parameter set, public key,
	// private seed.
	Alg  string `json:"alg,omitempty"`
	Pub  b64url `json:"pub,omitempty"`
	Priv b64url `json:"priv,omitempty"`
}

func (j *jwkWire) toDomain() keys.JWK {
	return keys.JWK{Kty: j.Kty, Crv: j.Crv, KeyOps: j.KeyOps, N: j.N, E: j.E, D: j.D, DP: j.DP, DQ: j.DQ,
		QI: j.QI, P: j.P, Q: j.Q, K: j.K, X: j.X, Y: j.Y, Alg: j.Alg, Pub: j.Pub, Priv: j.Priv}
}

func (j *jwkWire) wipe() {
	for _, b := range [][]byte{j.D, j.DP, j.DQ, j.QI, j.P, j.Q, j.K, j.T, j.Priv} {
		clear(b)
	}
}

type releasePolicyWire struct {
	ContentType string `json:"contentType,omitempty"`
	Data        b64url `json:"data,omitempty"`
	Immutable   *bool  `json:"immutable,omitempty"`
}

func (r *releasePolicyWire) toDomain() *vault.ReleasePolicy {
	if r == nil {
		return nil
	}
	p := &vault.ReleasePolicy{ContentType: r.ContentType, Data: r.Data}
	if r.Immutable != nil {
		p.Immutable = *r.Immutable
	}
	return p
}

func releaseOut(p *vault.ReleasePolicy) *releasePolicyWire {
	if p == nil {
		return nil
	}
	im := p.Immutable
	ct := p.ContentType
	if ct == "" {
		ct = "application/json; charset=utf-8"
	}
	return &releasePolicyWire{ContentType: ct, Data: p.Data, Immutable: &im}
}

// keyBundle is KeyBundle, KeyItem (kid instead of key) and DeletedKeyBundle.
type keyBundle struct {
	Key           *jwkWire           `json:"key,omitempty"`
	Kid           string             `json:"kid,omitempty"`
	Attributes    attributesWire     `json:"attributes"`
	Tags          map[string]string  `json:"tags,omitempty"`
	Managed       *bool              `json:"managed,omitempty"`
	ReleasePolicy *releasePolicyWire `json:"release_policy,omitempty"`
	deletedWire
}

func (rq *request) keyOut(k *vault.Key, item bool) *keyBundle {
	b := &keyBundle{
		Attributes:    attributesOut(k.Attributes, rq.vault),
		Tags:          k.Tags,
		ReleasePolicy: releaseOut(k.ReleasePolicy),
		deletedWire:   rq.deletedOut("keys", k.Name, k.Deleted),
	}
	b.Attributes.HSMPlatform = k.HSMPlatform
	if k.Managed {
		t := true
		b.Managed = &t
	}
	if item {
		b.Kid = rq.objectURL("keys", k.Name, "")
		return b
	}
	j := k.JWK
	b.Key = &jwkWire{Kid: rq.objectURL("keys", k.Name, k.Version), Kty: k.Kty, KeyOps: k.KeyOps,
		N: j.N, E: j.E, Crv: j.Crv, X: j.X, Y: j.Y, Alg: j.Alg, Pub: j.Pub}
	return b
}

type createKeyBody struct {
	Kty            string             `json:"kty"`
	KeySize        *int               `json:"key_size"`
	PublicExponent *int               `json:"public_exponent"`
	Crv            string             `json:"crv"`
	Alg            string             `json:"alg"` // AKP parameter set (docs/POST-QUANTUM.md)
	KeyOps         []string           `json:"key_ops"`
	Attributes     *attributesWire    `json:"attributes"`
	Tags           map[string]string  `json:"tags"`
	ReleasePolicy  *releasePolicyWire `json:"release_policy"`
}

func createKey(rq *request) error {
	var b createKeyBody
	if err := rq.decode(&b); err != nil {
		return err
	}
	p := vault.CreateKeyParams{Name: rq.params["name"], Kty: b.Kty, Curve: b.Crv, Alg: b.Alg, KeyOps: b.KeyOps,
		Attributes: b.Attributes.patch(), Tags: b.Tags, ReleasePolicy: b.ReleasePolicy.toDomain()}
	if b.KeySize != nil {
		p.Size = *b.KeySize
		if p.Size == 0 {
			return badParam("key_size must be 2048, 3072 or 4096.")
		}
	}
	if b.PublicExponent != nil {
		p.PublicExponent = *b.PublicExponent
		if p.PublicExponent == 0 {
			return badParam("public_exponent must be 65537.")
		}
	}
	k, err := rq.h.vaults.CreateKey(rq.r.Context(), rq.vault, p)
	if err != nil {
		return err
	}
	rq.ev.ObjectID = rq.objectURL("keys", k.Name, k.Version)
	return rq.reply(http.StatusOK, rq.keyOut(k, false))
}

type importKeyBody struct {
	Key           *jwkWire           `json:"key"`
	HSM           *bool              `json:"Hsm"`
	Attributes    *attributesWire    `json:"attributes"`
	Tags          map[string]string  `json:"tags"`
	ReleasePolicy *releasePolicyWire `json:"release_policy"`
}

func importKey(rq *request) error {
	var b importKeyBody
	err := rq.decode(&b)
	if b.Key != nil {
		defer b.Key.wipe()
	}
	if err != nil {
		return err
	}
	if b.Key == nil {
		return badParam("The request body must contain the key to import ('key').")
	}
	k, err := rq.h.vaults.ImportKey(rq.r.Context(), rq.vault, vault.ImportKeyParams{
		Name: rq.params["name"], JWK: b.Key.toDomain(), HSM: b.HSM != nil && *b.HSM,
		Attributes: b.Attributes.patch(), Tags: b.Tags, ReleasePolicy: b.ReleasePolicy.toDomain(),
		TransferBlob: b.Key.T, KEKResolver: rq.keyOfThisVault,
	})
	if err != nil {
		return err
	}
	rq.ev.ObjectID = rq.objectURL("keys", k.Name, k.Version)
	return rq.reply(http.StatusOK, rq.keyOut(k, false))
}

// keyOfThisVault resolves a key identifier of this vault
// (https://{vault}/keys/{name}/{version}) to its name and version.
func (rq *request) keyOfThisVault(kid string) (string, string, bool) {
	prefix := rq.base + "/keys/"
	if len(kid) <= len(prefix) || !strings.EqualFold(kid[:len(prefix)], prefix) {
		return "", "", false
	}
	name, version, ok := strings.Cut(kid[len(prefix):], "/")
	if !ok || name == "" || version == "" || strings.Contains(version, "/") {
		return "", "", false
	}
	return name, version, true
}

func getKey(rq *request) error {
	k, err := rq.h.vaults.GetKey(rq.r.Context(), rq.vault, rq.params["name"], rq.params["version"])
	if err != nil {
		return err
	}
	rq.ev.ObjectID = rq.objectURL("keys", k.Name, k.Version)
	return rq.reply(http.StatusOK, rq.keyOut(k, false))
}

type updateKeyBody struct {
	KeyOps        []string           `json:"key_ops"`
	Attributes    *attributesWire    `json:"attributes"`
	Tags          map[string]string  `json:"tags"`
	ReleasePolicy *releasePolicyWire `json:"release_policy"`
}

func updateKey(rq *request) error {
	var b updateKeyBody
	if err := rq.decode(&b); err != nil {
		return err
	}
	k, err := rq.h.vaults.UpdateKey(rq.r.Context(), rq.vault, vault.UpdateKeyParams{
		Name: rq.params["name"], Version: rq.params["version"], KeyOps: b.KeyOps,
		Attributes: b.Attributes.patch(), Tags: b.Tags, ReleasePolicy: b.ReleasePolicy.toDomain(),
	})
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, rq.keyOut(k, false))
}

func backupKey(rq *request) error {
	blob, err := rq.h.vaults.BackupKey(rq.r.Context(), rq.vault, rq.params["name"])
	if err != nil {
		return err
	}
	s := base64.RawURLEncoding.EncodeToString(blob)
	return rq.reply(http.StatusOK, backupWire{Value: &s})
}

func restoreKey(rq *request) error {
	blob, err := rq.backupBlob()
	if err != nil {
		return err
	}
	k, err := rq.h.vaults.RestoreKey(rq.r.Context(), rq.vault, blob)
	if err != nil {
		return err
	}
	rq.ev.ObjectID = rq.objectURL("keys", k.Name, "")
	return rq.reply(http.StatusOK, rq.keyOut(k, false))
}

func rotateKey(rq *request) error {
	k, err := rq.h.vaults.RotateKey(rq.r.Context(), rq.vault, rq.params["name"])
	if err != nil {
		return err
	}
	rq.ev.ObjectID = rq.objectURL("keys", k.Name, k.Version)
	return rq.reply(http.StatusOK, rq.keyOut(k, false))
}

// --- cryptography ---

type cryptoBody struct {
	Alg    string `json:"alg"`
	Value  b64url `json:"value"`
	Digest b64url `json:"digest"`
	IV     b64url `json:"iv"`
	AAD    b64url `json:"aad"`
	Tag    b64url `json:"tag"`
}

type cryptoResult struct {
	Kid   string `json:"kid,omitempty"`
	Value b64url `json:"value"`
	// AES (managed HSM pools)
	IV  b64url `json:"iv,omitempty"`
	Tag b64url `json:"tag,omitempty"`
	AAD b64url `json:"aad,omitempty"`
}

type verifyResult struct {
	Value bool `json:"value"`
}

func cryptoHandler(op vault.CryptoOp) func(*request) error {
	return func(rq *request) error {
		var b cryptoBody
		err := rq.decodeCrypto(&b)
		defer clear(b.Value)
		if err != nil {
			return err
		}
		if b.Alg == "" {
			return badParam("The algorithm ('alg') is required.")
		}
		if len(b.IV) > 0 || len(b.AAD) > 0 || len(b.Tag) > 0 {
			if !strings.HasPrefix(b.Alg, "A") {
				return badParam("iv, aad and tag apply only to AES algorithms.")
			}
		}
		data, sig := []byte(b.Value), []byte(nil)
		if op == vault.OpVerify {
			data, sig = b.Digest, b.Value
		}
		var res *vault.CryptoResult
		if rq.pool != nil && keys.IsAESAlgorithm(b.Alg) {
			res, err = rq.h.vaults.CryptoAES(rq.r.Context(), rq.vault, rq.params["name"], rq.params["version"], op, b.Alg, data, b.IV, b.AAD, b.Tag)
		} else {
			res, err = rq.h.vaults.Crypto(rq.r.Context(), rq.vault, rq.params["name"], rq.params["version"], op, b.Alg, data, sig)
		}
		if err != nil {
			return err
		}
		kid := rq.objectURL("keys", res.Name, res.Version)
		rq.ev.ObjectID = kid
		rq.ev.Algorithm, rq.ev.Protection = b.Alg, res.Protection // the operation ran: a known algorithm
		if op == vault.OpVerify {
			return rq.reply(http.StatusOK, verifyResult{Value: res.Verified})
		}
		out := cryptoResult{Kid: kid, Value: res.Value, IV: res.IV, Tag: res.Tag, AAD: res.AAD}
		err = rq.replyCrypto(&out)
		if op == vault.OpDecrypt || op == vault.OpUnwrapKey {
			clear(res.Value)
		}
		return err
	}
}

// --- ML-KEM encapsulation (docs/POST-QUANTUM.md) ---

type encapsulateResult struct {
	Kid          string `json:"kid"`
	Value        b64url `json:"value"`         // the ciphertext
	SharedSecret b64url `json:"shared_secret"` // the 32-byte shared secret
}

// kemHandler serves POST /keys/{name}/{version}/encapsulate ({"alg"} →
// {"kid","value": ciphertext,"shared_secret"}) and /decapsulate ({"alg",
// "value": ciphertext} → {"kid","value": shared secret}).
func kemHandler(op vault.CryptoOp) func(*request) error {
	return func(rq *request) error {
		var b cryptoBody
		if err := rq.decodeCrypto(&b); err != nil {
			return err
		}
		if b.Alg == "" {
			return badParam("The algorithm ('alg') is required.")
		}
		if len(b.IV)+len(b.AAD)+len(b.Tag)+len(b.Digest) != 0 {
			return badParam("iv, aad, tag and digest do not apply to %s.", op)
		}
		if op == vault.OpEncapsulate && len(b.Value) != 0 {
			return badParam("encapsulate takes no value: the shared secret is generated.")
		}
		if op == vault.OpDecapsulate && len(b.Value) == 0 {
			return badParam("decapsulate needs the ciphertext ('value').")
		}
		res, err := rq.h.vaults.KEM(rq.r.Context(), rq.vault, rq.params["name"], rq.params["version"], op, b.Alg, b.Value)
		if err != nil {
			return err
		}
		defer clear(res.SharedSecret)
		rq.ev.ObjectID = rq.objectURL("keys", res.Name, res.Version)
		rq.ev.Algorithm, rq.ev.Protection = b.Alg, res.Protection
		kid := rq.objectURL("keys", res.Name, res.Version)
		if op == vault.OpEncapsulate {
			return rq.reply(http.StatusOK, encapsulateResult{Kid: kid, Value: res.Value, SharedSecret: res.SharedSecret})
		}
		err = rq.replyCrypto(&cryptoResult{Kid: kid, Value: res.Value})
		clear(res.Value)
		return err
	}
}

// --- rotation policy ---

type rotationPolicyWire struct {
	ID              string               `json:"id,omitempty"`
	LifetimeActions []lifetimeActionWire `json:"lifetimeActions"`
	Attributes      *rotationAttrsWire   `json:"attributes,omitempty"`
}

type lifetimeActionWire struct {
	Trigger struct {
		TimeAfterCreate  string `json:"timeAfterCreate,omitempty"`
		TimeBeforeExpiry string `json:"timeBeforeExpiry,omitempty"`
	} `json:"trigger"`
	Action struct {
		Type string `json:"type"`
	} `json:"action"`
}

type rotationAttrsWire struct {
	ExpiryTime string `json:"expiryTime,omitempty"`
	Created    *int64 `json:"created,omitempty"`
	Updated    *int64 `json:"updated,omitempty"`
}

func (rq *request) policyOut(name string, p *vault.RotationPolicy) rotationPolicyWire {
	out := rotationPolicyWire{ID: rq.objectURL("keys", name, "rotationpolicy"), LifetimeActions: []lifetimeActionWire{}}
	for _, a := range p.LifetimeActions {
		var w lifetimeActionWire
		w.Trigger.TimeAfterCreate, w.Trigger.TimeBeforeExpiry = a.TimeAfterCreate, a.TimeBeforeExpiry
		w.Action.Type = a.Type
		out.LifetimeActions = append(out.LifetimeActions, w)
	}
	attrs := &rotationAttrsWire{ExpiryTime: p.ExpiryTime}
	if p.Created != 0 {
		c, u := p.Created, p.Updated
		attrs.Created, attrs.Updated = &c, &u
	}
	out.Attributes = attrs
	return out
}

func getRotationPolicy(rq *request) error {
	p, err := rq.h.vaults.GetRotationPolicy(rq.r.Context(), rq.vault, rq.params["name"])
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, rq.policyOut(rq.params["name"], p))
}

func setRotationPolicy(rq *request) error {
	var b rotationPolicyWire
	if err := rq.decode(&b); err != nil {
		return err
	}
	p := &vault.RotationPolicy{}
	if b.Attributes != nil {
		p.ExpiryTime = b.Attributes.ExpiryTime
	}
	for _, a := range b.LifetimeActions {
		p.LifetimeActions = append(p.LifetimeActions, vault.LifetimeAction{Type: a.Action.Type,
			TimeAfterCreate: a.Trigger.TimeAfterCreate, TimeBeforeExpiry: a.Trigger.TimeBeforeExpiry})
	}
	p, err := rq.h.vaults.SetRotationPolicy(rq.r.Context(), rq.vault, rq.params["name"], p)
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, rq.policyOut(rq.params["name"], p))
}

// --- secure key release (CRYPTO.md §4.5) ---

type releaseBody struct {
	Target string `json:"target"`
	Nonce  string `json:"nonce"`
	Enc    string `json:"enc"`
}

type releaseResult struct {
	Value string `json:"value"`
}

// releasedKeyHSM is the key_hsm of a released key: the key wrapped to the
// attested runtime key, in the .byok layout (schema_version "1.0").
type releasedKeyHSM struct {
	SchemaVersion string `json:"schema_version"`
	Header        struct {
		Kid string `json:"kid"`
		Alg string `json:"alg"`
		Enc string `json:"enc"`
	} `json:"header"`
	Ciphertext b64url `json:"ciphertext"`
}

func releaseKey(rq *request) error {
	var b releaseBody
	if err := rq.decode(&b); err != nil {
		return err
	}
	res, err := rq.h.vaults.ReleaseKey(rq.r.Context(), rq.vault, rq.params["name"], rq.params["version"], b.Target, b.Nonce, b.Enc)
	if err != nil {
		var denied *vault.ReleaseDenied
		if errors.As(err, &denied) {
			rq.ev.Reason = "ReleasePolicyNotSatisfied: " + clipReason(denied.Reason)
			return &apiError{status: http.StatusForbidden, code: "Forbidden", inner: "ReleasePolicyNotSatisfied", message: err.Error()}
		}
		return err
	}
	rq.ev.ObjectID = rq.objectURL("keys", res.Key.Name, res.Key.Version)
	kh := releasedKeyHSM{SchemaVersion: "1.0", Ciphertext: res.Ciphertext}
	kh.Header.Kid, kh.Header.Alg, kh.Header.Enc = res.RuntimeKid, "dir", res.Enc
	khJSON, err := json.Marshal(kh)
	if err != nil {
		return err
	}
	bundle := rq.keyOut(res.Key, false)
	bundle.Key.T = khJSON
	payload := map[string]any{
		"request":  map[string]any{"api-version": rq.apiVersion, "enc": res.Enc, "kid": rq.objectURL("keys", res.Key.Name, res.Key.Version)},
		"response": map[string]any{"key": bundle},
	}
	if b.Nonce != "" {
		payload["request"].(map[string]any)["nonce"] = b.Nonce
	}
	pj, err := json.Marshal(payload)
	if err != nil {
		return err
	}
	jws, err := rq.h.vaults.SignRelease(rq.r.Context(), pj)
	if err != nil {
		return err
	}
	return rq.reply(http.StatusOK, releaseResult{Value: jws})
}

func clipReason(s string) string {
	if len(s) > 300 {
		return s[:300]
	}
	return s
}

// --- key attestation (api-version 7.6) ---

type keyAttestationWire struct {
	CertificatePEMFile    b64url `json:"certificatePemFile,omitempty"`
	PrivateKeyAttestation b64url `json:"privateKeyAttestation,omitempty"`
	PublicKeyAttestation  b64url `json:"publicKeyAttestation,omitempty"`
	Version               string `json:"version,omitempty"`
}

// keyAttestation is GET /keys/{name}/{version}/attestation: the key bundle
// with attributes.attestation. privateKeyAttestation is the ASCII of the
// statement's compact JWS (docs/HSM.md, "Key attestation"); Keyward has no
// separate public-key statement (the statement names the public key).
func keyAttestation(rq *request) error {
	if versionBefore(rq.apiVersion, "7.6-preview.1") {
		return badParam("Key attestation needs api-version 7.6 or later; this request has %s.", clipString(rq.apiVersion, 32))
	}
	a, err := rq.h.vaults.GetKeyAttestation(rq.r.Context(), rq.vault, rq.params["name"], rq.params["version"])
	if err != nil {
		return err
	}
	rq.ev.ObjectID = rq.objectURL("keys", a.Key.Name, a.Key.Version)
	b := rq.keyOut(a.Key, false)
	b.Attributes.Attestation = &keyAttestationWire{CertificatePEMFile: a.CertificatePEM,
		PrivateKeyAttestation: []byte(a.Statement), Version: a.Version}
	return rq.reply(http.StatusOK, b)
}
