package vault

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/go-jose/go-jose/v4"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/byok"
	"github.com/keyward/keyward/internal/keys"
	"github.com/keyward/keyward/internal/skr"
	"github.com/keyward/keyward/internal/storage"
)

// Release is secure key release's configuration (Deps.Release): the
// attestation authorities whose tokens are trusted, and the name in the
// release signing certificate. The signing key itself is kept in the
// barrier (releaseSignersKey), made on first use and rotated by
// RotateReleaseSigner; every node signs with the active one.
type Release struct {
	Verifier   *skr.Verifier
	SignerName string
}

// releaseSignersKey holds the release signing keys ([]skr.SignerKey, the
// active one last) in the system view.
const releaseSignersKey = "sys/release/signers"

// retiredSignerKeep is how long a rotated-out release signing key stays
// published (ReleaseSigners), so responses signed before the rotation
// still verify against the fetched keys.
const retiredSignerKeep = 30 * 24 * time.Hour

// exporter is implemented by protectors that hold keys outside the
// process (internal/hsm): ExportKey returns an exportable key's material
// (PKCS #8 or raw AES bytes), which the token hands out wrapped
// (C_WrapKey) and only for keys created extractable.
type exporter interface {
	ExportKey(ctx context.Context, handle []byte) ([]byte, error)
}

// ReleaseResult is a released key: the version (public parts) and its
// private material wrapped to the attested runtime key (byok format
// ek ‖ wk with the request's enc).
type ReleaseResult struct {
	Key        *Key
	Enc        string
	RuntimeKid string
	Ciphertext []byte
}

// ReleaseDenied is the error of a release the policy refuses; Reason says
// which condition failed (claim names and policy values only).
type ReleaseDenied struct{ Reason string }

func (e *ReleaseDenied) Error() string {
	return "The attestation token does not satisfy the key's release policy: " + e.Reason
}

// ReleaseKey releases an exportable key version to the runtime attested by
// target (CRYPTO.md §4.5): the token must come from a configured authority,
// the key's release policy must accept its claims, and the key material is
// wrapped to the token's runtime key with enc (default
// CKM_RSA_AES_KEY_WRAP). nonce, the request's, must be the one the token
// is bound to, if either has one (skr.CheckNonce).
func (s *Service) ReleaseKey(ctx context.Context, v *Vault, name, version, target, nonce, enc string) (*ReleaseResult, error) {
	if err := checkName(Keys, name); err != nil {
		return nil, err
	}
	if enc == "" {
		enc = byok.EncRSAAESKeyWrap
	}
	oaep, ok := byok.OAEPHash(enc)
	if !ok {
		return nil, badParameter("enc %s is not supported; use CKM_RSA_AES_KEY_WRAP, RSA_AES_KEY_WRAP_256 or RSA_AES_KEY_WRAP_384.", clip(enc))
	}
	if target == "" {
		return nil, badParameter("The attestation token ('target') is required.")
	}
	o := s.objs(v, Keys)
	var (
		rec    *nameRecord
		ver    *Version[keyPayload]
		handle []byte
	)
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		var err error
		if rec, ver, err = getVersion[keyPayload](tx, o, name, version); err != nil {
			return err
		}
		handle, err = tx.Get(o.materialKey(rec.Name, ver.Version))
		return err
	})
	defer clear(handle)
	if err != nil {
		return nil, err
	}
	a := ver.Attributes
	now := s.clock.Now()
	switch {
	case a.Exportable == nil || !*a.Exportable:
		return nil, badParameter("Key %s is not exportable: only keys created with attributes.exportable and a release policy can be released.", rec.Name)
	case ver.Payload.ReleasePolicy == nil || len(ver.Payload.ReleasePolicy.Data) == 0:
		return nil, badParameter("Key %s has no release policy.", rec.Name)
	case !a.Enabled:
		return nil, &Error{Kind: Forbidden, Type: Keys, Name: name, Inner: "KeyDisabled", Op: "release"}
	case a.NotYetValid(now):
		return nil, &Error{Kind: Forbidden, Type: Keys, Name: name, Inner: "KeyNotYetValid", Op: "release"}
	case a.Expired(now):
		return nil, &Error{Kind: Forbidden, Type: Keys, Name: name, Inner: "KeyExpired", Op: "release"}
	}
	if s.release == nil || s.release.Verifier == nil {
		return nil, badParameter("Secure key release needs an attestation authority, and this Keyward has none configured (release.authorities; docs/RELEASE.md).")
	}
	tok, err := s.release.Verifier.Verify(target, now)
	if err != nil {
		return nil, badParameter("The attestation token is not valid: %s.", strings.TrimPrefix(strings.TrimPrefix(err.Error(), skr.ErrToken.Error()), ": "))
	}
	if reason, ok := skr.CheckNonce(tok, nonce); !ok {
		return nil, &ReleaseDenied{Reason: reason}
	}
	pol, err := skr.ParsePolicy(ver.Payload.ReleasePolicy.Data)
	if err != nil {
		return nil, badParameter("The key's release policy is not valid: %s.", policyMsg(err))
	}
	if d := pol.Evaluate(tok.Issuer, tok.Claims); !d.Allowed {
		return nil, &ReleaseDenied{Reason: d.Reason}
	}
	material, err := s.exportMaterial(ctx, ver.Payload.Protector, handle)
	if err != nil {
		return nil, err
	}
	defer clear(material)
	ct, err := byok.Wrap(tok.RuntimeKey, oaep, material)
	if err != nil {
		return nil, err
	}
	return &ReleaseResult{Key: keyFrom(rec, ver), Enc: enc, RuntimeKid: tok.RuntimeKid, Ciphertext: ct}, nil
}

