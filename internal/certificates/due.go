package certificates

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"github.com/keyward/keyward/internal/vault"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/jobs"
)

// Certificate lifetime actions. The latest version of every live
// certificate has one entry per action of its policy in the vault's
// action index, ordered by when it is due:
//
//	cx/{due}/{name}/{version}/{renew|mail}
//
// and cxi/{name} lists them so they can be replaced when the latest
// version or the policy changes. RunDue claims due entries:
//
//   - AutoRenew creates a new version through the same issuer (a new key
//     unless reuse_key), which raises CertificateNewVersionCreated;
//   - EmailContacts raises CertificateNearExpiry (instead of the default
//     one 30 days before expiry) and queues a mail to the vault's contacts
//     in an outbox (mail/{due}/{id}), written in the same transaction and
//     sent with retries.
//
// CertificateExpired comes from the generic expiry index.

// Mail is one message to certificate contacts.
type Mail struct {
	To      []string  `json:"to"`
	Subject string    `json:"subject"`
	Body    string    `json:"body"`
	Date    time.Time `json:"date"`
}

// Mailer sends mail (internal/mail speaks SMTP). An error means "retry".
type Mailer interface {
	Send(ctx context.Context, m *Mail) error
}

type actionIndex struct {
	Keys []string `json:"keys"`
}

func actionPrefix() string            { return "cx/" }
func actionRecord(name string) string { return "cxi/" + strings.ToLower(name) }
func mailPrefix() string              { return "mail/" }
func actionDue(nbf, exp int64, a CertificateLifetimeAction) int64 {
	if a.LifetimePercentage != nil {
		return nbf + (exp-nbf)*int64(*a.LifetimePercentage)/100
	}
	return exp - int64(*a.DaysBeforeExpiry)*86400
}

// indexCertActions replaces the action entries of name by those of
// version under pol.
func (s *Service) indexCertActions(tx barrier.Tx, v *vault.Vault, name, version string, a *vault.Attributes, pol *CertificatePolicy) error {
	if err := s.unindexCertActions(tx, v, name); err != nil {
		return err
	}
	if a.NotBefore == nil || a.Expires == nil || pol == nil {
		return nil
	}
	var idx actionIndex
	for _, act := range pol.LifetimeActions {
		if (act.LifetimePercentage == nil) == (act.DaysBeforeExpiry == nil) {
			continue
		}
		kind := "mail"
		if strings.EqualFold(act.Action, ActionAutoRenew) {
			kind = "renew"
		}
		due := max(actionDue(*a.NotBefore, *a.Expires, act), 0)
		key := jobs.DueKey(actionPrefix(), due, strings.ToLower(name)+"/"+version+"/"+kind)
		if err := tx.Put(key, nil); err != nil {
			return err
		}
		idx.Keys = append(idx.Keys, key)
	}
	if len(idx.Keys) == 0 {
		return nil
	}
	return vault.PutJSON(tx, actionRecord(name), &idx)
}

func (s *Service) unindexCertActions(tx barrier.Tx, v *vault.Vault, name string) error {
	var idx actionIndex
	ok, err := vault.GetJSON(tx, actionRecord(name), &idx)
	if err != nil || !ok {
		return err
	}
	view := s.in(v)
	for _, k := range idx.Keys {
		if err := tx.Delete(view.KeyOf(k)); err != nil { // records before views held storage keys
			return err
		}
	}
	return tx.Delete(actionRecord(name))
}

// certNotifyLead is notifyLead for certificates: a policy with an
// EmailContacts action announces near expiry at that action's time
// instead of the default 30 days before expiry.
func certNotifyLead(tx barrier.Tx, o vault.Objects, name string) (vault.Duration, bool, error) {
	pol, err := getPolicy(tx, o, name)
	if err != nil {
		return vault.Duration{}, false, err
	}
	if pol != nil && pol.hasAction(ActionEmailContacts) {
		return vault.Duration{}, false, nil
	}
	return vault.DefaultNotifyLead, true, nil
}

// CertificatesDue performs due certificate lifetime actions, resumes
// interrupted ACME orders and sends queued mail. It returns how many
// actions it performed.
func (s *Service) CertificatesDue(ctx context.Context) (int, error) {
	now := s.clock.Now().Unix()
	n := 0
	var errs []error
	for _, v := range s.Vaults() {
		var due []jobs.Entry
		err := s.in(v).View(ctx, func(tx barrier.Tx) (err error) {
			due, err = jobs.DueKeys(tx, actionPrefix(), now, 100)
			return err
		})
		if err != nil {
			return n, err
		}
		for _, e := range due {
			did, err := s.certAction(ctx, v, e)
			if did {
				n++
			}
			if err != nil {
				errs = append(errs, fmt.Errorf("vault %s: %w", v.Name, err))
			}
		}
	}
	if err := s.resumeExternal(ctx); err != nil {
		errs = append(errs, err)
	}
	if err := s.deliverMail(ctx); err != nil {
		errs = append(errs, err)
	}
	return n, errors.Join(errs...)
}

