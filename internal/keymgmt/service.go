package keymgmt

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/google/uuid"
	"github.com/keyward/keyward/internal/barrier"
	"github.com/keyward/keyward/internal/clock"
	"github.com/keyward/keyward/internal/errs"
	"github.com/keyward/keyward/internal/storage"
)

// Service is the Key Management engine of every tenant. Its records live
// in the system namespace of the barrier under keymgmt/{tenant}/.
type Service struct {
	view      *barrier.View
	clock     clock.Clock
	log       *slog.Logger
	providers map[string]Factory
	// CallTimeout bounds one provider call (Sync, Remove).
	CallTimeout time.Duration

	mu    sync.Mutex
	locks map[string]*sync.Mutex // one per distribution: provider calls never overlap on a target
	node  string                 // this process's lease holder name (lock)
	// LeaseTTL is how long a distribution's lease (lock) holds when its
	// holder never releases it (a node that died mid-call).
	LeaseTTL time.Duration
}

// New returns a Service storing in view, with the named provider factories.
func New(view *barrier.View, clk clock.Clock, log *slog.Logger, providers map[string]Factory) *Service {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Service{view: view, clock: clk, log: log, providers: providers, CallTimeout: 20 * time.Second,
		locks: map[string]*sync.Mutex{}, node: uuid.NewString(), LeaseTTL: 5 * time.Minute}
}

// Providers lists the provider names this service knows.
func (s *Service) Providers() []string {
	out := make([]string, 0, len(s.providers))
	for n := range s.providers {
		out = append(out, n)
	}
	sort.Strings(out)
	return out
}

func tenantPrefix(tenant string) string { return "keymgmt/" + strings.ToLower(tenant) + "/" }
func keyPath(tenant, name string) string {
	return tenantPrefix(tenant) + "key/" + name
}
func kmsPath(tenant, name string) string { return tenantPrefix(tenant) + "kms/" + name }
func distPath(tenant, kms, key string) string {
	return tenantPrefix(tenant) + "dist/" + kms + "/" + key
}

// --- stored records ---

type keyRecord struct {
	Name              string          `json:"name"`
	Type              string          `json:"type"`
	Created           time.Time       `json:"created"`
	LatestVersion     int             `json:"latest_version"`
	MinEnabledVersion int             `json:"min_enabled_version"`
	DeletionAllowed   bool            `json:"deletion_allowed"`
	Versions          []versionRecord `json:"versions"`
}

type versionRecord struct {
	Version  int       `json:"version"`
	Created  time.Time `json:"created"`
	Material []byte    `json:"material"`
}

func (r *keyRecord) key() *Key {
	k := &Key{Name: r.Name, Type: r.Type, Created: r.Created, LatestVersion: r.LatestVersion,
		MinEnabledVersion: r.MinEnabledVersion, DeletionAllowed: r.DeletionAllowed, Versions: map[int]*Version{}}
	for _, v := range r.Versions {
		k.Versions[v.Version] = &Version{Created: v.Created, material: v.Material}
	}
	return k
}

func recordOf(k *Key) *keyRecord {
	r := &keyRecord{Name: k.Name, Type: k.Type, Created: k.Created, LatestVersion: k.LatestVersion,
		MinEnabledVersion: k.MinEnabledVersion, DeletionAllowed: k.DeletionAllowed}
	for _, v := range k.VersionNumbers() {
		r.Versions = append(r.Versions, versionRecord{Version: v, Created: k.Versions[v].Created, Material: k.Versions[v].material})
	}
	return r
}

func getJSON(tx barrier.Tx, key string, v any) error {
	raw, err := tx.Get(key)
	if err != nil {
		return err
	}
	defer clear(raw)
	return json.Unmarshal(raw, v)
}

func putJSON(tx barrier.Tx, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	defer clear(raw)
	return tx.Put(key, raw)
}

func notFound(typ, name string, err error) error {
	if errors.Is(err, storage.ErrNotFound) {
		return errs.E(errs.NotFound, typ, name)
	}
	return err
}

func (s *Service) loadKey(tx barrier.Tx, tenant, name string) (*Key, error) {
	var r keyRecord
	if err := getJSON(tx, keyPath(tenant, name), &r); err != nil {
		return nil, notFound(objKey, name, err)
	}
	k := r.key()
	return k, nil
}

// --- keys ---

