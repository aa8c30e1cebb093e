package e2e

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
)

// TestWorkloadIdentityIssuerDiscovery: a federated credential whose issuer
// serves its discovery document and key set over HTTPS (no upload). The
// dev server reaches a loopback issuer; a server whose [federation]
// allowed_hosts does not name it never connects to it and answers the
// unmodified WorkloadIdentityCredential AADSTS700211.
func TestWorkloadIdentityIssuerDiscovery(t *testing.T) {
	ti := newTestIssuer(t)
	var discoveries atomic.Int64
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/.well-known/openid-configuration":
			discoveries.Add(1)
			json.NewEncoder(w).Encode(map[string]string{"issuer": ti.iss, "jwks_uri": ti.iss + "/openid/v1/jwks"})
		case "/openid/v1/jwks":
			w.Write(ti.jwks())
		default:
			http.NotFound(w, r)
		}
	}))
	defer srv.Close()
	ti.iss = srv.URL // a cluster's service-account issuer, on loopback here
	roots := x509.NewCertPool()
	roots.AddCert(srv.Certificate())
	const sub = "system:serviceaccount:default:workload"

	setup := func(e *kwtest.Env) func(token string) azcore.TokenCredential {
		sp := newSP(t, e, "workload-app")
		readerOfS(t, e, sp.ObjectID)
		fic := map[string]any{"issuer": ti.iss, "subject": sub, "audiences": []string{"api://AzureADTokenExchange"}}
		if r := dirCall(t, e, e.Credential(), http.MethodPut, "/providers/Keyward.Directory/servicePrincipals/"+sp.AppID+"/federatedIdentityCredentials/k8s", fic, nil); r.Status != http.StatusOK {
			t.Fatalf("federated credential: %d %s", r.Status, r.Body)
		}
		dir := t.TempDir()
		return func(token string) azcore.TokenCredential {
			f := filepath.Join(dir, fmt.Sprintf("token-%d", time.Now().UnixNano()))
			if err := os.WriteFile(f, []byte(token), 0o600); err != nil {
				t.Fatal(err)
			}
			c, err := azidentity.NewWorkloadIdentityCredential(&azidentity.WorkloadIdentityCredentialOptions{ClientOptions: idOptions(e),
				ClientID: sp.AppID, TenantID: e.Info.TenantID, TokenFilePath: f, DisableInstanceDiscovery: true})
			if err != nil {
				t.Fatal(err)
			}
			return c
		}
	}

	// Dev server: loopback issuers are allowed (as loopback backups are).
	dev := kwtest.Start(t, kwtest.Options{IssuerRoots: roots})
	readS(t, dev, "workload identity through issuer discovery", setup(dev)(ti.token(t, sub, "api://AzureADTokenExchange")))
	if discoveries.Load() == 0 {
		t.Fatal("the issuer's discovery document was never fetched")
	}

	// A list that does not name the issuer: refused before any connection.
	before := discoveries.Load()
	strict := kwtest.Start(t, kwtest.Options{IssuerRoots: roots, Federation: server.BackupConfig{AllowedHosts: []string{"oidc.cluster-1.example"}}})
	cred := setup(strict)
	_, err := cred(ti.token(t, sub, "api://AzureADTokenExchange")).GetToken(context.Background(), tokenOpts(strict))
	if err == nil || !strings.Contains(err.Error(), "AADSTS700211") {
		t.Fatalf("issuer not in [federation] allowed_hosts: %v", err)
	}
	if strings.Contains(err.Error(), "allowed_hosts") || strings.Contains(err.Error(), "not public") {
		t.Fatalf("the refusal's detail reached the client: %v", err)
	}
	if n := discoveries.Load() - before; n != 0 {
		t.Fatalf("refused issuer was asked %d times", n)
	}
	findAudit(t, strict, "federated token from a refused issuer", func(ev audit.Event) bool {
		return ev.Operation == "TokenIssue" && ev.Result == audit.Unauthenticated && ev.ErrorCode == "invalid_client"
	})
}
