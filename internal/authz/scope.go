package authz

import (
	"fmt"
	"strings"
)

// ARM scope strings, the four levels of role assignment (plus the tenant
// root "/" for Keyward's own instance and directory roles):
//
//	/
//	/subscriptions/{sub}
//	/subscriptions/{sub}/resourceGroups/{rg}
//	/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{vault}
//	/subscriptions/{sub}/resourceGroups/{rg}/providers/Microsoft.KeyVault/vaults/{vault}/{keys|secrets|certificates}/{name}
//
// Comparisons are case-insensitive, as in Azure.

// String returns the ARM scope string of s, in Azure's casing.
func (s Scope) String() string {
	if s.SubscriptionID == "" {
		return "/"
	}
	b := "/subscriptions/" + s.SubscriptionID
	if s.ResourceGroup == "" {
		return b
	}
	b += "/resourceGroups/" + s.ResourceGroup
	if s.Vault == "" {
		return b
	}
	b += "/providers/Microsoft.KeyVault/vaults/" + s.Vault
	if s.ObjectType == "" || s.ObjectName == "" {
		return b
	}
	return b + "/" + s.ObjectType + "/" + s.ObjectName
}

// Level names the level of a scope: "root", "subscription",
// "resourceGroup", "vault" or "object".
func (s Scope) Level() string {
	switch {
	case s.SubscriptionID == "":
		return "root"
	case s.ResourceGroup == "":
		return "subscription"
	case s.Vault == "":
		return "resourceGroup"
	case s.ObjectType == "" || s.ObjectName == "":
		return "vault"
	}
	return "object"
}

// ParseScope parses an ARM scope string into a Scope (without tenant).
// It accepts exactly the five shapes above.
func ParseScope(str string) (Scope, error) {
	if str == "" || str == "/" {
		return Scope{}, nil
	}
	if len(str) > 1024 || !strings.HasPrefix(str, "/") {
		return Scope{}, fmt.Errorf("authz: scope must start with /")
	}
	segs := strings.Split(strings.TrimSuffix(str[1:], "/"), "/")
	for _, s := range segs {
		if s == "" || strings.ContainsAny(s, " \t\r\n?#%") {
			return Scope{}, fmt.Errorf("authz: malformed scope")
		}
	}
	var sc Scope
	want := func(i int, lit string) bool { return len(segs) > i && strings.EqualFold(segs[i], lit) }
	if !want(0, "subscriptions") || len(segs) < 2 {
		return Scope{}, fmt.Errorf("authz: scope must be / or start with /subscriptions/{id}")
	}
	sc.SubscriptionID = segs[1]
	switch len(segs) {
	case 2:
		return sc, nil
	case 4:
		if want(2, "resourceGroups") {
			sc.ResourceGroup = segs[3]
			return sc, nil
		}
	case 8, 10:
		if want(2, "resourceGroups") && want(4, "providers") && want(5, "Microsoft.KeyVault") && want(6, "vaults") {
			sc.ResourceGroup, sc.Vault = segs[3], segs[7]
			if len(segs) == 8 {
				return sc, nil
			}
			switch t := strings.ToLower(segs[8]); t {
			case "keys", "secrets", "certificates":
				sc.ObjectType, sc.ObjectName = t, segs[9]
				return sc, nil
			}
		}
	}
	return Scope{}, fmt.Errorf("authz: unsupported scope")
}

// normScope is the lower-case form of an ARM scope used for inheritance:
// no trailing slash, "/" for the root.
func normScope(s string) string {
	s = strings.ToLower(strings.TrimSuffix(s, "/"))
	if s == "" {
		return "/"
	}
	return s
}

// covers reports whether an assignment at scope a applies to a request at
// scope r: r is a or lies below it.
func covers(a, r string) bool {
	if a == "/" {
		return true
	}
	return r == a || (len(r) > len(a) && strings.HasPrefix(r, a) && r[len(a)] == '/')
}
