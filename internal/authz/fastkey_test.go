package authz

import (
	"math/rand/v2"
	"testing"
)

// TestFastKeysMatchPlain: pkeyBytes and normScopeOf give exactly what pkey
// and normScope(s.String()) give, for ASCII, mixed-case, non-ASCII and
// empty parts at every scope level.
func TestFastKeysMatchPlain(t *testing.T) {
	pieces := []string{"", "a", "Z", "7f0b5a9e-1C2D-4e3f-8A9B-0c1d2e3f4a5b", "rg-Prod", "vault1", "keys", "secrets", "Name-X",
		"ÄÖÜ", "İstanbul", "café", "K", "/", "x/", "\x7f", "ß"}
	rng := rand.New(rand.NewPCG(1, 2))
	pick := func() string { return pieces[rng.IntN(len(pieces))] }
	for range 20000 {
		tenant, oid := pick(), pick()
		var buf [160]byte
		if k, ok := pkeyBytes(buf[:], tenant, oid); ok && string(k) != pkey(tenant, oid) {
			t.Fatalf("pkeyBytes(%q, %q) = %q, pkey %q", tenant, oid, k, pkey(tenant, oid))
		} else if !ok && isASCII(tenant) && isASCII(oid) {
			t.Fatalf("pkeyBytes(%q, %q) refused ASCII", tenant, oid)
		}
		s := Scope{SubscriptionID: pick(), ResourceGroup: pick(), Vault: pick(), ObjectType: pick(), ObjectName: pick()}
		if got, want := normScopeOf(s), normScope(s.String()); got != want {
			t.Fatalf("normScopeOf(%+v) = %q, want %q", s, got, want)
		}
	}
}

func isASCII(s string) bool {
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return false
		}
	}
	return true
}

func TestFastKeysAllocs(t *testing.T) {
	s := Scope{SubscriptionID: "00000000-0000-0000-0000-000000000001", ResourceGroup: "rg", Vault: "dev", ObjectType: "secrets", ObjectName: "bench"}
	var buf [160]byte
	m := map[string]int{"7f0b5a9e-1c2d-4e3f-8a9b-0c1d2e3f4a5b|1c2d3e4f": 1}
	if n := testing.AllocsPerRun(100, func() {
		k, _ := pkeyBytes(buf[:], "7F0B5A9E-1c2d-4e3f-8a9b-0c1d2e3f4a5b", "1C2D3E4F")
		if m[string(k)] != 1 {
			panic("lookup")
		}
	}); n != 0 {
		t.Errorf("pkeyBytes lookup: %v allocs", n)
	}
	if n := testing.AllocsPerRun(100, func() { normScopeOf(s) }); n != 1 {
		t.Errorf("normScopeOf: %v allocs, want 1", n)
	}
}
