package cli

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/spf13/cobra"
)

func newGUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// backupCmd is `keyvault backup start --vault-name V --directory D`: every
// key, secret and certificate's backup blob in D/{keys,secrets,certificates}/NAME
// (Keyward's; az's backup start is for managed HSMs and a storage account).
func (k *kv) backupCmd() *cobra.Command {
	g := &cobra.Command{Use: "backup", Short: "Back up a whole vault to a directory"}
	var vault, dir string
	start := &cobra.Command{Use: "start", Short: "Write every object's backup blob under --directory (a progress bar on a terminal)", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, s *session) (any, error) {
			vaultURL, err := s.vaultURL(vault)
			if err != nil {
				return nil, err
			}
			if dir == "" {
				return nil, errors.New("--directory is required")
			}
			sc, _ := s.secrets(vaultURL)
			kc, _ := s.keys(vaultURL)
			cc, _ := s.certificates(vaultURL)
			var secrets, keys, certs []string
			for pg := cc.NewListCertificatePropertiesPager(nil); pg.More(); {
				page, err := pg.NextPage(ctx)
				if err != nil {
					return nil, err
				}
				for _, c := range page.Value {
					certs = append(certs, c.ID.Name())
				}
			}
			for pg := kc.NewListKeyPropertiesPager(nil); pg.More(); {
				page, err := pg.NextPage(ctx)
				if err != nil {
					return nil, err
				}
				for _, it := range page.Value {
					if it.Managed == nil || !*it.Managed { // a certificate's key travels with it
						keys = append(keys, it.KID.Name())
					}
				}
			}
			for pg := sc.NewListSecretPropertiesPager(nil); pg.More(); {
				page, err := pg.NextPage(ctx)
				if err != nil {
					return nil, err
				}
				for _, it := range page.Value {
					if it.Managed == nil || !*it.Managed {
						secrets = append(secrets, it.ID.Name())
					}
				}
			}
			for _, sub := range []string{"keys", "secrets", "certificates"} {
				if err := os.MkdirAll(filepath.Join(dir, sub), 0o700); err != nil {
					return nil, err
				}
			}
			bar := k.progress("Backing up "+vault, len(secrets)+len(keys)+len(certs))
			defer bar.finish()
			for _, n := range keys {
				r, err := kc.BackupKey(ctx, n, nil)
				if err != nil {
					return nil, fmt.Errorf("key %s: %w", n, err)
				}
				if err := writeNew(filepath.Join(dir, "keys", n), r.Value, 0o600); err != nil {
					return nil, err
				}
				bar.step(1)
			}
			for _, n := range secrets {
				r, err := sc.BackupSecret(ctx, n, nil)
				if err != nil {
					return nil, fmt.Errorf("secret %s: %w", n, err)
				}
				if err := writeNew(filepath.Join(dir, "secrets", n), r.Value, 0o600); err != nil {
					return nil, err
				}
				bar.step(1)
			}
			for _, n := range certs {
				r, err := cc.BackupCertificate(ctx, n, nil)
				if err != nil {
					return nil, fmt.Errorf("certificate %s: %w", n, err)
				}
				if err := writeNew(filepath.Join(dir, "certificates", n), r.Value, 0o600); err != nil {
					return nil, err
				}
				bar.step(1)
			}
			return map[string]any{"directory": dir, "keys": len(keys), "secrets": len(secrets), "certificates": len(certs)}, nil
		})}
	start.Flags().StringVar(&vault, "vault-name", "", "name of the vault")
	start.Flags().StringVar(&dir, "directory", "", "directory to write the blobs to (files must not exist)")
	g.AddCommand(start)
	return g
}

// restoreCmd is `keyvault restore start --vault-name V --directory D`.
func (k *kv) restoreCmd() *cobra.Command {
	g := &cobra.Command{Use: "restore", Short: "Restore a vault's objects from a backup directory"}
	var vault, dir string
	start := &cobra.Command{Use: "start", Short: "Restore every blob under --directory (a progress bar on a terminal)", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, s *session) (any, error) {
			vaultURL, err := s.vaultURL(vault)
			if err != nil {
				return nil, err
			}
			if dir == "" {
				return nil, errors.New("--directory is required")
			}
			sc, _ := s.secrets(vaultURL)
			kc, _ := s.keys(vaultURL)
			cc, _ := s.certificates(vaultURL)
			files := map[string][]string{}
			total := 0
			for _, sub := range []string{"keys", "secrets", "certificates"} {
				entries, err := os.ReadDir(filepath.Join(dir, sub))
				if err != nil && !errors.Is(err, os.ErrNotExist) {
					return nil, err
				}
				for _, e := range entries {
					if e.Type().IsRegular() && !strings.HasPrefix(e.Name(), ".") {
						files[sub] = append(files[sub], filepath.Join(dir, sub, e.Name()))
					}
				}
				total += len(files[sub])
			}
			if total == 0 {
				return nil, fmt.Errorf("%s holds no backup (keys/, secrets/, certificates/)", dir)
			}
			bar := k.progress("Restoring "+vault, total)
			defer bar.finish()
			for sub, paths := range map[string][]string{"certificates": files["certificates"], "keys": files["keys"], "secrets": files["secrets"]} {
				for _, p := range paths {
					blob, err := os.ReadFile(p)
					if err != nil {
						return nil, err
					}
					switch sub {
					case "keys":
						_, err = kc.RestoreKey(ctx, azkeys.RestoreKeyParameters{KeyBackup: blob}, nil)
					case "secrets":
						_, err = sc.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: blob}, nil)
					case "certificates":
						_, err = cc.RestoreCertificate(ctx, azcertificates.RestoreCertificateParameters{CertificateBackup: blob}, nil)
					}
					if err != nil {
						return nil, fmt.Errorf("%s: %w", p, cleanError(err))
					}
					bar.step(1)
				}
			}
			return map[string]any{"directory": dir, "keys": len(files["keys"]), "secrets": len(files["secrets"]), "certificates": len(files["certificates"])}, nil
		})}
	start.Flags().StringVar(&vault, "vault-name", "", "name of the vault")
	start.Flags().StringVar(&dir, "directory", "", "the directory `keyvault backup start` wrote")
	g.AddCommand(start)
	return g
}
