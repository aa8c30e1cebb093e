// Package cli is `keyward keyvault …` and `keyward login`: an az
// keyvault–shaped command line built on the official Azure SDK for Go
// clients (azsecrets, azkeys, azcertificates, armkeyvault,
// armauthorization), so the CLI is one more SDK client of Keyward
// (docs/CLI.md).
package cli

import (
	"cmp"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
)

// IO is what a command reads and writes: the process's environment and
// streams (tests pass their own).
type IO struct {
	Getenv func(string) string
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	// Terminal reports whether w is an interactive terminal (progress
	// bars are drawn only there); nil: never.
	Terminal func(w io.Writer) bool
}

func (o IO) terminal(w io.Writer) bool { return o.Terminal != nil && o.Terminal(w) }

// Profile is where a Keyward server is and who the CLI is there: what
// `keyward login` saves (profile.json, 0600) and what --dev-json and the
// AZURE_* variables supply.
type Profile struct {
	TenantID           string `json:"tenant_id"`
	AuthorityHost      string `json:"authority_host"`
	ManagementURL      string `json:"management_url"`
	ManagementResource string `json:"management_resource"`
	VaultDNSSuffix     string `json:"vault_dns_suffix"`
	SubscriptionID     string `json:"subscription_id"`
	ResourceGroup      string `json:"resource_group,omitempty"`
	Location           string `json:"location,omitempty"`
	CAFile             string `json:"ca_file,omitempty"`
	// Listen, when set, is where every request is connected (a dev
	// server's listener), whatever host the URL names.
	Listen string `json:"listen,omitempty"`

	// Kind is the credential: "secret", "certificate", "identity" or
	// "user" (device code).
	Kind            string `json:"kind"`
	ClientID        string `json:"client_id,omitempty"`
	ClientSecret    string `json:"client_secret,omitempty"`
	CertificatePath string `json:"certificate_path,omitempty"`
	User            string `json:"user,omitempty"`
}

// devJSON is the part of a dev server's dev.json the CLI reads.
type devJSON struct {
	TenantID           string `json:"tenant_id"`
	AuthorityHost      string `json:"authority_host"`
	ClientID           string `json:"client_id"`
	ClientSecret       string `json:"client_secret"`
	VaultURL           string `json:"vault_url"`
	VaultDNSSuffix     string `json:"vault_dns_suffix"`
	ManagementURL      string `json:"management_url"`
	ManagementResource string `json:"management_resource"`
	SubscriptionID     string `json:"subscription_id"`
	ResourceGroup      string `json:"resource_group"`
	Location           string `json:"location"`
	CAFile             string `json:"ca_file"`
	Listen             string `json:"listen"`
}

func readDevJSON(path string) (*Profile, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var d devJSON
	if err := json.Unmarshal(raw, &d); err != nil {
		return nil, fmt.Errorf("%s is not a dev.json: %w", path, err)
	}
	if d.TenantID == "" || d.AuthorityHost == "" || d.VaultDNSSuffix == "" {
		return nil, fmt.Errorf("%s lacks tenant_id, authority_host or vault_dns_suffix", path)
	}
	// The suffix with the port: https://{vault}.{suffix}:{port}/ is how
	// the vault URL names the port (dev.json's vault_dns_suffix has none).
	suffix := d.VaultDNSSuffix
	if u, err := url.Parse(d.VaultURL); err == nil && u.Port() != "" && !strings.Contains(suffix, ":") {
		suffix += ":" + u.Port()
	}
	return &Profile{TenantID: d.TenantID, AuthorityHost: d.AuthorityHost, ManagementURL: d.ManagementURL,
		ManagementResource: d.ManagementResource, VaultDNSSuffix: suffix, SubscriptionID: d.SubscriptionID,
		ResourceGroup: d.ResourceGroup, Location: d.Location, CAFile: d.CAFile, Listen: d.Listen,
		Kind: "secret", ClientID: d.ClientID, ClientSecret: d.ClientSecret}, nil
}

// configDir is where login keeps its profile and token cache:
// $KEYWARD_CONFIG_DIR, else the user's config directory + /keyward.
func configDir(getenv func(string) string) (string, error) {
	if d := getenv("KEYWARD_CONFIG_DIR"); d != "" {
		return d, nil
	}
	base := getenv("XDG_CONFIG_HOME")
	if base == "" {
		home := getenv("HOME")
		if home == "" {
			d, err := os.UserConfigDir()
			if err != nil {
				return "", err
			}
			return filepath.Join(d, "keyward"), nil
		}
		base = filepath.Join(home, ".config")
	}
	return filepath.Join(base, "keyward"), nil
}

