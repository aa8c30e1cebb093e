package server

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/keyward/keyward/internal/alerts"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/mail"
	"github.com/keyward/keyward/internal/metrics"
	"github.com/keyward/keyward/internal/vault"
)

// AlertsConfig configures alert rules and where alerts go (docs/CONFIG.md,
// [alerts]). The built-in rules (alerts.Builtin) are on unless named in
// DisableBuiltin; Rules are added to them.
type AlertsConfig struct {
	DisableBuiltin []string
	Rules          []alerts.Rule
	Webhooks       []AlertWebhook
	EventGrid      []AlertEventGrid
	Email          []AlertEmail
	// ExpiryThresholds: the near-expiry rule announces a key, secret or
	// certificate once when it expires within each of these (nil: 30 days,
	// 7 days and 1 day), checked by JobExpiryAlerts.
	ExpiryThresholds []time.Duration
	// SinkCheckEvery is how often the audit sinks are checked for the
	// audit-sink-failing rule (JobAuditAlerts); zero: 30 seconds.
	SinkCheckEvery time.Duration
}

// AlertWebhook posts alerts as JSON signed with Secret (HMAC-SHA256).
type AlertWebhook struct{ Name, URL, Secret string }

// AlertEventGrid posts alerts as Event Grid events.
type AlertEventGrid struct{ Name, URL, Topic, Key string }

// AlertEmail mails alerts through the [smtp] server.
type AlertEmail struct {
	Name string
	To   []string
}

// JobAuditAlerts raises audit-sink-failing while a sink refuses events.
const JobAuditAlerts = "audit-alerts"

// JobExpiryAlerts raises near-expiry for objects that expire within a
// threshold (leader only, every SchedulerInterval).
const JobExpiryAlerts = "expiry-alerts"

// DefaultExpiryThresholds are the near-expiry rule's thresholds.
var DefaultExpiryThresholds = []time.Duration{30 * 24 * time.Hour, 7 * 24 * time.Hour, 24 * time.Hour}

// startAlerts builds the alert engine and has it observe the audit log.
func (s *Server) startAlerts() error {
	c := s.cfg.Alerts
	client := &http.Client{Timeout: 15 * time.Second,
		Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: s.cfg.EventRoots, MinVersion: tls.VersionTLS12}}}
	var dests []alerts.Destination
	for i, w := range c.Webhooks {
		dests = append(dests, alerts.Destination{Name: nameOr(w.Name, "webhook", i),
			Deliverer: &alerts.Webhook{URL: w.URL, Secret: []byte(w.Secret), Client: client, Clock: s.clock}})
	}
	for i, g := range c.EventGrid {
		dests = append(dests, alerts.Destination{Name: nameOr(g.Name, "eventgrid", i),
			Deliverer: &alerts.EventGrid{URL: g.URL, Topic: g.Topic, Key: g.Key, Client: client}})
	}
	if len(c.Email) > 0 {
		m := s.cfg.SMTP
		if m == nil {
			return fmt.Errorf("alerts: email destinations need [smtp]")
		}
		sender, err := mail.New(mail.Config{Addr: m.Addr, From: m.From, Username: m.Username, Password: m.Password, TLS: m.TLS, Roots: m.Roots})
		if err != nil {
			return err
		}
		for i, e := range c.Email {
			dests = append(dests, alerts.Destination{Name: nameOr(e.Name, "email", i),
				Deliverer: &alerts.Email{To: e.To, Mailer: sender, Clock: s.clock}})
		}
	}
	rules := append(alerts.Filtered(alerts.Builtin(), c.DisableBuiltin), c.Rules...)
	s.alerts = alerts.New(s.clock, s.log, rules, dests)
	s.audit.Observe(s.alerts.Observe)
	return nil
}

func nameOr(name, kind string, i int) string {
	if name != "" {
		return name
	}
	return fmt.Sprintf("%s-%d", kind, i+1)
}

// auditAlerts is JobAuditAlerts: a sink that refused its last event raises
// audit-sink-failing (once per cooldown).
func (s *Server) auditAlerts(context.Context) error {
	for _, st := range s.audit.Sinks() {
		if !st.Healthy {
			s.alerts.Raise("audit-sink-failing", st.Name, alerts.Alert{Object: st.Name})
		}
	}
	return nil
}

// expiryAlerts is JobExpiryAlerts.
func (s *Server) expiryAlerts(ctx context.Context) error {
	if !s.alerts.Has(alerts.NearExpiry) {
		return nil
	}
	th := s.cfg.Alerts.ExpiryThresholds
	if th == nil {
		th = DefaultExpiryThresholds
	}
	_, err := s.vaults.ExpiryAlertsDue(ctx, th, func(o vault.ExpiringObject) {
		exp := o.Expires
		s.alerts.Raise(alerts.NearExpiry, o.ID+" "+formatThreshold(o.Threshold), alerts.Alert{
			Operation: o.Operation, Vault: o.Vault, Object: o.ID, Expires: &exp})
	})
	if err != nil && !errors.Is(err, barrier.ErrSealed) {
		s.log.Error("near-expiry alerts failed", "error", err)
	}
	return nil
}

// formatThreshold writes whole days as "7d", else as a Go duration.
func formatThreshold(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return d.String()
}

// Alerts is the alert engine (recent alerts, for tests and the console).
func (s *Server) Alerts() *alerts.Engine { return s.alerts }

// startMetrics makes the Prometheus metrics (/metrics), fed by the
// recorded audit events and read from the server's state at scrape time.
func (s *Server) startMetrics() {
	s.metrics = metrics.New(metrics.Sources{
		Sealed:     func() bool { return s.barrier == nil || s.barrier.Sealed() },
		AuditSinks: s.audit.Sinks,
		JobLastRun: func() (map[string]time.Time, time.Time) {
			j := s.jobsRef.Load()
			if j == nil {
				return nil, s.clock.Now()
			}
			return j.LastStarts(), s.clock.Now()
		},
	})
	s.audit.Observe(s.metrics.Observe)
}
