package backupstore_test

import (
	"context"
	"errors"
	"net/netip"
	"path/filepath"
	"testing"

	"github.com/keyward/keyward/internal/backupstore"
	"github.com/keyward/keyward/internal/netguard"
)

// fixedLookup resolves every name to addrs, without a DNS server.
func fixedLookup(addrs ...string) func(context.Context, string) ([]netip.Addr, error) {
	return func(_ context.Context, host string) ([]netip.Addr, error) {
		var as []netip.Addr
		for _, a := range addrs {
			as = append(as, netip.MustParseAddr(a))
		}
		return as, nil
	}
}

// devGuard allows loopback (as the dev server does) and resolves every
// name to a public address.
func devGuard(t *testing.T) *netguard.Policy {
	g, err := netguard.New(nil, true)
	if err != nil {
		t.Fatal(err)
	}
	g.SetLookup(fixedLookup("20.60.0.1"))
	return g
}

func TestOpenRefusals(t *testing.T) {
	root := t.TempDir()
	opts := backupstore.Options{LocalRoot: root, Guard: devGuard(t)}
	for _, uri := range []string{
		"http://example.com/c",                  // clear text off loopback
		"http://10.0.0.1:10000/acct/c",          // likewise
		"https://acct.blob.example/c?sig=x",     // SAS in the URL
		"ftp://127.0.0.1/c",                     // scheme
		"file:///etc",                           // outside the local root
		"file://" + filepath.Join(root, "../x"), // escapes the root
		"not a url",
	} {
		if _, err := backupstore.Open(context.Background(), uri, "", opts); err == nil {
			t.Errorf("Open(%q) succeeded", uri)
		}
	}
	if _, err := backupstore.Open(context.Background(), "file://"+root, "", backupstore.Options{}); err == nil {
		t.Error("a local directory was opened without a local root")
	}
	for _, uri := range []string{"http://127.0.0.1:10000/devstoreaccount1/c", "http://localhost:1/a/b", "https://acct.blob.core.windows.net/c"} {
		if _, err := backupstore.Open(context.Background(), uri, "?sv=1&sig=abc", opts); err != nil {
			t.Errorf("Open(%q): %v", uri, err)
		}
	}
}

// TestOpenRefusesPrivateDestinations: by default (no allowed_hosts, not
// dev) a container on loopback, a private network, link-local (cloud
// metadata) or a name resolving there is refused before anything is
// sent; allowed_hosts restricts names and opens the addresses it lists.
func TestOpenRefusesPrivateDestinations(t *testing.T) {
	ctx := context.Background()
	def, _ := netguard.New(nil, false)
	def.SetLookup(fixedLookup("20.60.0.1", "10.0.0.7")) // one address private: refused
	for _, uri := range []string{
		"http://127.0.0.1:10000/devstoreaccount1/c", "http://localhost:1/a/b", "http://[::1]:1/a/b",
		"https://10.1.2.3/a/c", "https://192.168.0.1/a/c", "https://172.16.0.1/a/c", "https://100.64.0.1/a/c",
		"https://169.254.169.254/a/c", "https://[fe80::1]/a/c", "https://[fd00::1]/a/c", "https://[::ffff:127.0.0.1]/a/c",
		"https://0.0.0.0/a/c", "https://[64:ff9b::a00:1]/a/c", "https://acct.blob.example/c",
	} {
		if _, err := backupstore.Open(ctx, uri, "sig=x", backupstore.Options{Guard: def}); !errors.Is(err, netguard.ErrRefused) {
			t.Errorf("Open(%q) by default: %v", uri, err)
		}
	}
	public, _ := netguard.New(nil, false)
	public.SetLookup(fixedLookup("20.60.0.1"))
	if _, err := backupstore.Open(ctx, "https://acct.blob.example/c", "sig=x", backupstore.Options{Guard: public}); err != nil {
		t.Errorf("a public container: %v", err)
	}

	list, err := netguard.New([]string{"*.blob.core.windows.net", "127.0.0.1", "10.9.0.0/16", "minio.corp"}, false)
	if err != nil {
		t.Fatal(err)
	}
	list.SetLookup(fixedLookup("192.168.4.4"))
	for _, uri := range []string{"http://127.0.0.1:10000/devstoreaccount1/c", "https://10.9.3.4/a/c", "https://minio.corp/a/c"} {
		if _, err := backupstore.Open(ctx, uri, "sig=x", backupstore.Options{Guard: list}); err != nil {
			t.Errorf("Open(%q) with it listed: %v", uri, err)
		}
	}
	for _, uri := range []string{
		"http://localhost:10000/a/c",           // a name not listed (although 127.0.0.1 is)
		"https://10.8.0.1/a/c",                 // outside the listed CIDR
		"https://other.example/a/c",            // not listed
		"https://acct.blob.core.windows.net/c", // listed by wildcard, but resolves to a private address
		"https://blob.core.windows.net.evil.example/c",
	} {
		if _, err := backupstore.Open(ctx, uri, "sig=x", backupstore.Options{Guard: list}); !errors.Is(err, netguard.ErrRefused) {
			t.Errorf("Open(%q) with allowed_hosts: %v", uri, err)
		}
	}
}

func TestLocalDirectory(t *testing.T) {
	root := t.TempDir()
	st, err := backupstore.Open(context.Background(), "file://"+filepath.Join(root, "pool1"), "", backupstore.Options{LocalRoot: root})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if err := st.Put(ctx, "f1/backup.kwbak", []byte("sealed")); err != nil {
		t.Fatal(err)
	}
	if got, err := st.Get(ctx, "f1/backup.kwbak"); err != nil || string(got) != "sealed" {
		t.Fatalf("Get: %q %v", got, err)
	}
	if err := st.Put(ctx, "../../escape", []byte("x")); err == nil {
		t.Error("a name escaped the directory")
	}
	if _, err := st.Get(ctx, "f2/backup.kwbak"); err == nil {
		t.Error("a missing backup was read")
	}
}