// writePrivate writes a file only its owner can read, in a directory only
// its owner can enter.
func writePrivate(path string, v any) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return err
	}
	raw, err := json.MarshalIndent(v, "", "  ")
	if err != nil {
		return err
	}
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, raw, 0o600); err != nil {
		return err
	}
	if err := os.Chmod(tmp, 0o600); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// session is a resolved profile: the credential and transport every SDK
// client of one command uses.
type session struct {
	p         *Profile
	cred      azcore.TokenCredential
	transport *http.Client
}

// resolve picks the profile: --dev-json, else AZURE_CLIENT_ID with
// AZURE_TENANT_ID and AZURE_CLIENT_SECRET or AZURE_CLIENT_CERTIFICATE_PATH
// (the server's URLs from the saved profile or KEYWARD_* variables), else
// the profile `keyward login` saved.
func resolve(ctx context.Context, o IO, devPath string) (*session, error) {
	getenv := o.Getenv
	devPath = cmp.Or(devPath, getenv("KEYWARD_DEV_JSON"))
	var p *Profile
	if devPath != "" {
		var err error
		if p, err = readDevJSON(devPath); err != nil {
			return nil, err
		}
	} else {
		dir, err := configDir(getenv)
		if err != nil {
			return nil, err
		}
		saved := &Profile{}
		if raw, err := os.ReadFile(filepath.Join(dir, "profile.json")); err == nil {
			if err := json.Unmarshal(raw, saved); err != nil {
				return nil, fmt.Errorf("%s: %w", filepath.Join(dir, "profile.json"), err)
			}
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, err
		}
		p = saved
		p.AuthorityHost = cmp.Or(getenv("AZURE_AUTHORITY_HOST"), p.AuthorityHost)
		p.ManagementURL = cmp.Or(getenv("KEYWARD_MANAGEMENT_URL"), p.ManagementURL)
		p.ManagementResource = cmp.Or(getenv("KEYWARD_MANAGEMENT_RESOURCE"), p.ManagementResource, p.ManagementURL)
		p.VaultDNSSuffix = cmp.Or(getenv("KEYWARD_VAULT_DNS_SUFFIX"), p.VaultDNSSuffix)
		p.SubscriptionID = cmp.Or(getenv("AZURE_SUBSCRIPTION_ID"), p.SubscriptionID)
		p.CAFile = cmp.Or(getenv("KEYWARD_CACERT"), p.CAFile)
		if id := getenv("AZURE_CLIENT_ID"); id != "" && getenv("AZURE_TENANT_ID") != "" &&
			(getenv("AZURE_CLIENT_SECRET") != "" || getenv("AZURE_CLIENT_CERTIFICATE_PATH") != "") {
			p.TenantID, p.ClientID, p.User = getenv("AZURE_TENANT_ID"), id, ""
			p.Kind, p.ClientSecret, p.CertificatePath = "secret", getenv("AZURE_CLIENT_SECRET"), ""
			if p.ClientSecret == "" {
				p.Kind, p.CertificatePath = "certificate", getenv("AZURE_CLIENT_CERTIFICATE_PATH")
			}
		}
		if p.Kind == "" {
			return nil, errors.New("not signed in: run `keyward login`, pass --dev-json PATH, or set AZURE_TENANT_ID, AZURE_CLIENT_ID and AZURE_CLIENT_SECRET (or AZURE_CLIENT_CERTIFICATE_PATH)")
		}
		if p.AuthorityHost == "" || p.VaultDNSSuffix == "" {
			return nil, errors.New("the server is unknown: run `keyward login` with --authority-host and --vault-dns-suffix (or --dev-json), or set AZURE_AUTHORITY_HOST and KEYWARD_VAULT_DNS_SUFFIX")
		}
	}
	hc, err := transport(p)
	if err != nil {
		return nil, err
	}
	s := &session{p: p, transport: hc}
	inner, err := credential(o, p, hc)
	if err != nil {
		return nil, err
	}
	s.cred = inner
	if devPath == "" {
		dir, err := configDir(getenv)
		if err != nil {
			return nil, err
		}
		s.cred = &cachedCredential{inner: inner, path: filepath.Join(dir, "tokens.json"), key: p.Kind + ":" + p.ClientID + p.User}
	}
	return s, nil
}

