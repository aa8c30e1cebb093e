package vault

import (
	"cmp"
	"context"
	"errors"
	"slices"
	"strings"
	"sync"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/keys"
)

// Key operations a key version may allow (AZURE-API.md §4), and the two
// Keyward adds for ML-KEM keys (docs/POST-QUANTUM.md).
var allKeyOps = []string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey", "import", "export", "encapsulate", "decapsulate"}

// ReleasePolicy is a key's secure key release policy, stored as given.
type ReleasePolicy struct {
	ContentType string `json:"contentType,omitempty"`
	Data        []byte `json:"data,omitempty"`
	Immutable   bool   `json:"immutable,omitempty"`
}

// keyPayload is what a key version stores besides attributes and tags. The
// private material lives under a separate storage key ({c}/m/...), so the
// hot path reads only this small record once the parsed key is cached.
type keyPayload struct {
	Kty           string         `json:"kty"` // as on the wire: RSA, EC, RSA-HSM, EC-HSM
	KeyOps        []string       `json:"keyOps"`
	Public        keys.JWK       `json:"public"`
	Protector     string         `json:"protector"`
	Platform      string         `json:"platform"`
	ReleasePolicy *ReleasePolicy `json:"releasePolicy,omitempty"`
}

// Key is one key version as the domain returns it: public parts only.
type Key struct {
	Name          string
	Version       string
	Kty           string
	KeyOps        []string
	JWK           keys.JWK
	Attributes    Attributes
	HSMPlatform   string
	Tags          map[string]string
	Managed       bool
	ReleasePolicy *ReleasePolicy
	Deleted       *DeletedInfo
}

func keyFrom(rec *nameRecord, ver *Version[keyPayload]) *Key {
	return &Key{
		Name: rec.Name, Version: ver.Version, Kty: ver.Payload.Kty, KeyOps: ver.Payload.KeyOps,
		JWK: ver.Payload.Public, Attributes: ver.Attributes, HSMPlatform: ver.Payload.Platform,
		Tags: ver.Tags, Managed: rec.Managed, ReleasePolicy: ver.Payload.ReleasePolicy,
	}
}

func (o objects) materialKey(name, version string) string {
	return o.base() + "/m/" + strings.ToLower(name) + "/" + strings.ToLower(version)
}

// CreateKeyParams is a CreateKey request.
type CreateKeyParams struct {
	Name           string
	Kty            string
	Size           int
	PublicExponent int
	Curve          string
	Alg            string // AKP: the parameter set (crv is accepted as its alias)
	KeyOps         []string
	Attributes     *AttributesPatch
	Tags           map[string]string
	ReleasePolicy  *ReleasePolicy

	// ifLatest, when set, makes the create a compare-and-swap: it happens
	// only if ifLatest is still the key's latest version (rotation by the
	// scheduler, so a rotation due during a leader takeover runs once).
	ifLatest string
}

// ImportKeyParams is an ImportKey request.
type ImportKeyParams struct {
	Name          string
	JWK           keys.JWK
	HSM           bool
	Attributes    *AttributesPatch
	Tags          map[string]string
	ReleasePolicy *ReleasePolicy

	// TransferBlob is key.key_hsm: a BYOK .byok file (byok.go). KEKResolver
	// maps its header.kid to a key name and version of this vault (nil:
	// the path of any URL).
	TransferBlob []byte
	KEKResolver  func(kid string) (name, version string, ok bool)
}

// protector picks the key protector for a key type on vault v and returns
// the base type the keys package understands.
func (s *Service) protector(v *Vault, kty string) (keys.Protector, string, error) {
	if v.IsPool() {
		return s.poolProtector(kty) // pools.go
	}
	switch kty {
	case "RSA", "EC":
		return s.software, kty, nil
	case "RSA-HSM", "EC-HSM":
		if v.SKU != "premium" {
			return nil, "", badParameter("Key type %s requires a premium vault; vault %s is standard. Use %s for a software-protected key.", kty, v.Name, strings.TrimSuffix(kty, "-HSM"))
		}
		if s.hsm == nil {
			return nil, "", badParameter("Key type %s needs an HSM, and this Keyward has none configured (hsm.module, hsm.token_label, hsm.pin_file; docs/HSM.md).", kty)
		}
		return s.hsm, strings.TrimSuffix(kty, "-HSM"), nil
	case "oct", "oct-HSM":
		return nil, "", badParameter("Key type %s is supported by managed HSMs only.", kty)
	case keys.KtyAKP:
		return s.software, keys.KtyAKP, nil
	case keys.KtyAKP + "-HSM":
		return nil, "", errPQHSM
	case "":
		return nil, "", badParameter("The key type (kty) is required.")
	}
	return nil, "", badParameter("Key type %s is not supported. Supported key types: RSA, EC, RSA-HSM, EC-HSM.", clip(kty))
}

