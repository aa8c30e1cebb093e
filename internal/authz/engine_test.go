package authz

import (
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/clock"
)

const (
	tenant  = "11111111-1111-1111-1111-111111111111"
	tenant2 = "22222222-2222-2222-2222-222222222222"
	sub     = "33333333-3333-3333-3333-333333333333"
	alice   = "a11ce000-0000-0000-0000-000000000001"
	bob     = "b0b00000-0000-0000-0000-000000000002"
	app     = "a9900000-0000-0000-0000-000000000003"
	grpA    = "9a000000-0000-0000-0000-00000000000a"
	grpB    = "9b000000-0000-0000-0000-00000000000b"
	grpC    = "9c000000-0000-0000-0000-00000000000c"
)

var (
	subScope   = "/subscriptions/" + sub
	rgScope    = subScope + "/resourceGroups/rg1"
	vaultScope = rgScope + "/providers/Microsoft.KeyVault/vaults/v1"
	t0         = time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
)

func vscope(objType, name string) Scope {
	return Scope{TenantID: tenant, SubscriptionID: sub, ResourceGroup: "rg1", Vault: "v1", ObjectType: objType, ObjectName: name}
}

func collection(a Action) string {
	s := strings.TrimPrefix(string(a), "Microsoft.KeyVault/vaults/")
	c, _, _ := strings.Cut(s, "/")
	switch c {
	case "keyrotationpolicies":
		return "keys"
	case "certificatecas", "certificatecontacts":
		return "certificates"
	}
	return c
}

func principals(ids ...string) []PrincipalRecord {
	var out []PrincipalRecord
	for _, id := range ids {
		out = append(out, PrincipalRecord{TenantID: tenant, ObjectID: id, Kind: "ServicePrincipal"})
	}
	return out
}

func mustBuild(t *testing.T, s Snapshot) *Index {
	t.Helper()
	idx, err := Build(s)
	if err != nil {
		t.Fatal(err)
	}
	return idx
}

func assign(id, scope, principal, role string) Assignment {
	return Assignment{ID: id, TenantID: tenant, Scope: scope, PrincipalID: principal, RoleDefinitionID: role}
}

