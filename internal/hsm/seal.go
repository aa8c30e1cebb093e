//go:build cgo

package hsm

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"

	"github.com/miekg/pkcs11"
)

// SealKeyID is the CKA_ID of the pkcs11 seal's AES key.
const SealKeyID = "keyward-seal-1"

// SealKey is the pkcs11 seal's wrapping key: an AES-256 token key,
// sensitive and never extractable, used with CKM_AES_GCM (CRYPTO.md §5.3).
// It implements barrier.KeyWrapper.
type SealKey struct {
	h  *HSM
	id string
}

// SealKey finds the seal key with CKA_ID id in the token, or creates it.
func (h *HSM) SealKey(ctx context.Context, id string) (*SealKey, error) {
	err := h.do(ctx, func(s pkcs11.SessionHandle) error {
		if _, err := h.find(s, id, pkcs11.CKO_SECRET_KEY); !errors.Is(err, errNotInToken) {
			return err
		}
		t := privTemplate(pkcs11.CKO_SECRET_KEY, pkcs11.CKK_AES, id, usage{encrypt: true, decrypt: true}, false)
		o, err := h.p.GenerateKey(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_KEY_GEN, nil)},
			append(t, pkcs11.NewAttribute(pkcs11.CKA_VALUE_LEN, 32)))
		if err != nil {
			return fmt.Errorf("hsm: creating the seal key: %w", err)
		}
		h.cache(id, pkcs11.CKO_SECRET_KEY, o)
		return nil
	})
	if err != nil {
		return nil, err
	}
	return &SealKey{h: h, id: id}, nil
}

// Name names the token and key.
func (k *SealKey) Name() string { return "pkcs11:" + k.h.label + "/" + k.id }

const gcmBlobVersion = 1

// Wrap encrypts plain in the token: version ‖ iv(12) ‖ ciphertext ‖ tag.
// The IV is random, made here (SoftHSM2 does not make GCM IVs).
func (k *SealKey) Wrap(ctx context.Context, plain, aad []byte) ([]byte, error) {
	iv := make([]byte, 12)
	if _, err := rand.Read(iv); err != nil {
		return nil, err
	}
	var ct []byte
	err := k.h.do(ctx, func(s pkcs11.SessionHandle) error {
		o, err := k.h.find(s, k.id, pkcs11.CKO_SECRET_KEY)
		if err != nil {
			return err
		}
		p := pkcs11.NewGCMParams(iv, aad, 128)
		defer p.Free()
		if err := k.h.p.EncryptInit(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, p)}, o); err != nil {
			return err
		}
		ct, err = k.h.p.Encrypt(s, plain)
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("hsm: sealing in the token: %w", err)
	}
	return append(append([]byte{gcmBlobVersion}, iv...), ct...), nil
}

// Unwrap reverses Wrap; a changed blob or aad fails.
func (k *SealKey) Unwrap(ctx context.Context, blob, aad []byte) ([]byte, error) {
	if len(blob) < 1+12+16 || blob[0] != gcmBlobVersion {
		return nil, errors.New("hsm: not a sealed blob")
	}
	iv, ct := blob[1:13], blob[13:]
	var pt []byte
	var openErr error
	err := k.h.do(ctx, func(s pkcs11.SessionHandle) error {
		o, err := k.h.find(s, k.id, pkcs11.CKO_SECRET_KEY)
		if err != nil {
			return err
		}
		p := pkcs11.NewGCMParams(iv, aad, 128)
		defer p.Free()
		if err := k.h.p.DecryptInit(s, []*pkcs11.Mechanism{pkcs11.NewMechanism(pkcs11.CKM_AES_GCM, p)}, o); err != nil {
			return err
		}
		pt, openErr = k.h.p.Decrypt(s, ct)
		if sessionLost(openErr) {
			return openErr
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hsm: unsealing in the token: %w", err)
	}
	if openErr != nil {
		return nil, errors.New("hsm: the sealed blob failed authentication")
	}
	return pt, nil
}
