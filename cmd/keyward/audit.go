package main

import (
	"cmp"
	"crypto/ed25519"
	"encoding/base64"
	"encoding/csv"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/alerts"
	"github.com/keyward/keyward/internal/audit"
	kwcli "github.com/keyward/keyward/internal/cli"
	"github.com/keyward/keyward/internal/server"
)

// auditFileConfig is the [audit] section of the config file
// (docs/CONFIG.md).
type auditFileConfig struct {
	Node               string `toml:"node"`
	RotateBytes        int64  `toml:"rotate_bytes"`
	RotateAge          string `toml:"rotate_age"`
	Fsync              string `toml:"fsync"`
	CheckpointEvery    int64  `toml:"checkpoint_every"`
	CheckpointInterval string `toml:"checkpoint_interval"`
	// FileRequired: the file sink is required (default true).
	FileRequired *bool `toml:"file_required"`
	// Sink is [[audit.sink]]: further sinks.
	Sink []struct {
		Type        string            `toml:"type"`
		Required    bool              `toml:"required"`
		Address     string            `toml:"address"`
		URL         string            `toml:"url"`
		CAFile      string            `toml:"ca_file"`
		Header      map[string]string `toml:"header"`
		BufferBytes int64             `toml:"buffer_bytes"`
	} `toml:"sink"`
}

// alertsFileConfig is the [alerts] section (docs/CONFIG.md).
type alertsFileConfig struct {
	DisableBuiltin []string `toml:"disable_builtin"`
	// ExpiryThresholds: the near-expiry rule's thresholds ("30d", "168h").
	ExpiryThresholds []string `toml:"expiry_thresholds"`
	Webhook          []struct {
		Name   string `toml:"name"`
		URL    string `toml:"url"`
		Secret string `toml:"secret"`
	} `toml:"webhook"`
	EventGrid []struct {
		Name  string `toml:"name"`
		URL   string `toml:"url"`
		Topic string `toml:"topic"`
		Key   string `toml:"key"`
	} `toml:"eventgrid"`
	Email []struct {
		Name string   `toml:"name"`
		To   []string `toml:"to"`
	} `toml:"email"`
	Rule []struct {
		alerts.Rule
		Window   string `toml:"window"`
		Cooldown string `toml:"cooldown"`
	} `toml:"rule"`
}

// alertsConfig is the [alerts] section.
func alertsConfig(fc *fileConfig) (server.AlertsConfig, error) {
	a := &fc.Alerts
	c := server.AlertsConfig{DisableBuiltin: a.DisableBuiltin}
	for _, v := range a.ExpiryThresholds {
		d, err := parseDays(v)
		if err != nil || d <= 0 {
			return c, fmt.Errorf("alerts expiry_thresholds: %q is not a positive duration (30d, 168h)", v)
		}
		c.ExpiryThresholds = append(c.ExpiryThresholds, d)
	}
	for _, w := range a.Webhook {
		c.Webhooks = append(c.Webhooks, server.AlertWebhook{Name: w.Name, URL: w.URL, Secret: w.Secret})
	}
	for _, g := range a.EventGrid {
		c.EventGrid = append(c.EventGrid, server.AlertEventGrid{Name: g.Name, URL: g.URL, Topic: g.Topic, Key: g.Key})
	}
	for _, m := range a.Email {
		c.Email = append(c.Email, server.AlertEmail{Name: m.Name, To: m.To})
	}
	for _, r := range a.Rule {
		rule := r.Rule
		if rule.Name == "" {
			return c, fmt.Errorf("[[alerts.rule]] without a name")
		}
		for _, d := range []struct {
			v   string
			dst *time.Duration
		}{{r.Window, &rule.Window}, {r.Cooldown, &rule.Cooldown}} {
			if d.v == "" {
				continue
			}
			v, err := time.ParseDuration(d.v)
			if err != nil || v < 0 {
				return c, fmt.Errorf("alert rule %s: %q is not a duration", rule.Name, d.v)
			}
			*d.dst = v
		}
		c.Rules = append(c.Rules, rule)
	}
	return c, nil
}

// parseDays is time.ParseDuration that also takes whole days ("30d").
func parseDays(v string) (time.Duration, error) {
	if n, ok := strings.CutSuffix(v, "d"); ok {
		days, err := strconv.Atoi(n)
		if err != nil || days < 0 || days > 100*365 {
			return 0, fmt.Errorf("bad day count %q", v)
		}
		return time.Duration(days) * 24 * time.Hour, nil
	}
	return time.ParseDuration(v)
}

