package authz

import (
	"strings"
	"testing"
)

func hsmDefs(extra ...RoleDefinition) map[string]RoleDefinition {
	m := map[string]RoleDefinition{}
	for _, d := range append(HSMBuiltInRoles(), extra...) {
		m[strings.ToLower(d.ID)] = d
	}
	return m
}

// Settings have no published data action: only the built-in
// Administrator at "/" holds them, and no role definition can grant them.
func TestDecideHSMSettings(t *testing.T) {
	wild := RoleDefinition{ID: "0b0b0b0b-0000-0000-0000-000000000001", Name: "all",
		Permissions: []Perm{{DataActions: []string{"Microsoft.KeyVault/managedHsm/*", "*"}}}}
	defs := hsmDefs(wild)
	for _, c := range []struct {
		role, scope string
		want        bool
	}{
		{RoleHSMAdministrator, "/", true},
		{RoleHSMAdministrator, "/keys", false},
		{RoleHSMCryptoOfficer, "/", false},
		{RoleHSMCryptoUser, "/", false},
		{RoleHSMPolicyAdministrator, "/", false},
		{wild.ID, "/", false},
	} {
		asg := []HSMAssignment{{ID: "a", Scope: c.scope, RoleDefinitionID: c.role, PrincipalID: "p"}}
		if got := DecideHSM([]string{"p"}, HSMSettings, "", asg, defs); got != c.want {
			t.Errorf("%s at %s: settings %v, want %v", c.role, c.scope, got, c.want)
		}
		if DecideHSM([]string{"q"}, HSMSettings, "", asg, defs) {
			t.Errorf("%s: another principal holds settings", c.role)
		}
	}
	for _, d := range HSMBuiltInRoles() {
		for _, p := range d.Permissions {
			for _, a := range p.DataActions {
				if !strings.HasPrefix(a, "Microsoft.KeyVault/managedHsm/") {
					t.Errorf("%s lists %s", d.Name, a)
				}
			}
		}
	}
}

// Rotation is keys/rotate/action: Crypto User rotates, Crypto Officer does not.
func TestDecideHSMRotate(t *testing.T) {
	defs := hsmDefs()
	for role, want := range map[string]bool{RoleHSMCryptoUser: true, RoleHSMCryptoOfficer: false, RoleHSMCryptoAuditor: false} {
		asg := []HSMAssignment{{ID: "a", Scope: "/keys/k1", RoleDefinitionID: role, PrincipalID: "p"}}
		if got := DecideHSM([]string{"p"}, HSMKeysRotate, "k1", asg, defs); got != want {
			t.Errorf("%s rotate: %v", role, got)
		}
		if DecideHSM([]string{"p"}, HSMKeysRotate, "k2", asg, defs) {
			t.Errorf("%s at /keys/k1 rotates k2", role)
		}
	}
}
