//go:build cgo

package hsm

import (
	"context"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"

	"github.com/keyward/keyward/internal/keys"
)

// BackupKeyID is the CKA_ID of the token's backup key: an AES-256 key,
// sensitive and never extractable, that wraps every key made here once, at
// creation, so key backups can be restored on this HSM after a purge.
const BackupKeyID = "keyward-backup-1"

var kwpMech = []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_WRAP_PAD, nil)}

// backupKey finds or creates the backup key.
func (h *HSM) backupKey(s pkcs11.SessionHandle) (pkcs11.ObjectHandle, error) {
	o, err := h.find(s, BackupKeyID, pkcs11.CKO_SECRET_KEY)
	if !errors.Is(err, errNotInToken) {
		return o, err
	}
	t := privTemplate(pkcs11.CKO_SECRET_KEY, pkcs11.CKK_AES, BackupKeyID, usage{wrap: true, unwrap: true}, false)
	o, err = h.p.GenerateKey(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)},
		append(t, pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32)))
	if err != nil {
		return 0, fmt.Errorf("hsm: creating the backup key: %w", err)
	}
	h.cache(BackupKeyID, pkcs11.CKO_SECRET_KEY, o)
	return o, nil
}

// backupCopy wraps a key just made (still extractable) with the backup
// key, then, unless exportable, makes it non-extractable for good
// (CKA_EXTRACTABLE can only go from true to false). On failure the key's
// objects are destroyed.
func (h *HSM) backupCopy(s pkcs11.SessionHandle, id string, exportable bool) (_ []byte, err error) {
	defer func() {
		if err != nil {
			if found, ferr := h.findAll(s, id, anyClass); ferr == nil {
				for _, o := range found {
					h.p.DestroyObject(s, o)
				}
			}
			h.forget(id)
		}
	}()
	bk, err := h.backupKey(s)
	if err != nil {
		return nil, err
	}
	o, err := h.privObject(s, id)
	if err != nil {
		return nil, err
	}
	w, err := h.p.WrapKey(s, kwpMech, bk, o)
	if err != nil {
		return nil, fmt.Errorf("hsm: wrapping the key's backup copy: %w", err)
	}
	if !exportable {
		if err := h.p.SetAttributeValue(s, o, []*pkcs11.Attribute{pkcs11.NewAttribute(pkcs11.CKA_EXTRACTABLE, false)}); err != nil {
			return nil, fmt.Errorf("hsm: making the key non-extractable: %w", err)
		}
	}
	return w, nil
}

func (h *HSM) forget(id string) {
	h.mu.Lock()
	for k := range h.objs {
		if k.id == id {
			delete(h.objs, k)
		}
	}
	h.mu.Unlock()
}

// CanBackup reports whether a handle of this token carries a backup copy.
func (h *HSM) CanBackup(handle []byte) bool {
	var hv handleV1
	return parseHandleInto(handle, &hv) == nil && hv.Serial == h.serial && len(hv.Backup) > 0
}

// ErrOtherHSM means a handle (from a key backup) names another token.
var ErrOtherHSM = errors.New("hsm: the key belongs to another HSM token")

// Restore makes sure a key of a restored backup is in the token: if its
// object is gone (purged), it is unwrapped again from the handle's backup
// copy with the backup key (C_UnwrapKey), sensitive and non-extractable
// unless the key was exportable. A handle of another token fails with
// ErrOtherHSM: backups restore only on the HSM that made them.
func (h *HSM) Restore(ctx context.Context, handle []byte) error {
	var hv handleV1
	if err := parseHandleInto(handle, &hv); err != nil {
		return err
	}
	if hv.Serial != h.serial {
		return fmt.Errorf("%w (serial %s; this one is %s)", ErrOtherHSM, hv.Serial, h.serial)
	}
	if len(hv.Backup) == 0 {
		return errors.New("hsm: the key has no backup copy")
	}
	return h.do(ctx, func(s pkcs11.SessionHandle) error {
		if found, err := h.findAll(s, hv.ID, anyClass); err != nil || len(found) > 0 {
			return err // still there
		}
		bk, err := h.find(s, BackupKeyID, pkcs11.CKO_SECRET_KEY)
		if err != nil {
			return fmt.Errorf("hsm: the token has no backup key: %w", err)
		}
		kty := hv.Public.Kty
		u := usageOf(kty, keys.Usage(hv.Usage))
		var tmpl []*pkcs11.Attribute
		switch kty {
		case keys.KtyRSA:
			tmpl = privTemplate(pkcs11.CKO_PRIVATE_KEY, pkcs11.CKK_RSA, hv.ID, u, hv.Exportable)
		case keys.KtyEC:
			tmpl = privTemplate(pkcs11.CKO_PRIVATE_KEY, pkcs11.CKK_EC, hv.ID, usage{sign: u.sign}, hv.Exportable)
		case KtyOct:
			tmpl = privTemplate(pkcs11.CKO_SECRET_KEY, pkcs11.CKK_AES, hv.ID, u, hv.Exportable)
		default:
			return errors.New("hsm: not an HSM key handle")
		}
		o, err := h.p.UnwrapKey(s, kwpMech, bk, hv.Backup, tmpl)
		if err != nil {
			return fmt.Errorf("hsm: unwrapping the backup copy: %w", err)
		}
		pub := hv.Public.jwk()
		var pt []*pkcs11.Attribute
		switch kty {
		case keys.KtyRSA:
			pt = append(pubTemplate(pkcs11.CKK_RSA, hv.ID, u), pkcs11.NewAttribute(pkcs11.CKA_MODULUS, pub.N),
				pkcs11.NewAttribute(pkcs11.CKA_PUBLIC_EXPONENT, pub.E))
		case keys.KtyEC:
			der, _ := asn1Octet(append(append([]byte{4}, pub.X...), pub.Y...))
			pt = append(pubTemplate(pkcs11.CKK_EC, hv.ID, usage{sign: u.sign}), pkcs11.NewAttribute(pkcs11.CKA_EC_PARAMS, curveOIDs[pub.Crv]),
				pkcs11.NewAttribute(pkcs11.CKA_EC_POINT, der))
		}
		if pt != nil {
			if _, err := h.p.CreateObject(s, pt); err != nil {
				h.p.DestroyObject(s, o)
				return err
			}
		}
		return nil
	})
}
