// Package certificates is Keyward's certificates (AZURE-API.md §1.4):
// policies, issuance (self-signed, the built-in CA, ACME through an
// ExternalCA, merge of a chain signed outside), import, issuers and
// contacts, lifetime actions (renewal, expiry mail through a Mailer) and
// the secret view of a certificate (GetSecretAs).
//
// A certificate lives in vault's versioned object store (vault.Objects):
// every version is backed by a managed key version and a managed secret
// version of the same name and version, which the store keeps and which
// follow the certificate through delete, recover, purge and backup. Like
// vault, it knows nothing of HTTP: errors are *vault.Error kinds that the
// surfaces word.
package certificates

import (
	"context"
	"strings"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/keys"
	"github.com/keyward/keyward/internal/vault"
)

// Service is the certificates domain service, over the vaults' object
// store.
type Service struct {
	vaults   *vault.Service
	clock    clock.Clock
	software keys.Protector
	certs    *certRuntime // background work (external.go)
}

// Deps are the Service's collaborators outside the domain. Each may be
// left nil.
type Deps struct {
	// ExternalCA obtains certificates for ACME issuers (nil: ACME issuers
	// are refused).
	ExternalCA ExternalCA
	// Mailer sends the mail of EmailContacts lifetime actions (nil: no
	// mail is sent; the events still are).
	Mailer Mailer
}

// New returns the certificates service over the vaults of vaults.
func New(vaults *vault.Service, deps Deps) *Service {
	return &Service{vaults: vaults, clock: vaults.Clock(), software: vaults.SoftwareProtector(),
		certs: newCertRuntime(deps.ExternalCA, deps.Mailer)}
}

// in is the storage view of vault v.
func (s *Service) in(v *vault.Vault) *barrier.View { return s.vaults.In(v) }

// Vaults returns every vault.
func (s *Service) Vaults() []*vault.Vault { return s.vaults.Vaults() }

// objs is the collection of type t in v; certificates announce near
// expiry as their policy says (certNotifyLead).
func (s *Service) objs(v *vault.Vault, t vault.ObjectType) vault.Objects {
	o := s.vaults.Objects(v, t)
	if t == vault.Certificates {
		o = o.WithNotifyLead(func(tx barrier.Tx, name string) (vault.Duration, bool, error) {
			return certNotifyLead(tx, o, name)
		})
	}
	return o
}

// RunDue performs due certificate work (lifetime actions, interrupted
// ACME orders, queued mail); vault.Service.RunDue runs it in its turn.
func (s *Service) RunDue(ctx context.Context) error {
	_, err := s.CertificatesDue(ctx)
	return err
}

// errors: the package's own, worded by the surfaces or (Msg) here.

func badParameter(format string, args ...any) error { return vault.Invalid(format, args...) }

func notFound(t vault.ObjectType, name string) error {
	return &vault.Error{Kind: vault.NotFound, Type: t, Name: name}
}

func clip(s string) string {
	if len(s) > 130 {
		s = s[:130] + "…"
	}
	return s
}

// opKey is where a certificate's pending (or last) operation lives.
func opKey(name string) string { return opPrefix + strings.ToLower(name) }

const opPrefix = "c/o/"
