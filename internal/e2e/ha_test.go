package e2e

import (
	"bufio"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
	"github.com/keyward/keyward/internal/storage/postgres/pgtest"
)

// fileClock is a fake clock shared by processes: the time is read from a
// file (Unix nanoseconds) on every call. Its timers and tickers are the
// real ones (the nodes' jobs tick in real time; Jobs().RunOnce and
// WaitRunSince still tell when a job ran). Test-only.
type fileClock struct {
	clock.Real
	path string
}

func (c fileClock) Now() time.Time {
	b, err := os.ReadFile(c.path)
	if err != nil {
		panic("fileClock: " + err.Error())
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		panic("fileClock: " + err.Error())
	}
	return time.Unix(0, n)
}

func (c fileClock) set(t *testing.T, at time.Time) {
	t.Helper()
	tmp := c.path + ".tmp"
	if err := os.WriteFile(tmp, []byte(strconv.FormatInt(at.UnixNano(), 10)), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, c.path); err != nil {
		t.Fatal(err)
	}
}

func (c fileClock) advance(t *testing.T, d time.Duration) { c.set(t, c.Now().Add(d)) }

// TestHelperHANode is not a test: it is a Keyward node in a child process
// for TestHAJobLeaderTakeover, which kills it with SIGKILL.
func TestHelperHANode(t *testing.T) {
	if os.Getenv("KEYWARD_HA_NODE") != "1" {
		return
	}
	s, err := server.Start(context.Background(), server.Config{
		Dev: true, Listen: "127.0.0.1:0", DataDir: os.Getenv("KEYWARD_HA_DATA"), DNSSuffix: "localhost",
		Storage:           server.StorageConfig{Backend: "postgres", DSN: os.Getenv("KEYWARD_HA_DSN")},
		Clock:             fileClock{path: os.Getenv("KEYWARD_HA_CLOCK")},
		SchedulerInterval: 50 * time.Millisecond,
		Log:               slog.New(slog.NewTextHandler(io.Discard, nil)),
	})
	if err != nil {
		fmt.Println("FAILED", err)
		os.Exit(1)
	}
	fmt.Println("READY", s.Addr())
	select {} // until killed
}

func startChildNode(t *testing.T, dataDir, dsn, clockFile string) *exec.Cmd {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHelperHANode$", "-test.v")
	cmd.Env = append(os.Environ(), "KEYWARD_HA_NODE=1", "KEYWARD_HA_DATA="+dataDir, "KEYWARD_HA_DSN="+dsn, "KEYWARD_HA_CLOCK="+clockFile)
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = os.Stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, "READY ") {
			go io.Copy(io.Discard, out)
			return cmd
		}
		if strings.HasPrefix(line, "FAILED") {
			t.Fatalf("child node: %s", line)
		}
	}
	t.Fatal("child node exited before it was ready")
	return nil
}

