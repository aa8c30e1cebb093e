// Package server assembles a running Keyward from its Config: storage,
// barrier, identity, vaults, authorization, audit and the HTTPS listener,
// plus the dev-mode bootstrap and the background scheduler. It is the only
// package (besides cmd/keyward) that imports every layer.
package server

import (
	"crypto/x509"
	"errors"
	"fmt"
	"github.com/keyward/keyward/internal/hsm"
	"log/slog"
	"math"
	"net"
	"net/url"
	"time"

	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/throttle"
)

// Config is everything a Keyward server needs. cmd/keyward builds it from
// defaults, the config file, environment variables and flags, in that order.
type Config struct {
	// Dev runs an auto-unsealed development server with a local CA and a
	// ready-made tenant, vault and service principal. It gives up the
	// protection of the seal: the unseal key is kept in the data directory.
	Dev bool

	// Listen is the TCP address to listen on; port 0 picks a free port.
	Listen string
	// DataDir holds the database, the audit log and (in dev mode) the CA.
	DataDir string
	// DNSSuffix: vaults are {name}.vault.{DNSSuffix}.
	DNSSuffix string
	// PublicPort is the port clients connect to, when it differs from the
	// listening port (behind a load balancer). Empty: the listening port.
	PublicPort string
	// AuthorityURL is the token service URL clients configure as their
	// authority host. Empty: https://login.{DNSSuffix}[:port]/, or in dev
	// mode https://localhost:{port}/.
	AuthorityURL string

	// TLSCertFile and TLSKeyFile are the server certificate (with chain) and
	// key in PEM. Required outside dev mode.
	TLSCertFile string
	TLSKeyFile  string
	// TLS restricts protocol versions and cipher suites (tls.go).
	TLS TLSConfig

	// Storage selects the backend.
	Storage StorageConfig

	// AuditPath is the audit log file; empty: {DataDir}/audit.log.
	AuditPath string
	// Audit configures its rotation, fsync and chain (audit.go).
	Audit AuditConfig
	// Alerts configures alert rules and destinations (alerts.go).
	Alerts AlertsConfig

	// TestOnlyWrapAuditSink and TestOnlyWrapStorage, when set, wrap the
	// audit sink and the storage backend: tests put a layer there that
	// fails like a full disk (ENOSPC). Never set outside tests and the
	// hidden benchmark server (`keyward bench --server-audit off`).
	TestOnlyWrapAuditSink func(audit.Sink) audit.Sink
	TestOnlyWrapStorage   func(storage.Backend) storage.Backend

	// QuorumRetention is how long an approval request in a final state
	// is kept before the quorum-sweep job deletes it; 0: quorum.Retention.
	QuorumRetention time.Duration
	// SchedulerInterval is how often background jobs (purge after
	// retention) look for due work.
	SchedulerInterval time.Duration

	// EventRoots, when not nil, are the CAs trusted for webhook endpoints
	// instead of the system roots.
	EventRoots *x509.CertPool

	// SMTP, when not nil, sends the mail of certificate EmailContacts
	// actions; ACME configures ACME issuers (certificates.go).
	SMTP *SMTPConfig
	ACME ACMEConfig

	// Backup says where managed HSM backup containers may be; Events
	// where event webhook endpoints may be (same rules).
	Backup BackupConfig
	Events BackupConfig
	// Federation says where the discovery documents and key sets of
	// federated identity credentials' issuers may be fetched from (same
	// rules; [federation] allowed_hosts).
	Federation BackupConfig
	// IssuerRoots, when not nil, are the CAs trusted for those issuers
	// instead of the system roots (tests).
	IssuerRoots *x509.CertPool

	// Throttle limits request rates per vault and per principal
	// (docs/CONFIG.md, [throttle]). The zero value limits nothing;
	// cmd/keyward sets defaults well above Azure's published limits.
	Throttle throttle.Config
	// TokenLimits throttle the token endpoint per source and client and
	// lock a client out of a source after repeated failures
	// (docs/CONFIG.md, [token_endpoint]); nil: identity.DefaultTokenLimits.
	TokenLimits *identity.TokenLimits

	// DevVault is the name of the vault dev mode creates.
	DevVault string

	// HSM is the PKCS#11 token of RSA-HSM and EC-HSM keys (docs/HSM.md);
	// an empty Module means none.
	HSM hsm.Config
	// DevHSMModule, in dev mode without HSM.Module, is a SoftHSM2 library
	// with which the dev server makes its own token under DataDir/hsm and
	// makes its vault premium. Empty: no HSM (cmd/keyward sets it when
	// SoftHSM2 is installed).
	DevHSMModule string
	// Release configures secure key release (release.go).
	Release ReleaseConfig
	// SealType is the seal `keyward operator init` creates: "shamir"
	// (default) or "pkcs11" (the HSM wraps the root key; the shares are
	// recovery shares). A pkcs11 barrier unseals itself at start.
	SealType string

	// TrustedProxies are addresses or CIDRs of reverse proxies whose
	// X-Forwarded-For header names the client (network rules, audit).
	// Empty: the TCP peer is the client, whatever the headers say.
	TrustedProxies []string
	// PrivateListen is an optional second address whose connections are
	// marked private: vaults with publicNetworkAccess Disabled accept only
	// these (a self-hosted private endpoint). Bind it to an interface only
	// the private network reaches.
	PrivateListen string

	// Clock and Log are injected by tests; nil means the real ones.
	Clock clock.Clock
	Log   *slog.Logger
}

