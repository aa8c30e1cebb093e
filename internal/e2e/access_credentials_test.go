package e2e

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/golang-jwt/jwt/v5"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/kwtest"
)

// idOptions are the azcore options every azidentity credential in these
// tests uses: the authority host and transport (IDENTITY.md §1).
func idOptions(e *kwtest.Env) azcore.ClientOptions {
	return azcore.ClientOptions{Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: e.Info.AuthorityHost}, Transport: e.HTTP}
}

// readerOfS grants Key Vault Secrets User on the dev vault and makes the
// secret "s" the tests read.
func readerOfS(t *testing.T, e *kwtest.Env, oid string) {
	t.Helper()
	assign(t, e, e.Credential(), vaultScope(e, devVaultName(e)), authz.RoleKeyVaultSecretsUser, oid)
	if _, err := secretsClient(t, e).SetSecret(context.Background(), "s", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
}

func readS(t *testing.T, e *kwtest.Env, what string, cred azcore.TokenCredential) {
	t.Helper()
	s, err := secretsFor(t, e, e.Info.VaultURL, cred).GetSecret(context.Background(), "s", "", nil)
	if err != nil || *s.Value != "v" {
		t.Fatalf("%s: %v", what, err)
	}
}

func selfSigned(t *testing.T, cn string) (*x509.Certificate, *rsa.PrivateKey) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), KeyUsage: x509.KeyUsageDigitalSignature}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	return cert, key
}

// TestClientCertificateCredential: the unmodified ClientCertificateCredential
// (PS256 assertion, x5t#S256; with and without x5c) against a certificate
// registered on the application.
func TestClientCertificateCredential(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	sp := newSP(t, e, "cert-app")
	readerOfS(t, e, sp.ObjectID)
	cert, key := selfSigned(t, "cert-app")
	pemCert := string(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw}))
	if r := dirCall(t, e, e.Credential(), http.MethodPost, "/providers/Keyward.Directory/servicePrincipals/"+sp.AppID+"/certificates", map[string]string{"certificate": pemCert}, nil); r.Status != http.StatusCreated {
		t.Fatalf("register certificate: %d %s", r.Status, r.Body)
	}
	for _, chain := range []bool{false, true} {
		cred, err := azidentity.NewClientCertificateCredential(e.Info.TenantID, sp.AppID, []*x509.Certificate{cert}, key,
			&azidentity.ClientCertificateCredentialOptions{ClientOptions: idOptions(e), DisableInstanceDiscovery: true, SendCertificateChain: chain})
		if err != nil {
			t.Fatal(err)
		}
		readS(t, e, fmt.Sprintf("certificate credential (x5c %v)", chain), cred)
		tok, err := cred.GetToken(context.Background(), tokenOpts(e))
		if err != nil {
			t.Fatal(err)
		}
		if _, c := jwtClaims(t, tok.Token); c["azpacr"] != "2" || c["oid"] != sp.ObjectID {
			t.Fatalf("certificate token claims %v", c)
		}
	}
	// An unregistered certificate is refused.
	other, otherKey := selfSigned(t, "intruder")
	cred, _ := azidentity.NewClientCertificateCredential(e.Info.TenantID, sp.AppID, []*x509.Certificate{other}, otherKey,
		&azidentity.ClientCertificateCredentialOptions{ClientOptions: idOptions(e), DisableInstanceDiscovery: true})
	if _, err := cred.GetToken(context.Background(), tokenOpts(e)); err == nil || !strings.Contains(err.Error(), "AADSTS700027") {
		t.Fatalf("unregistered certificate: %v", err)
	}
}

// testIssuer is an external OIDC issuer (a Kubernetes cluster's service
// account issuer) whose key set is uploaded to Keyward (air-gapped).
type testIssuer struct {
	iss string
	key *rsa.PrivateKey
	kid string
}

func newTestIssuer(t *testing.T) *testIssuer {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	return &testIssuer{iss: "https://oidc.k8s.localtest/cluster-1", key: key, kid: "k8s-key-1"}
}

func (ti *testIssuer) jwks() json.RawMessage {
	b64 := base64.RawURLEncoding.EncodeToString
	raw, _ := json.Marshal(map[string]any{"keys": []map[string]string{{"kty": "RSA", "use": "sig", "alg": "RS256", "kid": ti.kid,
		"n": b64(ti.key.N.Bytes()), "e": b64(big.NewInt(int64(ti.key.E)).Bytes())}}})
	return raw
}

