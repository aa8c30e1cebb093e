package certificates

import (
	"context"
	"crypto"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"errors"
	"github.com/keyward/keyward/internal/vault"
	"strings"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/keys"
)

// ACME issuance. The vault declares what it needs from an ACME client
// (ExternalCA); internal/acme implements it (it speaks HTTP, which this
// package must not). An ACME issuer is an issuer with provider "ACME":
//
//	org_details.id           the ACME directory URL
//	credentials.account_id   the external account binding key ID (optional)
//	credentials.pwd          the EAB HMAC key, base64url (optional)
//	org_details.admin_details[].email   account contacts
//
// The ACME account key is an ordinary key of the vault named
// "{issuer}-acme-account" (EC P-256, created on first use): the account
// lives as long as that key. Orders run in the background; the pending
// operation reports inProgress, then completed or failed. An order that a
// shutdown interrupted is resumed by the scheduler.

// ExternalCA obtains certificates from a CA outside Keyward.
type ExternalCA interface {
	// Validate checks an ACME directory URL when an issuer is set.
	Validate(directoryURL string) error
	// Issue orders a certificate for req.CSR and returns the chain, leaf
	// first, as DER. Errors are shown to users: no secrets in them.
	Issue(ctx context.Context, req *ExternalRequest) ([][]byte, error)
}

// ExternalRequest is one certificate order.
type ExternalRequest struct {
	Vault        string
	Certificate  string
	Issuer       string
	DirectoryURL string
	EABKeyID     string
	EABKey       []byte // HMAC key
	Contacts     []string
	AccountKey   crypto.Signer // an ordinary key of the vault
	CSR          []byte        // DER
	DNSNames     []string
}

// certRuntime is the certificate machinery's process state: the external
// CA and mailer, and the background orders in flight.
type certRuntime struct {
	external ExternalCA
	mailer   Mailer

	stop     chan struct{} // closed by Shutdown
	stopOnce sync.Once
	wg       sync.WaitGroup
	mu       sync.Mutex
	inflight map[string]bool
}

func newCertRuntime(external ExternalCA, mailer Mailer) *certRuntime {
	return &certRuntime{external: external, mailer: mailer, stop: make(chan struct{}), inflight: map[string]bool{}}
}

// stopped reports whether Shutdown has begun.
func (rt *certRuntime) stopped() bool {
	select {
	case <-rt.stop:
		return true
	default:
		return false
	}
}

// Shutdown stops background certificate orders and waits for them. An
// interrupted order stays inProgress and resumes after a restart.
func (s *Service) Shutdown() {
	s.certs.stopOnce.Do(func() { close(s.certs.stop) })
	s.certs.wg.Wait()
}

// startExternal runs the order of operation requestID in the background,
// once. The order outlives the request that started it (ctx gives it its
// values, not its deadline) and ends with Shutdown or after 10 minutes.
func (s *Service) startExternal(ctx context.Context, v *vault.Vault, name, requestID string) {
	rt := s.certs
	id := v.ID + "/" + strings.ToLower(name) + "/" + requestID
	rt.mu.Lock()
	defer rt.mu.Unlock()
	if rt.inflight[id] || rt.stopped() {
		return
	}
	rt.inflight[id] = true
	rt.wg.Add(1)
	go func() {
		defer func() {
			rt.mu.Lock()
			delete(rt.inflight, id)
			rt.mu.Unlock()
			rt.wg.Done()
		}()
		ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Minute)
		defer cancel()
		go func() {
			select {
			case <-rt.stop:
				cancel()
			case <-ctx.Done():
			}
		}()
		s.runExternal(ctx, v, name, requestID)
	}()
}

