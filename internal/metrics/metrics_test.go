package metrics

import (
	"os"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/prometheus/client_golang/prometheus/testutil"
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

// TestCryptoLabels: a key operation that ran is counted under its
// algorithm and protection; one that did not (denied, no algorithm known)
// under "none", so callers cannot add label values.
func TestCryptoLabels(t *testing.T) {
	m := New(Sources{})
	m.Observe(&audit.Event{Service: "vault", OperationName: "KeySign", Status: 200, Result: audit.Allowed, Algorithm: "RS256", Protection: "hsm"})
	m.Observe(&audit.Event{Service: "vault", OperationName: "KeySign", Status: 200, Result: audit.Allowed, Algorithm: "RS256", Protection: "hsm"})
	m.Observe(&audit.Event{Service: "vault", OperationName: "KeyDecrypt", Status: 403, Result: audit.Denied})
	m.Observe(&audit.Event{Service: "vault", OperationName: "SecretGet", Status: 200, Result: audit.Allowed, Algorithm: "x", Protection: "y"})
	for labels, want := range map[[4]string]float64{
		{"KeySign", "RS256", "hsm", string(audit.Allowed)}:   2,
		{"KeyDecrypt", "none", "none", string(audit.Denied)}: 1,
	} {
		c, err := m.crypto.GetMetricWithLabelValues(labels[:]...)
		if err != nil {
			t.Fatal(err)
		}
		if got := testutil.ToFloat64(c); got != want {
			t.Errorf("%v = %v, want %v", labels, got, want)
		}
	}
	if n := testutil.CollectAndCount(m.crypto); n != 2 {
		t.Errorf("%d crypto series, want 2 (a secret read is not a key operation)", n)
	}
}

// BenchmarkObserveKeySign: the metrics of one signing request's event.
func BenchmarkObserveKeySign(b *testing.B) {
	m := New(Sources{})
	ev := &audit.Event{Service: "vault", OperationName: "KeySign", Status: 200, Result: audit.Allowed, Algorithm: "ES256", Protection: "software", LatencyMS: 0.1}
	b.ReportAllocs()
	for b.Loop() {
		m.Observe(ev)
	}
}