// errPQHSM refuses post-quantum keys in an HSM: the PKCS#11 token Keyward
// drives (SoftHSM2 2.6, Cryptoki 2.40) has no ML-DSA or ML-KEM mechanisms.
var errPQHSM = badParameter("Key type AKP-HSM is not supported: the HSM (PKCS#11 token) has no ML-DSA or ML-KEM mechanisms. Use kty AKP for a software-protected post-quantum key (docs/POST-QUANTUM.md).")

func defaultKeyOps(base, alg string) []string {
	if base == keys.KtyAKP {
		return akpOps(alg)
	}
	if base == "EC" {
		return []string{"sign", "verify"}
	}
	if base == keys.KtyOct {
		return []string{"encrypt", "decrypt", "wrapKey", "unwrapKey"}
	}
	return []string{"encrypt", "decrypt", "sign", "verify", "wrapKey", "unwrapKey"}
}

// akpOps are the key operations of an AKP key: sign and verify for ML-DSA,
// encapsulate and decapsulate for ML-KEM, wrapKey and unwrapKey for the
// X25519MLKEM768 hybrid.
func akpOps(alg string) []string {
	switch {
	case keys.IsMLDSA(alg):
		return []string{"sign", "verify"}
	case keys.IsMLKEM(alg):
		return []string{"encapsulate", "decapsulate"}
	}
	return []string{"wrapKey", "unwrapKey"}
}

// checkKeyOps checks a key_ops list for a key of base type (and AKP alg).
func checkKeyOps(base, alg string, ops []string) ([]string, error) {
	if ops == nil {
		return defaultKeyOps(base, alg), nil
	}
	out := make([]string, 0, len(ops))
	for _, op := range ops {
		if !slices.Contains(allKeyOps, op) {
			return nil, badParameter("Invalid key operation: %s.", clip(op))
		}
		if base == keys.KtyAKP && !slices.Contains(akpOps(alg), op) {
			return nil, badParameter("Key operation %s is not supported by %s keys; they support %s.", op, alg, strings.Join(akpOps(alg), " and "))
		}
		if base != keys.KtyAKP && (op == "encapsulate" || op == "decapsulate") {
			return nil, badParameter("Key operation %s is supported by ML-KEM keys only.", op)
		}
		if base == "EC" && (op == "encrypt" || op == "decrypt" || op == "wrapKey" || op == "unwrapKey") {
			return nil, badParameter("Key operation %s is not supported by EC keys.", op)
		}
		if !slices.Contains(out, op) {
			out = append(out, op)
		}
	}
	return out, nil
}

func checkRelease(attrs *AttributesPatch, rp *ReleasePolicy) error {
	if attrs != nil && attrs.Exportable != nil && *attrs.Exportable && rp == nil {
		return badParameter("An exportable key must have a release policy.")
	}
	return checkReleasePolicy(rp) // release.go
}

// CreateKey generates a new key version.
func (s *Service) CreateKey(ctx context.Context, v *Vault, p CreateKeyParams) (*Key, error) {
	if err := checkName(Keys, p.Name); err != nil {
		return nil, err
	}
	prot, base, err := s.protector(v, p.Kty)
	if err != nil {
		return nil, err
	}
	spec := keys.Spec{Kty: base}
	switch base {
	case "RSA":
		spec.Size = p.Size
		if spec.Size == 0 {
			spec.Size = 2048
		}
		if spec.Size != 2048 && spec.Size != 3072 && spec.Size != 4096 {
			return nil, badParameter("RSA key size %d is not supported; use 2048, 3072 or 4096.", p.Size)
		}
		if p.PublicExponent != 0 && p.PublicExponent != 65537 {
			return nil, badParameter("RSA public exponent %d is not supported; only 65537 is.", p.PublicExponent)
		}
		if p.Curve != "" {
			return nil, badParameter("crv does not apply to RSA keys.")
		}
	case "EC":
		spec.Curve = p.Curve
		if spec.Curve == "" {
			spec.Curve = keys.CurveP256
		}
		switch spec.Curve {
		case keys.CurveP256, keys.CurveP256K, keys.CurveP384, keys.CurveP521:
		default:
			return nil, badParameter("Curve %s is not supported; use P-256, P-256K, P-384 or P-521.", clip(p.Curve))
		}
	case keys.KtyAKP:
		alg := cmp.Or(p.Alg, p.Curve)
		if p.Alg != "" && p.Curve != "" && p.Alg != p.Curve {
			return nil, badParameter("alg and crv name different AKP parameter sets; give one.")
		}
		if !keys.IsAKPAlgorithm(alg) || p.Size != 0 || p.PublicExponent != 0 {
			return nil, badParameter("An AKP key needs alg (or crv) %s, and no key_size or public_exponent.", strings.Join(keys.AKPAlgorithms(), ", "))
		}
		if exportableIn(p.Attributes) {
			return nil, badParameter("AKP keys cannot be exportable: secure key release does not carry post-quantum keys.")
		}
		spec.Alg = alg
	case keys.KtyOct:
		spec.Size = cmp.Or(p.Size, 256)
		if spec.Size != 128 && spec.Size != 192 && spec.Size != 256 || p.Curve != "" || p.PublicExponent != 0 {
			return nil, badParameter("An oct-HSM key is AES-128, -192 or -256: key_size 128, 192 or 256, no crv or public_exponent.")
		}
	}
	ops, err := checkKeyOps(base, spec.Alg, p.KeyOps)
	if err != nil {
		return nil, err
	}
	if err := s.checkKeyInput(p.Attributes, p.Tags, p.ReleasePolicy); err != nil {
		return nil, err
	}
	version := NewVersion()
	spec.ID, spec.Usage, spec.Exportable = version, keys.UsageOf(ops), exportableIn(p.Attributes)
	handle, pub, err := prot.Generate(ctx, spec)
	if err != nil {
		return nil, keyError(err)
	}
	defer clear(handle)
	k, err := s.storeNewKey(ctx, v, p.Name, version, p.Kty, ops, pub, prot, handle, p.Attributes, p.Tags, p.ReleasePolicy, p.ifLatest)
	if err != nil {
		s.destroyMaterial(prot, handle)
	}
	return k, err
}

