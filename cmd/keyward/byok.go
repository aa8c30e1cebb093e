package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/byok"
	"github.com/keyward/keyward/internal/server"
	"github.com/keyward/keyward/internal/skr"
)

// newBYOKCmd is `keyward byok`: the customer-side tool that wraps a private
// key for import into an HSM-protected Key Vault key (what HSM vendors'
// BYOK tools do; CRYPTO.md §4.2).
func newBYOKCmd(stdout io.Writer) *cobra.Command {
	var keyFile, kekFile, kid, enc, out string
	var oct bool
	cmd := &cobra.Command{
		Use:   "byok --key PRIVATE_KEY --kek KEK_PUBLIC_KEY [--kid KEK_ID] [-o FILE.byok]",
		Short: "Wrap a private key into a .byok transfer file for BYOK import",
		Long: `Wrap a private key for a key exchange key (KEK) and write a .byok file.

The KEK is an RSA-HSM key with key_ops ["import"] in the target vault:
  az keyvault key create --vault-name V --name kek --kty RSA-HSM --size 3072 --ops import
  az keyvault key download --vault-name V --name kek -f kek.pem
Then:
  keyward byok --key my-key.pem --kek kek.pem --kid https://V.vault.../keys/kek/VERSION -o my-key.byok
  az keyvault key import --vault-name V --name my-key --byok-file my-key.byok --kty RSA   (or EC)

--key reads PEM or DER (PKCS #8, PKCS #1, SEC 1; not encrypted); with --oct
a file of the raw 16, 24 or 32 AES key bytes (managed HSM oct-HSM keys).
--kek reads a PEM/DER public key, or the key's JSON (GET /keys/kek, or az
... key show), which also supplies --kid. The file holds the key wrapped
with a fresh AES key (RFC 5649) that is encrypted with RSA-OAEP under the
KEK; only the HSM holding the KEK can open it.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if keyFile == "" || kekFile == "" {
				return errors.New("need --key and --kek")
			}
			kb, err := os.ReadFile(keyFile)
			if err != nil {
				return err
			}
			defer clear(kb)
			tgt, err := byok.TargetFromFile(kb, oct)
			if err != nil {
				return err
			}
			defer clear(tgt.DER)
			pb, err := os.ReadFile(kekFile)
			if err != nil {
				return err
			}
			pub, jwkKid, err := byok.KEKFromFile(pb)
			if err != nil {
				return err
			}
			if kid == "" {
				kid = jwkKid
			}
			if kid == "" {
				return errors.New("need --kid: the key exchange key's identifier (https://{vault}/keys/{name}/{version})")
			}
			f, err := byok.Seal(pub, kid, enc, tgt.DER, "keyward byok")
			if err != nil {
				return err
			}
			f = append(f, '\n')
			desc := tgt.Kty
			if tgt.Curve != "" {
				desc += " " + tgt.Curve
			} else {
				desc += fmt.Sprintf(" %d", tgt.Bits)
			}
			if out == "" || out == "-" {
				_, err = stdout.Write(f)
				return err
			}
			if err := os.WriteFile(out, f, 0o600); err != nil {
				return err
			}
			fmt.Fprintf(cmd.ErrOrStderr(), "wrote %s: a %s key for KEK %s (%s); import it with --kty %s\n", out, desc, kid, enc, tgt.Kty)
			return nil
		},
	}
	cmd.Flags().StringVar(&keyFile, "key", "", "the private key to transfer (PEM or DER)")
	cmd.Flags().StringVar(&kekFile, "kek", "", "the key exchange key's public key (PEM, DER or JWK JSON)")
	cmd.Flags().StringVar(&kid, "kid", "", "the key exchange key's ID (taken from a JWK --kek when absent)")
	cmd.Flags().StringVar(&enc, "enc", byok.EncRSAAESKeyWrap, "CKM_RSA_AES_KEY_WRAP (OAEP SHA-1), RSA_AES_KEY_WRAP_256 or RSA_AES_KEY_WRAP_384")
	cmd.Flags().StringVarP(&out, "output", "o", "", "where to write the .byok file (default: stdout)")
	cmd.Flags().BoolVar(&oct, "oct", false, "--key is a raw AES key (oct-HSM)")
	return cmd
}

// newAttestationTokenCmd is `keyward attestation-token`: a token from the
// dev server's attestation authority (dev.json "attestation"), for trying
// secure key release against a dev server.
func newAttestationTokenCmd(stdout io.Writer) *cobra.Command {
	var devJSON, runtimeKey, claims string
	var ttl time.Duration
	cmd := &cobra.Command{
		Use:   "attestation-token --dev-json DIR/dev.json --runtime-key PUB.pem [--claims JSON]",
		Short: "Mint an attestation token from the dev server's attestation authority (secure key release)",
		Long: `Print an attestation token (a JWT) signed by the dev server's own attestation
authority, for POST /keys/{name}/{version}/release (az keyvault key release
--target, azkeys Client.Release). --claims are the attested claims the key's
release policy is evaluated over, e.g.
  '{"x-ms-isolation-tee":{"x-ms-attestation-type":"sevsnpvm"}}'
--runtime-key is the RSA public key (PEM) the released key is wrapped to; its
private key opens the release response's key_hsm (keyward byok format).
A production server trusts real authorities instead: [release] authorities.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			if devJSON == "" || runtimeKey == "" {
				return errors.New("need --dev-json and --runtime-key")
			}
			raw, err := os.ReadFile(devJSON)
			if err != nil {
				return err
			}
			var info struct {
				Attestation *server.DevAttestation `json:"attestation"`
			}
			if err := json.Unmarshal(raw, &info); err != nil || info.Attestation == nil {
				return errors.New("dev.json has no attestation authority (is it a dev server's, of this version?)")
			}
			pb, err := os.ReadFile(runtimeKey)
			if err != nil {
				return err
			}
			pub, _, err := byok.KEKFromFile(pb)
			if err != nil {
				return fmt.Errorf("--runtime-key: %w", err)
			}
			c := map[string]any{}
			if claims != "" {
				if err := json.Unmarshal([]byte(claims), &c); err != nil {
					return fmt.Errorf("--claims is not a JSON object: %w", err)
				}
			}
			a, err := skr.LoadOrCreateLocalAuthority(filepath.Dir(info.Attestation.KeyFile), info.Attestation.Issuer)
			if err != nil {
				return err
			}
			tok, err := a.Mint(c, pub, time.Now(), ttl)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(stdout, tok)
			return err
		},
	}
	cmd.Flags().StringVar(&devJSON, "dev-json", "", "the dev server's dev.json")
	cmd.Flags().StringVar(&runtimeKey, "runtime-key", "", "the RSA public key (PEM) to release keys to")
	cmd.Flags().StringVar(&claims, "claims", "", "attested claims (JSON object)")
	cmd.Flags().DurationVar(&ttl, "ttl", 10*time.Minute, "token lifetime")
	return cmd
}
