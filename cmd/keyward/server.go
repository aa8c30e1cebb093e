package main

import (
	"cmp"
	"fmt"
	"github.com/keyward/keyward/internal/hsm"
	"io"
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
	"time"

	"github.com/BurntSushi/toml"
	"github.com/spf13/cobra"

	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/server"
	"github.com/keyward/keyward/internal/throttle"
)

// fileConfig is the TOML config file (docs/CONFIG.md).
type fileConfig struct {
	Listen            string `toml:"listen"`
	DataDir           string `toml:"data_dir"`
	DNSSuffix         string `toml:"dns_suffix"`
	PublicPort        string `toml:"public_port"`
	AuthorityURL      string `toml:"authority_url"`
	TLSCertFile       string `toml:"tls_cert_file"`
	TLSKeyFile        string `toml:"tls_key_file"`
	AuditPath         string `toml:"audit_path"`
	SchedulerInterval string `toml:"scheduler_interval"`
	LogLevel          string `toml:"log_level"`
	Storage           struct {
		Backend  string `toml:"backend"`
		Path     string `toml:"path"`
		DSN      string `toml:"dsn"`
		MaxConns int32  `toml:"max_conns"`
		Mlock    bool   `toml:"mlock"`
	} `toml:"storage"`
	Throttle struct {
		VaultRate      *float64 `toml:"vault_rate"`
		VaultBurst     *float64 `toml:"vault_burst"`
		PrincipalRate  *float64 `toml:"principal_rate"`
		PrincipalBurst *float64 `toml:"principal_burst"`
	} `toml:"throttle"`
	TokenEndpoint struct {
		SourceRate      *float64 `toml:"source_rate"`
		SourceBurst     *float64 `toml:"source_burst"`
		ClientRate      *float64 `toml:"client_rate"`
		ClientBurst     *float64 `toml:"client_burst"`
		LockoutFailures *int     `toml:"lockout_failures"`
		LockoutWindow   string   `toml:"lockout_window"`
		LockoutDuration string   `toml:"lockout_duration"`
	} `toml:"token_endpoint"`
	TLS struct {
		MinVersion   string   `toml:"min_version"`
		CipherSuites []string `toml:"cipher_suites"`
	} `toml:"tls"`
	SMTP smtpFileConfig `toml:"smtp"` // certificates.go
	ACME acmeFileConfig `toml:"acme"`
	// Audit and Alerts are the [audit] and [alerts] sections (audit.go).
	Audit  auditFileConfig  `toml:"audit"`
	Alerts alertsFileConfig `toml:"alerts"`
	// Identity and access (docs/ACCESS.md §5).
	TrustedProxies []string `toml:"trusted_proxies"`
	PrivateListen  string   `toml:"private_listen"`
	// Managed HSM backup containers (docs/CONFIG.md, [backup]).
	Backup struct {
		AllowedHosts []string `toml:"allowed_hosts"`
	} `toml:"backup"`
	// Event webhook endpoints (docs/CONFIG.md, [events]).
	Events struct {
		AllowedHosts []string `toml:"allowed_hosts"`
	} `toml:"events"`
	// Federated credentials' issuers (docs/CONFIG.md, [federation]).
	Federation struct {
		AllowedHosts []string `toml:"allowed_hosts"`
	} `toml:"federation"`
	// Approval requests (docs/QUORUM.md): how long a request in a final
	// state is kept before the sweep deletes it.
	Quorum struct {
		Retention string `toml:"retention"`
	} `toml:"quorum"`
	// Seal: "shamir" (default) or "pkcs11" (docs/HSM.md).
	Seal struct {
		Type string `toml:"type"`
	} `toml:"seal"`
	// PKCS#11 token of HSM keys (docs/HSM.md).
	HSM struct {
		Module     string `toml:"module"`
		TokenLabel string `toml:"token_label"`
		PinFile    string `toml:"pin_file"`
		Sessions   int    `toml:"sessions"`
	} `toml:"hsm"`
	// Secure key release: trusted attestation authorities (docs/HSM.md).
	Release struct {
		Authorities []struct {
			Issuer   string `toml:"issuer"`
			JWKSFile string `toml:"jwks_file"`
		} `toml:"authorities"`
	} `toml:"release"`
}

// Default request rate limits (docs/CONFIG.md, [throttle]): 100 times
// Azure Key Vault's 4,000 requests per 10 seconds per vault, and half that
// per principal, each with a 10-second burst. 0 turns a limit off.
const (
	defaultVaultRate     = 40_000
	defaultPrincipalRate = 20_000
)