// CreateKey creates key name of type typ with its first version.
func (s *Service) CreateKey(ctx context.Context, tenant, name, typ string) (*Key, error) {
	if !ValidName(name) {
		return nil, bad(objKey, name, ReasonInvalidName)
	}
	if typ == "" {
		typ = TypeRSA2048
	}
	if !ValidType(typ) {
		return nil, bad(objKey, name, ReasonInvalidType)
	}
	mat, err := generate(typ)
	if err != nil {
		return nil, err
	}
	now := s.clock.Now().UTC()
	k := &Key{Name: name, Type: typ, Created: now, LatestVersion: 1, MinEnabledVersion: 1,
		Versions: map[int]*Version{1: {Created: now, material: mat}}}
	err = s.view.Update(ctx, func(tx barrier.Tx) error {
		if _, err := tx.Get(keyPath(tenant, name)); err == nil {
			return &errs.Error{Kind: errs.Conflict, Type: objKey, Name: name, Reason: ReasonExists}
		} else if !errors.Is(err, storage.ErrNotFound) {
			return err
		}
		return putJSON(tx, keyPath(tenant, name), recordOf(k))
	})
	if err != nil {
		return nil, err
	}
	return k, nil
}

// GetKey returns key name.
func (s *Service) GetKey(ctx context.Context, tenant, name string) (*Key, error) {
	var k *Key
	err := s.view.View(ctx, func(tx barrier.Tx) (err error) {
		k, err = s.loadKey(tx, tenant, name)
		return err
	})
	return k, err
}

// ListKeys lists the tenant's key names.
func (s *Service) ListKeys(ctx context.Context, tenant string) ([]string, error) {
	return s.listNames(ctx, tenantPrefix(tenant)+"key/")
}

func (s *Service) listNames(ctx context.Context, prefix string) ([]string, error) {
	var out []string
	err := s.view.View(ctx, func(tx barrier.Tx) error {
		return tx.ScanKeys(prefix, "", func(key string) bool {
			rest := strings.TrimPrefix(key, prefix)
			if rest != "" && !strings.Contains(rest, "/") {
				out = append(out, rest)
			}
			return true
		})
	})
	sort.Strings(out)
	return out, err
}

// KeyUpdate changes a key's settings; nil fields stay.
type KeyUpdate struct {
	MinEnabledVersion *int
	DeletionAllowed   *bool
}

// UpdateKey changes key name's settings and carries a new minimum enabled
// version into every provider the key is distributed to. A provider that
// fails does not fail the update: its distribution records the error and
// Reconcile retries it.
func (s *Service) UpdateKey(ctx context.Context, tenant, name string, u KeyUpdate) (*Key, error) {
	var k *Key
	changedMin := false
	err := s.view.Update(ctx, func(tx barrier.Tx) (err error) {
		if k, err = s.loadKey(tx, tenant, name); err != nil {
			return err
		}
		if u.MinEnabledVersion != nil {
			m := *u.MinEnabledVersion
			if m == 0 { // Vault: 0 means "no minimum", every version enabled
				m = 1
			}
			if m < 0 || m > k.LatestVersion {
				return bad(objKey, name, ReasonInvalidMinVersion)
			}
			changedMin = m != k.MinEnabledVersion
			k.MinEnabledVersion = m
		}
		if u.DeletionAllowed != nil {
			k.DeletionAllowed = *u.DeletionAllowed
		}
		return putJSON(tx, keyPath(tenant, name), recordOf(k))
	})
	if err != nil {
		return nil, err
	}
	if changedMin {
		s.syncKey(ctx, tenant, name)
	}
	return k, nil
}

// RotateKey adds a new version to key name and delivers it to every
// provider the key is distributed to (see UpdateKey for failures).
func (s *Service) RotateKey(ctx context.Context, tenant, name string) (*Key, error) {
	var k *Key
	err := s.view.Update(ctx, func(tx barrier.Tx) (err error) {
		if k, err = s.loadKey(tx, tenant, name); err != nil {
			return err
		}
		mat, err := generate(k.Type)
		if err != nil {
			return err
		}
		k.LatestVersion++
		k.Versions[k.LatestVersion] = &Version{Created: s.clock.Now().UTC(), material: mat}
		return putJSON(tx, keyPath(tenant, name), recordOf(k))
	})
	if err != nil {
		return nil, err
	}
	s.syncKey(ctx, tenant, name)
	return k, nil
}

