package main

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// keymgmtClient speaks Vault's keymgmt API (docs/KEYMGMT.md) for people
// without Vault's CLI.
type keymgmtClient struct {
	getenv     func(string) string
	devJSON    string
	address    string
	token      string
	tenant     string
	clientID   string
	secretFile string
	caFile     string
	http       *http.Client
}

// keymgmtDev is the part of dev.json these commands read.
type keymgmtDev struct {
	TenantID           string `json:"tenant_id"`
	ClientID           string `json:"client_id"`
	ClientSecret       string `json:"client_secret"`
	AuthorityHost      string `json:"authority_host"`
	ManagementResource string `json:"management_resource"`
	CAFile             string `json:"ca_file"`
	KeymgmtAddress     string `json:"keymgmt_address"`
}

func newKeyMgmtCmd(getenv func(string) string, stdout io.Writer) *cobra.Command {
	kc := &keymgmtClient{getenv: getenv}
	cmd := &cobra.Command{
		Use:   "keymgmt",
		Short: "Central keys distributed to cloud KMSs (Vault's Key Management engine API)",
		Long: `Manage the Key Management engine (docs/KEYMGMT.md): keys held centrally,
KMS providers (azurekeyvault, awskms), distributions and rotation.

The address is --address, $KEYWARD_KEYMGMT_ADDR or $VAULT_ADDR; the token
--token or $VAULT_TOKEN, or one obtained with client credentials (--tenant,
--client-id and KEYWARD_CLIENT_SECRET or --client-secret-file); or
--dev-json pointing at a dev server's dev.json for all of them. Output is
the response's "data" as JSON.`,
		SilenceUsage: true,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&kc.devJSON, "dev-json", "", "a dev server's dev.json (address, credentials, CA)")
	pf.StringVar(&kc.address, "address", "", "keymgmt address (env KEYWARD_KEYMGMT_ADDR or VAULT_ADDR)")
	pf.StringVar(&kc.token, "token", "", "access token (env VAULT_TOKEN)")
	pf.StringVar(&kc.tenant, "tenant", "", "tenant ID (env KEYWARD_TENANT_ID)")
	pf.StringVar(&kc.clientID, "client-id", "", "client ID (env KEYWARD_CLIENT_ID)")
	pf.StringVar(&kc.secretFile, "client-secret-file", "", "file holding the client secret (or env KEYWARD_CLIENT_SECRET)")
	pf.StringVar(&kc.caFile, "ca-file", "", "PEM CA certificates to trust (env VAULT_CACERT or KEYWARD_CACERT)")

	do := func(method, path string, body map[string]any) func(*cobra.Command, []string) error {
		return func(c *cobra.Command, _ []string) error { return kc.do(c.Context(), stdout, method, path, body) }
	}
	simple := func(use, short string, n int, run func(c *cobra.Command, a []string) error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(n), RunE: run}
	}

	// keymgmt key …
	key := &cobra.Command{Use: "key", Short: "Central keys"}
	var typ string
	create := simple("create NAME", "Create a key (--type aes256-gcm96, rsa-2048|3072|4096, ecdsa-p256|p384|p521)", 1, func(c *cobra.Command, a []string) error {
		return do(http.MethodPost, "/key/"+url.PathEscape(a[0]), map[string]any{"type": typ})(c, a)
	})
	create.Flags().StringVar(&typ, "type", "rsa-2048", "key type")
	var minV int
	var delAllowed string
	update := simple("update NAME", "Set --min-enabled-version and --deletion-allowed", 1, func(c *cobra.Command, a []string) error {
		body := map[string]any{}
		if c.Flags().Changed("min-enabled-version") {
			body["min_enabled_version"] = minV
		}
		if delAllowed != "" {
			body["deletion_allowed"] = delAllowed
		}
		if len(body) == 0 {
			return errors.New("nothing to update: give --min-enabled-version or --deletion-allowed")
		}
		return do(http.MethodPost, "/key/"+url.PathEscape(a[0]), body)(c, a)
	})
	update.Flags().IntVar(&minV, "min-enabled-version", 0, "oldest version that stays enabled (0: all)")
	update.Flags().StringVar(&delAllowed, "deletion-allowed", "", "true or false")
	key.AddCommand(create, update,
		simple("read NAME", "Show a key: versions and public keys", 1, func(c *cobra.Command, a []string) error {
			return do(http.MethodGet, "/key/"+url.PathEscape(a[0]), nil)(c, a)
		}),
		simple("list", "List keys", 0, func(c *cobra.Command, a []string) error { return do("LIST", "/key", nil)(c, a) }),
		simple("delete NAME", "Delete a key (deletion_allowed, distributed nowhere)", 1, func(c *cobra.Command, a []string) error {
			return do(http.MethodDelete, "/key/"+url.PathEscape(a[0]), nil)(c, a)
		}),
		simple("kms NAME", "List the KMS providers a key is distributed to", 1, func(c *cobra.Command, a []string) error {
			return do("LIST", "/key/"+url.PathEscape(a[0])+"/kms", nil)(c, a)
		}),
	)

	// keymgmt kms …
	kms := &cobra.Command{Use: "kms", Short: "KMS providers and what is distributed to them"}
	var provider, collection string
	var creds []string
	write := simple("write NAME", "Create or update a KMS provider", 1, func(c *cobra.Command, a []string) error {
		body := map[string]any{}
		if provider != "" {
			body["provider"] = provider
		}
		if collection != "" {
			body["key_collection"] = collection
		}
		if len(creds) > 0 {
			body["credentials"] = creds
		}
		return do(http.MethodPut, "/kms/"+url.PathEscape(a[0]), body)(c, a)
	})
	write.Flags().StringVar(&provider, "provider", "", "azurekeyvault or awskms")
	write.Flags().StringVar(&collection, "key-collection", "", "vault name (azurekeyvault) or region (awskms)")
	write.Flags().StringArrayVar(&creds, "credential", nil, "NAME=VALUE, repeated (client_id, client_secret, tenant_id, authority_host, vault_url, ca_cert; access_key, secret_key, session_token, endpoint)")
	kms.AddCommand(write,
		simple("read NAME", "Show a KMS provider (never its credentials)", 1, func(c *cobra.Command, a []string) error {
			return do(http.MethodGet, "/kms/"+url.PathEscape(a[0]), nil)(c, a)
		}),
		simple("list", "List KMS providers", 0, func(c *cobra.Command, a []string) error { return do("LIST", "/kms", nil)(c, a) }),
		simple("delete NAME", "Delete a KMS provider (nothing distributed to it)", 1, func(c *cobra.Command, a []string) error {
			return do(http.MethodDelete, "/kms/"+url.PathEscape(a[0]), nil)(c, a)
		}),
		simple("keys KMS", "List the keys distributed to a KMS provider", 1, func(c *cobra.Command, a []string) error {
			return do("LIST", "/kms/"+url.PathEscape(a[0])+"/key", nil)(c, a)
		}),
		simple("key KMS KEY", "Show a distribution: versions in the target, state, last error", 2, func(c *cobra.Command, a []string) error {
			return do(http.MethodGet, "/kms/"+url.PathEscape(a[0])+"/key/"+url.PathEscape(a[1]), nil)(c, a)
		}),
		simple("remove KMS KEY", "Remove a key from a KMS provider (deleted there)", 2, func(c *cobra.Command, a []string) error {
			return do(http.MethodDelete, "/kms/"+url.PathEscape(a[0])+"/key/"+url.PathEscape(a[1]), nil)(c, a)
		}),
	)

	// keymgmt distribute KMS KEY, keymgmt rotate KEY
	var purpose, protection string
	distribute := simple("distribute KMS KEY", "Distribute a key to a KMS provider", 2, func(c *cobra.Command, a []string) error {
		return do(http.MethodPut, "/kms/"+url.PathEscape(a[0])+"/key/"+url.PathEscape(a[1]),
			map[string]any{"purpose": purpose, "protection": protection})(c, a)
	})
	distribute.Flags().StringVar(&purpose, "purpose", "", "comma-separated: encrypt, decrypt, sign, verify, wrap, unwrap")
	distribute.Flags().StringVar(&protection, "protection", "hsm", "hsm or software")
	rotate := simple("rotate KEY", "Rotate a key: a new version, delivered to every KMS it is distributed to", 1, func(c *cobra.Command, a []string) error {
		return do(http.MethodPost, "/key/"+url.PathEscape(a[0])+"/rotate", nil)(c, a)
	})
	cmd.AddCommand(key, kms, distribute, rotate)
	return cmd
}