// copyDevFiles gives a second node the first one's dev unseal key and CA.
func copyDevFiles(t testing.TB, from, to string) {
	t.Helper()
	for _, f := range []string{"dev-unseal.key", "tls/ca.pem", "tls/ca-key.pem", "tls/server.pem", "tls/server-key.pem"} {
		b, err := os.ReadFile(filepath.Join(from, f))
		if err != nil {
			t.Fatal(err)
		}
		os.MkdirAll(filepath.Dir(filepath.Join(to, f)), 0o700)
		if err := os.WriteFile(filepath.Join(to, f), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
}

func TestHATwoNodesOneDatabase(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Start(t).NewDatabase(t)
	a := kwtest.Start(t, kwtest.Options{Backend: "postgres", DSN: dsn})
	bDir := t.TempDir()
	copyDevFiles(t, a.DataDir, bDir)
	b := kwtest.Start(t, kwtest.Options{Backend: "postgres", DSN: dsn, DataDir: bDir})
	if a.Info.TenantID != b.Info.TenantID || a.Info.ClientID != b.Info.ClientID {
		t.Fatal("the second node is not the same Keyward")
	}

	sa, _ := azsecrets.NewClient(a.Info.VaultURL, a.Credential(), &azsecrets.ClientOptions{ClientOptions: a.ClientOptions()})
	sb, _ := azsecrets.NewClient(b.Info.VaultURL, b.Credential(), &azsecrets.ClientOptions{ClientOptions: b.ClientOptions()})
	for i := range 5 {
		v := fmt.Sprint("value-", i)
		if _, err := sa.SetSecret(ctx, "shared", azsecrets.SetSecretParameters{Value: &v}, nil); err != nil {
			t.Fatal(err)
		}
		got, err := sb.GetSecret(ctx, "shared", "", nil) // immediately, on the other node
		if err != nil || *got.Value != v {
			t.Fatalf("write on A, read on B: %v", err)
		}
	}

	ka, _ := azkeys.NewClient(a.Info.VaultURL, a.Credential(), &azkeys.ClientOptions{ClientOptions: a.ClientOptions()})
	kb, _ := azkeys.NewClient(b.Info.VaultURL, b.Credential(), &azkeys.ClientOptions{ClientOptions: b.ClientOptions()})
	if _, err := ka.CreateKey(ctx, "k", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil); err != nil {
		t.Fatal(err)
	}
	digest := sha256.Sum256([]byte("x"))
	alg := azkeys.SignatureAlgorithmES256
	if _, err := kb.Sign(ctx, "k", "", azkeys.SignParameters{Algorithm: &alg, Value: digest[:]}, nil); err != nil {
		t.Fatalf("B signs with A's key: %v", err) // B now caches the parsed key
	}
	if _, err := ka.UpdateKey(ctx, "k", "", azkeys.UpdateKeyParameters{KeyAttributes: &azkeys.KeyAttributes{Enabled: to.Ptr(false)}}, nil); err != nil {
		t.Fatal(err)
	}
	_, err := kb.Sign(ctx, "k", "", azkeys.SignParameters{Algorithm: &alg, Value: digest[:]}, nil)
	wantErr(t, err, http.StatusForbidden, "Forbidden") // disabled on A, refused on B at once
}

func TestHAJobLeaderTakeover(t *testing.T) {
	ctx := context.Background()
	dsn := pgtest.Start(t).NewDatabase(t)
	clk := fileClock{path: filepath.Join(t.TempDir(), "clock")}
	clk.set(t, time.Now())

	aDir := t.TempDir()
	child := startChildNode(t, aDir, dsn, clk.path) // A: first, so it leads
	time.Sleep(300 * time.Millisecond)
	bDir := t.TempDir()
	copyDevFiles(t, aDir, bDir)
	b := kwtest.Start(t, kwtest.Options{Backend: "postgres", DSN: dsn, DataDir: bDir, Clock: clk, SchedulerInterval: 50 * time.Millisecond})
	kb := func() *azkeys.Client { // fresh client: tokens live on the fake clock
		c, _ := azkeys.NewClient(b.Info.VaultURL, b.Credential(), &azkeys.ClientOptions{ClientOptions: b.ClientOptions()})
		return c
	}
	versions := func() int {
		n := 0
		for pg := kb().NewListKeyPropertiesVersionsPager("ha", nil); pg.More(); {
			p, err := pg.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			n += len(p.Value)
		}
		return n
	}
	if _, err := kb().CreateKey(ctx, "ha", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC)}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := kb().UpdateKeyRotationPolicy(ctx, "ha", azkeys.KeyRotationPolicy{
		LifetimeActions: []*azkeys.LifetimeAction{{Trigger: &azkeys.LifetimeActionTrigger{TimeAfterCreate: to.Ptr("P30D")},
			Action: &azkeys.LifetimeActionType{Type: to.Ptr(azkeys.KeyRotationPolicyActionRotate)}}},
	}, nil); err != nil {
		t.Fatal(err)
	}
	clk.advance(t, 31*24*time.Hour)
	waitFor(t, "the first rotation", func() bool { return versions() == 2 })

	// The next rotation becomes due and the leader dies at that moment.
	clk.advance(t, 31*24*time.Hour)
	if err := child.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	child.Wait()
	waitFor(t, "the surviving node to rotate", func() bool { return versions() >= 3 })
	runAgain(t, b)
	runAgain(t, b)
	if n := versions(); n != 3 {
		t.Fatalf("%d versions: the rotation due during the takeover ran more than once", n)
	}
	// And the survivor keeps doing the job.
	clk.advance(t, 31*24*time.Hour)
	waitFor(t, "the next rotation on the survivor", func() bool { return versions() == 4 })
}

// TestHADatabaseOutage stops PostgreSQL under load: clients get 503 with
// Retry-After, the SDK retries, nothing acknowledged is lost, and service
// resumes when the database is back.
func TestHADatabaseOutage(t *testing.T) {
	ctx := context.Background()
	pg := pgtest.Start(t)
	dsn := pg.NewDatabase(t)
	e := kwtest.Start(t, kwtest.Options{Backend: "postgres", DSN: dsn})
	opts := e.ClientOptions()
	opts.Retry = policy.RetryOptions{MaxRetries: 30, RetryDelay: 200 * time.Millisecond, MaxRetryDelay: time.Second}
	c, _ := azsecrets.NewClient(e.Info.VaultURL, e.Credential(), &azsecrets.ClientOptions{ClientOptions: opts})
	if _, err := c.SetSecret(ctx, "warm", azsecrets.SetSecretParameters{Value: to.Ptr("x")}, nil); err != nil {
		t.Fatal(err)
	}
	tok, err := e.Credential().GetToken(ctx, tokenOpts(e))
	if err != nil {
		t.Fatal(err)
	}

	var mu sync.Mutex
	acked := map[string]string{}
	var failed []error
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for w := range 4 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := 0; ; i++ {
				select {
				case <-stop:
					return
				default:
				}
				name, val := fmt.Sprintf("load-%d-%d", w, i), fmt.Sprintf("v%d-%d", w, i)
				_, err := c.SetSecret(ctx, name, azsecrets.SetSecretParameters{Value: &val}, nil)
				mu.Lock()
				if err == nil {
					acked[name] = val
				} else {
					failed = append(failed, err)
				}
				mu.Unlock()
			}
		}()
	}
	time.Sleep(500 * time.Millisecond)
	pg.Stop(t)
	// While the database is down: 503, Retry-After, Azure's error body.
	req, _ := http.NewRequest(http.MethodGet, e.Info.VaultURL+"secrets/warm?api-version=7.6", nil)
	req.Header.Set("Authorization", "Bearer "+tok.Token)
	resp, err := e.HTTP.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") == "" || !strings.Contains(string(body), `"code":"ServiceUnavailable"`) {
		t.Fatalf("during the outage: %d Retry-After=%q %s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	if r, _ := e.HTTP.Get(strings.Replace(e.Info.AuthorityHost, "localhost", "localhost", 1) + "readyz"); r != nil {
		if r.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("readyz during the outage: %d", r.StatusCode)
		}
		r.Body.Close()
	}
	time.Sleep(2 * time.Second)
	pg.Start(t)
	time.Sleep(1500 * time.Millisecond)
	close(stop)
	wg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(acked) < 20 {
		t.Fatalf("only %d writes were acknowledged", len(acked))
	}
	for _, err := range failed {
		var re *azcore.ResponseError
		if !errors.As(err, &re) || re.StatusCode != http.StatusServiceUnavailable {
			t.Fatalf("a write failed with something other than 503: %v", err)
		}
	}
	for name, val := range acked {
		got, err := c.GetSecret(ctx, name, "", nil)
		if err != nil || *got.Value != val {
			t.Fatalf("acknowledged write %s lost: %v", name, err)
		}
	}
	t.Logf("%d writes acknowledged, %d failed with 503 after retries", len(acked), len(failed))
}
