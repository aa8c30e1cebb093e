package cli

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"flag"
	"io"
	"math/big"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/arm"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/authorization/armauthorization/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/resourcemanager/keyvault/armkeyvault/v2"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azcertificates"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/spf13/cobra"
)

var update = flag.Bool("update", false, "rewrite the golden files in testdata/")

// harness runs CLI command lines in-process against one dev server.
type harness struct {
	t       *testing.T
	e       *kwtest.Env
	devJSON string
	env     map[string]string
	term    bool
	// secretValues must never appear on stderr.
	secretValues []string
}

type result struct {
	out, errOut string
	err         error
}

func (h *harness) run(args ...string) result {
	h.t.Helper()
	var stdout, stderr bytes.Buffer
	o := IO{Getenv: func(k string) string { return h.env[k] }, Stdin: strings.NewReader(""), Stdout: &stdout, Stderr: &stderr}
	if h.term {
		o.Terminal = func(io.Writer) bool { return true }
	}
	root := &cobra.Command{Use: "keyward", SilenceUsage: true, SilenceErrors: true}
	root.AddCommand(NewKeyvaultCmd(o), NewLoginCmd(o), NewLogoutCmd(o))
	root.SetArgs(NormalizeArgs(args))
	root.SetOut(&stdout)
	root.SetErr(&stderr)
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	err := root.ExecuteContext(ctx)
	r := result{out: stdout.String(), errOut: stderr.String(), err: err}
	all := r.errOut
	if err != nil {
		all += err.Error()
	}
	for _, v := range h.secretValues {
		if strings.Contains(all, v) {
			h.t.Errorf("keyward %s: a secret value reached stderr or an error:\n%s", strings.Join(args, " "), all)
		}
	}
	return r
}

// kv runs `keyvault ARGS --dev-json …` and decodes its JSON output.
func (h *harness) kv(args ...string) any {
	h.t.Helper()
	r := h.run(append(append([]string{"keyvault"}, args...), "--dev-json", h.devJSON)...)
	if r.err != nil {
		h.t.Fatalf("keyvault %s: %v\n%s", strings.Join(args, " "), r.err, r.errOut)
	}
	if strings.TrimSpace(r.out) == "" {
		return nil
	}
	var v any
	if err := json.Unmarshal([]byte(r.out), &v); err != nil {
		h.t.Fatalf("keyvault %s: output is not JSON: %v\n%s", strings.Join(args, " "), err, r.out)
	}
	return v
}

// kvText runs a command and returns its raw stdout.
func (h *harness) kvText(args ...string) string {
	h.t.Helper()
	r := h.run(append(append([]string{"keyvault"}, args...), "--dev-json", h.devJSON)...)
	if r.err != nil {
		h.t.Fatalf("keyvault %s: %v\n%s", strings.Join(args, " "), r.err, r.errOut)
	}
	return r.out
}

// fails runs a command that must fail with a message matching want.
func (h *harness) fails(want string, args ...string) {
	h.t.Helper()
	r := h.run(append(append([]string{"keyvault"}, args...), "--dev-json", h.devJSON)...)
	if r.err == nil {
		h.t.Fatalf("keyvault %s succeeded; want an error matching %q\n%s", strings.Join(args, " "), want, r.out)
	}
	if !regexp.MustCompile(want).MatchString(r.err.Error()) {
		h.t.Fatalf("keyvault %s: error %q does not match %q", strings.Join(args, " "), r.err, want)
	}
	if r.out != "" {
		h.t.Fatalf("keyvault %s failed but printed %q", strings.Join(args, " "), r.out)
	}
}

func m(v any) map[string]any {
	mm, _ := v.(map[string]any)
	return mm
}

func l(v any) []any {
	ll, _ := v.([]any)
	return ll
}

func get(v any, path ...string) any {
	for _, p := range path {
		v = m(v)[p]
	}
	return v
}

func iso(t *time.Time) any {
	if t == nil {
		return nil
	}
	return t.UTC().Format("2006-01-02T15:04:05+00:00")
}

func eq(t *testing.T, what string, got, want any) {
	t.Helper()
	g, _ := json.Marshal(got)
	w, _ := json.Marshal(want)
	if !bytes.Equal(g, w) {
		t.Fatalf("%s: CLI says %s, the SDK %s", what, g, w)
	}
}

func armOpts(e *kwtest.Env) *arm.ClientOptions {
	return &arm.ClientOptions{ClientOptions: azcore.ClientOptions{
		Cloud: cloud.Configuration{ActiveDirectoryAuthorityHost: e.Info.AuthorityHost, Services: map[cloud.ServiceName]cloud.ServiceConfiguration{
			cloud.ResourceManager: {Endpoint: e.Info.ManagementURL, Audience: e.Info.ManagementResource}}},
		Transport: e.HTTP,
	}}
}

