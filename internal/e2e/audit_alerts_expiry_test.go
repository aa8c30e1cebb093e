package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"io"
	"math/big"
	"net/http"
	"net/http/httptest"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keyward/keyward/internal/alerts"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
	"github.com/keyward/keyward/internal/vault"
)

// TestAuditAlertNearExpiry (issue #17): the built-in near-expiry rule
// announces a key, a secret and a certificate once per threshold (30, 7
// and 1 days) as the injected clock passes them, to a signed webhook;
// running the job again, or after expiry, announces nothing more, and a
// certificate's own key and secret are not announced.
func TestAuditAlertNearExpiry(t *testing.T) {
	const day = 24 * time.Hour
	secret := []byte("expiry-alert-secret")
	var mu sync.Mutex
	got := map[string]int{} // group → signed deliveries
	bad := 0
	var last alerts.Alert
	hook := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		body, _ := io.ReadAll(r.Body)
		var a alerts.Alert
		mu.Lock()
		defer mu.Unlock()
		if !alerts.VerifySignature(secret, body, r.Header.Get(alerts.SignatureHeader)) || json.Unmarshal(body, &a) != nil || a.Rule != alerts.NearExpiry {
			bad++
			w.WriteHeader(http.StatusBadRequest)
			return
		}
		got[a.Group]++
		last = a
	}))
	defer hook.Close()
	clk := clock.NewFake(time.Now().UTC().Truncate(time.Second))
	t0 := clk.Now()
	e := kwtest.Start(t, kwtest.Options{Clock: clk, EventRoots: hook.Client().Transport.(*http.Transport).TLSClientConfig.RootCAs,
		Alerts: server.AlertsConfig{
			DisableBuiltin: []string{"first-read", "auth-failure-burst", "access-change", "network-rule-change", "seal-change", "purge-or-vault-delete"},
			Webhooks:       []server.AlertWebhook{{Name: "hook", URL: hook.URL, Secret: string(secret)}}}})
	ctx := context.Background()

	sec, err := clientFor(t, e, e.Info.VaultURL, e.Credential()).SetSecret(ctx, "expiring", azsecrets.SetSecretParameters{Value: to.Ptr("v"),
		SecretAttributes: &azsecrets.SecretAttributes{Expires: to.Ptr(t0.Add(10 * day))}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, err := keysClient(t, e).CreateKey(ctx, "expiring", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC),
		Curve: to.Ptr(azkeys.CurveNameP256), KeyAttributes: &azkeys.KeyAttributes{Expires: to.Ptr(t0.Add(40 * day))}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := clientFor(t, e, e.Info.VaultURL, e.Credential()).SetSecret(ctx, "lasting", azsecrets.SetSecretParameters{Value: to.Ptr("v"),
		SecretAttributes: &azsecrets.SecretAttributes{Expires: to.Ptr(t0.Add(400 * day))}}, nil); err != nil {
		t.Fatal(err)
	}
	// A certificate valid for 20 more days (imported: its key and secret
	// are managed and expire with it).
	ecKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "expiring.example.com"},
		NotBefore: t0.Add(-day), NotAfter: t0.Add(20 * day), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &ecKey.PublicKey, ecKey)
	if err != nil {
		t.Fatal(err)
	}
	sec1, _ := x509.MarshalECPrivateKey(ecKey)
	bundle := string(append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), pem.EncodeToMemory(&pem.Block{Type: "EC PRIVATE KEY", Bytes: sec1})...))
	cert, err := certsClient(t, e).ImportCertificate(ctx, "expiring-cert", azcertificates.ImportCertificateParameters{Base64EncodedCertificate: &bundle,
		CertificatePolicy: &azcertificates.CertificatePolicy{SecretProperties: &azcertificates.SecretProperties{ContentType: to.Ptr(vault.ContentTypePEM)}}}, nil)
	if err != nil {
		t.Fatal(err)
	}
	secID, keyID, certID := string(*sec.ID), string(*key.Key.KID), string(*cert.ID)

	run := func(advance time.Duration) {
		t.Helper()
		since := clk.Now().Add(time.Second)
		clk.Advance(advance)
		if err := e.Server.Jobs().WaitRunSince(ctx, server.JobExpiryAlerts, since); err != nil {
			t.Fatal(err)
		}
		e.Server.Alerts().Wait()
	}
	check := func(step string, want ...string) {
		t.Helper()
		mu.Lock()
		defer mu.Unlock()
		var have []string
		for g, n := range got {
			if n != 1 {
				t.Errorf("%s: %q delivered %d times", step, g, n)
			}
			have = append(have, g)
		}
		sort.Strings(have)
		sort.Strings(want)
		if strings.Join(have, "\n") != strings.Join(want, "\n") || bad != 0 {
			t.Fatalf("%s: delivered\n%s\nwant\n%s\n(%d bad deliveries)", step, strings.Join(have, "\n"), strings.Join(want, "\n"), bad)
		}
	}
	// Secret 10 days, certificate 20: both within 30 days (not 7).
	run(time.Minute)
	check("first run", secID+" 30d", certID+" 30d")
	if last.Expires == nil || last.Vault == "" || !strings.HasSuffix(last.Operation, "NearExpiry") {
		t.Fatalf("alert without expiry, vault or operation: %+v", last)
	}
	run(time.Minute)
	check("second run", secID+" 30d", certID+" 30d")
	run(4 * day) // secret 6 days left
	check("day 4", secID+" 30d", certID+" 30d", secID+" 7d")
	run(5*day + 12*time.Hour) // secret 12 hours left, key 30.5 days
	check("day 9.5", secID+" 30d", certID+" 30d", secID+" 7d", secID+" 1d")
	run(day) // secret expired; key 29.5 days left
	check("day 10.5", secID+" 30d", certID+" 30d", secID+" 7d", secID+" 1d", keyID+" 30d")
	run(7 * day) // certificate 2.5 days left, key 22.5
	check("day 17.5", secID+" 30d", certID+" 30d", secID+" 7d", secID+" 1d", keyID+" 30d", certID+" 7d")
	run(time.Minute)
	check("again", secID+" 30d", certID+" 30d", secID+" 7d", secID+" 1d", keyID+" 30d", certID+" 7d")
}