// TestBuiltinRoleDataActionMatrix checks every built-in role against every
// data action, on an RBAC vault, with the expected grants written out from
// Azure's role definitions rather than computed.
func TestBuiltinRoleDataActionMatrix(t *testing.T) {
	all := map[Action]bool{}
	for _, a := range DataActions {
		all[a] = true
	}
	set := func(as ...Action) map[Action]bool {
		m := map[Action]bool{}
		for _, a := range as {
			m[a] = true
		}
		return m
	}
	keysAll := []Action{KeysRead, KeysCreate, KeysImport, KeysUpdate, KeysDelete, KeysBackup, KeysRestore, KeysRotate,
		KeysEncrypt, KeysDecrypt, KeysWrap, KeysUnwrap, KeysSign, KeysVerify, KeysRelease, KeysRecover, KeysPurge}
	secretsAll := []Action{SecretsGetSecret, SecretsReadMetadata, SecretsSetSecret, SecretsUpdate, SecretsDelete,
		SecretsBackup, SecretsRestore, SecretsRecover, SecretsPurge}
	certsAll := []Action{CertificatesRead, CertificatesCreate, CertificatesImport, CertificatesUpdate, CertificatesDelete,
		CertificatesBackup, CertificatesRestore, CertificatesRecover, CertificatesPurge,
		CertificateIssuersRead, CertificateIssuersWrite, CertificateIssuersDelete, CertificateContactsWrite}
	want := map[string]map[Action]bool{
		RoleKeyVaultAdministrator:        all,
		RoleKeyVaultCertificatesOfficer:  set(certsAll...),
		RoleKeyVaultCertificateUser:      set(CertificatesRead, SecretsGetSecret, SecretsReadMetadata, KeysRead),
		RoleKeyVaultCryptoOfficer:        set(append(keysAll, KeysRotationRead, KeysRotationWrite)...),
		RoleKeyVaultCryptoServiceEncUser: set(KeysRead, KeysWrap, KeysUnwrap),
		RoleKeyVaultCryptoServiceRelease: set(KeysRelease),
		RoleKeyVaultCryptoUser: set(KeysRead, KeysUpdate, KeysBackup, KeysEncrypt, KeysDecrypt, KeysWrap, KeysUnwrap,
			KeysSign, KeysVerify),
		RoleKeyVaultReader:                  set(KeysRead, KeysRotationRead, CertificatesRead, CertificateIssuersRead, SecretsReadMetadata),
		RoleKeyVaultSecretsOfficer:          set(secretsAll...),
		RoleKeyVaultSecretsUser:             set(SecretsGetSecret, SecretsReadMetadata),
		RoleKeyVaultDataAccessAdministrator: set(),
		RoleKeyVaultContributor:             set(),
		RoleOwner:                           set(),
		RoleContributor:                     set(),
		RoleReader:                          set(),
		RoleUserAccessAdministrator:         set(),
		RoleKeywardOperator:                 set(),
		RoleKeywardDirectoryAdmin:           set(),
		RoleKeyManagementOfficer:            set(),
		RoleKeyManagementReader:             set(),
	}
	if len(want) != len(BuiltinRoles) {
		t.Fatalf("matrix covers %d roles, there are %d built-in roles", len(want), len(BuiltinRoles))
	}
	for _, role := range BuiltinRoles {
		idx := mustBuild(t, Snapshot{
			Principals:  principals(alice),
			Assignments: []Assignment{assign("ra1", vaultScope, alice, role.ID)},
			Vaults:      []VaultPolicy{{Name: "v1", TenantID: tenant, RBAC: true}},
		})
		for _, a := range DataActions {
			for _, obj := range []string{"", "obj1"} {
				d := idx.Decide(Principal{TenantID: tenant, ObjectID: alice}, a, vscope(collection(a), obj), t0)
				if d.Allowed != want[role.ID][a] {
					t.Errorf("%s / %s (object %q): allowed=%v, want %v (%s)", role.Name, a, obj, d.Allowed, want[role.ID][a], d.Reason)
				}
				if !d.Allowed && (d.Code != CodeRbac || d.Missing != string(a)) {
					t.Errorf("%s / %s: denial code %q missing %q", role.Name, a, d.Code, d.Missing)
				}
			}
		}
	}
}

func TestBuiltinRoleNamesAndIDs(t *testing.T) {
	// The exact names and GUIDs of the seeds and AZURE-API.md §6.
	want := map[string]string{
		"Key Vault Administrator":                  "00482a5a-887f-4fb3-b363-3b7fe8e74483",
		"Key Vault Certificates Officer":           "a4417e6f-fecd-4de8-b567-7b0420556985",
		"Key Vault Certificate User":               "db79e9a7-68ee-4b58-9aeb-b90e7c24fcba",
		"Key Vault Crypto Officer":                 "14b46e9e-c2b7-41b4-b07b-48a6ebf60603",
		"Key Vault Crypto Service Encryption User": "e147488a-f6f5-4113-8e2d-b22465e65bf6",
		"Key Vault Crypto User":                    "12338af0-0e69-4776-bea7-57ae8d297424",
		"Key Vault Reader":                         "21090545-7ca7-4776-b22c-e363652d74d2",
		"Key Vault Secrets Officer":                "b86a8fe4-44ce-4948-aee5-eccb2c155cd7",
		"Key Vault Secrets User":                   "4633458b-17de-408a-b874-0445c86b69e6",
		"Key Vault Data Access Administrator":      "8b54135c-b56d-4d72-a534-26097cfdc8d8",
		"Key Vault Contributor":                    "f25e0fa2-a7c8-4377-a976-54943a77a395",
	}
	for name, id := range want {
		r, ok := BuiltinRoleByName(name)
		if !ok || r.ID != id {
			t.Errorf("%s: got %q, want %s", name, r.ID, id)
		}
		if r2, ok := BuiltinRole("/providers/Microsoft.Authorization/roleDefinitions/" + strings.ToUpper(id)); !ok || r2.Name != name {
			t.Errorf("BuiltinRole(%s) = %q", id, r2.Name)
		}
	}
}

