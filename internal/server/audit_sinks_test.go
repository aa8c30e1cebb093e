package server

import (
	"strings"
	"testing"
)

// A sink's identity names its type and where it writes, never a secret:
// no header (a collector's token), no user information, no query.
func TestSinkIdentityHoldsNoSecret(t *testing.T) {
	const token = "Splunk s3cr3t-t0ken"
	for _, tc := range []struct {
		c    AuditSinkConfig
		want string
	}{
		{AuditSinkConfig{Type: "http", URL: "https://user:pa55word@Collector.Example:8088/services/collector/raw?token=qs-s3cr3t#frag",
			Header: map[string]string{"Authorization": token}}, "http:https://collector.example:8088/services/collector/raw"},
		{AuditSinkConfig{Type: "http", URL: "https://collector.example/a", Header: map[string]string{"X-Token": token}}, "http:https://collector.example/a"},
		{AuditSinkConfig{Type: "syslog", Address: "Logs.Example:6514", CAFile: "/etc/ca.pem"}, "syslog:logs.example:6514"},
		{AuditSinkConfig{Type: "stdout"}, "stdout"},
	} {
		got := SinkIdentity(tc.c)
		if got != tc.want {
			t.Errorf("SinkIdentity(%+v) = %q, want %q", tc.c, got, tc.want)
		}
		for _, secret := range []string{"s3cr3t", "pa55word", "user", "token=", "frag", "ca.pem"} {
			if strings.Contains(got, secret) {
				t.Errorf("identity %q holds %q", got, secret)
			}
		}
	}
	// Two sinks that differ only by their header are one identity: a
	// token change is not a removal.
	a := SinkIdentity(AuditSinkConfig{Type: "http", URL: "https://c.example/x", Header: map[string]string{"Authorization": "a"}})
	b := SinkIdentity(AuditSinkConfig{Type: "http", URL: "https://c.example/x", Header: map[string]string{"Authorization": "b"}})
	if a != b {
		t.Errorf("a header changed the identity: %q %q", a, b)
	}
}
