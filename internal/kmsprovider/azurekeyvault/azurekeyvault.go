// Package azurekeyvault is the Key Management engine's provider for Azure
// Key Vault and every endpoint that speaks its REST API (a sovereign
// cloud, another Keyward), driven by the official azkeys and azidentity
// modules.
//
// key_collection is the vault's name; credentials are Vault's client_id,
// client_secret, tenant_id and environment, plus Keyward's authority_host,
// vault_url and ca_cert. A distributed key has the central key's name;
// each central version is imported as one version of it, tagged
// keyward-keymgmt-key and keyward-keymgmt-version so Keyward recognises
// its own copies. protection=software imports a plain JWK.
package azurekeyvault

import (
	"context"
	"crypto/ecdsa"
	"crypto/rsa"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyward/keyward/internal/byok"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/keymgmt"
	"github.com/keyward/keyward/internal/kmsprovider"
)

// Name is the provider's name in Vault's API.
const Name = "azurekeyvault"

// Tags on every key version Keyward distributes.
const (
	TagKey     = "keyward-keymgmt-key"
	TagVersion = "keyward-keymgmt-version"
)

type environment struct{ authority, vaultSuffix string }

var environments = map[string]environment{
	"azurepubliccloud":       {"https://login.microsoftonline.com/", "vault.azure.net"},
	"azureusgovernmentcloud": {"https://login.microsoftonline.us/", "vault.usgovcloudapi.net"},
	"azurechinacloud":        {"https://login.chinacloudapi.cn/", "vault.azure.cn"},
}

var credentialNames = map[string]bool{"client_id": true, "client_secret": true, "tenant_id": true, "environment": true,
	"authority_host": true, "vault_url": true, "ca_cert": true}

type provider struct {
	client *azkeys.Client
}

func invalid(k *keymgmt.KMS) error {
	return &errs.Error{Kind: errs.BadParameter, Type: "keymgmt kms", Name: k.Name, Reason: keymgmt.ReasonInvalidCredentials}
}

// New is the provider's keymgmt.Factory.
func New(k *keymgmt.KMS) (keymgmt.Provider, error) {
	c := k.Credentials
	for n := range c {
		if !credentialNames[n] {
			return nil, invalid(k)
		}
	}
	if c["client_id"] == "" || c["client_secret"] == "" || c["tenant_id"] == "" {
		return nil, invalid(k)
	}
	env := environments["azurepubliccloud"]
	if e := c["environment"]; e != "" {
		var ok bool
		if env, ok = environments[strings.ToLower(e)]; !ok {
			return nil, invalid(k)
		}
	}
	if !keymgmt.ValidName(k.KeyCollection) {
		return nil, &errs.Error{Kind: errs.BadParameter, Type: "keymgmt kms", Name: k.Name, Reason: keymgmt.ReasonInvalidCollection}
	}
	vaultURL := "https://" + k.KeyCollection + "." + env.vaultSuffix + "/"
	if v := c["vault_url"]; v != "" {
		u, err := url.Parse(v)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, invalid(k)
		}
		vaultURL = v
	}
	authority := env.authority
	if a := c["authority_host"]; a != "" {
		u, err := url.Parse(a)
		if err != nil || u.Scheme != "https" || u.Host == "" {
			return nil, invalid(k)
		}
		authority = a
	}
	hc, err := kmsprovider.HTTPClient(c["ca_cert"])
	if err != nil {
		return nil, invalid(k)
	}
	opts := azcore.ClientOptions{Transport: hc, Retry: policy.RetryOptions{MaxRetries: 1, RetryDelay: 200 * time.Millisecond}}
	cred, err := azidentity.NewClientSecretCredential(c["tenant_id"], c["client_id"], c["client_secret"], &azidentity.ClientSecretCredentialOptions{
		ClientOptions:            azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: authority}, Transport: hc},
		DisableInstanceDiscovery: c["authority_host"] != "",
	})
	if err != nil {
		return nil, invalid(k)
	}
	client, err := azkeys.NewClient(vaultURL, cred, &azkeys.ClientOptions{ClientOptions: opts})
	if err != nil {
		return nil, invalid(k)
	}
	return &provider{client: client}, nil
}

func unsupported(name string) error {
	return &errs.Error{Kind: errs.BadParameter, Type: "keymgmt distribution", Name: name, Reason: keymgmt.ReasonUnsupported}
}

// Supports: RSA and EC keys (Azure Key Vault holds no AES keys), with
// software protection (a plain JWK import) or hsm (a BYOK transfer blob
// into a premium vault's HSM).
func (p *provider) Supports(typ string, purpose []string, protection string) error {
	if typ == keymgmt.TypeAES256 {
		return unsupported(typ)
	}
	ec := strings.HasPrefix(typ, "ecdsa-")
	for _, pu := range purpose {
		if ec && pu != "sign" && pu != "verify" {
			return unsupported(pu)
		}
	}
	return nil
}