func TestScopeInheritance(t *testing.T) {
	objScope := vaultScope + "/secrets/s1"
	otherVault := rgScope + "/providers/Microsoft.KeyVault/vaults/v2"
	otherRG := subScope + "/resourceGroups/rg2"
	vaults := []VaultPolicy{{Name: "v1", TenantID: tenant, RBAC: true}, {Name: "v2", TenantID: tenant, RBAC: true}}
	cases := []struct {
		at      string
		req     Scope
		allowed bool
	}{
		{subScope, vscope("secrets", "s1"), true},
		{subScope, vscope("secrets", ""), true},
		{rgScope, vscope("secrets", "s1"), true},
		{vaultScope, vscope("secrets", "s1"), true},
		{objScope, vscope("secrets", "s1"), true},
		{objScope, vscope("secrets", "s2"), false},   // another object
		{objScope, vscope("secrets", ""), false},     // the collection (list)
		{objScope, vscope("keys", "s1"), false},      // same name, other collection
		{otherVault, vscope("secrets", "s1"), false}, // sibling vault
		{otherRG, vscope("secrets", "s1"), false},    // sibling resource group
		{"/subscriptions/44444444-4444-4444-4444-444444444444", vscope("secrets", "s1"), false},
		{rgScope + "1", vscope("secrets", "s1"), false}, // prefix but not a parent (rg1 vs rg11)
		{"/", vscope("secrets", "s1"), true},            // tenant root
		{strings.ToUpper(vaultScope), vscope("secrets", "s1"), true},
	}
	for _, c := range cases {
		idx := mustBuild(t, Snapshot{
			Principals:  principals(alice),
			Assignments: []Assignment{assign("ra", c.at, alice, RoleKeyVaultSecretsUser)},
			Vaults:      vaults,
		})
		d := idx.Decide(Principal{TenantID: tenant, ObjectID: alice}, SecretsGetSecret, c.req, t0)
		if d.Allowed != c.allowed {
			t.Errorf("assignment at %s, request %s: allowed=%v want %v (%s)", c.at, c.req.String(), d.Allowed, c.allowed, d.Reason)
		}
	}
}

func TestTimeWindows(t *testing.T) {
	clk := clock.NewFake(t0)
	start, end := t0.Add(time.Hour), t0.Add(3*time.Hour)
	a := assign("ra", vaultScope, alice, RoleKeyVaultSecretsUser)
	a.Start, a.End = &start, &end
	e := NewEngine(clk)
	e.Swap(mustBuild(t, Snapshot{Principals: principals(alice), Assignments: []Assignment{a},
		Vaults: []VaultPolicy{{Name: "v1", TenantID: tenant, RBAC: true}}}))
	p := Principal{TenantID: tenant, ObjectID: alice}
	steps := []struct {
		d       time.Duration
		allowed bool
	}{{0, false}, {59 * time.Minute, false}, {time.Minute, true}, {2*time.Hour - time.Second, true}, {time.Second, false}, {time.Hour, false}}
	for i, s := range steps {
		clk.Advance(s.d)
		if d := e.Authorize(p, SecretsGetSecret, vscope("secrets", "x")); d.Allowed != s.allowed {
			t.Errorf("step %d at %s: allowed=%v want %v", i, clk.Now().Format(time.RFC3339), d.Allowed, s.allowed)
		}
	}
}

func TestGroupMembership(t *testing.T) {
	// alice ∈ A ∈ B ∈ C ∈ A (a cycle); the role is assigned to C.
	ps := []PrincipalRecord{
		{TenantID: tenant, ObjectID: alice, Kind: "User", Groups: []string{grpA}},
		{TenantID: tenant, ObjectID: bob, Kind: "User"},
		{TenantID: tenant, ObjectID: grpA, Kind: "Group", Groups: []string{strings.ToUpper(grpB)}},
		{TenantID: tenant, ObjectID: grpB, Kind: "Group", Groups: []string{grpC}},
		{TenantID: tenant, ObjectID: grpC, Kind: "Group", Groups: []string{grpA}},
	}
	idx := mustBuild(t, Snapshot{Principals: ps,
		Assignments: []Assignment{assign("ra", vaultScope, grpC, RoleKeyVaultSecretsUser)},
		Vaults:      []VaultPolicy{{Name: "v1", TenantID: tenant, RBAC: true}}})
	if d := idx.Decide(Principal{TenantID: tenant, ObjectID: alice}, SecretsGetSecret, vscope("secrets", "s"), t0); !d.Allowed {
		t.Errorf("nested group member denied: %s", d.Reason)
	}
	if d := idx.Decide(Principal{TenantID: tenant, ObjectID: bob}, SecretsGetSecret, vscope("secrets", "s"), t0); d.Allowed {
		t.Error("non-member allowed")
	}
	// Groups from the token are honoured too.
	if d := idx.Decide(Principal{TenantID: tenant, ObjectID: bob, Groups: []string{grpC}}, SecretsGetSecret, vscope("secrets", "s"), t0); !d.Allowed {
		t.Errorf("token group denied: %s", d.Reason)
	}
}

