//go:build cgo

package main

import (
	"bufio"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/keyward/keyward/internal/hsm/hsmtest"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
)

// TestHelperDevServerProcess is not a test: TestDevServerHSM runs the test
// binary again with KEYWARD_TEST_DEV_ARGS set, so the dev server runs in a
// fresh process whose SoftHSM2 library has never been configured (as
// `keyward server --dev` does).
func TestHelperDevServerProcess(t *testing.T) {
	args := os.Getenv("KEYWARD_TEST_DEV_ARGS")
	if args == "" {
		t.Skip("helper process only")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	go func() { // the parent closes stdin to stop the server
		buf := make([]byte, 1)
		os.Stdin.Read(buf)
		cancel()
	}()
	if err := run(ctx, strings.Fields(args), func(string) string { return "" }, strings.NewReader(""), os.Stdout, os.Stderr); err != nil {
		t.Fatal(err)
	}
}

// startDevProcess runs `keyward server --dev ARGS` in a child process and
// returns its banner (up to its HSM line) and dev.json.
func startDevProcess(t *testing.T, dir string, extra ...string) (string, *server.DevInfo) {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run", "^TestHelperDevServerProcess$", "-test.v")
	args := append([]string{"server", "--dev", "--listen", "127.0.0.1:0", "--data", dir, "--log-level", "error"}, extra...)
	cmd.Env = append(os.Environ(), "KEYWARD_TEST_DEV_ARGS="+strings.Join(args, " "))
	cmd.Env = slicesDeleteEnv(cmd.Env, "SOFTHSM2_CONF")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		stdin.Close()
		done := make(chan struct{})
		go func() { cmd.Wait(); close(done) }()
		select {
		case <-done:
		case <-time.After(15 * time.Second):
			cmd.Process.Kill()
		}
	})
	sc := bufio.NewScanner(stdout)
	var banner strings.Builder
	deadline := time.After(60 * time.Second)
	lines := make(chan string)
	go func() {
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for {
		select {
		case l, ok := <-lines:
			if !ok {
				t.Fatalf("dev server exited:\n%s", banner.String())
			}
			banner.WriteString(l + "\n")
			if strings.HasPrefix(strings.TrimSpace(l), "HSM:") {
				go func() {
					for range lines {
					}
				}()
				raw, err := os.ReadFile(filepath.Join(dir, "dev.json"))
				if err != nil {
					t.Fatal(err)
				}
				info := new(server.DevInfo)
				if err := json.Unmarshal(raw, info); err != nil {
					t.Fatal(err)
				}
				return banner.String(), info
			}
		case <-deadline:
			t.Fatalf("no banner within 60s:\n%s", banner.String())
		}
	}
}

func hexID(s string) string {
	const hx = "0123456789abcdef"
	out := make([]byte, 0, 2*len(s))
	for i := 0; i < len(s); i++ {
		out = append(out, hx[s[i]>>4], hx[s[i]&15])
	}
	return string(out)
}

func slicesDeleteEnv(env []string, name string) []string {
	out := env[:0]
	for _, e := range env {
		if !strings.HasPrefix(e, name+"=") {
			out = append(out, e)
		}
	}
	return out
}

// TestDevServerHSM: with SoftHSM2 installed, `keyward server --dev` makes
// its own token under --data (its own softhsm2.conf), a premium vault
// `dev`, and dev.json's hsm fields; RSA-HSM keys then work with azkeys and
// their private objects are in that token. With no SoftHSM2 it starts as
// before and its banner says how to get HSM keys.
func TestDevServerHSM(t *testing.T) {
	module := hsmtest.Module(t)
	dir := t.TempDir()
	_, info := startDevProcess(t, dir)
	if info.HSM == nil {
		t.Fatal("dev.json has no hsm section")
	}
	h := info.HSM
	if h.Module != module || !strings.HasPrefix(h.SoftHSM2Conf, dir) || h.TokenLabel == "" || h.UserPIN == "" {
		t.Fatalf("dev.json hsm %+v (data dir %s)", h, dir)
	}
	tokens, _ := filepath.Glob(filepath.Join(dir, "hsm", "tokens", "*"))
	if len(tokens) != 1 {
		t.Fatalf("token directories under --data: %v", tokens)
	}
	e := &kwtest.Env{T: t, Info: info, DataDir: dir, HTTP: kwtest.HTTPClient(t, info.CAFile, info.Listen)}
	c, err := azkeys.NewClient(info.VaultURL, e.Credential(), &azkeys.ClientOptions{ClientOptions: e.ClientOptions()})
	if err != nil {
		t.Fatal(err)
	}
	r, err := c.CreateKey(context.Background(), "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeRSAHSM)}, nil)
	if err != nil {
		t.Fatalf("RSA-HSM in the dev vault: %v", err)
	}
	// The private object is in the dev server's token, sensitive and not
	// extractable: read by pkcs11-tool (OpenSC) with the dev server's
	// softhsm2.conf, in its own process.
	if tool, err := exec.LookPath("pkcs11-tool"); err == nil {
		cmd := exec.Command(tool, "--module", h.Module, "--token-label", h.TokenLabel, "--login", "--pin", h.UserPIN,
			"--list-objects", "--type", "privkey", "--id", hexID(r.Key.KID.Version()))
		cmd.Env = append(slicesDeleteEnv(os.Environ(), "SOFTHSM2_CONF"), "SOFTHSM2_CONF="+h.SoftHSM2Conf)
		out, err := cmd.CombinedOutput()
		t.Logf("pkcs11-tool:\n%s", out)
		if err != nil || !strings.Contains(string(out), "Private Key Object") || !strings.Contains(string(out), "sensitive") ||
			strings.Contains(strings.ReplaceAll(string(out), "never extractable", ""), "extractable") {
			t.Fatalf("pkcs11-tool on the dev token: %v\n%s", err, out)
		}
	} else if os.Getenv("CI") == "true" {
		t.Fatal("pkcs11-tool (opensc) is missing")
	}

	// Without SoftHSM2.
	banner, info2 := startDevProcess(t, t.TempDir(), "--hsm-module", filepath.Join(t.TempDir(), "missing.so"))
	if info2.HSM != nil || !strings.Contains(banner, "no HSM") || !strings.Contains(banner, "softhsm2") {
		t.Fatalf("dev server without SoftHSM2: hsm %+v, banner:\n%s", info2.HSM, banner)
	}
}