// auditConfig is the [audit] section, then KEYWARD_AUDIT_* variables.
func auditConfig(fc *fileConfig, getenv func(string) string) (server.AuditConfig, error) {
	a := &fc.Audit
	c := server.AuditConfig{Node: cmp.Or(getenv("KEYWARD_AUDIT_NODE"), a.Node), RotateBytes: a.RotateBytes,
		Fsync: cmp.Or(getenv("KEYWARD_AUDIT_FSYNC"), a.Fsync), CheckpointEvery: a.CheckpointEvery}
	if a.FileRequired != nil {
		c.FileBestEffort = !*a.FileRequired
	}
	for _, sk := range a.Sink {
		c.Sinks = append(c.Sinks, server.AuditSinkConfig{Type: sk.Type, Required: sk.Required, Address: sk.Address,
			URL: sk.URL, CAFile: sk.CAFile, Header: sk.Header, BufferBytes: sk.BufferBytes})
	}
	switch c.Fsync {
	case "", "none", "batch":
	default:
		return c, fmt.Errorf("audit fsync %q: want none or batch", c.Fsync)
	}
	if v := getenv("KEYWARD_AUDIT_ROTATE_BYTES"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil {
			return c, fmt.Errorf("KEYWARD_AUDIT_ROTATE_BYTES: %w", err)
		}
		c.RotateBytes = n
	}
	for _, d := range []struct {
		name, v string
		dst     *time.Duration
	}{
		{"rotate_age", cmp.Or(getenv("KEYWARD_AUDIT_ROTATE_AGE"), a.RotateAge), &c.RotateAge},
		{"checkpoint_interval", cmp.Or(getenv("KEYWARD_AUDIT_CHECKPOINT_INTERVAL"), a.CheckpointInterval), &c.CheckpointInterval},
	} {
		if d.v == "" {
			continue
		}
		v, err := time.ParseDuration(d.v)
		if err != nil || v < 0 {
			return c, fmt.Errorf("audit %s: %q is not a duration", d.name, d.v)
		}
		*d.dst = v
	}
	return c, nil
}

// exitError is an error that asks main for a particular exit code.
type exitError struct {
	code int
	msg  string
}

func (e *exitError) Error() string { return e.msg }
func (e *exitError) ExitCode() int { return e.code }

// Exit codes of `keyward audit verify`.
const (
	verifyTampered     = 1 // something was modified, deleted, inserted, reordered or cut off
	verifyUnverifiable = 3 // the chain holds, but events after the last checkpoint are not covered
)

func newAuditCmd(getenv func(string) string, stdout io.Writer) *cobra.Command {
	cmd := &cobra.Command{Use: "audit", Short: "Verify and report on the audit log"}
	cmd.AddCommand(newAuditVerifyCmd(stdout), newAuditReportCmd(getenv, stdout))
	return cmd
}

func newAuditVerifyCmd(stdout io.Writer) *cobra.Command {
	var keyB64 string
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "verify FILE...",
		Short: "Check the audit log's hash chain and signed checkpoints",
		Long: `Check the hash chain and the signed checkpoints of audit log files.

Give the log, its rotated files and its checkpoint file (audit.log.checkpoints),
in any order, e.g. 'keyward audit verify DATA/audit.log*'. The first event that
was modified, deleted, inserted or moved, and a cut-off tail, are reported by
file and line, and the exit status is 1. Events after the last checkpoint are
reported as unverifiable (a cut after them would not show) with exit status 3.
Exit status 0: every event is chained and covered by a checkpoint.

--key pins the checkpoint key (base64 Ed25519 public key, as the server logs it
at unseal); without it all checkpoints must share one key, which is printed.`,
		Args: cobra.MinimumNArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error {
			var trusted ed25519.PublicKey
			if keyB64 != "" {
				k, err := base64.StdEncoding.DecodeString(keyB64)
				if err != nil || len(k) != ed25519.PublicKeySize {
					return fmt.Errorf("--key: not a base64 Ed25519 public key")
				}
				trusted = k
			}
			var inputs []audit.Input
			for _, name := range args {
				f, err := os.Open(name)
				if err != nil {
					return err
				}
				defer f.Close()
				inputs = append(inputs, audit.Input{Name: name, R: f})
			}
			rep, err := audit.Verify(inputs, trusted)
			if err != nil {
				return err
			}
			if asJSON {
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				if err := enc.Encode(rep); err != nil {
					return err
				}
			} else {
				for _, n := range rep.Nodes {
					fmt.Fprintf(stdout, "node %q: %d events, seq %d to %d, checkpointed through %d\n", n.Node, n.Events, n.FirstSeq, n.LastSeq, n.Checkpointed)
				}
				if rep.Key != "" {
					fmt.Fprintf(stdout, "%d checkpoints signed by %s\n", rep.Checkpoints, rep.Key)
				}
			}
			if !rep.OK() {
				return &exitError{code: verifyTampered, msg: "audit log does not verify: " + rep.Finding.String()}
			}
			if n := rep.Unverifiable(); n > 0 {
				return &exitError{code: verifyUnverifiable, msg: fmt.Sprintf("chain intact, but %d events after the last checkpoint are unverifiable", n)}
			}
			if !asJSON {
				fmt.Fprintln(stdout, "OK: chain and checkpoints hold")
			}
			return nil
		},
	}
	cmd.Flags().StringVar(&keyB64, "key", "", "trusted checkpoint public key (base64)")
	cmd.Flags().BoolVar(&asJSON, "json", false, "print the report as JSON")
	return cmd
}

