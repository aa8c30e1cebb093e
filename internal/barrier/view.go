package barrier

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/keyward/keyward/internal/storage"
)

// This file: the storage key space and the views that scope it.
//
// The key space belongs to the barrier. It is divided into namespaces, each
// sealed under its own keyring:
//
//	v/{id}/...       one vault                       keyring "v-{id}"
//	t/{id}/...       one tenant (its backup blobs)   keyring "t-{id}"
//	sys/barrier/...  the barrier's own records        reached by no Tx
//	anything else    the system namespace             keyring "sys"
//	                 (vault registry, directory, management records)
//
// A component never spells these prefixes: it receives the View of its
// namespace (Barrier.System, Barrier.Vault, Barrier.Tenant) and names keys
// relative to it, as in a chroot. The layout is part of the stored format:
// the full storage key is the AAD and the HKDF info of every value, so it
// must not change without a migration.

const (
	vaultNS  = "v/"
	tenantNS = "t/"
)

// ErrOutsideView means a key lies outside the namespace of the view it was
// given to.
var ErrOutsideView = errors.New("barrier: key is outside the view")

// ScopeOf returns the keyring scope a storage key belongs to: "v/{id}/..."
// keys belong to vault scope "v-{id}", "t/{id}/..." to tenant scope
// "t-{id}", everything else to SystemScope.
func ScopeOf(key string) string {
	if len(key) > 2 && key[1] == '/' && (key[0] == 'v' || key[0] == 't') {
		if i := strings.IndexByte(key[2:], '/'); i > 0 {
			return key[:1] + "-" + key[2:2+i]
		}
	}
	return SystemScope
}

// View is one namespace of the key space, sealed under one keyring. Keys
// given to a View and its Tx are relative to the namespace; nothing outside
// it can be named. A View is cheap to make and safe for concurrent use.
type View struct {
	b      *Barrier
	prefix string // every storage key of the view begins with it; "" for the system view and the root
	scope  string // the view's keyring; "" for the root, where each key's namespace decides
	err    error  // the view was asked for with an invalid ID: every operation fails with it
}

// System is the view of the system namespace: every key outside the vault
// and tenant namespaces and the barrier's own records. Its keys are
// storage keys as they are ("sys/vaults/...").
func (b *Barrier) System() *View { return b.views.sys }

// Vault is the view of the namespace of the vault with internal ID id.
func (b *Barrier) Vault(id string) *View { return b.namespace(vaultNS, id) }

// Tenant is the view of the namespace of tenant id. Tenant IDs are GUIDs,
// compared case-insensitively.
func (b *Barrier) Tenant(id string) *View { return b.namespace(tenantNS, strings.ToLower(id)) }

func (b *Barrier) namespace(ns, id string) *View {
	k := viewKey{ns, id}
	b.views.mu.RLock()
	v := b.views.m[k]
	b.views.mu.RUnlock()
	if v != nil {
		return v
	}
	if id == "" || strings.ContainsAny(id, "/\x00") {
		return &View{b: b, err: fmt.Errorf("barrier: invalid namespace ID %q", id)}
	}
	v = &View{b: b, prefix: ns + id + "/", scope: ns[:1] + "-" + id}
	b.views.mu.Lock()
	defer b.views.mu.Unlock()
	if cur := b.views.m[k]; cur != nil {
		return cur
	}
	b.views.m[k] = v
	return v
}

// viewCache keeps the views handed out, so that asking for a vault's view
// on every request allocates nothing. It holds no key material; Destroy
// drops the view of the namespace it destroys.
type viewCache struct {
	all, sys *View // the whole key space and the system namespace

	mu sync.RWMutex
	m  map[viewKey]*View
}

type viewKey struct{ ns, id string }

func (c *viewCache) forget(v *View) {
	c.mu.Lock()
	defer c.mu.Unlock()
	for k, cur := range c.m {
		if cur == v {
			delete(c.m, k)
		}
	}
}

// View runs fn in a read-only transaction over the whole key space (every
// namespace, each value under its own keyring), with decrypted values. It
// is for tests and operator tools; components receive a View instead.
func (b *Barrier) View(ctx context.Context, fn func(Tx) error) error {
	return b.views.all.View(ctx, fn)
}

