package vault

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/asn1"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/keys"
	"github.com/keyward/keyward/internal/storage"
)

// Key attestation (api-version 7.6 GET /keys/{name}/{version}/attestation;
// docs/HSM.md, "Key attestation"): for a key an HSM holds, a statement of
// the token object's attributes (generated in the token, sensitive, never
// extractable), signed by the HSM-held instance attestation key, whose
// self-signed certificate (signed in the token too) comes with it.

// AttestationFormat names the statement format.
const AttestationFormat = "keyward-pkcs11-attestation/1"

// attributeReader is implemented by the HSM protector: the boolean
// attributes of a key's private (or secret) object, by CKA_* name.
type attributeReader interface {
	ObjectAttributes(ctx context.Context, id string) (map[string]bool, error)
}

// KeyAttestation is a key version with its attestation.
type KeyAttestation struct {
	Key *Key
	// Statement is a compact JWS (ES256, header x5c) of the statement JSON,
	// signed by the instance attestation key in the HSM.
	Statement string
	// CertificatePEM is the instance key's certificate.
	CertificatePEM []byte
	Version        string
}

// AttestationStatement is the JWS payload of a key attestation.
type AttestationStatement struct {
	Format    string          `json:"format"`
	Kid       string          `json:"kid"` // name/version of the key
	Kty       string          `json:"kty"`
	PublicKey json.RawMessage `json:"public_key"` // the key's public JWK thumbprint input (kty, n, e | crv, x, y)
	Token     struct {
		Label    string `json:"label"`
		Platform string `json:"platform"`
	} `json:"token"`
	ObjectID   string          `json:"object_id"` // CKA_ID (ASCII)
	Attributes map[string]bool `json:"attributes"`
	// GeneratedInHSM: CKA_LOCAL and CKA_ALWAYS_SENSITIVE (the key was made
	// in the token and its private value was never readable in clear).
	// Extractable: CKA_EXTRACTABLE (whether the token would still wrap it
	// out). CKA_NEVER_EXTRACTABLE is in Attributes: it is false for keys
	// Keyward wrapped once under the token's own backup key at creation
	// (internal/hsm backup), which never leaves the token.
	GeneratedInHSM bool  `json:"generated_in_hsm"`
	Extractable    bool  `json:"extractable"`
	IssuedAt       int64 `json:"iat"`
}

// instanceKey is the loaded HSM attestation key (cached after first use).
type instanceKey struct {
	op   keys.Operator
	cert *x509.Certificate
	pem  []byte
}

// attestKey is the Service's cached instance attestation key.
type attestKey struct {
	sync.Mutex
	ik *instanceKey
}

const sysAttestationKey = "hsm/attestation-key" // {handle, cert DER}

type attestationRecord struct {
	Handle []byte `json:"handle"`
	Cert   []byte `json:"cert"`
}

// GetKeyAttestation returns a key version and its attestation. Keys no
// HSM holds have no attestation (BadParameter, as Azure answers for keys
// of a vault without attestation).
func (s *Service) GetKeyAttestation(ctx context.Context, v *Vault, name, version string) (*KeyAttestation, error) {
	k, err := s.GetKey(ctx, v, name, version)
	if err != nil {
		return nil, err
	}
	if s.hsm == nil || k.HSMPlatform == "" || len(k.Kty) < 4 || k.Kty[len(k.Kty)-4:] != "-HSM" {
		return nil, badParameter("Key %s is not protected by an HSM; only HSM keys have an attestation.", k.Name)
	}
	ar, ok := s.hsm.(attributeReader)
	if !ok {
		return nil, badParameter("This Keyward's HSM cannot attest keys.")
	}
	attrs, err := ar.ObjectAttributes(ctx, k.Version)
	if err != nil {
		return nil, fmt.Errorf("vault: reading the key's token attributes: %w", err)
	}
	ik, err := s.instanceKey(ctx)
	if err != nil {
		return nil, err
	}
	st := AttestationStatement{Format: AttestationFormat, Kid: k.Name + "/" + k.Version, Kty: k.Kty, ObjectID: k.Version,
		Attributes: attrs, IssuedAt: s.clock.Now().Unix(),
		GeneratedInHSM: attrs["CKA_LOCAL"] && attrs["CKA_ALWAYS_SENSITIVE"],
		Extractable:    attrs["CKA_EXTRACTABLE"]}
	st.Token.Platform = s.hsm.Platform()
	if l, ok := s.hsm.(interface{ TokenLabel() string }); ok {
		st.Token.Label = l.TokenLabel()
	}
	st.PublicKey, _ = json.Marshal(publicJWKWire(k.JWK))
	payload, err := json.Marshal(st)
	if err != nil {
		return nil, err
	}
	jws, err := signES256(ctx, ik, payload)
	if err != nil {
		return nil, err
	}
	return &KeyAttestation{Key: k, Statement: jws, CertificatePEM: ik.pem, Version: "1.0"}, nil
}

