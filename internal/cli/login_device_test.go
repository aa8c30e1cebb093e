package cli

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/json"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/google/uuid"
	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/kwtest"
)

// syncBuffer is a bytes.Buffer safe to read while a command writes it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// TestLoginDeviceCode: `keyward login --tenant T -u USER` signs a user in
// with the device authorization grant against the real token service: the
// CLI prints the verification message, the user signs in on the device
// page with password and TOTP, and the CLI gets its token. The first
// command on the vault asks for a second sign-in (another resource: no
// refresh tokens), the next uses the 0600 token cache without asking.
func TestLoginDeviceCode(t *testing.T) {
	clk := clock.NewFake(time.Now().UTC())
	e := kwtest.Start(t, kwtest.Options{Clock: clk})
	mgmt := strings.TrimSuffix(e.Info.ManagementURL, "/")
	arm := func(method, path string, body any) map[string]any {
		t.Helper()
		tok, err := e.Credential().GetToken(context.Background(), policy.TokenRequestOptions{Scopes: []string{e.Info.ManagementResource + ".default"}})
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := json.Marshal(body)
		sep := "?"
		if strings.Contains(path, "?") {
			sep = "&"
		}
		req, _ := http.NewRequest(method, mgmt+path+sep+"api-version=2022-04-01", bytes.NewReader(raw))
		req.Header.Set("Authorization", "Bearer "+tok.Token)
		req.Header.Set("Content-Type", "application/json")
		resp, err := e.HTTP.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		out, _ := io.ReadAll(resp.Body)
		if resp.StatusCode >= 300 {
			t.Fatalf("%s %s: %d %s", method, path, resp.StatusCode, out)
		}
		var m map[string]any
		json.Unmarshal(out, &m)
		return m
	}
	const name, password = "dana@example.test", "device login password dana"
	u := arm(http.MethodPost, "/providers/Keyward.Directory/users", map[string]string{"userPrincipalName": name, "displayName": "dana", "password": password})
	oid, _ := u["objectId"].(string)
	b32, _ := arm(http.MethodPost, "/providers/Keyward.Directory/users/"+oid+"/totp", nil)["secret"].(string)
	totp, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(strings.TrimRight(b32, "="))
	if err != nil {
		t.Fatal(err)
	}
	sub := "/subscriptions/" + e.Info.SubscriptionID
	vault := sub + "/resourceGroups/" + e.Info.ResourceGroup + "/providers/Microsoft.KeyVault/vaults/dev"
	for _, a := range [][2]string{{sub, "acdd72a7-3385-48ef-bd42-f606fba81ae7"}, {vault, "4633458b-17de-408a-b874-0445c86b69e6"}} { // Reader, Key Vault Secrets User
		arm(http.MethodPut, a[0]+"/providers/Microsoft.Authorization/roleAssignments/"+uuid.NewString(), map[string]any{
			"properties": map[string]string{"roleDefinitionId": a[0] + "/providers/Microsoft.Authorization/roleDefinitions/" + a[1], "principalId": oid, "principalType": "User"}})
	}
	sc, _ := azsecrets.NewClient(e.Info.VaultURL, e.Credential(), &azsecrets.ClientOptions{ClientOptions: e.ClientOptions()})
	if _, err := sc.SetSecret(context.Background(), "device-read", azsecrets.SetSecretParameters{Value: to.Ptr("read-by-dana")}, nil); err != nil {
		t.Fatal(err)
	}

	cfgDir := t.TempDir()
	dev, err := readDevJSON(filepath.Join(e.DataDir, "dev.json"))
	if err != nil {
		t.Fatal(err)
	}
	env := map[string]string{"KEYWARD_CONFIG_DIR": cfgDir}
	// run executes a command line; signIn, when set, completes each device
	// sign-in the command asks for, as the user would in a browser.
	run := func(signIns int, args ...string) string {
		t.Helper()
		var stdout bytes.Buffer
		stderr := &syncBuffer{}
		o := IO{Getenv: func(k string) string { return env[k] }, Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: stderr}
		root := &cobra.Command{Use: "keyward", SilenceUsage: true, SilenceErrors: true}
		root.AddCommand(NewKeyvaultCmd(o), NewLoginCmd(o), NewLogoutCmd(o))
		root.SetArgs(NormalizeArgs(args))
		ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- root.ExecuteContext(ctx) }()
		codeRE := regexp.MustCompile(`open the page (\S+) and enter the code ([A-Z]{4}-[A-Z]{4})`)
		for i := range signIns {
			var m []string
			for m == nil {
				select {
				case err := <-done:
					t.Fatalf("%v finished before sign-in %d: %v\n%s", args, i+1, err, stderr.String())
				case <-time.After(50 * time.Millisecond):
				}
				all := codeRE.FindAllStringSubmatch(stderr.String(), -1)
				if len(all) > i {
					m = all[i]
				}
			}
			clk.Advance(31 * time.Second) // a fresh TOTP step: codes are not accepted twice
			form := url.Values{"user_code": {m[2]}, "username": {name}, "password": {password},
				"totp": {identity.TOTPCode(totp, identity.TOTPStep(clk.Now()))}}
			resp, err := e.HTTP.PostForm(m[1], form)
			if err != nil {
				t.Fatal(err)
			}
			page, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("device page: %d\n%s", resp.StatusCode, page)
			}
		}
		if err := <-done; err != nil {
			t.Fatalf("%v: %v\n%s", args, err, stderr.String())
		}
		if n := len(codeRE.FindAllString(stderr.String(), -1)); n != signIns {
			t.Fatalf("%v asked for %d sign-ins, want %d\n%s", args, n, signIns, stderr.String())
		}
		if strings.Contains(stderr.String(), password) || strings.Contains(stdout.String(), password) {
			t.Fatal("the password reached the output")
		}
		return stdout.String()
	}

	out := run(1, "login", "--tenant", e.Info.TenantID, "-u", name, "--authority-host", e.Info.AuthorityHost,
		"--management-url", e.Info.ManagementURL, "--management-resource", e.Info.ManagementResource,
		"--vault-dns-suffix", dev.VaultDNSSuffix, "--ca-file", dev.CAFile)
	if !strings.Contains(out, e.Info.SubscriptionID) {
		t.Fatalf("login lists no subscription:\n%s", out)
	}
	if fi, err := os.Stat(filepath.Join(cfgDir, "tokens.json")); err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token cache: %v %v", fi, err)
	}
	var shown map[string]any
	if err := json.Unmarshal([]byte(run(1, "keyvault", "secret", "show", "--vault-name", "dev", "--name", "device-read")), &shown); err != nil || shown["value"] != "read-by-dana" {
		t.Fatalf("secret show as dana: %v %v", shown, err)
	}
	if err := json.Unmarshal([]byte(run(0, "keyvault", "secret", "show", "--vault-name", "dev", "--name", "device-read")), &shown); err != nil || shown["value"] != "read-by-dana" {
		t.Fatalf("secret show from the token cache: %v %v", shown, err)
	}
}