// ImportKey imports a private JWK as a new key version.
func (s *Service) ImportKey(ctx context.Context, v *Vault, p ImportKeyParams) (*Key, error) {
	if err := checkName(Keys, p.Name); err != nil {
		return nil, err
	}
	if len(p.TransferBlob) > 0 {
		return s.importTransfer(ctx, v, p)
	}
	kty := p.JWK.Kty
	if p.HSM && !strings.HasSuffix(kty, "-HSM") {
		kty += "-HSM"
	}
	prot, base, err := s.protector(v, kty)
	if err != nil {
		return nil, err
	}
	if base == keys.KtyAKP && !keys.IsAKPAlgorithm(p.JWK.Alg) {
		return nil, badParameter("An AKP key needs alg: one of %s.", strings.Join(keys.AKPAlgorithms(), ", "))
	}
	if base == keys.KtyAKP && exportableIn(p.Attributes) {
		return nil, badParameter("AKP keys cannot be exportable: secure key release does not carry post-quantum keys.")
	}
	ops, err := checkKeyOps(base, p.JWK.Alg, p.JWK.KeyOps)
	if err != nil {
		return nil, err
	}
	if err := s.checkKeyInput(p.Attributes, p.Tags, p.ReleasePolicy); err != nil {
		return nil, err
	}
	j := p.JWK
	j.Kty = base
	j.KeyOps = nil
	version := NewVersion()
	var (
		handle []byte
		pub    keys.JWK
	)
	if si, ok := prot.(keys.SpecImporter); ok {
		handle, pub, err = si.ImportSpec(ctx, j, keys.Spec{ID: version, Usage: keys.UsageOf(ops), Exportable: exportableIn(p.Attributes)})
	} else {
		handle, pub, err = prot.Import(ctx, j)
	}
	if err != nil {
		return nil, keyError(err)
	}
	defer clear(handle)
	k, err := s.storeNewKey(ctx, v, p.Name, version, kty, ops, pub, prot, handle, p.Attributes, p.Tags, p.ReleasePolicy, "")
	if err != nil {
		s.destroyMaterial(prot, handle)
	}
	return k, err
}

func (s *Service) checkKeyInput(attrs *AttributesPatch, tags map[string]string, rp *ReleasePolicy) error {
	if err := checkTags(tags); err != nil {
		return err
	}
	if err := checkAttributes(attrs); err != nil {
		return err
	}
	return checkRelease(attrs, rp)
}

// exportableIn reports whether create attributes ask for an exportable key.
func exportableIn(a *AttributesPatch) bool { return a != nil && a.Exportable != nil && *a.Exportable }

// destroyer is implemented by protectors that hold objects outside the
// vault's storage (an HSM): Destroy removes them (purge, failed create).
type destroyer interface {
	Destroy(ctx context.Context, handle []byte) error
	// Holds reports whether handle names one of its objects.
	Holds(handle []byte) bool
}

// destroyMaterial removes a key's objects from its protector, if it holds
// any; failures leave an orphan object in the token and are not the
// caller's error (the key record is gone either way).
func (s *Service) destroyMaterial(prot keys.Protector, handle []byte) {
	if d, ok := prot.(destroyer); ok {
		_ = d.Destroy(context.Background(), handle)
	}
}

