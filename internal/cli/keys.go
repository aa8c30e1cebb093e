package cli

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/spf13/cobra"
)

// keyCmd is az keyvault key.
func (k *kv) keyCmd() *cobra.Command {
	g := &cobra.Command{Use: "key", Short: "Manage keys and use them"}
	client := func(ctx context.Context, ob *object, needName bool) (*azkeys.Client, string, string, error) {
		s, err := k.session(ctx)
		if err != nil {
			return nil, "", "", err
		}
		vaultURL, name, version, err := ob.resolve(s, "keys", needName)
		if err != nil {
			return nil, "", "", err
		}
		c, err := s.keys(vaultURL)
		return c, name, version, err
	}
	type attrFlags struct {
		ops                []string
		protection         string
		expires, notBefore string
		tags               []string
		disabled           bool
		exportable         bool
	}
	addAttr := func(cmd *cobra.Command, a *attrFlags) {
		f := cmd.Flags()
		f.StringSliceVar(&a.ops, "ops", nil, "permitted operations: encrypt decrypt sign verify wrapKey unwrapKey import export")
		f.StringVarP(&a.protection, "protection", "p", "software", "software or hsm")
		f.StringVar(&a.expires, "expires", "", "expiry (ISO 8601 UTC)")
		f.StringVar(&a.notBefore, "not-before", "", "not valid before (ISO 8601 UTC)")
		f.StringSliceVar(&a.tags, "tags", nil, "space- or comma-separated key[=value] tags")
		f.BoolVar(&a.disabled, "disabled", false, "create it disabled")
		f.BoolVar(&a.exportable, "exportable", false, "the key may be exported (with a release policy)")
	}
	attrs := func(a *attrFlags) (*azkeys.KeyAttributes, []*azkeys.KeyOperation, error) {
		exp, err := parseTime("expires", a.expires)
		if err != nil {
			return nil, nil, err
		}
		nbf, err := parseTime("not-before", a.notBefore)
		if err != nil {
			return nil, nil, err
		}
		if a.protection != "software" && a.protection != "hsm" {
			return nil, nil, fmt.Errorf("--protection %q is not software or hsm", a.protection)
		}
		var ops []*azkeys.KeyOperation
		for _, o := range a.ops {
			ops = append(ops, to.Ptr(azkeys.KeyOperation(o)))
		}
		at := &azkeys.KeyAttributes{Enabled: to.Ptr(!a.disabled), Expires: exp, NotBefore: nbf}
		if a.exportable {
			at.Exportable = to.Ptr(true)
		}
		return at, ops, nil
	}

	// create
	var cOb object
	var ca attrFlags
	var kty, curve string
	var size int
	create := &cobra.Command{Use: "create", Short: "Create a key", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, _ *session) (any, error) {
			c, name, _, err := client(ctx, &cOb, true)
			if err != nil {
				return nil, err
			}
			at, ops, err := attrs(&ca)
			if err != nil {
				return nil, err
			}
			t := strings.TrimSuffix(kty, "-HSM")
			switch t {
			case "RSA", "EC", "oct", "AKP":
			default:
				return nil, fmt.Errorf("--kty %q is not one of RSA, RSA-HSM, EC, EC-HSM, oct, oct-HSM, AKP", kty)
			}
			if ca.protection == "hsm" || strings.HasSuffix(kty, "-HSM") {
				t += "-HSM"
			}
			p := azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyType(t)), KeyAttributes: at, KeyOps: ops, Tags: parseTags(ca.tags)}
			if size > 0 {
				p.KeySize = to.Ptr(int32(size))
			}
			if curve != "" {
				p.Curve = to.Ptr(azkeys.CurveName(curve))
			}
			r, err := c.CreateKey(ctx, name, p, nil)
			if err != nil {
				return nil, err
			}
			return azKey(r.KeyBundle, false), nil
		})}
	cOb.flags(create.Flags(), false)
	addAttr(create, &ca)
	create.Flags().StringVar(&kty, "kty", "RSA", "key type: RSA, RSA-HSM, EC, EC-HSM, oct, oct-HSM, AKP (post-quantum, docs/POST-QUANTUM.md)")
	create.Flags().IntVar(&size, "size", 0, "RSA key size in bits (2048, 3072, 4096) or oct size (128, 192, 256)")
	create.Flags().StringVar(&curve, "curve", "", "elliptic curve: P-256, P-256K, P-384, P-521; for AKP the parameter set: ML-DSA-44, ML-DSA-65, ML-DSA-87, ML-KEM-768, ML-KEM-1024, X25519MLKEM768")

	// import
	var iOb object
	var ia attrFlags
	var pemFile, pemPassword string
	imp := &cobra.Command{Use: "import", Short: "Import a private key from a PEM file", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, _ *session) (any, error) {
			c, name, _, err := client(ctx, &iOb, true)
			if err != nil {
				return nil, err
			}
			if pemPassword != "" {
				return nil, errors.New("--pem-password: encrypted PEM files are not supported; decrypt with openssl pkey first")
			}
			raw, err := readFile("pem-file", pemFile)
			if err != nil {
				return nil, err
			}
			jwk, err := pemToJWK(raw)
			if err != nil {
				return nil, fmt.Errorf("--pem-file %s: %w", pemFile, err)
			}
			at, ops, err := attrs(&ia)
			if err != nil {
				return nil, err
			}
			jwk.KeyOps = ops
			if ia.protection == "hsm" {
				jwk.Kty = to.Ptr(azkeys.KeyType(string(*jwk.Kty) + "-HSM"))
			}
			r, err := c.ImportKey(ctx, name, azkeys.ImportKeyParameters{Key: jwk, KeyAttributes: at, Tags: parseTags(ia.tags),
				HSM: to.Ptr(ia.protection == "hsm")}, nil)
			if err != nil {
				return nil, err
			}
			return azKey(r.KeyBundle, false), nil
		})}
	iOb.flags(imp.Flags(), false)
	addAttr(imp, &ia)
	imp.Flags().StringVar(&pemFile, "pem-file", "", "PEM file with an RSA or EC private key (PKCS#8, PKCS#1 or SEC 1)")
	imp.Flags().StringVar(&pemPassword, "pem-password", "", "not supported (decrypt the file first)")

	// show, rotate, delete, recover, purge
	simple := func(use, short string, version bool, fn func(ctx context.Context, c *azkeys.Client, name, version string) (any, error)) *cobra.Command {
		var ob object
		cmd := &cobra.Command{Use: use, Short: short, Args: cobra.NoArgs,
			RunE: k.run(func(ctx context.Context, _ *session) (any, error) {
				c, name, v, err := client(ctx, &ob, true)
				if err != nil {
					return nil, err
				}
				return fn(ctx, c, name, v)
			})}
		ob.flags(cmd.Flags(), version)
		return cmd
	}
	show := simple("show", "Show a key's public part and attributes", true, func(ctx context.Context, c *azkeys.Client, name, version string) (any, error) {
		r, err := c.GetKey(ctx, name, version, nil)
		if err != nil {
			return nil, err
		}
		return azKey(r.KeyBundle, false), nil
	})
	rotate := simple("rotate", "Create a new version of a key now", false, func(ctx context.Context, c *azkeys.Client, name, _ string) (any, error) {
		r, err := c.RotateKey(ctx, name, nil)
		if err != nil {
			return nil, err
		}
		return azKey(r.KeyBundle, false), nil
	})
	del := simple("delete", "Delete a key (soft delete)", false, func(ctx context.Context, c *azkeys.Client, name, _ string) (any, error) {
		r, err := c.DeleteKey(ctx, name, nil)
		if err != nil {
			return nil, err
		}
		return azKey(r.DeletedKey, true), nil
	})
	rec := simple("recover", "Recover a deleted key", false, func(ctx context.Context, c *azkeys.Client, name, _ string) (any, error) {
		r, err := c.RecoverDeletedKey(ctx, name, nil)
		if err != nil {
			return nil, err
		}
		return azKey(r.KeyBundle, false), nil
	})
	purge := simple("purge", "Permanently delete a deleted key", false, func(ctx context.Context, c *azkeys.Client, name, _ string) (any, error) {
		_, err := c.PurgeDeletedKey(ctx, name, nil)
		return nil, err
	})

	// list, list-versions
	var lOb object
	var maxResults int
	list := &cobra.Command{Use: "list", Short: "List the keys of a vault", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, _ *session) (any, error) {
			c, _, _, err := client(ctx, &lOb, false)
			if err != nil {
				return nil, err
			}
			out := []any{}
			for pg := c.NewListKeyPropertiesPager(nil); pg.More(); {
				page, err := pg.NextPage(ctx)
				if err != nil {
					return nil, err
				}
				for _, it := range page.Value {
					if it.Managed == nil || !*it.Managed {
						out = append(out, azKeyItem(it))
					}
				}
			}
			if maxResults > 0 && len(out) > maxResults {
				out = out[:maxResults]
			}
			return out, nil
		})}
	list.Flags().StringVar(&lOb.vault, "vault-name", "", "name of the vault")
	list.Flags().IntVar(&maxResults, "maxresults", 0, "at most this many")
	var lvOb object
	listVersions := &cobra.Command{Use: "list-versions", Short: "List the versions of a key", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, _ *session) (any, error) {
			c, name, _, err := client(ctx, &lvOb, true)
			if err != nil {
				return nil, err
			}
			out := []any{}
			for pg := c.NewListKeyPropertiesVersionsPager(name, nil); pg.More(); {
				page, err := pg.NextPage(ctx)
				if err != nil {
					return nil, err
				}
				for _, it := range page.Value {
					out = append(out, azKeyItem(it))
				}
			}
			return out, nil
		})}
	lvOb.flags(listVersions.Flags(), false)

	// backup, restore
	var bOb object
	var bFile string
	backup := &cobra.Command{Use: "backup", Short: "Write a key's backup blob to a file", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, _ *session) (any, error) {
			c, name, _, err := client(ctx, &bOb, true)
			if err != nil {
				return nil, err
			}
			if bFile == "" {
				return nil, errors.New("--file is required")
			}
			r, err := c.BackupKey(ctx, name, nil)
			if err != nil {
				return nil, err
			}
			return nil, writeNew(bFile, r.Value, 0o600)
		})}
	bOb.flags(backup.Flags(), false)
	backup.Flags().StringVarP(&bFile, "file", "f", "", "the backup file (must not exist)")
	var rOb object
	var rFile string
	restore := &cobra.Command{Use: "restore", Short: "Restore a key from a backup blob", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, _ *session) (any, error) {
			c, _, _, err := client(ctx, &rOb, false)
			if err != nil {
				return nil, err
			}
			blob, err := readFile("file", rFile)
			if err != nil {
				return nil, err
			}
			r, err := c.RestoreKey(ctx, azkeys.RestoreKeyParameters{KeyBackup: blob}, nil)
			if err != nil {
				return nil, err
			}
			return azKey(r.KeyBundle, false), nil
		})}
	restore.Flags().StringVar(&rOb.vault, "vault-name", "", "name of the vault")
	restore.Flags().StringVarP(&rFile, "file", "f", "", "the backup file")

	// encrypt, decrypt
	var eOb object
	var alg, value, dataType, iv, aad, tag string
	crypt := func(decrypt bool) func(ctx context.Context, _ *session) (any, error) {
		return func(ctx context.Context, _ *session) (any, error) {
			c, name, version, err := client(ctx, &eOb, true)
			if err != nil {
				return nil, err
			}
			if alg == "" || value == "" {
				return nil, errors.New("--algorithm and --value are required")
			}
			if dataType != "base64" && dataType != "plaintext" {
				return nil, fmt.Errorf("--data-type %q is not base64 or plaintext", dataType)
			}
			in := []byte(value)
			if decrypt || dataType == "base64" {
				if in, err = base64.StdEncoding.DecodeString(value); err != nil {
					return nil, errors.New("--value is not base64")
				}
			}
			p := azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithm(alg)), Value: in}
			for _, h := range []struct {
				flag, v string
				dst     *[]byte
			}{{"iv", iv, &p.IV}, {"aad", aad, &p.AdditionalAuthenticatedData}, {"tag", tag, &p.AuthenticationTag}} {
				if h.v != "" {
					if *h.dst, err = hexOrB64(h.v); err != nil {
						return nil, fmt.Errorf("--%s is not hex", h.flag)
					}
				}
			}
			if decrypt {
				r, err := c.Decrypt(ctx, name, version, p, nil)
				if err != nil {
					return nil, err
				}
				res := any(string(r.Result))
				if dataType == "base64" {
					res = base64.StdEncoding.EncodeToString(r.Result)
				}
				return map[string]any{"kid": r.KID, "result": res, "algorithm": alg}, nil
			}
			r, err := c.Encrypt(ctx, name, version, p, nil)
			if err != nil {
				return nil, err
			}
			hx := func(b []byte) any {
				if len(b) == 0 {
					return nil
				}
				return fmt.Sprintf("%x", b)
			}
			return map[string]any{"kid": r.KID, "result": base64.StdEncoding.EncodeToString(r.Result), "algorithm": alg,
				"iv": hx(r.IV), "tag": hx(r.AuthenticationTag), "aad": hx(r.AdditionalAuthenticatedData)}, nil
		}
	}
	encrypt := &cobra.Command{Use: "encrypt", Short: "Encrypt data with a key", Args: cobra.NoArgs, RunE: k.run(crypt(false))}
	decrypt := &cobra.Command{Use: "decrypt", Short: "Decrypt data with a key", Args: cobra.NoArgs, RunE: k.run(crypt(true))}
	for _, cmd := range []*cobra.Command{encrypt, decrypt} {
		eOb.flags(cmd.Flags(), true)
		f := cmd.Flags()
		f.StringVarP(&alg, "algorithm", "a", "", "RSA-OAEP, RSA-OAEP-256, RSA1_5, A128GCM, A256GCM, A128CBCPAD, …")
		f.StringVar(&value, "value", "", "the data (encrypt: per --data-type; decrypt: base64 ciphertext)")
		f.StringVar(&dataType, "data-type", "base64", "base64 or plaintext: how --value is given (encrypt) and the result printed (decrypt)")
		f.StringVar(&iv, "iv", "", "initialization vector, hex (symmetric algorithms)")
		f.StringVar(&aad, "aad", "", "additional authenticated data, hex (GCM)")
		if cmd == decrypt {
			f.StringVar(&tag, "tag", "", "authentication tag, hex (GCM)")
		}
	}

	// sign, verify
	var sOb object
	var sAlg, digest, signature string
	sign := &cobra.Command{Use: "sign", Short: "Sign a digest with a key", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, _ *session) (any, error) {
			c, name, version, err := client(ctx, &sOb, true)
			if err != nil {
				return nil, err
			}
			d, err := base64.StdEncoding.DecodeString(digest)
			if err != nil || sAlg == "" || digest == "" {
				return nil, errors.New("--algorithm and --digest (base64) are required")
			}
			r, err := c.Sign(ctx, name, version, azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithm(sAlg)), Value: d}, nil)
			if err != nil {
				return nil, err
			}
			return map[string]any{"kid": r.KID, "signature": base64.StdEncoding.EncodeToString(r.Result), "algorithm": sAlg}, nil
		})}
	verify := &cobra.Command{Use: "verify", Short: "Verify a signature with a key", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, _ *session) (any, error) {
			c, name, version, err := client(ctx, &sOb, true)
			if err != nil {
				return nil, err
			}
			d, err1 := base64.StdEncoding.DecodeString(digest)
			sig, err2 := base64.StdEncoding.DecodeString(signature)
			if err1 != nil || err2 != nil || sAlg == "" || digest == "" || signature == "" {
				return nil, errors.New("--algorithm, --digest (base64) and --signature (base64) are required")
			}
			r, err := c.Verify(ctx, name, version, azkeys.VerifyParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithm(sAlg)), Digest: d, Signature: sig}, nil)
			if err != nil {
				return nil, err
			}
			return map[string]any{"isValid": r.Value != nil && *r.Value, "algorithm": sAlg}, nil
		})}
	for _, cmd := range []*cobra.Command{sign, verify} {
		sOb.flags(cmd.Flags(), true)
		cmd.Flags().StringVarP(&sAlg, "algorithm", "a", "", "RS256, PS256, ES256, ES256K, … ")
		cmd.Flags().StringVar(&digest, "digest", "", "the digest to sign or verify, base64")
	}
	verify.Flags().StringVar(&signature, "signature", "", "the signature, base64")

	// download
	var dOb object
	var dFile, dEnc string
	download := &cobra.Command{Use: "download", Short: "Write a key's public key to a file (PEM or DER)", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, _ *session) (any, error) {
			c, name, version, err := client(ctx, &dOb, true)
			if err != nil {
				return nil, err
			}
			if dEnc != "PEM" && dEnc != "DER" {
				return nil, fmt.Errorf("--encoding %q is not PEM or DER", dEnc)
			}
			if dFile == "" {
				return nil, errors.New("--file is required")
			}
			r, err := c.GetKey(ctx, name, version, nil)
			if err != nil {
				return nil, err
			}
			der, err := publicDER(r.Key)
			if err != nil {
				return nil, err
			}
			if dEnc == "PEM" {
				der = pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
			}
			return nil, writeNew(dFile, der, 0o644)
		})}
	dOb.flags(download.Flags(), true)
	download.Flags().StringVarP(&dFile, "file", "f", "", "the file to write (must not exist)")
	download.Flags().StringVarP(&dEnc, "encoding", "e", "PEM", "PEM or DER")

	// rotation-policy show, update
	rp := &cobra.Command{Use: "rotation-policy", Short: "A key's rotation policy"}
	var rpOb object
	rpShow := &cobra.Command{Use: "show", Short: "Show a key's rotation policy", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, _ *session) (any, error) {
			c, name, _, err := client(ctx, &rpOb, true)
			if err != nil {
				return nil, err
			}
			r, err := c.GetKeyRotationPolicy(ctx, name, nil)
			if err != nil {
				return nil, err
			}
			return azRotationPolicy(r.KeyRotationPolicy), nil
		})}
	rpOb.flags(rpShow.Flags(), false)
	var ruOb object
	var policyArg string
	rpUpdate := &cobra.Command{Use: "update", Short: "Set a key's rotation policy (--value: JSON or @file)", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, _ *session) (any, error) {
			c, name, _, err := client(ctx, &ruOb, true)
			if err != nil {
				return nil, err
			}
			raw, err := jsonArg("value", policyArg)
			if err != nil {
				return nil, err
			}
			var pol azkeys.KeyRotationPolicy
			if err := json.Unmarshal(raw, &pol); err != nil {
				return nil, fmt.Errorf("--value is not a rotation policy: %v", err)
			}
			r, err := c.UpdateKeyRotationPolicy(ctx, name, pol, nil)
			if err != nil {
				return nil, err
			}
			return azRotationPolicy(r.KeyRotationPolicy), nil
		})}
	ruOb.flags(rpUpdate.Flags(), false)
	rpUpdate.Flags().StringVar(&policyArg, "value", "", `the policy: {"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P2Y"}}`)
	rp.AddCommand(rpShow, rpUpdate)

	g.AddCommand(create, imp, show, list, listVersions, rotate, del, rec, purge, backup, restore, encrypt, decrypt, sign, verify, download, rp)
	return g
}