func TestTenantAndPrincipalChecks(t *testing.T) {
	idx := mustBuild(t, Snapshot{
		Principals:  principals(alice),
		Assignments: []Assignment{assign("ra", subScope, alice, RoleKeyVaultAdministrator)},
		Vaults:      []VaultPolicy{{Name: "v1", TenantID: tenant, RBAC: true}},
	})
	cases := []struct {
		name string
		p    Principal
		ok   bool
	}{
		{"member", Principal{TenantID: tenant, ObjectID: alice}, true},
		{"other tenant, same oid", Principal{TenantID: tenant2, ObjectID: alice}, false},
		{"deleted principal", Principal{TenantID: tenant, ObjectID: bob}, false},
		{"no tenant", Principal{ObjectID: alice}, false},
	}
	for _, c := range cases {
		if d := idx.Decide(c.p, SecretsGetSecret, vscope("secrets", "s"), t0); d.Allowed != c.ok {
			t.Errorf("%s: allowed=%v (%s)", c.name, d.Allowed, d.Reason)
		}
	}
	// Unknown vault in the index: RBAC by default.
	if d := idx.Decide(Principal{TenantID: tenant, ObjectID: alice}, SecretsGetSecret,
		Scope{TenantID: tenant, SubscriptionID: sub, ResourceGroup: "rg1", Vault: "unknown"}, t0); !d.Allowed {
		t.Errorf("vault without policy record: %s", d.Reason)
	}
	// A data action without a vault is denied.
	if d := idx.Decide(Principal{TenantID: tenant, ObjectID: alice}, SecretsGetSecret, Scope{TenantID: tenant, SubscriptionID: sub}, t0); d.Allowed {
		t.Error("data action without vault allowed")
	}
}

