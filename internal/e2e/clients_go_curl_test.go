package e2e

import (
	"context"
	"crypto/sha256"
	"encoding/json"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/kwtest"
)

// goModVersion reads a module's version from go.mod: the version the Go
// rows of docs/CLIENTS.md were tested with.
func goModVersion(t *testing.T, module string) string {
	t.Helper()
	raw, err := os.ReadFile("../../go.mod")
	if err != nil {
		t.Fatal(err)
	}
	m := regexp.MustCompile(`(?m)^\s*` + regexp.QuoteMeta(module) + `\s+(v\S+)`).FindSubmatch(raw)
	if m == nil {
		t.Fatalf("go.mod has no %s", module)
	}
	return string(m[1])
}

// TestGoSDKMatrix: the Azure SDK for Go, one representative call per
// package and credential, recorded for docs/CLIENTS.md (the e2e tests
// cover each package in depth).
func TestGoSDKMatrix(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	sdk := "github.com/Azure/azure-sdk-for-go/sdk/"
	ver := func(m string) string {
		return strings.TrimPrefix(m, "security/keyvault/") + " " + goModVersion(t, sdk+m)
	}
	var results []clientResult
	check := func(version, feature string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %s: %v", version, feature, err)
		}
		results = append(results, clientResult{Client: "Go", Version: version, Feature: feature, OK: err == nil})
	}
	mi := newManagedIdentity(t, e, "go-mi", nil)
	readerOfS(t, e, mi.ObjectID)
	getS := func(cred azcore.TokenCredential) error {
		c, err := azsecrets.NewClient(e.Info.VaultURL, cred, &azsecrets.ClientOptions{ClientOptions: e.ClientOptions()})
		if err != nil {
			return err
		}
		_, err = c.GetSecret(ctx, "s", "", nil)
		return err
	}
	id := ver("azidentity")
	check(id, "ClientSecretCredential (ActiveDirectoryAuthorityHost, DisableInstanceDiscovery)", getS(e.Credential()))
	check(id, "ManagedIdentityCredential: IDENTITY_ENDPOINT/IDENTITY_HEADER", getS(mi.credential(t, e)))
	dac, err := azidentity.NewDefaultAzureCredential(&azidentity.DefaultAzureCredentialOptions{ClientOptions: azcore.ClientOptions{Transport: e.HTTP}})
	if err == nil {
		err = getS(dac)
	}
	check(id, "DefaultAzureCredential: IDENTITY_ENDPOINT/IDENTITY_HEADER only", err)

	sc := secretsClient(t, e)
	_, err = sc.SetSecret(ctx, "go-matrix", azsecrets.SetSecretParameters{Value: to.Ptr("x")}, nil)
	if err == nil {
		_, err = sc.GetSecret(ctx, "go-matrix", "", nil)
	}
	check(ver("security/keyvault/azsecrets"), "secrets (api-version 2026-04-01)", err)

	kc := keysClient(t, e)
	k, err := kc.CreateKey(ctx, "go-matrix", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256)}, nil)
	if err == nil {
		d := sha256.Sum256([]byte("m"))
		var s azkeys.SignResponse
		s, err = kc.Sign(ctx, "go-matrix", k.Key.KID.Version(), azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: d[:]}, nil)
		if err == nil && !verifyLocally(t, k.Key, azkeys.SignatureAlgorithmES256, d[:], s.Result) {
			err = errString("signature does not verify locally")
		}
	}
	check(ver("security/keyvault/azkeys"), "keys and crypto, verified locally (api-version 2025-07-01)", err)

	cc := certsClient(t, e)
	_, err = cc.CreateCertificate(ctx, "go-matrix-cert", azcertificates.CreateCertificateParameters{CertificatePolicy: &azcertificates.CertificatePolicy{
		IssuerParameters:          &azcertificates.IssuerParameters{Name: to.Ptr("Self")},
		X509CertificateProperties: &azcertificates.X509CertificateProperties{Subject: to.Ptr("CN=go")},
		KeyProperties:             &azcertificates.KeyProperties{KeyType: to.Ptr(azcertificates.KeyTypeEC), Curve: to.Ptr(azcertificates.CurveNameP256)}}}, nil)
	if err == nil {
		var op azcertificates.GetCertificateOperationResponse
		op, err = cc.GetCertificateOperation(ctx, "go-matrix-cert", nil)
		if err == nil && *op.Status != "completed" {
			err = errString("operation " + *op.Status)
		}
	}
	check(ver("security/keyvault/azcertificates"), "certificates: create, poll the pending operation (api-version 7.6)", err)

	_, err = vaultsARM(t, e, e.Credential()).Get(ctx, e.Info.ResourceGroup, devVaultName(e), nil)
	check("armkeyvault/v2 "+goModVersion(t, sdk+"resourcemanager/keyvault/armkeyvault/v2"), "management: vaults get", err)

	recordClients(t, "go", clientRun{Client: "Go", Environment: map[string]string{"azcore": goModVersion(t, sdk+"azcore")}, Results: results})
}

