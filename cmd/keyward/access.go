package main

import (
	"cmp"
	"context"
	"crypto/rand"
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

// accessClient talks to the management plane (management.{suffix}) and
// the token service of a Keyward server, as an administrator.
type accessClient struct {
	oc      *operatorClient
	address string // where to connect: https://host:port
	mgmtURL string // https://management.{suffix}[:port]
	devJSON string
	getenv  func(string) string
	http    *http.Client
}

// devFile is the part of dev.json the access commands read.
type devFile struct {
	TenantID      string `json:"tenant_id"`
	ClientID      string `json:"client_id"`
	ClientSecret  string `json:"client_secret"`
	ManagementURL string `json:"management_url"`
	CAFile        string `json:"ca_file"`
	Listen        string `json:"listen"`
}

func newAccessCmd(getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	ac := &accessClient{getenv: getenv, oc: &operatorClient{getenv: getenv}}
	var caFile string
	var secretEnv string
	cmd := &cobra.Command{
		Use:   "access",
		Short: "Manage principals, credentials, role assignments and workload bindings",
		Long: `Manage who may do what (docs/ACCESS.md): service principals and their
secrets, certificates and federated credentials; users with TOTP; groups;
managed identities and workload bindings; trusted services; role
assignments at the four scopes; and device-code sign-in.

Credentials are an administrator's client credentials: --tenant,
--client-id and KEYWARD_CLIENT_SECRET (or --client-secret-file), or
--dev-json pointing at a dev server's dev.json.`,
		PersistentPreRunE: func(cmd *cobra.Command, _ []string) error {
			if ac.devJSON != "" {
				raw, err := os.ReadFile(ac.devJSON)
				if err != nil {
					return err
				}
				var d devFile
				if err := json.Unmarshal(raw, &d); err != nil {
					return fmt.Errorf("%s: %w", ac.devJSON, err)
				}
				ac.oc.tenant = cmp.Or(ac.oc.tenant, d.TenantID)
				ac.oc.clientID = cmp.Or(ac.oc.clientID, d.ClientID)
				secretEnv = d.ClientSecret
				caFile = cmp.Or(caFile, d.CAFile)
				ac.mgmtURL = cmp.Or(ac.mgmtURL, d.ManagementURL)
				if ac.address == "" && d.Listen != "" {
					ac.address = "https://" + d.Listen
				}
			}
			ac.address = strings.TrimRight(cmp.Or(ac.address, getenv("KEYWARD_ADDR"), "https://localhost:8443"), "/")
			tlsCfg, err := clientTLS(caFile, getenv)
			if err != nil {
				return err
			}
			u, err := url.Parse(ac.address)
			if err != nil || u.Host == "" {
				return fmt.Errorf("address %q is not a URL", ac.address)
			}
			connect := u.Host
			if u.Port() == "" {
				connect += ":443"
			}
			// Every name (management.{suffix}, login.{suffix}) is dialled at
			// --address, so no DNS setup is needed.
			dialer := &net.Dialer{Timeout: 10 * time.Second}
			ac.http = &http.Client{Timeout: 60 * time.Second, Transport: &http.Transport{
				TLSClientConfig: tlsCfg,
				DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
					return dialer.DialContext(ctx, network, connect)
				}}}
			ac.oc.addr, ac.oc.http = ac.address, ac.http
			if secretEnv != "" && getenv("KEYWARD_CLIENT_SECRET") == "" && ac.oc.secretFile == "" {
				ac.oc.getenv = func(k string) string {
					if k == "KEYWARD_CLIENT_SECRET" {
						return secretEnv
					}
					return getenv(k)
				}
			}
			return nil
		},
	}
	pf := cmd.PersistentFlags()
	pf.StringVar(&ac.address, "address", "", "Keyward URL to connect to (env KEYWARD_ADDR, default https://localhost:8443)")
	pf.StringVar(&caFile, "ca-cert", "", "CA certificate to trust (env KEYWARD_CACERT)")
	pf.StringVar(&ac.mgmtURL, "management-url", "", "management plane URL (default: the server's management resource)")
	pf.StringVar(&ac.devJSON, "dev-json", "", "read address, CA and administrator credentials from a dev server's dev.json")
	pf.StringVar(&ac.oc.tenant, "tenant", "", "tenant ID (env KEYWARD_TENANT_ID)")
	pf.StringVar(&ac.oc.clientID, "client-id", "", "administrator client ID (env KEYWARD_CLIENT_ID)")
	pf.StringVar(&ac.oc.secretFile, "client-secret-file", "", "file holding the administrator client secret (or env KEYWARD_CLIENT_SECRET)")

	print := func(v any) error {
		raw, err := json.MarshalIndent(v, "", "  ")
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, string(raw))
		return err
	}
	dir := func(method, path string, in any) func(cmd *cobra.Command) error {
		return func(cmd *cobra.Command) error {
			var out any
			if err := ac.call(cmd.Context(), method, "/providers/Keyward.Directory/"+path, "2026-01-01", in, &out); err != nil {
				return err
			}
			if out == nil {
				return nil
			}
			return print(out)
		}
	}
	simple := func(use, short string, nargs int, fn func(cmd *cobra.Command, args []string) error) *cobra.Command {
		return &cobra.Command{Use: use, Short: short, Args: cobra.ExactArgs(nargs), RunE: fn}
	}

	// Service principals.
	sp := &cobra.Command{Use: "sp", Short: "Applications (service principals) and their credentials"}
	var days int
	secretCmd := simple("secret APPID", "Add a client secret (shown once)", 1, func(cmd *cobra.Command, a []string) error {
		return dir(http.MethodPost, "servicePrincipals/"+url.PathEscape(a[0])+"/secrets", map[string]int{"expiresInDays": days})(cmd)
	})
	secretCmd.Flags().IntVar(&days, "days", 180, "secret lifetime in days (max 730)")
	var certFile string
	certCmd := simple("cert APPID", "Register a client certificate (PEM)", 1, func(cmd *cobra.Command, a []string) error {
		pem, err := os.ReadFile(certFile)
		if err != nil {
			return err
		}
		return dir(http.MethodPost, "servicePrincipals/"+url.PathEscape(a[0])+"/certificates", map[string]string{"certificate": string(pem)})(cmd)
	})
	certCmd.Flags().StringVar(&certFile, "file", "", "PEM certificate file")
	var issuer, subject, audience string
	ficCmd := simple("federated APPID NAME", "Trust an external OIDC issuer's tokens for one subject", 2, func(cmd *cobra.Command, a []string) error {
		return dir(http.MethodPut, "servicePrincipals/"+url.PathEscape(a[0])+"/federatedIdentityCredentials/"+url.PathEscape(a[1]),
			map[string]any{"issuer": issuer, "subject": subject, "audiences": []string{audience}})(cmd)
	})
	ficCmd.Flags().StringVar(&issuer, "issuer", "", "issuer URL (exactly the token's iss)")
	ficCmd.Flags().StringVar(&subject, "subject", "", "subject (exactly the token's sub)")
	ficCmd.Flags().StringVar(&audience, "audience", "api://AzureADTokenExchange", "audience")
	var off bool
	trustCmd := simple("trust APPID", "Mark a service trusted to bypass vault firewalls (bypass AzureServices)", 1, func(cmd *cobra.Command, a []string) error {
		return dir(http.MethodPut, "servicePrincipals/"+url.PathEscape(a[0])+"/trustedService", map[string]bool{"trusted": !off})(cmd)
	})
	trustCmd.Flags().BoolVar(&off, "off", false, "remove the trust")
	sp.AddCommand(
		simple("create NAME", "Create an application and its service principal", 1, func(cmd *cobra.Command, a []string) error {
			return dir(http.MethodPost, "servicePrincipals", map[string]string{"displayName": a[0]})(cmd)
		}),
		secretCmd, certCmd, ficCmd, trustCmd)

	// Users and groups.
	user := &cobra.Command{Use: "user", Short: "Users (password, TOTP)"}
	var displayName string
	userCreate := simple("create UPN", "Create a user; the password is read from stdin", 1, func(cmd *cobra.Command, a []string) error {
		pw, err := readSecret(stdin, stderr, "Password: ")
		if err != nil {
			return err
		}
		return dir(http.MethodPost, "users", map[string]string{"userPrincipalName": a[0], "displayName": cmp.Or(displayName, a[0]), "password": pw})(cmd)
	})
	userCreate.Flags().StringVar(&displayName, "display-name", "", "display name")
	user.AddCommand(userCreate, simple("totp OBJECTID", "Enroll a TOTP second factor (secret shown once)", 1, func(cmd *cobra.Command, a []string) error {
		return dir(http.MethodPost, "users/"+url.PathEscape(a[0])+"/totp", nil)(cmd)
	}))
	group := &cobra.Command{Use: "group", Short: "Groups (nested membership)"}
	group.AddCommand(
		simple("create NAME", "Create a group", 1, func(cmd *cobra.Command, a []string) error {
			return dir(http.MethodPost, "groups", map[string]string{"displayName": a[0]})(cmd)
		}),
		simple("add GROUP MEMBER", "Add a member (any principal, groups too)", 2, func(cmd *cobra.Command, a []string) error {
			return dir(http.MethodPut, "groups/"+url.PathEscape(a[0])+"/members/"+url.PathEscape(a[1]), nil)(cmd)
		}),
		simple("remove GROUP MEMBER", "Remove a member", 2, func(cmd *cobra.Command, a []string) error {
			return dir(http.MethodDelete, "groups/"+url.PathEscape(a[0])+"/members/"+url.PathEscape(a[1]), nil)(cmd)
		}))

	// Managed identities and workload bindings.
	mi := &cobra.Command{Use: "mi", Short: "Managed identities"}
	var miType, resID string
	miCreate := simple("create NAME", "Create a managed identity", 1, func(cmd *cobra.Command, a []string) error {
		return dir(http.MethodPost, "managedIdentities", map[string]string{"name": a[0], "type": miType, "resourceId": resID})(cmd)
	})
	miCreate.Flags().StringVar(&miType, "type", "UserAssigned", "UserAssigned or SystemAssigned")
	miCreate.Flags().StringVar(&resID, "resource-id", "", "ARM ID carried in tokens as xms_mirid")
	mi.AddCommand(miCreate)
	binding := &cobra.Command{Use: "binding", Short: "Workload bindings: how a workload gets its managed identities' tokens"}
	var identities, sources []string
	var headerless bool
	var hours int
	bCreate := simple("create NAME", "Bind a workload to managed identities; prints IDENTITY_ENDPOINT and IDENTITY_HEADER once", 1, func(cmd *cobra.Command, a []string) error {
		return dir(http.MethodPost, "workloadBindings", map[string]any{"name": a[0], "identities": identities,
			"allowedSources": sources, "headerless": headerless, "expiresInHours": hours})(cmd)
	})
	bCreate.Flags().StringSliceVar(&identities, "identity", nil, "client ID of a managed identity (repeatable; the first is the default)")
	bCreate.Flags().StringSliceVar(&sources, "source", nil, "IP address or CIDR the workload calls from (repeatable)")
	bCreate.Flags().BoolVar(&headerless, "headerless", false, "serve the IMDS and Cloud Shell shapes by source address alone (needs --source)")
	bCreate.Flags().IntVar(&hours, "expires-hours", 0, "expiry in hours (0: never)")
	binding.AddCommand(bCreate,
		simple("list", "List bindings", 0, func(cmd *cobra.Command, _ []string) error { return dir(http.MethodGet, "workloadBindings", nil)(cmd) }),
		simple("rotate ID", "Replace a binding's secret", 1, func(cmd *cobra.Command, a []string) error {
			return dir(http.MethodPost, "workloadBindings/"+url.PathEscape(a[0])+"/rotate", nil)(cmd)
		}),
		simple("delete ID", "Delete a binding", 1, func(cmd *cobra.Command, a []string) error {
			return dir(http.MethodDelete, "workloadBindings/"+url.PathEscape(a[0]), nil)(cmd)
		}))

	principal := &cobra.Command{Use: "principal", Short: "Any principal"}
	principal.AddCommand(
		simple("list", "List principals", 0, func(cmd *cobra.Command, _ []string) error { return dir(http.MethodGet, "principals", nil)(cmd) }),
		simple("delete OBJECTID", "Delete a principal: its tokens stop working at once", 1, func(cmd *cobra.Command, a []string) error {
			return dir(http.MethodDelete, "principals/"+url.PathEscape(a[0]), nil)(cmd)
		}))
	var jwksFile string
	issuerCmd := simple("issuer ISSUER", "Upload an external issuer's JWKS (air-gapped workload identity)", 1, func(cmd *cobra.Command, a []string) error {
		raw, err := os.ReadFile(jwksFile)
		if err != nil {
			return err
		}
		return dir(http.MethodPut, "issuers", map[string]any{"issuer": a[0], "jwks": json.RawMessage(raw)})(cmd)
	})
	issuerCmd.Flags().StringVar(&jwksFile, "jwks", "", "JWKS file (kubectl get --raw /openid/v1/jwks)")

	// Role assignments.
	role := &cobra.Command{Use: "role", Short: "Role assignments at /, subscription, resource group, vault or object scope"}
	var scope, roleName, principalID string
	assignCmd := simple("assign", "Assign a role", 0, func(cmd *cobra.Command, _ []string) error {
		id, err := ac.roleID(cmd.Context(), scope, roleName)
		if err != nil {
			return err
		}
		var out any
		body := map[string]any{"properties": map[string]string{"roleDefinitionId": id, "principalId": principalID}}
		if err := ac.call(cmd.Context(), http.MethodPut, strings.TrimSuffix(scope, "/")+"/providers/Microsoft.Authorization/roleAssignments/"+newID(), "2022-04-01", body, &out); err != nil {
			return err
		}
		return print(out)
	})
	assignCmd.Flags().StringVar(&scope, "scope", "", "ARM scope")
	assignCmd.Flags().StringVar(&roleName, "role", "", "role name or GUID")
	assignCmd.Flags().StringVar(&principalID, "principal", "", "principal object ID")
	listCmd := simple("list", "List role assignments that apply at a scope", 0, func(cmd *cobra.Command, _ []string) error {
		var out any
		if err := ac.call(cmd.Context(), http.MethodGet, strings.TrimSuffix(scope, "/")+"/providers/Microsoft.Authorization/roleAssignments", "2022-04-01", nil, &out); err != nil {
			return err
		}
		return print(out)
	})
	listCmd.Flags().StringVar(&scope, "scope", "", "ARM scope")
	delCmd := simple("delete NAME", "Delete a role assignment", 1, func(cmd *cobra.Command, a []string) error {
		return ac.call(cmd.Context(), http.MethodDelete, strings.TrimSuffix(scope, "/")+"/providers/Microsoft.Authorization/roleAssignments/"+url.PathEscape(a[0]), "2022-04-01", nil, nil)
	})
	delCmd.Flags().StringVar(&scope, "scope", "", "ARM scope")
	role.AddCommand(assignCmd, listCmd, delCmd)

	// Device-code sign-in.
	var resource string
	login := simple("login", "Sign in as a user (device code: password + TOTP in a browser) and print an access token", 0, func(cmd *cobra.Command, _ []string) error {
		tok, err := ac.deviceLogin(cmd.Context(), resource, stderr)
		if err != nil {
			return err
		}
		_, err = fmt.Fprintln(stdout, tok)
		return err
	})
	login.Flags().StringVar(&resource, "resource", "", "resource to get a token for (default: the management resource)")

	cmd.AddCommand(sp, user, group, mi, binding, principal, issuerCmd, role, login)
	return cmd
}