func TestAccessPolicies(t *testing.T) {
	v := VaultPolicy{Name: "v1", TenantID: tenant, RBAC: false, AccessPolicies: []AccessPolicy{
		{TenantID: tenant, ObjectID: alice, Keys: []string{"get", "list", "wrapKey", "unwrapKey"}},
		{TenantID: tenant, ObjectID: grpA, Secrets: []string{"list"}, Certificates: []string{"ManageIssuers"}},
		{TenantID: tenant, ObjectID: bob, ApplicationID: app, Secrets: []string{"all"}},
	}}
	ps := append(principals(alice, bob), PrincipalRecord{TenantID: tenant, ObjectID: "c0000000-0000-0000-0000-00000000000c", Groups: []string{grpA}},
		PrincipalRecord{TenantID: tenant, ObjectID: grpA, Kind: "Group"})
	// An RBAC assignment is ignored in access-policy mode.
	idx := mustBuild(t, Snapshot{Principals: ps, Vaults: []VaultPolicy{v},
		Assignments: []Assignment{assign("ra", subScope, alice, RoleKeyVaultAdministrator)}})
	carol := "c0000000-0000-0000-0000-00000000000c"
	cases := []struct {
		name string
		p    Principal
		a    Action
		s    Scope
		ok   bool
		miss string
	}{
		{"get key", Principal{TenantID: tenant, ObjectID: alice}, KeysRead, vscope("keys", "k"), true, ""},
		{"list keys", Principal{TenantID: tenant, ObjectID: alice}, KeysRead, Scope{TenantID: tenant, SubscriptionID: sub, ResourceGroup: "rg1", Vault: "v1", ObjectType: "keys", List: true}, true, ""},
		{"wrap", Principal{TenantID: tenant, ObjectID: alice}, KeysWrap, vscope("keys", "k"), true, ""},
		{"sign (not granted)", Principal{TenantID: tenant, ObjectID: alice}, KeysSign, vscope("keys", "k"), false, "keys sign"},
		{"rbac admin ignored", Principal{TenantID: tenant, ObjectID: alice}, SecretsGetSecret, vscope("secrets", "s"), false, "secrets get"},
		{"group list", Principal{TenantID: tenant, ObjectID: carol}, SecretsReadMetadata, Scope{TenantID: tenant, SubscriptionID: sub, ResourceGroup: "rg1", Vault: "v1", ObjectType: "secrets", List: true}, true, ""},
		{"group get (list only)", Principal{TenantID: tenant, ObjectID: carol}, SecretsGetSecret, vscope("secrets", "s"), false, "secrets get"},
		{"group metadata get", Principal{TenantID: tenant, ObjectID: carol}, SecretsReadMetadata, vscope("secrets", "s"), false, "secrets get"},
		{"manageissuers implies setissuers", Principal{TenantID: tenant, ObjectID: carol}, CertificateIssuersWrite, vscope("certificates", ""), true, ""},
		{"compound: right app, delegated", Principal{TenantID: tenant, ObjectID: bob, AppID: app, Delegated: true}, SecretsGetSecret, vscope("secrets", "s"), true, ""},
		{"compound: app-only token", Principal{TenantID: tenant, ObjectID: bob, AppID: app}, SecretsGetSecret, vscope("secrets", "s"), false, "secrets get"},
		{"compound: other app", Principal{TenantID: tenant, ObjectID: bob, AppID: "other", Delegated: true}, SecretsGetSecret, vscope("secrets", "s"), false, "secrets get"},
		{"other tenant", Principal{TenantID: tenant2, ObjectID: alice}, KeysRead, vscope("keys", "k"), false, "keys get"},
	}
	for _, c := range cases {
		d := idx.Decide(c.p, c.a, c.s, t0)
		if d.Allowed != c.ok {
			t.Errorf("%s: allowed=%v want %v (%s)", c.name, d.Allowed, c.ok, d.Reason)
		}
		if !d.Allowed && (d.Code != CodePolicy || d.Missing != c.miss) {
			t.Errorf("%s: code %q missing %q, want AccessDenied %q", c.name, d.Code, d.Missing, c.miss)
		}
	}
	// Control actions stay RBAC in access-policy mode.
	if d := idx.Decide(Principal{TenantID: tenant, ObjectID: alice}, VaultsWrite, vscope("", ""), t0); d.Allowed || d.Code != CodeRbac {
		t.Errorf("data-role holder may write the vault: %+v", d)
	}
}

func TestPolicyPermissionCoversEveryDataAction(t *testing.T) {
	for _, a := range DataActions {
		for _, list := range []bool{false, true} {
			p, ok := PolicyPermission(a, list)
			if !ok {
				t.Errorf("%s has no access-policy permission", a)
				continue
			}
			if !ValidPolicyPermission(p.Collection, p.Op) {
				t.Errorf("%s maps to %s, not an Azure permission", a, p)
			}
		}
		if !IsDataAction(a) {
			t.Errorf("%s is not classified as a data action", a)
		}
	}
	for _, a := range []Action{VaultsWrite, RoleAssignmentsWrite, EventSubscriptionsRW, SysSeal, DirectoryWrite} {
		if IsDataAction(a) {
			t.Errorf("%s classified as a data action", a)
		}
	}
}

