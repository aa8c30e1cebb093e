package authz

import "strings"

// Allocation-free forms of pkey and normScope(s.String()) for Decide, which
// runs on every request. Both give exactly what the plain forms give (see
// fastkey_test.go); inputs that are not all ASCII take the plain forms.

// appendLowerASCII appends s lower-cased; ok is false when s is not ASCII
// (strings.ToLower would then apply Unicode's mapping).
func appendLowerASCII(b []byte, s string) ([]byte, bool) {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c >= 0x80 {
			return b, false
		}
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		b = append(b, c)
	}
	return b, true
}

// pkeyBytes is pkey(tenant, oid) appended to buf, for a map lookup with
// m[string(k)] (which does not allocate); ok is false when the plain
// pkey must be used.
func pkeyBytes(buf []byte, tenant, oid string) (k []byte, ok bool) {
	k, ok = appendLowerASCII(buf[:0], tenant)
	if !ok {
		return nil, false
	}
	k = append(k, '|')
	return appendLowerASCII(k, oid)
}

// normScopeOf is normScope(s.String()) built in one allocation.
func normScopeOf(s Scope) string {
	if s.SubscriptionID == "" {
		return "/"
	}
	parts := [...]string{"/subscriptions/", s.SubscriptionID, "/resourceGroups/", s.ResourceGroup,
		"/providers/Microsoft.KeyVault/vaults/", s.Vault, "/", s.ObjectType, "/", s.ObjectName}
	n := 2
	switch {
	case s.ResourceGroup == "":
	case s.Vault == "":
		n = 4
	case s.ObjectType == "" || s.ObjectName == "":
		n = 6
	default:
		n = 10
	}
	size := 0
	for _, p := range parts[:n] {
		size += len(p)
	}
	var b strings.Builder
	b.Grow(size)
	for _, p := range parts[:n] {
		for i := 0; i < len(p); i++ {
			c := p[i]
			if c >= 0x80 {
				return normScope(s.String())
			}
			if 'A' <= c && c <= 'Z' {
				c += 'a' - 'A'
			}
			b.WriteByte(c)
		}
	}
	out := strings.TrimSuffix(b.String(), "/")
	if out == "" {
		return "/"
	}
	return out
}
