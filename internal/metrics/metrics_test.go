package metrics

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/audit"
)

// TestDashboardNamesExist: every keyward_* series the Grafana dashboard
// queries is one this package exports.
func TestDashboardNamesExist(t *testing.T) {
	m := New(Sources{Sealed: func() bool { return false },
		AuditSinks: func() []audit.SinkState { return []audit.SinkState{{Name: "file", Required: true, Healthy: true}} },
		JobLastRun: func() (map[string]time.Time, time.Time) {
			return map[string]time.Time{"due": time.Unix(1, 0)}, time.Unix(61, 0)
		}})
	m.Observe(&audit.Event{Service: "vault", OperationName: "KeySign", Status: 200, Result: audit.Allowed, LatencyMS: 1})
	m.Observe(&audit.Event{Service: "vault", OperationName: "SecretGet", Status: 429, LatencyMS: 1})
	m.storage.WithLabelValues("view", "ok").Observe(0.001)
	fams, err := m.reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	have := map[string]bool{}
	for _, f := range fams {
		have[f.GetName()] = true
	}
	raw, err := os.ReadFile("../../deploy/grafana/keyward-dashboard.json")
	if err != nil {
		t.Fatal(err)
	}
	names := regexp.MustCompile(`keyward_[a-z_]+`).FindAllString(string(raw), -1)
	if len(names) < 8 {
		t.Fatalf("the dashboard queries only %d series", len(names))
	}
	for _, n := range names {
		base := n
		for _, suf := range []string{"_bucket", "_count", "_sum"} {
			base = strings.TrimSuffix(base, suf)
		}
		if !have[base] {
			t.Errorf("the dashboard queries %s, which is not exported", n)
		}
	}
}