func TestControlActions(t *testing.T) {
	ps := principals(alice)
	p := Principal{TenantID: tenant, ObjectID: alice}
	vault := Scope{TenantID: tenant, SubscriptionID: sub, ResourceGroup: "rg1", Vault: "v1"}
	cases := []struct {
		role    string
		a       Action
		s       Scope
		roleDef string
		ok      bool
	}{
		{RoleKeyVaultContributor, VaultsWrite, vault, "", true},
		{RoleKeyVaultContributor, VaultsAccessPolicies, vault, "", true}, // the seed's warning: self-grant in access-policy mode
		{RoleKeyVaultContributor, DeletedVaultsPurge, vault, "", false},
		{RoleKeyVaultContributor, RoleAssignmentsWrite, vault, RoleKeyVaultAdministrator, false},
		{RoleKeyVaultSecretsOfficer, RoleAssignmentsWrite, vault, RoleKeyVaultSecretsOfficer, false}, // escalation
		{RoleKeyVaultSecretsOfficer, VaultsRead, vault, "", false},                                   // "vaults/*/read" needs a segment: the vault itself needs Reader, as in Azure
		{RoleKeyVaultSecretsOfficer, RoleAssignmentsRead, vault, "", true},
		{RoleKeyVaultSecretsOfficer, VaultsWrite, vault, "", false},
		{RoleKeyVaultAdministrator, VaultsWrite, vault, "", false},
		{RoleKeyVaultAdministrator, RoleAssignmentsRead, vault, "", true},
		{RoleKeyVaultDataAccessAdministrator, RoleAssignmentsWrite, vault, RoleKeyVaultSecretsUser, true},
		{RoleKeyVaultDataAccessAdministrator, RoleAssignmentsWrite, vault, "/subscriptions/x/providers/Microsoft.Authorization/roleDefinitions/" + RoleKeyVaultAdministrator, true},
		{RoleKeyVaultDataAccessAdministrator, RoleAssignmentsWrite, vault, RoleOwner, false},
		{RoleKeyVaultDataAccessAdministrator, RoleAssignmentsWrite, vault, RoleKeyVaultDataAccessAdministrator, false},
		{RoleKeyVaultDataAccessAdministrator, RoleAssignmentsDelete, vault, RoleKeyVaultCryptoUser, true},
		{RoleKeyVaultDataAccessAdministrator, VaultsWrite, vault, "", false},
		{RoleOwner, RoleAssignmentsWrite, vault, RoleOwner, true},
		{RoleContributor, RoleAssignmentsWrite, vault, RoleKeyVaultSecretsUser, false},
		{RoleContributor, VaultsWrite, vault, "", true},
		{RoleReader, VaultsRead, vault, "", true},
		{RoleReader, VaultsWrite, vault, "", false},
		{RoleUserAccessAdministrator, RoleAssignmentsWrite, vault, RoleOwner, true},
		{RoleKeyVaultCryptoServiceEncUser, EventSubscriptionsRW, vault, "", true},
		{RoleKeyVaultAdministrator, EventSubscriptionsRW, vault, "", false},
		{RoleOwner, SysSeal, Scope{TenantID: tenant}, "", true}, // Owner at "/" (below: at subscription it is not)
		{RoleKeywardOperator, SysSeal, Scope{TenantID: tenant}, "", true},
		{RoleKeywardDirectoryAdmin, SysSeal, Scope{TenantID: tenant}, "", false},
		{RoleKeywardDirectoryAdmin, DirectoryWrite, Scope{TenantID: tenant}, "", true},
	}
	for _, c := range cases {
		at := "/"
		if c.s.SubscriptionID != "" {
			at = subScope
		}
		idx := mustBuild(t, Snapshot{Principals: ps, Assignments: []Assignment{assign("ra", at, alice, c.role)}})
		s := c.s
		s.RoleDefinitionID = c.roleDef
		r, _ := BuiltinRole(c.role)
		if d := idx.Decide(p, c.a, s, t0); d.Allowed != c.ok {
			t.Errorf("%s: %s at %s (role %s): allowed=%v want %v", r.Name, c.a, s.String(), c.roleDef, d.Allowed, c.ok)
		}
	}
	// Root-scope actions are not granted by a subscription-scope Owner.
	idx := mustBuild(t, Snapshot{Principals: ps, Assignments: []Assignment{assign("ra", subScope, alice, RoleOwner)}})
	if d := idx.Decide(p, SysSeal, Scope{TenantID: tenant}, t0); d.Allowed {
		t.Error("subscription Owner may seal the instance")
	}
}

