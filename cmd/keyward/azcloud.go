package main

import (
	"cmp"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/keyward/keyward/internal/clientcfg"
	"github.com/spf13/cobra"
)

func newAzCloudCmd(getenv func(string) string, stdout io.Writer) *cobra.Command {
	var devJSON, name, authority, tenant, mgmtURL, mgmtResource, vaultURL string
	cmd := &cobra.Command{
		Use:   "az-cloud",
		Short: "Print the `az cloud register` command for this Keyward server",
		Long: `Print the Azure CLI command that registers a Keyward server as a cloud, for
az CLI 2.45 and later (see docs/CLIENTS.md for the whole setup):

  keyward az-cloud --dev-json DATA/dev.json
  az cloud register ...        # the printed line
  az cloud set --name keyward
  REQUESTS_CA_BUNDLE=ca.pem az login --service-principal -u ID -p SECRET --tenant TENANT

Values come from --dev-json or from the flags (env KEYWARD_AUTHORITY_URL,
KEYWARD_TENANT_ID).`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var d struct {
				TenantID           string `json:"tenant_id"`
				AuthorityHost      string `json:"authority_host"`
				VaultURL           string `json:"vault_url"`
				ManagementURL      string `json:"management_url"`
				ManagementResource string `json:"management_resource"`
			}
			if devJSON != "" {
				raw, err := os.ReadFile(devJSON)
				if err != nil {
					return err
				}
				if err := json.Unmarshal(raw, &d); err != nil {
					return fmt.Errorf("%s: %w", devJSON, err)
				}
			}
			authority = cmp.Or(authority, getenv("KEYWARD_AUTHORITY_URL"), d.AuthorityHost)
			tenant = cmp.Or(tenant, getenv("KEYWARD_TENANT_ID"), d.TenantID)
			mgmtURL = cmp.Or(mgmtURL, d.ManagementURL)
			vaultURL = cmp.Or(vaultURL, d.VaultURL)
			if authority == "" || tenant == "" || mgmtURL == "" || vaultURL == "" {
				return errors.New("give --dev-json, or --authority-host, --tenant, --management-url and --vault-url")
			}
			args, err := clientcfg.AzCloudRegister(name, authority, tenant, mgmtURL, cmp.Or(mgmtResource, d.ManagementResource), vaultURL)
			if err != nil {
				return err
			}
			_, err = fmt.Fprintln(stdout, "az "+strings.Join(args, " "))
			return err
		},
	}
	f := cmd.Flags()
	f.StringVar(&devJSON, "dev-json", "", "read the server's URLs and tenant from a dev server's dev.json")
	f.StringVar(&name, "name", "keyward", "the cloud's name in az")
	f.StringVar(&authority, "authority-host", "", "authority URL, https://host[:port]/ (env KEYWARD_AUTHORITY_URL)")
	f.StringVar(&tenant, "tenant", "", "tenant ID (env KEYWARD_TENANT_ID)")
	f.StringVar(&mgmtURL, "management-url", "", "management plane URL, https://management.{suffix}[:port]/")
	f.StringVar(&mgmtResource, "management-resource", "", "the management plane's token audience (default: the management URL)")
	f.StringVar(&vaultURL, "vault-url", "", "URL of any vault, https://{vault}.vault.{suffix}[:port]/ (gives the vault DNS suffix)")
	return cmd
}