func (ti *testIssuer) token(t *testing.T, sub, aud string) string {
	t.Helper()
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodRS256, jwt.MapClaims{"iss": ti.iss, "sub": sub, "aud": []string{aud},
		"iat": now.Unix(), "nbf": now.Unix(), "exp": now.Add(time.Hour).Unix()})
	tok.Header["kid"] = ti.kid
	s, err := tok.SignedString(ti.key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// TestWorkloadIdentityCredential: the unmodified WorkloadIdentityCredential
// exchanges a federated token (signed by a test issuer whose JWKS was
// uploaded) whose iss/sub/aud match a federated credential exactly; a
// token with another subject is refused and audited.
func TestWorkloadIdentityCredential(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	sp := newSP(t, e, "workload-app")
	readerOfS(t, e, sp.ObjectID)
	ti := newTestIssuer(t)
	if r := dirCall(t, e, e.Credential(), http.MethodPut, "/providers/Keyward.Directory/issuers", map[string]any{"issuer": ti.iss, "jwks": ti.jwks()}, nil); r.Status != http.StatusOK {
		t.Fatalf("upload jwks: %d %s", r.Status, r.Body)
	}
	const sub = "system:serviceaccount:default:workload"
	fic := map[string]any{"issuer": ti.iss, "subject": sub, "audiences": []string{"api://AzureADTokenExchange"}}
	if r := dirCall(t, e, e.Credential(), http.MethodPut, "/providers/Keyward.Directory/servicePrincipals/"+sp.AppID+"/federatedIdentityCredentials/k8s", fic, nil); r.Status != http.StatusOK {
		t.Fatalf("federated credential: %d %s", r.Status, r.Body)
	}
	dir := t.TempDir()
	cred := func(token string) azcore.TokenCredential {
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
	readS(t, e, "workload identity", cred(ti.token(t, sub, "api://AzureADTokenExchange")))

	for what, tc := range map[string]struct{ tok, code string }{
		"wrong subject":  {ti.token(t, "system:serviceaccount:default:other", "api://AzureADTokenExchange"), "AADSTS70021"},
		"wrong audience": {ti.token(t, sub, "api://other"), "AADSTS700212"},
		"wrong key": {func() string {
			o := newTestIssuer(t)
			return o.token(t, sub, "api://AzureADTokenExchange")
		}(), "AADSTS700027"},
	} {
		_, err := cred(tc.tok).GetToken(context.Background(), tokenOpts(e))
		if err == nil || !strings.Contains(err.Error(), tc.code) {
			t.Fatalf("%s: %v", what, err)
		}
	}
	findAudit(t, e, "federated token with wrong subject", func(ev audit.Event) bool {
		return ev.Operation == "TokenIssue" && ev.Caller.AppID == sp.AppID && ev.Result == audit.Unauthenticated && ev.ErrorCode == "invalid_client"
	})
}

// TestOnBehalfOfCompoundIdentity: a user (password + TOTP, signed in
// through the device-code flow) calls a middle-tier application, which
// exchanges the user's token with the unmodified OnBehalfOfCredential. An
// access-policy entry with applicationId matches only that compound
// identity: not the user directly, not the application alone.
func TestOnBehalfOfCompoundIdentity(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	middle := newSP(t, e, "middle-tier")
	var user struct{ ObjectID string }
	if r := dirCall(t, e, e.Credential(), http.MethodPost, "/providers/Keyward.Directory/users",
		map[string]string{"userPrincipalName": "alice@contoso.test", "displayName": "Alice", "password": "correct horse battery"}, &user); r.Status != http.StatusCreated {
		t.Fatalf("user: %d %s", r.Status, r.Body)
	}
	var totp struct{ Secret string }
	if r := dirCall(t, e, e.Credential(), http.MethodPost, "/providers/Keyward.Directory/users/"+user.ObjectID+"/totp", nil, &totp); r.Status != http.StatusOK {
		t.Fatalf("totp: %d %s", r.Status, r.Body)
	}
	secret, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(totp.Secret)
	if err != nil {
		t.Fatal(err)
	}
	createVault(t, e, e.Credential(), "obovault", false, []*armkeyvault.AccessPolicyEntry{
		{TenantID: to.Ptr(e.Info.TenantID), ObjectID: to.Ptr(devObjectID(t, e)),
			Permissions: &armkeyvault.Permissions{Secrets: []*armkeyvault.SecretPermissions{to.Ptr(armkeyvault.SecretPermissionsAll)}}},
		{TenantID: to.Ptr(e.Info.TenantID), ObjectID: to.Ptr(user.ObjectID), ApplicationID: to.Ptr(middle.AppID),
			Permissions: &armkeyvault.Permissions{Secrets: []*armkeyvault.SecretPermissions{to.Ptr(armkeyvault.SecretPermissionsGet)}}},
	})
	vurl := vaultURLOf(e, "obovault")
	if _, err := secretsFor(t, e, vurl, e.Credential()).SetSecret(ctx, "s", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}

	// The user signs in with the device code flow: the prompt fills in the
	// device page as a browser would, with password and TOTP.
	signIn := func(password, code string) func(context.Context, azidentity.DeviceCodeMessage) error {
		return func(ctx context.Context, m azidentity.DeviceCodeMessage) error {
			form := url.Values{"user_code": {m.UserCode}, "username": {"Alice@contoso.test"}, "password": {password}, "totp": {code}}
			resp, err := e.HTTP.PostForm(m.VerificationURL, form)
			if err != nil {
				return err
			}
			body, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				return fmt.Errorf("device page: %d %s", resp.StatusCode, body)
			}
			return nil
		}
	}
	userCred := func(prompt func(context.Context, azidentity.DeviceCodeMessage) error) *azidentity.DeviceCodeCredential {
		c, err := azidentity.NewDeviceCodeCredential(&azidentity.DeviceCodeCredentialOptions{ClientOptions: idOptions(e),
			TenantID: e.Info.TenantID, ClientID: identity.KeywardCLIClientID, UserPrompt: prompt, DisableInstanceDiscovery: true})
		if err != nil {
			t.Fatal(err)
		}
		return c
	}
	now := time.Now()
	// Wrong TOTP code: the sign-in is refused.
	cctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	_, err = userCred(signIn("correct horse battery", "000000")).GetToken(cctx, policy.TokenRequestOptions{Scopes: []string{"api://" + middle.AppID + "/.default"}})
	cancel()
	if err == nil || !strings.Contains(err.Error(), "authenticator code") {
		t.Fatalf("wrong TOTP: %v", err)
	}
	code := identity.TOTPCode(secret, identity.TOTPStep(now))
	userTok, err := userCred(signIn("correct horse battery", code)).GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"api://" + middle.AppID + "/.default"}})
	if err != nil {
		t.Fatalf("device code sign-in: %v", err)
	}
	if _, c := jwtClaims(t, userTok.Token); c["oid"] != user.ObjectID || c["idtyp"] != "user" || c["aud"] != "api://"+middle.AppID {
		t.Fatalf("user token claims %v", c)
	}
	// The same TOTP code is not accepted twice.
	cctx, cancel = context.WithTimeout(ctx, 2*time.Second)
	_, err = userCred(signIn("correct horse battery", code)).GetToken(cctx, policy.TokenRequestOptions{Scopes: []string{"api://" + middle.AppID + "/.default"}})
	cancel()
	if err == nil {
		t.Fatal("a TOTP code was accepted twice")
	}

	obo, err := azidentity.NewOnBehalfOfCredentialWithSecret(e.Info.TenantID, middle.AppID, userTok.Token, middle.Secret,
		&azidentity.OnBehalfOfCredentialOptions{ClientOptions: idOptions(e), DisableInstanceDiscovery: true})
	if err != nil {
		t.Fatal(err)
	}
	tok, err := obo.GetToken(ctx, tokenOpts(e))
	if err != nil {
		t.Fatalf("on-behalf-of: %v", err)
	}
	if _, c := jwtClaims(t, tok.Token); c["oid"] != user.ObjectID || c["azp"] != middle.AppID || c["scp"] == nil || c["roles"] != nil {
		t.Fatalf("OBO token claims %v", c)
	}
	if s, err := secretsFor(t, e, vurl, obo).GetSecret(ctx, "s", "", nil); err != nil || *s.Value != "v" {
		t.Fatalf("compound identity: %v", err)
	}
	// The application alone, and an app-only token as assertion, do not
	// match the compound entry.
	_, err = secretsFor(t, e, vurl, middle.Cred).GetSecret(ctx, "s", "", nil)
	wantDenied(t, "application alone", err, authz.CodePolicy, "secrets get")
	appTok, err := middle.Cred.GetToken(ctx, policy.TokenRequestOptions{Scopes: []string{"api://" + middle.AppID + "/.default"}})
	if err != nil {
		t.Fatal(err)
	}
	appOBO, _ := azidentity.NewOnBehalfOfCredentialWithSecret(e.Info.TenantID, middle.AppID, appTok.Token, middle.Secret,
		&azidentity.OnBehalfOfCredentialOptions{ClientOptions: idOptions(e), DisableInstanceDiscovery: true})
	if _, err := appOBO.GetToken(ctx, tokenOpts(e)); err == nil || !strings.Contains(err.Error(), "AADSTS50058") {
		t.Fatalf("app-only assertion: %v", err)
	}
}