func TestCustomRole(t *testing.T) {
	custom := RoleDefinition{ID: "c0570000-0000-0000-0000-000000000001", Name: "Secret reader but not purger",
		TenantID: tenant, AssignableScopes: []string{subScope},
		Permissions: []Perm{{DataActions: []string{"Microsoft.KeyVault/vaults/secrets/*"},
			NotDataActions: []string{"Microsoft.KeyVault/vaults/secrets/purge/action", "Microsoft.KeyVault/vaults/secrets/delete"}}}}
	idx := mustBuild(t, Snapshot{Principals: principals(alice), Roles: []RoleDefinition{custom},
		Assignments: []Assignment{assign("ra", vaultScope, alice, custom.ID)},
		Vaults:      []VaultPolicy{{Name: "v1", TenantID: tenant, RBAC: true}}})
	p := Principal{TenantID: tenant, ObjectID: alice}
	for a, ok := range map[Action]bool{SecretsGetSecret: true, SecretsSetSecret: true, SecretsPurge: false, SecretsDelete: false, KeysRead: false} {
		if d := idx.Decide(p, a, vscope(collection(a), "x"), t0); d.Allowed != ok {
			t.Errorf("custom role %s: allowed=%v want %v", a, d.Allowed, ok)
		}
	}
	if _, err := Build(Snapshot{Roles: []RoleDefinition{{ID: RoleOwner, Name: "evil"}}}); err == nil {
		t.Error("a custom role may shadow a built-in role")
	}
}

func TestNetworkRules(t *testing.T) {
	ps := []PrincipalRecord{
		{TenantID: tenant, ObjectID: alice},
		{TenantID: tenant, ObjectID: app, Trusted: true},
	}
	mk := func(n NetworkRules) *Index {
		return mustBuild(t, Snapshot{Principals: ps, Vaults: []VaultPolicy{{Name: "v1", TenantID: tenant, RBAC: true, Network: n}}})
	}
	rule := func(s string) netip.Prefix {
		p, err := ParseIPRule(s)
		if err != nil {
			t.Fatal(err)
		}
		return p
	}
	loop := netip.MustParseAddr("127.0.0.1")
	v6 := netip.MustParseAddr("2001:db8::5")
	alicep := Principal{TenantID: tenant, ObjectID: alice}
	trusted := Principal{TenantID: tenant, ObjectID: app}
	cases := []struct {
		name string
		n    NetworkRules
		p    Principal
		c    Client
		ok   bool
	}{
		{"default allow", NetworkRules{}, alicep, Client{IP: loop}, true},
		{"deny, no rules", NetworkRules{DefaultAction: "Deny"}, alicep, Client{IP: loop}, false},
		{"deny, ip rule", NetworkRules{DefaultAction: "Deny", IPRules: []netip.Prefix{rule("127.0.0.0/8")}}, alicep, Client{IP: loop}, true},
		{"deny, single address", NetworkRules{DefaultAction: "Deny", IPRules: []netip.Prefix{rule("127.0.0.1")}}, alicep, Client{IP: loop}, true},
		{"deny, mapped v4 client", NetworkRules{DefaultAction: "Deny", IPRules: []netip.Prefix{rule("127.0.0.1")}}, alicep, Client{IP: netip.MustParseAddr("::ffff:127.0.0.1")}, true},
		{"deny, other rule", NetworkRules{DefaultAction: "Deny", IPRules: []netip.Prefix{rule("10.0.0.0/8")}}, alicep, Client{IP: loop}, false},
		{"deny, v6 rule", NetworkRules{DefaultAction: "Deny", IPRules: []netip.Prefix{rule("2001:db8::/32")}}, alicep, Client{IP: v6}, true},
		{"deny, trusted bypass", NetworkRules{DefaultAction: "Deny", Bypass: "AzureServices"}, trusted, Client{IP: loop}, true},
		{"deny, bypass None", NetworkRules{DefaultAction: "Deny", Bypass: "None"}, trusted, Client{IP: loop}, false},
		{"deny, untrusted", NetworkRules{DefaultAction: "Deny", Bypass: "AzureServices"}, alicep, Client{IP: loop}, false},
		{"public disabled", NetworkRules{PublicDisabled: true, IPRules: []netip.Prefix{rule("127.0.0.1")}}, alicep, Client{IP: loop}, false},
		{"public disabled, private listener", NetworkRules{PublicDisabled: true}, alicep, Client{IP: loop, Private: true}, true},
		{"public disabled, trusted", NetworkRules{PublicDisabled: true}, trusted, Client{IP: loop}, true},
	}
	for _, c := range cases {
		d := mk(c.n).DecideNetwork(c.p, Scope{TenantID: tenant, Vault: "v1"}, c.c)
		if d.Allowed != c.ok {
			t.Errorf("%s: allowed=%v want %v (%s)", c.name, d.Allowed, c.ok, d.Reason)
		}
		if !d.Allowed && d.Code != CodeFirewall {
			t.Errorf("%s: code %q", c.name, d.Code)
		}
	}
	for _, bad := range []string{"", "300.1.1.1", "1.2.3.4/33", "::ffff:1.2.3.4/64", "host"} {
		if _, err := ParseIPRule(bad); err == nil {
			t.Errorf("ParseIPRule(%q) accepted", bad)
		}
	}
}

