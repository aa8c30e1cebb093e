package vault

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/jobs"
)

// Expiry notifications. The latest version of every live object with an
// expiry has two entries in the vault's time index, ordered by when they
// are due:
//
//	x/n/{notifyAt}/{c}/{name}/{version}  near-expiry notification
//	x/e/{exp}/{c}/{name}/{version}       expired notification
//
// and x/i/{c}/{name} lists them so they can be replaced when the latest
// version or its expiry changes. The scheduler reads only the due part.

// The due queues (internal/jobs) of expiry notifications.
const (
	nearExpiryQueue = "x/n/"
	expiredQueue    = "x/e/"
)

type expiryIndex struct {
	Keys []string `json:"keys"`
}

// DefaultNotifyLead is when near-expiry events fire for secrets (and keys
// without a policy): 30 days before expiry, as Azure does.
var DefaultNotifyLead = Duration{Days: 30}

func (o objects) indexRecord(name string) string {
	return "x/i/" + o.t.coll() + "/" + strings.ToLower(name)
}

// notifyLead is how long before expiry the near-expiry event fires; ok is
// false when a key's rotation policy has no Notify action.
func (o objects) notifyLead(tx barrier.Tx, name string) (Duration, bool, error) {
	if o.lead != nil {
		return o.lead(tx, name)
	}
	if o.t != Keys {
		return DefaultNotifyLead, true, nil
	}
	pol := new(RotationPolicy)
	found, err := barrier.GetJSON(tx, o.policyKey(name), pol)
	if err != nil {
		return Duration{}, false, err
	}
	if !found {
		pol = DefaultRotationPolicy()
	}
	for _, a := range pol.LifetimeActions {
		if a.Type == "Notify" && a.TimeBeforeExpiry != "" {
			d, err := ParseDuration(a.TimeBeforeExpiry)
			return d, err == nil, nil
		}
	}
	return Duration{}, false, nil
}

// reindex replaces the time-index entries of name by those of version.
func (o objects) reindex(tx barrier.Tx, name, version string, exp *int64) error {
	if err := o.unindex(tx, name); err != nil {
		return err
	}
	if exp == nil {
		return nil
	}
	lname := strings.ToLower(name)
	rest := o.t.coll() + "/" + lname + "/" + version
	idx := expiryIndex{Keys: []string{jobs.DueKey(expiredQueue, *exp, rest)}}
	lead, ok, err := o.notifyLead(tx, name)
	if err != nil {
		return err
	}
	if ok {
		at := lead.SubFrom(time.Unix(*exp, 0)).Unix()
		idx.Keys = append(idx.Keys, jobs.DueKey(nearExpiryQueue, at, rest))
	}
	for _, k := range idx.Keys {
		if err := tx.Put(k, nil); err != nil {
			return err
		}
	}
	return barrier.PutJSON(tx, o.indexRecord(name), &idx)
}

// reindexLatest indexes the latest version of a live object.
func (o objects) reindexLatest(tx barrier.Tx, rec *nameRecord) error {
	var ver struct {
		Attributes Attributes `json:"attributes"`
	}
	if _, err := barrier.GetJSON(tx, o.versionKey(rec.Name, rec.Latest), &ver); err != nil {
		return err
	}
	return o.reindex(tx, rec.Name, rec.Latest, ver.Attributes.Expires)
}

func (o objects) unindex(tx barrier.Tx, name string) error {
	var idx expiryIndex
	ok, err := barrier.GetJSON(tx, o.indexRecord(name), &idx)
	if err != nil || !ok {
		return err
	}
	view := o.s.in(o.v)
	for _, k := range idx.Keys {
		if err := tx.Delete(view.KeyOf(k)); err != nil { // records before views held storage keys
			return err
		}
	}
	return tx.Delete(o.indexRecord(name))
}

// RunDue performs every background job that is due: purge after
// retention, key rotation by policy, then more (certificate lifetime
// actions: certificates.Service.RunDue) and expiry notifications. It is
// idempotent: running it twice for the same moment does nothing twice.
func (s *Service) RunDue(ctx context.Context, more ...func(context.Context) error) error {
	if _, err := s.PurgeDue(ctx); err != nil {
		return err
	}
	if _, err := s.RotateDue(ctx); err != nil {
		return err
	}
	var errs []error
	for _, f := range more {
		errs = append(errs, f(ctx))
	}
	_, err := s.NotifyDue(ctx)
	return errors.Join(append([]error{err}, errs...)...)
}