// transport trusts the system roots plus the profile's CA file and
// connects *.localhost names to loopback (or every name to Listen).
func transport(p *Profile) (*http.Client, error) {
	roots, err := x509.SystemCertPool()
	if err != nil || roots == nil {
		roots = x509.NewCertPool()
	}
	if p.CAFile != "" {
		pem, err := os.ReadFile(p.CAFile)
		if err != nil {
			return nil, fmt.Errorf("CA file: %w", err)
		}
		if !roots.AppendCertsFromPEM(pem) {
			return nil, fmt.Errorf("CA file %s holds no PEM certificate", p.CAFile)
		}
	}
	dialer := &net.Dialer{Timeout: 10 * time.Second}
	return &http.Client{Timeout: 120 * time.Second, Transport: &http.Transport{
		TLSClientConfig:   &tls.Config{RootCAs: roots, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2: true,
		Proxy:             http.ProxyFromEnvironment,
		DialContext: func(ctx context.Context, network, addr string) (net.Conn, error) {
			if p.Listen != "" {
				return dialer.DialContext(ctx, network, p.Listen)
			}
			host, port, err := net.SplitHostPort(addr)
			if err == nil && (host == "localhost" || strings.HasSuffix(host, ".localhost")) {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
			return dialer.DialContext(ctx, network, addr)
		}}}, nil
}

func (s *session) clientOptions() azcore.ClientOptions {
	return azcore.ClientOptions{
		Cloud:     s.cloud(),
		Transport: s.transport,
		Retry:     policy.RetryOptions{MaxRetries: 2},
		Logging:   policy.LogOptions{IncludeBody: false},
	}
}

func (s *session) cloud() cloud.Configuration {
	return cloud.Configuration{
		ActiveDirectoryAuthorityHost: s.p.AuthorityHost,
		Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: s.p.ManagementURL, Audience: cmp.Or(s.p.ManagementResource, s.p.ManagementURL)},
		},
	}
}

func (s *session) armOptions() (*arm.ClientOptions, error) {
	if s.p.ManagementURL == "" {
		return nil, errors.New("the management URL is unknown: log in with --management-url or set KEYWARD_MANAGEMENT_URL")
	}
	return &arm.ClientOptions{ClientOptions: s.clientOptions()}, nil
}

// vaultURL is https://{name}.{vault DNS suffix}/.
func (s *session) vaultURL(name string) (string, error) {
	if !validName(name) {
		return "", fmt.Errorf("--vault-name %q is not a vault name (3-24 letters, digits and hyphens)", name)
	}
	return "https://" + strings.ToLower(name) + "." + s.p.VaultDNSSuffix + "/", nil
}

func validName(n string) bool {
	if len(n) < 1 || len(n) > 127 {
		return false
	}
	for _, c := range n {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-') {
			return false
		}
	}
	return true
}

// credential builds the SDK credential a profile names.
func credential(o IO, p *Profile, hc *http.Client) (azcore.TokenCredential, error) {
	co := azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: p.AuthorityHost}, Transport: hc}
	switch p.Kind {
	case "secret":
		return azidentity.NewClientSecretCredential(p.TenantID, p.ClientID, p.ClientSecret,
			&azidentity.ClientSecretCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	case "certificate":
		raw, err := os.ReadFile(p.CertificatePath)
		if err != nil {
			return nil, fmt.Errorf("certificate: %w", err)
		}
		certs, key, err := azidentity.ParseCertificates(raw, nil)
		if err != nil {
			return nil, fmt.Errorf("certificate %s: %w", p.CertificatePath, err)
		}
		return azidentity.NewClientCertificateCredential(p.TenantID, p.ClientID, certs, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: co, DisableInstanceDiscovery: true})
	case "identity":
		opts := &azidentity.ManagedIdentityCredentialOptions{ClientOptions: azcore.ClientOptions{Transport: hc}}
		if p.ClientID != "" {
			opts.ID = azidentity.ClientID(p.ClientID)
		}
		return azidentity.NewManagedIdentityCredential(opts)
	case "user":
		return &deviceCredential{o: o, p: p, hc: hc}, nil
	}
	return nil, fmt.Errorf("unknown credential kind %q in the saved profile: run `keyward login` again", p.Kind)
}

// resourceOf is the resource a scope names ({resource}/.default).
func resourceOf(scope string) string {
	return strings.TrimSuffix(scope, "/.default")
}

// validURL reports whether s is an absolute https URL.
func validURL(s string) bool {
	u, err := url.Parse(s)
	return err == nil && u.Scheme == "https" && u.Host != ""
}