func keyOps(purpose []string) []*azkeys.KeyOperation {
	m := map[string]azkeys.KeyOperation{"encrypt": azkeys.KeyOperationEncrypt, "decrypt": azkeys.KeyOperationDecrypt,
		"sign": azkeys.KeyOperationSign, "verify": azkeys.KeyOperationVerify, "wrap": azkeys.KeyOperationWrapKey,
		"unwrap": azkeys.KeyOperationUnwrapKey}
	var out []*azkeys.KeyOperation
	for _, pu := range purpose {
		if op, ok := m[pu]; ok {
			out = append(out, to.Ptr(op))
		}
	}
	return out
}

func isStatus(err error, status int) bool {
	var re *azcore.ResponseError
	return errors.As(err, &re) && re.StatusCode == status
}

var errForeign = errors.New("the target holds a key of this name that Keyward did not distribute: it is left alone")

type found struct {
	id      string
	enabled bool
}

// versions lists the target's versions of the key that carry Keyward's
// tags, by central version (the newest target version wins).
func (p *provider) versions(ctx context.Context, name string) (map[int]found, bool, error) {
	out := map[int]found{}
	created := map[int]time.Time{}
	pager := p.client.NewListKeyPropertiesVersionsPager(name, nil)
	for pager.More() {
		page, err := pager.NextPage(ctx)
		if err != nil {
			if isStatus(err, http.StatusNotFound) {
				return nil, false, nil
			}
			return nil, false, err
		}
		for _, kp := range page.Value {
			if kp == nil || kp.KID == nil || kp.Tags[TagKey] == nil || *kp.Tags[TagKey] != name || kp.Tags[TagVersion] == nil {
				continue
			}
			v, err := strconv.Atoi(*kp.Tags[TagVersion])
			if err != nil {
				continue
			}
			var c time.Time
			enabled := true
			if a := kp.Attributes; a != nil {
				if a.Created != nil {
					c = *a.Created
				}
				if a.Enabled != nil {
					enabled = *a.Enabled
				}
			}
			if prev, ok := created[v]; ok && prev.After(c) {
				continue
			}
			created[v] = c
			out[v] = found{id: kp.KID.Version(), enabled: enabled}
		}
	}
	return out, true, nil
}

// Sync makes the target's key match the central key.
func (p *provider) Sync(ctx context.Context, t keymgmt.Target) (keymgmt.SyncResult, error) {
	k, d := t.Key, t.Dist
	var findings []string
	have, exists, err := p.versions(ctx, k.Name)
	if err != nil {
		return keymgmt.SyncResult{}, err
	}
	if !exists && len(d.Versions) > 0 {
		// Deleted behind Keyward's back: recover it if the target kept it.
		if ok, err := p.recoverDeleted(ctx, k.Name); err != nil {
			return keymgmt.SyncResult{}, err
		} else if ok {
			findings = append(findings, "key deleted in the target: recovered")
			if have, _, err = p.versions(ctx, k.Name); err != nil {
				return keymgmt.SyncResult{}, err
			}
		} else {
			findings = append(findings, "key missing in the target: imported again")
		}
	}
	if exists && len(have) == 0 {
		// A key of this name that Keyward did not make: never touch it.
		return keymgmt.SyncResult{}, errForeign
	}
	if have == nil {
		have = map[int]found{}
	}
	result := map[int]string{}
	for _, v := range k.VersionNumbers() {
		f, ok := have[v]
		_, recorded := d.Versions[v]
		switch {
		case v < k.MinEnabledVersion:
			if ok && f.enabled {
				if err := p.setEnabled(ctx, k.Name, f.id, false); err != nil {
					return keymgmt.SyncResult{}, err
				}
			}
		case !ok:
			id, err := p.importVersion(ctx, k, v, d)
			if err != nil {
				return keymgmt.SyncResult{}, err
			}
			if recorded && exists {
				findings = append(findings, fmt.Sprintf("version %d missing in the target: imported again", v))
			}
			f = found{id: id, enabled: true}
			ok = true
		case !f.enabled:
			if err := p.setEnabled(ctx, k.Name, f.id, true); err != nil {
				return keymgmt.SyncResult{}, err
			}
			findings = append(findings, fmt.Sprintf("version %d disabled in the target: enabled", v))
		}
		if ok {
			result[v] = f.id
		}
	}
	// The target's current version must be the central latest, with the
	// same public key.
	cur, err := p.client.GetKey(ctx, k.Name, "", nil)
	if err != nil {
		return keymgmt.SyncResult{}, err
	}
	if !p.isCurrent(cur.Key, cur.Tags, k) {
		id, err := p.importVersion(ctx, k, k.LatestVersion, d)
		if err != nil {
			return keymgmt.SyncResult{}, err
		}
		result[k.LatestVersion] = id
		findings = append(findings, fmt.Sprintf("current version in the target is not version %d: imported it again", k.LatestVersion))
	}
	return keymgmt.SyncResult{Versions: result, Findings: findings}, nil
}