func (s *Service) storeNewKey(ctx context.Context, v *Vault, name, version, kty string, ops []string, pub keys.JWK,
	prot keys.Protector, handle []byte, attrs *AttributesPatch, tags map[string]string, rp *ReleasePolicy, ifLatest string) (*Key, error) {
	now := s.clock.Now().Unix()
	f := false
	ver := &Version[keyPayload]{
		Version:    version,
		Attributes: Attributes{Enabled: true, Created: now, Updated: now, Exportable: &f},
		Tags:       tags,
		Payload: keyPayload{Kty: kty, KeyOps: ops, Public: pub, Protector: prot.Name(),
			Platform: prot.Platform(), ReleasePolicy: rp},
	}
	ver.Attributes.apply(attrs)
	var rec *nameRecord
	err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
		o := s.objs(v, Keys)
		if ifLatest != "" {
			cur, err := o.live(tx, name)
			if err != nil {
				return err
			}
			if cur.Latest != ifLatest {
				return errAlreadyRotated
			}
		}
		var err error
		if rec, err = addVersion(tx, o, name, ver, false); err != nil {
			return err
		}
		return tx.Put(o.materialKey(name, ver.Version), handle)
	})
	if err != nil {
		return nil, err
	}
	return keyFrom(rec, ver), nil
}

// keyError maps errors of the keys package to domain errors. Messages of
// the keys package never contain key material.
func keyError(err error) error {
	switch {
	case errors.Is(err, keys.ErrBadKey), errors.Is(err, keys.ErrBadParameter),
		errors.Is(err, keys.ErrUnsupportedAlgorithm), errors.Is(err, keys.ErrNoPrivateKey):
		return &Error{Kind: BadParameter, Type: Keys, Msg: strings.TrimPrefix(err.Error(), "keys: ")}
	case errors.Is(err, keys.ErrNotAllowedInFIPSMode):
		return &Error{Kind: BadParameter, Type: Keys, Inner: "NotAllowedInFIPSMode",
			Msg: "The operation is not allowed because Keyward runs in FIPS 140-only mode: " + strings.TrimPrefix(err.Error(), "keys: ")}
	case errors.Is(err, keys.ErrDecryption):
		return &Error{Kind: BadParameter, Type: Keys, Msg: "Decryption failed."}
	}
	return err
}

// GetKey returns a key version (public parts).
func (s *Service) GetKey(ctx context.Context, v *Vault, name, version string) (*Key, error) {
	if err := checkName(Keys, name); err != nil {
		return nil, err
	}
	var k *Key
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		rec, ver, err := getVersion[keyPayload](tx, s.objs(v, Keys), name, version)
		if err != nil {
			return err
		}
		k = keyFrom(rec, ver)
		return nil
	})
	return k, err
}

// UpdateKeyParams is an UpdateKey request; nil fields stay as they are.
type UpdateKeyParams struct {
	Name, Version string
	KeyOps        []string
	Attributes    *AttributesPatch
	Tags          map[string]string
	ReleasePolicy *ReleasePolicy
}

// UpdateKey changes attributes, key_ops, tags or the release policy.
func (s *Service) UpdateKey(ctx context.Context, v *Vault, p UpdateKeyParams) (*Key, error) {
	if err := checkRequest(checkName(Keys, p.Name), p.Tags, p.Attributes); err != nil {
		return nil, err
	}
	var k *Key
	err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
		o := s.objs(v, Keys)
		rec, ver, err := getVersion[keyPayload](tx, o, p.Name, p.Version)
		if err != nil {
			return err
		}
		if rec.Managed {
			return &Error{Kind: Forbidden, Type: Keys, Name: p.Name, Reason: ReasonManagedUpdate}
		}
		if p.KeyOps != nil {
			ops, err := checkKeyOps(strings.TrimSuffix(ver.Payload.Kty, "-HSM"), ver.Payload.Public.Alg, p.KeyOps)
			if err != nil {
				return err
			}
			ver.Payload.KeyOps = ops
		}
		wasExportable := ver.Attributes.Exportable != nil && *ver.Attributes.Exportable
		if p.Attributes != nil && p.Attributes.Exportable != nil && *p.Attributes.Exportable != wasExportable {
			return badParameter("The exportable attribute cannot be changed after a key is created.")
		}
		if p.ReleasePolicy != nil {
			if old := ver.Payload.ReleasePolicy; old != nil && old.Immutable {
				return &Error{Kind: Forbidden, Type: Keys, Name: p.Name, Msg: "The key's release policy is immutable."}
			}
			if err := checkRelease(nil, p.ReleasePolicy); err != nil {
				return err
			}
			ver.Payload.ReleasePolicy = p.ReleasePolicy
		}
		ver.Attributes.apply(&AttributesPatch{Enabled: attrOrNil(p.Attributes).Enabled,
			NotBefore: attrOrNil(p.Attributes).NotBefore, Expires: attrOrNil(p.Attributes).Expires})
		if err := checkAttributes(&AttributesPatch{NotBefore: ver.Attributes.NotBefore, Expires: ver.Attributes.Expires}); err != nil {
			return err
		}
		if p.Tags != nil {
			ver.Tags = p.Tags
		}
		ver.Attributes.Updated = s.clock.Now().Unix()
		if err := putVersion(tx, o, p.Name, ver); err != nil {
			return err
		}
		k = keyFrom(rec, ver)
		return nil
	})
	return k, err
}

func attrOrNil(p *AttributesPatch) *AttributesPatch {
	if p == nil {
		return &AttributesPatch{}
	}
	return p
}

