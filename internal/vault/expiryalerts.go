package vault

import (
	"context"
	"errors"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/jobs"
	"github.com/keyward/keyward/internal/storage"
)

// Near-expiry alerts (the alert rule "near-expiry", internal/alerts). The
// expired queue (x/e/{exp}/{c}/{name}/{version}) holds the latest version
// of every live object with an expiry until it expires, so the objects
// expiring before now+T are a prefix scan of it. An alert is raised once
// per object version and threshold: a marker
//
//	x/a/{exp}/{threshold seconds}/{c}/{name}/{version}
//
// records it in the same store (so a restart or another HA leader does not
// announce it again), and markers whose expiry has passed are removed.
const expiryAlertQueue = "x/a/"

// ExpiringObject is the latest version of a live object that will expire
// within a threshold.
type ExpiringObject struct {
	Vault     string
	Type      ObjectType
	Name      string
	Version   string
	ID        string // the object's URL with version
	Operation string // KeyNearExpiry, SecretNearExpiry or CertificateNearExpiry
	Expires   time.Time
	Threshold time.Duration // the tightest threshold it has crossed
}

// ExpiryAlertsDue calls fire for every live object whose latest version
// expires within one of thresholds from now and was not announced for the
// tightest threshold it has crossed. An object crosses a threshold T when
// it expires after now and no more than T from now; it is announced once
// per version and threshold (objects that cross several at once are
// announced for the tightest only). The key and secret of a certificate are
// not announced: the certificate is. The marker is committed before fire
// is called, so an announcement is made at most once even when fire fails.
// It returns how many objects were announced.
func (s *Service) ExpiryAlertsDue(ctx context.Context, thresholds []time.Duration, fire func(ExpiringObject)) (int, error) {
	var ths []time.Duration
	for _, t := range thresholds {
		if t > 0 {
			ths = append(ths, t)
		}
	}
	if len(ths) == 0 {
		return 0, nil
	}
	sort.Slice(ths, func(i, j int) bool { return ths[i] < ths[j] })
	now := s.clock.Now()
	horizon := now.Add(ths[len(ths)-1]).Unix()
	n := 0
	for _, v := range s.Vaults() {
		var due, stale []jobs.Entry
		err := s.in(v).View(ctx, func(tx barrier.Tx) (err error) {
			if due, err = jobs.DueKeys(tx, expiredQueue, horizon, 1000); err != nil {
				return err
			}
			stale, err = jobs.DueKeys(tx, expiryAlertQueue, now.Unix(), 1000)
			return err
		})
		if err != nil {
			return n, err
		}
		for _, e := range due {
			if e.Due <= now.Unix() {
				continue // expired: the Expired event's business, not an alert's
			}
			parts := strings.Split(e.Rest, "/") // {c}/{name}/{version}
			if len(parts) != 3 || collType(parts[0]) == "" {
				continue
			}
			left := time.Unix(e.Due, 0).Sub(now)
			var th time.Duration
			for _, t := range ths {
				if left <= t {
					th = t
					break
				}
			}
			marker := jobs.DueKey(expiryAlertQueue, e.Due, strconv.FormatInt(int64(th/time.Second), 10)+"/"+e.Rest)
			key := e.Key
			fresh := false
			err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
				fresh = false
				if _, err := tx.Get(key); err != nil {
					return nil // the version changed or expired meanwhile
				}
				if rec, err := s.objs(v, collType(parts[0])).live(tx, parts[1]); err != nil || rec.Managed {
					return nil // deleted meanwhile, or a certificate's key or secret: the certificate is announced
				}
				if _, err := tx.Get(marker); err == nil {
					return nil // announced
				} else if !errors.Is(err, storage.ErrNotFound) {
					return err
				}
				fresh = true
				return tx.Put(marker, nil)
			})
			if err != nil {
				return n, err
			}
			if !fresh {
				continue
			}
			t := collType(parts[0])
			fire(ExpiringObject{Vault: v.Name, Type: t, Name: parts[1], Version: parts[2],
				ID: s.objectURL(v, t, parts[1], parts[2]), Operation: t.title() + "NearExpiry", Expires: time.Unix(e.Due, 0).UTC(), Threshold: th})
			n++
		}
		if len(stale) > 0 {
			err := s.in(v).Update(ctx, func(tx barrier.Tx) error {
				for _, e := range stale {
					if err := tx.Delete(e.Key); err != nil {
						return err
					}
				}
				return nil
			})
			if err != nil {
				return n, err
			}
		}
	}
	return n, nil
}