// DeleteKey deletes key name: only when deletion_allowed is set and the
// key is distributed nowhere.
func (s *Service) DeleteKey(ctx context.Context, tenant, name string) error {
	return s.view.Update(ctx, func(tx barrier.Tx) error {
		k, err := s.loadKey(tx, tenant, name)
		if err != nil {
			return err
		}
		if !k.DeletionAllowed {
			return &errs.Error{Kind: errs.BadParameter, Type: objKey, Name: name, Reason: ReasonDeletionNotAllowed}
		}
		distributed := false
		if err := tx.ScanKeys(tenantPrefix(tenant)+"dist/", "", func(key string) bool {
			if strings.HasSuffix(key, "/"+name) {
				distributed = true
				return false
			}
			return true
		}); err != nil {
			return err
		}
		if distributed {
			return &errs.Error{Kind: errs.BadParameter, Type: objKey, Name: name, Reason: ReasonKeyDistributed}
		}
		return tx.Delete(keyPath(tenant, name))
	})
}

// KeyKMS lists the KMS providers key name is distributed to.
func (s *Service) KeyKMS(ctx context.Context, tenant, name string) ([]string, error) {
	var out []string
	err := s.view.View(ctx, func(tx barrier.Tx) error {
		if _, err := tx.Get(keyPath(tenant, name)); err != nil {
			return notFound(objKey, name, err)
		}
		pfx := tenantPrefix(tenant) + "dist/"
		return tx.ScanKeys(pfx, "", func(key string) bool {
			kms, key2, ok := strings.Cut(strings.TrimPrefix(key, pfx), "/")
			if ok && key2 == name {
				out = append(out, kms)
			}
			return true
		})
	})
	sort.Strings(out)
	return out, err
}

// --- KMS providers ---

// PutKMS creates or updates KMS provider name. An update may change the
// key collection and credentials, not the provider.
func (s *Service) PutKMS(ctx context.Context, tenant string, k KMS) (*KMS, error) {
	if !ValidName(k.Name) {
		return nil, bad(objKMS, k.Name, ReasonInvalidName)
	}
	err := s.view.Update(ctx, func(tx barrier.Tx) error {
		var old KMS
		switch err := getJSON(tx, kmsPath(tenant, k.Name), &old); {
		case err == nil:
			if k.Provider == "" {
				k.Provider = old.Provider
			} else if k.Provider != old.Provider {
				return bad(objKMS, k.Name, ReasonProviderChange)
			}
			if k.KeyCollection == "" {
				k.KeyCollection = old.KeyCollection
			}
			if k.Credentials == nil {
				k.Credentials = old.Credentials
			}
			k.Created = old.Created
		case errors.Is(err, storage.ErrNotFound):
			k.Created = s.clock.Now().UTC()
		default:
			return err
		}
		f, ok := s.providers[k.Provider]
		if !ok {
			return bad(objKMS, k.Name, ReasonInvalidProvider)
		}
		if k.KeyCollection == "" {
			return bad(objKMS, k.Name, ReasonInvalidCollection)
		}
		if _, err := f(&k); err != nil {
			return err
		}
		return putJSON(tx, kmsPath(tenant, k.Name), &k)
	})
	if err != nil {
		return nil, err
	}
	return &k, nil
}

// GetKMS returns KMS provider name (with its credentials: the surface
// never shows them).
func (s *Service) GetKMS(ctx context.Context, tenant, name string) (*KMS, error) {
	var k KMS
	err := s.view.View(ctx, func(tx barrier.Tx) error {
		return notFound(objKMS, name, getJSON(tx, kmsPath(tenant, name), &k))
	})
	if err != nil {
		return nil, err
	}
	return &k, nil
}

// ListKMS lists the tenant's KMS providers.
func (s *Service) ListKMS(ctx context.Context, tenant string) ([]string, error) {
	return s.listNames(ctx, tenantPrefix(tenant)+"kms/")
}

// DeleteKMS deletes KMS provider name: only when no key is distributed to it.
func (s *Service) DeleteKMS(ctx context.Context, tenant, name string) error {
	return s.view.Update(ctx, func(tx barrier.Tx) error {
		if _, err := tx.Get(kmsPath(tenant, name)); err != nil {
			return notFound(objKMS, name, err)
		}
		inUse := false
		if err := tx.ScanKeys(tenantPrefix(tenant)+"dist/"+name+"/", "", func(string) bool {
			inUse = true
			return false
		}); err != nil {
			return err
		}
		if inUse {
			return &errs.Error{Kind: errs.BadParameter, Type: objKMS, Name: name, Reason: ReasonKMSInUse}
		}
		return tx.Delete(kmsPath(tenant, name))
	})
}

// --- distributions ---

