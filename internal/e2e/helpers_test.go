package e2e

import (
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/keyward/keyward/internal/kwtest"
)

func tokenOpts(e *kwtest.Env) policy.TokenRequestOptions {
	return policy.TokenRequestOptions{Scopes: []string{"https://vault.localhost:" + port(e) + "/.default"}, TenantID: e.Info.TenantID}
}

func port(e *kwtest.Env) string {
	a := e.Server.Addr()
	for i := len(a) - 1; i >= 0; i-- {
		if a[i] == ':' {
			return a[i+1:]
		}
	}
	return ""
}