// setup resolves address, TLS and token.
func (kc *keymgmtClient) setup(ctx context.Context) error {
	var dev keymgmtDev
	if kc.devJSON != "" {
		raw, err := os.ReadFile(kc.devJSON)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &dev); err != nil {
			return fmt.Errorf("%s: %w", kc.devJSON, err)
		}
	}
	kc.address = strings.TrimSuffix(cmp.Or(kc.address, kc.getenv("KEYWARD_KEYMGMT_ADDR"), dev.KeymgmtAddress, kc.getenv("VAULT_ADDR")), "/")
	if kc.address == "" {
		return errors.New("no keymgmt address: --address, KEYWARD_KEYMGMT_ADDR, VAULT_ADDR or --dev-json")
	}
	tlsCfg, err := clientTLS(cmp.Or(kc.caFile, dev.CAFile, kc.getenv("VAULT_CACERT")), kc.getenv)
	if err != nil {
		return err
	}
	kc.http = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment}}
	if kc.token = cmp.Or(kc.token, kc.getenv("VAULT_TOKEN")); kc.token != "" && kc.devJSON == "" {
		return nil
	}
	tenant := cmp.Or(kc.tenant, kc.getenv("KEYWARD_TENANT_ID"), dev.TenantID)
	clientID := cmp.Or(kc.clientID, kc.getenv("KEYWARD_CLIENT_ID"), dev.ClientID)
	secret := cmp.Or(kc.getenv("KEYWARD_CLIENT_SECRET"), dev.ClientSecret)
	if kc.secretFile != "" {
		b, err := os.ReadFile(kc.secretFile)
		if err != nil {
			return err
		}
		secret = strings.TrimSpace(string(b))
	}
	if tenant == "" || clientID == "" || secret == "" {
		return errors.New("no token: --token, VAULT_TOKEN, client credentials (--tenant, --client-id, KEYWARD_CLIENT_SECRET) or --dev-json")
	}
	resource, authority := dev.ManagementResource, cmp.Or(dev.AuthorityHost, kc.address+"/")
	if resource == "" {
		var st sealStatus
		if err := callJSON(ctx, kc.http, http.MethodGet, kc.address+"/sys/seal-status", "/sys/seal-status", "", nil, &st); err != nil {
			return err
		}
		resource = st.ManagementResource
	}
	tok, err := clientCredentialsToken(ctx, kc.http, authority, tenant, clientID, secret, resource)
	if err != nil {
		return err
	}
	kc.token = tok
	return nil
}