// lease is a distribution's storage-level lock: the node holding it and
// until when. Taken and released in serializable transactions, it keeps
// two nodes (an API call on one, the leader's reconciliation on another)
// from calling the target for the same distribution at once.
type lease struct {
	Holder  string `json:"holder"`
	Expires int64  `json:"expires"` // unix nanoseconds
}

func leasePath(tenant, kms, key string) string {
	return tenantPrefix(tenant) + "lease/" + kms + "/" + key
}

// lock serializes work on one distribution: in this process by a mutex,
// across nodes by a lease in storage. When another node holds an
// unexpired lease it fails with Conflict (ReasonBusy) and nothing is
// done; the caller retries (Reconcile does on its next run).
func (s *Service) lock(ctx context.Context, tenant, kms, key string) (func(), error) {
	id := distPath(tenant, kms, key)
	s.mu.Lock()
	l, ok := s.locks[id]
	if !ok {
		l = new(sync.Mutex)
		s.locks[id] = l
	}
	s.mu.Unlock()
	l.Lock()
	lp := leasePath(tenant, kms, key)
	err := s.view.Update(ctx, func(tx barrier.Tx) error {
		var cur lease
		switch err := getJSON(tx, lp, &cur); {
		case err == nil:
			if cur.Holder != s.node && s.clock.Now().UnixNano() < cur.Expires {
				return &errs.Error{Kind: errs.Conflict, Type: objDistribution, Name: key, Reason: ReasonBusy}
			}
		case !errors.Is(err, storage.ErrNotFound):
			return err
		}
		return putJSON(tx, lp, lease{Holder: s.node, Expires: s.clock.Now().Add(s.LeaseTTL).UnixNano()})
	})
	if err != nil {
		l.Unlock()
		return nil, err
	}
	return func() {
		// Released even when the caller's context is done.
		err := s.view.Update(context.WithoutCancel(ctx), func(tx barrier.Tx) error {
			var cur lease
			if err := getJSON(tx, lp, &cur); err != nil || cur.Holder != s.node {
				return nil
			}
			return tx.Delete(lp)
		})
		if err != nil {
			s.log.Warn("keymgmt: releasing a distribution lease failed; it expires by itself", "kms", kms, "key", key, "error", err)
		}
		l.Unlock()
	}, nil
}

// load reads the key, the KMS and (when it exists) the distribution.
func (s *Service) load(ctx context.Context, tenant, kms, key string) (*Key, *KMS, *Distribution, error) {
	var k *Key
	var m KMS
	var d *Distribution
	err := s.view.View(ctx, func(tx barrier.Tx) (err error) {
		if err := getJSON(tx, kmsPath(tenant, kms), &m); err != nil {
			return notFound(objKMS, kms, err)
		}
		if k, err = s.loadKey(tx, tenant, key); err != nil {
			return err
		}
		var dd Distribution
		switch err := getJSON(tx, distPath(tenant, kms, key), &dd); {
		case err == nil:
			d = &dd
		case !errors.Is(err, storage.ErrNotFound):
			return err
		}
		return nil
	})
	return k, &m, d, err
}

func (s *Service) provider(m *KMS) (Provider, error) {
	f, ok := s.providers[m.Provider]
	if !ok {
		return nil, bad(objKMS, m.Name, ReasonInvalidProvider)
	}
	return f(m)
}

// Distribute distributes key to kms with purpose and protection. The
// first delivery happens now: if the target refuses, nothing is recorded
// and the error is returned. Distributing again with the same settings
// syncs; with other settings it is a conflict (remove first).
func (s *Service) Distribute(ctx context.Context, tenant, kms, key string, purpose []string, protection string) (*Distribution, error) {
	if protection == "" {
		protection = ProtectionHSM // Vault's default
	}
	if protection != ProtectionHSM && protection != ProtectionSoftware {
		return nil, bad(objDistribution, key, ReasonInvalidProtection)
	}
	purpose, err := ParsePurpose(purpose)
	if err != nil {
		return nil, err
	}
	unlock, err := s.lock(ctx, tenant, kms, key)
	if err != nil {
		return nil, err
	}
	defer unlock()
	k, m, d, err := s.load(ctx, tenant, kms, key)
	if err != nil {
		return nil, err
	}
	p, err := s.provider(m)
	if err != nil {
		return nil, err
	}
	if err := p.Supports(k.Type, purpose, protection); err != nil {
		return nil, err
	}
	if d != nil && (strings.Join(d.Purpose, ",") != strings.Join(purpose, ",") || d.Protection != protection) {
		return nil, &errs.Error{Kind: errs.Conflict, Type: objDistribution, Name: key, Reason: ReasonExists}
	}
	if d == nil {
		d = &Distribution{KMS: kms, Key: key, Purpose: purpose, Protection: protection, Created: s.clock.Now().UTC()}
	}
	res, err := s.call(ctx, func(ctx context.Context) (SyncResult, error) { return p.Sync(ctx, Target{KMS: m, Key: k, Dist: d}) })
	if err != nil {
		return nil, &ProviderError{KMS: kms, Err: err}
	}
	s.record(d, res, nil)
	err = s.view.Update(ctx, func(tx barrier.Tx) error {
		// The key or the provider may have gone meanwhile.
		if _, err := tx.Get(keyPath(tenant, key)); err != nil {
			return notFound(objKey, key, err)
		}
		if _, err := tx.Get(kmsPath(tenant, kms)); err != nil {
			return notFound(objKMS, kms, err)
		}
		return putJSON(tx, distPath(tenant, kms, key), d)
	})
	if err != nil {
		return nil, err
	}
	return d, nil
}