// throttleConfig is the [throttle] section over the defaults, then the
// KEYWARD_THROTTLE_* environment variables.
func throttleConfig(fc *fileConfig, getenv func(string) string) (throttle.Config, error) {
	c := throttle.Config{Vault: throttle.Limit{Rate: defaultVaultRate}, Principal: throttle.Limit{Rate: defaultPrincipalRate}}
	for _, s := range []struct {
		file *float64
		env  string
		dst  *float64
	}{
		{fc.Throttle.VaultRate, "KEYWARD_THROTTLE_VAULT_RATE", &c.Vault.Rate},
		{fc.Throttle.VaultBurst, "KEYWARD_THROTTLE_VAULT_BURST", &c.Vault.Burst},
		{fc.Throttle.PrincipalRate, "KEYWARD_THROTTLE_PRINCIPAL_RATE", &c.Principal.Rate},
		{fc.Throttle.PrincipalBurst, "KEYWARD_THROTTLE_PRINCIPAL_BURST", &c.Principal.Burst},
	} {
		if s.file != nil {
			*s.dst = *s.file
		}
		if v := getenv(s.env); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return c, fmt.Errorf("%s: %w", s.env, err)
			}
			*s.dst = f
		}
	}
	return c, nil
}

// tokenLimits is the [token_endpoint] section over
// identity.DefaultTokenLimits, then the KEYWARD_TOKEN_* environment
// variables.
func tokenLimits(fc *fileConfig, getenv func(string) string) (identity.TokenLimits, error) {
	l := identity.DefaultTokenLimits
	te := &fc.TokenEndpoint
	for _, s := range []struct {
		file *float64
		env  string
		dst  *float64
	}{
		{te.SourceRate, "KEYWARD_TOKEN_SOURCE_RATE", &l.Source.Rate},
		{te.SourceBurst, "KEYWARD_TOKEN_SOURCE_BURST", &l.Source.Burst},
		{te.ClientRate, "KEYWARD_TOKEN_CLIENT_RATE", &l.Client.Rate},
		{te.ClientBurst, "KEYWARD_TOKEN_CLIENT_BURST", &l.Client.Burst},
	} {
		if s.file != nil {
			*s.dst = *s.file
		}
		if v := getenv(s.env); v != "" {
			f, err := strconv.ParseFloat(v, 64)
			if err != nil {
				return l, fmt.Errorf("%s: %w", s.env, err)
			}
			*s.dst = f
		}
		if *s.dst < 0 {
			return l, fmt.Errorf("%s must not be negative", s.env)
		}
	}
	if te.LockoutFailures != nil {
		l.LockoutFailures = *te.LockoutFailures
	}
	if v := getenv("KEYWARD_TOKEN_LOCKOUT_FAILURES"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil {
			return l, fmt.Errorf("KEYWARD_TOKEN_LOCKOUT_FAILURES: %w", err)
		}
		l.LockoutFailures = n
	}
	for _, s := range []struct {
		file, env string
		dst       *time.Duration
	}{
		{te.LockoutWindow, "KEYWARD_TOKEN_LOCKOUT_WINDOW", &l.LockoutWindow},
		{te.LockoutDuration, "KEYWARD_TOKEN_LOCKOUT_DURATION", &l.LockoutDuration},
	} {
		if v := cmp.Or(getenv(s.env), s.file); v != "" {
			d, err := time.ParseDuration(v)
			if err != nil || d <= 0 {
				return l, fmt.Errorf("%s: %q is not a positive duration", s.env, v)
			}
			*s.dst = d
		}
	}
	return l, nil
}

func newRootCmd(getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) *cobra.Command {
	root := &cobra.Command{
		Use:           "keyward",
		Short:         "Keyward: a self-hosted key vault that speaks the Azure Key Vault API",
		SilenceUsage:  true,
		SilenceErrors: true,
	}
	root.AddCommand(newServerCmd(getenv, stdout, stderr), newOperatorCmd(getenv, stdin, stdout))
	root.AddCommand(newBenchCmd(stdout, stderr))
	root.AddCommand(newAccessCmd(getenv, stdin, stdout, stderr))
	root.AddCommand(newAzCloudCmd(getenv, stdout))
	root.AddCommand(clientCommands(getenv, stdin, stdout, stderr)...)
	root.AddCommand(newAuditCmd(getenv, stdout))
	root.AddCommand(newBYOKCmd(stdout), newAttestationTokenCmd(stdout))
	root.AddCommand(newKeyMgmtCmd(getenv, stdout))
	root.AddCommand(newApprovalCmd(getenv, stdout))
	root.AddCommand(newHSMCmd(getenv, stdout))
	return root
}

