package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// The client-compatibility tests (Python, az, JavaScript, Go, curl) each
// record what they ran in testdata/clients/{client}.json; docs/CLIENTS.md is
// rendered from those files (clients_doc_test.go). A test fails when what it
// saw differs from its committed file, so the document cannot drift from
// the tests: after a deliberate change, run the client tests with
// KEYWARD_UPDATE_CLIENTS=1 and commit the rewritten files.

// clientResult is one row of the matrix.
type clientResult struct {
	Client  string `json:"client"`
	Version string `json:"version"`
	Feature string `json:"feature"`
	OK      bool   `json:"ok"`
	Detail  string `json:"detail,omitempty"`
}

// clientRun is one client test's record.
type clientRun struct {
	Client      string            `json:"client"`
	Environment map[string]string `json:"environment,omitempty"`
	Results     []clientResult    `json:"results"`
}

const clientsDir = "testdata/clients"

func updateClients() bool { return os.Getenv("KEYWARD_UPDATE_CLIENTS") != "" }

// recordClients compares run with its committed file, or rewrites the file
// under KEYWARD_UPDATE_CLIENTS. Versions of system packages may differ from
// CI's (Debian bookworm) on a developer machine; they are logged, not
// compared. What worked and what did not is compared.
func recordClients(t *testing.T, file string, run clientRun) {
	t.Helper()
	path := filepath.Join(clientsDir, file+".json")
	if updateClients() {
		raw, err := json.MarshalIndent(run, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(clientsDir, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, append(raw, '\n'), 0o644); err != nil {
			t.Fatal(err)
		}
		return
	}
	var old clientRun
	raw, err := os.ReadFile(path)
	if err == nil {
		err = json.Unmarshal(raw, &old)
	}
	if err != nil {
		t.Fatalf("%s: %v (write it with KEYWARD_UPDATE_CLIENTS=1)", path, err)
	}
	key := func(rs []clientResult) []string {
		var out []string
		for _, r := range rs {
			out = append(out, r.Feature+" ok="+map[bool]string{true: "yes", false: "no"}[r.OK])
		}
		slices.Sort(out)
		return out
	}
	if got, want := key(run.Results), key(old.Results); !slices.Equal(got, want) {
		t.Fatalf("%s is stale (docs/CLIENTS.md is rendered from it): the test saw\n  %s\nthe file says\n  %s\nrerun with KEYWARD_UPDATE_CLIENTS=1 and commit the result",
			path, strings.Join(got, "\n  "), strings.Join(want, "\n  "))
	}
	for i := range run.Results {
		for _, o := range old.Results {
			if o.Feature == run.Results[i].Feature && o.Version != run.Results[i].Version {
				t.Logf("%s: %s: version %s here, %s in %s", file, o.Feature, run.Results[i].Version, o.Version, path)
			}
		}
	}
}

// systemDep finds a program or fails: locally a missing system package
// skips the test, in CI (CI=true) it fails.
func missingDep(t *testing.T, what, install string) {
	t.Helper()
	if os.Getenv("CI") != "" {
		t.Fatalf("%s is missing: CI must install it (%s)", what, install)
	}
	t.Skipf("%s is missing: install it with %s", what, install)
}

// loopbackPythonEnv is the environment that keeps a Python process (a
// client script or az) on loopback: test/python/site/sitecustomize.py
// refuses connections that would leave the machine and logs them to the
// returned file, and maps *.localhost to 127.0.0.1 when the machine's
// resolver does not. mapped reports whether the stand-in was needed.
func loopbackPythonEnv(t *testing.T, host string) (env []string, blockedLog string, mapped bool) {
	t.Helper()
	site, err := filepath.Abs("../../test/python/site")
	if err != nil {
		t.Fatal(err)
	}
	blockedLog = filepath.Join(t.TempDir(), "blocked.log")
	env = []string{"PYTHONPATH=" + site, "KEYWARD_LOOPBACK_ONLY=1", "KEYWARD_BLOCKED_LOG=" + blockedLog,
		"PYTHONDONTWRITEBYTECODE=1", "NO_PROXY=*", "no_proxy=*"}
	if !resolvesToLoopback(host) {
		env = append(env, "KEYWARD_MAP_LOCALHOST=1")
		mapped = true
	}
	return env, blockedLog, mapped
}

// resolvesToLoopback asks the machine's resolver (NSS, as Python and az
// use it) for host.
func resolvesToLoopback(host string) bool {
	out, err := exec.Command("getent", "ahostsv4", host).Output()
	return err == nil && bytes.HasPrefix(bytes.TrimSpace(out), []byte("127."))
}

// checkNothingLeft fails when a client tried to reach beyond loopback.
func checkNothingLeft(t *testing.T, blockedLog string) {
	t.Helper()
	if raw, err := os.ReadFile(blockedLog); err == nil && len(bytes.TrimSpace(raw)) > 0 {
		t.Errorf("a client tried to leave the machine (refused):\n%s", raw)
	}
}

// runLogged runs a command with a deadline (so a client that hangs fails
// the test) and returns its combined output.
func runLogged(t *testing.T, timeout time.Duration, env []string, name string, args ...string) (string, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, name, args...)
	cmd.Env = env
	cmd.WaitDelay = 5 * time.Second
	out, err := cmd.CombinedOutput()
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	return string(out), err
}
