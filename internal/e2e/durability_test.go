package e2e

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
)

const helperDataEnv = "KEYWARD_TEST_HELPER_DATA_DIR"

// TestHelperKeywardProcess is not a test: it is the child process of
// TestKillDashNine, a dev server on the data directory named by
// KEYWARD_TEST_HELPER_DATA_DIR that prints its address and runs until it
// is killed. Without that variable it returns at once.
func TestHelperKeywardProcess(t *testing.T) {
	dir := os.Getenv(helperDataEnv)
	if dir == "" {
		return
	}
	s, err := server.Start(context.Background(), server.Config{
		Dev: true, Listen: "127.0.0.1:0", DataDir: dir, DNSSuffix: "localhost",
		Log: slog.New(slog.DiscardHandler),
	})
	if err != nil {
		fmt.Println("KEYWARD_ERROR", err)
		os.Exit(3)
	}
	fmt.Println("KEYWARD_LISTEN", s.Addr())
	select {} // until SIGKILL
}

type ack struct{ name, version, value string }

func randomValue() string {
	b := make([]byte, 24)
	rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// TestKillDashNine: every write the server acknowledged survives SIGKILL of
// the server process in the middle of a write load (DESIGN.md invariant 2).
func TestKillDashNine(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperKeywardProcess$", "-test.count=1")
	cmd.Env = append(os.Environ(), helperDataEnv+"="+dir)
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	killed := false
	t.Cleanup(func() {
		if !killed {
			cmd.Process.Kill()
			cmd.Wait()
		}
	})
	lineCh := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		line := "KEYWARD_ERROR the child exited without printing its address"
		for sc.Scan() {
			if strings.HasPrefix(sc.Text(), "KEYWARD_LISTEN ") || strings.HasPrefix(sc.Text(), "KEYWARD_ERROR ") {
				line = sc.Text()
				break
			}
		}
		lineCh <- line
		io.Copy(io.Discard, out)
	}()
	var addr string
	select {
	case line := <-lineCh:
		var ok bool
		if addr, ok = strings.CutPrefix(line, "KEYWARD_LISTEN "); !ok {
			t.Fatal(line)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("the child server did not start within 30s")
	}
	raw, err := os.ReadFile(filepath.Join(dir, "dev.json"))
	if err != nil {
		t.Fatal(err)
	}
	info := new(server.DevInfo)
	if err := json.Unmarshal(raw, info); err != nil {
		t.Fatal(err)
	}
	if info.Listen != addr {
		t.Fatalf("dev.json listen %s, child printed %s", info.Listen, addr)
	}
	child := &kwtest.Env{T: t, Info: info, DataDir: dir, HTTP: kwtest.HTTPClient(t, info.CAFile, addr)}
	c := clientFor(t, child, info.VaultURL, child.Credential())
	ctx := context.Background()
	// Warm up: the challenge round and the token, so the load is writes.
	if _, err := c.SetSecret(ctx, "warm-up", azsecrets.SetSecretParameters{Value: to.Ptr("w")}, nil); err != nil {
		t.Fatal(err)
	}

	var (
		mu    sync.Mutex
		acked []ack
		fails atomic.Int64
		stop  atomic.Bool
		wg    sync.WaitGroup
	)
	for g := range 8 {
		wg.Go(func() {
			for i := 0; !stop.Load(); i++ {
				// A few names get several versions: every version must survive.
				name := fmt.Sprintf("load-%d-%d", g, i/3)
				val := randomValue()
				s, err := c.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: to.Ptr(val)}, nil)
				if err != nil {
					fails.Add(1)
					if fails.Load() > 10_000 {
						return
					}
					continue
				}
				mu.Lock()
				acked = append(acked, ack{name, s.ID.Version(), val})
				mu.Unlock()
			}
		})
	}
	time.Sleep(2 * time.Second) // the load runs; the kill lands in the middle of it
	mu.Lock()
	beforeKill := len(acked)
	mu.Unlock()
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed = true
	cmd.Wait()
	stop.Store(true)
	wg.Wait()
	if beforeKill < 50 {
		t.Fatalf("only %d writes acknowledged in 2s: not a load", beforeKill)
	}
	if fails.Load() == 0 {
		t.Fatal("no write failed: the kill did not land during the load")
	}
	t.Logf("%d writes acknowledged, %d failed at the kill", len(acked), fails.Load())

	// Restart on the same directory, in this process, and read every version.
	e := kwtest.Start(t, kwtest.Options{DataDir: dir})
	if e.Info.TenantID != info.TenantID || e.Info.ClientID != info.ClientID {
		t.Fatal("the restarted server is another dev server")
	}
	rc := secretsClient(t, e)
	var next atomic.Int64
	var lost atomic.Int64
	var rwg sync.WaitGroup
	for range 8 {
		rwg.Go(func() {
			for {
				i := int(next.Add(1)) - 1
				if i >= len(acked) {
					return
				}
				a := acked[i]
				got, err := rc.GetSecret(ctx, a.name, a.version, nil)
				switch {
				case err != nil:
					lost.Add(1)
					t.Errorf("acknowledged %s/%s lost: %v", a.name, a.version, err)
				case *got.Value != a.value:
					lost.Add(1)
					t.Errorf("acknowledged %s/%s has value %q, want %q", a.name, a.version, *got.Value, a.value)
				}
				if lost.Load() > 10 {
					return
				}
			}
		})
	}
	rwg.Wait()
}

