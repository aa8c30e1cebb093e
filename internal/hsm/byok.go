//go:build cgo

package hsm

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/sha1"
	"crypto/sha256"
	"crypto/sha512"
	"errors"
	"fmt"
	"hash"
	"math/big"

	"github.com/miekg/pkcs11"

	"github.com/keyward/keyward/internal/keys"
)

// ErrTransferBlob is every failure that depends on the bytes of a BYOK
// transfer blob (wrong KEK, tampered or truncated ciphertext, a key that
// is not of the announced type): one error, no oracle.
var ErrTransferBlob = errors.New("hsm: the transfer blob cannot be unwrapped with this key exchange key")

// ImportTransfer imports a BYOK transfer blob's key into the token
// (CRYPTO.md §4.3): ciphertext = RSA-OAEP(KEK, aes) ‖ AES-KWP(aes, target).
// kekHandle is the handle of the key exchange key (an RSA key of this
// token), oaepHash the OAEP hash of the blob's enc (SHA-1 for
// CKM_RSA_AES_KEY_WRAP, SHA-256 for RSA_AES_KEY_WRAP_256, SHA-384 for
// RSA_AES_KEY_WRAP_384). target gives the new key's Kty (RSA, EC or oct),
// Curve (EC: checked against the unwrapped key), ID, Usage and
// Exportable. The ephemeral AES key is a session object destroyed before
// returning; on any failure nothing is left in the token.
//
// Route: C_UnwrapKey(CKM_RSA_PKCS_OAEP) of the AES key when the token
// does OAEP with the hash (SHA-1 always; SHA-256/384 when probed), else
// CKM_RSA_X_509 + OAEP decoding here and C_CreateObject of a sensitive
// session AES key (SoftHSM2 2.6.1: the AES key passes through process
// memory, never the target key); then C_UnwrapKey(CKM_AES_KEY_WRAP_PAD)
// of the target into a token object.
func (h *HSM) ImportTransfer(ctx context.Context, kekHandle, ciphertext []byte, oaepHash crypto.Hash, target keys.Spec) ([]byte, keys.JWK, error) {
	var hv handleV1
	if err := parseHandleInto(kekHandle, &hv); err != nil {
		return nil, keys.JWK{}, err
	}
	if hv.Serial != h.serial || hv.Public.Kty != keys.KtyRSA {
		return nil, keys.JWK{}, fmt.Errorf("%w: the key exchange key is not an RSA key of this HSM", keys.ErrBadParameter)
	}
	var newHash func() hash.Hash
	switch oaepHash {
	case crypto.SHA1:
		newHash = sha1.New
	case crypto.SHA256:
		newHash = sha256.New
	case crypto.SHA384:
		newHash = sha512.New384
	default:
		return nil, keys.JWK{}, fmt.Errorf("%w: OAEP hash %v", keys.ErrBadParameter, oaepHash)
	}
	k := len(trimZero(hv.Public.N))
	if len(ciphertext) <= k+8 || (len(ciphertext)-k)%8 != 0 {
		return nil, keys.JWK{}, ErrTransferBlob
	}
	ek, wk := ciphertext[:k], ciphertext[k:]
	id := target.ID
	if id == "" {
		id = newID()
	}
	u := usageOf(target.Kty, target.Usage)
	var tmpl []*pkcs11.Attribute
	switch target.Kty {
	case keys.KtyRSA:
		tmpl = privTemplate(pkcs11.CKO_PRIVATE_KEY, pkcs11.CKK_RSA, id, u, true)
	case keys.KtyEC:
		tmpl = privTemplate(pkcs11.CKO_PRIVATE_KEY, pkcs11.CKK_EC, id, usage{sign: u.sign}, true)
	case KtyOct:
		tmpl = privTemplate(pkcs11.CKO_SECRET_KEY, pkcs11.CKK_AES, id, u, true)
	default:
		return nil, keys.JWK{}, fmt.Errorf("%w: unsupported key type %.20q", keys.ErrBadParameter, target.Kty)
	}
	var pub keys.JWK
	var backup []byte
	err := h.do(ctx, func(s pkcs11.SessionHandle) error {
		if old, err := h.findAll(s, id, anyClass); err != nil || len(old) > 0 {
			return cmpErr(err, fmt.Errorf("%w: the token already holds a key with this ID", keys.ErrBadParameter))
		}
		kek, err := h.find(s, hv.ID, pkcs11.CKO_PRIVATE_KEY)
		if err != nil {
			return err
		}
		aesObj, err := h.ephemeralAES(s, kek, ek, oaepHash, newHash, k)
		if err != nil {
			return err
		}
		defer h.p.DestroyObject(s, aesObj)
		obj, err := h.p.UnwrapKey(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil)}, aesObj, wk, tmpl)
		if err != nil {
			if sessionLost(err) {
				return err
			}
			return ErrTransferBlob
		}
		pub, err = h.publicOf(s, obj, id, target, u)
		if err != nil {
			h.p.DestroyObject(s, obj)
			return err
		}
		h.cache(id, map[bool]uint{true: pkcs11.CKO_SECRET_KEY, false: pkcs11.CKO_PRIVATE_KEY}[target.Kty == KtyOct], obj)
		backup, err = h.backupCopy(s, id, target.Exportable)
		return err
	})
	if err != nil {
		return nil, keys.JWK{}, err
	}
	hd, err := makeHandle(h.serial, h.label, id, pub, target, backup)
	return hd, pub, err
}

