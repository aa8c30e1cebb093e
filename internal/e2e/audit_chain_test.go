package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/kwtest"
)

// azureVaultOperations are Azure Key Vault's AuditEvent operationName
// values for the operations Keyward serves (Azure's diagnostic-log
// reference); every data-plane and vault event must use one of them.
var azureVaultOperations = map[string]bool{
	"VaultGet": true, "VaultPut": true, "VaultPatch": true, "VaultDelete": true, "VaultList": true,
	"VaultPurge": true, "VaultRecover": true, "VaultGetDeleted": true, "VaultListDeleted": true,
	"SecretGet": true, "SecretSet": true, "SecretUpdate": true, "SecretDelete": true, "SecretList": true,
	"SecretListVersions": true, "SecretPurge": true, "SecretRecover": true, "SecretBackup": true,
	"SecretRestore": true, "SecretGetDeleted": true, "SecretListDeleted": true,
	"KeyCreate": true, "KeyImport": true, "KeyGet": true, "KeyUpdate": true, "KeyDelete": true, "KeyList": true,
	"KeyListVersions": true, "KeyBackup": true, "KeyRestore": true, "KeySign": true, "KeyVerify": true,
	"KeyWrap": true, "KeyUnwrap": true, "KeyEncrypt": true, "KeyDecrypt": true, "KeyRecover": true,
	"KeyPurge": true, "KeyGetDeleted": true, "KeyListDeleted": true, "KeyRotate": true,
	"KeyRotationPolicyGet": true, "KeyRotationPolicySet": true, "KeyRelease": true,
	"CertificateGet": true, "CertificateCreate": true, "CertificateImport": true, "CertificateDelete": true,
	"CertificateList": true, "CertificateListVersions": true, "CertificateUpdate": true,
	"CertificatePolicyGet": true, "CertificatePolicyUpdate": true, "CertificatePendingGet": true,
	"CertificatePendingMerge": true, "CertificatePendingUpdate": true, "CertificatePendingDelete": true,
	"CertificateIssuerGet": true, "CertificateIssuerSet": true, "CertificateIssuerUpdate": true,
	"CertificateIssuerDelete": true, "CertificateIssuerList": true, "CertificateContactsGet": true,
	"CertificateContactsSet": true, "CertificateContactsDelete": true, "CertificateBackup": true,
	"CertificateRestore": true, "CertificatePurge": true, "CertificateRecover": true,
	"CertificateGetDeleted": true, "CertificateListDeleted": true,
}