func newID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:16])
}

// managementURL is the management plane's base URL: --management-url, or
// the management resource the server announces.
func (ac *accessClient) managementURL(ctx context.Context) (string, error) {
	if ac.mgmtURL != "" {
		return strings.TrimRight(ac.mgmtURL, "/"), nil
	}
	var st sealStatus
	if err := ac.oc.call(ctx, http.MethodGet, "/sys/seal-status", "", nil, &st); err != nil {
		return "", err
	}
	ac.mgmtURL = strings.TrimRight(st.ManagementResource, "/")
	return ac.mgmtURL, nil
}

func (ac *accessClient) call(ctx context.Context, method, path, apiVersion string, in, out any) error {
	base, err := ac.managementURL(ctx)
	if err != nil {
		return err
	}
	tok, err := ac.oc.token(ctx)
	if err != nil {
		return err
	}
	return callJSON(ctx, ac.http, method, base+path+"?api-version="+apiVersion, path, tok, in, out)
}

// roleID resolves a role name or GUID to a role definition ID.
func (ac *accessClient) roleID(ctx context.Context, scope, role string) (string, error) {
	if role == "" || scope == "" {
		return "", errors.New("--scope and --role are required")
	}
	if len(role) == 36 && strings.Count(role, "-") == 4 {
		return "/providers/Microsoft.Authorization/roleDefinitions/" + role, nil
	}
	var out struct {
		Value []struct{ ID string } `json:"value"`
	}
	filter := url.QueryEscape("roleName eq '" + strings.ReplaceAll(role, "'", "") + "'")
	if err := ac.call(ctx, http.MethodGet, strings.TrimSuffix(scope, "/")+"/providers/Microsoft.Authorization/roleDefinitions", "2022-04-01&$filter="+filter, nil, &out); err != nil {
		return "", err
	}
	if len(out.Value) != 1 {
		return "", fmt.Errorf("no role named %q", role)
	}
	return out.Value[0].ID, nil
}