// publicJWKWire is the public JWK in RFC 7517 form (base64url fields).
func publicJWKWire(j keys.JWK) map[string]string {
	b := base64.RawURLEncoding.EncodeToString
	if j.Kty == keys.KtyEC {
		return map[string]string{"kty": "EC", "crv": j.Crv, "x": b(j.X), "y": b(j.Y)}
	}
	if j.Kty == keys.KtyRSA {
		return map[string]string{"kty": "RSA", "n": b(j.N), "e": b(j.E)}
	}
	if j.Kty == keys.KtyAKP {
		return map[string]string{"kty": j.Kty, "alg": j.Alg, "pub": b(j.Pub)}
	}
	return map[string]string{"kty": j.Kty}
}

// instanceKey loads (or at first use creates in the token) the instance
// attestation key: EC P-256, sign only, non-extractable, with a
// self-signed certificate made by the token.
func (s *Service) instanceKey(ctx context.Context) (*instanceKey, error) {
	s.attest.Lock()
	defer s.attest.Unlock()
	if s.attest.ik != nil {
		return s.attest.ik, nil
	}
	var rec attestationRecord
	err := s.sys.View(ctx, func(tx barrier.Tx) error {
		b, err := tx.Get(sysAttestationKey)
		if err != nil {
			return err
		}
		return json.Unmarshal(b, &rec)
	})
	var ik *instanceKey
	switch {
	case err == nil:
		op, err := s.hsm.Load(ctx, rec.Handle)
		if err != nil {
			return nil, fmt.Errorf("vault: loading the HSM attestation key: %w", err)
		}
		cert, err := x509.ParseCertificate(rec.Cert)
		if err != nil {
			return nil, err
		}
		ik = &instanceKey{op: op, cert: cert}
	case errors.Is(err, storage.ErrNotFound):
		id := "keyward-attestation-" + NewVersion()
		handle, _, err := s.hsm.Generate(ctx, keys.Spec{Kty: keys.KtyEC, Curve: keys.CurveP256, ID: id, Usage: keys.UsageOf([]string{"sign", "verify"})})
		if err != nil {
			return nil, fmt.Errorf("vault: creating the HSM attestation key: %w", err)
		}
		op, err := s.hsm.Load(ctx, handle)
		if err != nil {
			return nil, err
		}
		cert, err := selfSign(ctx, op, s.clock.Now())
		if err != nil {
			return nil, err
		}
		ik = &instanceKey{op: op, cert: cert}
		b, _ := json.Marshal(attestationRecord{Handle: handle, Cert: cert.Raw})
		if err := s.sys.Update(ctx, func(tx barrier.Tx) error { return tx.Put(sysAttestationKey, b) }); err != nil {
			return nil, err
		}
	default:
		return nil, err
	}
	ik.pem = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: ik.cert.Raw})
	s.attest.ik = ik
	return ik, nil
}

// tokenSigner is a crypto.Signer over an HSM operator's ES256.
type tokenSigner struct {
	ctx context.Context
	op  keys.Operator
	pub *ecdsa.PublicKey
}

func (t tokenSigner) Public() crypto.PublicKey { return t.pub }

func (t tokenSigner) Sign(_ io.Reader, digest []byte, _ crypto.SignerOpts) ([]byte, error) {
	sig, err := t.op.Sign(t.ctx, keys.AlgES256, digest)
	if err != nil {
		return nil, err
	}
	var r, s big.Int
	r.SetBytes(sig[:32])
	s.SetBytes(sig[32:])
	return asn1.Marshal(struct{ R, S *big.Int }{&r, &s})
}

func selfSign(ctx context.Context, op keys.Operator, now time.Time) (*x509.Certificate, error) {
	j := op.Public()
	pub := &ecdsa.PublicKey{Curve: elliptic.P256(), X: new(big.Int).SetBytes(j.X), Y: new(big.Int).SetBytes(j.Y)}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{SerialNumber: serial, Subject: pkix.Name{CommonName: "Keyward HSM key attestation"},
		NotBefore: now.Add(-time.Hour), NotAfter: now.AddDate(20, 0, 0), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, tokenSigner{ctx: ctx, op: op, pub: pub})
	if err != nil {
		return nil, fmt.Errorf("vault: signing the attestation certificate in the HSM: %w", err)
	}
	return x509.ParseCertificate(der)
}

// signES256 makes a compact JWS of payload signed in the token.
func signES256(ctx context.Context, ik *instanceKey, payload []byte) (string, error) {
	hdr, _ := json.Marshal(map[string]any{"alg": "ES256", "typ": "JWT", "x5c": []string{base64.StdEncoding.EncodeToString(ik.cert.Raw)}})
	in := base64.RawURLEncoding.EncodeToString(hdr) + "." + base64.RawURLEncoding.EncodeToString(payload)
	d := sha256.Sum256([]byte(in))
	sig, err := ik.op.Sign(ctx, keys.AlgES256, d[:])
	if err != nil {
		return "", fmt.Errorf("vault: signing the attestation in the HSM: %w", err)
	}
	return in + "." + base64.RawURLEncoding.EncodeToString(sig), nil
}