func newAuditReportCmd(getenv func(string) string, stdout io.Writer) *cobra.Command {
	var since, vault, format, devJSON, group string
	cmd := &cobra.Command{
		Use:   "report [FILE...]",
		Short: "Key-usage report from the audit log: per object, who used it, how, how often, when, and denied attempts",
		Long: `Report the use of every key, secret and certificate in the audit log files
given (the log and its rotated files; checkpoint files are skipped): per object,
each principal that used it, the operations and their counts, first and last
use, and the attempts that were denied. Verify the log first
('keyward audit verify') to know that it is whole.

Without files, --vault NAME asks the server instead: its audit report API
(GET {vault}/providers/Keyward.Audit/usage, docs/CONFIG.md), as the principal of
--dev-json, the AZURE_* variables or 'keyward login', which needs
Microsoft.Insights/logs/read on the vault (Owner, Contributor, Reader). The server
answers from its own node's log.

--since takes a duration back from now (720h) or a time (2026-12-01 or RFC 3339).`,
		Args: cobra.ArbitraryArgs,
		RunE: func(cmd *cobra.Command, args []string) error {
			f := audit.ReportFilter{Vault: vault}
			if since != "" {
				if d, err := time.ParseDuration(since); err == nil {
					f.Since = time.Now().Add(-d)
				} else if t, err := time.Parse(time.RFC3339, since); err == nil {
					f.Since = t
				} else if t, err := time.Parse("2006-01-02", since); err == nil {
					f.Since = t
				} else {
					return fmt.Errorf("--since %q: want a duration (720h), a date (2026-12-01) or an RFC 3339 time", since)
				}
			}
			var rep []audit.ObjectUsage
			if len(args) == 0 {
				if vault == "" {
					return fmt.Errorf("give audit log files, or --vault NAME to ask the server")
				}
				raw, err := kwcli.AuditUsage(cmd.Context(), kwcli.IO{Getenv: getenv, Stdin: os.Stdin, Stdout: stdout, Stderr: cmd.ErrOrStderr()},
					devJSON, vault, group, f.Since)
				if err != nil {
					return err
				}
				if err := json.Unmarshal(raw, &rep); err != nil {
					return fmt.Errorf("the audit report API's answer could not be read")
				}
			} else {
				var inputs []audit.Input
				for _, name := range args {
					fh, err := os.Open(name)
					if err != nil {
						return err
					}
					defer fh.Close()
					inputs = append(inputs, audit.Input{Name: name, R: fh})
				}
				var err error
				if rep, err = audit.UsageReport(inputs, f); err != nil {
					return err
				}
			}
			switch format {
			case "json":
				if rep == nil {
					rep = []audit.ObjectUsage{}
				}
				enc := json.NewEncoder(stdout)
				enc.SetIndent("", "  ")
				return enc.Encode(rep)
			case "csv":
				w := csv.NewWriter(stdout)
				w.Write([]string{"vault", "object", "caller_object_id", "caller_app_id", "operations", "count", "denied", "first_use", "last_use"})
				for _, o := range rep {
					for _, c := range o.Callers {
						ops := make([]string, 0, len(c.Operations))
						for op, n := range c.Operations {
							ops = append(ops, fmt.Sprintf("%s=%d", op, n))
						}
						sort.Strings(ops)
						w.Write([]string{o.Vault, o.Object, c.ObjectID, c.AppID, strings.Join(ops, ";"), strconv.Itoa(c.Count),
							strconv.Itoa(c.Denied), c.First.UTC().Format(time.RFC3339), c.Last.UTC().Format(time.RFC3339)})
					}
				}
				w.Flush()
				return w.Error()
			}
			return fmt.Errorf("--format %q: csv or json", format)
		},
	}
	cmd.Flags().StringVar(&since, "since", "", "only events since (duration back from now, date or RFC 3339 time)")
	cmd.Flags().StringVar(&vault, "vault", "", "only this vault (without files: the vault whose report the server gives)")
	cmd.Flags().StringVar(&devJSON, "dev-json", "", "without files: a dev server's dev.json (else the AZURE_* variables or keyward login)")
	cmd.Flags().StringVarP(&group, "resource-group", "g", "", "without files: the vault's resource group (default: looked up)")
	cmd.Flags().StringVar(&format, "format", "csv", "csv or json")
	return cmd
}