// TestManagedIdentityEndpoint: the App Service shape with the unmodified
// ManagedIdentityCredential, the IMDS and Cloud Shell shapes on the same
// handler, and what keeps a binding from being stolen or misused.
func TestManagedIdentityEndpoint(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	mi := newManagedIdentity(t, e, "web", nil)
	readerOfS(t, e, mi.ObjectID)
	readS(t, e, "managed identity (App Service shape)", mi.credential(t, e))
	tok, err := mi.credential(t, e).GetToken(ctx, tokenOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	if _, c := jwtClaims(t, tok.Token); c["oid"] != mi.ObjectID || c["appid"] != mi.ClientID || !strings.Contains(fmt.Sprint(c["xms_mirid"]), "userAssignedIdentities/web") || c["tid"] != e.Info.TenantID {
		t.Fatalf("MI token claims %v", c)
	}

	raw := func(method, path, header, value, body string) (int, map[string]string) {
		var rd io.Reader
		if body != "" {
			rd = strings.NewReader(body)
		}
		req, _ := http.NewRequest(method, strings.TrimSuffix(e.Info.AuthorityHost, "/")+path, rd)
		if header != "" {
			req.Header.Set(header, value)
		}
		if body != "" {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		resp, err := e.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out := map[string]string{}
		json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out
	}
	res := url.QueryEscape("https://vault.localhost:" + port(e))
	// App Service: wrong header, no header, identity outside the binding.
	if st, out := raw(http.MethodGet, "/msi/token?api-version=2019-08-01&resource="+res, "X-IDENTITY-HEADER", mi.Header+"x", ""); st != http.StatusUnauthorized || out["error"] != "invalid_client" {
		t.Fatalf("wrong header: %d %v", st, out)
	}
	if st, _ := raw(http.MethodGet, "/msi/token?api-version=2019-08-01&resource="+res, "", "", ""); st != http.StatusBadRequest {
		t.Fatalf("no header: %d", st)
	}
	other := newManagedIdentity(t, e, "other", nil)
	if st, _ := raw(http.MethodGet, "/msi/token?api-version=2019-08-01&client_id="+other.ClientID+"&resource="+res, "X-IDENTITY-HEADER", mi.Header, ""); st != http.StatusBadRequest {
		t.Fatalf("identity outside the binding: %d", st)
	}
	st, out := raw(http.MethodGet, "/msi/token?api-version=2019-08-01&resource="+res, "X-IDENTITY-HEADER", mi.Header, "")
	if st != http.StatusOK || out["token_type"] != "Bearer" || out["expires_on"] == "" || out["client_id"] != mi.ClientID || out["resource"] != "https://vault.localhost:"+port(e) {
		t.Fatalf("App Service shape: %d %v", st, out)
	}

	// A binding pinned to another network is useless from here.
	pinned := newManagedIdentity(t, e, "pinned", map[string]any{"allowedSources": []string{"10.0.0.0/8"}})
	if st, out := raw(http.MethodGet, "/msi/token?api-version=2019-08-01&resource="+res, "X-IDENTITY-HEADER", pinned.Header, ""); st != http.StatusForbidden {
		t.Fatalf("pinned binding from loopback: %d %v", st, out)
	}
	findAudit(t, e, "binding used from the wrong source", func(ev audit.Event) bool {
		return ev.Operation == "ManagedIdentityToken" && strings.Contains(ev.Reason, pinned.BindingID) && strings.Contains(ev.Reason, "not pinned")
	})

	// IMDS and Cloud Shell shapes: no secret, a headerless binding pinned
	// to the caller's address (a node-local agent's).
	node := newManagedIdentity(t, e, "node", map[string]any{"allowedSources": []string{"127.0.0.1/32"}, "headerless": true})
	if st, _ := raw(http.MethodGet, "/metadata/identity/oauth2/token", "", "", ""); st != http.StatusBadRequest {
		t.Fatalf("IMDS probe: %d", st) // any answer means "IMDS is there"; 400 is not retried
	}
	st, out = raw(http.MethodGet, "/metadata/identity/oauth2/token/?api-version=2018-02-01&resource="+res, "Metadata", "true", "")
	if st != http.StatusOK || out["client_id"] != node.ClientID {
		t.Fatalf("IMDS shape: %d %v", st, out)
	}
	st, out = raw(http.MethodPost, "/msi/token", "Metadata", "true", "resource="+res)
	if st != http.StatusOK || out["client_id"] != node.ClientID {
		t.Fatalf("Cloud Shell shape: %d %v", st, out)
	}

	// Rotating the secret invalidates the old one; deleting the binding
	// ends it.
	var rot struct{ IdentityHeader string }
	if r := dirCall(t, e, e.Credential(), http.MethodPost, "/providers/Keyward.Directory/workloadBindings/"+mi.BindingID+"/rotate", nil, &rot); r.Status != http.StatusOK {
		t.Fatalf("rotate: %d %s", r.Status, r.Body)
	}
	if st, _ := raw(http.MethodGet, "/msi/token?api-version=2019-08-01&resource="+res, "X-IDENTITY-HEADER", mi.Header, ""); st != http.StatusUnauthorized {
		t.Fatalf("old secret after rotation: %d", st)
	}
	if st, _ := raw(http.MethodGet, "/msi/token?api-version=2019-08-01&resource="+res, "X-IDENTITY-HEADER", rot.IdentityHeader, ""); st != http.StatusOK {
		t.Fatalf("new secret: %d", st)
	}
	if r := dirCall(t, e, e.Credential(), http.MethodDelete, "/providers/Keyward.Directory/workloadBindings/"+mi.BindingID, nil, nil); r.Status != http.StatusOK {
		t.Fatalf("delete binding: %d %s", r.Status, r.Body)
	}
	if st, _ := raw(http.MethodGet, "/msi/token?api-version=2019-08-01&resource="+res, "X-IDENTITY-HEADER", rot.IdentityHeader, ""); st != http.StatusUnauthorized {
		t.Fatalf("deleted binding: %d", st)
	}
}

// TestDefaultAzureCredentialEnvironmentOnly runs an unmodified app in a
// child process: DefaultAzureCredential(nil) with nothing but
// IDENTITY_ENDPOINT, IDENTITY_HEADER and SSL_CERT_FILE in its environment.
func TestDefaultAzureCredentialEnvironmentOnly(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	mi := newManagedIdentity(t, e, "dac-app", nil)
	readerOfS(t, e, mi.ObjectID)
	// The endpoint by IP address: the child resolves nothing.
	endpoint := strings.Replace(mi.Endpoint, "://localhost:", "://127.0.0.1:", 1)
	out, err := runChild(t, "TestHelperDefaultCredentialChild", []string{
		"IDENTITY_ENDPOINT=" + endpoint, "IDENTITY_HEADER=" + mi.Header, "SSL_CERT_FILE=" + e.Server.CAFile(),
		"KEYWARD_VAULT_URL=" + e.Info.VaultURL, "KEYWARD_ADDR=" + e.Server.Addr(),
	})
	if err != nil || !strings.Contains(out, "secret=v") {
		t.Fatalf("child: %v\n%s", err, out)
	}
}

// TestHelperDefaultCredentialChild is not a test: it is the unmodified app
// TestDefaultAzureCredentialEnvironmentOnly runs in a child process. Its
// only concession is a dialer for *.localhost names, which /etc/hosts
// would provide; trust comes from SSL_CERT_FILE.
func TestHelperDefaultCredentialChild(t *testing.T) {
	if os.Getenv("KEYWARD_DAC_CHILD") != "1" {
		return
	}
	cred, err := azidentity.NewDefaultAzureCredential(nil)
	if err != nil {
		t.Fatal(err)
	}
	addr := os.Getenv("KEYWARD_ADDR")
	hosts := &http.Client{Transport: &http.Transport{DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
		return (&net.Dialer{}).DialContext(ctx, network, addr)
	}}}
	client, err := azsecrets.NewClient(os.Getenv("KEYWARD_VAULT_URL"), cred, &azsecrets.ClientOptions{ClientOptions: azcore.ClientOptions{Transport: hosts}})
	if err != nil {
		t.Fatal(err)
	}
	s, err := client.GetSecret(context.Background(), "s", "", nil)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Println("secret=" + *s.Value)
}

// runChild runs one test of this binary in a child process with a clean
// environment plus env.
func runChild(t *testing.T, test string, env []string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, os.Args[0], "-test.run=^"+test+"$", "-test.count=1", "-test.v")
	cmd.Env = append([]string{"PATH=" + os.Getenv("PATH"), "HOME=" + t.TempDir(), "KEYWARD_DAC_CHILD=1"}, env...)
	out, err := cmd.CombinedOutput()
	return string(out), err
}
