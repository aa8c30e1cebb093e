package e2e

import (
	"bytes"
	"context"
	"net/http"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore/to"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azkeys"
	"github.com/Azure/azure-sdk-for-go/sdk/security/keyvault/azsecrets"

	"github.com/keyward/keyward/internal/kwtest"
	"github.com/keyward/keyward/internal/server"
)

// TestMetricsShowTheRun (issue #17): /metrics, scraped after an SDK run,
// shows the run's requests by surface, operation and status, its latency,
// its crypto operations, the seal state, the audit sinks, storage latency
// and job lag.
func TestMetricsShowTheRun(t *testing.T) {
	e := kwtest.Start(t, kwtest.Options{})
	ctx := context.Background()
	sc := clientFor(t, e, e.Info.VaultURL, e.Credential())
	kc := keysClient(t, e)
	if _, err := sc.SetSecret(ctx, "metered", azsecrets.SetSecretParameters{Value: to.Ptr("v")}, nil); err != nil {
		t.Fatal(err)
	}
	for range 3 {
		if _, err := sc.GetSecret(ctx, "metered", "", nil); err != nil {
			t.Fatal(err)
		}
	}
	for range 2 {
		if _, err := sc.GetSecret(ctx, "no-such", "", nil); err == nil {
			t.Fatal("missing secret found")
		}
	}
	if _, err := kc.CreateKey(ctx, "metered", azkeys.CreateKeyParameters{Kty: to.Ptr(azkeys.KeyTypeEC), Curve: to.Ptr(azkeys.CurveNameP256)}, nil); err != nil {
		t.Fatal(err)
	}
	for range 4 {
		if _, err := kc.Sign(ctx, "metered", "", azkeys.SignParameters{Algorithm: to.Ptr(azkeys.SignatureAlgorithmES256), Value: bytes.Repeat([]byte{1}, 32)}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if err := e.Server.Jobs().RunOnce(ctx, server.JobRefresh); err != nil {
		t.Fatal(err)
	}
	r, err := e.HTTP.Get(strings.TrimSuffix(e.Info.AuthorityHost, "/") + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer r.Body.Close()
	var buf bytes.Buffer
	buf.ReadFrom(r.Body)
	body := buf.String()
	if r.StatusCode != http.StatusOK {
		t.Fatalf("/metrics: %d", r.StatusCode)
	}
	value := func(series string) float64 {
		t.Helper()
		m := regexp.MustCompile(`(?m)^` + regexp.QuoteMeta(series) + ` ([0-9.e+-]+)$`).FindStringSubmatch(body)
		if m == nil {
			t.Fatalf("no series %s in /metrics", series)
		}
		v, _ := strconv.ParseFloat(m[1], 64)
		return v
	}
	for series, want := range map[string]float64{
		`keyward_requests_total{operation="SecretGet",status="200",surface="vault"}`:                                    3,
		`keyward_requests_total{operation="SecretGet",status="404",surface="vault"}`:                                    2,
		`keyward_requests_total{operation="SecretSet",status="200",surface="vault"}`:                                    1,
		`keyward_requests_total{operation="KeySign",status="200",surface="vault"}`:                                      4,
		`keyward_crypto_operations_total{algorithm="ES256",operation="KeySign",protection="software",result="allowed"}`: 4,
		`keyward_request_duration_seconds_count{operation="SecretGet",surface="vault"}`:                                 5,
		`keyward_sealed`: 0,
		`keyward_audit_sink_healthy{required="true",sink="file"}`: 1,
	} {
		if got := value(series); got != want {
			t.Errorf("%s = %v, want %v", series, got, want)
		}
	}
	if v := value(`keyward_storage_duration_seconds_count{kind="update",outcome="ok"}`); v < 2 {
		t.Errorf("storage updates timed: %v", v)
	}
	if v := value(`keyward_audit_sink_events_total{outcome="accepted",sink="file"}`); v < 11 {
		t.Errorf("audit events accepted: %v", v)
	}
	if !strings.Contains(body, `keyward_job_seconds_since_last_run{job="refresh"}`) {
		t.Error("no job lag for the refresh job")
	}
	if strings.Contains(body, "metered") {
		t.Error("an object name is a label value")
	}
}
