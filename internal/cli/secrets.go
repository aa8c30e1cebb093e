package cli

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"unicode/utf8"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/spf13/cobra"
)

var secretEncodings = map[string]bool{"utf-8": true, "ascii": true, "base64": true, "hex": true}

func (k *kv) secretCmd() *cobra.Command {
	g := &cobra.Command{Use: "secret", Short: "Manage secrets"}

	// set
	var ob object
	var value, file, encoding, contentType, expires, notBefore string
	var tags []string
	var disabled bool
	set := &cobra.Command{Use: "set", Short: "Create a secret (or a new version of it)", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, s *session) (any, error) {
			vaultURL, name, _, err := ob.resolve(s, "secrets", true)
			if err != nil {
				return nil, err
			}
			if (value == "") == (file == "") {
				return nil, errors.New("exactly one of --value and --file is required")
			}
			if !secretEncodings[encoding] {
				return nil, fmt.Errorf("--encoding %q is not one of utf-8, ascii, base64, hex", encoding)
			}
			t := parseTags(tags)
			if file != "" {
				raw, err := readFile("file", file)
				if err != nil {
					return nil, err
				}
				switch encoding {
				case "utf-8", "ascii":
					if !utf8.Valid(raw) || encoding == "ascii" && !isASCII(raw) {
						return nil, fmt.Errorf("--file %s is not %s text: use --encoding base64 or hex", file, encoding)
					}
					value = string(raw)
				case "base64":
					value = base64.StdEncoding.EncodeToString(raw)
				case "hex":
					value = hex.EncodeToString(raw)
				}
				if t == nil {
					t = map[string]*string{}
				}
				t["file-encoding"] = to.Ptr(encoding)
			}
			exp, err := parseTime("expires", expires)
			if err != nil {
				return nil, err
			}
			nbf, err := parseTime("not-before", notBefore)
			if err != nil {
				return nil, err
			}
			c, err := s.secrets(vaultURL)
			if err != nil {
				return nil, err
			}
			params := azsecrets.SetSecretParameters{Value: &value, Tags: t,
				SecretAttributes: &azsecrets.SecretAttributes{Enabled: to.Ptr(!disabled), Expires: exp, NotBefore: nbf}}
			if contentType != "" {
				params.ContentType = &contentType
			}
			r, err := c.SetSecret(ctx, name, params, nil)
			if err != nil {
				return nil, err
			}
			return azSecret(r.Secret, false), nil
		})}
	ob.flags(set.Flags(), false)
	set.Flags().StringVar(&value, "value", "", "the secret's value")
	set.Flags().StringVarP(&file, "file", "f", "", "read the value from this file")
	set.Flags().StringVarP(&encoding, "encoding", "e", "utf-8", "how --file is read: utf-8, ascii, base64, hex")
	set.Flags().StringVar(&contentType, "description", "", "the content type (az's --description)")
	set.Flags().StringVar(&contentType, "content-type", "", "the content type")
	set.Flags().StringVar(&expires, "expires", "", "expiry (ISO 8601 UTC)")
	set.Flags().StringVar(&notBefore, "not-before", "", "not valid before (ISO 8601 UTC)")
	set.Flags().StringSliceVar(&tags, "tags", nil, "space- or comma-separated key[=value] tags")
	set.Flags().BoolVar(&disabled, "disabled", false, "create it disabled")

	// show
	var shOb object
	show := &cobra.Command{Use: "show", Short: "Show a secret and its value", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, s *session) (any, error) {
			vaultURL, name, version, err := shOb.resolve(s, "secrets", true)
			if err != nil {
				return nil, err
			}
			c, err := s.secrets(vaultURL)
			if err != nil {
				return nil, err
			}
			r, err := c.GetSecret(ctx, name, version, nil)
			if err != nil {
				return nil, err
			}
			return azSecret(r.Secret, false), nil
		})}
	shOb.flags(show.Flags(), true)

	// list, list-versions
	var lsOb object
	var maxResults int
	list := &cobra.Command{Use: "list", Short: "List the secrets of a vault (no values)", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, s *session) (any, error) {
			vaultURL, _, _, err := lsOb.resolve(s, "secrets", false)
			if err != nil {
				return nil, err
			}
			c, err := s.secrets(vaultURL)
			if err != nil {
				return nil, err
			}
			out := []any{}
			for pg := c.NewListSecretPropertiesPager(nil); pg.More() && (maxResults <= 0 || len(out) < maxResults); {
				page, err := pg.NextPage(ctx)
				if err != nil {
					return nil, err
				}
				for _, it := range page.Value {
					if it.Managed != nil && *it.Managed {
						continue // az: filter_out_managed_resources
					}
					out = append(out, azSecretItem(it))
				}
			}
			if maxResults > 0 && len(out) > maxResults {
				out = out[:maxResults]
			}
			return out, nil
		}, [2]string{"Name", "name"}, [2]string{"Id", "id"}, [2]string{"ContentType", "contentType"},
			[2]string{"Enabled", "attributes.enabled"}, [2]string{"Expires", "attributes.expires"})}
	list.Flags().StringVar(&lsOb.vault, "vault-name", "", "name of the vault")
	list.Flags().IntVar(&maxResults, "maxresults", 0, "at most this many")
	var lvOb object
	listVersions := &cobra.Command{Use: "list-versions", Short: "List the versions of a secret", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, s *session) (any, error) {
			vaultURL, name, _, err := lvOb.resolve(s, "secrets", true)
			if err != nil {
				return nil, err
			}
			c, err := s.secrets(vaultURL)
			if err != nil {
				return nil, err
			}
			out := []any{}
			for pg := c.NewListSecretPropertiesVersionsPager(name, nil); pg.More(); {
				page, err := pg.NextPage(ctx)
				if err != nil {
					return nil, err
				}
				for _, it := range page.Value {
					out = append(out, azSecretItem(it))
				}
			}
			return out, nil
		})}
	lvOb.flags(listVersions.Flags(), false)

	// delete, recover, purge
	var dOb object
	del := &cobra.Command{Use: "delete", Short: "Delete a secret (soft delete: recoverable until purged)", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, s *session) (any, error) {
			vaultURL, name, _, err := dOb.resolve(s, "secrets", true)
			if err != nil {
				return nil, err
			}
			c, err := s.secrets(vaultURL)
			if err != nil {
				return nil, err
			}
			r, err := c.DeleteSecret(ctx, name, nil)
			if err != nil {
				return nil, err
			}
			return azSecret(r.DeletedSecret, true), nil
		})}
	dOb.flags(del.Flags(), false)
	var rOb object
	recoverCmd := &cobra.Command{Use: "recover", Short: "Recover a deleted secret", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, s *session) (any, error) {
			vaultURL, name, _, err := rOb.resolve(s, "secrets", true)
			if err != nil {
				return nil, err
			}
			c, err := s.secrets(vaultURL)
			if err != nil {
				return nil, err
			}
			r, err := c.RecoverDeletedSecret(ctx, name, nil)
			if err != nil {
				return nil, err
			}
			return azSecret(r.Secret, false), nil
		})}
	rOb.flags(recoverCmd.Flags(), false)
	var pOb object
	purge := &cobra.Command{Use: "purge", Short: "Permanently delete a deleted secret", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, s *session) (any, error) {
			vaultURL, name, _, err := pOb.resolve(s, "secrets", true)
			if err != nil {
				return nil, err
			}
			c, err := s.secrets(vaultURL)
			if err != nil {
				return nil, err
			}
			_, err = c.PurgeDeletedSecret(ctx, name, nil)
			return nil, err
		})}
	pOb.flags(purge.Flags(), false)

	// backup, restore
	var bOb object
	var bFile string
	backup := &cobra.Command{Use: "backup", Short: "Write a secret's backup blob to a file", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, s *session) (any, error) {
			vaultURL, name, _, err := bOb.resolve(s, "secrets", true)
			if err != nil {
				return nil, err
			}
			if bFile == "" {
				return nil, errors.New("--file is required")
			}
			c, err := s.secrets(vaultURL)
			if err != nil {
				return nil, err
			}
			r, err := c.BackupSecret(ctx, name, nil)
			if err != nil {
				return nil, err
			}
			return nil, writeNew(bFile, r.Value, 0o600)
		})}
	bOb.flags(backup.Flags(), false)
	backup.Flags().StringVarP(&bFile, "file", "f", "", "the backup file (must not exist)")
	var rsOb object
	var rsFile string
	restore := &cobra.Command{Use: "restore", Short: "Restore a secret from a backup blob", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, s *session) (any, error) {
			vaultURL, _, _, err := rsOb.resolve(s, "secrets", false)
			if err != nil {
				return nil, err
			}
			blob, err := readFile("file", rsFile)
			if err != nil {
				return nil, err
			}
			c, err := s.secrets(vaultURL)
			if err != nil {
				return nil, err
			}
			r, err := c.RestoreSecret(ctx, azsecrets.RestoreSecretParameters{SecretBackup: blob}, nil)
			if err != nil {
				return nil, err
			}
			return azSecret(r.Secret, false), nil
		})}
	restore.Flags().StringVar(&rsOb.vault, "vault-name", "", "name of the vault")
	restore.Flags().StringVarP(&rsFile, "file", "f", "", "the backup file")

	// download
	var dlOb object
	var dlFile, dlEncoding string
	download := &cobra.Command{Use: "download", Short: "Write a secret's value to a file", Args: cobra.NoArgs,
		RunE: k.run(func(ctx context.Context, s *session) (any, error) {
			vaultURL, name, version, err := dlOb.resolve(s, "secrets", true)
			if err != nil {
				return nil, err
			}
			if dlEncoding != "" && !secretEncodings[dlEncoding] {
				return nil, fmt.Errorf("--encoding %q is not one of utf-8, ascii, base64, hex", dlEncoding)
			}
			if dlFile == "" {
				return nil, errors.New("--file is required")
			}
			c, err := s.secrets(vaultURL)
			if err != nil {
				return nil, err
			}
			r, err := c.GetSecret(ctx, name, version, nil)
			if err != nil {
				return nil, err
			}
			enc := dlEncoding
			if enc == "" {
				enc = "utf-8"
				if fe, ok := r.Tags["file-encoding"]; ok && fe != nil && secretEncodings[*fe] {
					enc = *fe
				}
			}
			val := ""
			if r.Value != nil {
				val = *r.Value
			}
			var data []byte
			switch enc {
			case "utf-8", "ascii":
				data = []byte(val)
			case "base64":
				if data, err = base64.StdEncoding.DecodeString(val); err != nil {
					return nil, errors.New("the secret's value is not base64: use another --encoding")
				}
			case "hex":
				if data, err = hex.DecodeString(val); err != nil {
					return nil, errors.New("the secret's value is not hex: use another --encoding")
				}
			}
			return nil, writeNew(dlFile, data, 0o600)
		})}
	dlOb.flags(download.Flags(), true)
	download.Flags().StringVarP(&dlFile, "file", "f", "", "the file to write (must not exist)")
	download.Flags().StringVarP(&dlEncoding, "encoding", "e", "", "how the value is decoded: utf-8, ascii, base64, hex (default: the file-encoding tag, else utf-8)")

	g.AddCommand(set, show, list, listVersions, del, recoverCmd, purge, backup, restore, download)
	return g
}

func isASCII(b []byte) bool {
	for _, c := range b {
		if c > 0x7f {
			return false
		}
	}
	return true
}
