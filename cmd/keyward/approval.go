package main

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/spf13/cobra"
)

// approvalClient speaks the quorum approval API of a vault's data plane
// (docs/QUORUM.md): list, show, approve and reject approval requests.
type approvalClient struct {
	getenv     func(string) string
	devJSON    string
	vault      string
	vaultURL   string
	authority  string
	tenant     string
	clientID   string
	secretFile string
	caFile     string
	token      string
	http       *http.Client
	// tenantLevel: the management host's tenant-level approvals
	// (…/providers/Keyward.Quorum/approvals) instead of a vault's.
	tenantLevel bool
	mgmtURL     string
	base        string // where /approvals is
	apiVersion  string
}

// approvalDev is the part of dev.json these commands read.
type approvalDev struct {
	TenantID      string `json:"tenant_id"`
	ClientID      string `json:"client_id"`
	ClientSecret  string `json:"client_secret"`
	AuthorityHost string `json:"authority_host"`
	VaultURL      string `json:"vault_url"`
	ManagementURL string `json:"management_url"`
	CAFile        string `json:"ca_file"`
}

func newApprovalCmd(getenv func(string) string, stdout io.Writer) *cobra.Command {
	ac := &approvalClient{getenv: getenv}
	cmd := &cobra.Command{
		Use:   "approval",
		Short: "Quorum approval requests of a vault, a pool or the tenant (docs/QUORUM.md)",
		Long: `List, show, approve and reject the quorum approval requests of a vault.

The vault is --vault-url, or --vault NAME on the host of $KEYWARD_VAULT_URL or
the dev server's vault_url (--dev-json). --tenant-level works on the tenant's
requests instead (a seal, a keymgmt credentials change, a role assignment above
a vault, a deleted vault's purge, a pool's delete or purge), decided on the
management host: --management-url, $KEYWARD_MANAGEMENT_URL or the dev server's
management_url. Credentials: client credentials
(--tenant, --client-id and KEYWARD_CLIENT_SECRET or --client-secret-file,
--authority or $KEYWARD_AUTHORITY_HOST), a token in $KEYWARD_TOKEN, or
--dev-json for all of them. Output is JSON.`,
		SilenceUsage: true,
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&ac.devJSON, "dev-json", "", "a dev server's dev.json (address, CA, credentials)")
	pf.StringVar(&ac.vault, "vault", "", "vault name")
	pf.StringVar(&ac.vaultURL, "vault-url", "", "vault URL (https://{vault}.vault.{suffix}[:port])")
	pf.StringVar(&ac.authority, "authority", "", "token service URL")
	pf.StringVar(&ac.tenant, "tenant", "", "tenant ID")
	pf.StringVar(&ac.clientID, "client-id", "", "client ID")
	pf.StringVar(&ac.secretFile, "client-secret-file", "", "file holding the client secret")
	pf.StringVar(&ac.caFile, "ca-file", "", "PEM CA certificates to trust")
	pf.BoolVar(&ac.tenantLevel, "tenant-level", false, "the tenant-level requests, on the management host")
	pf.StringVar(&ac.mgmtURL, "management-url", "", "management URL (https://management.{suffix}[:port]) for --tenant-level")

	call := func(method, path string) func(*cobra.Command, []string) error {
		return func(c *cobra.Command, a []string) error {
			var out any
			if err := ac.call(c.Context(), method, path, &out); err != nil {
				return err
			}
			enc := json.NewEncoder(stdout)
			enc.SetIndent("", "  ")
			return enc.Encode(out)
		}
	}
	var state string
	list := &cobra.Command{Use: "list", Short: "Approval requests you made or may decide", Args: cobra.NoArgs,
		RunE: func(c *cobra.Command, a []string) error {
			p := "/approvals"
			if state != "" {
				p += "?state=" + url.QueryEscape(state)
			}
			return call(http.MethodGet, p)(c, a)
		}}
	list.Flags().StringVar(&state, "state", "", "only requests in this state (Pending, Executed, Rejected, Expired, …)")
	one := func(use, short, method, suffix string) *cobra.Command {
		return &cobra.Command{Use: use + " ID", Short: short, Args: cobra.ExactArgs(1), RunE: func(c *cobra.Command, a []string) error {
			return call(method, "/approvals/"+url.PathEscape(a[0])+suffix)(c, a)
		}}
	}
	cmd.AddCommand(list,
		one("show", "Show an approval request", http.MethodGet, ""),
		one("approve", "Approve a request (the approval that meets the quorum runs the operation, as its requester)", http.MethodPost, "/approve"),
		one("reject", "Reject a request (one rejection rejects it)", http.MethodPost, "/reject"))
	return cmd
}

