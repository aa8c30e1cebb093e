package server

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"path/filepath"
	"time"

	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/authz"
	"github.com/keyward/keyward/internal/backupstore"
	"github.com/keyward/keyward/internal/keys"
	"github.com/keyward/keyward/internal/mhsm"
	"github.com/keyward/keyward/internal/netguard"
	"github.com/keyward/keyward/internal/securitydomain"
)

// Managed HSM pools: wiring, and the dev server's pool "dev".

// initPools builds the pool service; pool keys use poolProtector (an HSM
// when one is configured, the software protector otherwise).
func (s *Server) initPools(poolProtector keys.Protector) error {
	if poolProtector != nil {
		s.vaults.SetPoolProtector(poolProtector)
	}
	s.pools = mhsm.New(s.barrier, s.vaults, s.clock)
	// Backup containers: [backup] allowed_hosts; the dev server may also
	// reach loopback (a local azurite), never a private network.
	guard, err := netguard.New(s.cfg.Backup.AllowedHosts, s.cfg.Dev)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	s.pools.SetBackupOpener(backupstore.Opener(backupstore.Options{LocalRoot: filepath.Join(s.cfg.DataDir, "backups"), Guard: guard}))
	s.pools.SetLogger(s.log.Error)
	s.access.mgmt.SetPools(s.pools, s.PoolURL)
	return nil
}

// Pools is the managed HSM pool service (for tests and the CLI).
func (s *Server) Pools() *mhsm.Service { return s.pools }

// PoolURL is a pool's data-plane URL: https://{name}.managedhsm.{suffix}[:port]/.
func (s *Server) PoolURL(name string) string {
	host := name + ".managedhsm." + s.cfg.DNSSuffix
	if s.apiCfg.PublicPort != "443" {
		host += ":" + s.apiCfg.PublicPort
	}
	return "https://" + host + "/"
}

// devPoolDir holds the dev pool's security domain and its custodians'
// private keys: dev only, so that a restore can be tried.
const devPoolDir = "managedhsm-dev"

// devPool creates and activates the pool "dev", administered by the dev
// principal, who also holds Crypto Officer and Crypto User there.
func (s *Server) devPool(ctx context.Context, b *bootstrapRecord) error {
	p, err := s.pools.Get("dev")
	if err != nil {
		p, err = s.pools.Create(ctx, mhsm.Pool{Name: "dev", TenantID: b.TenantID, SubscriptionID: b.SubscriptionID,
			ResourceGroup: b.ResourceGroup, Location: b.Location, InitialAdmins: []string{firstAdmin(b)}})
		if err != nil {
			return err
		}
		for _, role := range []string{authz.RoleHSMCryptoOfficer, authz.RoleHSMCryptoUser} {
			if _, err := s.pools.PutAssignment(ctx, p, "/", uuid.NewString(), role, firstAdmin(b)); err != nil {
				return err
			}
		}
	}
	if p.Active() {
		return nil
	}
	dir := filepath.Join(s.cfg.DataDir, devPoolDir)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	var cs []securitydomain.Custodian
	for i := 1; i <= 3; i++ {
		c, err := writeCustodian(dir, i)
		if err != nil {
			return err
		}
		cs = append(cs, c)
	}
	doc, err := s.pools.DownloadSecurityDomain(ctx, p, cs, 2)
	if err != nil {
		return err
	}
	raw, err := json.MarshalIndent(doc, "", "  ")
	if err != nil {
		return err
	}
	return writeFileAtomic(filepath.Join(dir, "security-domain.json"), raw, 0o600)
}

// writeCustodian makes a custodian key pair and self-signed certificate:
// custodian-N.key (PKCS #8 PEM) and custodian-N.cer (PEM).
func writeCustodian(dir string, i int) (securitydomain.Custodian, error) {
	k, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return securitydomain.Custodian{}, err
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(int64(i)), Subject: pkix.Name{CommonName: fmt.Sprintf("keyward dev custodian %d", i)},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().AddDate(10, 0, 0), KeyUsage: x509.KeyUsageKeyEncipherment}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &k.PublicKey, k)
	if err != nil {
		return securitydomain.Custodian{}, err
	}
	p8, err := x509.MarshalPKCS8PrivateKey(k)
	if err != nil {
		return securitydomain.Custodian{}, err
	}
	base := filepath.Join(dir, fmt.Sprintf("custodian-%d", i))
	if err := writeFileAtomic(base+".key", pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: p8}), 0o600); err != nil {
		return securitydomain.Custodian{}, err
	}
	if err := writeFileAtomic(base+".cer", pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return securitydomain.Custodian{}, err
	}
	return securitydomain.Custodian{Key: &k.PublicKey, X5t256: securitydomain.Thumbprint(der)}, nil
}