// ListKeys lists live keys (latest version's properties).
func (s *Service) ListKeys(ctx context.Context, v *Vault, after string, limit int) (*Page[*Key], error) {
	return listPage(ctx, s, v, Keys, after, limit, keyItem)
}

// ListKeyVersions lists the versions of a key.
func (s *Service) ListKeyVersions(ctx context.Context, v *Vault, name, after string, limit int) (*Page[*Key], error) {
	return versionsPage(ctx, s, v, Keys, name, after, limit, keyItem)
}

// DeleteKey soft-deletes a key and all its versions.
func (s *Service) DeleteKey(ctx context.Context, v *Vault, name string) (*Key, error) {
	return deleteObject(ctx, s, v, Keys, name, keyItem, nil)
}

// GetDeletedKey returns a soft-deleted key's latest version.
func (s *Service) GetDeletedKey(ctx context.Context, v *Vault, name string) (*Key, error) {
	return getDeletedObject(ctx, s, v, Keys, name, keyItem, nil)
}

// ListDeletedKeys pages through soft-deleted keys.
func (s *Service) ListDeletedKeys(ctx context.Context, v *Vault, after string, limit int) (*Page[*Key], error) {
	return listDeletedPage(ctx, s, v, Keys, after, limit, keyItem)
}

// RecoverKey undoes a soft delete.
func (s *Service) RecoverKey(ctx context.Context, v *Vault, name string) (*Key, error) {
	return recoverObject(ctx, s, v, Keys, name, keyItem, nil)
}

// keyItem is a key version (public parts) with its deletion metadata.
func keyItem(rec *nameRecord, ver *Version[keyPayload], del *DeletedInfo) *Key {
	k := keyFrom(rec, ver)
	k.Deleted = del
	return k
}

// hsmHandles returns the handles of a key's versions the HSM holds.
func (s *Service) hsmHandles(ctx context.Context, v *Vault, name string) [][]byte {
	d, ok := s.materialProtector(v).(destroyer)
	if !ok || checkName(Keys, name) != nil {
		return nil
	}
	var held [][]byte
	o := s.objs(v, Keys)
	_ = s.in(v).View(ctx, func(tx barrier.Tx) error {
		return tx.Scan(o.base()+"/m/"+strings.ToLower(name)+"/", "", func(_ string, val []byte) bool {
			if d.Holds(val) {
				held = append(held, slices.Clone(val))
			}
			return true
		})
	})
	return held
}

// PurgeKey removes a soft-deleted key for good.
func (s *Service) PurgeKey(ctx context.Context, v *Vault, name string) error {
	held := s.hsmHandles(ctx, v, name) // destroyed in the token after the purge
	if err := purgeObject(ctx, s, v, Keys, name, nil); err != nil {
		return err
	}
	s.destroyOwned(ctx, v, held)
	return nil
}

// keyBackupVersion is a version with its sealed-at-rest material.
type keyBackupVersion struct {
	Version[keyPayload]
	Material []byte `json:"material"`
}

// keyBackupOf is backupOf for keys: each version travels with its
// material (sealed at rest by the key protector), which only software keys
// can give. hsm is the refusal for a key an HSM protects.
func (s *Service) keyBackupOf(tx barrier.Tx, v *Vault, name string, managed bool, hsm string) (*backup[keyBackupVersion], error) {
	k := s.objs(v, Keys)
	mp := s.materialProtector(v) // a pool's protector, or the vault's HSM
	b, err := backupOf[keyPayload](tx, k, name, managed)
	if err != nil {
		return nil, err
	}
	kb := &backup[keyBackupVersion]{Type: Keys, Tenant: b.Tenant, Record: b.Record}
	for _, ver := range b.Versions {
		m, err := tx.Get(k.materialKey(name, ver.Version))
		if err != nil {
			return nil, err
		}
		if ver.Payload.Protector != s.software.Name() {
			// An HSM key travels as its handle, which holds the key
			// wrapped by the HSM's own backup key (hsm.Restore).
			hb, ok := mp.(hsmBackup)
			if !ok || ver.Payload.Protector != mp.Name() || !hb.CanBackup(m) {
				clear(m)
				return nil, badParameter("%s", hsm)
			}
		}
		kb.Versions = append(kb.Versions, &Version[keyBackupVersion]{Version: ver.Version,
			Payload: keyBackupVersion{Version: *ver, Material: m}})
	}
	return kb, nil
}

// hsmBackup is what key backup needs of an HSM protector.
type hsmBackup interface {
	CanBackup(handle []byte) bool
	Restore(ctx context.Context, handle []byte) error
}

