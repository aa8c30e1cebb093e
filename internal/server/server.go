package server

import (
	"cmp"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"github.com/keyward/keyward/internal/certificates"
	"github.com/keyward/keyward/internal/console"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	"github.com/keyward/keyward/internal/alerts"
	"github.com/keyward/keyward/internal/api"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/devca"
	"github.com/keyward/keyward/internal/events"
	"github.com/keyward/keyward/internal/hsm"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/jobs"
	"github.com/keyward/keyward/internal/keymgmt"
	"github.com/keyward/keyward/internal/metrics"
	"github.com/keyward/keyward/internal/mhsm"
	"github.com/keyward/keyward/internal/netguard"
	"github.com/keyward/keyward/internal/quorum"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/storage/bolt"
	"github.com/keyward/keyward/internal/storage/mem"
	"github.com/keyward/keyward/internal/storage/postgres"
	"github.com/keyward/keyward/internal/throttle"
	"github.com/keyward/keyward/internal/vault"
)

// Server is a running Keyward.
type Server struct {
	quorum *quorum.Service // approval requests (quorum.go: the sweep job)

	console      *console.Console
	cfg          Config
	log          *slog.Logger
	clock        clock.Clock
	backend      storage.Backend
	barrier      *barrier.Barrier
	dir          *identity.Directory
	auth         *identity.Authority
	vaults       *vault.Service
	pools        *mhsm.Service // mhsm.go
	certificates *certificates.Service
	access       accessState // authorizer, management plane, private listener (access.go)
	certs        certState   // certificate mail, ACME, HTTP-01 responder (certificates.go)
	audit        *audit.Log
	webhook      *events.Webhook
	handler      *api.Handler
	apiCfg       api.Config

	auditFile *audit.FileSink // the chained audit log file (audit.go)
	alerts    *alerts.Engine  // alert rules over the audit events (alerts.go)
	metrics   *metrics.Metrics
	jobsRef   atomic.Pointer[jobs.Runner] // s.jobs, for the metrics scrape

	leader *postgres.Leader // nil: this process is the only node
	jobs   *jobs.Runner     // background jobs (jobs.go)

	keymgmt *keymgmt.Service // the Key Management engine (keymgmt.go)

	listener net.Listener
	http     *http.Server
	caFile   string

	mu sync.Mutex // serializes init, unseal and seal

	mu2            sync.Mutex // guards operatorTenant
	operatorTenant string
	stop           chan struct{}
	done           sync.WaitGroup
	devInfo        *DevInfo

	hsm      *hsm.HSM       // nil: no HSM configured (hsm.go)
	devToken *hsm.SoftToken // the dev server's own SoftHSM2 token
	hsmNote  string         // why a dev server has no HSM, for its banner

	devAttestation *DevAttestation // the dev server's attestation authority (release.go)
}