func newServerCmd(getenv func(string) string, stdout, stderr io.Writer) *cobra.Command {
	var (
		dev        bool
		configFile string
		listen     string
		dataDir    string
		suffix     string
		logLevel   string
		hsmModule  string
	)
	cmd := &cobra.Command{
		Use:   "server",
		Short: "Run the Keyward server",
		Long: `Run the Keyward server.

Configuration is read, in increasing order of precedence, from defaults, the
TOML file named by --config (or KEYWARD_CONFIG), KEYWARD_* environment
variables and flags. See docs/CONFIG.md.

--dev starts an auto-unsealed development server with a local CA, a tenant,
a vault named "dev" and a service principal, and writes DATA/dev.json. It
keeps the unseal key in the data directory: never use it for real secrets.`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			var fc fileConfig
			if path := cmp.Or(configFile, getenv("KEYWARD_CONFIG")); path != "" {
				md, err := toml.DecodeFile(path, &fc)
				if err != nil {
					return fmt.Errorf("config file: %w", err)
				}
				if und := md.Undecoded(); len(und) > 0 {
					return fmt.Errorf("config file: unknown setting %q", und[0].String())
				}
			}
			cfg := server.Config{
				Dev:          dev,
				Listen:       pick(cmd, "listen", listen, getenv("KEYWARD_LISTEN"), fc.Listen, "127.0.0.1:8443"),
				DataDir:      pick(cmd, "data", dataDir, getenv("KEYWARD_DATA_DIR"), fc.DataDir, ""),
				DNSSuffix:    pick(cmd, "dns-suffix", suffix, getenv("KEYWARD_DNS_SUFFIX"), fc.DNSSuffix, "localhost"),
				PublicPort:   cmp.Or(getenv("KEYWARD_PUBLIC_PORT"), fc.PublicPort),
				AuthorityURL: cmp.Or(getenv("KEYWARD_AUTHORITY_URL"), fc.AuthorityURL),
				TLSCertFile:  cmp.Or(getenv("KEYWARD_TLS_CERT_FILE"), fc.TLSCertFile),
				TLSKeyFile:   cmp.Or(getenv("KEYWARD_TLS_KEY_FILE"), fc.TLSKeyFile),
				AuditPath:    cmp.Or(getenv("KEYWARD_AUDIT_PATH"), fc.AuditPath),
				Storage: server.StorageConfig{
					Backend:  cmp.Or(getenv("KEYWARD_STORAGE_BACKEND"), fc.Storage.Backend),
					Path:     cmp.Or(getenv("KEYWARD_STORAGE_PATH"), fc.Storage.Path),
					DSN:      cmp.Or(getenv("KEYWARD_STORAGE_DSN"), fc.Storage.DSN),
					MaxConns: fc.Storage.MaxConns,
				},
			}
			tc, err := throttleConfig(&fc, getenv)
			if err != nil {
				return err
			}
			cfg.Throttle = tc
			tl, err := tokenLimits(&fc, getenv)
			if err != nil {
				return err
			}
			cfg.TokenLimits = &tl
			cfg.TLS = server.TLSConfig{MinVersion: cmp.Or(getenv("KEYWARD_TLS_MIN_VERSION"), fc.TLS.MinVersion), CipherSuites: fc.TLS.CipherSuites}
			if v := getenv("KEYWARD_TLS_CIPHER_SUITES"); v != "" {
				cfg.TLS.CipherSuites = strings.Split(v, ",")
			}
			cfg.Storage.Mlock = fc.Storage.Mlock
			if v := getenv("KEYWARD_STORAGE_MLOCK"); v != "" {
				if cfg.Storage.Mlock, err = strconv.ParseBool(v); err != nil {
					return fmt.Errorf("KEYWARD_STORAGE_MLOCK: %w", err)
				}
			}
			module := pick(cmd, "hsm-module", hsmModule, getenv("KEYWARD_HSM_MODULE"), fc.HSM.Module, "")
			cfg.HSM = hsm.Config{TokenLabel: cmp.Or(getenv("KEYWARD_HSM_TOKEN_LABEL"), fc.HSM.TokenLabel),
				PINFile: cmp.Or(getenv("KEYWARD_HSM_PIN_FILE"), fc.HSM.PinFile), Sessions: fc.HSM.Sessions}
			switch {
			case module == "none":
			case dev && cfg.HSM.TokenLabel == "":
				// The dev server makes its own SoftHSM2 token.
				cfg.DevHSMModule = cmp.Or(module, hsm.DefaultSoftHSMModule)
			default:
				cfg.HSM.Module = module
			}
			for _, a := range fc.Release.Authorities {
				cfg.Release.Authorities = append(cfg.Release.Authorities, server.ReleaseAuthority{Issuer: a.Issuer, JWKSFile: a.JWKSFile})
			}
			cfg.SealType = cmp.Or(getenv("KEYWARD_SEAL_TYPE"), fc.Seal.Type)
			if cfg.SealType != "" && cfg.SealType != "shamir" && cfg.SealType != "pkcs11" {
				return fmt.Errorf("seal.type must be shamir or pkcs11, not %q", cfg.SealType)
			}
			cfg.PrivateListen = cmp.Or(getenv("KEYWARD_PRIVATE_LISTEN"), fc.PrivateListen)
			cfg.TrustedProxies = fc.TrustedProxies
			if v := getenv("KEYWARD_TRUSTED_PROXIES"); v != "" {
				cfg.TrustedProxies = strings.Split(v, ",")
			}
			cfg.Backup, cfg.Events = backupConfig(&fc, getenv)
			cfg.Federation = federationConfig(&fc, getenv)
			if cfg.QuorumRetention, err = quorumRetention(&fc, getenv); err != nil {
				return err
			}
			if cfg.SMTP, cfg.ACME, err = certificateConfig(&fc, getenv); err != nil {
				return err
			}
			if cfg.Audit, err = auditConfig(&fc, getenv); err != nil {
				return err
			}
			if cfg.Alerts, err = alertsConfig(&fc); err != nil {
				return err
			}
			if s := cmp.Or(getenv("KEYWARD_SCHEDULER_INTERVAL"), fc.SchedulerInterval); s != "" {
				d, err := time.ParseDuration(s)
				if err != nil {
					return fmt.Errorf("scheduler_interval: %w", err)
				}
				cfg.SchedulerInterval = d
			}
			var level slog.Level
			if err := level.UnmarshalText([]byte(pick(cmd, "log-level", logLevel, getenv("KEYWARD_LOG_LEVEL"), fc.LogLevel, "info"))); err != nil {
				return fmt.Errorf("log level: %w", err)
			}
			cfg.Log = slog.New(slog.NewTextHandler(stderr, &slog.HandlerOptions{Level: level}))
			tempData := false
			if cfg.DataDir == "" && dev {
				dir, err := os.MkdirTemp("", "keyward-dev-")
				if err != nil {
					return err
				}
				cfg.DataDir, tempData = dir, true
			}
			setGCPercent(getenv)
			s, err := server.Start(cmd.Context(), cfg)
			if err != nil {
				return err
			}
			defer s.Close()
			if dev {
				printDevBanner(stdout, s, tempData)
			} else {
				fmt.Fprintf(stdout, "Keyward listening on %s (authority %s). Check `keyward operator status`.\n", s.Addr(), s.AuthorityURL())
			}
			<-cmd.Context().Done()
			fmt.Fprintln(stdout, "Keyward shutting down.")
			return s.Close()
		},
	}
	f := cmd.Flags()
	f.BoolVar(&dev, "dev", false, "run an auto-unsealed development server (insecure: keeps the unseal key on disk)")
	f.StringVar(&configFile, "config", "", "TOML config file (env KEYWARD_CONFIG)")
	f.StringVar(&listen, "listen", "", "address to listen on, e.g. 127.0.0.1:8443 or 127.0.0.1:0 (env KEYWARD_LISTEN)")
	f.StringVar(&dataDir, "data", "", "data directory (env KEYWARD_DATA_DIR); dev mode uses a temporary one when empty")
	f.StringVar(&suffix, "dns-suffix", "", "vault DNS suffix: vaults are NAME.vault.SUFFIX (env KEYWARD_DNS_SUFFIX, default localhost)")
	f.StringVar(&logLevel, "log-level", "", "debug, info, warn or error (env KEYWARD_LOG_LEVEL)")
	f.StringVar(&hsmModule, "hsm-module", "", "PKCS#11 library of the HSM (env KEYWARD_HSM_MODULE); with --dev, the SoftHSM2 library the dev server makes its token with (default "+hsm.DefaultSoftHSMModule+"; none: no HSM)")
	return cmd
}