// BackupConfig says where managed HSM backups and restores ([backup]),
// or event webhook deliveries ([events]), may connect (docs/CONFIG.md;
// internal/netguard).
type BackupConfig struct {
	// AllowedHosts are host names, "*.suffix" wildcards, IP addresses and
	// CIDRs. Empty: any host name, at a public address (dev mode: or
	// loopback). Otherwise only the hosts listed; loopback, private and
	// link-local addresses only when an address or CIDR entry covers them
	// or the container's host is an exact name entry.
	AllowedHosts []string
}

// StorageConfig selects and configures the storage backend.
type StorageConfig struct {
	// Backend is "bolt" (default), "postgres" (several nodes on one
	// database) or "mem" (nothing survives a restart; tests).
	Backend string
	// DSN is the PostgreSQL connection string (postgres backend). Prefer a
	// passfile= to a password in it; use sslmode=verify-full in production.
	DSN string
	// MaxConns caps the PostgreSQL connection pool; 0 is pgx's default.
	MaxConns int32
	// Path is the bolt database file; empty: {DataDir}/keyward.db.
	Path string
	// Mlock locks the bolt database file in memory (bolt.Options.Mlock).
	Mlock bool
}

// Validate checks c without changing it.
func (c *Config) Validate() error {
	var errs []error
	if c.Listen == "" {
		errs = append(errs, errors.New("listen address is required"))
	} else if _, _, err := net.SplitHostPort(c.Listen); err != nil {
		errs = append(errs, fmt.Errorf("listen address %q: %w", c.Listen, err))
	}
	if c.DataDir == "" {
		errs = append(errs, errors.New("data directory is required"))
	}
	if c.DNSSuffix == "" {
		errs = append(errs, errors.New("dns suffix is required"))
	}
	if !c.Dev && (c.TLSCertFile == "" || c.TLSKeyFile == "") {
		errs = append(errs, errors.New("tls_cert_file and tls_key_file are required outside dev mode"))
	}
	if err := c.TLS.validate(); err != nil {
		errs = append(errs, err)
	}
	if c.AuthorityURL != "" {
		u, err := url.Parse(c.AuthorityURL)
		if err != nil || u.Scheme != "https" || u.Host == "" || (u.Path != "" && u.Path != "/") {
			errs = append(errs, fmt.Errorf("authority URL %q must be https://host[:port]/", c.AuthorityURL))
		}
	}
	switch c.Storage.Backend {
	case "", "bolt", "mem":
	case "postgres":
		if c.Storage.DSN == "" {
			errs = append(errs, errors.New("the postgres storage backend needs a DSN"))
		}
	default:
		errs = append(errs, fmt.Errorf("unknown storage backend %q", c.Storage.Backend))
	}
	for name, v := range map[string]float64{
		"throttle vault_rate": c.Throttle.Vault.Rate, "throttle vault_burst": c.Throttle.Vault.Burst,
		"throttle principal_rate": c.Throttle.Principal.Rate, "throttle principal_burst": c.Throttle.Principal.Burst,
	} {
		if !(v >= 0) || math.IsInf(v, 0) {
			errs = append(errs, fmt.Errorf("%s must be a non-negative number", name))
		}
	}
	if err := parseTrusted(c.TrustedProxies); err != nil {
		errs = append(errs, err)
	}
	if c.PrivateListen != "" {
		if _, _, err := net.SplitHostPort(c.PrivateListen); err != nil {
			errs = append(errs, fmt.Errorf("private listen address %q: %w", c.PrivateListen, err))
		}
	}
	errs = append(errs, c.validateCertificates()...)
	if c.SchedulerInterval < 0 {
		errs = append(errs, errors.New("scheduler interval must not be negative"))
	}
	if c.QuorumRetention < 0 {
		errs = append(errs, errors.New("quorum retention must not be negative"))
	}
	return errors.Join(errs...)
}
