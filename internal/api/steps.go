package api

import (
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/throttle"
)

// The throttling step every surface may take once its caller is known:
// one request drawn from the shared token buckets (internal/throttle) of
// the calling principal, across surfaces, and of the bucket the surface
// names: a vault on the data plane, the caller's tenant on ARM. Each
// surface words the 429 (api.throttled, mgmt.Throttled). The token
// service limits by source and client itself (identity's tokenlimits).
//
// api-version is the other such step: each surface brings its rule
// (checkAPIVersion here, mgmt.CheckAPIVersion for ARM); the token
// service takes none.

// allow draws one request of claims' principal from bucket.
func (h *Handler) allow(bucket string, claims *identity.Claims) throttle.Decision {
	if h.throttle == nil {
		return throttle.Decision{Allowed: true}
	}
	return h.throttle.Allow(bucket, claims.TenantID, claims.ObjectID)
}

// managementBucket is ARM's bucket for tenant's callers; vault buckets are
// keyed by vault ID, which never has this form.
func managementBucket(tenant string) string { return "management/" + tenant }

// checkAPIVersion is the data plane's api-version rule: one of the
// versions Azure Key Vault published (apiversions.go).
func checkAPIVersion(v string) error {
	if _, known := apiVersionOrder[v]; !known {
		return badParam("The specified version (%s) is not recognized. Consider using the latest supported version (%s).", clipString(v, 32), latestVersion)
	}
	return nil
}