func (s *Service) call(ctx context.Context, fn func(context.Context) (SyncResult, error)) (SyncResult, error) {
	ctx, cancel := context.WithTimeout(ctx, s.CallTimeout)
	defer cancel()
	return fn(ctx)
}

// record notes the outcome of a provider call in d.
func (s *Service) record(d *Distribution, res SyncResult, err error) {
	now := s.clock.Now().UTC()
	d.LastChecked = now
	if err != nil {
		d.Failures++
		d.State = StateError
		d.LastError = clip(err.Error(), 500)
		d.NextAttempt = now.Add(Backoff(d.Failures))
		return
	}
	if res.Versions != nil {
		d.Versions = res.Versions
	}
	d.Failures, d.LastError, d.NextAttempt = 0, "", time.Time{}
	d.Findings = res.Findings
	if len(res.Findings) > 0 {
		d.State = StateRepaired
	} else {
		d.State = StateDistributed
	}
}

// Backoff is the wait before the n-th retry of a failing distribution:
// 30 s doubling, at most an hour.
func Backoff(n int) time.Duration {
	d := 30 * time.Second
	for i := 1; i < n && d < time.Hour; i++ {
		d *= 2
	}
	return min(d, time.Hour)
}

func clip(s string, n int) string {
	if len(s) > n {
		return s[:n]
	}
	return s
}

// GetDistribution returns the distribution of key to kms.
func (s *Service) GetDistribution(ctx context.Context, tenant, kms, key string) (*Distribution, error) {
	var d Distribution
	err := s.view.View(ctx, func(tx barrier.Tx) error {
		if _, err := tx.Get(kmsPath(tenant, kms)); err != nil {
			return notFound(objKMS, kms, err)
		}
		return notFound(objDistribution, key, getJSON(tx, distPath(tenant, kms, key), &d))
	})
	if err != nil {
		return nil, err
	}
	return &d, nil
}

// ListDistributions lists the keys distributed to kms.
func (s *Service) ListDistributions(ctx context.Context, tenant, kms string) ([]string, error) {
	if _, err := s.GetKMS(ctx, tenant, kms); err != nil {
		return nil, err
	}
	return s.listNames(ctx, tenantPrefix(tenant)+"dist/"+kms+"/")
}

// RemoveDistribution deletes the key's copies in kms and forgets the
// distribution. If the target refuses, the distribution stays (with the
// error) and the error is returned.
func (s *Service) RemoveDistribution(ctx context.Context, tenant, kms, key string) error {
	unlock, err := s.lock(ctx, tenant, kms, key)
	if err != nil {
		return err
	}
	defer unlock()
	k, m, d, err := s.load(ctx, tenant, kms, key)
	if err != nil {
		return err
	}
	if d == nil {
		return errs.E(errs.NotFound, objDistribution, key)
	}
	p, err := s.provider(m)
	if err != nil {
		return err
	}
	if _, err := s.call(ctx, func(ctx context.Context) (SyncResult, error) {
		return SyncResult{}, p.Remove(ctx, Target{KMS: m, Key: k, Dist: d})
	}); err != nil {
		return &ProviderError{KMS: kms, Err: err}
	}
	return s.view.Update(ctx, func(tx barrier.Tx) error { return tx.Delete(distPath(tenant, kms, key)) })
}

