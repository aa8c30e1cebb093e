package cli

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/spf13/cobra"
)

// keywardCLIClientID is the public client `keyward login` signs users in
// as (identity.KeywardCLIClientID).
const keywardCLIClientID = "6b657977-6172-6400-636c-690000000001"

// cachedCredential keeps access tokens in a 0600 file so one sign-in
// serves many commands (what az's token cache does).
type cachedCredential struct {
	inner azcore.TokenCredential
	path  string
	key   string
	mu    sync.Mutex
}

type cachedToken struct {
	Token     string    `json:"access_token"`
	ExpiresOn time.Time `json:"expires_on"`
}

func (c *cachedCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	key := c.key + "|" + opts.TenantID + "|" + strings.Join(opts.Scopes, " ")
	cache := map[string]cachedToken{}
	if raw, err := os.ReadFile(c.path); err == nil {
		_ = json.Unmarshal(raw, &cache) // a damaged cache is refilled
	}
	if t, ok := cache[key]; ok && time.Until(t.ExpiresOn) > 5*time.Minute {
		return azcore.AccessToken{Token: t.Token, ExpiresOn: t.ExpiresOn}, nil
	}
	tok, err := c.inner.GetToken(ctx, opts)
	if err != nil {
		return tok, err
	}
	for k, t := range cache {
		if time.Now().After(t.ExpiresOn) {
			delete(cache, k)
		}
	}
	cache[key] = cachedToken{Token: tok.Token, ExpiresOn: tok.ExpiresOn}
	if err := writePrivate(c.path, cache); err != nil {
		return tok, fmt.Errorf("token cache: %w", err)
	}
	return tok, nil
}

// deviceCredential signs a user in with the device authorization grant:
// the user opens the verification page and signs in with password and
// TOTP. Keyward issues no refresh tokens, so each resource (management,
// vault) is one sign-in, cached until it expires.
type deviceCredential struct {
	o  IO
	p  *Profile
	hc *http.Client
}

func (d *deviceCredential) GetToken(ctx context.Context, opts policy.TokenRequestOptions) (azcore.AccessToken, error) {
	tenant := cmp.Or(opts.TenantID, d.p.TenantID)
	base := strings.TrimRight(d.p.AuthorityHost, "/") + "/" + url.PathEscape(tenant)
	post := func(path string, form url.Values, out any) (int, error) {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+path, strings.NewReader(form.Encode()))
		if err != nil {
			return 0, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		resp, err := d.hc.Do(req)
		if err != nil {
			return 0, err
		}
		defer resp.Body.Close()
		return resp.StatusCode, json.NewDecoder(io.LimitReader(resp.Body, 1<<20)).Decode(out)
	}
	var dc struct {
		DeviceCode string `json:"device_code"`
		Message    string `json:"message"`
		Interval   int    `json:"interval"`
		ExpiresIn  int    `json:"expires_in"`
		Error      string `json:"error_description"`
	}
	st, err := post("/oauth2/v2.0/devicecode", url.Values{"client_id": {keywardCLIClientID}, "scope": {strings.Join(opts.Scopes, " ")}}, &dc)
	if err != nil {
		return azcore.AccessToken{}, fmt.Errorf("device code: %w", err)
	}
	if st != http.StatusOK {
		return azcore.AccessToken{}, fmt.Errorf("device code: %s", dc.Error)
	}
	fmt.Fprintf(d.o.Stderr, "%s (resource %s)\n", dc.Message, resourceOf(opts.Scopes[0]))
	deadline := time.Now().Add(time.Duration(dc.ExpiresIn) * time.Second)
	for time.Now().Before(deadline) {
		select {
		case <-ctx.Done():
			return azcore.AccessToken{}, ctx.Err()
		case <-time.After(time.Duration(max(dc.Interval, 1)) * time.Second):
		}
		var tr struct {
			AccessToken string `json:"access_token"`
			ExpiresIn   int    `json:"expires_in"`
			Error       string `json:"error"`
			Description string `json:"error_description"`
		}
		st, err := post("/oauth2/v2.0/token", url.Values{"grant_type": {"urn:ietf:params:oauth:grant-type:device_code"},
			"client_id": {keywardCLIClientID}, "device_code": {dc.DeviceCode}}, &tr)
		if err != nil {
			return azcore.AccessToken{}, err
		}
		if st == http.StatusOK {
			return azcore.AccessToken{Token: tr.AccessToken, ExpiresOn: time.Now().Add(time.Duration(tr.ExpiresIn) * time.Second)}, nil
		}
		if tr.Error != "authorization_pending" && tr.Error != "slow_down" {
			return azcore.AccessToken{}, fmt.Errorf("sign-in: %s: %s", tr.Error, tr.Description)
		}
	}
	return azcore.AccessToken{}, errors.New("the device code expired before the sign-in finished")
}