// golden compares out with testdata/NAME (-update rewrites it).
func golden(t *testing.T, name, out string) {
	t.Helper()
	path := filepath.Join("testdata", name)
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(out), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run with -update to create it)", err)
	}
	if string(want) != out {
		t.Fatalf("%s differs from the golden file (run with -update if intended):\n--- got\n%s\n--- want\n%s", name, out, want)
	}
}

// TestCLI drives every `keyward keyvault` command against one dev server
// and checks what it prints against the Go SDK's view of the same
// objects; --query and -o tsv/table/yaml outputs against golden files.
func TestCLI(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	h := &harness{t: t, e: e, devJSON: filepath.Join(e.DataDir, "dev.json"), env: map[string]string{"KEYWARD_CONFIG_DIR": t.TempDir()}}
	cred, copts := e.Credential(), e.ClientOptions()
	sc, _ := azsecrets.NewClient(e.Info.VaultURL, cred, &azsecrets.ClientOptions{ClientOptions: copts})
	kc, _ := azkeys.NewClient(e.Info.VaultURL, cred, &azkeys.ClientOptions{ClientOptions: copts})
	cc, _ := azcertificates.NewClient(e.Info.VaultURL, cred, &azcertificates.ClientOptions{ClientOptions: copts})
	dir := t.TempDir()

	t.Run("secret", func(t *testing.T) {
		h.t = t
		const value = "s3cr3t-VALUE-7f1c"
		h.secretValues = append(h.secretValues, value)
		set := h.kv("secret", "set", "--vault-name", "dev", "--name", "cli-s", "--value", value, "--tags", "env=test", "team=blue",
			"--content-type", "text/plain", "--expires", "2031-01-02T03:04:05Z")
		sdk, err := sc.GetSecret(ctx, "cli-s", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "set id", get(set, "id"), *sdk.ID)
		eq(t, "set value", get(set, "value"), *sdk.Value)
		eq(t, "set name", get(set, "name"), sdk.ID.Name())
		eq(t, "set tags", get(set, "tags"), sdk.Tags)
		eq(t, "set contentType", get(set, "contentType"), *sdk.ContentType)
		eq(t, "set created", get(set, "attributes", "created"), iso(sdk.Attributes.Created))
		eq(t, "set expires", get(set, "attributes", "expires"), "2031-01-02T03:04:05+00:00")
		eq(t, "set recoveryLevel", get(set, "attributes", "recoveryLevel"), *sdk.Attributes.RecoveryLevel)
		for _, k := range []string{"kid", "managed", "notBefore"} {
			if _, ok := m(set)[k]; !ok && k != "notBefore" {
				t.Fatalf("set output lacks %q (az prints every field): %v", k, set)
			}
		}
		show := h.kv("secret", "show", "--vault-name", "dev", "--name", "cli-s")
		eq(t, "show = set", show, set)
		byID := h.kv("secret", "show", "--id", string(*sdk.ID))
		eq(t, "show --id", byID, set)

		// A second version, from a file (base64-encoded bytes).
		bin := []byte{0, 1, 2, 0xfe, 0xff}
		binFile := filepath.Join(dir, "bin")
		os.WriteFile(binFile, bin, 0o600)
		v2 := h.kv("secret", "set", "--vault-name", "dev", "--name", "cli-s", "--file", binFile, "--encoding", "base64")
		eq(t, "file-encoding tag", get(v2, "tags"), map[string]string{"file-encoding": "base64"})
		out := filepath.Join(dir, "bin.out")
		h.kv("secret", "download", "--vault-name", "dev", "--name", "cli-s", "--file", out)
		if got, _ := os.ReadFile(out); !bytes.Equal(got, bin) {
			t.Fatalf("download: %x, want %x", got, bin)
		}
		h.fails("already exists", "secret", "download", "--vault-name", "dev", "--name", "cli-s", "--file", out)
		out1 := filepath.Join(dir, "v1.out")
		h.kv("secret", "download", "--id", string(*sdk.ID), "--file", out1)
		if got, _ := os.ReadFile(out1); string(got) != value {
			t.Fatal("download of version 1 is not its value")
		}

		list := l(h.kv("secret", "list", "--vault-name", "dev"))
		var sdkNames, cliNames []string
		for pg := sc.NewListSecretPropertiesPager(nil); pg.More(); {
			p, err := pg.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, s := range p.Value {
				if s.Managed == nil || !*s.Managed {
					sdkNames = append(sdkNames, s.ID.Name())
				}
			}
		}
		for _, it := range list {
			cliNames = append(cliNames, get(it, "name").(string))
			if _, ok := m(it)["value"]; ok {
				t.Fatal("secret list printed a value")
			}
		}
		slices.Sort(sdkNames)
		slices.Sort(cliNames)
		eq(t, "list names", cliNames, sdkNames)
		versions := l(h.kv("secret", "list-versions", "--vault-name", "dev", "--name", "cli-s"))
		if len(versions) != 2 {
			t.Fatalf("list-versions: %d versions, want 2", len(versions))
		}

		backup := filepath.Join(dir, "cli-s.blob")
		if h.kv("secret", "backup", "--vault-name", "dev", "--name", "cli-s", "--file", backup) != nil {
			t.Fatal("backup printed something")
		}
		del := h.kv("secret", "delete", "--vault-name", "dev", "--name", "cli-s")
		ds, err := sc.GetDeletedSecret(ctx, "cli-s", nil)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "delete recoveryId", get(del, "recoveryId"), *ds.RecoveryID)
		eq(t, "delete deletedDate", get(del, "deletedDate"), iso(ds.DeletedDate))
		eq(t, "delete scheduledPurgeDate", get(del, "scheduledPurgeDate"), iso(ds.ScheduledPurgeDate))
		rec := h.kv("secret", "recover", "--vault-name", "dev", "--name", "cli-s")
		eq(t, "recover name", get(rec, "name"), "cli-s")
		waitFor(t, func() error { _, err := sc.GetSecret(ctx, "cli-s", "", nil); return err })
		h.kv("secret", "delete", "--vault-name", "dev", "--name", "cli-s")
		h.kv("secret", "purge", "--vault-name", "dev", "--name", "cli-s")
		if _, err := sc.GetDeletedSecret(ctx, "cli-s", nil); err == nil {
			t.Fatal("purge left the deleted secret")
		}
		restored := h.kv("secret", "restore", "--vault-name", "dev", "--file", backup)
		eq(t, "restore name", get(restored, "name"), "cli-s")
		after, err := sc.GetSecret(ctx, "cli-s", "", nil)
		if err != nil || *after.Value != base64.StdEncoding.EncodeToString(bin) {
			t.Fatalf("after restore: %v", err)
		}
	})

	t.Run("key", func(t *testing.T) {
		h.t = t
		created := h.kv("key", "create", "--vault-name", "dev", "--name", "cli-k", "--kty", "RSA", "--size", "2048", "--ops", "encrypt", "decrypt", "sign", "verify")
		sdk, err := kc.GetKey(ctx, "cli-k", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "create kid", get(created, "key", "kid"), string(*sdk.Key.KID))
		eq(t, "create n (standard base64, as az)", get(created, "key", "n"), base64.StdEncoding.EncodeToString(sdk.Key.N))
		eq(t, "create keyOps", get(created, "key", "keyOps"), sdk.Key.KeyOps)
		eq(t, "create created", get(created, "attributes", "created"), iso(sdk.Attributes.Created))
		eq(t, "show", h.kv("key", "show", "--vault-name", "dev", "--name", "cli-k"), created)

		ct := get(h.kv("key", "encrypt", "--vault-name", "dev", "--name", "cli-k", "--algorithm", "RSA-OAEP-256", "--value", "hello", "--data-type", "plaintext"), "result").(string)
		raw, _ := base64.StdEncoding.DecodeString(ct)
		dr, err := kc.Decrypt(ctx, "cli-k", "", azkeys.KeyOperationParameters{Algorithm: to.Ptr(azkeys.EncryptionAlgorithmRSAOAEP256), Value: raw}, nil)
		if err != nil || string(dr.Result) != "hello" {
			t.Fatalf("SDK decrypt of the CLI's ciphertext: %v %q", err, dr.Result)
		}
		dec := h.kv("key", "decrypt", "--vault-name", "dev", "--name", "cli-k", "--algorithm", "RSA-OAEP-256", "--value", ct, "--data-type", "plaintext")
		eq(t, "decrypt", get(dec, "result"), "hello")

		digest := sha256.Sum256([]byte("message"))
		d64 := base64.StdEncoding.EncodeToString(digest[:])
		sig := get(h.kv("key", "sign", "--vault-name", "dev", "--name", "cli-k", "--algorithm", "RS256", "--digest", d64), "signature").(string)
		sigRaw, _ := base64.StdEncoding.DecodeString(sig)
		vr, err := kc.Verify(ctx, "cli-k", "", azkeys.VerifyParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmRS256), Digest: digest[:], Signature: sigRaw}, nil)
		if err != nil || vr.Value == nil || !*vr.Value {
			t.Fatalf("SDK verify of the CLI's signature: %v", err)
		}
		eq(t, "verify", get(h.kv("key", "verify", "--vault-name", "dev", "--name", "cli-k", "--algorithm", "RS256", "--digest", d64, "--signature", sig), "isValid"), true)
		sigRaw[0] ^= 1
		eq(t, "verify (bad signature)", get(h.kv("key", "verify", "--vault-name", "dev", "--name", "cli-k", "--algorithm", "RS256", "--digest", d64,
			"--signature", base64.StdEncoding.EncodeToString(sigRaw)), "isValid"), false)

		// A post-quantum key: kty AKP, the parameter set in --curve, and
		// --digest carrying the message (ML-DSA signs messages).
		h.kv("key", "create", "--vault-name", "dev", "--name", "cli-pq", "--kty", "AKP", "--curve", "ML-DSA-44")
		m64 := base64.StdEncoding.EncodeToString([]byte("message"))
		pqSig := get(h.kv("key", "sign", "--vault-name", "dev", "--name", "cli-pq", "--algorithm", "ML-DSA-44", "--digest", m64), "signature").(string)
		eq(t, "ML-DSA verify", get(h.kv("key", "verify", "--vault-name", "dev", "--name", "cli-pq", "--algorithm", "ML-DSA-44", "--digest", m64, "--signature", pqSig), "isValid"), true)
		eq(t, "ML-DSA verify (other message)", get(h.kv("key", "verify", "--vault-name", "dev", "--name", "cli-pq", "--algorithm", "ML-DSA-44",
			"--digest", base64.StdEncoding.EncodeToString([]byte("messagf")), "--signature", pqSig), "isValid"), false)

		pemFile := filepath.Join(dir, "cli-k.pem")
		h.kv("key", "download", "--vault-name", "dev", "--name", "cli-k", "--file", pemFile)
		b, _ := pem.Decode(mustRead(t, pemFile))
		pub, err := x509.ParsePKIXPublicKey(b.Bytes)
		if err != nil || pub.(*rsa.PublicKey).N.Cmp(new(big.Int).SetBytes(sdk.Key.N)) != 0 {
			t.Fatalf("download: not the SDK's public key: %v", err)
		}

		pol := h.kv("key", "rotation-policy", "update", "--vault-name", "dev", "--name", "cli-k", "--value",
			`{"lifetimeActions":[{"trigger":{"timeAfterCreate":"P90D"},"action":{"type":"Rotate"}}],"attributes":{"expiryTime":"P2Y"}}`)
		sp, err := kc.GetKeyRotationPolicy(ctx, "cli-k", nil)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "rotation policy expiresIn", get(pol, "expiresIn"), *sp.Attributes.ExpiryTime)
		eq(t, "rotation policy action", get(l(get(pol, "lifetimeActions"))[0], "timeAfterCreate"), *sp.LifetimeActions[0].Trigger.TimeAfterCreate)
		eq(t, "rotation-policy show", h.kv("key", "rotation-policy", "show", "--vault-name", "dev", "--name", "cli-k"), pol)

		rotated := h.kv("key", "rotate", "--vault-name", "dev", "--name", "cli-k")
		now, _ := kc.GetKey(ctx, "cli-k", "", nil)
		eq(t, "rotate kid", get(rotated, "key", "kid"), string(*now.Key.KID))
		if *now.Key.KID == *sdk.Key.KID {
			t.Fatal("rotate made no new version")
		}
		if n := len(l(h.kv("key", "list-versions", "--vault-name", "dev", "--name", "cli-k"))); n != 2 {
			t.Fatalf("list-versions: %d", n)
		}
		found := false
		for _, it := range l(h.kv("key", "list", "--vault-name", "dev")) {
			found = found || get(it, "name") == "cli-k"
		}
		if !found {
			t.Fatal("key list lacks cli-k")
		}

		// import: an EC key made here; the vault's public key is ours.
		ek, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		der, _ := x509.MarshalPKCS8PrivateKey(ek)
		ecPEM := filepath.Join(dir, "ec.pem")
		os.WriteFile(ecPEM, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600)
		imp := h.kv("key", "import", "--vault-name", "dev", "--name", "cli-ec", "--pem-file", ecPEM)
		ik, err := kc.GetKey(ctx, "cli-ec", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "import x", get(imp, "key", "x"), base64.StdEncoding.EncodeToString(ek.X.FillBytes(make([]byte, 32))))
		eq(t, "import kid", get(imp, "key", "kid"), string(*ik.Key.KID))
		if get(imp, "key", "d") != nil {
			t.Fatal("import printed private key material")
		}

		blob := filepath.Join(dir, "cli-k.blob")
		h.kv("key", "backup", "--vault-name", "dev", "--name", "cli-k", "--file", blob)
		del := h.kv("key", "delete", "--vault-name", "dev", "--name", "cli-k")
		dk, err := kc.GetDeletedKey(ctx, "cli-k", nil)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "delete recoveryId", get(del, "recoveryId"), *dk.RecoveryID)
		h.kv("key", "recover", "--vault-name", "dev", "--name", "cli-k")
		waitFor(t, func() error { _, err := kc.GetKey(ctx, "cli-k", "", nil); return err })
		h.kv("key", "delete", "--vault-name", "dev", "--name", "cli-k")
		h.kv("key", "purge", "--vault-name", "dev", "--name", "cli-k")
		restored := h.kv("key", "restore", "--vault-name", "dev", "--file", blob)
		eq(t, "restore kid", get(restored, "key", "kid"), string(*now.Key.KID))
	})

	t.Run("certificate", func(t *testing.T) {
		h.t = t
		policy := h.kv("certificate", "get-default-policy")
		golden(t, "default-policy.json", h.kvText("certificate", "get-default-policy"))
		polFile := filepath.Join(dir, "policy.json")
		raw, _ := json.Marshal(policy)
		os.WriteFile(polFile, raw, 0o600)
		h.term = true // the progress line goes to stderr
		r := h.run("keyvault", "certificate", "create", "--vault-name", "dev", "--name", "cli-c", "--policy", "@"+polFile, "--dev-json", h.devJSON)
		h.term = false
		if r.err != nil {
			t.Fatal(r.err)
		}
		if !strings.Contains(r.errOut, "Creating certificate cli-c [") {
			t.Fatalf("no progress line on a terminal: %q", r.errOut)
		}
		var op any
		json.Unmarshal([]byte(r.out), &op)
		eq(t, "create status", get(op, "status"), "completed")
		sdk, err := cc.GetCertificate(ctx, "cli-c", "", nil)
		if err != nil {
			t.Fatal(err)
		}
		show := h.kv("certificate", "show", "--vault-name", "dev", "--name", "cli-c")
		eq(t, "show id", get(show, "id"), string(*sdk.ID))
		eq(t, "show cer", get(show, "cer"), base64.StdEncoding.EncodeToString(sdk.CER))
		eq(t, "show x509Thumbprint", get(show, "x509Thumbprint"), base64.RawURLEncoding.EncodeToString(sdk.X509Thumbprint))
		eq(t, "show policy subject", get(show, "policy", "x509CertificateProperties", "subject"), *sdk.Policy.X509CertificateProperties.Subject)
		eq(t, "show policy keySize", get(show, "policy", "keyProperties", "keySize"), *sdk.Policy.KeyProperties.KeySize)
		found := false
		for _, it := range l(h.kv("certificate", "list", "--vault-name", "dev")) {
			found = found || get(it, "name") == "cli-c"
		}
		if !found {
			t.Fatal("certificate list lacks cli-c")
		}
		der := filepath.Join(dir, "cli-c.der")
		h.kv("certificate", "download", "--vault-name", "dev", "--name", "cli-c", "--file", der, "--encoding", "DER")
		if !bytes.Equal(mustRead(t, der), sdk.CER) {
			t.Fatal("download DER is not the SDK's CER")
		}

		// import: a PEM with a certificate and its key made here.
		key, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		tmpl := &x509.Certificate{SerialNumber: big.NewInt(7), Subject: pkix.Name{CommonName: "cli-import"},
			NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour)}
		certDER, _ := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		keyDER, _ := x509.MarshalPKCS8PrivateKey(key)
		pemFile := filepath.Join(dir, "import.pem")
		os.WriteFile(pemFile, append(pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: certDER}),
			pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER})...), 0o600)
		imp := h.kv("certificate", "import", "--vault-name", "dev", "--name", "cli-imp", "--file", pemFile)
		eq(t, "import cer", get(imp, "cer"), base64.StdEncoding.EncodeToString(certDER))
		si, err := cc.GetCertificate(ctx, "cli-imp", "", nil)
		if err != nil || !bytes.Equal(si.CER, certDER) {
			t.Fatalf("SDK view of the imported certificate: %v", err)
		}

		// pending merge: issuer Unknown, the CSR signed by a CA made here.
		pend := m(toAny(policy))
		m(pend["issuerParameters"])["name"] = "Unknown"
		m(pend["x509CertificateProperties"])["subject"] = "CN=cli-pending"
		raw, _ = json.Marshal(pend)
		op = h.kv("certificate", "create", "--vault-name", "dev", "--name", "cli-p", "--policy", string(raw))
		eq(t, "pending status", get(op, "status"), "inProgress")
		so, err := cc.GetCertificateOperation(ctx, "cli-p", nil)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "pending csr", get(op, "csr"), base64.StdEncoding.EncodeToString(so.CSR))
		csr, err := x509.ParseCertificateRequest(so.CSR)
		if err != nil {
			t.Fatal(err)
		}
		caKey, _ := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		ca := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "cli test CA"}, IsCA: true, BasicConstraintsValid: true,
			KeyUsage: x509.KeyUsageCertSign, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(48 * time.Hour)}
		leaf := &x509.Certificate{SerialNumber: big.NewInt(2), Subject: csr.Subject, NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour),
			KeyUsage: x509.KeyUsageDigitalSignature}
		leafDER, err := x509.CreateCertificate(rand.Reader, leaf, ca, csr.PublicKey, caKey)
		if err != nil {
			t.Fatal(err)
		}
		signed := filepath.Join(dir, "signed.pem")
		os.WriteFile(signed, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: leafDER}), 0o600)
		merged := h.kv("certificate", "pending", "merge", "--vault-name", "dev", "--name", "cli-p", "--file", signed)
		eq(t, "merge cer", get(merged, "cer"), base64.StdEncoding.EncodeToString(leafDER))
		sm, err := cc.GetCertificate(ctx, "cli-p", "", nil)
		if err != nil || !bytes.Equal(sm.CER, leafDER) {
			t.Fatalf("SDK view after merge: %v", err)
		}
	})

	t.Run("vault", func(t *testing.T) {
		h.t = t
		vc, _ := armkeyvault.NewVaultsClient(e.Info.SubscriptionID, cred, armOpts(e))
		created := h.kv("create", "--name", "cli-vault", "--resource-group", e.Info.ResourceGroup, "--location", e.Info.Location, "--retention-days", "7")
		sdk, err := vc.Get(ctx, e.Info.ResourceGroup, "cli-vault", nil)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "create id", get(created, "id"), *sdk.ID)
		eq(t, "create vaultUri", get(created, "properties", "vaultUri"), *sdk.Properties.VaultURI)
		eq(t, "create retention", get(created, "properties", "softDeleteRetentionInDays"), *sdk.Properties.SoftDeleteRetentionInDays)
		eq(t, "create resourceGroup", get(created, "resourceGroup"), e.Info.ResourceGroup)
		show := h.kv("show", "--name", "cli-vault")
		eq(t, "show id", get(show, "id"), *sdk.ID)
		var names []string
		for _, it := range l(h.kv("list")) {
			names = append(names, get(it, "name").(string))
		}
		if !slices.Contains(names, "cli-vault") || !slices.Contains(names, "dev") {
			t.Fatalf("list: %v", names)
		}
		up := h.kv("update", "--name", "cli-vault", "--enable-purge-protection")
		sdk, _ = vc.Get(ctx, e.Info.ResourceGroup, "cli-vault", nil)
		eq(t, "update purge protection", get(up, "properties", "enablePurgeProtection"), *sdk.Properties.EnablePurgeProtection)

		// The whole dev vault backed up to a directory and restored into
		// the new vault (quiet when not on a terminal).
		bdir := filepath.Join(dir, "backup")
		r := h.run("keyvault", "backup", "start", "--vault-name", "dev", "--directory", bdir, "--dev-json", h.devJSON)
		if r.err != nil || r.errOut != "" {
			t.Fatalf("backup start: %v (stderr %q: must be quiet when piped)", r.err, r.errOut)
		}
		var counts map[string]any
		json.Unmarshal([]byte(r.out), &counts)
		rs := h.kv("restore", "start", "--vault-name", "cli-vault", "--directory", bdir)
		eq(t, "restore counts", rs, counts)
		nc, _ := azsecrets.NewClient(*sdk.Properties.VaultURI, cred, &azsecrets.ClientOptions{ClientOptions: copts})
		got, err := nc.GetSecret(ctx, "cli-s", "", nil)
		want, _ := sc.GetSecret(ctx, "cli-s", "", nil)
		if err != nil || *got.Value != *want.Value {
			t.Fatalf("restored secret in the new vault: %v", err)
		}
		ncc, _ := azcertificates.NewClient(*sdk.Properties.VaultURI, cred, &azcertificates.ClientOptions{ClientOptions: copts})
		if _, err := ncc.GetCertificate(ctx, "cli-c", "", nil); err != nil {
			t.Fatalf("restored certificate: %v", err)
		}

		if h.kv("delete", "--name", "cli-vault") != nil {
			t.Fatal("delete printed something")
		}
		if _, err := vc.Get(ctx, e.Info.ResourceGroup, "cli-vault", nil); err == nil {
			t.Fatal("the vault is still there")
		}
	})

	t.Run("role", func(t *testing.T) {
		h.t = t
		rc, _ := armauthorization.NewRoleAssignmentsClient(e.Info.SubscriptionID, cred, armOpts(e))
		scope := "/subscriptions/" + e.Info.SubscriptionID + "/resourceGroups/" + e.Info.ResourceGroup + "/providers/Microsoft.KeyVault/vaults/dev"
		a := h.kv("role", "assignment", "create", "--scope", scope, "--role", "Key Vault Secrets User", "--assignee", e.Info.UnprivilegedObjectID)
		sdk, err := rc.GetByID(ctx, get(a, "id").(string), nil)
		if err != nil {
			t.Fatal(err)
		}
		eq(t, "create principalId", get(a, "principalId"), *sdk.Properties.PrincipalID)
		eq(t, "create roleDefinitionId", get(a, "roleDefinitionId"), *sdk.Properties.RoleDefinitionID)
		eq(t, "create scope", get(a, "scope"), scope)
		list := l(h.kv("role", "assignment", "list", "--vault-name", "dev", "--assignee", e.Info.UnprivilegedObjectID))
		if len(list) != 1 || get(list[0], "id") != *sdk.ID {
			t.Fatalf("list --assignee: %v", list)
		}
		h.kv("role", "assignment", "delete", "--scope", scope, "--assignee", e.Info.UnprivilegedObjectID, "--role", "Key Vault Secrets User")
		if _, err := rc.GetByID(ctx, *sdk.ID, nil); err == nil {
			t.Fatal("delete left the assignment")
		}
		h.fails("no matched assignments", "role", "assignment", "delete", "--scope", scope, "--assignee", e.Info.UnprivilegedObjectID)
	})

	t.Run("output", func(t *testing.T) {
		h.t = t
		h.kv("secret", "set", "--vault-name", "dev", "--name", "out-a", "--value", "alpha", "--tags", "k=v")
		h.kv("secret", "set", "--vault-name", "dev", "--name", "out-b", "--value", "beta", "--disabled")
		q := "[?starts_with(name, 'out-')].{name:name, enabled:attributes.enabled, tags:tags}"
		golden(t, "secret-list.table", h.kvText("secret", "list", "--vault-name", "dev", "--query", q, "-o", "table"))
		golden(t, "secret-list.tsv", h.kvText("secret", "list", "--vault-name", "dev", "--query", q, "-o", "tsv"))
		golden(t, "secret-list.yaml", h.kvText("secret", "list", "--vault-name", "dev", "--query", q, "-o", "yaml"))
		golden(t, "secret-list.json", h.kvText("secret", "list", "--vault-name", "dev", "--query", q))
		golden(t, "secret-show-value.tsv", h.kvText("secret", "show", "--vault-name", "dev", "--name", "out-a", "--query", "value", "-o", "tsv"))
		golden(t, "secret-show.tsv", h.kvText("secret", "show", "--vault-name", "dev", "--name", "out-a", "--query", "[name, value, attributes.enabled, tags]", "-o", "tsv"))
		golden(t, "default-policy.yaml", h.kvText("certificate", "get-default-policy", "-o", "yaml"))
		golden(t, "default-policy.tsv", h.kvText("certificate", "get-default-policy", "-o", "tsv"))
		golden(t, "vault-list.table", h.kvText("list", "--resource-type", "vault", "-o", "table"))
		golden(t, "vault-show.tsv", h.kvText("show", "--name", "dev", "--query", "[name, resourceGroup, properties.sku.name, properties.enableRbacAuthorization]", "-o", "tsv"))
		// The automatic table of a whole object: scalar top-level fields
		// only, id left out (knack), column order sorted.
		portRE := regexp.MustCompile(`:\d+/|[0-9a-f]{32}|\d{4}-\d\d-\d\dT[0-9:]+\+00:00`)
		golden(t, "key-show.table", portRE.ReplaceAllString(h.kvText("key", "show", "--vault-name", "dev", "--name", "cli-ec", "--query",
			"{kty:key.kty, crv:key.crv, enabled:attributes.enabled, ops:key.keyOps}", "-o", "table"), "…"))
		if out := h.kvText("secret", "show", "--vault-name", "dev", "--name", "out-a", "-o", "none"); out != "" {
			t.Fatalf("-o none printed %q", out)
		}
		jc := h.kvText("secret", "show", "--vault-name", "dev", "--name", "out-a", "-o", "jsonc")
		if !strings.Contains(jc, "\x1b[94m\"value\"\x1b[39m: \x1b[32m\"alpha\"\x1b[39m") {
			t.Fatalf("jsonc is not coloured JSON:\n%q", jc)
		}
	})

	t.Run("errors", func(t *testing.T) {
		h.t = t
		h.fails(`--output "xml" is not one of`, "secret", "list", "--vault-name", "dev", "-o", "xml")
		h.fails(`--query .* is not a JMESPath expression`, "secret", "list", "--vault-name", "dev", "--query", "[?name==")
		h.fails(`--vault-name \(or --id\) is required`, "secret", "show", "--name", "x")
		h.fails(`\(SecretNotFound\)`, "secret", "show", "--vault-name", "dev", "--name", "nope")
		h.fails(`--name "bad_name" is not valid`, "secret", "show", "--vault-name", "dev", "--name", "bad_name")
		h.fails(`exactly one of --value and --file`, "secret", "set", "--vault-name", "dev", "--name", "x")
		h.fails(`--kty "DSA" is not one of`, "key", "create", "--vault-name", "dev", "--name", "x", "--kty", "DSA")
		h.fails(`--id .* is not a secret ID`, "secret", "show", "--id", e.Info.VaultURL+"keys/x")
		h.fails(`--expires "tomorrow" is not an ISO 8601 time`, "secret", "set", "--vault-name", "dev", "--name", "x", "--value", "v", "--expires", "tomorrow")
		h.fails(`--policy is not a certificate policy`, "certificate", "create", "--vault-name", "dev", "--name", "x", "--policy", "{")
		h.fails(`unknown command`, "secret", "frobnicate")
		// Nothing was created by the refused requests.
		if _, err := sc.GetSecret(ctx, "x", "", nil); err == nil {
			t.Fatal("a refused set created a secret")
		}
	})

	t.Run("credentials", func(t *testing.T) {
		h.t = t
		h.secretValues = append(h.secretValues, e.Info.ClientSecret, e.Info.UnprivilegedClientSecret)
		cfg := t.TempDir()
		// AZURE_* variables, the server named by KEYWARD_* variables.
		suffix := strings.TrimSuffix(strings.TrimPrefix(e.Info.VaultURL, "https://dev."), "/")
		h.env = map[string]string{"KEYWARD_CONFIG_DIR": cfg, "AZURE_TENANT_ID": e.Info.TenantID, "AZURE_CLIENT_ID": e.Info.ClientID,
			"AZURE_CLIENT_SECRET": e.Info.ClientSecret, "AZURE_AUTHORITY_HOST": e.Info.AuthorityHost,
			"KEYWARD_VAULT_DNS_SUFFIX": suffix, "KEYWARD_CACERT": e.Server.CAFile()}
		r := h.run("keyvault", "secret", "show", "--vault-name", "dev", "--name", "out-a", "--query", "value", "-o", "tsv")
		if r.err != nil || r.out != "alpha\n" {
			t.Fatalf("with AZURE_* variables: %v %q %s", r.err, r.out, r.errOut)
		}
		// Not signed in at all: a clear error.
		h.env = map[string]string{"KEYWARD_CONFIG_DIR": t.TempDir()}
		if r := h.run("keyvault", "secret", "list", "--vault-name", "dev"); r.err == nil || !strings.Contains(r.err.Error(), "keyward login") {
			t.Fatalf("without credentials: %v", r.err)
		}
		// login --dev-json, then commands without it; files are 0600.
		h.env = map[string]string{"KEYWARD_CONFIG_DIR": cfg}
		r = h.run("login", "--dev-json", h.devJSON)
		if r.err != nil {
			t.Fatalf("login --dev-json: %v %s", r.err, r.errOut)
		}
		var subs []map[string]any
		json.Unmarshal([]byte(r.out), &subs)
		if len(subs) == 0 || subs[0]["id"] != e.Info.SubscriptionID || subs[0]["isDefault"] != true {
			t.Fatalf("login output: %s", r.out)
		}
		for _, f := range []string{"profile.json", "tokens.json"} {
			st, err := os.Stat(filepath.Join(cfg, f))
			if err != nil || st.Mode().Perm() != 0o600 {
				t.Fatalf("%s: %v mode %v, want 0600", f, err, st.Mode())
			}
		}
		r = h.run("keyvault", "secret", "show", "--vault-name", "dev", "--name", "out-a", "--query", "value", "-o", "tsv")
		if r.err != nil || r.out != "alpha\n" {
			t.Fatalf("after login: %v %q", r.err, r.out)
		}
		// login --service-principal as the principal with no role: the
		// vault refuses it, and the CLI says so and fails.
		r = h.run("login", "--service-principal", "-u", e.Info.UnprivilegedClientID, "-p", e.Info.UnprivilegedClientSecret,
			"--tenant", e.Info.TenantID, "--authority-host", e.Info.AuthorityHost, "--management-url", e.Info.ManagementURL,
			"--management-resource", e.Info.ManagementResource, "--vault-dns-suffix", suffix, "--ca-file", e.Server.CAFile(),
			"--subscription", e.Info.SubscriptionID, "-o", "none")
		if r.err != nil {
			t.Fatalf("login --service-principal: %v %s", r.err, r.errOut)
		}
		r = h.run("keyvault", "secret", "show", "--vault-name", "dev", "--name", "out-a")
		if r.err == nil || !strings.Contains(r.err.Error(), "Forbidden") || strings.Contains(r.out, "alpha") {
			t.Fatalf("an unprivileged principal: %v %q", r.err, r.out)
		}
		// A wrong secret: sign-in fails, nothing saved over the profile.
		r = h.run("login", "--service-principal", "-u", e.Info.UnprivilegedClientID, "-p", "wrong-secret-value",
			"--tenant", e.Info.TenantID, "--authority-host", e.Info.AuthorityHost, "--vault-dns-suffix", suffix, "--ca-file", e.Server.CAFile())
		if r.err == nil || !strings.Contains(r.err.Error(), "sign-in failed") {
			t.Fatalf("login with a wrong secret: %v", r.err)
		}
		if r := h.run("logout"); r.err != nil {
			t.Fatal(r.err)
		}
		if _, err := os.Stat(filepath.Join(cfg, "profile.json")); !errors.Is(err, os.ErrNotExist) {
			t.Fatal("logout left profile.json")
		}
	})
}

func mustRead(t *testing.T, path string) []byte {
	t.Helper()
	raw, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return raw
}

// waitFor polls fn until it succeeds (a recover completes asynchronously
// in Azure; Keyward's is immediate, but clients must not assume it).
func waitFor(t *testing.T, fn func() error) {
	t.Helper()
	var err error
	for i := 0; i < 50; i++ {
		if err = fn(); err == nil {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatal(err)
}
