package server

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/identity"
	"github.com/keyward/keyward/internal/storage"
	"github.com/keyward/keyward/internal/vault"
)

// bootstrapRecord remembers what init created: the first tenant, its
// subscription and administrators.
type bootstrapRecord struct {
	TenantID       string   `json:"tenantId"`
	SubscriptionID string   `json:"subscriptionId"`
	ResourceGroup  string   `json:"resourceGroup"`
	Location       string   `json:"location"`
	Vault          string   `json:"vault"`
	AdminAppID     string   `json:"adminAppId"`
	AdminObjectIDs []string `json:"adminObjectIds"`
}

const (
	bootstrapKey = "sys/bootstrap"
	devCredsKey  = "sys/dev/credentials"
)

// bootstrap creates the first tenant, an administrator service principal
// with a client secret (returned once), and a vault named vaultName.
func (s *Server) bootstrap(ctx context.Context, vaultName string) (*bootstrapRecord, string, error) {
	now := s.clock.Now()
	t, err := s.dir.CreateTenant(ctx, identity.Tenant{DisplayName: "Keyward", Created: now.UTC()})
	if err != nil {
		return nil, "", err
	}
	if err := s.barrier.Tenant(t.ID).EnsureKeyring(ctx, now); err != nil {
		return nil, "", err
	}
	sp, err := s.dir.CreateServicePrincipal(ctx, t.ID, "keyward-admin", now)
	if err != nil {
		return nil, "", err
	}
	secret, err := s.dir.AddClientSecret(ctx, t.ID, sp.AppID, now, nil)
	if err != nil {
		return nil, "", err
	}
	rec := &bootstrapRecord{
		TenantID:       t.ID,
		SubscriptionID: identity.NewID(),
		ResourceGroup:  "keyward",
		Location:       "local",
		Vault:          vaultName,
		AdminAppID:     sp.AppID,
		AdminObjectIDs: []string{sp.ObjectID},
	}
	if s.cfg.Dev {
		rec.ResourceGroup = "keyward-dev"
	}
	if _, err := s.createVaultRBAC(ctx, vault.Vault{
		Name: vaultName, TenantID: t.ID, SubscriptionID: rec.SubscriptionID,
		ResourceGroup: rec.ResourceGroup, Location: rec.Location, SKU: s.bootstrapSKU(),
	}); err != nil {
		return nil, "", err
	}
	if err := putRecord(ctx, s.barrier.System(), bootstrapKey, rec); err != nil {
		return nil, "", err
	}
	// A real assignment, not "allow everything": Key Vault Administrator
	// (and Owner) on the subscription, operator and directory roles at
	// the tenant root (access.go).
	if err := s.grantAdmin(ctx, t.ID, rec.SubscriptionID, sp.ObjectID, true); err != nil {
		return nil, "", err
	}
	return rec, secret, nil
}

// bootstrapSKU is the first vault's SKU: premium when a dev server has an
// HSM (its RSA-HSM/EC-HSM keys need one), else standard.
func (s *Server) bootstrapSKU() string {
	if s.cfg.Dev && s.hsm != nil {
		return "premium"
	}
	return "standard"
}

func (s *Server) loadBootstrap(ctx context.Context) (*bootstrapRecord, error) {
	rec := new(bootstrapRecord)
	err := getRecord(ctx, s.barrier.System(), bootstrapKey, rec)
	if errors.Is(err, storage.ErrNotFound) {
		return rec, nil
	}
	return rec, err
}

func putRecord(ctx context.Context, b *barrier.View, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	defer clear(raw)
	return b.Update(ctx, func(tx barrier.Tx) error { return tx.Put(key, raw) })
}

func getRecord(ctx context.Context, b *barrier.View, key string, v any) error {
	return b.View(ctx, func(tx barrier.Tx) error {
		raw, err := tx.Get(key)
		if err != nil {
			return err
		}
		defer clear(raw)
		return json.Unmarshal(raw, v)
	})
}

// DevInfo is what dev.json holds: everything an official SDK needs to
// connect (DESIGN.md, dev server contract).
type DevInfo struct {
	TenantID           string `json:"tenant_id"`
	AuthorityHost      string `json:"authority_host"`
	ClientID           string `json:"client_id"`
	ClientSecret       string `json:"client_secret"`
	VaultURL           string `json:"vault_url"`
	VaultDNSSuffix     string `json:"vault_dns_suffix"`
	ManagementURL      string `json:"management_url"`
	ManagementResource string `json:"management_resource"`
	SubscriptionID     string `json:"subscription_id"`
	ResourceGroup      string `json:"resource_group"`
	Location           string `json:"location"`
	CAFile             string `json:"ca_file"`
	Listen             string `json:"listen"`

	// Added by the identity and access issue: the dev principal's object
	// ID, and a second principal with no role assignment at all, to try a
	// denial (403 ForbiddenByRbac) with.
	ObjectID                 string `json:"object_id"`
	UnprivilegedClientID     string `json:"unprivileged_client_id"`
	UnprivilegedClientSecret string `json:"unprivileged_client_secret"`
	UnprivilegedObjectID     string `json:"unprivileged_object_id"`

	// KeymgmtAddress is the base URL of the Key Management engine (Vault's
	// keymgmt API): what Vault's clients take as VAULT_ADDR.
	KeymgmtAddress string `json:"keymgmt_address"`
	// Added by the managed HSM issue: the pool "dev" (its security domain
	// and custodian keys are under DATA/managedhsm-dev, dev only).
	ManagedHSMURL       string `json:"managed_hsm_url"`
	ManagedHSMDNSSuffix string `json:"managed_hsm_dns_suffix"`

	// The web console (docs/CONSOLE.md).
	UIURL string `json:"ui_url"`

	// The dev server's own SoftHSM2 token (DESIGN.md dev server
	// contract), so tests can inspect the token; absent without SoftHSM2.
	HSM *DevHSM `json:"hsm,omitempty"`
	// The dev server's attestation authority, for secure key release
	// (release.go; `keyward attestation-token` mints tokens with it).
	Attestation *DevAttestation `json:"attestation,omitempty"`
}

