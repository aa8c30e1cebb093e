package authz

import "testing"

// TestKeyManagementRoles: the Key Management Officer may do everything on
// the keymgmt engine at the tenant scope, its reader only read, and the
// Key Vault roles (even Administrator on a subscription) nothing there.
func TestKeyManagementRoles(t *testing.T) {
	reads := []Action{KeyMgmtKeysRead, KeyMgmtKMSRead, KeyMgmtDistributionRead}
	writes := []Action{KeyMgmtKeysWrite, KeyMgmtKeysRotate, KeyMgmtKeysDelete, KeyMgmtKMSWrite, KeyMgmtKMSDelete,
		KeyMgmtDistributionWrite, KeyMgmtDistributionDel}
	for _, tc := range []struct {
		role        string
		read, write bool
	}{
		{RoleKeyManagementOfficer, true, true},
		{RoleKeyManagementReader, true, false},
		{RoleKeyVaultAdministrator, false, false},
		{RoleKeyVaultCryptoOfficer, false, false},
		{RoleContributor, false, false},
	} {
		idx := mustBuild(t, Snapshot{
			Principals:  principals(alice),
			Assignments: []Assignment{assign("ra1", "/", alice, tc.role)},
		})
		check := func(a Action, want bool) {
			d := idx.Decide(Principal{TenantID: tenant, ObjectID: alice}, a, Scope{TenantID: tenant}, t0)
			if d.Allowed != want {
				t.Errorf("role %s, %s: allowed=%v, want %v", tc.role, a, d.Allowed, want)
			}
			// Another tenant's caller is never allowed by this tenant's assignment.
			if d := idx.Decide(Principal{TenantID: "other-tenant", ObjectID: alice}, a, Scope{TenantID: "other-tenant"}, t0); d.Allowed {
				t.Errorf("role %s, %s: allowed in another tenant", tc.role, a)
			}
		}
		for _, a := range reads {
			check(a, tc.read)
		}
		for _, a := range writes {
			check(a, tc.write)
		}
	}
}
