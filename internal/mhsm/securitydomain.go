package mhsm

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"errors"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/securitydomain"
	"github.com/keyward/keyward/internal/storage"
)

// A pool's security domain: the domain secret (which encrypts its full
// backups, backup.go) leaves the pool only inside a security domain
// document, split among custodians (download), and enters a new pool only
// wrapped to that pool's transfer key (upload). Downloading activates a new
// pool; uploading activates a pool made for recovery.

const (
	sdSecretKey   = "mhsm/sd/secret"
	sdTransferKey = "mhsm/sd/transfer"
)

func (s *Service) activate(ctx context.Context, p *Pool, secret []byte) error {
	err := s.view(p).Update(ctx, func(tx barrier.Tx) error {
		if _, err := tx.Get(sdSecretKey); err == nil {
			return fail(errs.Conflict, "SecurityDomainAlreadyActivated", "The managed HSM is already activated.")
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if err := tx.Put(sdSecretKey, secret); err != nil {
			return err
		}
		return tx.Delete(sdTransferKey)
	})
	if err != nil {
		return err
	}
	_, err = s.Update(ctx, p.Name, func(q *Pool) error {
		q.Status, q.StatusMessage = Active, ""
		return nil
	})
	return err
}

// DownloadSecurityDomain activates a new pool: it makes the pool's domain
// secret and returns it as a security domain for custodians (3 to 10),
// required of whom recover it.
func (s *Service) DownloadSecurityDomain(ctx context.Context, p *Pool, custodians []securitydomain.Custodian, required int) (*securitydomain.Document, error) {
	if p.Active() {
		return nil, fail(errs.Conflict, "SecurityDomainAlreadyActivated", "The managed HSM is already activated; its security domain was downloaded before.")
	}
	if n := len(custodians); n < 3 || n > 10 || required < 2 || required > n {
		return nil, fail(errs.BadParameter, "BadParameter", "A security domain needs 3 to 10 certificates and a quorum of 2 to their number.")
	}
	secret := make([]byte, 32)
	rand.Read(secret)
	defer clear(secret)
	doc, err := securitydomain.New(secret, custodians, required)
	if err != nil {
		return nil, err
	}
	if err := s.activate(ctx, p, secret); err != nil {
		return nil, err
	}
	return doc, nil
}

// TransferKey returns the public half of the key an upload is wrapped to
// (made on first call; only a pool that is not activated has one).
func (s *Service) TransferKey(ctx context.Context, p *Pool) (*rsa.PublicKey, error) {
	if p.Active() {
		return nil, fail(errs.Conflict, "SecurityDomainAlreadyActivated", "The managed HSM is already activated.")
	}
	var priv *rsa.PrivateKey
	err := s.view(p).Update(ctx, func(tx barrier.Tx) error {
		raw, err := tx.Get(sdTransferKey)
		if err == nil {
			defer clear(raw)
			k, err := x509.ParsePKCS8PrivateKey(raw)
			if rk, ok := k.(*rsa.PrivateKey); err == nil && ok {
				priv = rk
				return nil
			}
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		if priv, err = rsa.GenerateKey(rand.Reader, 3072); err != nil {
			return err
		}
		der, err := x509.MarshalPKCS8PrivateKey(priv)
		if err != nil {
			return err
		}
		defer clear(der)
		return tx.Put(sdTransferKey, der)
	})
	if err != nil {
		return nil, err
	}
	return &priv.PublicKey, nil
}

// UploadSecurityDomain activates a pool with another pool's domain secret,
// re-wrapped to this pool's transfer key by the custodians.
func (s *Service) UploadSecurityDomain(ctx context.Context, p *Pool, doc *securitydomain.Document) error {
	if p.Active() {
		return fail(errs.Conflict, "SecurityDomainAlreadyActivated", "The managed HSM is already activated.")
	}
	var raw []byte
	err := s.view(p).View(ctx, func(tx barrier.Tx) error {
		var err error
		raw, err = tx.Get(sdTransferKey)
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return fail(errs.BadParameter, "TransferKeyMissing", "Get the transfer key (GET /securitydomain/upload) before uploading a security domain.")
	}
	if err != nil {
		return err
	}
	defer clear(raw)
	k, err := x509.ParsePKCS8PrivateKey(raw)
	priv, ok := k.(*rsa.PrivateKey)
	if err != nil || !ok {
		return errors.New("mhsm: stored transfer key is damaged")
	}
	secret, err := securitydomain.OpenUpload(doc, priv)
	if err != nil {
		return fail(errs.BadParameter, "InvalidSecurityDomain", "The security domain does not open with this managed HSM's transfer key.")
	}
	defer clear(secret)
	return s.activate(ctx, p, secret)
}

// domainSecret is the pool's security domain secret (nil: not activated).
func (s *Service) domainSecret(ctx context.Context, p *Pool) ([]byte, error) {
	var out []byte
	err := s.view(p).View(ctx, func(tx barrier.Tx) error {
		var err error
		out, err = tx.Get(sdSecretKey)
		return err
	})
	if errors.Is(err, storage.ErrNotFound) {
		return nil, fail(errs.Forbidden, "HSMNotActivated", "The managed HSM is not activated.")
	}
	return out, err
}