// DevHSM locates the dev server's SoftHSM2 token.
type DevHSM struct {
	Module       string `json:"module"`
	SoftHSM2Conf string `json:"softhsm2_conf"`
	TokenLabel   string `json:"token_label"`
	UserPIN      string `json:"user_pin"`
}

type devCreds struct {
	ClientSecret string `json:"clientSecret"`
	// The unprivileged principal (devunprivileged.go).
	UnprivilegedClientID     string `json:"unprivilegedClientId,omitempty"`
	UnprivilegedObjectID     string `json:"unprivilegedObjectId,omitempty"`
	UnprivilegedClientSecret string `json:"unprivilegedClientSecret,omitempty"`
}

// devStart initializes (first run) or unseals (later runs) a dev server
// and writes dev.json. The dev unseal key is kept in the data directory:
// dev mode protects nothing from someone who can read that directory.
func (s *Server) devStart(ctx context.Context) error {
	keyFile := filepath.Join(s.cfg.DataDir, "dev-unseal.key")
	st, err := s.barrier.Status(ctx)
	if err != nil {
		return err
	}
	vaultName := s.cfg.DevVault
	if vaultName == "" {
		vaultName = "dev"
	}
	if !st.Initialized {
		shares, err := s.barrier.Initialize(ctx, barrier.SealConfig{Type: "dev", Shares: 1, Threshold: 1}, s.clock.Now())
		if err != nil {
			return err
		}
		if err := writeFileAtomic(keyFile, []byte(base64.StdEncoding.EncodeToString(shares[0])+"\n"), 0o600); err != nil {
			return err
		}
		if _, err := s.barrier.Unseal(ctx, shares[0]); err != nil {
			return err
		}
		_, secret, err := s.bootstrap(ctx, vaultName)
		if err != nil {
			return err
		}
		if err := putRecord(ctx, s.barrier.System(), devCredsKey, &devCreds{ClientSecret: secret}); err != nil {
			return err
		}
	} else {
		raw, err := os.ReadFile(keyFile)
		if err != nil {
			return fmt.Errorf("dev mode: reading the unseal key: %w (was this data directory made by a dev server?)", err)
		}
		share, err := base64.StdEncoding.DecodeString(strings.TrimSpace(string(raw)))
		if err != nil {
			return fmt.Errorf("dev mode: %s is damaged", keyFile)
		}
		if _, err := s.barrier.Unseal(ctx, share); err != nil {
			return fmt.Errorf("dev mode: unseal: %w", err)
		}
	}
	if err := s.afterUnseal(ctx); err != nil {
		return err
	}
	b, err := s.loadBootstrap(ctx)
	if err != nil {
		return err
	}
	var creds devCreds
	if err := s.ensureUnprivileged(ctx, b, &creds); err != nil {
		return fmt.Errorf("dev mode: unprivileged principal: %w", err)
	}
	if err := getRecord(ctx, s.barrier.System(), devCredsKey, &creds); err != nil {
		return fmt.Errorf("dev mode: reading dev credentials: %w", err)
	}
	if err := s.devPool(ctx, b); err != nil { // mhsm.go
		return fmt.Errorf("dev mode: managed HSM pool: %w", err)
	}
	caFile, _ := filepath.Abs(s.caFile)
	s.devInfo = &DevInfo{
		ManagedHSMURL:       s.PoolURL("dev"),
		ManagedHSMDNSSuffix: "managedhsm." + s.cfg.DNSSuffix,
		TenantID:            b.TenantID,
		AuthorityHost:       s.apiCfg.AuthorityURL,
		ClientID:            b.AdminAppID,
		ClientSecret:        creds.ClientSecret,
		VaultURL:            s.VaultURL(b.Vault),
		VaultDNSSuffix:      "vault." + s.cfg.DNSSuffix,
		ManagementURL:       s.apiCfg.ManagementResource(),
		ManagementResource:  s.apiCfg.ManagementResource(),
		SubscriptionID:      b.SubscriptionID,
		ResourceGroup:       b.ResourceGroup,
		Location:            b.Location,
		CAFile:              caFile,
		Listen:              s.listener.Addr().String(),

		ObjectID:                 firstAdmin(b),
		UnprivilegedClientID:     creds.UnprivilegedClientID,
		UnprivilegedClientSecret: creds.UnprivilegedClientSecret,
		UnprivilegedObjectID:     creds.UnprivilegedObjectID,
		KeymgmtAddress:           s.KeymgmtAddress(),
		UIURL:                    s.UIURL(),
	}
	if t := s.devToken; t != nil && s.hsm != nil {
		s.devInfo.HSM = &DevHSM{Module: t.Module, SoftHSM2Conf: t.Conf, TokenLabel: t.Label, UserPIN: t.UserPIN}
	}
	s.devInfo.Attestation = s.devAttestation
	raw, err := json.MarshalIndent(s.devInfo, "", "  ")
	if err != nil {
		return err
	}
	if err := writeFileAtomic(filepath.Join(s.cfg.DataDir, "dev.json"), append(raw, '\n'), 0o600); err != nil {
		return err
	}
	// Last, before anything is served: an audit sink removed without
	// approval leaves the dev server sealed (audit_sinks.go), its
	// connection details known.
	if err := s.checkAuditSinks(ctx); err != nil {
		s.sealLocked()
		if !sinkRefusal(err) {
			return err
		}
	}
	return nil
}