// syncKey carries key's state into every provider it is distributed to,
// within the caller's time. Failures are recorded on the distribution
// (Reconcile retries them, and checks every distribution on each run);
// they never fail the caller's change to the key.
func (s *Service) syncKey(ctx context.Context, tenant, key string) {
	kmss, err := s.KeyKMS(ctx, tenant, key)
	if err != nil {
		s.log.Warn("keymgmt: listing distributions failed", "key", key, "error", err)
		return
	}
	for _, kms := range kmss {
		if ctx.Err() != nil {
			// The caller's time is up: the change stands centrally and
			// the reconciliation job delivers the rest.
			return
		}
		if err := s.syncOne(ctx, tenant, kms, key); err != nil {
			s.log.Warn("keymgmt: sync failed", "kms", kms, "key", key, "error", err)
		}
	}
}

// syncOne syncs one distribution and records the outcome on it.
func (s *Service) syncOne(ctx context.Context, tenant, kms, key string) error {
	unlock, err := s.lock(ctx, tenant, kms, key)
	if err != nil {
		return err
	}
	defer unlock()
	k, m, d, err := s.load(ctx, tenant, kms, key)
	if err != nil {
		return err
	}
	if d == nil {
		return nil // removed meanwhile
	}
	var res SyncResult
	p, perr := s.provider(m)
	if perr == nil {
		res, perr = s.call(ctx, func(ctx context.Context) (SyncResult, error) { return p.Sync(ctx, Target{KMS: m, Key: k, Dist: d}) })
	}
	s.record(d, res, perr)
	err = s.view.Update(ctx, func(tx barrier.Tx) error {
		if _, err := tx.Get(distPath(tenant, kms, key)); err != nil {
			if errors.Is(err, storage.ErrNotFound) {
				return nil
			}
			return err
		}
		return putJSON(tx, distPath(tenant, kms, key), d)
	})
	if perr != nil {
		return &ProviderError{KMS: kms, Err: perr}
	}
	return err
}

// Report is what one Reconcile run found.
type Report struct {
	Checked  int
	Repaired []Item // one per finding
	Failed   []Item
	Skipped  int // backing off after failures
}

// Item is one distribution's finding or failure.
type Item struct {
	Tenant, KMS, Key string
	Detail           string // the finding, or the target's error
}

func (i Item) String() string { return i.Tenant + "/" + i.KMS + "/" + i.Key + ": " + i.Detail }

// Reconcile checks every distribution of every tenant whose retry time has
// come, repairs what drifted and records the outcome on the distribution.
// It is the leader's job (internal/server).
func (s *Service) Reconcile(ctx context.Context) (Report, error) {
	var rep Report
	type ref struct{ tenant, kms, key string }
	var refs []ref
	var due []bool
	now := s.clock.Now()
	err := s.view.View(ctx, func(tx barrier.Tx) error {
		return tx.Scan("keymgmt/", "", func(key string, value []byte) bool {
			parts := strings.Split(strings.TrimPrefix(key, "keymgmt/"), "/")
			if len(parts) != 4 || parts[1] != "dist" {
				return true
			}
			var d Distribution
			if json.Unmarshal(value, &d) != nil {
				return true
			}
			refs = append(refs, ref{parts[0], parts[2], parts[3]})
			due = append(due, d.NextAttempt.IsZero() || !now.Before(d.NextAttempt))
			return true
		})
	})
	if err != nil {
		return rep, err
	}
	for i, r := range refs {
		if ctx.Err() != nil {
			break
		}
		if !due[i] {
			rep.Skipped++
			continue
		}
		rep.Checked++
		if err := s.syncOne(ctx, r.tenant, r.kms, r.key); err != nil {
			rep.Failed = append(rep.Failed, Item{r.tenant, r.kms, r.key, clip(err.Error(), 300)})
			s.log.Warn("keymgmt: reconciliation failed", "kms", r.kms, "key", r.key, "error", err)
			continue
		}
		d, err := s.GetDistribution(ctx, r.tenant, r.kms, r.key)
		if err == nil && len(d.Findings) > 0 {
			for _, f := range d.Findings {
				rep.Repaired = append(rep.Repaired, Item{r.tenant, r.kms, r.key, f})
			}
			s.log.Info("keymgmt: distribution repaired", "kms", r.kms, "key", r.key, "findings", strings.Join(d.Findings, "; "))
		}
	}
	return rep, nil
}

// String summarizes a report for logs.
func (r Report) String() string {
	return fmt.Sprintf("checked %d, repaired %d, failed %d, backing off %d", r.Checked, len(r.Repaired), len(r.Failed), r.Skipped)
}