// setGCPercent makes the garbage collector run less often than Go's
// default unless GOGC is set: Keyward's live heap is a few MiB and every
// request allocates a few KiB, so with GOGC=100 a busy server collects many
// times a second. 400 costs about 12 MiB of RSS and saves about 15 % of the
// CPU per request (docs/PERFORMANCE.md, "Garbage collection").
func setGCPercent(getenv func(string) string) {
	if getenv("GOGC") == "" {
		debug.SetGCPercent(400)
	}
}

// pick returns the flag value when the flag was set, else the first
// non-empty of env, file and default.
func pick(cmd *cobra.Command, flag, flagVal, env, file, def string) string {
	if cmd.Flags().Changed(flag) {
		return flagVal
	}
	return cmp.Or(env, file, def)
}

func printDevBanner(w io.Writer, s *server.Server, tempData bool) {
	d := s.Dev()
	fmt.Fprintf(w, `==> Keyward dev server started. Do NOT use it for real secrets.

    Listening on:   https://%s
    Vault:          %s
    Managed HSM:    %s
    Authority:      %s
    Tenant ID:      %s
    Client ID:      %s
    Client secret:  (in dev.json)
    CA certificate: %s
    Connection details: %s

    The dev server is auto-unsealed and keeps its unseal key in the data
    directory. Trust the CA (SSL_CERT_FILE=%s) and map *.vault.localhost to
    the listener if your resolver does not (the Go example in README.md
    shows both). Point azidentity at the authority with
    DisableInstanceDiscovery: true.

    The managed HSM pool "dev" is activated; its security domain and the
    custodians' private keys are in %s (dev only).
`, d.Listen, d.VaultURL, d.ManagedHSMURL, d.AuthorityHost, d.TenantID, d.ClientID, d.CAFile,
		s.DataDir()+"/dev.json", d.CAFile, s.DataDir()+"/managedhsm-dev")
	if d.HSM != nil {
		fmt.Fprintf(w, "\n    HSM:            SoftHSM2 token %q (%s); vault dev is premium: RSA-HSM and EC-HSM keys live in the token\n", d.HSM.TokenLabel, d.HSM.SoftHSM2Conf)
	} else if note := s.HSMNote(); note != "" {
		fmt.Fprintf(w, "\n    HSM:            %s\n", note)
	}
	if tempData {
		fmt.Fprintf(w, "\n    Data directory (temporary): %s\n", s.DataDir())
	}
	fmt.Fprintln(w)
}