// certAction claims and performs one due action entry.
func (s *Service) certAction(ctx context.Context, v *vault.Vault, e jobs.Entry) (bool, error) {
	key := e.Key
	parts := strings.Split(e.Rest, "/") // {name}/{version}/{kind}
	if len(parts) != 3 {
		return false, nil
	}
	lname, version, kind := parts[0], parts[1], parts[2]
	c := s.objs(v, vault.Certificates)
	var renew *Certificate
	claimed := false
	err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
		if _, err := tx.Get(key); err != nil {
			return nil // claimed by a concurrent run
		}
		if err := tx.Delete(key); err != nil {
			return err
		}
		claimed = true
		rec, ver, err := vault.GetVersion[certPayload](tx, c, lname, "")
		if err != nil || rec.Latest != version {
			return nil // deleted or superseded meanwhile
		}
		pol, err := getPolicy(tx, c, lname)
		if err != nil || pol == nil {
			return err
		}
		switch kind {
		case "renew":
			renew = certFrom(rec, ver)
			renew.Policy = pol
			return nil
		case "mail":
			if err := c.Emit(tx, "NearExpiry", rec.Name, version, &ver.Attributes); err != nil {
				return err
			}
			return s.queueExpiryMail(tx, v, rec.Name, version, &ver.Attributes)
		}
		return nil
	})
	if err != nil || renew == nil {
		return claimed && err == nil, err
	}
	_, err = s.startIssuance(ctx, v, renew.Name, renew.Policy, false, renew.Version, renew.PreserveCertOrder, nil, renew.Tags)
	if err != nil {
		// Try again in an hour (a disabled CA key, an unreachable issuer).
		retry := jobs.DueKey(actionPrefix(), s.clock.Now().Add(time.Hour).Unix(), lname+"/"+version+"/"+kind)
		_ = s.in(v).Update(context.WithoutCancel(ctx), func(tx barrier.Tx) error {
			if err := tx.Put(retry, nil); err != nil {
				return err
			}
			var idx actionIndex
			vault.GetJSON(tx, actionRecord(lname), &idx)
			idx.Keys = append(idx.Keys, retry)
			return vault.PutJSON(tx, actionRecord(lname), &idx)
		})
		return true, fmt.Errorf("renewing certificate %s: %w", renew.Name, err)
	}
	return true, nil
}

// mailRecord is a queued mail.
type mailRecord struct {
	Mail     Mail   `json:"mail"`
	Attempts int    `json:"attempts"`
	LastErr  string `json:"lastError,omitempty"`
}

var mailRetry = []time.Duration{time.Minute, 5 * time.Minute, 15 * time.Minute, time.Hour, 4 * time.Hour}

func (s *Service) queueExpiryMail(tx barrier.Tx, v *vault.Vault, name, version string, a *vault.Attributes) error {
	if s.certs.mailer == nil {
		return nil
	}
	var contacts []CertificateContact
	if _, err := vault.GetJSON(tx, contactsKey(), &contacts); err != nil {
		return err
	}
	var to []string
	for _, c := range contacts {
		if c.Email != "" {
			to = append(to, c.Email)
		}
	}
	if len(to) == 0 {
		return nil
	}
	now := s.clock.Now()
	exp := "(no expiry)"
	left := ""
	if a.Expires != nil {
		t := time.Unix(*a.Expires, 0).UTC()
		exp = t.Format(time.RFC1123)
		left = fmt.Sprintf(" (in %d days)", int(t.Sub(now).Hours()/24))
	}
	m := Mail{To: to, Date: now,
		Subject: fmt.Sprintf("Certificate %s in vault %s expires %s", name, v.Name, exp),
		Body: fmt.Sprintf("The certificate %s (version %s) in key vault %s expires on %s%s.\r\n\r\n"+
			"Its certificate policy asks Keyward to e-mail the vault's certificate contacts at this point of its lifetime. "+
			"Renew it before it expires: create a new version, or merge a renewed certificate.\r\n\r\n"+
			"Certificate: %s\r\n", name, version, v.Name, exp, left, s.vaults.ObjectURL(v, vault.Certificates, name, version)),
	}
	return vault.PutJSON(tx, jobs.DueKey(mailPrefix(), now.Unix(), uuid.NewString()), &mailRecord{Mail: m})
}

// deliverMail sends queued mail that is due; failures are retried on the
// mailRetry schedule, then dropped.
func (s *Service) deliverMail(ctx context.Context) error {
	if s.certs.mailer == nil {
		return nil
	}
	now := s.clock.Now()
	var errs []error
	for _, v := range s.Vaults() {
		prefix := mailPrefix()
		type item struct {
			key string
			rec mailRecord
		}
		var due []item
		err := s.in(v).View(ctx, func(tx barrier.Tx) error {
			entries, err := jobs.DueEntries(tx, prefix, now.Unix(), 20)
			for _, e := range entries {
				it := item{key: e.Key}
				if err := json.Unmarshal(e.Value, &it.rec); err != nil {
					return err
				}
				due = append(due, it)
			}
			return err
		})
		if err != nil {
			return err
		}
		for _, it := range due {
			sendErr := s.certs.mailer.Send(ctx, &it.rec.Mail)
			err := s.in(v).Update(context.WithoutCancel(ctx), func(tx barrier.Tx) error {
				if err := tx.Delete(it.key); err != nil || sendErr == nil {
					return err
				}
				it.rec.Attempts++
				it.rec.LastErr = sendErr.Error()
				if it.rec.Attempts > len(mailRetry) {
					return nil
				}
				next := now.Add(mailRetry[it.rec.Attempts-1]).Unix()
				return vault.PutJSON(tx, jobs.DueKey(prefix, next, uuid.NewString()), &it.rec)
			})
			if err != nil {
				return err
			}
			if sendErr != nil {
				errs = append(errs, fmt.Errorf("mail to certificate contacts of vault %s: %w", v.Name, sendErr))
			}
		}
	}
	return errors.Join(errs...)
}
