// Package clientcfg derives what an unmodified Azure client needs to be
// told about a Keyward server from the server's URLs (docs/CLIENTS.md).
package clientcfg

import (
	"cmp"
	"fmt"
	"net/url"
	"strings"
)

// AzCloudRegister returns the arguments of `az cloud register` for a Keyward
// server. The Active Directory endpoint is the ADFS-shaped authority
// {authority}adfs/{tenant}/adfs: az CLI before 2.54 has no switch to turn
// off MSAL's instance discovery (a request to login.microsoftonline.com),
// and MSAL skips it for ADFS authorities (docs/CLIENTS.md). All three
// Active Directory endpoints are given, so az does not fetch
// {resource manager}/metadata/endpoints. An empty managementResource means
// the management URL.
func AzCloudRegister(name, authorityHost, tenant, managementURL, managementResource, vaultURL string) ([]string, error) {
	auth, err := url.Parse(authorityHost)
	if err != nil || auth.Scheme != "https" || auth.Host == "" {
		return nil, fmt.Errorf("authority host %q is not an https URL", authorityHost)
	}
	if tenant == "" || strings.ContainsAny(tenant, "/?# ") {
		return nil, fmt.Errorf("tenant %q is not a tenant ID", tenant)
	}
	v, err := url.Parse(vaultURL)
	if err != nil || v.Scheme != "https" || !strings.Contains(v.Host, ".") {
		return nil, fmt.Errorf("vault URL %q is not https://{vault}.{suffix}[:port]/", vaultURL)
	}
	// .vault.localhost:8443: az builds https://{name}{suffix}, so a port works.
	suffix := v.Host[strings.IndexByte(v.Host, '.'):]
	mgmt := strings.TrimRight(managementURL, "/") + "/"
	res := cmp.Or(managementResource, mgmt)
	graph := "https://graph." + strings.TrimPrefix(suffix, ".vault.") + "/"
	return []string{"cloud", "register", "--name", name,
		"--endpoint-active-directory", strings.TrimRight(authorityHost, "/") + "/adfs/" + strings.ToLower(tenant) + "/adfs",
		"--endpoint-active-directory-resource-id", res,
		"--endpoint-active-directory-graph-resource-id", graph,
		"--endpoint-resource-manager", mgmt,
		"--endpoint-management", res,
		"--suffix-keyvault-dns", suffix,
	}, nil
}