// TestNothingInPlaintextAtRest: neither a secret value, nor the client
// secret, nor the unseal key appears in the database file, in any common
// encoding (DESIGN.md invariant 1).
func TestNothingInPlaintextAtRest(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	c := secretsClient(t, e)
	ctx := context.Background()
	value := "at-rest-" + randomValue()
	if _, err := c.SetSecret(ctx, "at-rest", azsecrets.SetSecretParameters{Value: to.Ptr(value)}, nil); err != nil {
		t.Fatal(err)
	}
	// A second version and a backup exercise more write paths.
	value2 := "at-rest-2-" + randomValue()
	if _, err := c.SetSecret(ctx, "at-rest", azsecrets.SetSecretParameters{Value: to.Ptr(value2)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.DeleteSecret(ctx, "at-rest", nil); err != nil {
		t.Fatal(err)
	}
	if _, err := c.RecoverDeletedSecret(ctx, "at-rest", nil); err != nil {
		t.Fatal(err)
	}
	clientSecret := e.Info.ClientSecret
	if err := e.Server.Close(); err != nil {
		t.Fatal(err)
	}

	db, err := os.ReadFile(filepath.Join(e.DataDir, "keyward.db"))
	if err != nil {
		t.Fatal(err)
	}
	keyFile, err := os.ReadFile(filepath.Join(e.DataDir, "dev-unseal.key"))
	if err != nil {
		t.Fatal(err)
	}
	unsealKey, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(keyFile)))
	if err != nil || len(unsealKey) < 16 {
		t.Fatalf("dev-unseal.key: %v (%d bytes)", err, len(unsealKey))
	}
	// The test would pass vacuously on an empty or foreign file: the names,
	// which are metadata, are stored in the clear.
	if !bytes.Contains(db, []byte("sys/barrier/root")) || len(db) < 4096 {
		t.Fatalf("keyward.db (%d bytes) does not look like Keyward's database", len(db))
	}

	check := func(what string, secret []byte) {
		t.Helper()
		forms := map[string][]byte{
			"raw":             secret,
			"base64":          []byte(base64.StdEncoding.EncodeToString(secret)),
			"base64 unpadded": []byte(base64.RawStdEncoding.EncodeToString(secret)),
			"base64url":       []byte(base64.RawURLEncoding.EncodeToString(secret)),
			"hex":             []byte(hex.EncodeToString(secret)),
		}
		for form, b := range forms {
			if bytes.Contains(db, b) {
				t.Errorf("keyward.db holds the %s (%s form)", what, form)
			}
		}
	}
	check("secret value", []byte(value))
	check("second secret value", []byte(value2))
	check("dev client secret", []byte(clientSecret))
	check("unseal key", unsealKey)
	check("unseal key file", bytes.TrimSpace(keyFile))
	// The audit log holds no value either.
	audit, err := os.ReadFile(filepath.Join(e.DataDir, "audit.log"))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range []string{value, value2, clientSecret} {
		if strings.Contains(string(audit), s) {
			t.Error("audit.log holds a secret")
		}
	}
}