// restoreHSMObjects checks that every key version of a backup fits v (a
// pool holds RSA-HSM, EC-HSM and oct-HSM keys; a vault no oct-HSM key) and
// puts its HSM keys back into v's token (unwrapped with the HSM's backup
// key) before the key is stored. The token is v's own protector's: a
// pool's pool protector, a vault's HSM. A backup of HSM keys restores only
// into a Keyward using the same HSM token.
func (s *Service) restoreHSMObjects(ctx context.Context, v *Vault, b *backup[keyBackupVersion]) error {
	target := s.materialProtector(v)
	for _, bv := range b.Versions {
		kty := bv.Payload.Version.Payload.Kty
		if v.IsPool() {
			if _, _, err := s.poolProtector(kty); err != nil {
				return badParameter("The backup holds a %s key; a managed HSM holds RSA-HSM, EC-HSM and oct-HSM keys only.", clip(kty))
			}
		} else if strings.HasPrefix(kty, "oct") {
			return badParameter("The backup holds a %s key, which only a managed HSM holds.", clip(kty))
		}
		p := bv.Payload.Version.Payload.Protector
		if p == s.software.Name() {
			continue
		}
		hb, ok := target.(hsmBackup)
		if !ok || p != target.Name() {
			return badParameter("The backup holds HSM-protected keys, and this Keyward has no HSM configured for %s.", v.Name)
		}
		if !v.IsPool() && v.SKU != "premium" && strings.HasSuffix(kty, "-HSM") {
			return badParameter("The backup holds HSM-protected keys, which need a premium vault; vault %s is standard.", v.Name)
		}
		if err := hb.Restore(ctx, bv.Payload.Material); err != nil {
			return badParameter("The backup's HSM-protected key cannot be restored here: it restores only on the HSM token that made it (%s).", clip(err.Error()))
		}
	}
	return nil
}

// wipeMaterial clears the key material a key backup holds.
func wipeMaterial(b *backup[keyBackupVersion]) {
	if b == nil {
		return
	}
	for _, ver := range b.Versions {
		clear(ver.Payload.Material)
	}
}

// keyVersionsIn checks a key backup read from a blob and returns its
// versions as stored, and the latest (nil when the backup is not usable).
func keyVersionsIn(b *backup[keyBackupVersion]) ([]*Version[keyPayload], *Version[keyPayload]) {
	if latestIn(b, func(bv *Version[keyBackupVersion]) bool {
		return bv.Payload.Version.Version == bv.Version && len(bv.Payload.Material) > 0
	}) == nil {
		return nil, nil
	}
	var latest *Version[keyPayload]
	vers := make([]*Version[keyPayload], 0, len(b.Versions))
	for _, bv := range b.Versions {
		ver := &bv.Payload.Version
		if ver.Version == b.Record.Latest {
			latest = ver
		}
		vers = append(vers, ver)
	}
	return vers, latest
}

// restoreKeyObject writes a key from a backup, material included.
func restoreKeyObject(tx barrier.Tx, k objects, b *backup[keyBackupVersion], vers []*Version[keyPayload]) error {
	if err := restoreObject(tx, k, &b.Record, vers); err != nil {
		return err
	}
	for _, bv := range b.Versions {
		if err := tx.Put(k.materialKey(b.Record.Name, bv.Version), bv.Payload.Material); err != nil {
			return err
		}
	}
	return nil
}

// BackupKey returns an encrypted blob with every version of a key.
func (s *Service) BackupKey(ctx context.Context, v *Vault, name string) ([]byte, error) {
	if err := checkName(Keys, name); err != nil {
		return nil, err
	}
	var b *backup[keyBackupVersion]
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		var err error
		b, err = s.keyBackupOf(tx, v, name, false,
			"This HSM-protected key cannot be backed up: it was made without a backup copy, or by an HSM this Keyward does not use.")
		return err
	})
	defer wipeMaterial(b)
	if err != nil {
		return nil, err
	}
	return s.sealBackup(ctx, v, Keys, b)
}

// RestoreKey restores a key backup into v. The name must be free.
func (s *Service) RestoreKey(ctx context.Context, v *Vault, blob []byte) (*Key, error) {
	var b backup[keyBackupVersion]
	if err := s.openBackup(ctx, v, Keys, blob, &b); err != nil {
		return nil, err
	}
	defer wipeMaterial(&b)
	vers, latest := keyVersionsIn(&b)
	if b.Type != Keys || latest == nil {
		return nil, invalidBackup(Keys)
	}
	if err := s.restoreHSMObjects(ctx, v, &b); err != nil {
		return nil, err
	}
	err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
		return restoreKeyObject(tx, s.objs(v, Keys), &b, vers)
	})
	if err != nil {
		return nil, err
	}
	return keyFrom(&b.Record, latest), nil
}

// RotateKey creates a new version of a key with the parameters of its
// latest version (type, size or curve, key_ops, tags) and, when the key has
// a rotation policy with an expiry, that expiry.
func (s *Service) RotateKey(ctx context.Context, v *Vault, name string) (*Key, error) {
	return s.rotateKey(ctx, v, name, false)
}

// errAlreadyRotated means a scheduled rotation found that another run
// rotated the key first.
var errAlreadyRotated = &Error{Kind: Conflict, Type: Keys, Msg: "The key was rotated concurrently."}

