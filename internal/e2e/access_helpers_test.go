package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/kwtest"
)

// Helpers for the identity and access tests (access_*_test.go).

// armOptions configure official ARM clients for the dev server's
// management plane: its endpoint and audience as a custom cloud.
func armOptions(e *kwtest.Env) *arm.ClientOptions {
	return &arm.ClientOptions{ClientOptions: azcore.ClientOptions{
		Cloud: cloud.Configuration{
			ActiveDirectoryAuthorityHost: e.Info.AuthorityHost,
			Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
				cloud.ResourceManager: {Endpoint: e.Info.ManagementURL, Audience: e.Info.ManagementResource},
			},
		},
		Transport: e.HTTP,
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}}
}

func vaultsARM(t *testing.T, e *kwtest.Env, cred azcore.TokenCredential) *armkeyvault.VaultsClient {
	t.Helper()
	c, err := armkeyvault.NewVaultsClient(e.Info.SubscriptionID, cred, armOptions(e))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func assignmentsARM(t *testing.T, e *kwtest.Env, cred azcore.TokenCredential) *armauthorization.RoleAssignmentsClient {
	t.Helper()
	c, err := armauthorization.NewRoleAssignmentsClient(e.Info.SubscriptionID, cred, armOptions(e))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func roleDefsARM(t *testing.T, e *kwtest.Env, cred azcore.TokenCredential) *armauthorization.RoleDefinitionsClient {
	t.Helper()
	c, err := armauthorization.NewRoleDefinitionsClient(cred, armOptions(e))
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func secretsFor(t *testing.T, e *kwtest.Env, vaultURL string, cred azcore.TokenCredential) *azsecrets.Client {
	t.Helper()
	c, err := azsecrets.NewClient(vaultURL, cred, &azsecrets.ClientOptions{ClientOptions: e.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func keysFor(t *testing.T, e *kwtest.Env, vaultURL string, cred azcore.TokenCredential) *azkeys.Client {
	t.Helper()
	c, err := azkeys.NewClient(vaultURL, cred, &azkeys.ClientOptions{ClientOptions: e.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// principal is a service principal made through the directory API.
type principal struct {
	AppID, ObjectID, Secret string
	Cred                    azcore.TokenCredential
}

// dirCall calls Keyward's directory API (or any management path) with a
// management token of cred and decodes the JSON reply into out.
func dirCall(t *testing.T, e *kwtest.Env, cred azcore.TokenCredential, method, path string, body any, out any) httpResult {
	t.Helper()
	tok, err := cred.GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{mgmtScope(e)}})
	if err != nil {
		t.Fatal(err)
	}
	var raw string
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		raw = string(b)
	}
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	r := do(t, e, method, strings.TrimSuffix(e.Info.ManagementURL, "/")+path+sep+"api-version=2026-01-01", tok.Token, "application/json", raw)
	if out != nil && r.Status < 300 && r.Body != "" {
		if err := json.Unmarshal([]byte(r.Body), out); err != nil {
			t.Fatalf("%s %s: %v: %s", method, path, err, r.Body)
		}
	}
	return r
}

// newSP creates a service principal with a client secret, as the dev
// administrator.
func newSP(t *testing.T, e *kwtest.Env, name string) principal {
	t.Helper()
	var sp struct{ AppID, ObjectID string }
	if r := dirCall(t, e, e.Credential(), http.MethodPost, "/providers/Keyward.Directory/servicePrincipals", map[string]string{"displayName": name}, &sp); r.Status != http.StatusCreated {
		t.Fatalf("create %s: %d %s", name, r.Status, r.Body)
	}
	var sec struct {
		SecretText string `json:"secretText"`
	}
	if r := dirCall(t, e, e.Credential(), http.MethodPost, "/providers/Keyward.Directory/servicePrincipals/"+sp.AppID+"/secrets", map[string]int{}, &sec); r.Status != http.StatusCreated {
		t.Fatalf("secret for %s: %d %s", name, r.Status, r.Body)
	}
	return principal{AppID: sp.AppID, ObjectID: sp.ObjectID, Secret: sec.SecretText,
		Cred: e.CredentialFor(e.Info.TenantID, sp.AppID, sec.SecretText)}
}

// assign makes a role assignment with the official client, as cred.
func assign(t *testing.T, e *kwtest.Env, cred azcore.TokenCredential, scope, roleGUID, principalID string) string {
	t.Helper()
	name := newGUID()
	_, err := assignmentsARM(t, e, cred).Create(context.Background(), scope, name, armauthorization.RoleAssignmentCreateParameters{
		Properties: &armauthorization.RoleAssignmentProperties{
			RoleDefinitionID: to.Ptr("/subscriptions/" + e.Info.SubscriptionID + "/providers/Microsoft.Authorization/roleDefinitions/" + roleGUID),
			PrincipalID:      to.Ptr(principalID),
		}}, nil)
	if err != nil {
		t.Fatalf("assign %s at %s: %v", roleGUID, scope, err)
	}
	return name
}

func newGUID() string {
	var b [16]byte
	rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	const hex = "0123456789abcdef"
	var s strings.Builder
	for i, c := range b {
		if i == 4 || i == 6 || i == 8 || i == 10 {
			s.WriteByte('-')
		}
		s.WriteByte(hex[c>>4])
		s.WriteByte(hex[c&15])
	}
	return s.String()
}

// vaultScope is the ARM scope of vault name in the dev resource group.
func vaultScope(e *kwtest.Env, name string) string {
	return "/subscriptions/" + e.Info.SubscriptionID + "/resourceGroups/" + e.Info.ResourceGroup + "/providers/Microsoft.KeyVault/vaults/" + name
}

// vaultURLOf is the data-plane URL of vault name on the dev server.
func vaultURLOf(e *kwtest.Env, name string) string {
	return strings.Replace(e.Info.VaultURL, "//"+devVaultName(e)+".", "//"+name+".", 1)
}

func devVaultName(e *kwtest.Env) string {
	host := strings.TrimPrefix(e.Info.VaultURL, "https://")
	return host[:strings.IndexByte(host, '.')]
}

// createVault creates a vault with the official ARM client.
func createVault(t *testing.T, e *kwtest.Env, cred azcore.TokenCredential, name string, rbac bool, policies []*armkeyvault.AccessPolicyEntry) *armkeyvault.Vault {
	t.Helper()
	if policies == nil {
		policies = []*armkeyvault.AccessPolicyEntry{}
	}
	poller, err := vaultsARM(t, e, cred).BeginCreateOrUpdate(context.Background(), e.Info.ResourceGroup, name, armkeyvault.VaultCreateOrUpdateParameters{
		Location: to.Ptr(e.Info.Location),
		Properties: &armkeyvault.VaultProperties{
			TenantID:                  to.Ptr(e.Info.TenantID),
			SKU:                       &armkeyvault.SKU{Family: to.Ptr(armkeyvault.SKUFamilyA), Name: to.Ptr(armkeyvault.SKUNameStandard)},
			EnableRbacAuthorization:   to.Ptr(rbac),
			AccessPolicies:            policies,
			SoftDeleteRetentionInDays: to.Ptr[int32](7),
		},
	}, nil)
	if err != nil {
		t.Fatalf("create vault %s: %v", name, err)
	}
	res, err := poller.PollUntilDone(context.Background(), nil)
	if err != nil {
		t.Fatalf("create vault %s: %v", name, err)
	}
	return &res.Vault
}

// innerCode returns the innererror code of an Azure error response.
func innerCode(t *testing.T, err error) (status int, code, inner, message string) {
	t.Helper()
	var re *azcore.ResponseError
	if !errors.As(err, &re) {
		t.Fatalf("want an HTTP error, got %v", err)
	}
	raw, _ := io.ReadAll(re.RawResponse.Body)
	var b struct {
		Error struct {
			Code       string `json:"code"`
			Message    string `json:"message"`
			InnerError *struct {
				Code string `json:"code"`
			} `json:"innererror"`
		} `json:"error"`
	}
	json.Unmarshal(raw, &b)
	if b.Error.InnerError != nil {
		inner = b.Error.InnerError.Code
	}
	return re.StatusCode, re.ErrorCode, inner, b.Error.Message
}

// wantDenied checks a 403 with Forbidden and the innererror code, and that
// the message names what is missing.
func wantDenied(t *testing.T, what string, err error, inner, missing string) {
	t.Helper()
	if err == nil {
		t.Fatalf("%s: allowed, want 403 %s", what, inner)
	}
	status, code, in, msg := innerCode(t, err)
	if status != http.StatusForbidden || code != "Forbidden" || in != inner {
		t.Fatalf("%s: got %d %s/%s, want 403 Forbidden/%s: %s", what, status, code, in, inner, msg)
	}
	if missing != "" && !strings.Contains(msg, missing) {
		t.Fatalf("%s: message does not name %q: %s", what, missing, msg)
	}
}

// auditEvents reads the dev server's audit log.
func auditEvents(t *testing.T, e *kwtest.Env) []audit.Event {
	t.Helper()
	f, err := os.Open(filepath.Join(e.DataDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	var out []audit.Event
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 1<<20), 1<<20)
	for sc.Scan() {
		var ev audit.Event
		if json.Unmarshal(bytes.TrimSpace(sc.Bytes()), &ev) == nil {
			out = append(out, ev)
		}
	}
	return out
}

// findAudit waits (briefly: the event is written after the response) for
// an audit event matching pred.
func findAudit(t *testing.T, e *kwtest.Env, what string, pred func(audit.Event) bool) audit.Event {
	t.Helper()
	deadline := time.Now().Add(3 * time.Second)
	for {
		for _, ev := range auditEvents(t, e) {
			if pred(ev) {
				return ev
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("no audit event: %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
