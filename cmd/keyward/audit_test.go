package main

import (
	"bytes"
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/audit"
)

// TestAuditVerifyCommand: exit 0 on an intact, checkpointed log, 3 when
// events follow the last checkpoint, 1 naming the line after tampering.
func TestAuditVerifyCommand(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "audit.log")
	s, err := audit.OpenFileWith(path, audit.FileOptions{Node: "n"})
	if err != nil {
		t.Fatal(err)
	}
	pub, key, _ := ed25519.GenerateKey(rand.Reader)
	s.SetSigner(key)
	l := audit.NewLog(nil, s)
	for i := range 10 {
		if err := l.Record(context.Background(), &audit.Event{Time: time.Unix(int64(i), 0).UTC(), RequestID: fmt.Sprint(i), Status: 200}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.Checkpoint(); err != nil {
		t.Fatal(err)
	}
	verify := func(extra ...string) (string, int) {
		var out, errOut bytes.Buffer
		args := append([]string{"audit", "verify", path, path + audit.CheckpointSuffix}, extra...)
		err := run(context.Background(), args, func(string) string { return "" }, strings.NewReader(""), &out, &errOut)
		var ee *exitError
		switch {
		case err == nil:
			return out.String(), 0
		case errors.As(err, &ee):
			return err.Error(), ee.ExitCode()
		}
		t.Fatal(err)
		return "", -1
	}
	if out, code := verify("--key", audit.KeyFingerprint(pub)); code != 0 || !strings.Contains(out, "OK") {
		t.Fatalf("intact: %d %s", code, out)
	}
	if err := l.Record(context.Background(), &audit.Event{RequestID: "late", Status: 200}); err != nil {
		t.Fatal(err)
	}
	l.Close()
	if out, code := verify(); code != verifyUnverifiable || !strings.Contains(out, "1 events after the last checkpoint are unverifiable") {
		t.Fatalf("unverifiable tail: %d %s", code, out)
	}
	raw, _ := os.ReadFile(path)
	os.WriteFile(path, bytes.Replace(raw, []byte(`"request_id":"4"`), []byte(`"request_id":"X"`), 1), 0o600)
	if out, code := verify(); code != verifyTampered || !strings.Contains(out, "audit.log:5: modified") {
		t.Fatalf("tampered: %d %s", code, out)
	}
}