// ephemeralAES makes the session AES key of a transfer blob.
func (h *HSM) ephemeralAES(s pkcs11.SessionHandle, kek pkcs11.ObjectHandle, ek []byte, oaepHash crypto.Hash, newHash func() hash.Hash, k int) (pkcs11.ObjectHandle, error) {
	tmpl := []*pkcs11.Attribute{
		pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
		pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
		pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
		pkcs11.NewAttribute(pkcs11.CKA_SENSITIVE, true),
		pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false),
		pkcs11.NewAttribute(pkcs11.CKA_UNWRAP, true),
	}
	if oaepHash == crypto.SHA1 || h.oaep256 {
		o, err := h.p.UnwrapKey(s, oaepMech(oaepHash), kek, ek, tmpl)
		if err != nil {
			if sessionLost(err) || handleLost(err) {
				return 0, err
			}
			return 0, ErrTransferBlob
		}
		return o, nil
	}
	if err := h.p.DecryptInit(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_RSA_X_509, nil)}, kek); err != nil {
		if isCKR(err, pkcs11.CKR_KEY_FUNCTION_NOT_PERMITTED) {
			return 0, fmt.Errorf("%w: this HSM lacks RSA-OAEP with %v and the key exchange key does not allow raw decryption (create it on this Keyward)", keys.ErrUnsupportedAlgorithm, oaepHash)
		}
		return 0, err
	}
	raw, err := h.p.Decrypt(s, ek)
	if err != nil || len(raw) > k {
		return 0, ErrTransferBlob
	}
	em := make([]byte, k)
	copy(em[k-len(raw):], raw)
	clear(raw)
	key, err := oaepDecode(newHash(), k, em)
	clear(em)
	if err != nil || (len(key) != 16 && len(key) != 24 && len(key) != 32) {
		clear(key)
		return 0, ErrTransferBlob
	}
	defer clear(key)
	o, err := h.p.CreateObject(s, append(tmpl, pkcs11.NewAttribute(pkcs11.CKA_VALUE, key)))
	if err != nil {
		return 0, fmt.Errorf("hsm: creating the transfer key: %w", err)
	}
	return o, nil
}

// publicOf reads (RSA) or recovers (EC) the public key of an unwrapped
// private key, and creates its public token object.
func (h *HSM) publicOf(s pkcs11.SessionHandle, priv pkcs11.ObjectHandle, id string, target keys.Spec, u usage) (keys.JWK, error) {
	switch target.Kty {
	case KtyOct:
		return keys.JWK{Kty: KtyOct}, nil
	case keys.KtyRSA:
		j, err := h.rsaPublic(s, priv)
		if err != nil {
			return keys.JWK{}, ErrTransferBlob
		}
		_, err = h.p.CreateObject(s, append(pubTemplate(pkcs11.CKK_RSA, id, u), pkcs11.NewAttribute(pkcs11.CKA_MODULUS, j.N),
			pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, j.E)))
		return j, err
	}
	a, err := h.p.GetAttributeValue(s, priv, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, nil)})
	if err != nil {
		return keys.JWK{}, ErrTransferBlob
	}
	crv := ""
	for c, oid := range curveOIDs {
		if string(oid) == string(a[0].Value) {
			crv = c
		}
	}
	if crv == "" || (target.Curve != "" && target.Curve != crv) {
		return keys.JWK{}, fmt.Errorf("%w: the transfer blob holds a key of another curve", keys.ErrBadParameter)
	}
	j, err := h.recoverECPublic(s, priv, crv)
	if err != nil {
		return keys.JWK{}, err
	}
	point := append([]byte{4}, append(append([]byte(nil), j.X...), j.Y...)...)
	der, _ := asn1Octet(point)
	_, err = h.p.CreateObject(s, append(pubTemplate(pkcs11.CKK_EC, id, usage{sign: u.sign}),
		pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, curveOIDs[crv]), pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, der)))
	return j, err
}