// deviceLogin runs the device authorization grant: the user opens the
// verification page and signs in with password and TOTP.
func (ac *accessClient) deviceLogin(ctx context.Context, resource string, prompt io.Writer) (string, error) {
	tenant := cmp.Or(ac.oc.tenant, ac.getenv("KEYWARD_TENANT_ID"))
	if tenant == "" {
		return "", errors.New("--tenant is required")
	}
	if resource == "" {
		base, err := ac.managementURL(ctx)
		if err != nil {
			return "", err
		}
		resource = base + "/"
	}
	const clientID = "6b657977-6172-6400-636c-690000000001" // identity.KeywardCLIClientID
	post := func(path string, form url.Values, out any) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, ac.address+"/"+url.PathEscape(tenant)+path, strings.NewReader(form.Encode()))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := ac.http.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		return resp.StatusCode, json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
	}
	scope := strings.TrimSuffix(resource, "/") + "/.default"
	if strings.HasSuffix(resource, "/") {
		scope = resource + ".default"
	}
	var dc struct {
		DeviceCode string `json:"device_code"`
		Message    string `json:"message"`
		Interval   int    `json:"interval"`
		ExpiresIn  int    `json:"expires_in"`
		Error      string `json:"error_description"`
	}
	if st, err := post("/oauth2/v2.0/devicecode", url.Values{"client_id": {clientID}, "scope": {scope}}, &dc); err != nil || st != http.StatusOK {
		return "", fmt.Errorf("device code: %v %s", err, dc.Error)
	}
	fmt.Fprintln(prompt, dc.Message)
	deadline := time.Now().Add(time.Duration(dc.ExpiresIn) * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(time.Duration(max(dc.Interval, 1)) * time.Second):
		}
		var tr struct {
			AccessToken string `json:"access_token"`
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		st, err := post("/oauth2/v2.0/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
			"client_id": {clientID}, "device_code": {dc.DeviceCode}}, &tr)
		if err != nil {
			return "", err
		}
		if st == http.StatusOK {
			return tr.AccessToken, nil
		}
		if tr.Error != "authorization_pending" {
			return "", fmt.Errorf("%s: %s", tr.Error, tr.Description)
		}
	}
	return "", errors.New("the device code expired")
}