// rotateKey rotates name; with cas, only if its latest version does not
// change meanwhile.
func (s *Service) rotateKey(ctx context.Context, v *Vault, name string, cas bool) (*Key, error) {
	cur, err := s.GetKey(ctx, v, name, "")
	if err != nil {
		return nil, err
	}
	if cur.Managed {
		return nil, &Error{Kind: Forbidden, Type: Keys, Name: name, Reason: ReasonManagedRotate}
	}
	p := CreateKeyParams{Name: cur.Name, Kty: cur.Kty, KeyOps: cur.KeyOps, Tags: cur.Tags, ReleasePolicy: cur.ReleasePolicy}
	switch strings.TrimSuffix(cur.Kty, "-HSM") {
	case "RSA":
		p.Size = rsaBits(cur.JWK)
	case "EC":
		p.Curve = cur.JWK.Crv
	case keys.KtyAKP:
		p.Alg = cur.JWK.Alg
	}
	attrs := &AttributesPatch{Exportable: cur.Attributes.Exportable}
	pol, err := s.GetRotationPolicy(ctx, v, name)
	if err != nil {
		return nil, err
	}
	if pol.ExpiryTime != "" {
		d, err := ParseDuration(pol.ExpiryTime)
		if err == nil {
			exp := d.AddTo(s.clock.Now()).Unix()
			attrs.Expires = &exp
		}
	}
	p.Attributes = attrs
	if cas {
		p.ifLatest = cur.Version
	}
	return s.CreateKey(ctx, v, p)
}

func rsaBits(j keys.JWK) int {
	n := j.N
	for len(n) > 0 && n[0] == 0 {
		n = n[1:]
	}
	return len(n) * 8
}

// --- cryptographic operations ---

// CryptoOp names an operation for key_ops and attribute checks.
type CryptoOp string

const (
	OpEncrypt   CryptoOp = "encrypt"
	OpDecrypt   CryptoOp = "decrypt"
	OpWrapKey   CryptoOp = "wrapKey"
	OpUnwrapKey CryptoOp = "unwrapKey"
	OpSign      CryptoOp = "sign"
	OpVerify    CryptoOp = "verify"
	// ML-KEM (docs/POST-QUANTUM.md)
	OpEncapsulate CryptoOp = "encapsulate"
	OpDecapsulate CryptoOp = "decapsulate"
)

// producing reports whether op makes new protected data, which an expired
// or not-yet-valid key must not do; consuming old data stays possible.
func (op CryptoOp) producing() bool {
	return op == OpEncrypt || op == OpWrapKey || op == OpSign || op == OpEncapsulate
}

// CryptoResult is what a cryptographic operation returns.
type CryptoResult struct {
	Kid string // name/version of the key used
	// Protection is where the key's private part lives: "hsm" (a PKCS#11
	// token) or "software" (sealed by the barrier). For metrics only.
	Protection string
	Name       string
	Version    string
	Value      []byte
	Verified   bool
	// IV, Tag and AAD are AES encryption's (CryptoAES, pools.go).
	IV, Tag, AAD []byte
	// SharedSecret is ML-KEM encapsulation's (KEM); Value is then the
	// ciphertext.
	SharedSecret []byte
}

// KEM encapsulates with (OpEncapsulate) or decapsulates ciphertext with
// (OpDecapsulate) an ML-KEM key version, with Crypto's checks.
func (s *Service) KEM(ctx context.Context, v *Vault, name, version string, op CryptoOp, alg string, ciphertext []byte) (*CryptoResult, error) {
	if op != OpEncapsulate && op != OpDecapsulate {
		return nil, badParameter("Unknown operation.")
	}
	rec, ver, opr, err := s.cryptoOperator(ctx, v, name, version, op)
	if err != nil {
		return nil, err
	}
	kop, ok := opr.(keys.KEMOperator)
	if !ok || !keys.IsMLKEM(ver.Payload.Public.Alg) {
		return nil, badParameter("Operation %s needs an ML-KEM key (kty AKP, alg ML-KEM-768 or ML-KEM-1024).", op)
	}
	res := &CryptoResult{Name: rec.Name, Version: ver.Version, Protection: protection(ver)}
	if op == OpEncapsulate {
		res.SharedSecret, res.Value, err = kop.Encapsulate(ctx, alg)
	} else {
		res.Value, err = kop.Decapsulate(ctx, alg, ciphertext)
	}
	if err != nil {
		return nil, keyError(err)
	}
	return res, nil
}