// Update is View for writing: values are encrypted. As with
// storage.Backend.Update, fn may run more than once.
func (b *Barrier) Update(ctx context.Context, fn func(Tx) error) error {
	return b.views.all.Update(ctx, fn)
}

// View runs fn in a read-only transaction of v whose values are decrypted.
func (v *View) View(ctx context.Context, fn func(Tx) error) error {
	if v.err != nil {
		return v.err
	}
	if v.b.Sealed() {
		return ErrSealed
	}
	return v.b.backend.View(ctx, func(tx storage.Tx) error {
		return fn(&sealedTx{ctx: ctx, v: v, tx: tx})
	})
}

// Update runs fn in a read-write transaction of v whose values are
// encrypted. As with storage.Backend.Update, fn may run more than once.
func (v *View) Update(ctx context.Context, fn func(Tx) error) error {
	if v.err != nil {
		return v.err
	}
	if v.b.Sealed() {
		return ErrSealed
	}
	return v.b.backend.Update(ctx, func(tx storage.Tx) error {
		return fn(&sealedTx{ctx: ctx, v: v, tx: tx})
	})
}

// In returns the transaction tx (opened by View or Update of any view of
// the same barrier) seen through v, so that one atomic change can span two
// namespaces.
func (v *View) In(tx Tx) Tx {
	st, ok := tx.(*sealedTx)
	if !ok || st.v.b != v.b {
		panic("barrier: View.In with a transaction of another barrier")
	}
	return &sealedTx{ctx: st.ctx, v: v, tx: st.tx}
}

// EnsureKeyring creates the keyring of v's namespace if it does not exist
// yet. A namespace must have one before anything is written to it.
func (v *View) EnsureKeyring(ctx context.Context, now time.Time) error {
	if v.err != nil {
		return v.err
	}
	return v.b.EnsureScope(ctx, v.scope, now)
}

// RotateKeyring adds a term to the keyring of v's namespace: new writes
// use it, values written before stay readable.
func (v *View) RotateKeyring(ctx context.Context, now time.Time) error {
	if v.err != nil {
		return v.err
	}
	return v.b.RotateScope(ctx, v.scope, now)
}

// SealBlob encrypts plain for use outside storage (backup blobs) under the
// keyring of v; label binds the blob to its purpose. Only OpenBlob of the
// same namespace with the same label opens it.
func (v *View) SealBlob(ctx context.Context, label string, plain []byte) ([]byte, error) {
	if v.err != nil {
		return nil, v.err
	}
	return v.b.SealBlob(ctx, v.scope, label, plain)
}

// OpenBlob decrypts a blob made by SealBlob; any mismatch is ErrCorrupt.
func (v *View) OpenBlob(ctx context.Context, label string, blob []byte) ([]byte, error) {
	if v.err != nil {
		return nil, v.err
	}
	return v.b.OpenBlob(ctx, v.scope, label, blob)
}

// StorageKey is the storage key under which key of v is stored, for tools
// and tests that look underneath the barrier.
func (v *View) StorageKey(key string) string { return v.prefix + key }

// KeyOf is the key of v that the storage key storageKey names (storageKey
// itself when it lies outside v). It reads records written before views
// existed, which kept storage keys where they now keep keys of a view.
func (v *View) KeyOf(storageKey string) string { return strings.TrimPrefix(storageKey, v.prefix) }

// destroyBatch bounds the deletions of one Destroy transaction.
const destroyBatch = 500

// Destroy deletes every value of v's namespace and then its keyring, for
// good (a purged vault). It works in batches of bounded transactions and
// may be called again after a failure. The system view cannot be
// destroyed.
func (v *View) Destroy(ctx context.Context) error {
	if v.err != nil {
		return v.err
	}
	if v.prefix == "" {
		return fmt.Errorf("barrier: the system namespace cannot be destroyed")
	}
	if v.b.Sealed() {
		return ErrSealed
	}
	for {
		n := 0
		err := v.b.backend.Update(ctx, func(tx storage.Tx) error {
			var batch []string
			if err := tx.Scan(v.prefix, "", func(k string, _ []byte) bool {
				batch = append(batch, k)
				return len(batch) < destroyBatch
			}); err != nil {
				return err
			}
			for _, k := range batch {
				if err := tx.Delete(k); err != nil {
					return err
				}
			}
			n = len(batch)
			return nil
		})
		if err != nil {
			return err
		}
		if n == 0 {
			break
		}
	}
	v.b.views.forget(v)
	return v.b.dropScope(ctx, v.scope)
}