// recoverECPublic finds the public point of an EC private object: from
// CKA_EC_POINT when the token keeps it there, else from two signatures
// (ECDSA public key recovery: one signature leaves two candidates, the
// second picks one). Unwrapped keys on SoftHSM2 have no public point.
func (h *HSM) recoverECPublic(s pkcs11.SessionHandle, priv pkcs11.ObjectHandle, crv string) (keys.JWK, error) {
	if a, err := h.p.GetAttributeValue(s, priv, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, nil)}); err == nil && len(a[0].Value) > 0 {
		if j, err := ecPointJWK(crv, a[0].Value); err == nil {
			return j, nil
		}
	}
	size := map[string]int{keys.CurveP256: 32, keys.CurveP256K: 32, keys.CurveP384: 48, keys.CurveP521: 64}[crv]
	sign := func() ([]byte, []byte, error) {
		d := make([]byte, size)
		rand.Read(d)
		if err := h.p.SignInit(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_ECDSA, nil)}, priv); err != nil {
			return nil, nil, err
		}
		sig, err := h.p.Sign(s, d)
		return d, sig, err
	}
	d1, sig1, err := sign()
	if err != nil {
		return keys.JWK{}, fmt.Errorf("hsm: the imported EC key cannot sign, so its public key cannot be recovered: %w", err)
	}
	d2, sig2, err := sign()
	if err != nil {
		return keys.JWK{}, err
	}
	alg := map[string]string{keys.CurveP256: keys.AlgES256, keys.CurveP256K: keys.AlgES256K, keys.CurveP384: keys.AlgES384, keys.CurveP521: keys.AlgES512}[crv]
	for _, cand := range ecRecover(crv, d1, sig1) {
		k, err := keys.FromJWK(cand)
		if err != nil {
			continue
		}
		if ok, _ := k.Verify(alg, d2, normalizeLowS(crv, sig2)); ok {
			return cand, nil
		}
	}
	return keys.JWK{}, ErrTransferBlob
}

func normalizeLowS(crv string, sig []byte) []byte {
	if crv != keys.CurveP256K || len(sig) != 64 {
		return sig
	}
	out := append([]byte(nil), sig...)
	sv := new(big.Int).SetBytes(out[32:])
	if sv.Cmp(new(big.Int).Rsh(k1N, 1)) > 0 {
		sv.Sub(k1N, sv).FillBytes(out[32:])
	}
	return out
}

// ErrNotExtractable is returned by ExportKey for a key created without
// attributes.exportable (CKA_EXTRACTABLE=false).
var ErrNotExtractable = errors.New("hsm: the key is not exportable")

// ExportKey returns the private material of an extractable token key, for
// secure key release: PKCS#8 DER for RSA and EC keys, the raw bytes for
// AES keys. The token wraps it (C_WrapKey, CKM_AES_KEY_WRAP_PAD) under an
// ephemeral session AES key made here, and it is unwrapped here; the
// caller wraps it to the release target and clears it. A key created
// non-extractable fails with ErrNotExtractable.
func (h *HSM) ExportKey(ctx context.Context, handle []byte) ([]byte, error) {
	var hv handleV1
	if err := parseHandleInto(handle, &hv); err != nil {
		return nil, err
	}
	if hv.Serial != h.serial {
		return nil, fmt.Errorf("hsm: the key is held by another token (serial %s)", hv.Serial)
	}
	tk := make([]byte, 32)
	rand.Read(tk)
	defer clear(tk)
	var wrapped []byte
	err := h.do(ctx, func(s pkcs11.SessionHandle) error {
		key, err := h.privObject(s, hv.ID)
		if err != nil {
			return err
		}
		aesObj, err := h.p.CreateObject(s, []*pkcs11.Attribute{
			pkcs11.NewAttribute(pkcs11.CKA_CLASS, pkcs11.CKO_SECRET_KEY),
			pkcs11.NewAttribute(pkcs11.CKA_KEY_TYPE, pkcs11.CKK_AES),
			pkcs11.NewAttribute(pkcs11.CKA_TOKEN, false),
			pkcs11.NewAttribute(pkcs11.CKA_WRAP, true),
			pkcs11.NewAttribute(pkcs11.CKA_VALUE, tk),
		})
		if err != nil {
			return fmt.Errorf("hsm: creating the export key: %w", err)
		}
		defer h.p.DestroyObject(s, aesObj)
		wrapped, err = h.p.WrapKey(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil)}, aesObj, key)
		if isCKR(err, pkcs11.CKR_KEY_UNEXTRACTABLE, pkcs11.CKR_KEY_NOT_WRAPPABLE) {
			return ErrNotExtractable
		}
		return err
	})
	if err != nil {
		return nil, err
	}
	p, err := kwpUnwrap(tk, wrapped)
	if err != nil {
		return nil, err
	}
	if hv.Public.Kty == KtyOct {
		return p, nil
	}
	// SoftHSM2 2.6.1 counts its zero padding in the length indicator
	// (CRYPTO.md §1.4 pitfall 6): keep exactly the DER SEQUENCE.
	var raw asn1RawValue
	rest, err := asn1Unmarshal(p, &raw)
	if err != nil {
		clear(p)
		return nil, errors.New("hsm: the token exported a malformed key")
	}
	for _, b := range rest {
		if b != 0 {
			clear(p)
			return nil, errors.New("hsm: the token exported a malformed key")
		}
	}
	return p[:len(p)-len(rest)], nil
}