func (p *provider) isCurrent(jwk *azkeys.JSONWebKey, tags map[string]*string, k *keymgmt.Key) bool {
	if tags[TagVersion] == nil || *tags[TagVersion] != strconv.Itoa(k.LatestVersion) || jwk == nil {
		return false
	}
	pub, err := k.Public(k.LatestVersion)
	if err != nil {
		return false
	}
	switch pub := pub.(type) {
	case *rsa.PublicKey:
		return new(big.Int).SetBytes(jwk.N).Cmp(pub.N) == 0
	case *ecdsa.PublicKey:
		raw, err := pub.Bytes()
		if err != nil || len(raw) < 1 {
			return false
		}
		n := (len(raw) - 1) / 2
		return string(jwk.X) == string(raw[1:1+n]) && string(jwk.Y) == string(raw[1+n:])
	}
	return false
}

func (p *provider) setEnabled(ctx context.Context, name, version string, enabled bool) error {
	_, err := p.client.UpdateKey(ctx, name, version, azkeys.UpdateKeyParameters{
		KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(enabled)}}, nil)
	return err
}

// recoverDeleted recovers a soft-deleted key and waits until it is back.
func (p *provider) recoverDeleted(ctx context.Context, name string) (bool, error) {
	if _, err := p.client.GetDeletedKey(ctx, name, nil); err != nil {
		if isStatus(err, http.StatusNotFound) {
			return false, nil
		}
		return false, err
	}
	if _, err := p.client.RecoverDeletedKey(ctx, name, nil); err != nil {
		return false, err
	}
	for {
		if _, err := p.client.GetKey(ctx, name, "", nil); err == nil {
			return true, nil
		} else if !isStatus(err, http.StatusNotFound) {
			return false, err
		}
		select {
		case <-ctx.Done():
			return false, ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}

// importVersion imports central version v as a new version of the key.
func (p *provider) importVersion(ctx context.Context, k *keymgmt.Key, v int, d *keymgmt.Distribution) (string, error) {
	var jwk *azkeys.JSONWebKey
	var err error
	hsm := d.Protection == keymgmt.ProtectionHSM
	if hsm {
		var kekVersion string
		jwk, kekVersion, err = p.transferJWK(ctx, k, v)
		if kekVersion != "" {
			// The key exchange key serves this one import: disabled
			// after it, whatever its outcome (best effort: it can only
			// import, and Remove deletes it).
			defer func() { _ = p.setEnabled(context.WithoutCancel(ctx), kekName(k.Name), kekVersion, false) }()
		}
	} else {
		jwk, err = softwareJWK(k, v)
	}
	if err != nil {
		return "", err
	}
	jwk.KeyOps = keyOps(d.Purpose)
	resp, err := p.client.ImportKey(ctx, k.Name, azkeys.ImportKeyParameters{
		Key: jwk, HSM: to.Ptr(hsm),
		KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(true)},
		Tags:          map[string]*string{TagKey: to.Ptr(k.Name), TagVersion: to.Ptr(strconv.Itoa(v))},
	}, nil)
	clearJWK(jwk)
	if err != nil {
		return "", err
	}
	if resp.Key == nil || resp.Key.KID == nil {
		return "", errors.New("the target's import answer has no key ID")
	}
	return resp.Key.KID.Version(), nil
}

// transferJWK is version v's key as Azure's BYOK specification delivers
// it (CRYPTO.md §4): a key exchange key (RSA-HSM, key_ops import) made in
// the target, the .byok transfer blob sealed for it, kty RSA-HSM or EC-HSM.
// It returns the KEK's version, which the caller disables after the
// import.
func (p *provider) transferJWK(ctx context.Context, k *keymgmt.Key, v int) (*azkeys.JSONWebKey, string, error) {
	params := azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM),
		KeySize: to.Ptr(int32(3072)), KeyOps: []*azkeys.KeyOperation{to.Ptr(azkeys.KeyOperationImport)},
		Tags: map[string]*string{TagKey: to.Ptr(kekName(k.Name))}}
	kek, err := p.client.CreateKey(ctx, kekName(k.Name), params, nil)
	if isStatus(err, http.StatusConflict) {
		// Removed earlier and still soft-deleted: recover it, add a version.
		if ok, rerr := p.recoverDeleted(ctx, kekName(k.Name)); rerr != nil || !ok {
			return nil, "", err
		}
		kek, err = p.client.CreateKey(ctx, kekName(k.Name), params, nil)
	}
	if err != nil {
		return nil, "", err
	}
	if kek.Key == nil || kek.Key.KID == nil {
		return nil, "", errors.New("the target's key exchange key has no ID")
	}
	kekVersion := kek.Key.KID.Version()
	pub := &rsa.PublicKey{N: new(big.Int).SetBytes(kek.Key.N), E: int(new(big.Int).SetBytes(kek.Key.E).Int64())}
	der, err := k.PKCS8(v)
	if err != nil {
		return nil, kekVersion, err
	}
	blob, err := byok.Seal(pub, string(*kek.Key.KID), "CKM_RSA_AES_KEY_WRAP", der, "Keyward keymgmt")
	if err != nil {
		return nil, kekVersion, err
	}
	if strings.HasPrefix(k.Type, "ecdsa-") {
		crv := map[string]azkeys.CurveName{keymgmt.TypeECDSAP256: azkeys.CurveNameP256, keymgmt.TypeECDSAP384: azkeys.CurveNameP384,
			keymgmt.TypeECDSAP521: azkeys.CurveNameP521}[k.Type]
		return &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeECHSM), Crv: to.Ptr(crv), T: blob}, kekVersion, nil
	}
	return &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeRSAHSM), T: blob}, kekVersion, nil
}