// TestAuditChainAndAzureSchema drives a run through the official SDKs and
// checks its audit log: every event carries Azure's AuditEvent fields with
// Azure's operation names and no value or token, the chain and checkpoints
// verify, and each kind of tampering is found at the event it touched.
func TestAuditChainAndAzureSchema(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	cred := e.Credential()
	sc := clientFor(t, e, e.Info.VaultURL, cred)
	kc := keysClient(t, e)
	value := "chain-value-" + randomValue()
	if _, err := sc.SetSecret(ctx, "chained", azsecrets.SetSecretParameters{Value: to.Ptr(value)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.GetSecret(ctx, "chained", "", nil); err != nil {
		t.Fatal(err)
	}
	for pg := sc.NewListSecretPropertiesPager(nil); pg.More(); {
		if _, err := pg.NextPage(ctx); err != nil {
			t.Fatal(err)
		}
	}
	ownerOID := devObjectID(t, e)
	// A principal without access is denied: the report counts it.
	outsider := newSP(t, e, "outsider")
	if _, err := clientFor(t, e, e.Info.VaultURL, outsider.Cred).GetSecret(ctx, "chained", "", nil); err == nil {
		t.Fatal("an outsider read the secret")
	}
	if _, err := sc.DeleteSecret(ctx, "chained", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.GetDeletedSecret(ctx, "chained", nil); err != nil {
		t.Fatal(err)
	}
	k, err := kc.CreateKey(ctx, "chained", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSA), KeySize: to.Ptr[int32](2048)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	digest := bytes.Repeat([]byte{7}, 32)
	sig, err := kc.Sign(ctx, "chained", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Value: digest}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.Verify(ctx, "chained", "", azkeys.VerifyParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Digest: digest, Signature: sig.Result}, nil); err != nil {
		t.Fatal(err)
	}
	dek := []byte("a 32-byte data encryption key!!!")
	w, err := kc.WrapKey(ctx, "chained", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: dek}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.UnwrapKey(ctx, "chained", k.Key.KID.Version(), azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: w.Result}, nil); err != nil {
		t.Fatal(err)
	}
	enc, err := kc.Encrypt(ctx, "chained", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: dek}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kc.Decrypt(ctx, "chained", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: enc.Result}, nil); err != nil {
		t.Fatal(err)
	}
	createVault(t, e, cred, "chainvault", true, nil)
	if _, err := vaultsARM(t, e, cred).Get(ctx, e.Info.ResourceGroup, "chainvault", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := vaultsARM(t, e, cred).Delete(ctx, e.Info.ResourceGroup, "chainvault", nil); err != nil {
		t.Fatal(err)
	}
	if r := do(t, e, "GET", e.Info.VaultURL+"secrets?api-version=7.4", "", "", ""); r.Status != http.StatusUnauthorized {
		t.Fatalf("no token: %d", r.Status)
	}
	tok, err := cred.GetToken(ctx, tokenOpts(e))
	if err != nil {
		t.Fatal(err)
	}
	if err := e.Server.Close(); err != nil { // writes the last checkpoint
		t.Fatal(err)
	}

	path := filepath.Join(e.DataDir, "audit.log")
	logBytes, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	ckpts, err := os.ReadFile(path + audit.CheckpointSuffix)
	if err != nil {
		t.Fatalf("no checkpoint file: %v", err)
	}

	// Azure's fields, Azure's names, nothing secret.
	seen := map[string]bool{}
	lines := bytes.Split(bytes.TrimSuffix(logBytes, []byte("\n")), []byte("\n"))
	for i, line := range lines {
		for _, s := range []string{value, e.Info.ClientSecret, tok.Token, string(dek)} {
			if bytes.Contains(line, []byte(s)) {
				t.Fatalf("audit line %d holds a value, secret or token", i+1)
			}
		}
		var raw map[string]any
		if err := json.Unmarshal(line, &raw); err != nil {
			t.Fatalf("line %d: %v", i+1, err)
		}
		for _, f := range []string{"time", "resourceId", "operationName", "operationVersion", "category", "resultType",
			"resultSignature", "resultDescription", "durationMs", "callerIpAddress", "correlationId", "identity", "properties"} {
			if _, ok := raw[f]; !ok {
				t.Fatalf("line %d has no %s: %s", i+1, f, line)
			}
		}
		props, _ := raw["properties"].(map[string]any)
		for _, f := range []string{"id", "requestUri", "httpStatusCode", "clientInfo", "isRbacAuthorized", "isAccessPolicyMatch", "tlsVersion"} {
			if _, ok := props[f]; !ok {
				t.Fatalf("line %d has no properties.%s: %s", i+1, f, line)
			}
		}
		var ev audit.Event
		if err := json.Unmarshal(line, &ev); err != nil {
			t.Fatal(err)
		}
		if ev.Category != "AuditEvent" || ev.Properties.HTTPStatusCode != ev.Status || ev.CallerIPAddress == "" ||
			!strings.HasPrefix(ev.Properties.RequestURI, "https://") || ev.Properties.TLSVersion != "TLS1_3" ||
			(ev.Status < 400) != (ev.ResultType == "Success") || ev.ResultSignature == "" {
			t.Fatalf("line %d: Azure fields wrong: %s", i+1, line)
		}
		if ev.Service == "vault" || ev.Operation == "VaultCreateOrUpdate" || ev.Operation == "VaultGet" || ev.Operation == "VaultDelete" {
			if ev.OperationName != "" && !azureVaultOperations[ev.OperationName] {
				t.Fatalf("line %d: operationName %q is not Azure's", i+1, ev.OperationName)
			}
		}
		if ev.Service == "vault" && ev.Status != http.StatusUnauthorized {
			if !strings.HasPrefix(ev.ResourceID, "/SUBSCRIPTIONS/") || ev.OperationVersion == "" || ev.Identity.Claim.ObjectID == "" ||
				!strings.Contains(ev.Properties.RequestURI, "api-version=") {
				t.Fatalf("line %d: vault event lacks resourceId, operationVersion, requestUri or identity: %s", i+1, line)
			}
			if ev.Status < 400 && !ev.Properties.IsRbacAuthorized && !ev.Properties.IsAccessPolicyMatch {
				t.Fatalf("line %d: an allowed vault request names no authorization: %s", i+1, line)
			}
		}
		seen[ev.OperationName] = true
	}
	for _, op := range []string{"SecretSet", "SecretGet", "SecretList", "SecretDelete", "SecretGetDeleted", "KeyCreate",
		"KeySign", "KeyVerify", "KeyWrap", "KeyUnwrap", "KeyEncrypt", "KeyDecrypt", "VaultPut", "VaultGet", "VaultDelete"} {
		if !seen[op] {
			var names []string
			for n := range seen {
				names = append(names, n)
			}
			sort.Strings(names)
			t.Fatalf("no event named %s; names seen: %v", op, names)
		}
	}

	// The chain and its checkpoints hold over the whole run.
	verify := func(log []byte) *audit.Report {
		t.Helper()
		rep, err := audit.Verify([]audit.Input{{Name: "audit.log", R: bytes.NewReader(log)},
			{Name: "audit.log.checkpoints", R: bytes.NewReader(ckpts)}}, nil)
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	if rep := verify(logBytes); !rep.OK() || rep.Unverifiable() != 0 || rep.Nodes[0].Events != len(lines) {
		t.Fatalf("the run's log does not verify: %+v, %v", rep, rep.Finding)
	}
	// The key-usage report: per object, who did what, how often, denied.
	usage, err := audit.UsageReport([]audit.Input{{Name: "audit.log", R: bytes.NewReader(logBytes)}}, audit.ReportFilter{Vault: devVaultName(e)})
	if err != nil {
		t.Fatal(err)
	}
	var secretUse *audit.ObjectUsage
	for i := range usage {
		if strings.HasSuffix(usage[i].Object, "/secrets/chained") {
			secretUse = &usage[i]
		}
	}
	if secretUse == nil {
		t.Fatalf("no usage of secrets/chained in %+v", usage)
	}
	byCaller := map[string]audit.CallerUsage{}
	for _, c := range secretUse.Callers {
		byCaller[c.ObjectID] = c
	}
	owner, out := byCaller[ownerOID], byCaller[outsider.ObjectID]
	if owner.Operations["SecretSet"] != 1 || owner.Operations["SecretGet"] != 1 || owner.Operations["SecretDelete"] != 1 ||
		owner.Denied != 0 || owner.First.IsZero() || owner.Last.Before(owner.First) {
		t.Fatalf("owner's use: %+v", owner)
	}
	if out.Denied != 1 || out.Operations["SecretGet"] != 1 {
		t.Fatalf("outsider's use: %+v", out)
	}

	// Each tampering is named.
	mid := len(lines) / 2
	join := func(ls [][]byte) []byte { return append(bytes.Join(ls, []byte("\n")), '\n') }
	clone := func() [][]byte {
		out := make([][]byte, len(lines))
		for i := range lines {
			out[i] = bytes.Clone(lines[i])
		}
		return out
	}
	for _, c := range []struct {
		name string
		log  func() []byte
		line int
		kind string
	}{
		{"byte changed", func() []byte {
			ls := clone()
			i := bytes.Index(ls[mid], []byte(`"status":`))
			ls[mid][i+len(`"status":`)] ^= 1 // 200 -> 300, 401 -> 501
			return join(ls)
		}, mid + 1, "modified"},
		{"line deleted", func() []byte { ls := clone(); return join(append(ls[:mid:mid], ls[mid+1:]...)) }, mid + 1, "deleted"},
		{"lines swapped", func() []byte { ls := clone(); ls[mid], ls[mid+1] = ls[mid+1], ls[mid]; return join(ls) }, mid + 1, "reordered"},
		{"line inserted", func() []byte {
			ls := clone()
			return join(append(ls[:mid:mid], append([][]byte{ls[2]}, ls[mid:]...)...))
		}, mid + 1, "inserted"},
		{"tail truncated", func() []byte { return join(clone()[:len(lines)-3]) }, len(lines) - 3, "truncated"},
	} {
		rep := verify(c.log())
		if rep.OK() || rep.Finding.Line != c.line || rep.Finding.Kind != c.kind {
			t.Errorf("%s: finding %v, want line %d %s", c.name, rep.Finding, c.line, c.kind)
		}
	}
}