// NotifyDue queues near-expiry and expired events whose time has come.
func (s *Service) NotifyDue(ctx context.Context) (int, error) {
	now := s.clock.Now().Unix()
	n := 0
	for _, v := range s.Vaults() {
		for _, q := range []struct{ prefix, what string }{{nearExpiryQueue, "NearExpiry"}, {expiredQueue, "Expired"}} {
			prefix := q.prefix
			var due []jobs.Entry
			err := s.in(v).View(ctx, func(tx barrier.Tx) (err error) {
				due, err = jobs.DueKeys(tx, prefix, now, 100)
				return err
			})
			if err != nil {
				return n, err
			}
			for _, e := range due {
				key := e.Key
				parts := strings.Split(e.Rest, "/") // {c}/{name}/{version}
				if len(parts) != 3 {
					continue
				}
				t := collType(parts[0])
				if t == "" {
					continue
				}
				o := s.objs(v, t)
				what := q.what
				err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
					if _, err := tx.Get(key); err != nil {
						return nil // handled by a concurrent run
					}
					if err := tx.Delete(key); err != nil {
						return err
					}
					rec, err := o.live(tx, parts[1])
					if err != nil {
						return nil // deleted meanwhile: nothing to announce
					}
					var ver struct {
						Attributes Attributes `json:"attributes"`
					}
					if _, err := barrier.GetJSON(tx, o.versionKey(parts[1], parts[2]), &ver); err != nil {
						return err
					}
					return s.emit(tx, v, eventType(t, what), t, rec.Name, parts[2], &ver.Attributes)
				})
				if err != nil {
					return n, err
				}
				n++
			}
		}
	}
	return n, nil
}

// RotateDue rotates every key whose rotation policy says it is time.
func (s *Service) RotateDue(ctx context.Context) (int, error) {
	now := s.clock.Now()
	n := 0
	for _, v := range s.Vaults() {
		o := s.objs(v, Keys)
		prefix := o.base() + "/p/"
		type item struct {
			name string
			pol  RotationPolicy
		}
		var items []item
		err := s.in(v).View(ctx, func(tx barrier.Tx) error {
			var inner error
			err := tx.Scan(prefix, "", func(key string, val []byte) bool {
				var it item
				it.name = strings.TrimPrefix(key, prefix)
				if inner = json.Unmarshal(val, &it.pol); inner != nil {
					return false
				}
				items = append(items, it)
				return true
			})
			if err == nil {
				err = inner
			}
			return err
		})
		if err != nil {
			return n, err
		}
		for _, it := range items {
			var rotate *LifetimeAction
			for i, a := range it.pol.LifetimeActions {
				if a.Type == "Rotate" {
					rotate = &it.pol.LifetimeActions[i]
				}
			}
			if rotate == nil {
				continue
			}
			k, err := s.GetKey(ctx, v, it.name, "")
			if KindOf(err) == NotFound {
				continue // soft-deleted
			}
			if err != nil {
				return n, err
			}
			var due time.Time
			if rotate.TimeAfterCreate != "" {
				d, err := ParseDuration(rotate.TimeAfterCreate)
				if err != nil {
					continue
				}
				due = d.AddTo(time.Unix(k.Attributes.Created, 0))
			} else {
				if k.Attributes.Expires == nil {
					continue
				}
				d, err := ParseDuration(rotate.TimeBeforeExpiry)
				if err != nil {
					continue
				}
				due = d.SubFrom(time.Unix(*k.Attributes.Expires, 0))
			}
			if now.Before(due) {
				continue
			}
			if _, err := s.rotateKey(ctx, v, it.name, true); errors.Is(err, errAlreadyRotated) {
				continue // another node rotated it first
			} else if err != nil {
				return n, fmt.Errorf("rotating key %s: %w", it.name, err)
			}
			n++
		}
	}
	return n, nil
}
