package vault

import (
	"context"
	"crypto"
	"crypto/ecdsa"
	"crypto/rsa"
	"crypto/x509"
	"errors"
	"math/big"
	"slices"
	"strings"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/byok"
	"github.com/keyward/keyward/internal/keys"
)

// transferImporter is implemented by protectors that unwrap a BYOK transfer
// blob inside the token (internal/hsm): kekHandle is the key exchange
// key's handle, ciphertext ek ‖ wk, target the new key's type, ID, usage
// and exportability. On failure nothing is left in the token.
type transferImporter interface {
	ImportTransfer(ctx context.Context, kekHandle, ciphertext []byte, oaepHash crypto.Hash, target keys.Spec) ([]byte, keys.JWK, error)
}

// importTransfer is ImportKey with key.key_hsm (CRYPTO.md §4.3): the
// .byok file's kid names a key exchange key of this vault (RSA-HSM,
// key_ops exactly ["import"], enabled), the HSM unwraps the target into a
// token object whose CKA_ID is the new version ID.
func (s *Service) importTransfer(ctx context.Context, v *Vault, p ImportKeyParams) (*Key, error) {
	kty := p.JWK.Kty
	if p.HSM && !strings.HasSuffix(kty, "-HSM") {
		kty += "-HSM"
	}
	if strings.TrimSuffix(kty, "-HSM") == keys.KtyAKP {
		return nil, errPQHSM
	}
	if !strings.HasSuffix(kty, "-HSM") {
		if kty == "RSA" || kty == "EC" || kty == "oct" {
			return nil, badParameter("A BYOK import (key_hsm) needs kty %s-HSM: the key is unwrapped inside an HSM.", kty)
		}
	}
	if len(p.JWK.N)+len(p.JWK.E)+len(p.JWK.D)+len(p.JWK.X)+len(p.JWK.Y)+len(p.JWK.K)+len(p.JWK.P)+len(p.JWK.Q) != 0 {
		return nil, badParameter("A BYOK import (key_hsm) carries the key only in the transfer blob, not in JWK fields.")
	}
	prot, base, err := s.protector(v, kty)
	if err != nil {
		return nil, err
	}
	if base == keys.KtyEC {
		switch p.JWK.Crv {
		case "", keys.CurveP256, keys.CurveP256K, keys.CurveP384, keys.CurveP521:
		default:
			return nil, badParameter("Curve %s is not supported; use P-256, P-256K, P-384 or P-521.", clip(p.JWK.Crv))
		}
	} else if p.JWK.Crv != "" {
		return nil, badParameter("crv applies to EC keys only.")
	}
	ops, err := checkKeyOps(base, "", p.JWK.KeyOps)
	if err != nil {
		return nil, err
	}
	if err := s.checkKeyInput(p.Attributes, p.Tags, p.ReleasePolicy); err != nil {
		return nil, err
	}
	blob, err := byok.Parse(p.TransferBlob)
	if err != nil {
		return nil, badParameter("The BYOK transfer blob (key_hsm) is malformed: %s.", strings.TrimPrefix(strings.TrimPrefix(err.Error(), byok.ErrFormat.Error()), ": "))
	}
	kekName, kekVersion, ok := kekOf(blob.Header.Kid, p.KEKResolver)
	if !ok {
		return nil, badParameter("The key exchange key %s named by the transfer blob is not a key of this vault.", clip(blob.Header.Kid))
	}
	kekHandle, kekProtector, err := s.kekHandle(ctx, v, kekName, kekVersion)
	if err != nil {
		return nil, err
	}
	defer clear(kekHandle)
	version := NewVersion()
	spec := keys.Spec{Kty: base, Curve: p.JWK.Crv, ID: version, Usage: keys.UsageOf(ops), Exportable: exportableIn(p.Attributes)}
	var (
		handle []byte
		pub    keys.JWK
	)
	ti, inToken := prot.(transferImporter)
	switch {
	case kekProtector == s.software.Name() && prot.Name() == s.software.Name():
		// A container whose "HSM" keys are software keys (a managed HSM
		// pool without a configured HSM): unwrap in process memory.
		handle, pub, err = s.importTransferSoftware(ctx, prot, kekHandle, blob, spec)
	case inToken && kekProtector == prot.Name():
		handle, pub, err = ti.ImportTransfer(ctx, kekHandle, blob.Ciphertext, blob.Hash, spec)
	default:
		return nil, badParameter("A BYOK import of a %s key needs the key exchange key and the new key in the same HSM; this container keeps %s keys elsewhere.", kty, kty)
	}
	if err != nil {
		if isTransferError(err) {
			return nil, badParameter("The key in the BYOK transfer blob (key_hsm) cannot be unwrapped with key exchange key %s, or is not of key type %s.", kekName, kty)
		}
		return nil, keyError(err)
	}
	defer clear(handle)
	if base == keys.KtyEC && p.JWK.Crv != "" && pub.Crv != p.JWK.Crv {
		s.destroyMaterial(prot, handle)
		return nil, badParameter("The key in the BYOK transfer blob is on curve %s, not %s.", pub.Crv, p.JWK.Crv)
	}
	k, err := s.storeNewKey(ctx, v, p.Name, version, kty, ops, pub, prot, handle, p.Attributes, p.Tags, p.ReleasePolicy, "")
	if err != nil {
		s.destroyMaterial(prot, handle)
	}
	return k, err
}

// isTransferError reports an unwrap failure that depends on the blob's
// bytes (the protector's one error for it, whatever its package).
func isTransferError(err error) bool {
	return errors.Is(err, byok.ErrUnwrap) || strings.Contains(err.Error(), "transfer blob cannot be unwrapped")
}