// Start opens storage, listens, unseals (dev mode) and serves until Close.
func Start(ctx context.Context, cfg Config) (_ *Server, err error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	s := &Server{cfg: cfg, log: cmp.Or(cfg.Log, slog.Default()), stop: make(chan struct{})}
	s.clock = cfg.Clock
	if s.clock == nil {
		s.clock = clock.Real{}
	}
	defer func() {
		if err != nil {
			s.Close()
		}
	}()
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	switch cfg.Storage.Backend {
	case "mem":
		s.backend = mem.New()
	case "postgres":
		pg, err := postgres.Open(ctx, postgres.Options{DSN: cfg.Storage.DSN, MaxConns: cfg.Storage.MaxConns,
			StatementTimeout: 30 * time.Second})
		if err != nil {
			return nil, err
		}
		s.backend, s.leader = pg, pg.NewLeader(postgres.LeaderLockKey)
	default:
		path := cmp.Or(cfg.Storage.Path, filepath.Join(cfg.DataDir, "keyward.db"))
		if s.backend, err = bolt.Open(path, bolt.Options{Mlock: cfg.Storage.Mlock}); err != nil {
			return nil, err
		}
	}
	sink, err := s.openAuditFile()
	if err != nil {
		return nil, err
	}
	s.auditFile = sink
	var auditSink audit.Sink = sink
	if cfg.TestOnlyWrapAuditSink != nil {
		auditSink = cfg.TestOnlyWrapAuditSink(sink)
	}
	targets, err := s.auditTargets(auditSink)
	if err != nil {
		sink.Close()
		return nil, err
	}
	s.audit = audit.NewLogTargets(func(err error) { s.log.Error("audit sink failed", "error", err) }, targets...)
	if err := s.startAlerts(); err != nil {
		return nil, err
	}
	s.startMetrics()
	if cfg.TestOnlyWrapStorage != nil {
		s.backend = cfg.TestOnlyWrapStorage(s.backend)
	}
	s.backend = s.metrics.WrapStorage(s.backend)
	// Writes commit only after the request's audit event is recorded
	// (api's audit gate; DESIGN.md invariant 3).
	s.backend = storage.WithPreCommitHooks(s.backend)
	s.barrier = barrier.New(s.backend)

	// Listen first: with port 0 the port is known only now, and it is part
	// of the authority URL, the challenge resource and token audiences.
	if s.listener, err = net.Listen("tcp", cfg.Listen); err != nil {
		return nil, err
	}
	_, port, _ := net.SplitHostPort(s.listener.Addr().String())
	publicPort := cmp.Or(cfg.PublicPort, port)
	hp := func(host string) string {
		if publicPort == "443" {
			return host
		}
		return host + ":" + publicPort
	}
	authorityURL := cfg.AuthorityURL
	if authorityURL == "" {
		if cfg.Dev {
			authorityURL = "https://" + hp("localhost") + "/"
		} else {
			authorityURL = "https://" + hp("login."+cfg.DNSSuffix) + "/"
		}
	}
	s.apiCfg = api.Config{DNSSuffix: cfg.DNSSuffix, PublicPort: publicPort, AuthorityURL: authorityURL}

	tlsCfg, err := cfg.TLS.tlsConfig()
	if err != nil {
		return nil, err
	}
	if pqTLSDisabled(os.Getenv("GODEBUG")) {
		s.log.Warn("GODEBUG tlsmlkem=0 turns off the post-quantum TLS key exchange (X25519MLKEM768) on every listener")
	}
	if cfg.Dev {
		ca, err := devca.Ensure(filepath.Join(cfg.DataDir, "tls"), devSANs(cfg.DNSSuffix), devIPs(), s.clock.Now())
		if err != nil {
			return nil, fmt.Errorf("dev CA: %w", err)
		}
		tlsCfg.Certificates = []tls.Certificate{ca.ServerCert}
		s.caFile = ca.Files.CACert
	} else {
		cert, err := tls.LoadX509KeyPair(cfg.TLSCertFile, cfg.TLSKeyFile)
		if err != nil {
			return nil, fmt.Errorf("loading TLS certificate: %w", err)
		}
		tlsCfg.Certificates = []tls.Certificate{cert}
	}

	s.dir = identity.NewDirectory(s.barrier.System())
	s.auth = identity.NewAuthority(s.dir, s.barrier.System(), s.clock, authorityURL)
	if cfg.TokenLimits != nil {
		s.auth.SetTokenLimits(*cfg.TokenLimits)
	}
	// Federated credentials' issuers: [federation] allowed_hosts, as
	// backups (mhsm.go); the issuer is chosen by an application's owner.
	issuers, err := netguard.New(cfg.Federation.AllowedHosts, cfg.Dev)
	if err != nil {
		return nil, fmt.Errorf("federation: %w", err)
	}
	issuers.Named("[federation] allowed_hosts")
	s.auth.SetIssuerFetch(identity.IssuerFetch{Guard: issuers, Roots: cfg.IssuerRoots, Log: s.log.Warn})
	external, mailer, err := s.startCertificates()
	if err != nil {
		return nil, err
	}
	deps := vault.Deps{VaultURL: s.VaultURL}
	if err := s.openHSM(); err != nil {
		return nil, err
	}
	if s.hsm != nil {
		deps.HSM = s.hsm
	}
	if deps.Release, err = s.releaseDeps(); err != nil {
		return nil, err
	}
	s.vaults = vault.New(s.barrier, s.clock, deps)
	s.certificates = certificates.New(s.vaults, certificates.Deps{ExternalCA: external, Mailer: mailer})
	// Webhook endpoints: [events] allowed_hosts, as backups (mhsm.go).
	hooks, err := netguard.New(cfg.Events.AllowedHosts, cfg.Dev)
	if err != nil {
		return nil, fmt.Errorf("events: %w", err)
	}
	hooks.Named("[events] allowed_hosts")
	s.webhook = events.NewWebhook(s.clock, cfg.EventRoots, hooks)
	if err := s.initAccess(cfg); err != nil {
		return nil, err
	}
	keymgmtSurface := s.initKeyMgmt()
	if err := s.initPools(nil); err != nil { // mhsm.go
		return nil, err
	}
	s.console = s.newConsole()
	s.quorum = quorum.New(s.barrier.System(), s.clock)
	s.quorum.SetRetention(cfg.QuorumRetention)
	s.handler = api.New(s.apiCfg, api.Deps{
		KeyMgmt:  keymgmtSurface,
		Operator: s, Authority: s.auth, Vaults: s.vaults, Certificates: s.certificates, Authz: s.access.engine, Management: s.access.handler,
		Console:  s.console,
		Pools:    s.pools,
		Throttle: throttle.New(s.clock, cfg.Throttle),
		Audit:    s.audit, Metrics: s.metrics.Handler(), Clock: s.clock, Log: s.log,
		Quorum:       s.quorum,
		WebhookGuard: hooks.Check,
	})

	s.console.SetBackend(s.handler)
	if cfg.Dev {
		if err := s.devStart(ctx); err != nil {
			return nil, err
		}
	} else if err := s.hsmAutoUnseal(ctx); err != nil {
		return nil, err
	}

	s.http = NewHTTPServer(s.handler, tlsCfg, slog.NewLogLogger(s.log.Handler(), slog.LevelDebug))
	// Before the public listener serves: net/http writes its HTTP/2
	// settings into the TLS config, which the private one clones.
	if err := s.startPrivate(tlsCfg); err != nil {
		return nil, err
	}
	s.done.Add(1)
	go func() {
		defer s.done.Done()
		if err := s.http.ServeTLS(s.listener, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			s.log.Error("https server stopped", "error", err)
		}
	}()
	s.jobs = s.newJobs()
	s.jobsRef.Store(s.jobs)
	s.jobs.Start()
	return s, nil
}