// Tx is a storage transaction seen through the barrier: values go in and
// come out as plaintext, and are sealed in between. Keys are relative to
// the view the transaction was opened on.
type Tx interface {
	Get(key string) ([]byte, error)
	Put(key string, value []byte) error
	Delete(key string) error
	// Scan is storage.Tx.Scan with decrypted values. A value that fails to
	// decrypt ends the scan with ErrCorrupt.
	Scan(prefix, after string, fn func(key string, value []byte) bool) error
	// ScanKeys is Scan without decrypting values, for listings that only
	// need names.
	ScanKeys(prefix, after string, fn func(key string) bool) error
}

type sealedTx struct {
	ctx context.Context
	v   *View
	tx  storage.Tx
}

// storageKey maps a key of the view to its storage key, refusing the
// barrier's own records and keys of other namespaces.
func (v *View) storageKey(key string) (string, error) {
	if v.err != nil {
		return "", v.err
	}
	full := v.prefix + key
	if strings.HasPrefix(full, reservedPfx) {
		return "", ErrReserved
	}
	if !v.reaches(full) {
		return "", ErrOutsideView
	}
	return full, nil
}

// reaches reports whether the storage key full lies in v's namespace (the
// caller has checked that it starts with v.prefix).
func (v *View) reaches(full string) bool {
	return v.prefix != "" || v.scope == "" || ScopeOf(full) == SystemScope
}

// scopeOf is the keyring of the storage key full in v.
func (v *View) scopeOf(full string) string {
	if v.scope != "" {
		return v.scope
	}
	return ScopeOf(full)
}

func (t *sealedTx) Get(key string) ([]byte, error) {
	full, err := t.v.storageKey(key)
	if err != nil {
		return nil, err
	}
	blob, err := t.tx.Get(full)
	if err != nil {
		return nil, err
	}
	return t.v.b.openIn(t.ctx, t.tx, t.v.scopeOf(full), full, blob)
}

func (t *sealedTx) Put(key string, value []byte) error {
	full, err := t.v.storageKey(key)
	if err != nil {
		return err
	}
	blob, err := t.v.b.sealIn(t.ctx, t.tx, t.v.scopeOf(full), full, value)
	if err != nil {
		return err
	}
	return t.tx.Put(full, blob)
}

func (t *sealedTx) Delete(key string) error {
	full, err := t.v.storageKey(key)
	if err != nil {
		return err
	}
	return t.tx.Delete(full)
}

// scan runs storage Scan over the view's part of prefix, handing fn the
// view-relative key of each value the view reaches.
func (t *sealedTx) scan(prefix, after string, fn func(full, key string, blob []byte) bool) error {
	if t.v.err != nil {
		return t.v.err
	}
	fullPrefix := t.v.prefix + prefix
	if prefix != "" && strings.HasPrefix(fullPrefix, reservedPfx) {
		return ErrReserved
	}
	if after != "" {
		after = t.v.prefix + after
	}
	n := len(t.v.prefix)
	return t.tx.Scan(fullPrefix, after, func(k string, blob []byte) bool {
		if strings.HasPrefix(k, reservedPfx) || !t.v.reaches(k) {
			return true
		}
		return fn(k, k[n:], blob)
	})
}

func (t *sealedTx) Scan(prefix, after string, fn func(string, []byte) bool) error {
	var openErr error
	err := t.scan(prefix, after, func(full, key string, blob []byte) bool {
		plain, err := t.v.b.openIn(t.ctx, t.tx, t.v.scopeOf(full), full, blob)
		if err != nil {
			openErr = err
			return false
		}
		return fn(key, plain)
	})
	if err != nil {
		return err
	}
	return openErr
}

func (t *sealedTx) ScanKeys(prefix, after string, fn func(string) bool) error {
	return t.scan(prefix, after, func(_, key string, _ []byte) bool { return fn(key) })
}