func (s *Service) runExternal(ctx context.Context, v *vault.Vault, name, requestID string) {
	c := s.objs(v, vault.Certificates)
	var (
		op  *certOpRecord
		rec *issuerRecord
	)
	err := s.in(v).View(ctx, func(tx barrier.Tx) error {
		var err error
		if op, err = getOp(tx, c, name); err != nil || op == nil {
			return err
		}
		if op.Issuer.Name == nil {
			return errors.New("the operation names no issuer")
		}
		rec, err = s.issuer(tx, v, *op.Issuer.Name)
		return err
	})
	if op == nil || op.RequestID != requestID || op.Status != StatusInProgress {
		return
	}
	if err != nil {
		s.failOp(ctx, v, name, requestID, "IssuerNotFound", err.Error())
		return
	}
	chain, err := s.orderExternal(ctx, v, op, rec)
	if s.certs.stopped() {
		return // shutting down: resume later
	}
	if err != nil {
		s.failOp(ctx, v, name, requestID, "CertificateIssuanceFailed", err.Error())
		return
	}
	err = s.in(v).Update(context.WithoutCancel(ctx), func(tx barrier.Tx) error {
		cur, err := getOp(tx, c, name)
		if err != nil {
			return err
		}
		if cur == nil || cur.RequestID != requestID || cur.Status != StatusInProgress || len(cur.Key.Handle) == 0 {
			return nil // cancelled, deleted or replaced meanwhile
		}
		b := &certBundle{chain: chain, leaf: -1}
		pub, err := publicKey(cur.Key.Public)
		if err != nil {
			return err
		}
		for i, x := range chain {
			if samePublic(pub, x.PublicKey) {
				b.leaf = i
			}
		}
		if b.leaf < 0 {
			return certBad("The ACME CA returned a certificate for another key.")
		}
		ordered, leaf := b.ordered(cur.Preserve)
		if err := s.checkNameFree(tx, v, name); err != nil {
			return err
		}
		if _, err := s.completeCert(tx, v, cur, ordered, leaf, nil, nil); err != nil {
			return err
		}
		return vault.PutJSON(tx, opKey(name), cur)
	})
	if err != nil {
		s.failOp(ctx, v, name, requestID, "CertificateIssuanceFailed", err.Error())
	}
}

func (s *Service) orderExternal(ctx context.Context, v *vault.Vault, op *certOpRecord, rec *issuerRecord) ([]*x509.Certificate, error) {
	if !rec.Enabled {
		return nil, errors.New("the issuer is disabled")
	}
	acct := vault.AccountKeyName(rec.Name)
	if err := s.ensureKey(ctx, v, acct, keys.CurveP256); err != nil {
		return nil, err
	}
	signer, _, err := s.keySigner(ctx, v, acct, "")
	if err != nil {
		return nil, err
	}
	req := &ExternalRequest{Vault: v.Name, Certificate: op.Name, Issuer: rec.Name, DirectoryURL: rec.OrgID,
		EABKeyID: rec.AccountID, AccountKey: signer, CSR: op.CSR, DNSNames: op.DNSNames}
	if len(rec.Password) > 0 {
		k, err := base64.RawURLEncoding.DecodeString(strings.TrimRight(string(rec.Password), "="))
		if err != nil {
			return nil, errors.New("the issuer's credentials.pwd (the EAB HMAC key) is not base64url")
		}
		req.EABKey = k
	}
	for _, a := range rec.Admins {
		if a.Email != "" {
			req.Contacts = append(req.Contacts, a.Email)
		}
	}
	ders, err := s.certs.external.Issue(ctx, req)
	if err != nil {
		return nil, err
	}
	var chain []*x509.Certificate
	for _, der := range ders {
		c, err := x509.ParseCertificate(der)
		if err != nil {
			return nil, errors.New("the ACME CA returned a certificate that does not parse")
		}
		chain = append(chain, c)
	}
	if len(chain) == 0 {
		return nil, errors.New("the ACME CA returned no certificate")
	}
	return chain, nil
}

// failOp marks an operation failed (unless it was cancelled or replaced).
func (s *Service) failOp(ctx context.Context, v *vault.Vault, name, requestID, code, msg string) {
	c := s.objs(v, vault.Certificates)
	_ = s.in(v).Update(context.WithoutCancel(ctx), func(tx barrier.Tx) error {
		op, err := getOp(tx, c, name)
		if err != nil || op == nil || op.RequestID != requestID || op.Status != StatusInProgress {
			return err
		}
		op.Status, op.StatusDetails = StatusFailed, "The certificate could not be issued."
		if len(msg) > 1000 {
			msg = msg[:1000] + "…"
		}
		op.Error = &OperationError{Code: code, Message: msg}
		op.Key.Handle = nil
		return vault.PutJSON(tx, opKey(name), op)
	})
}

// resumeExternal restarts ACME orders that are in progress but not running
// (after a restart).
func (s *Service) resumeExternal(ctx context.Context) error {
	if s.certs.external == nil {
		return nil
	}
	for _, v := range s.Vaults() {
		var todo []*certOpRecord
		err := s.in(v).View(ctx, func(tx barrier.Tx) error {
			var inner error
			err := tx.Scan(opPrefix, "", func(_ string, val []byte) bool {
				op := new(certOpRecord)
				if inner = json.Unmarshal(val, op); inner != nil {
					return false
				}
				if op.Status == StatusInProgress && op.Provider == ProviderACME {
					todo = append(todo, op)
				}
				return true
			})
			if err == nil {
				err = inner
			}
			return err
		})
		if err != nil {
			return err
		}
		for _, op := range todo {
			s.startExternal(ctx, v, op.Name, op.RequestID)
		}
	}
	return nil
}
