// Package kwtest starts real Keyward servers for tests: dev mode, a real
// TLS listener on 127.0.0.1:0, and clients configured the way a user of
// the official Azure SDK configures them (IDENTITY.md §1): the authority
// host, DisableInstanceDiscovery, and a transport that trusts the dev CA and
// dials every *.localhost name to the listener. Nothing else is changed;
// in particular DisableChallengeResourceVerification stays off.
package kwtest

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"testing"
	"time"

	"github.com/Azure/azure-sdk-for-go/sdk/azcore"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/cloud"
	"github.com/Azure/azure-sdk-for-go/sdk/azcore/policy"
	"github.com/Azure/azure-sdk-for-go/sdk/azidentity"
	"github.com/keyward/keyward/internal/audit"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/hsm/hsmtest"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/server"
	"github.com/keyward/keyward/internal/storage"
)

// Options tune Start.
type Options struct {
	DataDir string // empty: a new t.TempDir()
	Clock   clock.Clock
	// Backend is "bolt" (default), "mem" or "postgres" (with DSN).
	Backend           string
	DSN               string
	SchedulerInterval time.Duration
	// EventRoots are trusted for webhook endpoints (an httptest TLS server's).
	EventRoots *x509.CertPool
	// SMTP and ACME configure certificate mail and ACME issuers.
	SMTP *server.SMTPConfig
	ACME server.ACMEConfig
	// TLS restricts the listener's versions and suites; zero: the defaults.
	TLS server.TLSConfig
	// WrapAuditSink and WrapStorage put a layer under the server's audit
	// sink and storage backend (e.g. one that fails like a full disk).
	WrapAuditSink func(audit.Sink) audit.Sink
	WrapStorage   func(storage.Backend) storage.Backend
	// TokenLimits of the token endpoint; nil: the defaults.
	TokenLimits *identity.TokenLimits
	// AuditPath is the audit log file; empty: DataDir/audit.log.
	AuditPath string
	// Audit configures the audit file's chain and further sinks.
	Audit server.AuditConfig
	// Alerts configures alert rules and destinations.
	Alerts server.AlertsConfig
	// Backup says where managed HSM backup containers may be; zero: the
	// dev server's default (any public host, and loopback).
	Backup server.BackupConfig
	// Events says where event webhook endpoints may be; zero: the dev
	// server's default.
	Events server.BackupConfig
	// Federation says where federated credentials' issuers may be fetched
	// from; zero: the dev server's default. IssuerRoots are trusted for
	// them (an httptest TLS server's).
	Federation  server.BackupConfig
	IssuerRoots *x509.CertPool
	// QuorumRetention is [quorum] retention; zero: quorum.Retention.
	QuorumRetention time.Duration
	// HSM gives the dev server its own SoftHSM2 token (a real one, in the
	// test binary's SoftHSM2 directory) and a premium vault; the test is
	// skipped locally, and fails in CI, without SoftHSM2.
	HSM bool
}

// Env is a running dev server and clients for it.
type Env struct {
	T       testing.TB
	Server  *server.Server
	Info    *server.DevInfo
	DataDir string
	// HTTP trusts the dev CA and dials any host to the listener.
	HTTP *http.Client
}

// Start starts a dev server and stops it when the test ends.
func Start(t testing.TB, opts Options) *Env {
	t.Helper()
	dir := opts.DataDir
	if dir == "" {
		dir = t.TempDir()
	}
	logOut := io.Discard
	if os.Getenv("KEYWARD_TEST_LOG") != "" {
		logOut = os.Stderr
	}
	s, err := server.Start(context.Background(), server.Config{
		Dev:               true,
		Listen:            "127.0.0.1:0",
		DataDir:           dir,
		DNSSuffix:         "localhost",
		Clock:             opts.Clock,
		Storage:           server.StorageConfig{Backend: opts.Backend, DSN: opts.DSN},
		SchedulerInterval: opts.SchedulerInterval,
		EventRoots:        opts.EventRoots,
		SMTP:              opts.SMTP,
		ACME:              opts.ACME,
		Backup:            opts.Backup,
		Events:            opts.Events,
		Federation:        opts.Federation,
		QuorumRetention:   opts.QuorumRetention,
		IssuerRoots:       opts.IssuerRoots,
		TLS:               opts.TLS,
		TokenLimits:       opts.TokenLimits,
		AuditPath:         opts.AuditPath,
		Audit:             opts.Audit,
		Alerts:            opts.Alerts,
		DevHSMModule:      devHSM(t, opts.HSM),
		Log:               slog.New(slog.NewTextHandler(logOut, nil)),

		TestOnlyWrapAuditSink: opts.WrapAuditSink,
		TestOnlyWrapStorage:   opts.WrapStorage,
	})
	if err != nil {
		t.Fatalf("starting keyward: %v", err)
	}
	t.Cleanup(func() { s.Close() })
	e := &Env{T: t, Server: s, Info: s.Dev(), DataDir: dir}
	e.HTTP = HTTPClient(t, s.CAFile(), s.Addr())
	return e
}

func devHSM(t testing.TB, on bool) string {
	if !on {
		return ""
	}
	m := hsmtest.Module(t)
	hsmtest.Dir(t) // one SoftHSM2 directory for the whole test binary
	return m
}

// HTTPClient trusts the CA in caFile and connects every request to addr,
// whatever host the URL names: what /etc/hosts would do for *.localhost.
func HTTPClient(t testing.TB, caFile, addr string) *http.Client {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(pem) {
		t.Fatal("no CA certificate in", caFile)
	}
	dialer := &net.Dialer{Timeout: 5 * time.Second}
	return &http.Client{Transport: &http.Transport{
		TLSClientConfig:     &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12},
		ForceAttemptHTTP2:   true,
		MaxIdleConnsPerHost: 64,
		DialContext: func(ctx context.Context, network, _ string) (net.Conn, error) {
			return dialer.DialContext(ctx, network, addr)
		},
	}}
}

// ClientOptions are the azcore options every SDK client in tests uses.
func (e *Env) ClientOptions() azcore.ClientOptions {
	return azcore.ClientOptions{
		Transport: e.HTTP,
		Retry:     policy.RetryOptions{MaxRetries: -1},
	}
}

// Credential is a ClientSecretCredential for the dev service principal.
func (e *Env) Credential() azcore.TokenCredential {
	return e.CredentialFor(e.Info.TenantID, e.Info.ClientID, e.Info.ClientSecret)
}

// CredentialFor is a ClientSecretCredential for any principal.
func (e *Env) CredentialFor(tenant, clientID, secret string) azcore.TokenCredential {
	e.T.Helper()
	cred, err := azidentity.NewClientSecretCredential(tenant, clientID, secret, &azidentity.ClientSecretCredentialOptions{
		ClientOptions: azcore.ClientOptions{
			Cloud:     cloud.Configuration{ActiveDirectoryAuthorityHost: e.Info.AuthorityHost},
			Transport: e.HTTP,
		},
		DisableInstanceDiscovery: true,
	})
	if err != nil {
		e.T.Fatal(err)
	}
	return cred
}