// Close stops serving and releases storage. It is safe to call twice.
func (s *Server) Close() error {
	var errs []error
	select {
	case <-s.stop:
		return nil
	default:
		close(s.stop)
	}
	if s.http != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		errs = append(errs, s.http.Shutdown(ctx))
		cancel()
		errs = append(errs, s.closePrivate())
	} else if s.listener != nil {
		s.listener.Close()
	}
	s.done.Wait()
	if s.jobs != nil {
		s.jobs.Stop()
	}
	s.stopCertificates()
	if s.auditFile != nil {
		errs = append(errs, s.auditFile.Checkpoint()) // the whole log verifies
	}
	if s.barrier != nil {
		s.barrier.Seal()
	}
	if s.hsm != nil {
		s.hsm.Close()
	}
	if s.backend != nil {
		errs = append(errs, s.backend.Close())
	}
	errs = append(errs, s.audit.Close())
	return errors.Join(errs...)
}

// Addr is the address the server listens on.
func (s *Server) Addr() string { return s.listener.Addr().String() }

// AuthorityURL is the token service URL.
func (s *Server) AuthorityURL() string { return s.apiCfg.AuthorityURL }

// VaultURL is the URL of vault name.
func (s *Server) VaultURL(name string) string {
	host := name + ".vault." + s.cfg.DNSSuffix
	if s.apiCfg.PublicPort != "443" {
		host += ":" + s.apiCfg.PublicPort
	}
	return "https://" + host + "/"
}

// ManagementResource is the audience of operator and management calls.
func (s *Server) ManagementResource() string { return s.apiCfg.ManagementResource() }

// CAFile is the dev CA certificate file ("" outside dev mode).
func (s *Server) CAFile() string { return s.caFile }

// Dev returns the dev-mode connection details (nil outside dev mode).
func (s *Server) Dev() *DevInfo { return s.devInfo }

// Vaults exposes the domain service (for tests and the CLI).
func (s *Server) Vaults() *vault.Service { return s.vaults }

// Ready reports whether this node can serve: unsealed and its storage
// reachable (for load balancers: /readyz).
func (s *Server) Ready(ctx context.Context) error {
	if s.barrier.Sealed() {
		return barrier.ErrSealed
	}
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	return s.barrier.Ping(ctx)
}

// --- api.Operator ---

// Status reports the seal status.
func (s *Server) Status(ctx context.Context) (barrier.Status, error) { return s.barrier.Status(ctx) }

// Sealed reports whether the barrier is sealed.
func (s *Server) Sealed() bool { return s.barrier.Sealed() }

// ResetUnseal discards the shares given so far.
func (s *Server) ResetUnseal() { s.barrier.ResetUnseal() }