func TestMatchAction(t *testing.T) {
	cases := []struct {
		p, a string
		ok   bool
	}{
		{"*", "Microsoft.KeyVault/vaults/write", true},
		{"*/read", "Microsoft.KeyVault/vaults/read", true},
		{"*/read", "Microsoft.KeyVault/vaults/write", false},
		{"Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/keys/read", true},
		{"Microsoft.KeyVault/vaults/*/read", "microsoft.keyvault/VAULTS/secrets/x/read", true},
		{"Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/read", false},
		{"Microsoft.KeyVault/vaults/secrets/*", "Microsoft.KeyVault/vaults/secrets/purge/action", true},
		{"Microsoft.KeyVault/vaults/secrets/*", "Microsoft.KeyVault/vaults/secretsX/read", false},
		{"Microsoft.Authorization/*/read", "Microsoft.Authorization/roleAssignments/read", true},
		{"Microsoft.Authorization/*/Write", "Microsoft.Authorization/roleAssignments/write", true},
		{"a*b*c", "aXbYc", true},
		{"a*b*c", "aXbY", false},
	}
	for _, c := range cases {
		if MatchAction(c.p, c.a) != c.ok {
			t.Errorf("MatchAction(%q, %q) != %v", c.p, c.a, c.ok)
		}
	}
}

func TestParseScope(t *testing.T) {
	good := map[string]string{
		"/":                              "root",
		"":                               "root",
		subScope:                         "subscription",
		rgScope:                          "resourceGroup",
		vaultScope:                       "vault",
		vaultScope + "/keys/k1":          "object",
		vaultScope + "/Secrets/s1":       "object",
		strings.ToLower(vaultScope):      "vault",
		vaultScope + "/certificates/c1/": "object",
	}
	for s, level := range good {
		sc, err := ParseScope(s)
		if err != nil || sc.Level() != level {
			t.Errorf("ParseScope(%q) = %v, %v; want level %s", s, sc.Level(), err, level)
			continue
		}
		if !strings.EqualFold(normScope(sc.String()), normScope(s)) {
			t.Errorf("round trip %q -> %q", s, sc.String())
		}
	}
	for _, s := range []string{"subscriptions/x", "/subscriptions", "/subscriptions/x/foo/y", rgScope + "/providers/Microsoft.Storage/storageAccounts/a",
		vaultScope + "/eventsubscriptions/x", "/subscriptions//resourceGroups/x", "/subscriptions/x y"} {
		if _, err := ParseScope(s); err == nil {
			t.Errorf("ParseScope(%q) accepted", s)
		}
	}
}

func FuzzParseScope(f *testing.F) {
	f.Add("/")
	f.Add(vaultScope + "/keys/k")
	f.Add(rgScope)
	f.Fuzz(func(t *testing.T, s string) {
		sc, err := ParseScope(s)
		if err != nil {
			return
		}
		again, err := ParseScope(sc.String())
		if err != nil || again != sc {
			t.Fatalf("%q -> %q does not round-trip: %v", s, sc.String(), err)
		}
	})
}

func FuzzMatchAction(f *testing.F) {
	f.Add("Microsoft.KeyVault/vaults/*/read", "Microsoft.KeyVault/vaults/keys/read")
	f.Fuzz(func(t *testing.T, p, a string) {
		if len(p) > 200 || len(a) > 200 {
			return
		}
		MatchAction(p, a)
		if !MatchAction(a, a) && !strings.Contains(a, "*") {
			t.Fatalf("%q does not match itself", a)
		}
	})
}