// exportMaterial returns the private material of a key version: the
// sealed PKCS #8 (or AES handle) of a software key; for an HSM key what
// the token exports.
func (s *Service) exportMaterial(ctx context.Context, protector string, handle []byte) ([]byte, error) {
	if protector == s.software.Name() {
		if k, err := keys.ParseAES(handle); err == nil {
			b := k.MarshalPrivate()
			defer clear(b)
			_, raw, _ := bytes.Cut(b, []byte(":"))
			return bytes.Clone(raw), nil
		}
		return bytes.Clone(handle), nil
	}
	if s.hsm == nil || s.hsm.Name() != protector {
		return nil, &Error{Kind: Forbidden, Type: Keys, Reason: ReasonNoProtector}
	}
	ex, ok := s.hsm.(exporter)
	if !ok {
		return nil, badParameter("This Keyward's HSM cannot export keys.")
	}
	m, err := ex.ExportKey(ctx, handle)
	if err != nil {
		if strings.Contains(err.Error(), "not exportable") {
			return nil, badParameter("The key is not extractable from the HSM.")
		}
		return nil, err
	}
	return m, nil
}

// SignRelease signs a release response payload (JWS compact form) with
// the active release signing key, made (and kept in the barrier) on first
// use.
func (s *Service) SignRelease(ctx context.Context, payload []byte) (string, error) {
	if s.release == nil {
		return "", errors.New("vault: secure key release is not configured")
	}
	var active *skr.SignerKey
	err := s.sys.Update(ctx, func(tx barrier.Tx) error {
		ks, err := readSigners(tx)
		if err != nil {
			return err
		}
		if len(ks) > 0 && ks[len(ks)-1].Retired == nil {
			active = ks[len(ks)-1]
			return nil
		}
		if active, err = skr.NewSignerKey(s.signerName(), s.clock.Now()); err != nil {
			return err
		}
		return writeSigners(tx, append(ks, active))
	})
	if err != nil {
		return "", err
	}
	defer clear(active.PKCS8)
	sg, err := active.Signer()
	if err != nil {
		return "", err
	}
	return sg.Sign(payload)
}

// RotateReleaseSigner makes a new release signing key active; the previous
// ones stay published for retiredSignerKeep. It returns the new key's kid.
func (s *Service) RotateReleaseSigner(ctx context.Context) (string, error) {
	now := s.clock.Now()
	nk, err := skr.NewSignerKey(s.signerName(), now)
	if err != nil {
		return "", err
	}
	defer clear(nk.PKCS8)
	err = s.sys.Update(ctx, func(tx barrier.Tx) error {
		ks, err := readSigners(tx)
		if err != nil {
			return err
		}
		kept := ks[:0]
		for _, k := range ks {
			if k.Retired == nil {
				t := now.UTC()
				k.Retired = &t
			}
			if now.Sub(*k.Retired) < retiredSignerKeep {
				kept = append(kept, k)
			}
		}
		return writeSigners(tx, append(kept, nk))
	})
	if err != nil {
		return "", err
	}
	return nk.Kid, nil
}

// ReleaseSigners are the published release signing keys (public halves,
// with their certificates), the active one last: what a verifier fetches
// to check a release response's signature and x5c.
func (s *Service) ReleaseSigners(ctx context.Context) ([]jose.JSONWebKey, error) {
	var out []jose.JSONWebKey
	err := s.sys.View(ctx, func(tx barrier.Tx) error {
		ks, err := readSigners(tx)
		if err != nil {
			return err
		}
		for _, k := range ks {
			clear(k.PKCS8)
			jwk, err := k.JWK()
			if err != nil {
				return err
			}
			out = append(out, jwk)
		}
		return nil
	})
	return out, err
}

func (s *Service) signerName() string {
	if s.release != nil && s.release.SignerName != "" {
		return s.release.SignerName
	}
	return "Keyward secure key release"
}

func readSigners(tx barrier.Tx) ([]*skr.SignerKey, error) {
	raw, err := tx.Get(releaseSignersKey)
	if errors.Is(err, storage.ErrNotFound) {
		return nil, nil
	} else if err != nil {
		return nil, err
	}
	defer clear(raw)
	var ks []*skr.SignerKey
	if err := json.Unmarshal(raw, &ks); err != nil {
		return nil, fmt.Errorf("vault: release signing keys: %w", err)
	}
	return ks, nil
}

func writeSigners(tx barrier.Tx, ks []*skr.SignerKey) error {
	raw, err := json.Marshal(ks)
	if err != nil {
		return err
	}
	defer clear(raw)
	return tx.Put(releaseSignersKey, raw)
}

func policyMsg(err error) string {
	return strings.TrimPrefix(strings.TrimPrefix(err.Error(), skr.ErrPolicy.Error()), ": ")
}

// checkReleasePolicy parses a release policy as given on create, import
// or update: JSON of the release policy grammar (skr).
func checkReleasePolicy(rp *ReleasePolicy) error {
	if rp == nil {
		return nil
	}
	if len(rp.Data) == 0 {
		return badParameter("The release policy has no data.")
	}
	if rp.ContentType != "" && !strings.HasPrefix(strings.ToLower(rp.ContentType), "application/json") {
		return badParameter("The release policy content type must be application/json; charset=utf-8.")
	}
	if _, err := skr.ParsePolicy(rp.Data); err != nil {
		return badParameter("The release policy is not valid: %s.", policyMsg(err))
	}
	return nil
}