// vaultResource is the token audience of the vault data plane a vault URL
// is on: https://{vault}.vault.{suffix}[:port] → https://vault.{suffix}[:port].
func vaultResource(vaultURL string) (string, error) {
	u, err := url.Parse(vaultURL)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return "", fmt.Errorf("vault URL %q is not https://{vault}.vault.{suffix}", vaultURL)
	}
	_, rest, ok := strings.Cut(u.Host, ".")
	if !ok || !strings.HasPrefix(rest, "vault.") && !strings.HasPrefix(rest, "managedhsm.") {
		return "", fmt.Errorf("vault URL %q is not https://{vault}.vault.{suffix} or https://{pool}.managedhsm.{suffix}", vaultURL)
	}
	return "https://" + rest, nil
}

// setup resolves the vault URL, TLS and token.
func (ac *approvalClient) setup(ctx context.Context) error {
	var dev approvalDev
	if ac.devJSON != "" {
		raw, err := os.ReadFile(ac.devJSON)
		if err != nil {
			return err
		}
		if err := json.Unmarshal(raw, &dev); err != nil {
			return fmt.Errorf("%s: %w", ac.devJSON, err)
		}
	}
	var resource string
	if ac.tenantLevel {
		if ac.vault != "" || ac.vaultURL != "" {
			return errors.New("--tenant-level works on the management host: no --vault or --vault-url")
		}
		m := strings.TrimSuffix(cmp.Or(ac.mgmtURL, ac.getenv("KEYWARD_MANAGEMENT_URL"), dev.ManagementURL), "/")
		u, err := url.Parse(m)
		if m == "" || err != nil || u.Scheme != "https" || u.Host == "" || u.Path != "" {
			return fmt.Errorf("no management URL (https://management.{suffix}[:port]): --management-url, KEYWARD_MANAGEMENT_URL or --dev-json; got %q", m)
		}
		resource, ac.base, ac.apiVersion = m, m+"/providers/Keyward.Quorum", "2026-01-01"
	} else {
		base := strings.TrimSuffix(cmp.Or(ac.vaultURL, ac.getenv("KEYWARD_VAULT_URL"), dev.VaultURL), "/")
		if base == "" {
			return errors.New("no vault: --vault-url, KEYWARD_VAULT_URL or --dev-json")
		}
		if ac.vault != "" && ac.vaultURL == "" {
			u, err := url.Parse(base)
			if err != nil {
				return err
			}
			_, rest, _ := strings.Cut(u.Host, ".")
			base = "https://" + ac.vault + "." + rest
		}
		ac.vaultURL = base
		var err error
		if resource, err = vaultResource(base); err != nil {
			return err
		}
		ac.base, ac.apiVersion = base, "7.5"
	}
	tlsCfg, err := clientTLS(cmp.Or(ac.caFile, dev.CAFile), ac.getenv)
	if err != nil {
		return err
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	ac.http = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{TLSClientConfig: tlsCfg, Proxy: http.ProxyFromEnvironment,
		// *.localhost names (a dev server's vaults) are loopback, as in
		// internal/cli's transport.
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			host, port, err := net.SplitHostPort(addr)
			if err == nil && (host == "localhost" || strings.HasSuffix(host, ".localhost")) {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
			return dialer.DialContext(ctx, network, addr)
		}}}
	if ac.token = ac.getenv("KEYWARD_TOKEN"); ac.token != "" && ac.devJSON == "" {
		return nil
	}
	tenant := cmp.Or(ac.tenant, ac.getenv("KEYWARD_TENANT_ID"), dev.TenantID)
	clientID := cmp.Or(ac.clientID, ac.getenv("KEYWARD_CLIENT_ID"), dev.ClientID)
	secret := cmp.Or(ac.getenv("KEYWARD_CLIENT_SECRET"), dev.ClientSecret)
	if ac.secretFile != "" {
		b, err := os.ReadFile(ac.secretFile)
		if err != nil {
			return err
		}
		secret = strings.TrimSpace(string(b))
	}
	authority := strings.TrimSuffix(cmp.Or(ac.authority, ac.getenv("KEYWARD_AUTHORITY_HOST"), dev.AuthorityHost), "/")
	if tenant == "" || clientID == "" || secret == "" || authority == "" {
		return errors.New("no credentials: client credentials (--tenant, --client-id, KEYWARD_CLIENT_SECRET, --authority), KEYWARD_TOKEN or --dev-json")
	}
	tok, err := clientCredentialsToken(ctx, ac.http, authority, tenant, clientID, secret, resource)
	if err != nil {
		return err
	}
	ac.token = tok
	return nil
}

func (ac *approvalClient) call(ctx context.Context, method, path string, out any) error {
	if err := ac.setup(ctx); err != nil {
		return err
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	return callJSON(ctx, ac.http, method, ac.base+path+sep+"api-version="+ac.apiVersion, path, ac.token, nil, out)
}