// NewLoginCmd is `keyward login`: az login's flags for a Keyward server.
func NewLoginCmd(o IO) *cobra.Command {
	var (
		devPath, tenant, user, password, certPath                  string
		authority, mgmtURL, mgmtResource, suffix, subscription, ca string
		sp, identity                                               bool
		output, query                                              string
	)
	cmd := &cobra.Command{
		Use:   "login",
		Short: "Sign in to a Keyward server (device code, service principal or managed identity)",
		Long: `Sign in and save the profile under the user's config directory
($KEYWARD_CONFIG_DIR or ~/.config/keyward; profile.json and tokens.json, mode 0600).

  keyward login --dev-json DATA/dev.json            the dev server and its service principal
  keyward login --service-principal -u APPID -p SECRET --tenant T ...
  keyward login --service-principal -u APPID --certificate cert.pem --tenant T ...
  keyward login --identity [-u CLIENTID]            managed identity (IDENTITY_ENDPOINT, IDENTITY_HEADER)
  keyward login --tenant T ...                      a user: device code, password and TOTP in a browser

Where the server is comes from --dev-json or --authority-host, --management-url,
--vault-dns-suffix, --subscription and --ca-file.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			p := &Profile{}
			if devPath != "" {
				var err error
				if p, err = readDevJSON(devPath); err != nil {
					return err
				}
			}
			p.TenantID = cmp.Or(tenant, p.TenantID, o.Getenv("AZURE_TENANT_ID"))
			p.AuthorityHost = cmp.Or(authority, p.AuthorityHost, o.Getenv("AZURE_AUTHORITY_HOST"))
			p.ManagementURL = cmp.Or(mgmtURL, p.ManagementURL, o.Getenv("KEYWARD_MANAGEMENT_URL"))
			p.ManagementResource = cmp.Or(mgmtResource, p.ManagementResource, p.ManagementURL)
			p.VaultDNSSuffix = cmp.Or(suffix, p.VaultDNSSuffix, o.Getenv("KEYWARD_VAULT_DNS_SUFFIX"))
			p.SubscriptionID = cmp.Or(subscription, p.SubscriptionID, o.Getenv("AZURE_SUBSCRIPTION_ID"))
			p.CAFile = cmp.Or(ca, p.CAFile, o.Getenv("KEYWARD_CACERT"))
			if p.CAFile != "" {
				if abs, err := filepath.Abs(p.CAFile); err == nil {
					p.CAFile = abs
				}
			}
			switch {
			case sp && identity:
				return errors.New("--service-principal and --identity exclude each other")
			case sp:
				if user == "" {
					return errors.New("--service-principal needs --username (-u) APPID")
				}
				p.ClientID, p.ClientSecret, p.CertificatePath = user, "", ""
				switch {
				case certPath != "":
					abs, err := filepath.Abs(certPath)
					if err != nil {
						return err
					}
					p.Kind, p.CertificatePath = "certificate", abs
				case password != "" || o.Getenv("AZURE_CLIENT_SECRET") != "":
					p.Kind, p.ClientSecret = "secret", cmp.Or(password, o.Getenv("AZURE_CLIENT_SECRET"))
				default:
					return errors.New("--service-principal needs --password (-p) SECRET, $AZURE_CLIENT_SECRET or --certificate PEM")
				}
			case identity:
				p.Kind, p.ClientID, p.ClientSecret = "identity", user, ""
			case devPath != "":
				// the dev service principal
			default:
				p.Kind, p.ClientID, p.ClientSecret, p.User = "user", keywardCLIClientID, "", user
			}
			if p.TenantID == "" && p.Kind != "identity" {
				return errors.New("--tenant is required")
			}
			if !validURL(p.AuthorityHost) || p.VaultDNSSuffix == "" {
				return errors.New("--authority-host (an https URL) and --vault-dns-suffix are required (or --dev-json)")
			}
			dir, err := configDir(o.Getenv)
			if err != nil {
				return err
			}
			hc, err := transport(p)
			if err != nil {
				return err
			}
			inner, err := credential(o, p, hc)
			if err != nil {
				return err
			}
			// A fresh login starts a fresh token cache.
			if err := os.Remove(filepath.Join(dir, "tokens.json")); err != nil && !errors.Is(err, os.ErrNotExist) {
				return err
			}
			cred := &cachedCredential{inner: inner, path: filepath.Join(dir, "tokens.json"), key: p.Kind + ":" + p.ClientID + p.User}
			s := &session{p: p, cred: cred, transport: hc}
			subs, err := s.subscriptions(cmd.Context())
			if err != nil {
				return fmt.Errorf("sign-in failed: %w", err)
			}
			if p.SubscriptionID == "" && len(subs) > 0 {
				p.SubscriptionID, _ = subs[0]["id"].(string)
			}
			if err := writePrivate(filepath.Join(dir, "profile.json"), p); err != nil {
				return err
			}
			for _, sub := range subs {
				sub["isDefault"] = sub["id"] == p.SubscriptionID
			}
			return (&printer{o: o, format: output, query: query}).print(toAny(subs), nil)
		},
	}
	f := cmd.Flags()
	f.StringVar(&devPath, "dev-json", "", "a dev server's dev.json: its URLs, CA and service principal")
	f.BoolVar(&sp, "service-principal", false, "sign in as a service principal (--username APPID with --password or --certificate)")
	f.BoolVar(&identity, "identity", false, "sign in with the managed identity of this workload (IDENTITY_ENDPOINT/IDENTITY_HEADER or MSI_ENDPOINT)")
	f.StringVarP(&user, "username", "u", "", "the service principal's application ID, the user-assigned identity's client ID, or the user's name")
	f.StringVarP(&password, "password", "p", "", "the service principal's client secret (or $AZURE_CLIENT_SECRET: keeps it out of the process list)")
	f.StringVar(&certPath, "certificate", "", "PEM file with the service principal's certificate and private key")
	f.StringVarP(&tenant, "tenant", "t", "", "tenant ID")
	f.StringVar(&authority, "authority-host", "", "the token service, https://login.{suffix}[:port]/ (env AZURE_AUTHORITY_HOST)")
	f.StringVar(&mgmtURL, "management-url", "", "the management plane, https://management.{suffix}[:port]/ (env KEYWARD_MANAGEMENT_URL)")
	f.StringVar(&mgmtResource, "management-resource", "", "the management plane's token audience (default: --management-url)")
	f.StringVar(&suffix, "vault-dns-suffix", "", "vault.{suffix}[:port] (env KEYWARD_VAULT_DNS_SUFFIX)")
	f.StringVar(&subscription, "subscription", "", "default subscription ID (default: the first one listed)")
	f.StringVar(&ca, "ca-file", "", "PEM CA certificate to trust (env KEYWARD_CACERT)")
	f.StringVarP(&output, "output", "o", "json", "output format: json, jsonc, table, tsv, yaml, yamlc, none")
	f.StringVar(&query, "query", "", "JMESPath query string")
	return cmd
}

// NewLogoutCmd is `keyward logout`: forget the saved profile and tokens.
func NewLogoutCmd(o IO) *cobra.Command {
	return &cobra.Command{
		Use:   "logout",
		Short: "Forget the saved profile and cached tokens",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			dir, err := configDir(o.Getenv)
			if err != nil {
				return err
			}
			for _, f := range []string{"profile.json", "tokens.json"} {
				if err := os.Remove(filepath.Join(dir, f)); err != nil && !errors.Is(err, os.ErrNotExist) {
					return err
				}
			}
			return nil
		},
	}
}

// subscriptions lists the subscriptions the signed-in principal sees, in
// az login's shape; without a management URL it proves the sign-in with
// a vault token and lists the profile's subscription.
func (s *session) subscriptions(ctx context.Context) ([]map[string]any, error) {
	userName, userType := s.p.ClientID, "servicePrincipal"
	if s.p.Kind == "user" {
		userName, userType = cmp.Or(s.p.User, "user"), "user"
	}
	entry := func(id, name, tenant string) map[string]any {
		return map[string]any{"cloudName": "Keyward", "homeTenantId": tenant, "id": id, "isDefault": false,
			"managedByTenants": []any{}, "name": name, "state": "Enabled", "tenantId": tenant,
			"user": map[string]any{"name": userName, "type": userType}}
	}
	if s.p.ManagementURL == "" {
		host := strings.SplitN(s.p.VaultDNSSuffix, "/", 2)[0]
		if _, err := s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"https://" + host + "/.default"}}); err != nil {
			return nil, err
		}
		return []map[string]any{entry(s.p.SubscriptionID, s.p.SubscriptionID, s.p.TenantID)}, nil
	}
	tok, err := s.cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{strings.TrimRight(cmp.Or(s.p.ManagementResource, s.p.ManagementURL), "/") + "/.default"}})
	if err != nil {
		return nil, err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, strings.TrimRight(s.p.ManagementURL, "/")+"/subscriptions?api-version=2022-12-01", nil)
	if err != nil {
		return nil, err
	}
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err := s.transport.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	var list struct {
		Value []struct {
			SubscriptionID string `json:"subscriptionId"`
			DisplayName    string `json:"displayName"`
			TenantID       string `json:"tenantId"`
		} `json:"value"`
	}
	if resp.StatusCode != http.StatusOK {
		return nil, fmt.Errorf("listing subscriptions: %s", resp.Status)
	}
	if err := json.NewDecoder(io.LimitReader(resp.Body, 4<<20)).Decode(&list); err != nil {
		return nil, err
	}
	out := []map[string]any{}
	for _, v := range list.Value {
		out = append(out, entry(v.SubscriptionID, v.DisplayName, cmp.Or(v.TenantID, s.p.TenantID)))
	}
	return out, nil
}