// backupConfig is the [backup] and [events] sections,
// KEYWARD_BACKUP_ALLOWED_HOSTS and KEYWARD_EVENTS_ALLOWED_HOSTS
// (comma-separated) replacing their lists.
func backupConfig(fc *fileConfig, getenv func(string) string) (backup, events server.BackupConfig) {
	backup.AllowedHosts, events.AllowedHosts = fc.Backup.AllowedHosts, fc.Events.AllowedHosts
	if v := getenv("KEYWARD_BACKUP_ALLOWED_HOSTS"); v != "" {
		backup.AllowedHosts = strings.Split(v, ",")
	}
	if v := getenv("KEYWARD_EVENTS_ALLOWED_HOSTS"); v != "" {
		events.AllowedHosts = strings.Split(v, ",")
	}
	return backup, events
}

// minQuorumRetention is the shortest [quorum] retention accepted: a
// finished request stays visible (GET /approvals/{id}) for at least a day.
const minQuorumRetention = 24 * time.Hour

// quorumRetention is [quorum] retention (KEYWARD_QUORUM_RETENTION
// replacing it), a Go duration of at least a day; 0 when unset (the
// default, quorum.Retention).
func quorumRetention(fc *fileConfig, getenv func(string) string) (time.Duration, error) {
	v := cmp.Or(getenv("KEYWARD_QUORUM_RETENTION"), fc.Quorum.Retention)
	if v == "" {
		return 0, nil
	}
	d, err := time.ParseDuration(v)
	if err != nil {
		return 0, fmt.Errorf("quorum.retention: %w", err)
	}
	if d < minQuorumRetention {
		return 0, fmt.Errorf("quorum.retention must be at least %v, not %v", minQuorumRetention, d)
	}
	return d, nil
}

// federationConfig is the [federation] section,
// KEYWARD_FEDERATION_ALLOWED_HOSTS (comma-separated) replacing its list.
func federationConfig(fc *fileConfig, getenv func(string) string) server.BackupConfig {
	c := server.BackupConfig{AllowedHosts: fc.Federation.AllowedHosts}
	if v := getenv("KEYWARD_FEDERATION_ALLOWED_HOSTS"); v != "" {
		c.AllowedHosts = strings.Split(v, ",")
	}
	return c
}
