package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/devca"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
)

// cli runs the keyward command line in this process.
type cli struct {
	t      *testing.T
	getenv func(string) string
}

func (c cli) run(args ...string) (string, error) {
	c.t.Helper()
	var out, errOut bytes.Buffer
	getenv := c.getenv
	if getenv == nil {
		getenv = func(string) string { return "" }
	}
	err := run(context.Background(), args, getenv, strings.NewReader(""), &out, &errOut)
	return out.String() + errOut.String(), err
}

// prodServer is a production-mode (not dev) Keyward on dir.
type prodServer struct {
	t       *testing.T
	dir     string
	tls     *devca.CA
	s       *server.Server
	address string // https://127.0.0.1:PORT, for the operator commands
}

func startProd(t *testing.T, dir string, ca *devca.CA) *prodServer {
	t.Helper()
	s, err := server.Start(context.Background(), server.Config{
		Listen: "127.0.0.1:0", DataDir: dir, DNSSuffix: "localhost",
		TLSCertFile: ca.Files.Cert, TLSKeyFile: ca.Files.Key,
		Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return &prodServer{t: t, dir: dir, tls: ca, s: s, address: "https://" + s.Addr()}
}

// env is a kwtest.Env for SDK clients of the production server.
func (p *prodServer) env(vault, tenant, clientID, secret string) *kwtest.Env {
	return &kwtest.Env{T: p.t, Server: p.s, DataDir: p.dir,
		HTTP: kwtest.HTTPClient(p.t, p.tls.Files.CACert, p.s.Addr()),
		Info: &server.DevInfo{TenantID: tenant, ClientID: clientID, ClientSecret: secret,
			AuthorityHost: p.s.AuthorityURL(), VaultURL: p.s.VaultURL(vault)}}
}

// wantSealed503 checks that the data plane and the token service refuse
// with 503 and an Azure-shaped body while sealed.
func (p *prodServer) wantSealed503(vault, tenant string) {
	t := p.t
	t.Helper()
	hc := kwtest.HTTPClient(t, p.tls.Files.CACert, p.s.Addr())
	check := func(what string, req *http.Request) {
		t.Helper()
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		raw, _ := io.ReadAll(resp.Body)
		var b struct {
			Error struct {
				Code       string
				Message    string
				InnerError *struct{ Code string } `json:"innererror"`
			}
		}
		if resp.StatusCode != http.StatusServiceUnavailable || json.Unmarshal(raw, &b) != nil ||
			b.Error.Code != "ServiceUnavailable" || b.Error.Message == "" ||
			!strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
			t.Fatalf("%s while sealed: %d %s", what, resp.StatusCode, raw)
		}
	}
	req, _ := http.NewRequest("GET", p.s.VaultURL(vault)+"secrets?api-version=7.4", nil)
	req.Header.Set("Authorization", "Bearer x.y.z")
	check("vault request", req)
	form := url.Values{"grant_type": {"client_credentials"}, "client_id": {"c"}, "client_secret": {"s"},
		"scope": {"https://vault.localhost/.default"}}
	req, _ = http.NewRequest("POST", p.s.AuthorityURL()+tenant+"/oauth2/v2.0/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	check("token request", req)
}

var (
	shareRE    = regexp.MustCompile(`(?m)^Unseal Key (\d+): (\S+)$`)
	initField  = func(name string) *regexp.Regexp { return regexp.MustCompile(`(?m)^\s+` + name + `:\s+(\S+)$`) }
	progressRE = regexp.MustCompile(`(?m)^Progress:\s+(\d+/\d+)$`)
	sealedRE   = regexp.MustCompile(`(?m)^Sealed:\s+(true|false)$`)
)

func field(t *testing.T, re *regexp.Regexp, out string) string {
	t.Helper()
	m := re.FindStringSubmatch(out)
	if m == nil {
		t.Fatalf("no %s in:\n%s", re, out)
	}
	return m[1]
}

func wantStatus(t *testing.T, out string, sealed bool, progress string) {
	t.Helper()
	if got := field(t, sealedRE, out); got != map[bool]string{true: "true", false: "false"}[sealed] {
		t.Fatalf("Sealed: %s, want %t:\n%s", got, sealed, out)
	}
	if progress != "" {
		if got := field(t, progressRE, out); got != progress {
			t.Fatalf("Progress %s, want %s:\n%s", got, progress, out)
		}
	}
}

func TestOperatorShamirSeal(t *testing.T) {
	dir := t.TempDir()
	ca, err := devca.Ensure(filepath.Join(t.TempDir(), "tls"),
		[]string{"localhost", "*.vault.localhost", "login.localhost", "management.localhost"},
		[]net.IP{net.IPv4(127, 0, 0, 1)}, time.Now())
	if err != nil {
		t.Fatal(err)
	}
	p := startProd(t, dir, ca)
	op := func(args ...string) []string {
		return append(args, "--address", p.address, "--ca-cert", ca.Files.CACert)
	}
	c := cli{t: t}

	out, err := c.run(op("operator", "status")...)
	if !errors.Is(err, errSealed) {
		t.Fatalf("status before init: %v\n%s", err, out)
	}
	if !strings.Contains(out, "Initialized:  false") {
		t.Fatalf("status before init:\n%s", out)
	}

	out, err = c.run(op("operator", "init", "--shares", "5", "--threshold", "3")...)
	if err != nil {
		t.Fatalf("init: %v\n%s", err, out)
	}
	var shares []string
	for i, m := range shareRE.FindAllStringSubmatch(out, -1) {
		if m[1] != string(rune('1'+i)) {
			t.Fatalf("share numbering: %q", m[0])
		}
		shares = append(shares, m[2])
	}
	if len(shares) != 5 {
		t.Fatalf("%d shares in:\n%s", len(shares), out)
	}
	tenant := field(t, initField("Tenant ID"), out)
	clientID := field(t, initField("Admin client ID"), out)
	secret := field(t, initField("Admin secret"), out)
	vaultName := field(t, initField("Vault"), out)
	if _, err := c.run(op("operator", "init", "--shares", "5", "--threshold", "3")...); err == nil {
		t.Fatal("a second init succeeded")
	}

	// Sealed: status says so, and the data plane and token service answer 503.
	out, err = c.run(op("operator", "status")...)
	if !errors.Is(err, errSealed) {
		t.Fatalf("status after init: %v", err)
	}
	wantStatus(t, out, true, "0/3")
	p.wantSealed503(vaultName, tenant)

	unseal := func(share string) (string, error) { return c.run(op("operator", "unseal", share)...) }
	// Two shares: still sealed.
	for i, s := range shares[:2] {
		out, err := unseal(s)
		if err != nil {
			t.Fatalf("unseal %d: %v\n%s", i, err, out)
		}
		wantStatus(t, out, true, []string{"1/3", "2/3"}[i])
	}
	// The same share again is refused and does not count.
	if out, err := unseal(shares[1]); err == nil || !strings.Contains(err.Error(), "already given") {
		t.Fatalf("duplicate share: %v\n%s", err, out)
	}
	out, _ = c.run(op("operator", "status")...)
	wantStatus(t, out, true, "2/3")
	p.wantSealed503(vaultName, tenant)

	// A wrong share (right length, unused x coordinate) with two good ones:
	// not unsealed, progress reset.
	good, err := base64.StdEncoding.DecodeString(shares[0])
	if err != nil {
		t.Fatal(err)
	}
	wrong := make([]byte, len(good))
	rand.Read(wrong)
	wrong[len(wrong)-1] = 200 // the x coordinate; the five real shares use others
	for _, s := range shares {
		if b, _ := base64.StdEncoding.DecodeString(s); b[len(b)-1] == 200 {
			wrong[len(wrong)-1] = 201
		}
	}
	if out, err := unseal(base64.StdEncoding.EncodeToString(wrong)); err == nil || !strings.Contains(err.Error(), "do not reconstruct") {
		t.Fatalf("wrong share: %v\n%s", err, out)
	}
	out, _ = c.run(op("operator", "status")...)
	wantStatus(t, out, true, "0/3")
	p.wantSealed503(vaultName, tenant)
	// A malformed share is refused too.
	if _, err := unseal(base64.StdEncoding.EncodeToString(good[:10])); err == nil {
		t.Fatal("short share accepted")
	}

	// Three good shares (any three) unseal.
	for i, s := range []string{shares[4], shares[2], shares[0]} {
		out, err := unseal(s)
		if err != nil {
			t.Fatalf("unseal %d: %v\n%s", i, err, out)
		}
		wantStatus(t, out, i < 2, "")
	}
	if out, err := c.run(op("operator", "status")...); err != nil {
		t.Fatalf("status after unseal: %v\n%s", err, out)
	}

	// The admin credentials from init work with the official SDK.
	e := p.env(vaultName, tenant, clientID, secret)
	sc, err := azsecrets.NewClient(e.Info.VaultURL, e.Credential(), &azsecrets.ClientOptions{ClientOptions: e.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	if _, err := sc.SetSecret(ctx, "sealed-away", azsecrets.SetSecretParameters{Value: to.Ptr("through-restarts")}, nil); err != nil {
		t.Fatalf("admin from init cannot set a secret: %v", err)
	}

	// Seal through the CLI, with the admin credentials.
	env := map[string]string{"KEYWARD_CLIENT_SECRET": secret}
	admin := cli{t: t, getenv: func(k string) string { return env[k] }}
	if out, err := (cli{t: t}).run(op("operator", "seal", "--tenant", tenant, "--client-id", clientID)...); err == nil {
		t.Fatalf("seal without a secret succeeded:\n%s", out)
	}
	env["KEYWARD_CLIENT_SECRET"] = secret + "x"
	if out, err := admin.run(op("operator", "seal", "--tenant", tenant, "--client-id", clientID)...); err == nil {
		t.Fatalf("seal with a wrong secret succeeded:\n%s", out)
	}
	env["KEYWARD_CLIENT_SECRET"] = secret
	if out, err := admin.run(op("operator", "seal", "--tenant", tenant, "--client-id", clientID)...); err != nil {
		t.Fatalf("seal: %v\n%s", err, out)
	}
	_, err = sc.GetSecret(ctx, "sealed-away", "", nil)
	var re *azcore.ResponseError
	if !errors.As(err, &re) || re.StatusCode != http.StatusServiceUnavailable || re.ErrorCode != "ServiceUnavailable" {
		t.Fatalf("get while sealed: %v", err)
	}
	p.wantSealed503(vaultName, tenant)

	// Restart: the server comes back sealed, and three shares open it.
	if err := p.s.Close(); err != nil {
		t.Fatal(err)
	}
	p = startProd(t, dir, ca)
	out, err = c.run(op("operator", "status")...)
	if !errors.Is(err, errSealed) {
		t.Fatalf("status after restart: %v\n%s", err, out)
	}
	wantStatus(t, out, true, "0/3")
	p.wantSealed503(vaultName, tenant)
	for _, s := range shares[1:4] {
		if out, err := unseal(s); err != nil {
			t.Fatalf("unseal after restart: %v\n%s", err, out)
		}
	}
	e = p.env(vaultName, tenant, clientID, secret)
	sc, err = azsecrets.NewClient(e.Info.VaultURL, e.Credential(), &azsecrets.ClientOptions{ClientOptions: e.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	got, err := sc.GetSecret(ctx, "sealed-away", "", nil)
	if err != nil {
		t.Fatalf("get after restart and unseal: %v", err)
	}
	if *got.Value != "through-restarts" {
		t.Fatalf("value after restart %q", *got.Value)
	}
}

// syncBuffer is a bytes.Buffer safe for the server goroutine and the test.
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

// runDev runs `keyward server --dev` on dir until the returned stop is
// called, and returns the dev.json it wrote.
func runDev(t *testing.T, dir string) (*server.DevInfo, []byte, func()) {
	t.Helper()
	os.Remove(filepath.Join(dir, "dev.json"))
	ctx, cancel := context.WithCancel(context.Background())
	var out syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"server", "--dev", "--listen", "127.0.0.1:0", "--data", dir, "--log-level", "error"},
			func(string) string { return "" }, strings.NewReader(""), &out, &out)
	}()
	stopped := false
	stop := func() {
		if stopped {
			return
		}
		stopped = true
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("server exited with %v\n%s", err, out.String())
			}
		case <-time.After(15 * time.Second):
			t.Error("server did not stop within 15s of its context ending")
		}
	}
	t.Cleanup(stop)
	deadline := time.Now().Add(30 * time.Second)
	for {
		raw, err := os.ReadFile(filepath.Join(dir, "dev.json"))
		if err == nil {
			info := new(server.DevInfo)
			if err := json.Unmarshal(raw, info); err != nil {
				t.Fatalf("dev.json: %v\n%s", err, raw)
			}
			return info, raw, stop
		}
		select {
		case err := <-done:
			t.Fatalf("server exited before writing dev.json: %v\n%s", err, out.String())
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("no dev.json after 30s:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func TestDevServerContract(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "does", "not", "exist", "yet")
	info, raw, stop := runDev(t, dir)

	var fields map[string]any
	if err := json.Unmarshal(raw, &fields); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"tenant_id", "authority_host", "client_id", "client_secret", "vault_url", "vault_dns_suffix",
		"management_url", "management_resource", "subscription_id", "resource_group", "location", "ca_file", "listen"} {
		if s, _ := fields[k].(string); s == "" {
			t.Errorf("dev.json %s is empty or missing", k)
		}
	}
	if !filepath.IsAbs(info.CAFile) {
		t.Errorf("ca_file %q is not absolute", info.CAFile)
	}
	_, port, err := net.SplitHostPort(info.Listen)
	if err != nil || port == "0" {
		t.Fatalf("listen %q", info.Listen)
	}
	if info.VaultURL != "https://dev.vault.localhost:"+port+"/" {
		t.Errorf("vault_url %q", info.VaultURL)
	}
	if info.VaultDNSSuffix != "vault.localhost" {
		t.Errorf("vault_dns_suffix %q", info.VaultDNSSuffix)
	}
	if !strings.HasPrefix(info.AuthorityHost, "https://") || !strings.HasSuffix(info.AuthorityHost, ":"+port+"/") {
		t.Errorf("authority_host %q", info.AuthorityHost)
	}
	if st, err := os.Stat(filepath.Join(dir, "dev.json")); err != nil || st.Mode().Perm()&0o077 != 0 {
		t.Errorf("dev.json holds a client secret and must be private: %v %v", st.Mode(), err)
	}
	ca1, err := os.ReadFile(info.CAFile)
	if err != nil {
		t.Fatal(err)
	}

	// dev.json is enough for the official SDK.
	e := &kwtest.Env{T: t, Info: info, DataDir: dir, HTTP: kwtest.HTTPClient(t, info.CAFile, info.Listen)}
	c, err := azsecrets.NewClient(info.VaultURL, e.Credential(), &azsecrets.ClientOptions{ClientOptions: e.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	set, err := c.SetSecret(ctx, "kept", azsecrets.SetSecretParameters{Value: to.Ptr("across-restarts")}, nil)
	if err != nil {
		t.Fatal(err)
	}
	// The management resource is one the token service issues tokens for.
	if _, err := e.Credential().GetToken(ctx, policyScopes(info.ManagementResource+".default")); err != nil {
		t.Fatalf("token for management_resource: %v", err)
	}
	stop()

	// Restart on the same directory: same identity, same CA, same data.
	info2, _, stop2 := runDev(t, dir)
	defer stop2()
	if info2.TenantID != info.TenantID || info2.ClientID != info.ClientID || info2.ClientSecret != info.ClientSecret ||
		info2.SubscriptionID != info.SubscriptionID || info2.CAFile != info.CAFile {
		t.Fatalf("restart changed the dev identity:\n%+v\n%+v", info, info2)
	}
	ca2, err := os.ReadFile(info2.CAFile)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(ca1, ca2) {
		t.Fatal("restart replaced the CA")
	}
	e2 := &kwtest.Env{T: t, Info: info2, DataDir: dir, HTTP: kwtest.HTTPClient(t, info2.CAFile, info2.Listen)}
	c2, err := azsecrets.NewClient(info2.VaultURL, e2.Credential(), &azsecrets.ClientOptions{ClientOptions: e2.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	got, err := c2.GetSecret(ctx, "kept", "", nil)
	if err != nil {
		t.Fatalf("secret after restart: %v", err)
	}
	if *got.Value != "across-restarts" || got.ID.Version() != set.ID.Version() {
		t.Fatalf("after restart: %q %s", *got.Value, got.ID.Version())
	}
}

func policyScopes(scopes ...string) policy.TokenRequestOptions {
	return policy.TokenRequestOptions{Scopes: scopes}
}
