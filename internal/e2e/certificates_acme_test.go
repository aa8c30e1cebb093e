package e2e

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/x509"
	"encoding/hex"
	"encoding/json"
	"io"
	"log"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/keyward/keyward/internal/acme"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
	"github.com/keyward/keyward/internal/vault"
	"github.com/letsencrypt/challtestsrv"
	"github.com/letsencrypt/pebble/v2/ca"
	"github.com/letsencrypt/pebble/v2/db"
	"github.com/letsencrypt/pebble/v2/va"
	"github.com/letsencrypt/pebble/v2/wfe"
)

// The EAB key Pebble requires for new accounts (base64url, as ACME CAs
// hand them out).
const (
	eabKeyID = "kid-keyward"
	eabKey   = "zWNDZM6eQGHWpSRTPal5eIUYFTu7EajVIoguysqZ9wG44nMEtx3MUAsUDkMTQ12W"
)

// freeUDPAndTCPPort returns a loopback port free for both protocols.
func freeUDPAndTCPPort(t *testing.T) string {
	t.Helper()
	for i := 0; i < 20; i++ {
		l, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		addr := l.Addr().String()
		u, err := net.ListenPacket("udp", addr)
		l.Close()
		if err == nil {
			u.Close()
			return addr
		}
	}
	t.Fatal("no free port")
	return ""
}