// Crypto performs op with a key version ("" is the latest): enabled,
// key_ops and the nbf/exp window are checked as Azure does.
func (s *Service) Crypto(ctx context.Context, v *Vault, name, version string, op CryptoOp, alg string, data, sig []byte) (*CryptoResult, error) {
	rec, ver, opr, err := s.cryptoOperator(ctx, v, name, version, op)
	if err != nil {
		return nil, err
	}
	res := &CryptoResult{Name: rec.Name, Version: ver.Version, Protection: protection(ver)}
	switch op {
	case OpEncrypt:
		res.Value, err = opr.Encrypt(ctx, alg, data)
	case OpDecrypt:
		res.Value, err = opr.Decrypt(ctx, alg, data)
	case OpWrapKey:
		res.Value, err = opr.WrapKey(ctx, alg, data)
	case OpUnwrapKey:
		res.Value, err = opr.UnwrapKey(ctx, alg, data)
	case OpSign:
		res.Value, err = opr.Sign(ctx, alg, data)
	case OpVerify:
		res.Verified, err = opr.Verify(ctx, alg, data, sig)
	default:
		return nil, badParameter("Unknown operation.")
	}
	if err != nil {
		return nil, keyError(err)
	}
	return res, nil
}

// protection names where ver's private part lives, for metrics: "hsm"
// when a PKCS#11 token holds it, "software" otherwise.
func protection(ver *Version[keyPayload]) string {
	if strings.HasPrefix(ver.Payload.Protector, "pkcs11") {
		return "hsm"
	}
	return "software"
}

// cryptoOperator loads the key version for op after Azure's checks:
// enabled, the nbf/exp window for producing operations, key_ops.
func (s *Service) cryptoOperator(ctx context.Context, v *Vault, name, version string, op CryptoOp) (*nameRecord, *Version[keyPayload], keys.Operator, error) {
	if err := checkName(Keys, name); err != nil {
		return nil, nil, nil, err
	}
	o := s.objs(v, Keys)
	var (
		rec *nameRecord
		ver *Version[keyPayload]
	)
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		var err error
		rec, ver, err = getVersionShared[keyPayload](tx, o, name, version, true)
		return err
	})
	if err != nil {
		return nil, nil, nil, err
	}
	a := ver.Attributes
	now := s.clock.Now()
	switch {
	case !a.Enabled:
		return nil, nil, nil, &Error{Kind: Forbidden, Type: Keys, Name: name, Inner: "KeyDisabled", Op: string(op)}
	case op.producing() && a.NotYetValid(now):
		return nil, nil, nil, &Error{Kind: Forbidden, Type: Keys, Name: name, Inner: "KeyNotYetValid", Op: string(op)}
	case op.producing() && a.Expired(now):
		return nil, nil, nil, &Error{Kind: Forbidden, Type: Keys, Name: name, Inner: "KeyExpired", Op: string(op)}
	case !slices.Contains(ver.Payload.KeyOps, string(op)):
		return nil, nil, nil, &Error{Kind: Forbidden, Type: Keys, Name: name, Inner: "KeyOperationNotAllowed", Op: string(op)}
	}
	opr, err := s.operator(ctx, v, o, rec.Name, ver)
	if err != nil {
		return nil, nil, nil, err
	}
	return rec, ver, opr, nil
}

// operator returns the loaded key of a version, from the cache or storage.
func (s *Service) operator(ctx context.Context, v *Vault, o objects, name string, ver *Version[keyPayload]) (keys.Operator, error) {
	ck := v.ID + "/" + strings.ToLower(name) + "/" + ver.Version
	if opr := s.ops.get(ck); opr != nil {
		return opr, nil
	}
	prot, err := s.protectorByName(ver.Payload.Protector, name)
	if err != nil {
		return nil, err
	}
	var handle []byte
	err = s.in(v).View(ctx, func(tx barrier.Tx) error {
		var err error
		handle, err = tx.Get(o.materialKey(name, ver.Version))
		return err
	})
	if err != nil {
		return nil, err
	}
	defer clear(handle)
	opr, err := prot.Load(ctx, handle)
	if err != nil {
		return nil, err
	}
	s.ops.put(ck, opr)
	return opr, nil
}

// opCache holds parsed keys by vault/name/version. Versions are immutable,
// so entries never go stale; they are dropped on delete and purge, and the
// cache is bounded.
type opCache struct {
	mu  sync.RWMutex
	m   map[string]keys.Operator
	max int
}

func newOpCache(max int) *opCache { return &opCache{m: map[string]keys.Operator{}, max: max} }

func (c *opCache) get(k string) keys.Operator {
	c.mu.RLock()
	defer c.mu.RUnlock()
	return c.m[k]
}

func (c *opCache) put(k string, o keys.Operator) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if len(c.m) >= c.max {
		for old := range c.m { // drop an arbitrary entry
			delete(c.m, old)
			break
		}
	}
	c.m[k] = o
}

func (c *opCache) evict(v *Vault, name string) {
	prefix := v.ID + "/" + strings.ToLower(name) + "/"
	c.mu.Lock()
	defer c.mu.Unlock()
	for k := range c.m {
		if strings.HasPrefix(k, prefix) {
			delete(c.m, k)
		}
	}
}

// clearAll empties the cache (on seal).
func (c *opCache) clearAll() {
	c.mu.Lock()
	clear(c.m)
	c.mu.Unlock()
}