// do sends one request and prints the response's data.
func (kc *keymgmtClient) do(ctx context.Context, stdout io.Writer, method, path string, body map[string]any) error {
	if err := kc.setup(ctx); err != nil {
		return err
	}
	var rd io.Reader
	if body != nil {
		raw, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(raw)
	}
	req, err := http.NewRequestWithContext(ctx, method, kc.address+"/v1/keymgmt"+path, rd)
	if err != nil {
		return err
	}
	req.Header.Set("X-Vault-Token", kc.token)
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := kc.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(resp.Body, 4<<20))
	if err != nil {
		return err
	}
	if resp.StatusCode == http.StatusNotFound && method == "LIST" {
		fmt.Fprintln(stdout, "[]")
		return nil
	}
	if resp.StatusCode >= 300 {
		var e struct {
			Errors []string `json:"errors"`
		}
		if json.Unmarshal(raw, &e) == nil && len(e.Errors) > 0 {
			return fmt.Errorf("%s %s: %s", method, path, strings.Join(e.Errors, "; "))
		}
		return fmt.Errorf("%s %s: %s", method, path, resp.Status)
	}
	if resp.StatusCode == http.StatusNoContent || len(bytes.TrimSpace(raw)) == 0 {
		return nil
	}
	var env struct {
		Data json.RawMessage `json:"data"`
	}
	if err := json.Unmarshal(raw, &env); err != nil {
		return err
	}
	var pretty bytes.Buffer
	if method == "LIST" {
		var l struct {
			Keys []string `json:"keys"`
		}
		if err := json.Unmarshal(env.Data, &l); err != nil {
			return err
		}
		out, _ := json.MarshalIndent(l.Keys, "", "  ")
		pretty.Write(out)
	} else if err := json.Indent(&pretty, env.Data, "", "  "); err != nil {
		return err
	}
	fmt.Fprintln(stdout, pretty.String())
	return nil
}