// kekOf finds the key exchange key's name and version in the blob's kid:
// resolve (from the surface, which knows this vault's URL) when given,
// else the path /keys/{name}/{version} of any URL.
func kekOf(kid string, resolve func(string) (string, string, bool)) (string, string, bool) {
	if resolve != nil {
		return resolve(kid)
	}
	i := strings.Index(kid, "/keys/")
	if i < 0 {
		return "", "", false
	}
	parts := strings.Split(kid[i+len("/keys/"):], "/")
	if len(parts) != 2 || parts[0] == "" || parts[1] == "" {
		return "", "", false
	}
	return parts[0], parts[1], true
}

// kekHandle returns the token handle of a usable key exchange key: an
// enabled, unexpired RSA-HSM key version whose key_ops are ["import"].
func (s *Service) kekHandle(ctx context.Context, v *Vault, name, version string) ([]byte, string, error) {
	if checkName(Keys, name) != nil {
		return nil, "", badParameter("The key exchange key named by the transfer blob is not a key of this vault.")
	}
	o := s.objs(v, Keys)
	var (
		handle    []byte
		protector string
	)
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		_, ver, err := getVersion[keyPayload](tx, o, name, version)
		if err != nil {
			var de *Error
			if errors.As(err, &de) && de.Kind == NotFound {
				return badParameter("The key exchange key %s (version %s) named by the transfer blob does not exist in this vault.", name, clip(version))
			}
			return err
		}
		now := s.clock.Now()
		switch {
		case ver.Payload.Kty != "RSA-HSM":
			return badParameter("Key %s is not a key exchange key: BYOK needs an RSA-HSM key with key_ops [\"import\"].", name)
		case !slices.Equal(ver.Payload.KeyOps, []string{"import"}):
			return badParameter("Key %s is not a key exchange key: its key_ops must be exactly [\"import\"].", name)
		case !ver.Attributes.Enabled:
			return &Error{Kind: Forbidden, Type: Keys, Name: name, Inner: "KeyDisabled", Msg: "The key exchange key is disabled."}
		case ver.Attributes.Expired(now) || ver.Attributes.NotYetValid(now):
			return &Error{Kind: Forbidden, Type: Keys, Name: name, Inner: "KeyExpired", Msg: "The key exchange key is expired or not yet valid."}
		}
		protector = ver.Payload.Protector
		handle, err = tx.Get(o.materialKey(name, ver.Version))
		return err
	})
	return handle, protector, err
}

// importTransferSoftware unwraps a transfer blob with a software key
// exchange key (its handle is PKCS #8) and imports the target as a
// software key: oct from the raw bytes, RSA and EC from PKCS #8.
func (s *Service) importTransferSoftware(ctx context.Context, prot keys.Protector, kekHandle []byte, blob *byok.Blob, spec keys.Spec) ([]byte, keys.JWK, error) {
	kk, err := x509.ParsePKCS8PrivateKey(kekHandle)
	kek, ok := kk.(*rsa.PrivateKey)
	if err != nil || !ok {
		return nil, keys.JWK{}, badParameter("The key exchange key is not an RSA key.")
	}
	material, err := byok.Unwrap(kek, blob.Hash, blob.Ciphertext)
	if err != nil {
		return nil, keys.JWK{}, err
	}
	defer clear(material)
	j, err := privateJWK(spec.Kty, material)
	if err != nil {
		return nil, keys.JWK{}, byok.ErrUnwrap
	}
	if spec.Kty == keys.KtyEC && spec.Curve != "" && j.Crv != spec.Curve {
		return nil, keys.JWK{}, byok.ErrUnwrap
	}
	if si, ok := prot.(keys.SpecImporter); ok {
		return si.ImportSpec(ctx, j, spec)
	}
	return prot.Import(ctx, j)
}

// privateJWK turns unwrapped BYOK material into a private JWK of type kty.
func privateJWK(kty string, material []byte) (keys.JWK, error) {
	if kty == keys.KtyOct {
		return keys.JWK{Kty: keys.KtyOct, K: material}, nil
	}
	k, err := x509.ParsePKCS8PrivateKey(material)
	if err != nil {
		return keys.JWK{}, err
	}
	switch k := k.(type) {
	case *rsa.PrivateKey:
		if kty != keys.KtyRSA || len(k.Primes) != 2 {
			return keys.JWK{}, errors.New("not an RSA key")
		}
		k.Precompute()
		return keys.JWK{Kty: keys.KtyRSA, N: k.N.Bytes(), E: big.NewInt(int64(k.E)).Bytes(), D: k.D.Bytes(),
			P: k.Primes[0].Bytes(), Q: k.Primes[1].Bytes(), DP: k.Precomputed.Dp.Bytes(), DQ: k.Precomputed.Dq.Bytes(),
			QI: k.Precomputed.Qinv.Bytes()}, nil
	case *ecdsa.PrivateKey:
		if kty != keys.KtyEC {
			return keys.JWK{}, errors.New("not an EC key")
		}
		crv := map[string]string{"P-256": keys.CurveP256, "P-384": keys.CurveP384, "P-521": keys.CurveP521}[k.Curve.Params().Name]
		pt, err := k.PublicKey.Bytes()
		if err != nil || crv == "" {
			return keys.JWK{}, errors.New("unsupported curve")
		}
		n := (len(pt) - 1) / 2
		d, err := k.Bytes()
		if err != nil {
			return keys.JWK{}, err
		}
		return keys.JWK{Kty: keys.KtyEC, Crv: crv, X: pt[1 : 1+n], Y: pt[1+n:], D: d}, nil
	}
	return keys.JWK{}, errors.New("unsupported key")
}