func nilIfEmpty(s string) any {
	if s == "" {
		return nil
	}
	return s
}

func hexOrB64(s string) ([]byte, error) {
	var b []byte
	_, err := fmt.Sscanf(s, "%x", &b)
	return b, err
}

// pemToJWK reads an RSA or EC private key.
func pemToJWK(raw []byte) (*azkeys.JSONWebKey, error) {
	var key any
	for rest := raw; ; {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		var err error
		switch b.Type {
		case "PRIVATE KEY":
			key, err = x509.ParsePKCS8PrivateKey(b.Bytes)
		case "RSA PRIVATE KEY":
			key, err = x509.ParsePKCS1PrivateKey(b.Bytes)
		case "EC PRIVATE KEY":
			key, err = x509.ParseECPrivateKey(b.Bytes)
		case "ENCRYPTED PRIVATE KEY":
			return nil, errors.New("the key is encrypted: decrypt it first")
		default:
			continue
		}
		if err != nil {
			return nil, err
		}
		break
	}
	switch k := key.(type) {
	case *rsa.PrivateKey:
		k.Precompute()
		return &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeRSA), N: k.N.Bytes(), E: big.NewInt(int64(k.E)).Bytes(),
			D: k.D.Bytes(), P: k.Primes[0].Bytes(), Q: k.Primes[1].Bytes(), DP: k.Precomputed.Dp.Bytes(),
			DQ: k.Precomputed.Dq.Bytes(), QI: k.Precomputed.Qinv.Bytes()}, nil
	case *ecdsa.PrivateKey:
		crv := map[string]azkeys.CurveName{"P-256": azkeys.CurveNameP256, "P-384": azkeys.CurveNameP384, "P-521": azkeys.CurveNameP521}[k.Curve.Params().Name]
		if crv == "" {
			return nil, errors.New("unsupported curve")
		}
		size := (k.Curve.Params().BitSize + 7) / 8
		ecdh, err := k.ECDH()
		if err != nil {
			return nil, err
		}
		pub := ecdh.PublicKey().Bytes() // 0x04 || X || Y
		return &azkeys.JSONWebKey{Kty: to.Ptr(azkeys.KeyTypeEC), Crv: &crv, X: pub[1 : 1+size], Y: pub[1+size:],
			D: k.D.FillBytes(make([]byte, size))}, nil
	}
	return nil, errors.New("no RSA or EC private key in the file")
}