// Init initializes a new Keyward: the root key split into shares, and a
// first tenant, subscription, administrator and vault. The server stays
// sealed; the shares and the administrator's credentials are returned once.
func (s *Server) Init(ctx context.Context, shares, threshold int) (*api.InitResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.cfg.SealType == barrier.SealPKCS11 {
		return s.initPKCS11(ctx, shares, threshold)
	}
	keys, err := s.barrier.Initialize(ctx, barrier.SealConfig{Type: "shamir", Shares: shares, Threshold: threshold}, s.clock.Now())
	if err != nil {
		return nil, err
	}
	// Unseal with the new shares just long enough to create the first
	// tenant, then seal again: the operator unseals for real.
	for _, k := range keys[:threshold] {
		if _, err := s.barrier.Unseal(ctx, k); err != nil {
			return nil, err
		}
	}
	defer s.sealLocked()
	b, secret, err := s.bootstrap(ctx, "default")
	if err != nil {
		return nil, fmt.Errorf("bootstrap: %w", err)
	}
	return &api.InitResult{Shares: keys, Threshold: threshold, TenantID: b.TenantID, ClientID: b.AdminAppID,
		ClientSecret: secret, Vault: b.Vault, Subscription: b.SubscriptionID, ResourceGroup: b.ResourceGroup}, nil
}

// Unseal adds a share; when the barrier opens, state is loaded.
func (s *Server) Unseal(ctx context.Context, share []byte) (barrier.Status, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	wasSealed := s.barrier.Sealed()
	st, err := s.barrier.Unseal(ctx, share)
	if err != nil || !wasSealed || st.Sealed {
		return st, err
	}
	if err := s.afterUnseal(ctx); err != nil {
		s.sealLocked()
		return s.barrier.Status(ctx)
	}
	if err := s.checkAuditSinks(ctx); err != nil {
		// An audit sink removed without approval (audit_sinks.go): the
		// operator is told why; other errors stay sealed as above.
		s.sealLocked()
		st, serr := s.barrier.Status(ctx)
		if sinkRefusal(err) {
			return st, err
		}
		s.log.Error("unseal: checking the audit sinks failed; staying sealed", "error", err)
		return st, serr
	}
	s.log.Info("unsealed")
	return st, nil
}

// Seal seals the barrier: every data-plane and token request gets 503.
func (s *Server) Seal(ctx context.Context) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.sealLocked()
	s.log.Info("sealed")
	return nil
}

func (s *Server) sealLocked() {
	s.barrier.Seal()
	if s.auditFile != nil {
		s.auditFile.Checkpoint()
		s.auditFile.SetSigner(nil)
	}
	s.auth.Unload()
	s.vaults.Unload()
}

func (s *Server) afterUnseal(ctx context.Context) error {
	if err := s.auth.Load(ctx); err != nil {
		return err
	}
	if err := s.vaults.Load(ctx); err != nil {
		return err
	}
	if err := s.pools.Load(ctx); err != nil {
		return err
	}
	b, err := s.loadBootstrap(ctx)
	if err != nil {
		return err
	}
	s.mu2.Lock()
	s.operatorTenant = b.TenantID
	s.mu2.Unlock()
	if err := s.auditAfterUnseal(ctx); err != nil {
		return err
	}
	return s.accessAfterUnseal(ctx, b)
}

// OperatorTenant is the tenant whose administrators operate this Keyward
// instance (seal, signing-key rotation): the first tenant, made at init.
// Administrators of other tenants administer only their own tenant.
func (s *Server) OperatorTenant() string {
	s.mu2.Lock()
	defer s.mu2.Unlock()
	return s.operatorTenant
}

// devSANs and devIPs are the names on the dev TLS certificate.
func devSANs(suffix string) []string {
	names := []string{"localhost", "*.vault.localhost", "*.managedhsm.localhost", "management.localhost", "login.localhost"}
	if suffix != "localhost" {
		names = append(names, suffix, "*.vault."+suffix, "*.managedhsm."+suffix, "management."+suffix, "login."+suffix)
	}
	return names
}

func devIPs() []net.IP { return []net.IP{net.IPv4(127, 0, 0, 1), net.IPv6loopback} }

func writeFileAtomic(path string, data []byte, mode os.FileMode) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), "."+filepath.Base(path)+".tmp*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(mode); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Rename(tmp.Name(), path)
}

// DataDir is the server's data directory.
func (s *Server) DataDir() string { return s.cfg.DataDir }
