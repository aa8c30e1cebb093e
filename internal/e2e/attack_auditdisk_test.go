package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/kwtest"
)

// TestAttackAuditDiskFull fills the audit log's real filesystem (a 64 KiB
// tmpfs) under a real server, with the real file sink: every answered
// secret read is in the log, every read the log could not take is refused
// with 503 and no value, and once space is back the log holds only whole
// lines (issue 12.1 with 12.2). TestAuditFailsClosed covers the pipeline
// with an injected sink; this needs root to mount and is skipped without.
func TestAttackAuditDiskFull(t *testing.T) {
	auditDir := t.TempDir()
	if out, err := exec.Command("mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", auditDir).CombinedOutput(); err != nil {
		t.Skipf("cannot mount a tmpfs (%v: %s); TestAuditFailsClosed and TestFileSinkShortWrite cover this", err, bytes.TrimSpace(out))
	}
	t.Cleanup(func() { exec.Command("umount", auditDir).Run() })
	path := filepath.Join(auditDir, "audit.log")
	e := kwtest.Start(t, kwtest.Options{AuditPath: path})
	tok := tokenFor(t, e.Credential(), tokenOpts(e).Scopes[0])
	const value = "audited-value-on-a-full-disk"
	if r := do(t, e, "PUT", e.Info.VaultURL+"secrets/full?api-version=7.4", tok, "application/json", `{"value":"`+value+`"}`); r.Status != http.StatusOK {
		t.Fatalf("set: %d %s", r.Status, r.Body)
	}
	// Leave a few pages for the log.
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	filler := filepath.Join(auditDir, "filler")
	if err := os.WriteFile(filler, make([]byte, 48<<10-int(st.Size())), 0o600); err != nil {
		t.Fatal(err)
	}

	answered := map[string]bool{} // request IDs of 200s
	refused := 0
	for i := 0; i < 400 && refused < 5; i++ {
		r := do(t, e, "GET", e.Info.VaultURL+"secrets/full?api-version=7.4", tok, "", "")
		switch r.Status {
		case http.StatusOK:
			answered[r.Header.Get("X-Ms-Request-Id")] = true
		case http.StatusServiceUnavailable:
			refused++
			if strings.Contains(r.Body, value) || r.Header.Get("Retry-After") == "" {
				t.Fatalf("refusal: Retry-After %q, body %s", r.Header.Get("Retry-After"), r.Body)
			}
		default:
			t.Fatalf("read %d: %d %s", i, r.Status, r.Body)
		}
	}
	if refused == 0 {
		t.Fatal("the audit disk never filled")
	}
	if err := os.Remove(filler); err != nil {
		t.Fatal(err)
	}
	r := do(t, e, "GET", e.Info.VaultURL+"secrets/full?api-version=7.4", tok, "", "")
	if r.Status != http.StatusOK {
		t.Fatalf("after freeing space: %d %s", r.Status, r.Body)
	}
	answered[r.Header.Get("X-Ms-Request-Id")] = true

	f, err := os.Open(path)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		var ev audit.Event
		if err := json.Unmarshal(sc.Bytes(), &ev); err != nil {
			t.Fatalf("torn audit line %q: %v", sc.Text(), err)
		}
		delete(answered, ev.RequestID)
	}
	if len(answered) != 0 {
		t.Fatalf("%d answered reads have no audit line", len(answered))
	}
	t.Logf("%d reads refused while the audit disk was full", refused)
}
