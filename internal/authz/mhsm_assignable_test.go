package authz

import "testing"

func TestHSMAssignableAt(t *testing.T) {
	for _, c := range []struct {
		assignable []string
		scope      string
		want       bool
	}{
		{[]string{"/"}, "/", true}, {[]string{"/"}, "/keys/k", true},
		{[]string{"/keys"}, "/keys", true}, {[]string{"/keys"}, "/KEYS/k1", true}, {[]string{"/keys"}, "/", false},
		{[]string{"/keys/k1"}, "/keys/k1", true}, {[]string{"/keys/k1"}, "/keys/K1", true},
		{[]string{"/keys/k1"}, "/keys/k10", false}, {[]string{"/keys/k1"}, "/keys", false}, {[]string{"/keys/k1"}, "/", false},
		{[]string{"/keys/k1", "/keys/k2"}, "/keys/k2", true}, {nil, "/", false},
	} {
		if got := HSMAssignableAt(c.assignable, c.scope); got != c.want {
			t.Errorf("HSMAssignableAt(%v, %q) = %v", c.assignable, c.scope, got)
		}
	}
}

// TestDecideHSMIgnoresCustomRoleOutsideItsScopes: an assignment of a
// custom role outside the role's assignable scopes (stored before the
// scopes were narrowed) grants nothing; a built-in role is assignable
// everywhere.
func TestDecideHSMIgnoresCustomRoleOutsideItsScopes(t *testing.T) {
	defs := map[string]RoleDefinition{
		"c1": {ID: "c1", AssignableScopes: []string{"/keys/k1"}, Permissions: []Perm{{DataActions: []string{string(HSMKeysRead)}}}},
	}
	for _, b := range HSMBuiltInRoles() {
		defs[b.ID] = b
	}
	at := func(scope, role string) []HSMAssignment {
		return []HSMAssignment{{ID: "a", Scope: scope, RoleDefinitionID: role, PrincipalID: "p"}}
	}
	if !DecideHSM([]string{"p"}, HSMKeysRead, "k1", at("/keys/k1", "c1"), defs) {
		t.Error("custom role within its scope refused")
	}
	if DecideHSM([]string{"p"}, HSMKeysRead, "k2", at("/keys", "c1"), defs) {
		t.Error("custom role assigned outside its scopes granted")
	}
	if !DecideHSM([]string{"p"}, HSMKeysRead, "k2", at("/keys", RoleHSMCryptoUser), defs) {
		t.Error("built-in role at /keys refused")
	}
}