// kekName is the target key that holds name's key exchange keys.
func kekName(name string) string { return name + "-kek" }

// softwareJWK is version v's private key as a JWK (protection=software).
func softwareJWK(k *keymgmt.Key, v int) (*azkeys.JSONWebKey, error) {
	priv, err := k.Private(v)
	if err != nil {
		return nil, err
	}
	switch priv := priv.(type) {
	case *rsa.PrivateKey:
		if len(priv.Primes) != 2 {
			return nil, errors.New("multi-prime RSA keys cannot be imported")
		}
		priv.Precompute()
		return &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeRSA), N: priv.N.Bytes(), E: big.NewInt(int64(priv.E)).Bytes(),
			D: priv.D.Bytes(), P: priv.Primes[0].Bytes(), Q: priv.Primes[1].Bytes(),
			DP: priv.Precomputed.Dp.Bytes(), DQ: priv.Precomputed.Dq.Bytes(), QI: priv.Precomputed.Qinv.Bytes()}, nil
	case *ecdsa.PrivateKey:
		raw, err := priv.PublicKey.Bytes()
		if err != nil {
			return nil, err
		}
		dBytes, err := priv.Bytes()
		if err != nil {
			return nil, err
		}
		n := (len(raw) - 1) / 2
		crv := map[int]azkeys.CurveName{32: azkeys.CurveNameP256, 48: azkeys.CurveNameP384, 66: azkeys.CurveNameP521}[n]
		return &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeEC), Crv: to.Ptr(crv), X: raw[1 : 1+n], Y: raw[1+n:], D: dBytes}, nil
	}
	return nil, unsupported(k.Type)
}

func clearJWK(j *azkeys.JSONWebKey) {
	for _, b := range [][]byte{j.D, j.P, j.Q, j.DP, j.DQ, j.QI, j.K, j.T} {
		clear(b)
	}
}

// Remove deletes the key in the target (soft delete where the vault keeps
// deleted keys). A key already gone is fine.
func (p *provider) Remove(ctx context.Context, t keymgmt.Target) error {
	cur, err := p.client.GetKey(ctx, t.Key.Name, "", nil)
	if isStatus(err, http.StatusNotFound) {
		return p.removeKEK(ctx, t.Key.Name)
	}
	if err != nil {
		return err
	}
	if cur.Tags[TagKey] == nil || *cur.Tags[TagKey] != t.Key.Name {
		return errForeign
	}
	_, err = p.client.DeleteKey(ctx, t.Key.Name, nil)
	if err != nil && !isStatus(err, http.StatusNotFound) {
		return err
	}
	return p.removeKEK(ctx, t.Key.Name)
}

// removeKEK deletes the key exchange keys made for name's imports (when
// they are Keyward's: tagged with their own name).
func (p *provider) removeKEK(ctx context.Context, name string) error {
	kek, err := p.client.GetKey(ctx, kekName(name), "", nil)
	if isStatus(err, http.StatusNotFound) {
		return nil
	} else if err != nil {
		return err
	}
	if kek.Tags[TagKey] == nil || *kek.Tags[TagKey] != kekName(name) {
		return nil
	}
	if _, err := p.client.DeleteKey(ctx, kekName(name), nil); err != nil && !isStatus(err, http.StatusNotFound) {
		return err
	}
	return nil
}
