// Package awskms is the Key Management engine's provider for AWS KMS (and
// endpoints that speak its API, such as the local-kms emulator), driven by
// the official aws-sdk-go-v2 kms client.
//
// key_collection is the region; credentials are Vault's access_key,
// secret_key and session_token, plus Keyward's endpoint. Each central
// version is one KMS key with Origin=EXTERNAL whose material is imported
// under GetParametersForImport's RSAES_OAEP_SHA_256 wrapping; the alias
// alias/{key name} points at the latest version's KMS key. A KMS key has
// one version, so rotation puts a new KMS key behind the alias and
// disables the older ones; removal schedules every version's deletion and
// deletes the alias.
package awskms

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"errors"
	"fmt"
	"net/url"
	"regexp"
	"strconv"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/kms"
	"github.com/aws/aws-sdk-go-v2/service/kms/types"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/keymgmt"
	"github.com/keyward/keyward/internal/kmsprovider"
)

// Name is the provider's name in Vault's API.
const Name = "awskms"

// Tags on every KMS key Keyward distributes.
const (
	TagKey     = "keyward-keymgmt-key"
	TagVersion = "keyward-keymgmt-version"
)

var credentialNames = map[string]bool{"access_key": true, "secret_key": true, "session_token": true, "endpoint": true, "ca_cert": true}

var regionRE = regexp.MustCompile(`^[a-z]{2}(-[a-z]+)+-[0-9]{1,2}$`)

type provider struct {
	client *kms.Client
}

func invalid(k *keymgmt.KMS, reason string) error {
	return &errs.Error{Kind: errs.BadParameter, Type: "keymgmt kms", Name: k.Name, Reason: reason}
}

// New is the provider's keymgmt.Factory.
func New(k *keymgmt.KMS) (keymgmt.Provider, error) {
	c := k.Credentials
	for n := range c {
		if !credentialNames[n] {
			return nil, invalid(k, keymgmt.ReasonInvalidCredentials)
		}
	}
	if c["access_key"] == "" || c["secret_key"] == "" {
		return nil, invalid(k, keymgmt.ReasonInvalidCredentials)
	}
	if !regionRE.MatchString(k.KeyCollection) {
		return nil, invalid(k, keymgmt.ReasonInvalidCollection)
	}
	hc, err := kmsprovider.HTTPClient(c["ca_cert"])
	if err != nil {
		return nil, invalid(k, keymgmt.ReasonInvalidCredentials)
	}
	opts := kms.Options{
		Region:           k.KeyCollection,
		Credentials:      credentials.NewStaticCredentialsProvider(c["access_key"], c["secret_key"], c["session_token"]),
		HTTPClient:       hc,
		RetryMaxAttempts: 2,
	}
	if e := c["endpoint"]; e != "" {
		u, err := url.Parse(e)
		if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, invalid(k, keymgmt.ReasonInvalidCredentials)
		}
		opts.BaseEndpoint = aws.String(e)
	}
	return &provider{client: kms.New(opts)}, nil
}

func unsupported(name string) error {
	return &errs.Error{Kind: errs.BadParameter, Type: "keymgmt distribution", Name: name, Reason: keymgmt.ReasonUnsupported}
}

// Supports: AES-256 keys for encrypt/decrypt (KMS imports symmetric
// material into keys of its SYMMETRIC_DEFAULT spec). Protection hsm is
// what KMS always gives (its HSMs); software is accepted as well.
func (p *provider) Supports(typ string, purpose []string, protection string) error {
	if typ != keymgmt.TypeAES256 {
		return unsupported(typ)
	}
	for _, pu := range purpose {
		if pu != "encrypt" && pu != "decrypt" {
			return unsupported(pu)
		}
	}
	return nil
}

func alias(name string) string { return "alias/" + name }