type errString string

func (e errString) Error() string { return string(e) }

// TestCurl: plain HTTPS, as a shell script or any HTTP library would do
// it: a token from the token endpoint (client credentials) and from the
// managed-identity endpoint, then the data plane. curl's --resolve maps
// the names, --cacert trusts the dev CA.
func TestCurl(t *testing.T) {
	curl, err := exec.LookPath("curl")
	if err != nil {
		missingDep(t, "curl", "apt-get install curl")
	}
	e := kwtest.Start(t, kwtest.Options{})
	mi := newManagedIdentity(t, e, "curl-mi", nil)
	readerOfS(t, e, mi.ObjectID)
	port := port(e)
	vaultHost := strings.TrimPrefix(strings.TrimSuffix(e.Info.VaultURL, "/"), "https://")
	vaultHost = vaultHost[:strings.LastIndexByte(vaultHost, ':')]
	authHost, _ := url.Parse(e.Info.AuthorityHost)
	base := []string{"-sS", "--max-time", "30", "--cacert", e.Server.CAFile(),
		"--resolve", vaultHost + ":" + port + ":127.0.0.1", "--resolve", authHost.Hostname() + ":" + port + ":127.0.0.1"}
	env := []string{"PATH=/usr/bin:/bin", "HOME=" + t.TempDir()}
	run := func(args ...string) (string, error) {
		t.Helper()
		return runLogged(t, 45*time.Second, env, curl, append(append([]string{}, base...), args...)...)
	}
	version := "curl"
	if out, err := runLogged(t, 10*time.Second, env, curl, "--version"); err == nil {
		version = strings.Join(strings.Fields(out)[:2], " ")
	}
	var results []clientResult
	check := func(feature string, err error) {
		t.Helper()
		if err != nil {
			t.Errorf("%s: %v", feature, err)
		}
		results = append(results, clientResult{Client: "curl", Version: version, Feature: feature, OK: err == nil})
	}
	token := func(out string, err error) (string, error) {
		if err != nil {
			return "", err
		}
		var tok struct {
			AccessToken string `json:"access_token"`
		}
		if json.Unmarshal([]byte(out), &tok) != nil || tok.AccessToken == "" {
			return "", errString("no access_token in " + strings.SplitN(out, ",", 2)[0])
		}
		return tok.AccessToken, nil
	}
	getS := func(tok string) error {
		out, err := run("-H", "Authorization: Bearer "+tok, e.Info.VaultURL+"secrets/s?api-version=7.6")
		if err == nil && !strings.Contains(out, `"value":"v"`) {
			err = errString("secret: " + out)
		}
		return err
	}
	out, err := run("-i", e.Info.VaultURL+"secrets/s?api-version=7.6")
	if err == nil && (!strings.Contains(out, " 401") || !strings.Contains(strings.ToLower(out), "www-authenticate: bearer authorization=")) {
		err = errString("no 401 challenge")
	}
	check("401 challenge without a token", err)
	resource := "https://vault.localhost:" + port
	tok, err := token(run("-d", "grant_type=client_credentials", "--data-urlencode", "client_id="+e.Info.ClientID,
		"--data-urlencode", "client_secret="+e.Info.ClientSecret, "--data-urlencode", "scope="+resource+"/.default",
		e.Info.AuthorityHost+e.Info.TenantID+"/oauth2/v2.0/token"))
	if err == nil {
		err = getS(tok)
	}
	check("client credentials token, then GET a secret", err)
	tok, err = token(run("-G", "-H", "X-IDENTITY-HEADER: "+mi.Header, "--data-urlencode", "api-version=2019-08-01",
		"--data-urlencode", "resource="+resource, "--data-urlencode", "client_id="+mi.ClientID, mi.Endpoint))
	if err == nil {
		err = getS(tok)
	}
	check("managed-identity token (IDENTITY_ENDPOINT, X-IDENTITY-HEADER), then GET a secret", err)
	recordClients(t, "curl", clientRun{Client: "curl", Results: results})
}