// startDNS runs challtestsrv as the DNS server Pebble's VA asks: every
// name resolves to 127.0.0.1 unless told otherwise; TXT records come from
// the challenge hook.
func startDNS(t *testing.T) (*challtestsrv.ChallSrv, string) {
	t.Helper()
	addr := freeUDPAndTCPPort(t)
	srv, err := challtestsrv.New(challtestsrv.Config{DNSAddrs: []string{addr}, Log: log.New(io.Discard, "", 0)})
	if err != nil {
		t.Fatal(err)
	}
	srv.SetDefaultDNSIPv4("127.0.0.1")
	srv.SetDefaultDNSIPv6("")
	srv.Run()
	t.Cleanup(srv.Shutdown)
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return srv, addr
		}
		if time.Now().After(deadline) {
			t.Fatalf("DNS server did not start: %v", err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// pebble is an in-process Pebble ACME server (its ca, db, va and wfe
// packages), validating HTTP-01 on httpPort and asking dnsAddr for names.
type pebble struct {
	dir   string
	roots *x509.CertPool // TLS of the directory (and the hook, same test cert)
	ca    *ca.CAImpl
}

func startPebble(t *testing.T, httpPort int, dnsAddr string) *pebble {
	t.Helper()
	t.Setenv("PEBBLE_VA_NOSLEEP", "1")
	t.Setenv("PEBBLE_WFE_NONCEREJECT", "0")
	t.Setenv("PEBBLE_AUTHZREUSE", "0")
	out := io.Discard
	if os.Getenv("KEYWARD_TEST_LOG") != "" {
		out = os.Stderr
	}
	logger := log.New(out, "pebble ", log.LstdFlags)
	store := db.NewMemoryStore()
	authority := ca.New(logger, store, "", "ecdsa", 0, 1, map[string]ca.Profile{"default": {Description: "default"}})
	validator := va.New(logger, httpPort, 0, false, dnsAddr, store)
	if err := store.AddExternalAccountKeyByID(eabKeyID, eabKey); err != nil {
		t.Fatal(err)
	}
	front := wfe.New(logger, store, validator, authority, []string{"pebble.letsencrypt.org"}, false, true, 0, 0)
	srv := httptest.NewTLSServer(front.Handler())
	t.Cleanup(srv.Close)
	return &pebble{dir: srv.URL + wfe.DirectoryPath, roots: srv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs, ca: authority}
}

// dnsHook is the operator's challenge hook: it checks Keyward's signature
// and puts DNS-01 TXT records into the test DNS server.
type dnsHook struct {
	t      *testing.T
	dns    *challtestsrv.ChallSrv
	secret []byte
	mu     sync.Mutex
	calls  []acme.Hook
	bad    int
}

func (h *dnsHook) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	body, _ := io.ReadAll(r.Body)
	ts, mac, _ := strings.Cut(r.Header.Get("Keyward-Signature"), ",v1=")
	m := hmac.New(sha256.New, h.secret)
	m.Write([]byte(strings.TrimPrefix(ts, "t=") + "."))
	m.Write(body)
	got, _ := hex.DecodeString(mac)
	h.mu.Lock()
	defer h.mu.Unlock()
	var call acme.Hook
	if !hmac.Equal(got, m.Sum(nil)) || json.Unmarshal(body, &call) != nil || call.Type != acme.DNS01 {
		h.bad++
		w.WriteHeader(http.StatusUnauthorized)
		return
	}
	h.calls = append(h.calls, call)
	switch call.Action {
	case "present":
		h.dns.AddDNSTXTRecord(call.DNSRecordName, call.DNSRecordValue)
	case "cleanup":
		h.dns.DeleteDNSTXTRecord(call.DNSRecordName)
	}
}

func waitOperation(t *testing.T, e *kwtest.Env, name string) azcertificates.CertificateOperation {
	t.Helper()
	deadline := time.Now().Add(45 * time.Second)
	for {
		op, err := certsClient(t, e).GetCertificateOperation(context.Background(), name, nil)
		if err != nil {
			t.Fatal(err)
		}
		if *op.Status != "inProgress" || time.Now().After(deadline) {
			return op.CertificateOperation
		}
		time.Sleep(100 * time.Millisecond)
	}
}

func TestCertificateACMEWithPebble(t *testing.T) {
	dnsSrv, dnsAddr := startDNS(t)
	hk := &dnsHook{t: t, dns: dnsSrv, secret: []byte("hook-signing-secret")}
	hookSrv := httptest.NewTLSServer(hk)
	defer hookSrv.Close()

	e := kwtest.Start(t, kwtest.Options{ACME: server.ACMEConfig{
		HTTP01Listen: "127.0.0.1:0", HookURL: hookSrv.URL + "/acme-hook", HookSecret: hk.secret,
		Roots: hookSrv.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs,
	}})
	_, portStr, _ := net.SplitHostPort(e.Server.ACMEHTTP01Addr())
	httpPort, _ := strconv.Atoi(portStr)
	pb := startPebble(t, httpPort, dnsAddr)
	cl := allClients(t, e)
	ctx := context.Background()

	// The ACME issuer: directory URL, EAB credentials, account contact.
	if _, err := cl.c.SetIssuer(ctx, "pebble", azcertificates.SetIssuerParameters{Provider: to.Ptr("ACME"),
		Credentials: &azcertificates.IssuerCredentials{AccountID: to.Ptr(eabKeyID), Password: to.Ptr(eabKey)},
		OrganizationDetails: &azcertificates.OrganizationDetails{ID: to.Ptr(pb.dir),
			AdminContacts: []*azcertificates.AdministratorContact{{Email: to.Ptr("admin@acme.test")}}}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err := cl.c.SetIssuer(ctx, "broken", azcertificates.SetIssuerParameters{Provider: to.Ptr("ACME"),
		OrganizationDetails: &azcertificates.OrganizationDetails{ID: to.Ptr("http://insecure.example/dir")}}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")

	acmePolicy := func(names ...string) *azcertificates.CertificatePolicy {
		var dns []*string
		for _, n := range names {
			dns = append(dns, to.Ptr(n))
		}
		return &azcertificates.CertificatePolicy{
			IssuerParameters: &azcertificates.IssuerParameters{Name: to.Ptr("pebble")},
			KeyProperties:    &azcertificates.KeyProperties{KeyType: to.Ptr(azcertificates.KeyTypeEC), Curve: to.Ptr(azcertificates.CurveNameP256), Exportable: to.Ptr(true)},
			SecretProperties: &azcertificates.SecretProperties{ContentType: to.Ptr(vault.ContentTypePEM)},
			X509CertificateProperties: &azcertificates.X509CertificateProperties{Subject: to.Ptr("CN=" + strings.TrimPrefix(names[0], "*.")),
				SubjectAlternativeNames: &azcertificates.SubjectAlternativeNames{DNSNames: dns}},
		}
	}
	roots := x509.NewCertPool()
	roots.AddCert(pb.ca.GetRootCert(0).Cert)
	verify := func(name string, dnsNames ...string) azcertificates.Certificate {
		t.Helper()
		cert, err := certsClient(t, e).GetCertificate(ctx, name, "", nil)
		if err != nil {
			t.Fatal(err)
		}
		chain := checkBacking(t, allClients(t, e), cert.Certificate, true)
		leaf := mustCert(t, cert.CER)
		inter := x509.NewCertPool()
		for _, c := range chain[1:] {
			inter.AddCert(c)
		}
		for _, d := range dnsNames {
			if _, err := leaf.Verify(x509.VerifyOptions{Roots: roots, Intermediates: inter, DNSName: strings.Replace(d, "*", "x", 1)}); err != nil {
				t.Fatalf("%s: the ACME certificate does not verify for %s: %v", name, d, err)
			}
		}
		if !slices.Equal(leaf.DNSNames, dnsNames) && len(leaf.DNSNames) != len(dnsNames) {
			t.Fatalf("%s: SANs %v, want %v", name, leaf.DNSNames, dnsNames)
		}
		return cert.Certificate
	}

	// HTTP-01, answered by Keyward's own responder.
	op, err := cl.c.CreateCertificate(ctx, "acme-http", azcertificates.CreateCertificateParameters{
		CertificatePolicy: acmePolicy("app.acme.test", "www.acme.test")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if *op.Status != "inProgress" || len(op.CSR) == 0 {
		t.Fatalf("ACME create: %s", dump(op.CertificateOperation))
	}
	done := waitOperation(t, e, "acme-http")
	if *done.Status != "completed" {
		t.Fatalf("ACME HTTP-01 order: %s %v", dump(done), done.Error)
	}
	first := verify("acme-http", "app.acme.test", "www.acme.test")

	// The account key is an ordinary key of the vault.
	acct, err := cl.k.GetKey(ctx, vault.AccountKeyName("pebble"), "", nil)
	if err != nil {
		t.Fatalf("ACME account key: %v", err)
	}
	if acct.Managed != nil && *acct.Managed {
		t.Fatal("the account key must be an ordinary key")
	}

	// DNS-01 through the hook: the only way to a wildcard.
	if _, err := cl.c.CreateCertificate(ctx, "acme-wild", azcertificates.CreateCertificateParameters{
		CertificatePolicy: acmePolicy("*.wild.acme.test")}, nil); err != nil {
		t.Fatal(err)
	}
	if done := waitOperation(t, e, "acme-wild"); *done.Status != "completed" {
		t.Fatalf("ACME DNS-01 order: %s", dump(done))
	}
	verify("acme-wild", "*.wild.acme.test")
	hk.mu.Lock()
	var actions []string
	for _, c := range hk.calls {
		actions = append(actions, c.Action)
		if c.Vault != "dev" || c.Certificate != "acme-wild" || c.DNSRecordName != "_acme-challenge.wild.acme.test." || c.DNSRecordValue == "" {
			t.Fatalf("hook call %+v", c)
		}
	}
	bad := hk.bad
	hk.mu.Unlock()
	if !slices.Equal(actions, []string{"present", "cleanup"}) || bad != 0 {
		t.Fatalf("hook calls %v (%d bad)", actions, bad)
	}
	if len(dnsSrv.GetDNSTXTRecords("_acme-challenge.wild.acme.test.")) != 0 {
		t.Fatal("the hook's cleanup did not run")
	}

	// A new version through the same issuer (what AutoRenew does).
	if _, err := cl.c.CreateCertificate(ctx, "acme-http", azcertificates.CreateCertificateParameters{}, nil); err != nil {
		t.Fatal(err)
	}
	if done := waitOperation(t, e, "acme-http"); *done.Status != "completed" {
		t.Fatalf("ACME renewal: %s", dump(done))
	}
	second := verify("acme-http", "app.acme.test", "www.acme.test")
	if second.ID.Version() == first.ID.Version() {
		t.Fatal("no new version")
	}

	// A name the CA cannot validate: the operation fails with an error.
	dnsSrv.AddDNSARecord("unreachable.acme.test", []string{"127.0.0.2"})
	if _, err := cl.c.CreateCertificate(ctx, "acme-fail", azcertificates.CreateCertificateParameters{
		CertificatePolicy: acmePolicy("unreachable.acme.test")}, nil); err != nil {
		t.Fatal(err)
	}
	failed := waitOperation(t, e, "acme-fail")
	if *failed.Status != "failed" || failed.Error == nil || failed.Error.Code != "CertificateIssuanceFailed" {
		t.Fatalf("failed order: %s", dump(failed))
	}
	_, err = cl.c.GetCertificate(ctx, "acme-fail", "", nil)
	wantErr(t, err, http.StatusNotFound, "CertificateNotFound")
	// Policies an ACME CA cannot serve are refused at once.
	bad2 := acmePolicy("ok.acme.test")
	bad2.X509CertificateProperties.SubjectAlternativeNames.Emails = []*string{to.Ptr("a@acme.test")}
	_, err = cl.c.CreateCertificate(ctx, "acme-bad", azcertificates.CreateCertificateParameters{CertificatePolicy: bad2}, nil)
	wantErr(t, err, http.StatusBadRequest, "BadParameter")
}