// publicDER is a JWK's SubjectPublicKeyInfo.
func publicDER(k *azkeys.JSONWebKey) ([]byte, error) {
	if k == nil || k.Kty == nil {
		return nil, errors.New("the key has no public part")
	}
	switch strings.TrimSuffix(string(*k.Kty), "-HSM") {
	case "RSA":
		return x509.MarshalPKIXPublicKey(&rsa.PublicKey{N: new(big.Int).SetBytes(k.N), E: int(new(big.Int).SetBytes(k.E).Int64())})
	case "EC":
		var c elliptic.Curve
		switch *k.Crv {
		case azkeys.CurveNameP256:
			c = elliptic.P256()
		case azkeys.CurveNameP384:
			c = elliptic.P384()
		case azkeys.CurveNameP521:
			c = elliptic.P521()
		default:
			return nil, fmt.Errorf("curve %s has no standard public key encoding here", *k.Crv)
		}
		size := (c.Params().BitSize + 7) / 8
		pt := append([]byte{4}, append(leftPad(k.X, size), leftPad(k.Y, size)...)...)
		pub, err := ecdsa.ParseUncompressedPublicKey(c, pt)
		if err != nil {
			return nil, err
		}
		return x509.MarshalPKIXPublicKey(pub)
	}
	return nil, fmt.Errorf("a %s key has no public key to download", *k.Kty)
}

func leftPad(b []byte, n int) []byte {
	if len(b) >= n {
		return b
	}
	return append(make([]byte, n-len(b)), b...)
}