// Sync makes KMS match the central key.
func (p *provider) Sync(ctx context.Context, t keymgmt.Target) (keymgmt.SyncResult, error) {
	k, d := t.Key, t.Dist
	var findings []string
	result := map[int]string{}
	for _, v := range k.VersionNumbers() {
		id, recorded := d.Versions[v]
		state := types.KeyState("")
		if recorded {
			out, err := p.client.DescribeKey(ctx, &kms.DescribeKeyInput{KeyId: aws.String(id)})
			var nf *types.NotFoundException
			switch {
			case errors.As(err, &nf):
				state = ""
			case err != nil:
				return keymgmt.SyncResult{}, err
			default:
				state = out.KeyMetadata.KeyState
			}
		}
		// A KMS key has one version: the older central versions' keys
		// are disabled once a newer one is behind the alias.
		if v < k.LatestVersion {
			if state == types.KeyStateEnabled {
				if _, err := p.client.DisableKey(ctx, &kms.DisableKeyInput{KeyId: aws.String(id)}); err != nil {
					return keymgmt.SyncResult{}, err
				}
			}
			if recorded && state != "" {
				result[v] = id
			}
			continue
		}
		switch state {
		case types.KeyStateEnabled:
		case types.KeyStateDisabled:
			if _, err := p.client.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(id)}); err != nil {
				return keymgmt.SyncResult{}, err
			}
			findings = append(findings, fmt.Sprintf("version %d disabled in KMS: enabled", v))
		case types.KeyStatePendingDeletion:
			if _, err := p.client.CancelKeyDeletion(ctx, &kms.CancelKeyDeletionInput{KeyId: aws.String(id)}); err != nil {
				return keymgmt.SyncResult{}, err
			}
			if _, err := p.client.EnableKey(ctx, &kms.EnableKeyInput{KeyId: aws.String(id)}); err != nil {
				return keymgmt.SyncResult{}, err
			}
			findings = append(findings, fmt.Sprintf("version %d scheduled for deletion in KMS: deletion cancelled, enabled", v))
		default: // missing, deleted, or waiting for its material
			newID, err := p.importVersion(ctx, k, v)
			if err != nil {
				return keymgmt.SyncResult{}, err
			}
			if recorded {
				findings = append(findings, fmt.Sprintf("version %d missing in KMS (%s): imported again", v, stateWord(state)))
			}
			id = newID
		}
		result[v] = id
	}
	// The alias names the latest version.
	latest := result[k.LatestVersion]
	out, err := p.client.ListAliases(ctx, &kms.ListAliasesInput{KeyId: aws.String(latest)})
	if err != nil {
		return keymgmt.SyncResult{}, err
	}
	for _, a := range out.Aliases {
		if aws.ToString(a.AliasName) == alias(k.Name) {
			return keymgmt.SyncResult{Versions: result, Findings: findings}, nil
		}
	}
	_, err = p.client.UpdateAlias(ctx, &kms.UpdateAliasInput{AliasName: aws.String(alias(k.Name)), TargetKeyId: aws.String(latest)})
	var nf *types.NotFoundException
	if errors.As(err, &nf) {
		_, err = p.client.CreateAlias(ctx, &kms.CreateAliasInput{AliasName: aws.String(alias(k.Name)), TargetKeyId: aws.String(latest)})
		if err == nil && len(d.Versions) > 0 {
			findings = append(findings, "alias missing in KMS: created")
		}
	}
	if err != nil {
		return keymgmt.SyncResult{}, err
	}
	return keymgmt.SyncResult{Versions: result, Findings: findings}, nil
}

func stateWord(s types.KeyState) string {
	if s == "" {
		return "not found"
	}
	return string(s)
}

// importVersion creates a KMS key with external origin and imports
// version v's material into it.
func (p *provider) importVersion(ctx context.Context, k *keymgmt.Key, v int) (string, error) {
	created, err := p.client.CreateKey(ctx, &kms.CreateKeyInput{
		Origin:      types.OriginTypeExternal,
		KeySpec:     types.KeySpecSymmetricDefault,
		KeyUsage:    types.KeyUsageTypeEncryptDecrypt,
		Description: aws.String("Keyward keymgmt key " + k.Name + " version " + strconv.Itoa(v)),
		Tags: []types.Tag{{TagKey: aws.String(TagKey), TagValue: aws.String(k.Name)},
			{TagKey: aws.String(TagVersion), TagValue: aws.String(strconv.Itoa(v))}},
	})
	if err != nil {
		return "", err
	}
	id := aws.ToString(created.KeyMetadata.KeyId)
	params, err := p.client.GetParametersForImport(ctx, &kms.GetParametersForImportInput{
		KeyId: aws.String(id), WrappingAlgorithm: types.AlgorithmSpecRsaesOaepSha256, WrappingKeySpec: types.WrappingKeySpecRsa2048,
	})
	if err != nil {
		return "", err
	}
	pubAny, err := x509.ParsePKIXPublicKey(params.PublicKey)
	if err != nil {
		return "", fmt.Errorf("KMS wrapping key: %w", err)
	}
	pub, ok := pubAny.(*rsa.PublicKey)
	if !ok {
		return "", errors.New("KMS wrapping key is not RSA")
	}
	mat, err := k.PKCS8(v)
	if err != nil {
		return "", err
	}
	wrapped, err := rsa.EncryptOAEP(sha256.New(), rand.Reader, pub, mat, nil)
	if err != nil {
		return "", err
	}
	_, err = p.client.ImportKeyMaterial(ctx, &kms.ImportKeyMaterialInput{
		KeyId: aws.String(id), ImportToken: params.ImportToken, EncryptedKeyMaterial: wrapped,
		ExpirationModel: types.ExpirationModelTypeKeyMaterialDoesNotExpire,
	})
	if err != nil {
		return "", err
	}
	return id, nil
}

// Remove schedules the deletion of every version's KMS key (the shortest
// window KMS allows) and deletes the alias.
func (p *provider) Remove(ctx context.Context, t keymgmt.Target) error {
	if _, err := p.client.DeleteAlias(ctx, &kms.DeleteAliasInput{AliasName: aws.String(alias(t.Key.Name))}); err != nil {
		var nf *types.NotFoundException
		if !errors.As(err, &nf) {
			return err
		}
	}
	for _, id := range t.Dist.Versions {
		_, err := p.client.ScheduleKeyDeletion(ctx, &kms.ScheduleKeyDeletionInput{KeyId: aws.String(id), PendingWindowInDays: aws.Int32(7)})
		var nf *types.NotFoundException
		var st *types.KMSInvalidStateException
		if err != nil && !errors.As(err, &nf) && !errors.As(err, &st) {
			return err
		}
	}
	return nil
}
